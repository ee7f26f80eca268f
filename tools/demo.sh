#!/usr/bin/env bash
# `make demo`: the demo store with the default scenario through the real node graph (one
# process per node over DDS): rendered cameras, detector, tracker, fusion, cart, review console,
# markers and the PNG; then the receipts, the evaluator's table (explained) with the weight-only
# column beside the run's (the run's own shelf events decided without the cameras' hints,
# store_bench.replay_weight_only), and the review console kept up with a demo reviewer account
# until Ctrl-C.
# Expects `. tools/env.sh` (the Makefile does it). Output under out/demo/.
#
# Options (environment; `make demo CAMERAS=0 CONSOLE_PORT=8081` works too):
#   CAMERAS=0          weight only (no cameras, no detector; faster)
#   CONSOLE_PORT=8080  review console port (0: a free one); a taken port is an error naming it
#   CAMERA_PORT=       port of the simulated camera streams (default: derived from the run dir;
#                      0: a free one)
#   KEEP_CONSOLE=1     serve the console after the run until Ctrl-C (0: just say how). Never
#                      blocks when stdin is not a terminal or CI=true.
#   RUN_DIR=out/demo   STORE=config/stores/demo.yaml  SCENARIO=config/scenarios/demo.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-config/stores/demo.yaml}
SCENARIO=${SCENARIO:-config/scenarios/demo.yaml}
RUN=${RUN_DIR:-out/demo}
CAMERAS=${CAMERAS:-1}
CONSOLE_PORT=${CONSOLE_PORT:-8080}
CAMERA_PORT=${CAMERA_PORT:-}
KEEP_CONSOLE=${KEEP_CONSOLE:-1}
TIMEOUT_S=${TIMEOUT_S:-300}
# A private ROS domain on loopback, so the demo neither hears nor disturbs anything else.
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}

# An earlier demo run: never wipe reviewer accounts (or decisions) without saying so.
if [ -e "$RUN" ]; then
  accounts=""
  if [ -f "$RUN/review.sqlite" ]; then
    accounts=$(review_users --db "$RUN/review.sqlite" list 2>/dev/null | cut -f1 | paste -sd, - \
      || true)
  fi
  if [ -n "$accounts" ]; then
    rm -rf "$RUN.previous"
    mv "$RUN" "$RUN.previous"
    echo "== $RUN held an earlier run with review accounts ($accounts): moved to $RUN.previous"
    echo "   (serve it with: review_console --db $RUN.previous/review.sqlite)"
  else
    echo "== removing the earlier demo run in $RUN (no review accounts in it)"
    rm -rf "$RUN"
  fi
fi
mkdir -p "$RUN"
# A demo reviewer account in this run's review database (the node opens the same file): a
# generated password, printed, never written to a file.
DB="$RUN/review.sqlite"
password=$(python -c 'import secrets; print(secrets.token_urlsafe(12))')
REVIEW_PASSWORD="$password" review_users --db "$DB" add --role supervisor demo >/dev/null

args=(--store "$STORE" --mode sim --scenario "$SCENARIO" --run-dir "$RUN" --record
      --record-bag "$RUN/sensors_bag" --render-png "$RUN/store.png" --timeout "$TIMEOUT_S"
      --console-port "$CONSOLE_PORT")
what="weight only"
if [ "$CAMERAS" = "1" ]; then
  args+=(--cameras)
  what="cameras + weight"
  [ -n "$CAMERA_PORT" ] && args+=(--camera-port "$CAMERA_PORT")
fi
echo "== running $STORE with $SCENARIO, $what (ROS domain $ROS_DOMAIN_ID); logs in $RUN/logs"
echo "   review console during the run: see $RUN/review_url.txt; user demo, password $password"
set +e     # the run's own exit status decides (grep finding nothing is no failure)
run_store "${args[@]}" \
  | grep -E --line-buffered '\] (event |cart |review |receipt |all |.*(entered|left) )|runner|render|ERROR|FATAL'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "demo: the run failed (exit $status); see $RUN/logs" >&2
  exit "$status"
fi
echo
echo "== receipts"
python -m store_bringup.report receipts "$RUN/receipts.jsonl"
echo
if [ "$CAMERAS" = "1" ]; then
  # the weight-only column: this run's own shelf events and gate scans, replayed into a cart
  # without the cameras' hints (same code, same cart parameters; a few seconds, no second run)
  echo "== evaluation against the scenario's truth: this run (cameras + weight) beside the"
  echo "   same shelf events decided without the cameras (weight only)"
  evaluate --scenario "$SCENARIO" --run-dir "$RUN" --json "$RUN/evaluation.json" >/dev/null
  replay_weight_only --run-dir "$RUN" --scenario "$SCENARIO" \
    --out "$RUN/weight_only" --json "$RUN/evaluation_columns.json"
else
  echo "== evaluation against the scenario's truth ($what)"
  evaluate --scenario "$SCENARIO" --run-dir "$RUN" --json "$RUN/evaluation.json"
fi
CAMERAS="$CAMERAS" python - "$RUN" <<'EOF'
import json, os, pathlib, sys
from store_review.console import readable_detail
from store_cart.model import REASON_SPOT_CHECK
run = pathlib.Path(sys.argv[1])
ev = json.loads((run / 'evaluation.json').read_text())
n, exact = int(ev['shoppers']), int(ev['receipts_exact'])
print()
print('What the table means:')
if os.environ.get('CAMERAS') == '1':
    cols = json.loads((run / 'evaluation_columns.json').read_text())
    w = cols['weight only']
    print('  cameras + weight: this run, the cart deciding on the fused shelf events (who took it')
    print('         from the cameras, what from the weight and the cameras).')
    print('  weight only: the same recorded shelf events and gate scans decided by the same cart')
    print('         code and parameters without the cameras\' hints, as the weight-only store')
    print('         would (store_bench.replay_weight_only; records in weight_only/). Several')
    print('         shoppers near a shelf means a review there: the gap is the cameras\' worth')
    print(f'         ({exact} vs {w["receipts_exact"]} exact receipts, {ev["review_requests"]} vs '
          f'{w["review_requests"]} reviews).')
    same = all(ev['per_shopper'].get(k, {}).get(f) == v.get(f)
               for k, v in w['per_shopper'].items() for f in ('confirmed', 'pending'))
    if same:
        log = run / 'logs' / 'fusion.log'
        late = log.read_text().count('without the track evidence') if log.exists() else 0
        print('         Here the cameras changed no receipt' + (
            f': {late} of {ev["shelf_events"]} shelf events went on without track\n'
            '         evidence (the tracks came too late, e.g. on a busy machine; see\n'
            '         logs/fusion.log).' if late else '.'))
print(f'  exact  {exact} of {n} receipts ({ev["receipt_exact_match_rate"]:.0%}) list exactly what '
      'their shopper took' + (' in this run.' if os.environ.get('CAMERAS') == '1' else '.'))
print('         A line waiting for a reviewer is not on the receipt yet ("pending"), so its')
print('         receipt is not exact until someone decides the review in the console.')
print('  P, R   of the items on the receipts, the share that was right; of the items taken,')
print('         the share on the receipts. F1 combines both.')
print(f'  events shelf weight changes; reviews: those the machine asked a person about '
      f'({ev["review_rate"]:.0%}).')
print(f'  checks spot checks: decisions the machine made alone that a person is asked to '
      f'confirm ({ev.get("spot_checks", 0)}; on the receipts already).')
for sid, s in sorted(ev['per_shopper'].items()):
    if s.get('exact'):
        continue
    missing = {k: v - s['confirmed'].get(k, 0) for k, v in s['truth'].items()
               if v > s['confirmed'].get(k, 0)}
    extra = {k: v - s['truth'].get(k, 0) for k, v in s['confirmed'].items()
             if v > s['truth'].get(k, 0)}
    why = []
    if missing:
        why.append('missing ' + ', '.join(f'{v} x {k}' for k, v in missing.items()))
    if extra:
        why.append('extra ' + ', '.join(f'{v} x {k}' for k, v in extra.items()))
    if not s.get('receipts'):
        why.append('no receipt (the run ended first)')
    print(f'  {sid}: not exact: {"; ".join(why) or "?"}')
path = run / 'review_requests.jsonl'
reqs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] \
    if path.exists() else []
checks = [r for r in reqs if int(r.get('reason', 0)) == REASON_SPOT_CHECK]
reqs = [r for r in reqs if r not in checks]
for r in reqs:
    who = ', '.join(r.get('shopper_ids') or []) or 'nobody'
    print(f'  pending ({who}): {readable_detail(r.get("detail", ""))[:160]}')
if reqs:
    print('  Each pending review keeps its line off those receipts; the decision issues a')
    print('  corrected revision (log in below and decide it).')
for r in checks:
    print(f'  spot check: {readable_detail(r.get("detail", ""))[:160]}')
if checks:
    print('  A spot check is a decision the machine made alone, on the receipt already; a')
    print('  person confirms or corrects it when there is time (how the system learns how')
    print('  often it is right when it does not ask). Not counted as a review.')
EOF
echo
if [ "$CAMERAS" = "1" ]; then
  echo "== real time on this machine (issue 17's goal; store_bench.live_reach)"
  live_reach --run-dir "$RUN" --store "$STORE" || true
  echo
fi
echo "== files: $RUN/store.png (top-down view after the run), $RUN/sensors_bag (rosbag2/MCAP"
echo "   of the raw sensor topics; replay with: run_store --mode replay --bag $RUN/sensors_bag ...)"
if [ "$CAMERAS" = "1" ]; then
  echo "   $RUN/weight_only (the weight-only column's receipts and reviews)"
fi

# The review console, after the run: kept up until Ctrl-C with the demo reviewer account.
serve=(review_console --db "$DB" --store "$STORE" --cart-db "$RUN/carts.sqlite"
       --port "$CONSOLE_PORT")
echo
echo "== review console: user demo, password $password (this demo database only)"
if [ "$KEEP_CONSOLE" = "1" ] && [ -t 0 ] && [ "${CI:-}" != "true" ]; then
  echo "   serving $DB until Ctrl-C; a decision corrects the receipts in $RUN/carts.sqlite"
  exec "${serve[@]}"
else
  echo "   not started here (no terminal, CI=true or KEEP_CONSOLE=0); serve it with:"
  echo "   ${serve[*]}      (or: make review)"
fi
