#!/usr/bin/env bash
# `make demo`: the demo store with the default scenario, through the real node graph (one
# process per node over DDS), then the receipts, the evaluator's table and a top-down picture.
# Expects `. tools/env.sh` (the Makefile does it). Output under out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-config/stores/demo.yaml}
SCENARIO=${SCENARIO:-config/scenarios/demo.yaml}
RUN=${RUN_DIR:-out/demo}
# A private ROS domain on loopback, so the demo neither hears nor disturbs anything else.
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}

rm -rf "$RUN"
mkdir -p "$RUN"
echo "== running $STORE with $SCENARIO (ROS domain $ROS_DOMAIN_ID); logs in $RUN/logs"
run_store --store "$STORE" --mode sim --scenario "$SCENARIO" --run-dir "$RUN" --record \
  --record-bag "$RUN/sensors_bag" --render-png "$RUN/store.png" --timeout 300 \
  | grep -E --line-buffered '\] (event |cart |review |receipt |all |.*(entered|left) )|runner|ERROR|FATAL' \
  || true
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo "demo: the run failed (exit $status); see $RUN/logs" >&2
  exit "$status"
fi
echo
echo "== receipts"
python -m store_bringup.report receipts "$RUN/receipts.jsonl"
echo
echo "== evaluation against the scenario's truth"
evaluate --scenario "$SCENARIO" --run-dir "$RUN" --json "$RUN/evaluation.json"
echo
echo "== files: $RUN/store.png (top-down view), $RUN/sensors_bag (rosbag2/MCAP of the raw"
echo "   sensor topics; replay with: run_store --mode replay --bag $RUN/sensors_bag ...)"
