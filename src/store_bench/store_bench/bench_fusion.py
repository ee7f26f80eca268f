"""Benchmark: weight-only vs vision-only vs fused, per difficulty level, with ECE.

    . tools/env.sh && nice bench_fusion [--seeds 9100:9114] [--levels 0,1,2,3] \
        [--fps 5] [--gt-cache out/fusion/gt] [--stats FILE] [--render-missing] [--no-joint] \
        [--draws 1] [--min-confidence C] [--min-margin M] [--fused-min-confidence C] \
        [--product-shopper-weight W] [--one-view-hand-weight W] [--tracking-only] \
        [--params config/params/store.yaml] \
        [--out out/fusion/bench_fusion.json]

Vision path: the store_sim renderer's ground-truth boxes per camera frame (cached; rendering
takes ~0.05 s per camera frame) -> store_bench.simcam.DetectionModel (miss rate, false
positives, box noise, SKU accuracy from --stats, else the ASSUMED figures, printed) ->
ShopperTracker -> fusion -> cart, with the tracker:, fusion: and cart: parameters of --params
(the file the live graph's nodes read; the command line overrides a few). Weight path:
physics -> shelf events as in store_bench.review_offline.
Receipt exact match is before any review: revision 1, pending lines billed as guessed.
ECE: 10 equal-width bins of the fused joint confidence (P(shopper) x P(hypothesis)) against
"top shopper and top product hypothesis (sku, action, quantity) are the truth".
Concurrent shelf events are decided jointly (``store_fusion.joint``) unless --no-joint.
--draws K runs each scenario's vision path K times with independent detector noise (misses,
false positives, box noise, SKU errors) and pools them: with 13 scenarios a level, one draw
moves a level's figures by several points, so compare detectors over several draws.
Tracking: per shopper-frame of the rendered truth, is the track bound to that shopper's account
within 0.5 m of them ("right"), on another shopper ("swapped": their events follow it), elsewhere
("off"), or not there ("missing": before the entrance scan is bound, after a track is lost);
--tracking-only prints just that (seconds per scenario).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time
from collections import Counter

from store_cart.engine import cart_params_of, fused_params
from store_common.description import load_store
from store_common.params import load_params_file
from store_fusion.calibration import ece, fit_platt, Platt
from store_fusion.geometry import StoreGeometry
from store_fusion.params import load_pipeline_params
from store_sim.evaluator import aggregate, before_review, evaluate
from store_sim.generator import generate

from store_bench.fusion_offline import action_code, identity_census, MODES, run_modes, \
    run_tracking, seed_ranges, shelf_events, truth_of_event
from store_bench.paths import root_or_exit
from store_bench.simcam import DetectionModel, load_or_render_truth, measured_stats, \
    shopper_colors, truth_cache_path


def _score(sc, events, runs, level_rows: dict[str, list], conf_pairs: list) -> None:
    """Append one run's metrics per mode and the fused (confidence, right, reviewed) pairs."""
    evd = [e.to_dict() for e in events]
    for m in MODES:
        level_rows.setdefault(m, []).append(
            evaluate(sc, before_review([r.to_dict() for r in runs[m].receipts]),
                     [q.to_dict() for q in runs[m].requests], evd))
    reviewed = {q.event_id for q in runs['fused'].requests}
    for ev, res in runs['fused'].decisions:
        tr = truth_of_event(sc, ev)
        h = res.hypotheses[0] if res.hypotheses else None
        ok = bool(tr and res.shoppers and res.shoppers[0].shopper_id == tr[0] and h
                  and h.sku == tr[1].sku and h.quantity == tr[1].quantity
                  and h.action == action_code(tr[1]))
        conf_pairs.append((min(1.0, max(0.0, res.confidence)), ok, ev.event_id in reviewed))


def _census_lines(census: dict[int, Counter]) -> list[str]:
    """The tracker's identity census per level (``offline.identity_census``), as printed."""
    out = [f'{"tracking":8} {"level":6} {"shopper-frames":>14} {"right":>7} {"swapped":>8} '
           f'{"off":>6} {"missing":>8}']
    total = Counter()
    for level in sorted(census):
        total.update(census[level])
    for level, c in [*sorted(census.items()), ('all', total)]:
        n = max(1, c['shopper_frames'])
        out.append(f'{"":8} {str(level):6} {c["shopper_frames"]:14d} {c["ok"] / n:7.1%} '
                   f'{c["swap"] / n:8.2%} {c["off"] / n:6.1%} {c["missing"] / n:8.1%}')
    return out


def main(argv=None) -> int:
    root = root_or_exit()
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--store', default=str(root / 'config/stores/demo.yaml'))
    ap.add_argument('--params', default=str(root / 'config/params/store.yaml'),
                    help="the graph's parameters file: the tracker and fusion run with its "
                    "tracker: and fusion: sections, as the nodes do")
    ap.add_argument('--seeds', default='9100:9114',
                    help='first:last seed (inclusive); several ranges comma-separated')
    ap.add_argument('--levels', default='0,1,2,3')
    ap.add_argument('--fps', type=float, default=5.0)
    ap.add_argument('--gt-cache', default=str(root / 'out/fusion/gt'))
    ap.add_argument('--stats', default=None, help='measured detector stats JSON')
    ap.add_argument('--render-missing', action='store_true',
                    help='render ground truth that is not cached (slow); default: skip')
    ap.add_argument('--calibration', default=None,
                    help='Platt calibration JSON applied to the fused confidence (ECE after); '
                    "default: the fusion node's calibration_file in --params")
    ap.add_argument('--fit-calibration', default='',
                    help='fit Platt scaling on these scenarios and write it here (tuning seeds)')
    ap.add_argument('--no-color', action='store_true',
                    help='shopper boxes without torso colour (no appearance cue)')
    ap.add_argument('--no-joint', action='store_true',
                    help='decide every shelf event on its own (no joint reasoning over '
                    'concurrent events)')
    ap.add_argument('--min-confidence', type=float, default=None,
                    help='cart: posterior needed to apply a decision without review (default: '
                    "the cart: section of --params)")
    ap.add_argument('--min-margin', type=float, default=None,
                    help='cart: lead over the second explanation needed, same')
    ap.add_argument('--fused-min-confidence', type=float, default=None,
                    help="the fused mode's review threshold (the cart node's "
                    'fused_min_confidence; default: --params); -1: --min-confidence')
    ap.add_argument('--sku-accuracy', type=float, default=None,
                    help="fusion's P(a product box's SKU is right) (default: --params)")
    ap.add_argument('--product-shopper-weight', type=float, default=None,
                    help="fusion's weight of the SKUs in a shopper's hands as evidence of who "
                    "(0: off; default: --params)")
    ap.add_argument('--one-view-hand-weight', type=float, default=None,
                    help="fusion's weight of a hand seen by one camera against a triangulated "
                    "one (default: --params)")
    ap.add_argument('--tracking-only', action='store_true',
                    help='only the identity census of the tracker (fast): no events decided')
    ap.add_argument('--draws', type=int, default=1,
                    help='independent detector-noise draws per scenario, pooled (default 1)')
    ap.add_argument('--out', default=str(root / 'out/fusion/bench_fusion.json'))
    ns = ap.parse_args(argv)
    if ns.draws < 1:
        ap.error(f'--draws must be at least 1, got {ns.draws}')
    store = load_store(ns.store)
    geom = StoreGeometry(store)
    stats = measured_stats(ns.stats)
    try:
        pipeline = load_pipeline_params(ns.params)
    except ValueError as e:
        ap.error(str(e))
    joint = dataclasses.replace(pipeline.joint, max_group=1) if ns.no_joint else pipeline.joint
    fusion = dataclasses.replace(pipeline.fusion, **{k: v for k, v in (
        ('sku_accuracy', ns.sku_accuracy),
        ('product_shopper_weight', ns.product_shopper_weight),
        ('one_view_hand_weight', ns.one_view_hand_weight)) if v is not None})
    if ns.calibration is None:
        ns.calibration = pipeline.nodes['fusion'].get('calibration_file', '')
    try:
        # the cart node's thresholds, from the same file unless given
        node = load_params_file(ns.params).get('cart', {})
        cart = cart_params_of({**node, **{k: v for k, v in (
            ('min_confidence', ns.min_confidence), ('min_margin', ns.min_margin))
            if v is not None}})
        fused_cart = fused_params(cart, float(node.get('fused_min_confidence', -1.0)
                                              if ns.fused_min_confidence is None
                                              else ns.fused_min_confidence))
    except ValueError as e:
        ap.error(str(e))
    try:
        seeds = seed_ranges(ns.seeds)
    except ValueError as e:
        ap.error(str(e))
    levels = [int(x) for x in ns.levels.split(',')]
    rows: dict[int, dict[str, list]] = {}
    census: dict[int, Counter] = {}
    conf_pairs = []
    skipped = []
    for level in levels:
        for seed in seeds:
            sc = generate(store, seed, level)
            if not ns.render_missing and not truth_cache_path(ns.gt_cache, store, sc,
                                                              ns.fps).exists():
                skipped.append(f'l{level}:s{seed}')
                continue
            t0 = time.monotonic()
            frames = load_or_render_truth(ns.gt_cache, store, sc, ns.fps)
            events = [] if ns.tracking_only else shelf_events(store, sc)
            colors = None if ns.no_color else shopper_colors(store, sc)
            for draw in range(ns.draws):
                model = DetectionModel(stats, list(store.catalog.products),
                                       seed=seed * 31 + level + 7919 * draw, colors=colors,
                                       confusion=fusion.sku_confusion)
                history, _ = run_tracking(store, sc, frames, model,
                                          tracker_params=pipeline.tracker)
                census.setdefault(level, Counter()).update(identity_census(frames, history))
                if ns.tracking_only:
                    continue
                runs = run_modes(store, sc, events, history, geom, cart_params=cart,
                                 fusion_params=fusion, joint_params=joint,
                                 fused_cart_params=fused_cart)
                _score(sc, events, runs, rows.setdefault(level, {}), conf_pairs)
            print(f'l{level} s{seed}: {len(events)} events x {ns.draws} draws, '
                  f'{time.monotonic() - t0:.1f} s', file=sys.stderr)
    if not census:
        print(f'error: no scenario ran: {len(skipped)} not rendered in {ns.gt_cache} '
              f'({", ".join(skipped[:6])}{" ..." if len(skipped) > 6 else ""}); render them '
              'with --render-missing or name a --gt-cache that holds them', file=sys.stderr)
        return 1
    tracking = _census_lines(census)
    if ns.tracking_only:
        print('\n'.join(tracking))
        return 0
    header = f'{"mode":8} {"level":6} {"runs":>4} {"shop":>4} {"exact%":>7} {"F1":>6} ' \
             f'{"events":>6} {"review%":>8}'
    lines = [header, '-' * len(header)]
    doc = {'detector_stats': stats.to_dict(), 'skipped_not_rendered': skipped,
           'cart': dataclasses.asdict(cart), 'fused_cart': dataclasses.asdict(fused_cart),
           'draws': ns.draws,
           'joint': dataclasses.asdict(joint), 'modes': {},
           'tracking': {str(k): dict(v) for k, v in census.items()}}
    for m in MODES:
        doc['modes'][m] = {}
        for level in sorted(rows) + ['all']:
            mets = ([x for lv in rows.values() for x in lv.get(m, [])] if level == 'all'
                    else rows[level].get(m, []))
            agg = aggregate(mets)
            doc['modes'][m][str(level)] = {k: v for k, v in agg.items()}
            lines.append(f'{m:8} {str(level):6} {agg["runs"]:4d} {agg["shoppers"]:4d} '
                         f'{agg["receipt_exact_match_rate"]:7.1%} {agg["f1"]:6.3f} '
                         f'{agg["shelf_events"]:6d} {agg["review_rate"]:8.1%}')
    cal = Platt.load(ns.calibration)
    if ns.fit_calibration:
        cal = fit_platt([(c, ok) for c, ok, _ in conf_pairs])
        cal.save(ns.fit_calibration)
        print(f'Platt calibration a={cal.a:.3f} b={cal.b:.3f} fitted on {cal.n} events '
              f'-> {ns.fit_calibration}')
    all_ece = ece([(c, ok) for c, ok, _ in conf_pairs])
    cal_ece = ece([(cal(c), ok) for c, ok, _ in conf_pairs])
    doc['calibration'] = cal.to_dict()
    doc['ece_fused_calibrated'] = cal_ece
    auto = [(c, ok) for c, ok, r in conf_pairs if not r]
    doc['ece_fused_all_events'] = all_ece
    doc['ece_fused_auto_decided'] = ece(auto)
    doc['auto_decided'] = len(auto)
    doc['auto_decided_accuracy'] = (sum(ok for _, ok in auto) / len(auto)) if auto else None
    print('\n'.join(lines + tracking))
    print(f'ECE of the fused confidence: {all_ece:.3f} over {len(conf_pairs)} events; '
          f'auto-decided events: {len(auto)}, accuracy '
          f'{doc["auto_decided_accuracy"] or 0:.3f}, ECE {doc["ece_fused_auto_decided"]:.3f}')
    print(f'ECE after calibration (a={cal.a:.3f}, b={cal.b:.3f}, fitted on {cal.n}): '
          f'{cal_ece:.3f}')
    print(f'seeds {ns.seeds}, levels {ns.levels}, {ns.draws} detector draw(s) each; colour cue '
          f'{"off" if ns.no_color else "on (assumed colour noise)"}; joint over concurrent '
          f'events {"off" if ns.no_joint else "on"}; review below confidence '
          f'{cart.min_confidence:g} (fused {fused_cart.min_confidence:g}) or margin '
          f'{cart.min_margin:g}')
    print(f'vision path: rendered ground-truth boxes -> detection model ({stats.source})')
    if skipped:
        print(f'skipped (ground truth not rendered; --render-missing): {len(skipped)} scenarios')
    out = pathlib.Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str) + '\n')
    print(f'written {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
