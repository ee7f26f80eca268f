# Source me: puts the project's .venv (a ROS 2 Kilted prefix) and its colcon install on the path.
#   . tools/env.sh               # venv + install/ overlay
#   . tools/env.sh --no-install  # venv only (used while building)
_ws_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
. "$_ws_root/.venv/bin/activate"
export AMENT_PREFIX_PATH="$_ws_root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_ws_root/.venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
# Fast DDS shared-memory segments big enough for camera images (see config/fastdds.xml).
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$_ws_root/config/fastdds.xml}
export STORE_WS="$_ws_root"
if [ "${1:-}" != "--no-install" ] && [ -f "$_ws_root/install/setup.bash" ]; then
  # colcon's setup scripts read unset variables; relax nounset while sourcing.
  _had_u=$(set +o | grep nounset)
  set +u
  # shellcheck disable=SC1091
  . "$_ws_root/install/setup.bash"
  eval "$_had_u"
fi
# Command-line tools (not nodes) on PATH: run_store, evaluate, generate_scenarios, bag tools,
# render_scenario, make_dataset, train_detector, review_console, render_markers, the bench tools.
for _pkg in store_bringup store_sim store_bench store_bags store_review store_perception store_viz; do
  [ -d "$_ws_root/install/$_pkg/lib/$_pkg" ] && PATH="$_ws_root/install/$_pkg/lib/$_pkg:$PATH"
done
export PATH
unset _ws_root _had_u _pkg
