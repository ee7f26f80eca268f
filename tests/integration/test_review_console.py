"""The reviewer console for real: simulated store, review and cart nodes, headless Chromium.

Two shoppers are in the store together when one of them takes a can, so the cart cannot tell
whose hand it was and asks for review. Both leave before anyone answers (their receipts say one
review is pending). The test logs in through the login page, opens the request from the queue,
answers with the keyboard, and checks that the cart node issued revision 2 of the shopper's
receipt with the can and a correction note. It also checks that the running server refuses
unauthenticated requests and decisions without the session's CSRF token.
"""
import json

import httpx
import pytest

from store_review.store import ReviewStore

pytestmark = pytest.mark.graph


def read_jsonl(path) -> list[dict]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(x) for x in lines if x.strip()]


def test_reviewer_resolves_request_in_browser_and_receipt_is_amended(overlap_graph, chromium,
                                                                     wait_for):
    runner, run_dir = overlap_graph()
    receipts = run_dir / 'receipts.jsonl'
    try:
        runner.start()
        url = wait_for('console URL', lambda: (run_dir / 'review_url.txt').exists() and (
            run_dir / 'review_url.txt').read_text().strip(), 60, runner)
        # both shoppers left with the take still pending review
        wait_for('first receipts', lambda: {r['shopper_id'] for r in read_jsonl(receipts)}
                 == {'acct-a', 'acct-b'}, 90, runner)
        first = {r['shopper_id']: r for r in read_jsonl(receipts)}
        assert first['acct-a']['revision'] == 1 and first['acct-a']['pending_reviews'] == 1
        assert first['acct-a']['lines'] == []

        # the running server refuses anonymous and forged access
        anon = httpx.get(f'{url}/api/queue')
        assert anon.status_code == 401
        assert httpx.get(f'{url}/', follow_redirects=False).status_code == 303
        assert httpx.post(f'{url}/r/1/decide', data={'choice': 0}).status_code == 401
        forged = httpx.get(f'{url}/api/queue', cookies={'wos_review_session': 'x' * 43})
        assert forged.status_code == 401

        ctx = chromium
        page = ctx.new_page()
        page.goto(f'{url}/')
        assert page.url.endswith('/login')
        page.fill('#username', 'alice')
        page.fill('#password', 'alice-password')
        page.click('#login')
        page.wait_for_selector('#queue')

        def queued():
            page.reload()
            return page.query_selector('tr.req a')
        wait_for('request in the queue', queued, 30, runner)
        row = page.inner_text('tr.req')
        assert 'ambiguous shopper' in row and 'left the store' in row
        page.click('tr.req a')
        page.wait_for_selector('form.decide')
        assert page.query_selector('svg.trace polyline') is not None, 'no weight trace'

        # a decision without the CSRF token is refused, even with the session cookie
        cookie = {c['name']: c['value'] for c in ctx.cookies()}
        seq = page.url.rsplit('/', 1)[-1]
        no_csrf = httpx.post(f'{url}/r/{seq}/decide', data={'choice': 0},
                             cookies=cookie)
        assert no_csrf.status_code == 403

        button = page.locator('button.cand', has_text='acct-a took 1 x COLA-330')
        key = button.locator('kbd').inner_text()
        page.screenshot(path=str(run_dir / 'console_event.png'), full_page=True)
        page.keyboard.press(key)
        page.wait_for_url(lambda u: not u.endswith(f'/r/{seq}'))

        def amended():
            revs = [r for r in read_jsonl(receipts)
                    if r['shopper_id'] == 'acct-a' and r['revision'] == 2]
            return revs[0] if revs else None
        rev2 = wait_for('receipt revision 2', amended, 30, runner)
        assert [(ln['sku'], ln['quantity']) for ln in rev2['lines']] == [('COLA-330', 1)]
        assert rev2['pending_reviews'] == 0
        # the shopper's receipt says it was corrected, not who decided it
        assert 'review' in rev2['correction_note'] and 'alice' not in rev2['correction_note']

        def acknowledged():        # the cart's ack reached the review node's database
            db = ReviewStore(run_dir / 'review.sqlite')
            try:
                return [h for h in db.handoffs() if h['state'] == 'applied']
            finally:
                db.close()
        wait_for('the cart acknowledging the decision', acknowledged, 30, runner)
    finally:
        runner.stop()
    db = ReviewStore(run_dir / 'review.sqlite')
    [req] = db.requests()
    assert req['status'] == 'decided' and db.decision(req['request_id'])['reviewer'] == 'alice'
    assert db.examples()[0]['answer']['shopper_id'] == 'acct-a'
    assert db.has_trace(req['request_id'])
    db.close()
