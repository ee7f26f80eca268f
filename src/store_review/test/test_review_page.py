"""The review page a person decides in seconds: clock times, money, cameras or not, every
shopper offered, the two "no change" answers apart, shopper boxes over the frames; the console
on its own (review_console) and its port."""
import pathlib
import re
import socket
import time

from fastapi.testclient import TestClient
from helpers import request, S
import numpy as np
import pytest

from store_cart.model import CandidateData, REASON_NO_SHOPPER, ReviewRequestData
from store_common.description import load_store
from store_review import console_cli
from store_review.console import (clock_time, COOKIE, ConsoleServer, create_app, money,
                                  PageInfo, PortTaken, readable_detail)
from store_review.evidence import (box_in_crop, camera_views, FrameBuffer, ImageCollector,
                                   person_box, TrackBuffer)
from store_review.service import ReviewService
from store_review.store import ReviewStore
from test_auth_console import Clock, FAST

ROOT = pathlib.Path(__file__).resolve().parents[3]
T0 = 1_796_406_000 * S          # a wall-clock stamp, like the live graph's
EVENT = f'g1.s1.p1@{T0 + 30 * S}'


@pytest.fixture(scope='module')
def demo_store():
    s = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')
    if not s.cameras:
        pytest.skip('the demo store has no cameras')
    return s


def make_console(tmp_path, info: PageInfo, req: ReviewRequestData):
    store = ReviewStore(tmp_path / 'r.sqlite')
    clock = Clock()
    clock.ns = T0 + 60 * S
    service = ReviewService(store, lambda d: None, clock, session_ttl_s=3600, hasher=FAST)
    service.auth.add_user('alice', 'supervisor', 'alice-password', 0)
    service.on_request(req)
    client = TestClient(create_app(service, page_info=info))
    r = client.post('/login', data={'username': 'alice', 'password': 'alice-password'},
                    follow_redirects=False)
    assert r.status_code == 303 and COOKIE in r.cookies
    return service, client


def demo_request(reason=1, shoppers=('acct-a', 'acct-b')) -> ReviewRequestData:
    r = request(EVENT, shoppers=shoppers, reason=reason, stamp_s=0)
    return ReviewRequestData(**{**r.to_dict(), 'candidates': r.candidates,
                                'plate_ids': tuple(r.plate_ids),
                                'shopper_ids': tuple(r.shopper_ids),
                                'detail': f'2 possible shoppers at {(T0 + 30 * S) / S:.3f} s',
                                'stamp_ns': T0 + 32 * S})


def test_money_and_clock_time_are_for_people():
    assert money(349, 'EUR') == '3.49 EUR' and money(-45, 'EUR') == '-0.45 EUR'
    assert money(500, 'JPY') == '500 JPY' and money('x', 'EUR') == '?'
    stamp = T0 + 1_400_000_000
    expect = time.strftime('%H:%M:%S', time.localtime(stamp / S)) + '.4'
    assert clock_time(stamp).startswith(expect) and clock_time(stamp, False) == expect
    text = readable_detail('2 possible shoppers at 1796406007.689 s: acct-a (p=0.50)')
    assert '1796406007' not in text and re.search(r'at \d\d:\d\d:\d\d\.6', text)
    assert readable_detail('took 12.5 s') == 'took 12.5 s'


def test_page_shows_clock_times_money_and_no_epoch_stamps(tmp_path):
    service, client = make_console(tmp_path, PageInfo('EUR', (), True), demo_request())
    service.store.on_cart('acct-a', f'acct-a@{T0 + 20 * S}', False, T0 + 20 * S)
    service.store.add_receipt({'receipt_id': 'acct-a@1', 'revision': 0, 'shopper_id': 'acct-a',
                               'total_cents': 349, 'pending_reviews': 1, 'currency': 'EUR',
                               'correction_note': '', 'exited_ns': 0, 'lines': []})
    page = client.get('/r/1').text
    assert clock_time(T0 + 30 * S) in page                        # hand in, local clock
    assert '10.0 s after entering' in page                        # acct-a entered 10 s before
    assert '3.49 EUR' in page and 'cents' not in page
    assert not re.search(r'1796\d{6}', page.split('<main>')[1].replace(EVENT, ''))


def test_weight_only_and_camera_stores_say_which_applies(tmp_path):
    _, client = make_console(tmp_path / 'a', PageInfo('EUR', (), True), demo_request())
    page = client.get('/r/1').text
    assert 'This store has no cameras (weight only)' in page
    _, client = make_console(tmp_path / 'b', PageInfo('EUR', ('cam1', 'cam2'), True),
                             demo_request())
    page = client.get('/r/1').text
    assert 'This store has cameras (cam1, cam2)' in page and 'no cameras' not in page
    assert 'No camera saw this plate' not in page


def test_every_shopper_is_offered_and_the_two_no_change_answers_differ(tmp_path):
    # a "no shopper" review as the cart now builds it: nearby shoppers at p=0
    cands = (CandidateData('', '', 0, 0, 1.0), CandidateData('acct-a', 'COLA-330', 1, 1, 0.0),
             CandidateData('acct-b', 'COLA-330', 1, 1, 0.0))
    req = ReviewRequestData(
        request_id=f'review/{EVENT}', event_id=EVENT, reason=REASON_NO_SHOPPER, detail='x',
        gondola_id='g1', plate_ids=('g1.s1.p1',), delta_grams=-352.0,
        shopper_ids=('acct-a', 'acct-b'), candidates=cands, stamp_ns=T0 + 32 * S)
    service, client = make_console(tmp_path, PageInfo('EUR', (), True), req)
    page = client.get('/r/1').text
    for sid in ('acct-a', 'acct-b'):
        assert f'{sid} took 1 x COLA-330' in page
    assert 'Nothing was taken or returned' in page
    assert 'Leave every cart unchanged (cannot tell)' in page
    assert page.count('no product change') == 0
    # each shopper's answers carry the shopper's colour, different shoppers different colours
    colors = dict(re.findall(r'data-shopper="(acct-[ab])" style="border-color:(#[0-9a-f]{6})',
                             page))
    assert len(set(colors.values())) == 2
    # deciding acct-b (choice index 2) publishes that candidate
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post('/r/1/decide', data={'choice': 2, 'csrf_token': csrf})
    assert r.status_code == 200
    assert service.store.decision(req.request_id)['decision']['shopper_id'] == 'acct-b'


def test_frames_strip_with_plate_and_shopper_boxes_in_the_answer_colours(tmp_path):
    service, client = make_console(tmp_path, PageInfo('EUR', ('cam1',), True), demo_request())
    jpg = tmp_path / 'f.jpg'
    jpg.write_bytes(b'\xff\xd8\xff\xd9')
    for k, dt in enumerate((-0.5, 0.5, 2.5)):
        stamp = T0 + 30 * S + int(dt * S)
        service.store.add_evidence(f'review/{EVENT}', 'image', f'cam1@{stamp}', stamp, {
            'camera_id': 'cam1', 'width': 200, 'height': 100,
            'plate_box_in_crop': [50, 40, 60, 20],
            'shoppers': [{'shopper_id': 'acct-b', 'box': [100, 0, 50, 100], 'candidate': True}]},
            str(jpg))
    page = client.get('/r/1').text
    assert page.count('<figure class="frame"') == 3
    assert 'before hand in' in page and 'hand in to settled' in page and 'after settled' in page
    assert 'left:25.00%;top:40.00%;width:30.00%;height:20.00%' in page    # the plate
    box = re.search(r'class="ov track" style="left:50.00%;top:0.00%;width:25.00%;'
                    r'height:100.00%;border-color:(#[0-9a-f]{6})"', page)
    button = re.search(r'data-shopper="acct-b" style="border-color:(#[0-9a-f]{6})', page)
    assert box and button and box.group(1) == button.group(1)


def test_track_buffer_and_person_boxes(demo_store):
    tb = TrackBuffer(keep_s=5)
    tb.add(10 * S, {'acct-a': (1.0, 2.0), '': (0.0, 0.0)})
    tb.add(11 * S, {'acct-a': (1.5, 2.0), 'acct-b': (3.0, 1.0)})
    tb.add(10 * S, {'acct-a': (9.0, 9.0)})                  # out of order: dropped
    assert tb.at(10_200_000_000) == {'acct-a': (1.0, 2.0)}
    assert set(tb.at(11 * S)) == {'acct-a', 'acct-b'}
    assert tb.at(20 * S) == {}
    cam = demo_store.cameras[0]
    plate = next(iter(demo_store.plates.values()))
    x, y, _ = plate.center_store
    box = person_box(cam.model, x, y)
    if box is not None:
        bx, by, bw, bh = box
        assert 0 <= bx and 0 <= by and bx + bw <= cam.model.width and by + bh <= cam.model.height
    assert box_in_crop((10, 10, 50, 50), (30, 30), (100, 100)) == (0, 0, 30, 30)
    assert box_in_crop((10, 10, 5, 5), (30, 30), (100, 100)) is None


def test_image_evidence_carries_the_tracked_shoppers_boxes(demo_store, tmp_path):
    views = camera_views(demo_store)
    view = next(v for v in views if v.plates)
    plate_id = next(iter(view.plates))
    model = next(c.model for c in demo_store.cameras if c.id == view.camera_id)
    plate = demo_store.plates[plate_id]
    px, py, _ = plate.center_store
    frames = FrameBuffer()
    tracks = TrackBuffer()
    img = np.full((model.height, model.width, 3), 128, np.uint8)
    # a shopper standing half a metre in front of the plate, in every view
    for k in range(6):
        stamp = T0 + k * S // 2
        frames.add(view.camera_id, stamp, img)
        tracks.add(stamp, {'acct-a': (px + 0.5 * np.cos(plate.yaw_store + np.pi / 2),
                                      py + 0.5 * np.sin(plate.yaw_store + np.pi / 2)),
                           'acct-z': (px, py)})
    col = ImageCollector(frames, [view], tmp_path, tracks=tracks,
                         models={view.camera_id: model})
    col.request('rq', f'{plate_id}@{T0 + S}', [plate_id], T0 + S + S // 2, ['acct-a'])
    out = col.ready(T0 + 10 * S)
    assert out and any(meta['shoppers'] for *_, meta in out)
    for _, _, _, path, meta in out:
        assert pathlib.Path(path).is_file()
        ids = [b['shopper_id'] for b in meta['shoppers']]
        assert 'acct-a' not in ids or ids[0] == 'acct-a'      # candidates first
        for b in meta['shoppers']:
            x, y, w, h = b['box']
            assert 0 <= x and 0 <= y and x + w <= meta['width'] and y + h <= meta['height']
            assert b['candidate'] == (b['shopper_id'] == 'acct-a')


def test_a_taken_port_is_an_error_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(PortTaken, match=f'127.0.0.1 port {port}'):
            ConsoleServer(None, '127.0.0.1', port)      # binds before it needs an app
        ReviewStore(tmp_path / 'r.sqlite').close()
        assert console_cli.main(['--db', str(tmp_path / 'r.sqlite'), '--port', str(port)]) == 2
    assert console_cli.main(['--db', str(tmp_path / 'missing.sqlite'), '--port', '0']) == 2


def test_review_console_applies_decisions_to_the_runs_cart_database(tmp_path):
    import sys
    sys.path.insert(0, str(ROOT / 'src' / 'store_cart' / 'test'))
    from cart_helpers import enter, feed, leave, ns, shelf, take
    from store_cart.engine import CartEngine
    store_file = ROOT / 'config' / 'stores' / 'demo.yaml'
    demo = load_store(store_file)
    cart_db = tmp_path / 'carts.sqlite'
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.99)])
    with CartEngine(str(cart_db), demo.catalog, demo.id) as engine:
        outs = feed(engine, [('gate', enter('acct-a', 1.0)), ('gate', enter('acct-b', 2.0)),
                             ('shelf', ev), ('tick', ns(7.0)), ('gate', leave('acct-a', 10.0)),
                             ('gate', leave('acct-b', 11.0)), ('tick', ns(20.0))])
    (req,) = [o for o in outs if isinstance(o, ReviewRequestData)]
    db = ReviewStore(tmp_path / 'review.sqlite')
    cart = console_cli.OfflineCart(str(cart_db), str(store_file))
    service = ReviewService(db, cart.apply, lambda: ns(30.0), hasher=FAST)
    service.auth.add_user('demo', 'supervisor', 'demo-password-1', 0)
    assert service.on_request(req)
    session = service.auth.login('demo', 'demo-password-1', ns(30.0))
    choice = next(i for i, c in enumerate(req.candidates) if c.shopper_id == 'acct-b'
                  and c.quantity == 1)
    service.decide(session, db.request(req.request_id)['seq'], choice)
    assert db.handoff(req.request_id)['state'] != 'applied'      # not before deliver
    cart.deliver(service)
    assert db.handoff(req.request_id)['state'] == 'applied'
    latest = {r['shopper_id']: r for r in db.receipts()}          # by revision order
    assert latest['acct-b']['revision'] == 2 and latest['acct-b']['pending_reviews'] == 0
    assert [ln['sku'] for ln in latest['acct-b']['lines']] == ['COLA-330']
    assert latest['acct-a']['lines'] == []
    cart.close()
    db.close()
