"""The hand-off of decisions to the cart: persisted, re-sent until acknowledged, shown.

A decision made while the cart is down must reach it after the review node restarts; the
cart's acknowledgement (applied, or refused with a reason) is what the console shows.
"""
import re
import sqlite3

from fastapi.testclient import TestClient
from helpers import request, S
import pytest

from store_cart.model import ACK_APPLIED, ACK_REJECTED
from store_review.auth import PasswordHasher
from store_review.console import create_app
from store_review.service import ack_problem, ReviewService
from store_review.store import ReviewStore

FAST = PasswordHasher(n=2 ** 4)


class Clock:
    def __init__(self, ns=100 * S):
        self.ns = ns

    def __call__(self):
        return self.ns


def make_service(db, published, clock):
    svc = ReviewService(ReviewStore(db), published.append, clock, hasher=FAST)
    return svc


def session(svc, name='alice', role='reviewer'):
    svc.auth.add_user(name, role, f'{name}-password', 0)
    return svc.auth.login(name, f'{name}-password', svc.clock())


def test_a_decision_survives_a_restart_until_the_cart_acknowledges_it(tmp_path):
    db, clock = tmp_path / 'r.sqlite', Clock()
    sent = []
    svc = make_service(db, sent, clock)
    svc.on_request(request())
    decision = svc.decide(session(svc), 1, 0)      # the cart is down: nobody hears it
    assert sent == [decision]
    h = svc.store.handoff(decision.request_id)
    assert (h['state'], h['sends'], h['sent_ns']) == ('sent', 1, clock.ns)
    svc.store.close()

    clock.ns += 30 * S                          # the review node restarts
    again = []
    svc = make_service(db, again, clock)
    assert svc.resend() == [decision.request_id]
    assert again == [decision]                  # the same decision, same stamp
    assert svc.store.handoff(decision.request_id)['sends'] == 2
    assert svc.on_ack(decision.request_id, 'alice', ACK_APPLIED, '') == 'applied'
    clock.ns += 30 * S
    assert svc.resend() == [] and len(again) == 1
    assert svc.on_ack(decision.request_id, 'alice', ACK_APPLIED, '') == 'duplicate'
    h = svc.store.handoff(decision.request_id)
    assert h['state'] == 'applied' and h['acked_ns'] == clock.ns - 30 * S


def test_resend_waits_min_age_survives_a_clock_going_back_and_is_bounded(tmp_path):
    clock, sent = Clock(), []
    svc = make_service(tmp_path / 'r.sqlite', sent, clock)
    s = session(svc)
    for k in range(5):
        svc.on_request(request(f'g1.s1.p{k}@1'))
        svc.decide(s, k + 1, 0)
        clock.ns += S
    assert len(sent) == 5
    assert svc.resend(min_age_ns=2 * S) == [f'review/g1.s1.p{k}@1' for k in range(4)]
    assert svc.resend(min_age_ns=2 * S) == []           # just sent
    assert len(svc.resend(limit=2)) == 2                # least recently sent first
    clock.ns = 10 * S                                   # time went back (sim clock restarted)
    assert len(svc.resend(min_age_ns=2 * S)) == 5


def test_a_refused_decision_is_shown_to_supervisors_with_the_reason(tmp_path):
    clock, sent = Clock(), []
    svc = make_service(tmp_path / 'r.sqlite', sent, clock)
    svc.on_request(request('g1.s1.p1@1'))
    svc.on_request(request('g1.s1.p2@1'))
    svc.on_request(request('g1.s1.p3@1'))
    alice = session(svc)
    svc.decide(alice, 1, 0)
    svc.decide(alice, 2, 1)
    assert svc.on_ack('review/g1.s1.p1@1', 'alice', ACK_REJECTED,
                      'not an open review of this cart') == 'rejected'
    assert svc.on_ack('review/g1.s1.p2@1', 'alice', ACK_APPLIED, '') == 'applied'
    svc.auth.add_user('sue', 'supervisor', 'sue-password', 0)
    c = TestClient(create_app(svc))
    assert c.post('/login', data={'username': 'sue', 'password': 'sue-password'},
                  follow_redirects=False).status_code == 303
    page = c.get('/r/1').text
    assert re.search(r'id="handoff" class="refused">Cart: REFUSED by the cart: '
                     r'not an open review of this cart<', page), page
    assert 'class="applied">Cart: applied by the cart<' in c.get('/r/2').text
    queue = c.get('/').text
    assert 'id="handoffs"' in queue and 'not an open review of this cart' in queue
    assert 'review/g1.s1.p2@1</a>' not in queue        # applied: nothing to look at
    api = c.get('/api/queue').json()
    assert [(h['request_id'], h['state']) for h in api['handoffs']] == [
        ('review/g1.s1.p1@1', 'rejected')]
    # a later decision still waiting for the cart is listed too, after the refused one
    svc.decide(alice, 3, 0)
    assert [h['state'] for h in c.get('/api/queue').json()['handoffs']] == ['rejected', 'sent']
    assert 'waiting for the cart' in c.get('/r/3').text
    # a reviewer does not get the supervisors' list
    c2 = TestClient(create_app(svc))
    c2.post('/login', data={'username': 'alice', 'password': 'alice-password'})
    assert 'handoffs' not in c2.get('/api/queue').json()


def test_acks_that_do_not_match_a_decision_made_here(tmp_path):
    clock, sent = Clock(), []
    svc = make_service(tmp_path / 'r.sqlite', sent, clock)
    svc.on_request(request('g1.s1.p1@1'))
    svc.on_request(request('g1.s1.p2@1'))
    # unknown request: nothing stored
    assert svc.on_ack('review/nope', 'alice', ACK_APPLIED, '') == 'unknown'
    assert svc.store.audit_log('review/nope') == []
    # a decision this console did not make reached the cart: audited, request still open
    assert svc.on_ack('review/g1.s1.p1@1', 'mallory', ACK_APPLIED, '') == 'undecided'
    assert svc.store.request(1)['status'] == 'open'
    assert [a['action'] for a in svc.store.audit_log('review/g1.s1.p1@1')][-1] == \
        'ack_without_decision'
    alice = session(svc)
    svc.decide(alice, 2, 0)
    assert svc.on_ack('review/g1.s1.p2@1', 'mallory', ACK_APPLIED, '') == 'other_reviewer'
    assert svc.store.handoff('review/g1.s1.p2@1')['state'] == 'sent'
    assert svc.on_ack('review/g1.s1.p2@1', 'alice', ACK_REJECTED, 'x' * 5000) == 'rejected'
    assert len(svc.store.handoff('review/g1.s1.p2@1')['reason']) == 1000
    assert svc.on_ack('review/g1.s1.p2@1', 'alice', ACK_APPLIED, '') == 'conflict'
    assert svc.store.handoff('review/g1.s1.p2@1')['state'] == 'rejected'
    assert svc.on_ack('review/g1.s1.p2@1', 'alice', 7, '') == 'invalid'
    assert ack_problem('review/x', 0) and ack_problem('', ACK_APPLIED)
    assert ack_problem('review/x', ACK_REJECTED) is None


def test_a_version_1_database_is_migrated_and_its_decisions_are_sent_again(tmp_path):
    db, clock, sent = tmp_path / 'r.sqlite', Clock(), []
    svc = make_service(db, sent, clock)
    svc.on_request(request())
    decision = svc.decide(session(svc), 1, 1)
    svc.store.close()
    # what a version-1 file looks like: no hand-off table
    conn = sqlite3.connect(db)
    conn.executescript('DROP TABLE handoffs; UPDATE schema_version SET version = 1;')
    conn.close()
    again = []
    svc = make_service(db, again, clock)
    assert svc.store.handoff(decision.request_id)['state'] == 'sent'
    assert svc.resend() == [decision.request_id] and again == [decision]
    svc.store.close()
    conn = sqlite3.connect(db)
    assert conn.execute('SELECT version FROM schema_version').fetchall() == [(2,)]
    conn.close()
    # opening it again changes nothing
    svc = make_service(db, [], clock)
    assert svc.store.handoff(decision.request_id)['sends'] == 1


def test_a_newer_schema_is_still_refused(tmp_path):
    db = tmp_path / 'r.sqlite'
    ReviewStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute('UPDATE schema_version SET version = 3')
    conn.commit()
    conn.close()
    with pytest.raises(Exception, match='schema version 3'):
        ReviewStore(db)
