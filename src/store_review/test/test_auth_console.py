"""Passwords, sessions, CSRF, roles: the pure logic and the console's HTTP endpoints."""
import re

from fastapi.testclient import TestClient
from helpers import request, S
import pytest

from store_review.auth import Auth, AuthError, PasswordHasher, token_hash
from store_review.console import COOKIE, create_app
from store_review.service import ReviewService
from store_review.store import QueueParams, ReviewStore

FAST = PasswordHasher(n=2 ** 4)     # the default cost (2^17) takes ~0.5 s a hash


def test_password_hash_is_salted_and_verifies():
    a, b = FAST.hash('correct horse'), FAST.hash('correct horse')
    assert a != b and 'correct horse' not in a and a.startswith('scrypt$')
    assert FAST.verify('correct horse', a) and FAST.verify('correct horse', b)
    assert not FAST.verify('correct hors', a)
    assert not FAST.verify('x', 'garbage')
    assert not FAST.verify('x', 'scrypt$1048577$8$1$00$00')     # absurd costs: not run
    assert not FAST.verify('x', 'scrypt$1048576$8$1$00$00')     # 1 GiB
    assert not FAST.verify('x', 'scrypt$16$8$64$00$00')


def test_sessions_expire_and_forged_tokens_fail(tmp_path):
    store = ReviewStore(tmp_path / 'r.sqlite')
    auth = Auth(store, session_ttl_s=60, hasher=FAST)
    auth.add_user('alice', 'reviewer', 'alice-password', 0)
    with pytest.raises(AuthError):
        auth.login('alice', 'wrong-password', 0)
    with pytest.raises(AuthError):
        auth.login('mallory', 'alice-password', 0)
    s = auth.login('alice', 'alice-password', 0)
    # only the hash of the token is stored
    assert store.session(s.token) is None and store.session(token_hash(s.token))
    assert auth.session(s.token, 59 * S).user == 'alice'
    with pytest.raises(AuthError):
        auth.session(s.token, 60 * S)
    with pytest.raises(AuthError):
        auth.session(s.token[:-2] + 'xx', 1 * S)
    Auth.check_csrf(s, s.csrf)
    with pytest.raises(AuthError):
        Auth.check_csrf(s, '')
    with pytest.raises(AuthError):
        Auth.check_csrf(s, s.csrf + 'x')
    with pytest.raises(ValueError):
        auth.add_user('bob', 'reviewer', 'short', 0)
    with pytest.raises(ValueError):
        auth.add_user('bob', 'admin', 'long-enough-pw', 0)


class Clock:
    def __init__(self):
        self.ns = 100 * S

    def __call__(self):
        return self.ns


@pytest.fixture
def console(tmp_path):
    store = ReviewStore(tmp_path / 'r.sqlite', QueueParams(escalate_after_s=60,
                                                           expire_after_s=120))
    published = []
    clock = Clock()
    service = ReviewService(store, published.append, clock, session_ttl_s=3600, hasher=FAST)
    service.auth.add_user('alice', 'reviewer', 'alice-password', 0)
    service.auth.add_user('bob', 'reviewer', 'bob-password1', 0)
    service.auth.add_user('sue', 'supervisor', 'sue-password', 0)
    service.on_request(request('g1.s1.p1@1000000000'))
    return service, published, clock


def login(service, name, password):
    c = TestClient(create_app(service))
    r = c.post('/login', data={'username': name, 'password': password},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    page = c.get('/r/1')
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    return c, (m.group(1) if m else None)


def test_unauthenticated_requests_are_refused(console):
    service, published, _ = console
    c = TestClient(create_app(service))
    assert c.get('/', follow_redirects=False).status_code == 303
    assert c.get('/', follow_redirects=False).headers['location'] == '/login'
    assert c.get('/api/queue').status_code == 401
    assert c.post('/r/1/decide', data={'choice': 0, 'csrf_token': 'x'}).status_code == 401
    c.cookies.set(COOKIE, 'forged-token')
    assert c.get('/api/queue').status_code == 401
    assert c.post('/login', data={'username': 'alice', 'password': 'nope'}).status_code == 401
    assert published == []


def test_login_cookie_is_httponly_samesite(console):
    service, _, _ = console
    c = TestClient(create_app(service))
    r = c.post('/login', data={'username': 'alice', 'password': 'alice-password'},
               follow_redirects=False)
    cookie = r.headers['set-cookie'].lower()
    assert 'httponly' in cookie and 'samesite=strict' in cookie


def test_decision_needs_the_sessions_own_csrf_token(console):
    service, published, _ = console
    alice, alice_csrf = login(service, 'alice', 'alice-password')
    bob, bob_csrf = login(service, 'bob', 'bob-password1')
    assert alice_csrf and bob_csrf and alice_csrf != bob_csrf
    assert alice.post('/r/1/decide', data={'choice': 0}).status_code == 403
    assert alice.post('/r/1/decide', data={'choice': 0, 'csrf_token': 'x'}).status_code == 403
    # bob's CSRF token does not work with alice's session
    assert alice.post('/r/1/decide', data={'choice': 0,
                                           'csrf_token': bob_csrf}).status_code == 403
    assert published == []
    r = alice.post('/r/1/decide', data={'choice': 1, 'csrf_token': alice_csrf})
    assert r.status_code == 200, r.text
    [d] = published
    # the decision is the session's user's, whatever the form says
    assert d.reviewer_id == 'alice' and d.shopper_id == 'acct-b' and d.sku == 'COLA-330'
    assert service.store.request(1)['status'] == 'decided'
    assert service.store.examples()[0]['answer']['shopper_id'] == 'acct-b'
    again = bob.post('/r/1/decide', data={'choice': 0, 'csrf_token': bob_csrf})
    assert again.status_code == 409 and len(published) == 1


def test_no_change_choice_and_bad_choice(console):
    service, published, _ = console
    c, csrf = login(service, 'alice', 'alice-password')
    assert c.post('/r/1/decide', data={'choice': 7, 'csrf_token': csrf}).status_code == 403
    assert c.post('/r/1/decide', data={'choice': -1, 'csrf_token': csrf}).status_code == 200
    assert published[0].quantity == 0 and published[0].shopper_id == ''


def test_reviewer_cannot_reach_escalated_requests_but_supervisor_can(console):
    service, published, clock = console
    alice, csrf = login(service, 'alice', 'alice-password')
    clock.ns += 61 * S
    assert service.sweep() == [(request().request_id, 'escalated')]
    assert alice.get('/api/queue').json()['requests'] == []
    assert alice.get('/r/1').status_code == 404
    assert alice.post('/r/1/decide', data={'choice': 0, 'csrf_token': csrf}).status_code == 403
    sue, sue_csrf = login(service, 'sue', 'sue-password')
    assert [r['status'] for r in sue.get('/api/queue').json()['requests']] == ['escalated']
    assert sue.post('/r/1/decide', data={'choice': 0, 'csrf_token': sue_csrf}).status_code == 200
    assert published[0].reviewer_id == 'sue'


def test_event_page_shows_candidates_trace_and_keys(console):
    service, _, _ = console
    service.store.add_evidence(request().request_id, 'weight_trace', 'g1.s1.p1', 0, {
        't0_ns': 0, 't1_ns': 4 * S, 't_ms': [0, 1000, 2000, 3000],
        'grams': [1000.0, 1500.0, 648.0, 648.0]})
    c, _ = login(service, 'alice', 'alice-password')
    page = c.get('/r/1').text
    assert '<svg' in page and '<polyline' in page
    assert 'acct-a took 1 x COLA-330<br><small>p=0.45' in page
    assert 'data-key="1"' in page and 'data-key="0"' in page and 'keydown' in page
    queue = c.get('/').text
    assert 'review/g1.s1.p1@1000000000' in queue


def test_logout_ends_the_session(console):
    service, _, _ = console
    c, csrf = login(service, 'alice', 'alice-password')
    assert c.post('/logout', data={'csrf_token': 'bad'}).status_code == 403
    assert c.post('/logout', data={'csrf_token': csrf}, follow_redirects=False).status_code == 303
    assert c.get('/api/queue').status_code == 401


def test_the_request_api_gives_each_answer_with_its_choice_and_the_csrf_token(console):
    service, published, clock = console
    anon = TestClient(create_app(service))
    assert anon.get('/api/r/1').status_code == 401
    alice, _ = login(service, 'alice', 'alice-password')
    assert alice.get('/api/r/99').status_code == 404
    d = alice.get('/api/r/1').json()
    assert d['request_id'] == 'review/g1.s1.p1@1000000000' and d['plate_ids'] == ['g1.s1.p1']
    assert d['start_ns'] == 1000000000 and d['stamp_ns'] == 2 * S and not d['spot_check']
    who = [(c['choice'], c['shopper_id'], c['sku'], c['quantity']) for c in d['choices']]
    assert who == [(0, 'acct-a', 'COLA-330', 1), (1, 'acct-b', 'COLA-330', 1), (2, '', '', 0),
                   (-1, '', '', 0)]
    assert d['choices'][-1]['cannot_tell'] and d['decision'] is None
    # the token in the header decides, as the form field does; without it, nothing
    assert alice.post('/r/1/decide', data={'choice': 1}).status_code == 403
    r = alice.post('/r/1/decide', data={'choice': 1}, headers={'X-CSRF-Token': d['csrf_token']})
    assert r.status_code == 200, r.text
    assert [x.shopper_id for x in published] == ['acct-b']
    after = alice.get('/api/r/1').json()
    assert after['status'] == 'decided' and after['decision']['choice'] == 1
    assert (after['decision']['reviewer'], after['decision']['decision']['shopper_id']) == (
        'alice', 'acct-b')
    # another session's token is not this one's
    bob, _ = login(service, 'bob', 'bob-password1')
    assert bob.get('/api/r/1').json()['csrf_token'] != d['csrf_token']
