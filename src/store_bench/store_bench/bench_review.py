"""Benchmark of human review and learning: receipt accuracy and review rate over simulated days.

    . tools/env.sh && bench_review [--days 5] [--per-day 10] [--level 2] \
        [--target-accuracy 0.995] [--credibility 0.9] [--reviewer-error 0.0] \
        [--reviewer-delay-s 20] [--spot-check-fraction 0.05] [--out out/bench_review]

Each day is a batch of generated scenarios (seeds never used before: every day is held out from
the learning that precedes it) played through the weight pipeline offline with the same pure
modules the nodes use (store_bench.review_offline). The simulator's true unit weights are offset
from the catalog per SKU (PhysicsParams.catalog_bias), so the catalog is wrong and there is
something to learn. A simulated reviewer answers every request from the scenario's truth.
Between days the labelled examples so far re-fit the per-SKU weight models (the shelf's
overlay) and re-tune min_confidence/min_margin to the same accuracy target (the cart's
thresholds file).

Per day: receipt exact-match before review (revision 1, pending lines billed as guessed), after
review (latest revision), review rate (requests / shelf events), thresholds in force. Writes
<out>/bench_review.json and <out>/bench_review.png. Prints figures; it is not a test.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import random
import sys
import time

from store_cart.engine import CartParams
from store_common.description import load_store
from store_review.learning import (CREDIBILITY, fit_weight_models, labelled_pairs,
                                   population_pairs, tune_thresholds)
from store_sim.evaluator import evaluate
from store_sim.generator import generate
from store_sim.physics import PhysicsParams

from store_bench.paths import root_or_exit
from store_bench.review_offline import run_scenario


def catalog_bias(store, seed: int, scale_sd: tuple[float, float]) -> tuple:
    """Per SKU: the true mean is off the catalog by +-U(scale) unit standard deviations."""
    rng = random.Random(seed)
    out = []
    for sku, p in sorted(store.catalog.products.items()):
        out.append((sku, round(rng.choice((-1, 1)) * rng.uniform(*scale_sd)
                               * p.unit_grams_sd, 2)))
    return tuple(out)


def receipts_as_dicts(receipts, first_only: bool, bill_pending: bool) -> list[dict]:
    out = []
    for r in receipts:
        if first_only and r.revision != 1:
            continue
        d = r.to_dict()
        if bill_pending:
            d['lines'] = [dict(ln, status=1) for ln in d['lines']]
            d['pending_reviews'] = 0
        out.append(d)
    return out


def plot(days: list[dict], path: pathlib.Path) -> None:
    xs = [d['day'] for d in days]
    series = [('receipt accuracy before review', [d['accuracy_before'] for d in days], 'C0'),
              ('receipt accuracy after review', [d['accuracy_after'] for d in days], 'C2'),
              ('review rate', [d['review_rate'] for d in days], 'C3')]
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        for label, ys, c in series:
            ax.plot(xs, ys, 'o-', label=label, color=c)
        ax.set_xlabel('simulated day (learning from the previous days\' reviews)')
        ax.set_ylabel('share')
        ax.set_ylim(0, 1.05)
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
        ax.legend(loc='center right')
        ax.set_title('Review rate falls as the store learns from reviewers\' answers')
        fig.tight_layout()
        fig.savefig(path)
        return
    except ImportError:
        pass
    import cv2
    import numpy as np
    w, h, m = 760, 420, 60
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.rectangle(img, (m, 20), (w - 20, h - m), (0, 0, 0), 1)
    colors = {'C0': (180, 119, 31), 'C2': (44, 160, 44), 'C3': (40, 39, 214)}
    span = max(1, xs[-1] - xs[0])
    for k, (label, ys, c) in enumerate(series):
        pts = [(int(m + (x - xs[0]) / span * (w - m - 20)), int(h - m - y * (h - m - 20)))
               for x, y in zip(xs, ys)]
        for a, b in zip(pts, pts[1:]):
            cv2.line(img, a, b, colors[c], 2)
        for p in pts:
            cv2.circle(img, p, 4, colors[c], -1)
        cv2.putText(img, label, (m + 10, 40 + 18 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    colors[c], 1)
    cv2.imwrite(str(path), img)


def main(argv=None) -> int:
    root = root_or_exit()
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--store', default=str(root / 'config' / 'stores' / 'demo.yaml'))
    ap.add_argument('--days', type=int, default=6)
    ap.add_argument('--per-day', type=int, default=15, help='scenarios per day')
    ap.add_argument('--level', type=int, default=2, help='generator difficulty 0..3')
    ap.add_argument('--max-concurrent', type=int, default=1,
                    help='shoppers inside at once (weight alone cannot tell who when > 1)')
    ap.add_argument('--seed', type=int, default=50000, help='first scenario seed')
    ap.add_argument('--target-accuracy', type=float, default=0.995)
    ap.add_argument('--credibility', type=float, default=CREDIBILITY,
                    help="as review_learn's (default %(default)s; 0: on the mean)")
    ap.add_argument('--reviewer-error', type=float, default=0.0)
    ap.add_argument('--reviewer-delay-s', type=float, default=20.0)
    ap.add_argument('--spot-check-fraction', type=float, default=0.05,
                    help='share of the events decided without review that the cart puts to '
                    'the reviewer anyway')
    ap.add_argument('--bias-sd', type=float, nargs=2, default=(3.0, 6.0),
                    help='true unit weight off the catalog by this many sd (range)')
    ap.add_argument('--no-learning', action='store_true', help='baseline: never learn')
    ap.add_argument('--out', default=str(root / 'out' / 'bench_review'))
    args = ap.parse_args(argv)

    store = load_store(args.store)
    bias = catalog_bias(store, 7, tuple(args.bias_sd))
    phys = PhysicsParams(catalog_bias=bias)
    cart = CartParams()
    overlay = None
    examples: list[dict] = []
    events: list[dict] = []
    days = []
    t_start = time.monotonic()
    for day in range(args.days):
        runs = []
        for i in range(args.per_day):
            seed = args.seed + day * 1000 + i
            scenario = generate(store, seed, args.level, max_concurrent=args.max_concurrent)
            run = run_scenario(store, scenario, overlay=overlay, cart_params=cart,
                               physics_params=phys, reviewer_delay_s=args.reviewer_delay_s,
                               reviewer_error_rate=args.reviewer_error,
                               spot_check_fraction=args.spot_check_fraction, seed=seed)
            before = evaluate(scenario, receipts_as_dicts(run.receipts, True, True))
            after = evaluate(scenario, receipts_as_dicts(run.receipts, False, False),
                             [r.to_dict() for r in run.requests], run.shelf_events)
            runs.append((run, before, after))
        shoppers = sum(a['shoppers'] for _, _, a in runs)
        n_events = sum(len(r.shelf_events) for r, _, _ in runs)
        n_req = sum(len(r.requests) for r, _, _ in runs)
        row = {
            'day': day, 'scenarios': len(runs), 'shoppers': shoppers, 'shelf_events': n_events,
            'review_requests': n_req, 'review_rate': n_req / n_events if n_events else 0.0,
            'accuracy_before': sum(b['receipts_exact'] for _, b, _ in runs) / shoppers,
            'accuracy_after': sum(a['receipts_exact'] for _, _, a in runs) / shoppers,
            'revisions': sum(1 for r, _, _ in runs for x in r.receipts if x.revision > 1),
            'spot_checks': sum(r.spot_checks for r, _, _ in runs),
            'min_confidence': cart.min_confidence, 'min_margin': cart.min_margin,
            'learned_skus': len(overlay or {}),
        }
        days.append(row)
        for run, _, _ in runs:
            examples.extend(run.examples)
            events.extend(run.shelf_events)
        if not args.no_learning:
            models = fit_weight_models(store.catalog, examples)
            overlay = {sku: {'unit_grams': m.mu, 'unit_grams_sd': m.sd}
                       for sku, m in models.items()}
            th = tune_thresholds(labelled_pairs(examples), population_pairs(events),
                                 target_accuracy=args.target_accuracy,
                                 credibility=args.credibility or None)
            cart = CartParams(min_confidence=th.min_confidence, min_margin=th.min_margin)
        print(f'day {day} done ({time.monotonic() - t_start:.0f} s)', file=sys.stderr)

    hdr = (f'{"day":>3} {"scen":>4} {"shop":>4} {"events":>6} {"reviews":>7} {"rate":>6} '
           f'{"acc_before":>10} {"acc_after":>9} {"revs":>4} {"min_conf":>8} {"min_margin":>10}'
           f' {"skus":>4}')
    print(f'review benchmark: level {args.level}, {args.per_day} scenarios/day, target accuracy'
          f' {args.target_accuracy} (credibility {args.credibility:g}), reviewer error '
          f'{args.reviewer_error}, delay '
          f'{args.reviewer_delay_s:g} s, spot checks {args.spot_check_fraction}, catalog bias '
          f'{args.bias_sd[0]:g}-{args.bias_sd[1]:g} sd')
    print(hdr)
    for d in days:
        print(f'{d["day"]:>3} {d["scenarios"]:>4} {d["shoppers"]:>4} {d["shelf_events"]:>6} '
              f'{d["review_requests"]:>7} {d["review_rate"]:>6.3f} {d["accuracy_before"]:>10.3f}'
              f' {d["accuracy_after"]:>9.3f} {d["revisions"]:>4} {d["min_confidence"]:>8.3f} '
              f'{d["min_margin"]:>10.2f} {d["learned_skus"]:>4}')
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'bench_review.json').write_text(json.dumps(
        {'args': vars(args), 'catalog_bias': dict(bias), 'days': days}, indent=2))
    plot(days, out / 'bench_review.png')
    print(f'wrote {out / "bench_review.json"} and {out / "bench_review.png"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
