"""The tracker node's step trace: written as the node steps, read back and replayed offline, it
gives the tracks the node published (an exact replay of a live run)."""
import json
import pathlib

from store_common.description import load_store
from store_fusion.synthetic import standing_boxes
from store_fusion.trace import read_trace, replay, StepTrace
from store_fusion.tracker import ShopperTracker

ROOT = pathlib.Path(__file__).resolve().parents[3]
NS = 1_000_000_000


def test_a_replayed_trace_gives_the_tracks_the_node_published(tmp_path):
    store = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')
    path = tmp_path / 'trace.jsonl'
    live, trace = ShopperTracker(store), StepTrace(path)
    published = []
    for k in range(40):
        now = int((1 + 0.2 * k) * NS)
        gates = [(now, 'enter', 'alice')] if k == 2 else []
        for g in gates:
            live.on_gate(*g)
        xy = (1.25 + 0.1 * k, 0.6 + 0.08 * k)
        dets = standing_boxes(store, [xy], colors=[(200.0, 40.0, 40.0)])
        tracks = live.step(now, dets)
        trace.write(now, dets, gates, tracks, now + NS // 10)
        published.append([(t.track_id, t.shopper_id) for t in tracks])
    trace.close()
    with open(path, 'a', encoding='utf-8') as f:
        f.write('{"stamp_ns": "not a step"\n')       # a torn last line is skipped
    steps = read_trace(path)
    assert len(steps) == 40 and json.loads(path.read_text().splitlines()[0])['gates'] == []
    replayed = []
    replay(ShopperTracker(store), steps,
           lambda rec, tracks: replayed.append([(t.track_id, t.shopper_id) for t in tracks]))
    assert replayed == published
    assert ('t1', 'alice') in published[-1]


def test_ages_of_carried_boxes_are_written_and_inferred_for_older_traces(tmp_path):
    """A trace keeps each shopper box's age. In a trace written before ages existed, a camera
    frame whose shopper boxes all lack a torso colour carried them from that camera's last
    frame with colours (the detector measures every box it finds on the image itself)."""
    from dataclasses import replace
    from store_fusion.trace import infer_carried_ages
    store = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')
    full = standing_boxes(store, [(4.0, 3.0)], colors=[(200.0, 40.0, 40.0)])
    carried = {c: [replace(d, color=None, age_s=0.2) for d in ds] for c, ds in full.items()}
    path = tmp_path / 'trace.jsonl'
    trace = StepTrace(path)
    trace.write(NS, full, [], [], NS)
    trace.write(NS + NS // 5, carried, [], [], NS + NS // 5)
    trace.close()
    steps = read_trace(path)
    assert all(s['ages_recorded'] for s in steps)
    assert {d.age_s for ds in steps[1]['dets'].values() for d in ds} == {0.2}
    assert infer_carried_ages(steps) == 0          # recorded ages are left as they are
    # the same trace as an older tracker wrote it: no age field
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for rec in lines:
        rec['dets'] = {c: [d[:9] for d in ds] for c, ds in rec['dets'].items()}
    path.write_text(''.join(json.dumps(rec) + '\n' for rec in lines))
    steps = read_trace(path)
    assert not any(s['ages_recorded'] for s in steps)
    assert {d.age_s for ds in steps[1]['dets'].values() for d in ds} == {0.0}
    assert infer_carried_ages(steps) == len(full)
    ages = {d.age_s for ds in steps[1]['dets'].values() for d in ds}
    assert ages == {0.2} and {d.age_s for ds in steps[0]['dets'].values() for d in ds} == {0.0}
