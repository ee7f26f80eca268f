"""The whole vision path offline on a short rendered scenario (tens of seconds): renderer ground
truth -> detection model -> tracker (bound at the gate) -> fusion -> cart, beside weight-only."""
import pathlib

import pytest

from store_common.description import load_store
from store_fusion.geometry import StoreGeometry
from store_fusion.fusion import Snapshot, TrackHistory
from store_bench.fusion_offline import (identity_census, NS, run_modes, run_tracking,
                                        seed_ranges, shelf_events, T0_NS)
from store_bench.simcam import ASSUMED, DetectionModel, render_truth, shopper_colors
from store_sim.scenario import load_scenario

ROOT = pathlib.Path(__file__).resolve().parents[3]

SCENARIO = """
scenario:
  store: demo_store
  seed: 7
  duration_s: 21.0
  shoppers:
    - id: alice
      enter_s: 1.0
      exit_s: 16.0
      actions:
        - {t_s: 10.0, kind: take, plate: g1.s1.p1, sku: COLA-330, quantity: 1}
    - id: bob
      enter_s: 3.5
      exit_s: 19.0
      actions:
        - {t_s: 12.5, kind: take, plate: g2.s2.p3, sku: PRETZEL, quantity: 1}
"""


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    store = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')
    path = tmp_path_factory.mktemp('sc') / 'two.yaml'
    path.write_text(SCENARIO)
    sc = load_scenario(path, store)
    frames = render_truth(store, sc, fps=5.0)
    model = DetectionModel(ASSUMED, list(store.catalog.products), seed=7,
                           colors=shopper_colors(store, sc))
    history, tracker = run_tracking(store, sc, frames, model)
    events = shelf_events(store, sc)
    return sc, events, history, run_modes(store, sc, events, history, StoreGeometry(store))


def _lines(receipts):
    return {r.shopper_id: sorted((ln.sku, ln.quantity) for ln in r.lines)
            for r in receipts if r.revision == 1}


def test_both_takes_while_both_inside_need_vision(run):
    sc, events, _history, runs = run
    assert len(events) == 2
    # load cells alone: two shoppers inside at both takes -> both go to a human
    assert len(runs['weight'].requests) == 2
    # fused: the hand at the plate names the taker, nothing goes to review
    assert runs['fused'].requests == []
    assert _lines(runs['fused'].receipts) == {'alice': [('COLA-330', 1)],
                                              'bob': [('PRETZEL', 1)]}


def test_tracks_are_bound_to_the_accounts_that_scanned_in(run):
    _sc, _events, history, _runs = run
    bound = {s.shopper_id for s in history.snaps if s.shopper_id}
    assert bound == {'alice', 'bob'}


def test_identity_census_tells_a_swap_from_a_miss():
    """Two shoppers 2 m apart for three frames: right, then alice's account on bob (a swap),
    then nowhere near anybody (off); bob's account is bound only from the second frame."""
    frames = [{'t_s': t, 'shoppers': [{'id': 'alice', 'xy': (1.0, 1.0)},
                                      {'id': 'bob', 'xy': (3.0, 1.0)}]} for t in (1.0, 1.2, 1.4)]
    history = TrackHistory(keep_s=1e9)
    for t, alice_xy in ((1.0, (1.1, 1.0)), (1.2, (3.0, 1.1)), (1.4, (2.0, 3.0))):
        stamp = T0_NS + int(round(t * NS))
        history.add(Snapshot(stamp, 't1', 'alice', alice_xy, [], [], True))
        if t > 1.0:
            history.add(Snapshot(stamp, 't2', 'bob', (3.0, 1.0), [], [], True))
        history.add(Snapshot(stamp, 't9', '', (1.0, 1.0), [], [], True))   # anonymous
    c = identity_census(frames, history)
    assert c == {'shopper_frames': 6, 'ok': 3, 'swap': 1, 'off': 1, 'missing': 1}


def test_seed_ranges():
    assert seed_ranges('9103:9105') == [9103, 9104, 9105]
    assert seed_ranges('8100:8101,9100:9100') == [8100, 8101, 9100]
    for bad in ('9103', '9105:9103', 'a:b', '1:2,'):
        with pytest.raises(ValueError, match='--seeds'):
            seed_ranges(bad)
