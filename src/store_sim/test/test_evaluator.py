"""Evaluator metrics on hand-made receipts, and the CLI on a hand-made run directory."""
import json
import pathlib

import pytest
import yaml

from store_sim import evaluator
from store_sim.evaluator import aggregate, evaluate

TRUTH = {'a': {'COLA-330': 2, 'CHOC-DARK': 1}, 'b': {'APPLE': 1}}
C, P = 1, 2


def receipt(shopper, lines, revision=1, rid=None):
    return {'receipt_id': rid or f'{shopper}@1', 'revision': revision, 'shopper_id': shopper,
            'lines': [{'sku': s, 'quantity': q, 'status': st} for s, q, st in lines],
            'pending_reviews': sum(st == P for _, _, st in lines)}


EXACT = [receipt('a', [('CHOC-DARK', 1, C), ('COLA-330', 2, C)]), receipt('b', [('APPLE', 1, C)])]


def test_exact_receipts():
    m = evaluate(TRUTH, EXACT)
    assert m['receipt_exact_match_rate'] == 1.0 and m['receipts_exact'] == 2
    assert (m['tp'], m['fp'], m['fn']) == (4, 0, 0)
    assert m['precision'] == m['recall'] == m['f1'] == 1.0


def test_missing_item():
    m = evaluate(TRUTH, [receipt('a', [('COLA-330', 1, C), ('CHOC-DARK', 1, C)]), EXACT[1]])
    assert m['receipts_exact'] == 1 and m['receipt_exact_match_rate'] == 0.5
    assert (m['tp'], m['fp'], m['fn']) == (3, 0, 1)
    assert m['precision'] == 1.0 and m['recall'] == 0.75
    assert m['f1'] == pytest.approx(2 * 0.75 / 1.75)
    assert not m['per_shopper']['a']['exact']


def test_extra_item():
    m = evaluate(TRUTH, [EXACT[0], receipt('b', [('APPLE', 1, C), ('BANANA', 2, C)])])
    assert m['receipts_exact'] == 1
    assert (m['tp'], m['fp'], m['fn']) == (4, 2, 0)
    assert m['precision'] == pytest.approx(4 / 6) and m['recall'] == 1.0


def test_pending_line_is_not_exact_and_not_counted():
    m = evaluate(TRUTH, [receipt('a', [('CHOC-DARK', 1, C), ('COLA-330', 2, P)]), EXACT[1]])
    assert m['receipts_exact'] == 1
    assert (m['tp'], m['fp'], m['fn']) == (2, 0, 2)
    assert m['units_pending'] == 2
    # confirmed lines right, but an extra pending line: still not exact
    m = evaluate(TRUTH, [receipt('a', [('CHOC-DARK', 1, C), ('COLA-330', 2, C),
                                       ('GUM-MINT', 1, P)]), EXACT[1]])
    assert m['receipts_exact'] == 1 and m['fp'] == 0


def test_missing_receipt_is_a_miss():
    m = evaluate(TRUTH, [EXACT[0]])
    assert m['receipts_missing'] == 1 and m['receipt_exact_match_rate'] == 0.5
    assert m['fn'] == 1 and m['recall'] == 0.75


def test_latest_revision_wins_whatever_the_order():
    fixed = receipt('a', [('CHOC-DARK', 1, C), ('COLA-330', 2, C)], revision=2)
    wrong = receipt('a', [('COLA-330', 1, C), ('CHOC-DARK', 1, P)], revision=1)
    for order in ([wrong, fixed], [fixed, wrong]):
        m = evaluate(TRUTH, order + [EXACT[1], EXACT[1]])
        assert m['receipts_exact'] == 2, order


def test_empty_truth_and_unexpected_receipts():
    m = evaluate({'a': {}}, [receipt('a', []), receipt('z', [('APPLE', 1, C)])])
    assert m['receipts_exact'] == 1 and m['receipts_unexpected'] == 1
    assert m['fp'] == 1 and m['precision'] == 0.0


def test_review_rate_dedupes():
    events = [{'event_id': f'e{i}'} for i in range(4)] + [{'event_id': 'e0'}]
    reviews = [{'request_id': 'review/e1'}, {'request_id': 'review/e1'}]
    m = evaluate(TRUTH, EXACT, reviews, events)
    assert (m['shelf_events'], m['review_requests'], m['review_rate']) == (4, 1, 0.25)
    assert evaluate(TRUTH, EXACT)['review_rate'] == 0.0


def test_before_review_bills_pending_lines_of_the_first_revision():
    from store_sim.evaluator import before_review
    pending = {'sku': 'COLA-330', 'quantity': 2, 'status': 2}
    first = {'receipt_id': 'a@1', 'shopper_id': 'a', 'revision': 1, 'lines': [pending]}
    second = {'receipt_id': 'a@1', 'shopper_id': 'a', 'revision': 2, 'lines': []}
    assert not evaluate({'a': {'COLA-330': 2}}, [first])['receipts_exact']
    got = before_review([first, second])
    assert [r['revision'] for r in got] == [1] and got[0]['lines'][0]['status'] == 1
    assert evaluate({'a': {'COLA-330': 2}}, got)['receipts_exact'] == 1
    assert first['lines'][0]['status'] == 2          # the records passed in are not changed


def test_spot_checks_are_counted_apart_from_reviews():
    from store_interfaces.msg import ReviewRequest
    events = [{'event_id': f'e{i}'} for i in range(4)]
    requests = [{'request_id': 'review/e1', 'reason': ReviewRequest.REASON_LOW_CONFIDENCE},
                {'request_id': 'spot-check/e2', 'reason': ReviewRequest.REASON_SPOT_CHECK},
                {'request_id': 'spot-check/e3', 'reason': ReviewRequest.REASON_SPOT_CHECK}]
    m = evaluate(TRUTH, EXACT, requests, events)
    assert (m['review_requests'], m['review_rate'], m['spot_checks']) == (1, 0.25, 2)
    assert aggregate([m, m])['spot_checks'] == 4


def write_run(d: pathlib.Path, receipts):
    d.mkdir(parents=True)
    (d / 'scenario.yaml').write_text(yaml.safe_dump({'scenario': {
        'store': 'demo_store', 'seed': 1, 'duration_s': 30.0, 'shoppers': [
            {'id': 'a', 'enter_s': 1.0, 'exit_s': 20.0, 'actions': [
                {'t_s': 5.0, 'kind': 'take', 'plate': 'g1.s1.p1', 'sku': 'COLA-330',
                 'quantity': 2}]}]}}))
    (d / 'receipts.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in receipts)
                                      + '{"torn')
    (d / 'shelf_events.jsonl').write_text('{"event_id": "x"}\n')


def test_a_run_folder_scored_by_a_rule(tmp_path):
    from store_sim.evaluator import before_review, evaluate_run
    pending = {'receipt_id': 'a@1', 'shopper_id': 'a', 'revision': 1,
               'lines': [{'sku': 'COLA-330', 'quantity': 2, 'status': 2}]}
    write_run(tmp_path / 'r', [pending])
    issued = evaluate_run(tmp_path / 'r' / 'scenario.yaml', tmp_path / 'r')
    guessed = evaluate_run(tmp_path / 'r' / 'scenario.yaml', tmp_path / 'r', rule=before_review)
    assert (issued['receipts_exact'], guessed['receipts_exact']) == (0, 1)
    assert guessed['run_dir'] == str(tmp_path / 'r')


def test_cli_single_run_and_suite(tmp_path, capsys):
    write_run(tmp_path / 's' / 'r1', [receipt('a', [('COLA-330', 2, C)])])
    write_run(tmp_path / 's' / 'r2', [receipt('a', [('COLA-330', 1, C)])])
    out = tmp_path / 'one.json'
    assert evaluator.main(['--scenario', str(tmp_path / 's' / 'r1' / 'scenario.yaml'),
                           '--run-dir', str(tmp_path / 's' / 'r1'), '--json', str(out)]) == 0
    one = json.loads(out.read_text())
    assert one['receipt_exact_match_rate'] == 1.0 and one['shelf_events'] == 1
    assert evaluator.main(['--suite', str(tmp_path / 's')]) == 0
    text = capsys.readouterr().out
    assert 'TOTAL' in text and 'r1' in text and 'r2' in text
    suite = json.loads((tmp_path / 's' / 'suite_metrics.json').read_text())
    assert suite['total']['runs'] == 2
    assert suite['total']['receipt_exact_match_rate'] == 0.5
    assert (suite['total']['tp'], suite['total']['fn']) == (3, 1)
    header, rule = text.splitlines()[:2]
    assert len(header) == len(rule)
