"""The benches' simulated reviewer works the real console over HTTP and answers from the truth."""
import json
import socket

import pytest

from store_cart.model import ACTION_TAKE, CandidateData, ReviewRequestData
from store_review.auth import PasswordHasher
from store_review.console import ConsoleServer, create_app
from store_review.service import NO_CHANGE, ReviewService
from store_review.store import ReviewStore

from store_bench.console_reviewer import ConsoleReviewer, pick_choice, summary_text
from store_bench.reviewer_sim import TruthAction

S = 1_000_000_000


def req(plate, stamp_s, shoppers, sku='COLA-330', nothing=True, spot=False):
    cands = tuple(CandidateData(s, sku, ACTION_TAKE, 1, 0.4) for s in shoppers)
    cands += (CandidateData('', '', 0, 0, 0.1),) if nothing else ()
    rid = f'{"spot-check" if spot else "review"}/{plate}@{int((stamp_s - 1) * S)}'
    return ReviewRequestData(
        request_id=rid, event_id=f'{plate}@{int((stamp_s - 1) * S)}', reason=8 if spot else 1,
        detail='test', gondola_id='g1', plate_ids=(plate,), delta_grams=-352.0,
        shopper_ids=tuple(shoppers), candidates=cands, stamp_ns=int(stamp_s * S),
        label_chance=0.1 if spot else 1.0)


def truth_line(stamp_s, shopper, plate, sku='COLA-330', qty=1):
    return json.dumps({'event': 'action', 'stamp_ns': int(stamp_s * S), 'shopper_id': shopper,
                       'plate': plate, 'sku': sku, 'kind': 'take', 'quantity': qty})


def _serve(tmp_path):
    """(review service, the decisions it published, its running console server)."""
    published = []
    svc = ReviewService(ReviewStore(tmp_path / 'review.sqlite'), published.append,
                        lambda: 100 * S, hasher=PasswordHasher(n=2 ** 4))
    svc.auth.add_user('sim-reviewer', 'reviewer', 'sim-password', 0)
    server = ConsoleServer(create_app(svc), port=0)
    server.start()
    return svc, published, server


@pytest.fixture
def console(tmp_path):
    svc, published, server = _serve(tmp_path)
    yield svc, published, server.url
    server.stop()


def test_it_answers_each_request_with_the_truth_through_the_console(console, tmp_path):
    svc, published, url = console
    # truth: b took the can at p1; at p2 nobody did anything; c took 2 at p3, never offered
    (tmp_path / 'ground_truth.jsonl').write_text('\n'.join([
        json.dumps({'event': 'enter', 'shopper_id': 'a'}),
        truth_line(10.0, 'b', 'g1.s1.p1'), truth_line(30.0, 'c', 'g1.s1.p3', qty=2)]) + '\n')
    svc.on_request(req('g1.s1.p1', 10.5, ('a', 'b')))
    svc.on_request(req('g1.s1.p2', 20.5, ('a', 'b')))
    svc.on_request(req('g1.s1.p3', 30.5, ('a', 'c'), spot=True))
    bot = ConsoleReviewer(tmp_path, 'sim-password', delay_s=0.0, poll_s=0.05, url=url)
    bot.login()
    assert bot.step() == 3
    assert [(d.shopper_id, d.quantity) for d in published] == [('b', 1), ('', 0), ('', 0)]
    assert [a['how'] for a in bot.answers] == ['exact', 'nothing', 'not offered']
    assert [a['choice'] for a in bot.answers] == [1, 2, NO_CHANGE]
    assert bot.answers[2]['spot_check'] and bot.answers[2]['truth']['quantity'] == 2
    assert all(d.reviewer_id == 'sim-reviewer' for d in published)
    assert [r['status'] for r in svc.store.requests()] == ['decided'] * 3
    assert len((tmp_path / 'reviewer_answers.jsonl').read_text().splitlines()) == 3
    assert bot.step() == 0          # nothing left, nothing decided twice


def test_it_waits_its_delay_and_finds_the_console_from_the_run_folder(console, tmp_path):
    svc, published, url = console
    (tmp_path / 'ground_truth.jsonl').write_text(truth_line(10.0, 'a', 'g1.s1.p1') + '\n')
    svc.on_request(req('g1.s1.p1', 10.5, ('a', 'b')))
    bot = ConsoleReviewer(tmp_path, 'sim-password', delay_s=0.3, poll_s=0.05).start()
    try:
        (tmp_path / 'review_url.txt').write_text(url + '\n')
        for _ in range(200):
            if published:
                break
            bot._stop.wait(0.05)
    finally:
        bot.stop()
    assert [d.shopper_id for d in published] == ['a']
    assert bot.summary()['answered'] == 1


def test_a_console_not_up_yet_is_waited_for_not_an_error(tmp_path):
    with socket.socket() as sock:          # a port nobody listens on
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    (tmp_path / 'review_url.txt').write_text(f'http://127.0.0.1:{port}\n')
    bot = ConsoleReviewer(tmp_path, 'sim-password', delay_s=0.0, poll_s=0.02).start()
    try:
        for _ in range(200):
            if bot.console_waits >= 3:
                break
            bot._stop.wait(0.02)
    finally:
        bot.stop()
    got = bot.summary()
    assert got['console_waits'] >= 3 and got['errors'] == 0 and got['first_errors'] == []


def _wait(bot, cond):
    for _ in range(500):
        if cond():
            return
        bot._stop.wait(0.02)
    raise AssertionError('timed out')


def _console_closing(tmp_path, pending_after_close):
    """A reviewer that answered a request, then the console closed (with one more request in
    its queue that it had seen but not yet answered, when ``pending_after_close``)."""
    svc, _published, server = _serve(tmp_path)
    (tmp_path / 'ground_truth.jsonl').write_text(truth_line(10.0, 'a', 'g1.s1.p1') + '\n')
    svc.on_request(req('g1.s1.p1', 10.5, ('a', 'b')))
    bot = ConsoleReviewer(tmp_path, 'sim-password', delay_s=0.0, poll_s=0.02,
                          url=server.url).start()
    try:
        _wait(bot, lambda: bot.answers)
        if pending_after_close:
            bot.delay_s = 60.0             # seen from now on, answered only after a minute
            svc.on_request(req('g1.s1.p2', 20.5, ('a', 'b')))
            _wait(bot, lambda: bot.unanswered())
        server.stop()
        _wait(bot, lambda: bot.console_gone + len(bot.errors) >= 3)
    finally:
        bot.stop()
        server.stop()
    return bot.summary()


def test_a_console_closed_after_every_answer_is_gone_not_an_error(tmp_path):
    got = _console_closing(tmp_path, pending_after_close=False)
    assert got['answered'] == 1 and got['console_gone'] >= 3
    assert got['errors'] == 0 and got['first_errors'] == []
    assert summary_text(got) == 'reviewer answered 1 (0 spot checks), 0 errors'


def test_a_console_closed_with_a_request_unanswered_is_an_error(tmp_path):
    got = _console_closing(tmp_path, pending_after_close=True)
    assert got['console_gone'] == 0 and got['errors'] >= 3
    assert 'refused' in got['first_errors'][0].lower()
    assert summary_text(got).startswith(f'reviewer answered 1 (0 spot checks), {got["errors"]} '
                                        'errors (first: URLError')


def test_a_wrong_password_answers_nothing(console, tmp_path):
    svc, published, url = console
    svc.on_request(req('g1.s1.p1', 10.5, ('a', 'b')))
    bot = ConsoleReviewer(tmp_path, 'not-the-password', delay_s=0.0, url=url)
    with pytest.raises(OSError):
        bot.login()
    assert published == []


def test_pick_choice_matches_every_field():
    choices = [{'choice': 0, 'shopper_id': 'a', 'sku': 'COLA-330', 'action': 1, 'quantity': 1},
               {'choice': 1, 'shopper_id': 'a', 'sku': 'COLA-330', 'action': 1, 'quantity': 2},
               {'choice': NO_CHANGE, 'shopper_id': '', 'sku': '', 'action': 0, 'quantity': 0}]
    two = TruthAction(0, 'a', ('p',), 'COLA-330', 1, 2)
    assert pick_choice(choices, two) == (1, 'exact')
    assert pick_choice(choices, TruthAction(0, 'b', ('p',), 'COLA-330', 1, 2)) == (
        NO_CHANGE, 'not offered')
    assert pick_choice(choices, None) == (NO_CHANGE, 'not offered')   # "nothing" not offered
    with pytest.raises(ValueError):
        ConsoleReviewer('.', 'pw', error_rate=2.0)
