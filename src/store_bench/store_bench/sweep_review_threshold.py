"""Pick the cart's review threshold for the fused store from tuning scenarios.

Reads bench_fusion JSON outputs made with different ``--fused-min-confidence`` (or
``--min-confidence``) on the *tuning* seeds (never the held-out ones), pools them per threshold
and prints, for each threshold, the fused receipt exact-match rate, review rate and the accuracy
of the events decided without review.
The pick is the lowest threshold whose auto-decided accuracy stays at or above ``--min-auto``:
the cart may guess only where its guesses are that reliable.

    . tools/env.sh && sweep_review_threshold out/fusion/tune_thr/*.json \\
        [--levels 2,3] [--min-auto 0.98]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections import defaultdict


def pooled(docs: list[dict], levels: list[str]) -> dict:
    """Sum the fused counts of these bench outputs over the levels."""
    out = defaultdict(float)
    for d in docs:
        for lv in levels:
            m = d['modes']['fused'].get(lv)
            if m is None:
                raise ValueError(f'level {lv} missing from a bench output (run it with it)')
            for k in ('shoppers', 'receipts_exact', 'shelf_events', 'review_requests'):
                out[k] += m[k]
        # auto-decided events over all levels of the run: accuracy x count (outputs written
        # before bench_fusion counted them: every event not reviewed was decided alone)
        every = d['modes']['fused']['all']
        n_auto = d.get('auto_decided', every['shelf_events'] - every['review_requests'])
        out['auto'] += n_auto
        out['auto_right'] += n_auto * (d['auto_decided_accuracy'] or 0.0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('outputs', nargs='+', help='bench_fusion --out JSON files (tuning seeds)')
    ap.add_argument('--levels', default='2,3')
    ap.add_argument('--min-auto', type=float, default=0.98,
                    help='lowest acceptable accuracy of the events decided without review')
    ns = ap.parse_args(argv)
    by_thr: dict[tuple, list] = defaultdict(list)
    for f in ns.outputs:
        try:
            d = json.loads(pathlib.Path(f).read_text())
            cart = d.get('fused_cart') or d['cart']
            key = (cart['min_confidence'], cart['min_margin'])
        except (OSError, ValueError, KeyError) as e:
            print(f'{f}: not a bench_fusion output with cart thresholds ({e})', file=sys.stderr)
            return 2
        by_thr[key].append(d)
    levels = ns.levels.split(',')
    print(f'{"min_conf":>8} {"margin":>6} {"shoppers":>8} {"exact%":>7} {"events":>6} '
          f'{"review%":>8} {"auto":>5} {"auto acc":>8}')
    pick = None          # the lowest threshold that keeps the guesses reliable enough
    for key in sorted(by_thr):
        try:
            s = pooled(by_thr[key], levels)
        except (KeyError, TypeError, ValueError) as e:
            print(f'threshold {key}: {e}', file=sys.stderr)
            return 2
        acc = s['auto_right'] / s['auto'] if s['auto'] else 0.0
        print(f'{key[0]:8.2f} {key[1]:6.2f} {int(s["shoppers"]):8d} '
              f'{s["receipts_exact"] / s["shoppers"]:7.1%} {int(s["shelf_events"]):6d} '
              f'{s["review_requests"] / s["shelf_events"]:8.1%} {int(s["auto"]):5d} {acc:8.3f}')
        if pick is None and acc >= ns.min_auto:
            pick = key
    if pick is None:
        print(f'no threshold keeps auto-decided accuracy >= {ns.min_auto}')
        return 1
    print(f'pick: min_confidence {pick[0]:g}, min_margin {pick[1]:g} (lowest with auto-decided '
          f'accuracy >= {ns.min_auto} on levels {ns.levels})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
