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
