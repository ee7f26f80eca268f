"""How the shelf layer groups weight steps of adjacent plates, against the scenario truth.

A unit resting across two plates (a straddle) must be one shelf event; two grabs at once on
adjacent plates (two shoppers, or two hands) must be two. Over generated scenarios (weight path
only: physics -> step detectors -> merger, no cameras, seconds per scenario), prints per level:
straddled takes kept as one event or split, and pairs of concurrent takes, and of concurrent
returns, on adjacent plates (starts within ``--within-s``) kept apart or merged, with and without
the separate-grabs test (``HypothesisRanker.separate_grabs``), side by side.

The generator straddles only takes, so straddled returns are swept instead: every catalogue
product put back across every pair of adjacent plates, its weight shared 20/80 to 80/20, through
the same test; it prints how many would be split (a unit across two plates told apart as two).

    . tools/env.sh && bench_event_merge --seeds 20000:20199 --levels 2,3
"""
from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import replace

from store_common.description import load_store
from store_shelf.pipeline import load_params
from store_sim.generator import generate

from store_bench.fusion_offline import NS, seed_ranges, shelf_events, T0_NS
from store_bench.paths import root_or_exit


def _event_of(events, plate: str, t_s: float):
    """The shelf event on ``plate`` whose start is nearest the action's time (within 3 s)."""
    near = [e for e in events if plate in e.plate_ids
            and -2.5 < t_s - (e.start_ns - T0_NS) / NS < 3.0]
    return min(near, key=lambda e: abs(t_s - (e.start_ns - T0_NS) / NS), default=None)


def grouping(store, scenario, separate: bool, within_s: float) -> Counter:
    """Counts: straddle_one / straddle_split, pair_apart / pair_merged (see the module doc)."""
    params = load_params()
    events = shelf_events(store, scenario,
                          pipeline_params=replace(params, separate_grabs=separate))
    c = Counter()
    takes = [a for s in scenario.shoppers for a in s.actions if a.kind == 'take']
    for a in takes:
        if a.straddle:
            e = _event_of(events, a.plate, a.t_s)
            c['straddle_one' if e is not None and a.straddle in e.plate_ids
              else 'straddle_split'] += 1
    for kind, prefix in (('take', ''), ('return', 'return_')):
        plain = [a for s in scenario.shoppers for a in s.actions
                 if a.kind == kind and not a.straddle]
        for i, a in enumerate(plain):
            for b in plain[i + 1:]:
                adjacent = b.plate in store.adjacent_plates(a.plate, params.adjacent_gap_m)
                if abs(a.t_s - b.t_s) > within_s or not adjacent:
                    continue
                e = _event_of(events, a.plate, a.t_s)
                merged = e is not None and b.plate in e.plate_ids
                c[prefix + ('pair_merged' if merged else 'pair_apart')] += 1
    return c


def straddled_returns(store, shares=(0.2, 0.35, 0.5, 0.65, 0.8)) -> tuple[int, list]:
    """(returns swept, those split): every catalogue product put back across every pair of
    adjacent plates with ``shares`` of its weight on the first, through ``separate_grabs``."""
    from store_shelf.hypotheses import HypothesisRanker, PlateInventory
    from store_shelf.steps import WeightStep
    ranker = HypothesisRanker.from_store(store)
    inventory = PlateInventory.from_store(store)

    def step(plate, grams):
        return WeightStep(plate_id=plate, start_ns=0, settled_ns=NS, before_grams=0.0,
                          after_grams=grams, delta_grams=grams, noise_grams=0.2,
                          detected_ns=2 * NS)
    gap_m = load_params().adjacent_gap_m
    n, split = 0, []
    for a in sorted(store.planogram):
        for b in sorted(store.adjacent_plates(a, gap_m)):
            if b <= a:
                continue
            for sku, product in sorted(store.catalog.products.items()):
                for f in shares:
                    n += 1
                    pair = [step(a, f * product.unit_grams), step(b, (1 - f) * product.unit_grams)]
                    if ranker.separate_grabs(pair, inventory):
                        split.append((sku, a, b, f))
    return n, split


def main(argv=None) -> int:
    root = root_or_exit()
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--store', default=str(root / 'config' / 'stores' / 'demo.yaml'))
    ap.add_argument('--seeds', default='20000:20049', help='first:last seed, comma-separated')
    ap.add_argument('--levels', default='2,3')
    ap.add_argument('--within-s', type=float, default=1.0,
                    help='two grabs count as concurrent when their times are this close [s]')
    ns = ap.parse_args(argv)
    store = load_store(ns.store)
    seeds = seed_ranges(ns.seeds)
    print(f'{"level":6} {"separate":9} {"straddles one":>14} {"split":>6} '
          f'{"take pairs apart":>17} {"merged":>7} {"return pairs apart":>19} {"merged":>7}')
    for level in (int(x) for x in ns.levels.split(',')):
        totals = {True: Counter(), False: Counter()}
        for seed in seeds:
            sc = generate(store, seed, level)
            for sep in (False, True):
                totals[sep].update(grouping(store, sc, sep, ns.within_s))
        for sep in (False, True):
            c = totals[sep]
            print(f'{level:<6} {"on" if sep else "off":9} {c["straddle_one"]:14d} '
                  f'{c["straddle_split"]:6d} {c["pair_apart"]:17d} {c["pair_merged"]:7d} '
                  f'{c["return_pair_apart"]:19d} {c["return_pair_merged"]:7d}')
    print(f'store {ns.store}, seeds {ns.seeds} ({len(seeds)} scenarios per level)')
    n, split = straddled_returns(store)
    print(f'straddled returns (every product across every adjacent pair, shares 20-80 %): '
          f'{len(split)} of {n} split')
    for sku, a, b, f in split:
        print(f'  {sku} across {a} / {b}, {f:.0%} on {a}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
