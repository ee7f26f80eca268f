#!/usr/bin/env python3
"""Learning days for the hand/product classifier alone: reviewed events -> fine-tuned classifier.

    bench_hand_learning [--days 2] [--scenarios 10] [--seed 1100] \
        [--review-share 0.3] [--epochs 3] [--nearest-hand] [--any-hand] [--compare-labels] \
        [--work out/bench_hand_learning]

Each day is ``--scenarios`` generated scenarios (levels 2 and 3 alternating, seeds from
``--seed``); a share ``--review-share`` of their truth actions (drawn with a fixed seed) stands
for the events reviewers decided, answered right (the truth's SKU and shopper; the settled stamp
0.6 s after the action's ``t_s``). Each day calls ``store_bench.review_crops.learn_classifier``
with the previous day's result, as the learning-days experiment does, and prints its report line:
the held-out product recall, SKU accuracy and false products per image of the shipped classifier
and of the one fine-tuned on everything reviewed so far, and the time the call took (the machine
is shared: say 'loaded' beside it).

With ``--compare-labels`` nothing is fine-tuned: the days' decided events are rendered once and
exported by each of the export's rules for which hand holds the reviewed product (nearest the
plate; the named shopper's; the named shopper's that the shipped classifier sees a product in),
and a table prints how many windows each rule labels, and how many agree with the renderer's
truth.
"""
from __future__ import annotations

import argparse
import pathlib
import random
import sys
import time

from store_common.description import load_store
from store_sim.generator import generate

from store_bench.fusion_offline import NS, T0_NS
from store_bench.paths import root_or_exit
from store_bench.review_crops import compare_labels, labels_table, learn_classifier

ROOT = root_or_exit()      # the checkout: config/ and out/ (store_bench.paths)


def decided_of(scenario, share: float, rng: random.Random) -> list[dict]:
    """A ``share`` of the scenario's actions as decided review items (truth answers)."""
    out = []
    for s in scenario.shoppers:
        for a in s.actions:
            if rng.random() < share:
                out.append({'scenario_seed': scenario.seed, 'level': scenario.meta.get('level'),
                            'stamp_ns': T0_NS + int(round((a.t_s + 0.6) * NS)),
                            'plate_ids': list(a.plates), 'sku': a.sku, 'shopper_id': s.id})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--store', default=str(ROOT / 'config' / 'stores' / 'demo.yaml'))
    ap.add_argument('--days', type=int, default=2)
    ap.add_argument('--scenarios', type=int, default=10, help='scenarios per day')
    ap.add_argument('--seed', type=int, default=1100, help='first scenario seed')
    ap.add_argument('--review-share', type=float, default=0.3,
                    help='share of the actions that reviewers decided')
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--cameras-per-event', type=int, default=2)
    ap.add_argument('--nearest-hand', action='store_true',
                    help="label the reviewed product in the hand nearest the plate, without "
                    "asking the shipped classifier which hand shows it (review_learn "
                    "--nearest-hand)")
    ap.add_argument('--any-hand', action='store_true',
                    help="a reviewed product may be in any shopper's hand near the plate (the "
                    "export before it knew whose hand is whose)")
    ap.add_argument('--compare-labels', action='store_true',
                    help="no fine-tuning: render the days' reviewed events once and print "
                    "how often each of the export's hand rules labels a window as the "
                    "renderer's truth does (store_bench.review_crops.compare_labels)")
    ap.add_argument('--work', default=str(ROOT / 'out' / 'bench_hand_learning'))
    args = ap.parse_args(argv)
    store = load_store(args.store)
    rng = random.Random(f'bench_hand_learning/{args.seed}')
    work = pathlib.Path(args.work)
    prev = None
    seed = args.seed
    days = []
    for day in range(1, args.days + 1):
        scenarios = []
        for _ in range(args.scenarios):
            scenarios.append(generate(store, seed, 2 + seed % 2))
            seed += 1
        decided = [d for sc in scenarios for d in decided_of(sc, args.review_share, rng)]
        if args.compare_labels:
            days.append((scenarios, decided))
            continue
        start = time.monotonic()
        prev = learn_classifier(store, scenarios, decided, work / f'day{day}', prev,
                                epochs=args.epochs, cameras_per_event=args.cameras_per_event,
                                choose_hand=not args.nearest_hand, by_owner=not args.any_hand,
                                log=lambda m: print(f'  {m}', file=sys.stderr))
        print(f'day {day}: {len(decided)} decided events; {prev["report"]}; call '
              f'{time.monotonic() - start:.0f} s (loaded)', flush=True)
    if days:
        scenarios = [sc for d in days for sc in d[0]]
        decided = [x for d in days for x in d[1]]
        got = compare_labels(store, scenarios, decided, work / 'labels',
                             cameras_per_event=args.cameras_per_event,
                             log=lambda m: print(f'  {m}', file=sys.stderr))
        print(f'{len(decided)} decided events of {len(scenarios)} scenarios (seeds '
              f'{args.seed}-{seed - 1}), hand windows labelled by each rule against the '
              f"renderer's truth:\n{labels_table(got)}", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
