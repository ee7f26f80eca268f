"""Inputs from outside (messages, URLs) that used to answer 500 for everyone."""
import dataclasses

from fastapi.testclient import TestClient
from helpers import request, S
import pytest

from store_cart.model import CandidateData
from store_review.auth import PasswordHasher
from store_review.console import create_app
from store_review.service import request_problem, ReviewService
from store_review.store import ReviewStore

FAST = PasswordHasher(n=2 ** 4)
NAN, INF = float('nan'), float('inf')


def with_confidence(conf: float):
    r = request()
    return dataclasses.replace(r, candidates=(CandidateData('acct-a', 'COLA-330', 1, 1, conf),))


@pytest.mark.parametrize('req, field', [
    (dataclasses.replace(request(), delta_grams=NAN), 'delta_grams'),
    (dataclasses.replace(request(), delta_grams=-INF), 'delta_grams'),
    (with_confidence(NAN), 'confidence'),
    (with_confidence(INF), 'confidence'),
    (with_confidence(1.5), 'confidence'),
    (dataclasses.replace(request(), request_id=''), 'request_id'),
    (dataclasses.replace(request(), detail='x' * 100_000), 'text'),
])
def test_non_finite_numbers_are_refused_at_the_boundary_with_a_reason(req, field):
    problem = request_problem(req)
    assert problem is not None and field in problem


def test_a_good_request_passes():
    assert request_problem(request()) is None
    assert request_problem(with_confidence(0.0)) is None


@pytest.fixture
def service(tmp_path):
    svc = ReviewService(ReviewStore(tmp_path / 'r.sqlite'), lambda d: None, lambda: 10 * S,
                        hasher=FAST)
    svc.auth.add_user('alice', 'reviewer', 'alice-password', 0)
    return svc


def client(svc):
    c = TestClient(create_app(svc), raise_server_exceptions=False)
    assert c.post('/login', data={'username': 'alice', 'password': 'alice-password'},
                  follow_redirects=False).status_code == 303
    return c


def test_a_nan_request_does_not_break_the_queue_for_everyone(service):
    c = client(service)
    assert service.on_request(request('g1.s1.p1@1')) is True
    assert service.on_request(dataclasses.replace(request('g1.s1.p2@1'), delta_grams=NAN)) \
        is False
    assert service.on_request(with_confidence(NAN)) is False
    r = c.get('/api/queue')
    assert r.status_code == 200 and len(r.json()['requests']) == 1
    # a NaN row an older version stored still leaves the queue readable
    bad = dataclasses.replace(request('g1.s1.p3@1'), delta_grams=NAN).to_dict()
    assert service.store.add_request(bad, 10 * S)
    r = c.get('/api/queue')
    assert r.status_code == 200, r.text
    assert sorted(str(x['delta_grams']) for x in r.json()['requests']) == ['-352.0', 'None']
    assert c.get('/').status_code == 200
    assert c.get('/r/2').status_code == 200


@pytest.mark.parametrize('seq', [2 ** 63, 2 ** 70, 10 ** 30, 0, -1, -(2 ** 64)])
def test_ids_out_of_sqlite_range_are_not_found(service, seq):
    service.on_request(request())
    c = client(service)
    csrf = c.get('/r/1').text.split('name="csrf_token" value="')[1].split('"')[0]
    assert c.get(f'/r/{seq}').status_code == 404
    assert c.post(f'/r/{seq}/decide', data={'choice': 0, 'csrf_token': csrf}).status_code == 404
    assert c.get(f'/evidence/{seq}.jpg').status_code == 404
    assert c.get('/r/abc').status_code in (400, 404, 422)
