"""Simulated reviewer (benchmarks) and the offline pipeline it drives."""
import json
import pathlib

from store_cart.model import CandidateData, ReviewRequestData
from store_common.description import load_store
from store_bench.review_offline import run_scenario
from store_bench.reviewer_sim import SimulatedReviewer, TruthAction
from store_sim.physics import PhysicsParams
from store_sim.scenario import scenario_from_dict

ROOT = pathlib.Path(__file__).resolve().parents[3]
S = 1_000_000_000


def request(event: str = 'g1.s1.p1@1000000000', stamp_s: float = 2.0) -> ReviewRequestData:
    """A "who took it" review of one can between acct-a and acct-b."""
    cands = tuple(CandidateData(s, 'COLA-330', 1, 1, 0.45) for s in ('acct-a', 'acct-b'))
    return ReviewRequestData(
        request_id=f'review/{event}', event_id=event, reason=1, detail='test', gondola_id='g1',
        plate_ids=(event.split('@')[0],), delta_grams=-352.0, shopper_ids=('acct-a', 'acct-b'),
        candidates=cands + (CandidateData('', '', 0, 0, 0.1),), stamp_ns=int(stamp_s * S))


def test_answers_from_truth_with_delay_and_errors(tmp_path):
    truth = [TruthAction(2 * S, 'acct-b', ('g1.s1.p1',), 'COLA-330', 1, 1),
             TruthAction(40 * S, 'acct-a', ('g1.s1.p1',), 'COLA-330', 1, 1)]
    rv = SimulatedReviewer(truth, delay_s=5, error_rate=0.0)
    due, d, ok = rv.answer(request(stamp_s=2.4), 10 * S)
    assert ok and due == 15 * S and (d.shopper_id, d.sku, d.quantity) == ('acct-b', 'COLA-330', 1)
    _, d, ok = rv.answer(request('g2.s1.p1@1000000000'), 10 * S)      # nothing happened there
    assert ok and d.quantity == 0 and d.shopper_id == ''
    liar = SimulatedReviewer(truth, error_rate=1.0)
    _, d, ok = liar.answer(request(stamp_s=2.4), 0)
    assert not ok and d.shopper_id != 'acct-b' and liar.wrong == 1
    gt = tmp_path / 'ground_truth.jsonl'
    gt.write_text(json.dumps({'data': json.dumps({
        'event': 'action', 'stamp_ns': 2 * S, 'shopper_id': 'acct-b', 'plate': 'g1.s1.p1',
        'sku': 'COLA-330', 'kind': 'take', 'quantity': 1})}) + '\n'
        + json.dumps({'event': 'enter', 'stamp_ns': 0, 'shopper_id': 'acct-b'}) + '\n')
    assert SimulatedReviewer.from_ground_truth(gt).actions == truth[:1]


def test_offline_pipeline_reviews_overlap_and_amends_receipts():
    store = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')
    scenario = scenario_from_dict({'scenario': {
        'store': 'demo_store', 'seed': 5, 'duration_s': 16.0, 'shoppers': [
            {'id': 'acct-a', 'enter_s': 1.0, 'exit_s': 10.0, 'actions': [
                {'t_s': 6.0, 'kind': 'take', 'plate': 'g1.s1.p1', 'sku': 'COLA-330'}]},
            {'id': 'acct-b', 'enter_s': 3.0, 'exit_s': 12.0, 'actions': []}]}})
    run = run_scenario(store, scenario, physics_params=PhysicsParams(), reviewer_delay_s=15.0)
    assert len(run.shelf_events) == 1 and len(run.requests) == 1
    assert run.requests[0].reason == 1
    [ex] = run.examples
    assert ex['answer']['shopper_id'] == 'acct-a' and ex['best_correct']
    latest = {}
    for r in run.receipts:
        latest[r.shopper_id] = r
    assert latest['acct-a'].revision == 2 and latest['acct-a'].correction_note
    assert [(ln.sku, ln.quantity) for ln in latest['acct-a'].lines] == [('COLA-330', 1)]
