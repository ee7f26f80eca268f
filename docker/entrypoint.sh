#!/usr/bin/env bash
# Source ROS 2 Kilted and the workspace overlay, then run the given command.
set -e
# shellcheck disable=SC1091
source /opt/ros/kilted/setup.bash
# shellcheck disable=SC1091
source /ws/install/setup.bash
export STORE_WS=/ws
# Fast DDS shared-memory segments big enough for camera images (see config/fastdds.xml).
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-/ws/config/fastdds.xml}
exec "$@"
