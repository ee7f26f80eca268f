"""What the fusion makes of the live detector's output, under other fusion parameters: the
tracker trace of live runs (``bench_live_graph --trace``) replayed through the tracker and the
fusion node's logic, offline, once per variant.

The live graph's detections are what a variant of the fusion (another SKU confusion model,
vote cap, ...) would have seen, so each variant is scored on the same frames, paired: each
run's ``tracker_trace.jsonl`` is stepped through a fresh tracker (``store_fusion.trace``; its
clock moved from the run's ROS time to the offline one by the run's ``scenario_clock.json``),
and the scenario's shelf events go through the shelf node's pipeline offline
(``fusion_offline.shelf_events``: the same physics as the live sim node). Each event's
decision is scored against the scenario's truth (``fusion_offline.truth_of_event``) with the
cart's bars (``--min-confidence``, ``--min-margin``; ``decision_features``):

* events, and those with product evidence in the deciding shopper's hands (vision);
* reviewed: the share the bars send to review;
* unreviewed right: the share of the others whose shopper, product, action and quantity are
  the truth's; and the wrong ones above the bars, listed with their posteriors;
* product right among the events with vision evidence, and the mean log posterior of the true
  product there (higher: better calibrated product evidence).

    . tools/env.sh
    bench_vision_replay out/live_conf/L3_s20303 out/live_conf/L3_s20307 ... \
        --variant even=fusion.sku_confusion_file= [--variant NAME=SECTION.PARAM=VALUE ...]

A variant sets fusion or tracker parameters (``tracker.hand_reach_m=0``: the tracker is replayed
once per distinct tracker variant). Traces written before the tracker recorded the age of
carried-over shopper boxes get it inferred (``store_fusion.trace.infer_carried_ages``).

The variant ``live`` is the parameters file as it is (what the live graph ran). Not the live
figure itself: the replayed tracker sees each step's detections once the step is taken, as
live, but the offline fusion gets every track message before any late shelf event; the live
run's own table (``bench_live_graph``) stands beside it.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from dataclasses import astuple, dataclass, field


from store_bringup.runner import parse_set
from store_cart.engine import decision_features
from store_common.description import load_store
from store_common.params import load_params_file
from store_fusion.fusion import FusionParams, TrackHistory
from store_fusion.geometry import StoreGeometry
from store_fusion.params import FUSION_SPECS, from_values, load_pipeline_params, TRACKER_SPECS, \
    with_confusion
from store_fusion.trace import infer_carried_ages, read_trace, replay
from store_fusion.tracker import ShopperTracker, TrackerParams
from store_sim.scenario import load_scenario

from store_bench.fusion_offline import (action_code, fuse_offline, record_tracks,
                                        shelf_events, T0_NS, truth_of_event)
from store_bench.evaluate import sku_shape
from store_bench.paths import root_or_exit


@dataclass
class Tally:
    events: int = 0
    vision: int = 0
    reviewed: int = 0
    unreviewed_right: int = 0
    product_right_vision: int = 0
    log_true_vision: list = field(default_factory=list)
    wrong_unreviewed: list = field(default_factory=list)
    reviewed_events: list = field(default_factory=list)
    # group (e.g. the true SKU's shape) -> {SEEN_OUTCOMES[k]: events}
    seen_by_group: dict = field(default_factory=dict)

    def row(self) -> dict:
        un = self.events - self.reviewed
        return {'events': self.events, 'vision': self.vision,
                'reviewed_pct': 100.0 * self.reviewed / max(1, self.events),
                'unreviewed_right_pct': 100.0 * self.unreviewed_right / max(1, un),
                'unreviewed_wrong': un - self.unreviewed_right,
                'product_right_vision_pct': 100.0 * self.product_right_vision
                / max(1, self.vision),
                'mean_log_true_vision': (sum(self.log_true_vision)
                                         / max(1, len(self.log_true_vision)))}


def replay_history(store, trace_path: pathlib.Path, tracker_params, offset_ns: int
                   ) -> TrackHistory:
    """The track history the live tracker would give on a run's traced steps, on the offline
    clock (every stamp minus ``offset_ns``)."""
    steps = read_trace(trace_path)
    infer_carried_ages(steps)       # traces written before the tracker recorded box ages
    for rec in steps:
        rec['stamp_ns'] = int(rec['stamp_ns']) - offset_ns
        rec['gates'] = [[int(stamp) - offset_ns, kind, sid] for stamp, kind, sid in rec['gates']]
    history = TrackHistory(keep_s=1e9)
    replay(ShopperTracker(store, tracker_params), steps,
           lambda rec, tracks: record_tracks(history, rec['stamp_ns'], tracks))
    return history


def run_offset_ns(run_dir: pathlib.Path) -> int:
    """ROS time of the run's scenario t = 0 minus the offline one (``scenario_clock.json``)."""
    path = run_dir / 'scenario_clock.json'
    try:
        return int(json.loads(path.read_text())['scenario_start_ros_ns']) - T0_NS
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f'{path}: no scenario clock of the run ({exc})') from None


# what the deciding shopper's hands showed of an event's true product (res.skus_seen: SKUs gained
# on a take, lost on a return, by the fusion's vote floors)
SEEN_OUTCOMES = ('named right', 'another SKU only', 'nothing gained or lost')


def seen_outcome(true_sku: str, skus_seen) -> str:
    """One of :data:`SEEN_OUTCOMES` for an event whose true product is ``true_sku``."""
    if true_sku in skus_seen:
        return SEEN_OUTCOMES[0]
    return SEEN_OUTCOMES[1] if skus_seen else SEEN_OUTCOMES[2]


def score(tally: Tally, scenario, events, results, min_conf: float, min_margin: float,
          group_of=None) -> None:
    """Tally the replayed ``results`` of ``events`` against the scenario's truth at the bars;
    ``group_of(sku)``: a group name of the true SKU (its shape) to count what was seen by."""
    present_at = _presence(scenario)
    for ev in events:
        res = results.get(ev.event_id)
        truth = truth_of_event(scenario, ev)
        if res is None or truth is None:
            continue
        sid, action = truth
        tally.events += 1
        hyps = res.hypotheses
        t_s = (ev.start_ns - T0_NS) / 1e9
        p, margin, top = decision_features(res.hint or None, present_at(t_s),
                                           [h.posterior for h in hyps])
        best = hyps[0] if hyps else None
        right = (best is not None and top == sid and best.sku == action.sku
                 and best.quantity == action.quantity and best.action == action_code(action))
        vision = bool(res.skus_seen)
        if group_of is not None:
            g = tally.seen_by_group.setdefault(group_of(action.sku),
                                               dict.fromkeys(SEEN_OUTCOMES, 0))
            g[seen_outcome(action.sku, res.skus_seen)] += 1
        if vision:
            tally.vision += 1
            tally.product_right_vision += int(best is not None and best.sku == action.sku)
            p_true = sum(h.posterior for h in hyps if h.sku == action.sku
                         and h.quantity == action.quantity)
            tally.log_true_vision.append(math.log(max(1e-6, p_true)))
        if p < min_conf or margin < min_margin:
            tally.reviewed += 1
            tally.reviewed_events.append(reviewed_text(ev.event_id, res, p, margin, sid, action))
        elif right:
            tally.unreviewed_right += 1
        else:
            tally.wrong_unreviewed.append(
                f'{ev.event_id}: {top} {best.sku if best else "-"} x{best.quantity if best else 0}'
                f' p={p:.3f} (truth {sid} {action.sku} x{action.quantity})')


def by_shape_table(name: str, groups: dict) -> str:
    """A markdown table of :attr:`Tally.seen_by_group` with an 'all' row."""
    total = {k: sum(c[k] for c in groups.values()) for k in SEEN_OUTCOMES}
    lines = [f'\n{name}: what the deciding shopper\'s hands showed of the true product',
             '| shape | events | ' + ' | '.join(SEEN_OUTCOMES) + ' |',
             '|---|---|' + '---|' * len(SEEN_OUTCOMES)]
    for group, c in sorted(groups.items()) + [('all', total)]:
        n = sum(c.values())
        cells = [f'{c[SEEN_OUTCOMES[0]]} ({100 * c[SEEN_OUTCOMES[0]] / max(1, n):.0f} %)']
        cells += [str(c[k]) for k in SEEN_OUTCOMES[1:]]
        lines.append(f'| {group} | {n} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def reviewed_text(event_id: str, res, p: float, margin: float, sid: str, action) -> str:
    """One line on a replayed event the bars send to review: its features, the shopper
    candidates (posterior, nearest hand to the plate) and product hypotheses with their
    posteriors, the SKUs seen, and the truth."""
    shoppers = ', '.join(f'{c.shopper_id or "nobody"} {c.probability:.2f} '
                         f'(hand {c.hand_distance_m:.2f} m)' for c in res.shoppers[:3])
    hyps = ', '.join(f'{h.sku or "none"} x{h.quantity} {h.posterior:.2f}'
                     for h in res.hypotheses[:3])
    return (f'{event_id}: p={p:.2f} margin={margin:.2f}; shoppers {shoppers or "-"}; '
            f'products {hyps or "-"}; seen {",".join(res.skus_seen) or "-"} '
            f'(truth {sid} {action.sku} x{action.quantity})')


def _presence(scenario):
    spans = [(s.id, s.enter_s, s.exit_s) for s in scenario.shoppers]

    def present(t_s: float) -> list[str]:
        return [sid for sid, a, b in spans if a <= t_s <= b]
    return present


def variant_params(params_path: pathlib.Path, sets: list[str]) -> tuple:
    """(tracker parameters, fusion parameters): the file's with ``sets`` (tracker.PARAM=VALUE or
    fusion.PARAM=VALUE, parsed as ``run_store --set``) over them; a relative ``*_file`` is
    relative to the file, as in it."""
    try:
        over = parse_set(sets)
    except ValueError as exc:
        raise ValueError(f'--variant: {exc}') from None
    if set(over) - {'fusion', 'tracker'}:
        raise ValueError('--variant: only tracker and fusion parameters vary, not '
                         f'{sorted(set(over) - {"fusion", "tracker"})}')
    values = load_params_file(params_path)
    tracker = {**values.get('tracker', {}), **over.get('tracker', {})}
    fusion = dict(values.get('fusion', {}))
    for name, value in over.get('fusion', {}).items():
        if name.endswith('_file'):
            value = str((params_path.parent / str(value)).resolve()) if value else ''
        fusion[name] = value
    return (from_values(TrackerParams, TRACKER_SPECS, tracker),
            with_confusion(from_values(FusionParams, FUSION_SPECS, fusion),
                           fusion.get('sku_confusion_file', '')))


def main(argv=None) -> int:
    root = root_or_exit()
    ap = argparse.ArgumentParser(prog='bench_vision_replay', description=__doc__.split('\n')[0])
    ap.add_argument('runs', nargs='+', help='run directories of bench_live_graph --trace')
    ap.add_argument('--store', default=str(root / 'config' / 'stores' / 'demo.yaml'))
    ap.add_argument('--params', default=str(root / 'config' / 'params' / 'store.yaml'))
    ap.add_argument('--variant', action='append', default=[], metavar='NAME=SECTION.P=V[,...]',
                    help='a named variant: the parameters file with these tracker / fusion values')
    ap.add_argument('--min-confidence', type=float, default=0.9)
    ap.add_argument('--min-margin', type=float, default=0.5)
    ap.add_argument('--json', default='', help='write the rows here')
    ap.add_argument('--list-reviewed', action='store_true',
                    help='list each event the bars send to review: its shopper candidates, '
                    'product hypotheses, SKUs seen and the truth')
    ap.add_argument('--by-shape', action='store_true',
                    help='per shape of the true product (can, bottle, ...): the events whose '
                    'product the deciding shopper\'s hands showed (gained on a take, lost on a '
                    'return), showed another SKU only, or showed nothing')
    a = ap.parse_args(argv)
    try:
        store = load_store(a.store)
        params_path = pathlib.Path(a.params)
        pipe = load_pipeline_params(params_path)
        variants = {'live': (pipe.tracker, pipe.fusion)}
        for spec in a.variant:
            name, _, sets = spec.partition('=')
            variants[name] = variant_params(params_path, [s for s in sets.split(',') if s])
    except ValueError as exc:
        print(f'bench_vision_replay: {exc}', file=sys.stderr)
        return 2
    geom = StoreGeometry(store)
    n_skus = len(store.catalog.products)
    tallies = {name: Tally() for name in variants}
    for run in a.runs:
        run_dir = pathlib.Path(run)
        scen = sorted(run_dir.parent.glob(f'scenario_{run_dir.name}.yaml'))
        try:
            if not scen:
                raise ValueError(f'{run_dir}: no scenario_{run_dir.name}.yaml beside it')
            sc = load_scenario(scen[0], store)
            histories = {}      # one tracker replay per distinct tracker variant
            for tp, _fp in variants.values():
                if astuple(tp) not in histories:
                    histories[astuple(tp)] = replay_history(
                        store, run_dir / 'tracker_trace.jsonl', tp, run_offset_ns(run_dir))
        except (OSError, ValueError) as exc:
            print(f'bench_vision_replay: {exc}', file=sys.stderr)
            return 2
        events = shelf_events(store, sc)
        for name, (tp, fp) in variants.items():
            results = fuse_offline(geom, events, histories[astuple(tp)], n_skus, fp, pipe.joint)
            score(tallies[name], sc, events, results, a.min_confidence, a.min_margin,
                  (lambda sku: sku_shape(store, sku)) if a.by_shape else None)
        print(f'{run_dir.name}: {len(events)} shelf events replayed', flush=True)
    print(f'\nbars {a.min_confidence} / {a.min_margin}; {len(a.runs)} runs')
    print('variant      events  vision  reviewed  unreviewed right  wrong  '
          'product right (vision)  mean log p(true) (vision)')
    rows = {}
    for name, t in tallies.items():
        r = rows[name] = t.row()
        print(f'{name:<12} {r["events"]:>6}  {r["vision"]:>6}  {r["reviewed_pct"]:>7.1f}%  '
              f'{r["unreviewed_right_pct"]:>15.1f}%  {r["unreviewed_wrong"]:>5}  '
              f'{r["product_right_vision_pct"]:>21.1f}%  {r["mean_log_true_vision"]:>25.3f}')
    for name, t in tallies.items():
        for w in t.wrong_unreviewed:
            print(f'  {name}: wrong above the bars: {w}')
    if a.list_reviewed:
        for name, t in tallies.items():
            for r in t.reviewed_events:
                print(f'  {name}: reviewed: {r}')
    if a.by_shape:
        for name, t in tallies.items():
            print(by_shape_table(name, t.seen_by_group))
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(
            {n: {**rows[n], 'wrong': tallies[n].wrong_unreviewed,
                 'reviewed_events': tallies[n].reviewed_events,
                 'seen_by_shape': tallies[n].seen_by_group} for n in rows}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
