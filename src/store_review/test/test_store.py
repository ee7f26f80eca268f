"""Review store: persistence, idempotency, priority, escalation and expiry, decisions."""
import sqlite3

from helpers import request, S
import pytest

from store_review.store import QueueParams, ReviewDbError, ReviewStore


def test_requests_and_decisions_survive_reopen(tmp_path):
    db = tmp_path / 'r.sqlite'
    with_store = ReviewStore(db)
    assert with_store.add_request(request().to_dict(), 10 * S)
    rid = request().request_id
    assert with_store.decide(rid, 'alice', 'reviewer', 0, {'sku': 'COLA-330'}, 11 * S,
                             {'best_correct': True})
    with_store.add_evidence(rid, 'weight_trace', 'g1.s1.p1', 0, {'t_ms': [0], 'grams': [1.0]})
    with_store.close()
    again = ReviewStore(db)
    d = again.request(rid)
    assert d['status'] == 'decided' and d['decision']['reviewer'] == 'alice'
    assert again.examples() == [{'best_correct': True}]
    assert again.evidence(rid)[0]['payload']['grams'] == [1.0]
    assert [a['action'] for a in again.audit_log(rid)] == ['received', 'decided']
    # WAL with synchronous FULL
    conn = sqlite3.connect(db)
    assert conn.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'


def test_redelivered_request_and_second_decision_change_nothing(tmp_path):
    s = ReviewStore(tmp_path / 'r.sqlite')
    r = request().to_dict()
    assert s.add_request(r, 1 * S) is True
    assert s.add_request(r, 5 * S) is False
    assert len(s.requests()) == 1 and s.requests()[0]['received_ns'] == 1 * S
    assert s.decide(r['request_id'], 'a', 'reviewer', 0, {}, 2 * S) is True
    assert s.decide(r['request_id'], 'b', 'reviewer', 1, {}, 3 * S) is False
    assert s.decision(r['request_id'])['reviewer'] == 'a'
    with pytest.raises(KeyError):
        s.decide('review/nope', 'a', 'reviewer', 0, {}, 2 * S)


def test_priority_rises_when_shopper_exits_and_with_age(tmp_path):
    s = ReviewStore(tmp_path / 'r.sqlite')
    s.add_request(request('g1.s1.p1@1', shoppers=('a',)).to_dict(), 0)
    s.add_request(request('g2.s1.p1@1', shoppers=('b',)).to_dict(), 0)
    q = s.queue(1 * S)
    assert q[0]['priority'] == q[1]['priority']
    s.on_cart('b', 'b@0', True, 5 * S)
    q = s.queue(1 * S)
    assert q[0]['request']['shopper_ids'] == ['b'] and q[0]['shopper_exited']
    assert q[0]['priority'] > q[1]['priority'] + 50
    assert s.queue(600 * S)[1]['priority'] > q[1]['priority']
    # an older cart state does not undo the exit
    s.on_cart('b', 'b@0', False, 4 * S)
    assert s.queue(1 * S)[0]['shopper_exited']


def test_receipt_marks_shopper_exited(tmp_path):
    s = ReviewStore(tmp_path / 'r.sqlite')
    s.add_request(request(shoppers=('a',)).to_dict(), 0)
    assert s.add_receipt({'receipt_id': 'a@0', 'revision': 1, 'shopper_id': 'a',
                          'exited_ns': 3})
    assert not s.add_receipt({'receipt_id': 'a@0', 'revision': 1, 'shopper_id': 'a'})
    assert s.queue(0)[0]['shopper_exited']


def test_escalation_then_expiry(tmp_path):
    s = ReviewStore(tmp_path / 'r.sqlite', QueueParams(escalate_after_s=10, expire_after_s=20))
    s.add_request(request().to_dict(), 0)
    assert s.sweep(9 * S) == []
    assert s.sweep(10 * S) == [(request().request_id, 'escalated')]
    assert s.queue(10 * S) == []                                   # reviewer view: open only
    assert len(s.queue(10 * S, ('open', 'escalated', 'expired'))) == 1
    assert s.sweep(20 * S) == [(request().request_id, 'expired')]
    d = s.request(request().request_id)
    assert d['status'] == 'expired' and d['flagged']
    assert s.sweep(100 * S) == []
    with pytest.raises(ValueError):
        QueueParams(escalate_after_s=30, expire_after_s=20)


def test_not_a_review_db_is_refused(tmp_path):
    bad = tmp_path / 'x.sqlite'
    c = sqlite3.connect(bad)
    c.execute('CREATE TABLE foo (x)')
    c.commit()
    c.close()
    with pytest.raises(ReviewDbError, match='not a review database'):
        ReviewStore(bad)
