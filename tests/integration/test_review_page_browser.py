"""The review page in a real browser: one request of each reason, decided by a person's clicks
and keys, with screenshots.

The console (the same app and server the review node runs) serves a review database filled the
way the node fills it: requests as the cart builds them, weight traces, and camera evidence cut
by ``ImageCollector`` from frames of the demo store's calibrated cameras, with the tracked
shoppers' boxes projected through the same camera models. Headless Chromium logs in, opens each
request, checks the clock times, "seconds after entering", the frame strip with the plate and
each candidate's box in the colour of their answers, screenshots the page, and decides it.
A weight-only store's page says so and shows no strip. Screenshots go to the test's folder
(and to $REVIEW_SCREENSHOTS when set).
"""
import os
import pathlib
import re
import shutil
import time

import numpy as np
import pytest

from store_cart.model import (
    ACTION_NONE, ACTION_RETURN, ACTION_TAKE, CandidateData, REASON_AMBIGUOUS_SHOPPER,
    REASON_CLOSE_CANDIDATES, REASON_LOW_CONFIDENCE, REASON_NO_SHOPPER, REASON_NOT_IN_CART,
    REASON_SPOT_CHECK, REASON_UNKNOWN_WEIGHT, ReviewRequestData)
from store_common.description import load_store
from store_review.console import clock_time, ConsoleServer, create_app, PageInfo
from store_review.evidence import (camera_views, FrameBuffer, ImageCollector, TrackBuffer)
from store_review.service import NO_CHANGE, ReviewService
from store_review.store import ReviewStore

ROOT = pathlib.Path(__file__).resolve().parents[2]
S = 1_000_000_000


def cand(sid, sku, action, qty, p):
    return CandidateData(sid, sku, action, qty, p)


def scenarios(plate: str, t0: int):
    """(reason, shoppers inside, candidates, the answer a person gives: candidate index or
    NO_CHANGE, and what the decision must be: (shopper, sku, quantity))."""
    a, b, c, d = 'acct-a', 'acct-b', 'acct-c', 'acct-d'
    none = cand('', '', ACTION_NONE, 0, 0.05)
    return [
        (REASON_AMBIGUOUS_SHOPPER, (a, b), (cand(a, 'COLA-330', ACTION_TAKE, 1, 0.5),
                                            cand(b, 'COLA-330', ACTION_TAKE, 1, 0.45), none),
         1, (b, 'COLA-330', 1)),
        (REASON_LOW_CONFIDENCE, (a,), (cand(a, 'COLA-330', ACTION_TAKE, 1, 0.6),
                                       cand(a, 'LEMON-330', ACTION_TAKE, 1, 0.3), none),
         1, (a, 'LEMON-330', 1)),
        (REASON_CLOSE_CANDIDATES, (a,), (cand(a, 'COLA-330', ACTION_TAKE, 2, 0.5),
                                         cand(a, 'COLA-330', ACTION_TAKE, 1, 0.45), none),
         0, (a, 'COLA-330', 2)),
        (REASON_UNKNOWN_WEIGHT, (a,), (cand('', '', ACTION_NONE, 0, 0.7),
                                       cand(a, 'COLA-330', ACTION_TAKE, 1, 0.2)),
         0, ('', '', 0)),
        # nobody inside at hand in: the shoppers inside just after are offered
        (REASON_NO_SHOPPER, (c, d), (cand('', '', ACTION_NONE, 0, 1.0),
                                     cand(c, 'COLA-330', ACTION_TAKE, 1, 0.0),
                                     cand(d, 'COLA-330', ACTION_TAKE, 1, 0.0)),
         1, (c, 'COLA-330', 1)),
        (REASON_NOT_IN_CART, (b,), (cand(b, 'COLA-330', ACTION_RETURN, 1, 0.8), none),
         NO_CHANGE, ('', '', 0)),
        # the machine decided alone (its decision first); the person sees it was the other one
        (REASON_SPOT_CHECK, (a, b), (cand(a, 'COLA-330', ACTION_TAKE, 1, 0.93),
                                     cand(b, 'COLA-330', ACTION_TAKE, 1, 0.05), none),
         1, (b, 'COLA-330', 1)),
    ]


@pytest.fixture
def filled_console(tmp_path):
    store = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')
    if not store.cameras:
        pytest.skip('the demo store has no cameras')
    views = camera_views(store)
    plate = 'g1.s1.p1'
    seeing = [v for v in views if plate in v.plates]
    assert seeing, 'no camera sees the plate'
    models = {c.id: c.model for c in store.cameras}
    db = ReviewStore(tmp_path / 'review.sqlite')
    service = ReviewService(db, lambda d: None, time.time_ns, session_ttl_s=3600)
    service.auth.add_user('demo', 'supervisor', 'demo-password-1', 0)
    now = time.time_ns() - 120 * S
    p = store.plates[plate]
    px, py, _ = p.center_store
    yaw = p.yaw_store + np.pi / 2
    expected = {}
    for k, (reason, inside, cands, answer, decision) in enumerate(scenarios(plate, now)):
        start = now + k * 10 * S
        settled = start + 2 * S
        event = f'{plate}@{start}'
        for i, sid in enumerate(inside):
            # one visit each: a and b came in before the first event, c and d a second
            # after the hand in of the "no shopper" one
            enter = now - (30 + 5 * i) * S if reason != REASON_NO_SHOPPER else start + S
            db.on_cart(sid, f'{sid}@{enter}', False, enter)
        req = ReviewRequestData(
            request_id=f'review/{event}', event_id=event, reason=reason,
            detail=f'test of reason {reason} at {start / S:.3f} s', gondola_id='g1',
            plate_ids=(plate,), delta_grams=-352.0, shopper_ids=tuple(inside),
            candidates=tuple(cands), stamp_ns=settled,
            label_chance=0.1 if reason == REASON_SPOT_CHECK else 1.0)
        assert service.on_request(req)
        db.add_evidence(req.request_id, 'weight_trace', plate, start - 2 * S, {
            't0_ns': start - 2 * S, 't1_ns': settled + 2 * S,
            't_ms': list(range(0, 6000, 100)),
            'grams': [3000.0 if t < 2000 else 2648.0 if t > 3500 else 2800.0
                      for t in range(0, 6000, 100)]})
        frames, tracks = FrameBuffer(keep_s=60), TrackBuffer(keep_s=60)
        for f in range(16):
            stamp = start - S + f * S // 4
            for v in seeing:
                m = models[v.camera_id]
                img = np.full((m.height, m.width, 3), 90, np.uint8)
                img[:, :, 1] = np.linspace(60, 200, m.width, dtype=np.uint8)[None, :]
                frames.add(v.camera_id, stamp, img)
            tracks.add(stamp, {sid: (px + (0.5 + 0.4 * i) * np.cos(yaw),
                                     py + (0.5 + 0.4 * i) * np.sin(yaw))
                               for i, sid in enumerate(inside)})
        collector = ImageCollector(frames, seeing, tmp_path / 'evidence', tracks=tracks,
                                   models=models)
        collector.request(req.request_id, event, (plate,), settled, inside)
        for rid, name, stamp, path, meta in collector.ready(settled + 10 * S):
            db.add_evidence(rid, 'image', name, stamp, meta, path)
        expected[req.request_id] = (reason, inside, answer, decision, start)
    # one more request without camera frames (as in a weight-only store)
    bare = ReviewRequestData(
        request_id='review/g2.s1.p1@1', event_id=f'g2.s1.p1@{now}', reason=REASON_LOW_CONFIDENCE,
        detail='no frames', gondola_id='g2', plate_ids=('g2.s1.p1',), delta_grams=-100.0,
        shopper_ids=('acct-a',), candidates=(cand('acct-a', 'COLA-330', ACTION_TAKE, 1, 0.6),),
        stamp_ns=now + 2 * S)
    assert service.on_request(bare)
    server = ConsoleServer(create_app(service, page_info=PageInfo.from_store(store)),
                           port=0)
    server.start()
    weight_only = ConsoleServer(create_app(service, page_info=PageInfo('EUR', (), True)),
                                port=0)
    weight_only.start()
    try:
        yield server.url, weight_only.url, service, expected, bare.request_id
    finally:
        server.stop()
        weight_only.stop()
        db.close()


def shot(page, tmp_path, name):
    path = tmp_path / f'{name}.png'
    page.screenshot(path=str(path), full_page=True)
    out = os.environ.get('REVIEW_SCREENSHOTS')
    if out:
        pathlib.Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, pathlib.Path(out) / path.name)


def test_a_person_decides_a_review_of_each_reason(filled_console, chromium, tmp_path):
    url, weight_only_url, service, expected, bare = filled_console
    page = chromium.new_page()
    page.set_viewport_size({'width': 1200, 'height': 900})
    page.goto(f'{url}/login')
    page.fill('#username', 'demo')
    page.fill('#password', 'demo-password-1')
    page.click('#login')
    page.wait_for_selector('#queue')
    seqs = {d['request_id']: d['seq'] for d in service.store.requests()}
    assert set(seqs) == set(expected) | {bare}
    for rid, (reason, inside, answer, decision, start) in expected.items():
        seq = seqs[rid]
        page.goto(f'{url}/r/{seq}')
        page.wait_for_selector('form.decide')
        text = page.inner_text('main')
        # times: the store's clock, seconds after entering; no epoch stamps
        assert clock_time(start) in page.inner_text('#when')
        assert not re.search(r'\b1[0-9]{9}(\.[0-9]+)? s\b', text)
        if reason != REASON_NO_SHOPPER:
            assert 'after entering' in text
        else:
            assert 'before entering' in text and 'Nobody inside at hand in' in text
        # every shopper inside is offered, in their colour
        for sid in inside:
            assert page.locator(f'button.cand[data-shopper="{sid}"]').count() >= 1, sid
        assert 'Nothing was taken or returned' in text or reason == REASON_NOT_IN_CART
        assert 'Leave every cart unchanged (cannot tell)' in text
        assert 'No camera saw this plate' not in text
        # a spot check says what the machine decided and that the cart holds it
        if reason == REASON_SPOT_CHECK:
            said = page.inner_text('#spot-check')
            assert 'decided this event alone' in said and 'COLA-330' in said, said
            assert 'One in 10' in said and 'acct-a' in said, said
            assert page.inner_text('h2').startswith('Spot check')
        else:
            assert page.locator('#spot-check').count() == 0
        # the frame strip from hand in to settled, the plate and the shoppers' boxes
        frames = page.locator('figure.frame')
        assert frames.count() >= 2
        assert page.locator('.ov.plate').count() == frames.count()
        assert 'hand in to settled' in text
        for sid in inside:
            boxes = page.locator(f'.ov.track[data-shopper="{sid}"]')
            assert boxes.count() >= 1, f'no box of {sid}'
            box_color = boxes.first.evaluate('e => getComputedStyle(e).borderTopColor')
            who_color = page.locator(f'.who[data-shopper="{sid}"]').first.evaluate(
                'e => getComputedStyle(e).borderLeftColor')
            assert box_color == who_color, (sid, box_color, who_color)
            assert page.locator(f'.ov.track[data-shopper="{sid}"] span').first.inner_text() \
                == sid
        # every image actually loads
        assert page.evaluate('[...document.images].every(i => i.complete && '
                             'i.naturalWidth > 0)')
        shot(page, tmp_path, f'reason_{reason}')
        # decide: by key where the answer has one, else by clicking it
        form = page.locator(f'form.decide:has(input[name="choice"][value="{answer}"])')
        key = form.get_attribute('data-key')
        if key:
            page.keyboard.press(key)
        else:
            form.locator('button').click()
        page.wait_for_url(lambda u: not u.endswith(f'/r/{seq}'))
        d = service.store.decision(rid)
        assert d is not None, f'{rid} not decided'
        got = d['decision']
        assert (got['shopper_id'], got['sku'], got['quantity']) == decision, (reason, got)
    # the camera store's request without frames says the store has cameras
    page.goto(f'{url}/r/{seqs[bare]}')
    assert 'This store has cameras (cam1' in page.inner_text('#no-frames')
    shot(page, tmp_path, 'camera_store_no_frames')
    # a weight-only store says so, and shows no strip
    page.goto(f'{weight_only_url}/login')
    page.fill('#username', 'demo')
    page.fill('#password', 'demo-password-1')
    page.click('#login')
    page.goto(f'{weight_only_url}/r/{seqs[bare]}')
    assert 'This store has no cameras (weight only)' in page.inner_text('#no-frames')
    assert page.locator('figure.frame').count() == 0
    shot(page, tmp_path, 'weight_only')
