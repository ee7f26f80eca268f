"""A hostile name cannot run script in a reviewer's browser (headless Chromium, real server).

The console is served in this process (no ROS graph: the data arrives as it would from the
topics, through the service) with a request whose plate, gondola, detail, shoppers, SKU,
receipt and reviewer name all carry markup. The test logs in through the login page, opens the
queue and the request page, and checks that no dialog opened, no injected element exists and
no injected script set its marker; then that the hostile names are on the page as text.
"""
import time

import pytest

from store_cart.model import CandidateData, ReviewRequestData
from store_review.auth import PasswordHasher
from store_review.console import ConsoleServer, create_app
from store_review.service import ReviewService
from store_review.store import ReviewStore

S = 1_000_000_000

pytestmark = pytest.mark.graph


def hostile(tag: str) -> str:
    return (f'{tag}<script>window.pwned="{tag}";alert(1)</script>"><img src=x '
            f'onerror="window.pwned=\'{tag}\';alert(2)"></svg><svg onload=alert(3)>'
            f"'><b id=pwn-{tag}>x</b></text><text id=pwn-{tag}>")


def test_hostile_names_do_not_run_script_in_the_browser(tmp_path, chromium):
    hasher = PasswordHasher(n=2 ** 4)
    store = ReviewStore(tmp_path / 'review.sqlite')
    service = ReviewService(store, lambda d: None, time.time_ns, hasher=hasher)
    plate = hostile('plate')
    event = f'{plate}@1000000000'
    req = ReviewRequestData(
        request_id=f'review/{event}', event_id=event, reason=1, detail=hostile('detail'),
        gondola_id=hostile('gondola'), plate_ids=(plate,), delta_grams=-352.0,
        shopper_ids=(hostile('acct'),),
        candidates=(CandidateData(hostile('acct'), hostile('sku'), 1, 1, 0.5),),
        stamp_ns=2 * S)
    assert service.on_request(req)
    store.add_evidence(req.request_id, 'weight_trace', plate, 0, {
        't0_ns': 0, 't1_ns': 4 * S, 't_ms': [0, 1000, 2000], 'grams': [1000.0, 648.0, 648.0]})
    store.add_receipt({'receipt_id': hostile('receipt'), 'revision': 1,
                       'shopper_id': hostile('acct'), 'total_cents': 0, 'pending_reviews': 1,
                       'correction_note': hostile('note'), 'exited_ns': 0, 'lines': []})
    user = 'sue'
    service.auth.add_user(user, 'supervisor', 'sue-password', 0)
    server = ConsoleServer(create_app(service), port=0)
    server.start()
    dialogs = []
    try:
        page = chromium.new_page()
        page.on('dialog', lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f'{server.url}/login')
        page.fill('#username', user)
        page.fill('#password', 'sue-password')
        page.click('#login')
        page.wait_for_selector('#queue')
        for url in (f'{server.url}/', f'{server.url}/r/1'):
            page.goto(url)
            page.wait_for_load_state('load')
            assert page.evaluate('window.pwned') is None, url
            assert page.query_selector('[id^="pwn"]') is None, url
            assert page.query_selector('img[src="x"]') is None, url
            assert page.query_selector('iframe') is None, url
        text = page.inner_text('body')
        for tag in ('plate', 'detail', 'acct', 'sku', 'receipt', 'note'):
            assert f'id=pwn-{tag}>' in text, tag
        assert page.query_selector('svg.trace polyline') is not None
    finally:
        server.stop()
        store.close()
    assert dialogs == []
