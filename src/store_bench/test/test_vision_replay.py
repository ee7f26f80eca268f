"""Replaying a live run's tracker trace through fusion variants: the clock of the run moved to
the offline one, variants from the parameters file, decisions scored against the truth."""
import json
import pathlib

import pytest

from store_bench.fusion_offline import fuse_offline, shelf_events, T0_NS
from store_bench.vision_replay import (replay_history, run_offset_ns, score, Tally,
                                       variant_params)
from store_fusion.geometry import StoreGeometry
from store_fusion.synthetic import standing_boxes
from store_fusion.trace import StepTrace
from store_fusion.tracker import ShopperTracker
from store_sim.generator import generate

ROOT = pathlib.Path(__file__).resolve().parents[3]
PARAMS = ROOT / 'config' / 'params' / 'store.yaml'
NS = 1_000_000_000


def test_a_trace_on_the_runs_clock_replays_on_the_offline_clock(tmp_path, store):
    offset = 1_765_000_000 * NS          # a live run's ROS time of scenario t = 0, minus T0
    (tmp_path / 'scenario_clock.json').write_text(json.dumps(
        {'scenario_start_ros_ns': T0_NS + offset, 'start_delay_s': 2.0}))
    assert run_offset_ns(tmp_path) == offset
    trace, live = StepTrace(tmp_path / 'tracker_trace.jsonl'), ShopperTracker(store)
    for k in range(30):
        now = T0_NS + offset + int((1 + 0.2 * k) * NS)
        gates = [(now, 'enter', 'alice')] if k == 2 else []
        for g in gates:
            live.on_gate(*g)
        dets = standing_boxes(store, [(1.25 + 0.1 * k, 0.6 + 0.08 * k)],
                              colors=[(200.0, 40.0, 40.0)])
        trace.write(now, dets, gates, live.step(now, dets), now)
    trace.close()
    history = replay_history(store, tmp_path / 'tracker_trace.jsonl', None, offset)
    stamps = sorted({s.stamp_ns for s in history.snaps})
    assert stamps[0] >= T0_NS + NS and stamps[-1] <= T0_NS + 7 * NS
    assert any(s.shopper_id == 'alice' for s in history.snaps)
    (tmp_path / 'scenario_clock.json').write_text('{}')
    with pytest.raises(ValueError, match='scenario_clock.json'):
        run_offset_ns(tmp_path)


def test_a_variant_is_the_parameters_file_with_its_tracker_and_fusion_values():
    tracker, even = variant_params(PARAMS, ['fusion.sku_confusion_file=', 'fusion.max_votes=2'])
    assert even.sku_confusion is None and even.max_votes == 2.0
    live_tracker, live = variant_params(PARAMS, [])
    assert live.sku_confusion is not None and tracker == live_tracker
    no_reach, _ = variant_params(PARAMS, ['tracker.hand_reach_m=0'])
    assert no_reach.hand_reach_m == 0.0 and live_tracker.hand_reach_m > 0.0
    for bad in ('cart.min_margin=3', 'tracker.gate_chi2=-1', 'fusion.max_votes=-1',
                'max_votes=2'):
        with pytest.raises(ValueError):
            variant_params(PARAMS, [bad])


def test_decisions_are_scored_against_the_scenario(store):
    """One shopper alone, no cameras: the weight decides, and what the bars let through is
    right unless the weight confuses two products; a bar of 1.0 reviews everything."""
    sc = generate(store, 20001, 1)
    events = shelf_events(store, sc)
    from store_fusion.fusion import FusionParams, TrackHistory
    results = fuse_offline(StoreGeometry(store), events, TrackHistory(), 27, FusionParams())
    t = Tally()
    score(t, sc, events, results, 0.9, 0.5)
    assert t.events >= 3 and t.vision == 0
    assert t.unreviewed_right + len(t.wrong_unreviewed) + t.reviewed == t.events
    assert t.unreviewed_right >= 1
    strict = Tally()
    score(strict, sc, events, results, 1.0 + 1e-9, 0.5)
    assert strict.reviewed == strict.events
    # each reviewed event is listed once, naming its truth and its posteriors
    assert len(strict.reviewed_events) == strict.events
    assert all(' p=' in r and '(truth ' in r and 'products ' in r
               for r in strict.reviewed_events)
    assert t.reviewed == len(t.reviewed_events)


def test_what_the_hands_showed_is_counted_by_the_true_products_shape(store):
    """No cameras: nothing is gained or lost in any hand. With the true SKU among an event's
    SKUs seen it counts as named right, with only another SKU as such, grouped by the shape of
    the true product; the table's last row sums the groups."""
    from dataclasses import replace

    from store_bench.evaluate import sku_shape
    from store_bench.vision_replay import by_shape_table, SEEN_OUTCOMES, seen_outcome
    from store_fusion.fusion import FusionParams, TrackHistory
    from store_bench.fusion_offline import truth_of_event
    from store_sim.render import SHAPES
    sc = generate(store, 20001, 1)
    events = shelf_events(store, sc)
    results = fuse_offline(StoreGeometry(store), events, TrackHistory(), 27, FusionParams())
    group_of = (lambda sku: sku_shape(store, sku))
    blind = Tally()
    score(blind, sc, events, results, 0.9, 0.5, group_of)
    assert sum(c['nothing gained or lost'] for c in blind.seen_by_group.values()) == blind.events
    truths = [truth_of_event(sc, ev) for ev in events]
    scored = [(ev, t) for ev, t in zip(events, truths) if t and ev.event_id in results]
    assert len(scored) >= 2
    (first, (_, act1)), (second, _) = scored[:2]
    results[first.event_id] = replace(results[first.event_id], skus_seen=[act1.sku])
    results[second.event_id] = replace(results[second.event_id], skus_seen=['NOT-A-SKU'])
    seen = Tally()
    score(seen, sc, events, results, 0.9, 0.5, group_of)
    shape1 = sku_shape(store, act1.sku)
    assert seen.seen_by_group[shape1]['named right'] == 1
    assert sum(c['another SKU only'] for c in seen.seen_by_group.values()) == 1
    assert sum(sum(c.values()) for c in seen.seen_by_group.values()) == seen.events
    assert shape1 in SHAPES
    assert seen_outcome('COLA-330', ['LEMON-330', 'COLA-330']) == SEEN_OUTCOMES[0]
    assert seen_outcome('COLA-330', ['LEMON-330']) == SEEN_OUTCOMES[1]
    assert seen_outcome('COLA-330', []) == SEEN_OUTCOMES[2]
    table = by_shape_table('live', {'can': {'named right': 1, 'another SKU only': 2,
                                            'nothing gained or lost': 1},
                                    'bar': {'named right': 3, 'another SKU only': 0,
                                            'nothing gained or lost': 1}})
    assert '| can | 4 | 1 (25 %) | 2 | 1 |' in table
    assert '| all | 8 | 4 (50 %) | 2 | 2 |' in table
    assert sku_shape(store, 'NOT-A-SKU') == '?'
