"""learning_days_live: what it reads from a finished run's folder, and how a day adds up.

The live runs themselves are the benchmark's (docs/RESULTS.md); the graph test
``test_a_reviewer_at_the_console_makes_every_receipt_exact`` covers the reviewer in the graph.
"""
import json
import math

from store_cart.engine import CartEngine, CartParams
from store_cart.model import (ACTION_TAKE, GateEventData, KIND_ENTER, ReviewDecisionData,
                              ReviewRequestData)
from store_common.description import Catalog, Product
from store_fusion.calibration import Platt
from store_shelf.event import HypothesisData, ShelfEventData

from store_bench.learning_days_live import arm_sets, bars_on_every_day, day_summary, run_rows

S = 1_000_000_000
CATALOG = Catalog('EUR', {'COLA-330': Product('COLA-330', 'Cola', 129, 352.0, 2.5),
                          'LEMON-330': Product('LEMON-330', 'Lemon', 119, 355.0, 2.5)})


def _run(tmp_path, spot_checks: bool = False):
    """A run folder: two shoppers; three cola takes at p1 with hints 0.95 (a did it), 0.95 (b
    did it: the cameras were wrong, unasked) and 0.5 (reviewed, answered b); a fourth weight
    change at p2 that no action caused, which the cart took for a cola. ``spot_checks``: every
    decision made unasked is spot-checked and the check answered with the truth."""
    a, b = 'acct-a', 'acct-b'
    truth = [json.dumps({'event': 'enter', 'shopper_id': a, 'stamp_ns': S})]
    with CartEngine(str(tmp_path / 'carts.sqlite'), CATALOG, 'test',
                    CartParams(min_confidence=0.9, min_margin=0.2,
                               spot_check_fraction=1.0 if spot_checks else 0.0)) as e:
        e.on_gate_event(GateEventData(f'entrance@{S}', 'entrance', KIND_ENTER, a, S))
        e.on_gate_event(GateEventData(f'entrance@{2 * S}', 'entrance', KIND_ENTER, b, 2 * S))
        for k, (plate, p_a, who) in enumerate([('g1.s1.p1', 0.95, a), ('g1.s1.p1', 0.95, b),
                                               ('g1.s1.p1', 0.5, b), ('g1.s1.p2', 0.95, '')]):
            start = (10 + 10 * k) * S
            if who:
                truth.append(json.dumps({'event': 'action', 'stamp_ns': start + S // 4,
                                         'shopper_id': who, 'plate': plate, 'sku': 'COLA-330',
                                         'kind': 'take', 'quantity': 1}))
            ev = ShelfEventData(f'{plate}@{start}', 'g1', (plate,), -352.0, start,
                                start + S // 2,
                                (HypothesisData('COLA-330', ACTION_TAKE, 1, 0.97, -352.0),
                                 HypothesisData('LEMON-330', ACTION_TAKE, 1, 0.03, -355.0)))
            e.on_shelf_event(ev, shopper_hint={a: p_a, b: 1.0 - p_a}, raw_confidence=0.9)
            for out in e.tick(start + 2 * S):
                if isinstance(out, ReviewRequestData):
                    e.on_review_decision(ReviewDecisionData(
                        out.request_id, 'rev', who, 'COLA-330' if who else '',
                        ACTION_TAKE if who else 0, 1 if who else 0, start + 3 * S))
    (tmp_path / 'ground_truth.jsonl').write_text('\n'.join(truth) + '\n')
    return tmp_path


def test_run_rows_score_the_carts_decisions_against_the_published_truth(tmp_path):
    rows = run_rows(_run(tmp_path), Platt(a=1.0, b=0.0))
    assert [r['event_id'].split('@')[0] for r in rows] == ['g1.s1.p1'] * 3 + ['g1.s1.p2']
    assert [r['reviewed'] for r in rows] == [False, False, True, False]
    # right, wrong (b did it), the reviewed one (a was top, b did it), a cola nobody took
    assert [r['top_right'] for r in rows] == [True, False, False, False]
    # what the cart did unasked, from its lines: a's cola, a's cola (b's), -, a cola for a
    assert [r['auto_right'] for r in rows] == [True, False, None, False]
    assert [round(r['p'], 2) for r in rows] == [0.95, 0.95, 0.5, 0.95]
    # the cart asked about the 0.5 / 0.5 one because two shoppers were as likely
    assert [r['review_reason'] for r in rows] == [None, None, 'ambiguous shopper', None]
    assert all(r['confidence'] == Platt(a=1.0, b=0.0)(0.9) for r in rows)
    assert all(math.isnan(r['confidence']) for r in run_rows(tmp_path))


def test_a_spot_checked_decision_is_scored_as_made_not_as_corrected(tmp_path):
    rows = run_rows(_run(tmp_path, spot_checks=True))
    assert [r['spot_checked'] for r in rows] == [True, True, False, True]
    # the checks corrected the second and fourth carts since; the machine's decisions were wrong
    assert [r['auto_right'] for r in rows] == [True, False, None, False]


def test_a_day_adds_up_its_runs(tmp_path):
    rows = run_rows(_run(tmp_path), Platt())
    run = {'name': 'L2_s1', 'rows': rows, 'receipts_exact': 1, 'shoppers': 2, 'exit_code': 0}
    d = day_summary(3, 'learning', [run, run], {'min_confidence': 0.9, 'min_margin': 0.2})
    assert (d['day'], d['scenarios'], d['events'], d['reviews']) == (3, 2, 8, 2)
    assert d['review_rate'] == 0.25 and d['unreviewed'] == 6
    assert d['review_reasons'] == {'ambiguous shopper': 2}
    assert d['unreviewed_accuracy'] == 2 / 6
    assert (d['receipts_exact'], d['shoppers'], d['exit_codes']) == (2, 4, [0, 0])
    # every wrong top answer sits below the bars chosen with hindsight
    wrong = sum(not r['top_right'] for r in rows)
    assert wrong and d['hindsight']['review_rate'] >= wrong / len(rows)
    assert d['hindsight']['accuracy'] == 1.0
    assert [w['event_id'].split('@')[0] for w in d['wrong_unreviewed']] == [
        'g1.s1.p1', 'g1.s1.p2'] * 2


def test_arm_sets_point_the_nodes_at_the_arms_files():
    assert arm_sets({'thresholds': '/s/t.yaml'}) == ['cart.thresholds_file=/s/t.yaml']
    assert arm_sets({'thresholds': 't', 'calibration': 'c', 'weight_models': 'w'}) == [
        'cart.thresholds_file=t', 'fusion.calibration_file=c',
        'shelf_events.weight_models_file=w']


def _row(p, margin, reviewed, right):
    return {'p': p, 'margin': margin, 'reviewed': reviewed, 'top_right': right,
            'auto_right': None if reviewed else right}


def test_each_days_bars_are_scored_on_every_days_events():
    day0 = ((0.9, 0.5), [_row(0.99, 0.9, False, True), _row(0.7, 0.4, True, True),
                         _row(0.6, 0.3, True, False), _row(0.4, 0.1, True, False),
                         _row(0.3, 0.05, False, True)])   # decided by another rule
    day1 = ((0.65, 0.3), [_row(0.95, 0.9, False, True), _row(0.7, 0.4, False, True),
                          _row(0.5, 0.2, True, True)])
    days = [day0, day1]
    strict = bars_on_every_day(days, (0.9, 0.5))
    # day 1's 0.7 event goes back to review under the stricter bars; the other rule's stays
    assert (strict['events'], strict['reviews'], strict['unreviewed_right']) == (8, 5, 3)
    assert strict['unreviewed_accuracy'] == 1.0
    loose = bars_on_every_day(days, (0.55, 0.2))
    # the reviewed 0.7 (right) and 0.6 (wrong) events clear them; 0.4 and 0.5 do not
    assert (loose['reviews'], loose['unreviewed'], loose['unreviewed_right']) == (2, 6, 5)
    assert loose['review_rate'] == 2 / 8 and abs(loose['unreviewed_accuracy'] - 5 / 6) < 1e-12
    assert bars_on_every_day([], (0.9, 0.5))['review_rate'] == 0.0
