"""The reviewer console for real: simulated store, review and cart nodes, headless Chromium.

Two shoppers are in the store together when one of them takes a can, so the cart cannot tell
whose hand it was and asks for review. Both leave before anyone answers (their receipts say one
review is pending). The test logs in through the login page, opens the request from the queue,
answers with the keyboard, and checks that the cart node issued revision 2 of the shopper's
receipt with the can and a correction note. It also checks that the running server refuses
unauthenticated requests and decisions without the session's CSRF token.
"""
import json
import os
import pathlib
import sys
import time

import httpx
import pytest
import yaml

from store_bringup.graph import build_graph, GraphOptions
from store_bringup.runner import Runner
from store_common.description import load_store
from store_review.auth import Auth
from store_review.store import ReviewStore

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO_STORE = ROOT / 'config' / 'stores' / 'demo.yaml'
PARAMS = ROOT / 'config' / 'params' / 'store.yaml'
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                 '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']

pytestmark = pytest.mark.graph


def read_jsonl(path: pathlib.Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def wait_for(what, check, timeout_s, runner):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        code = runner.check()
        assert code is None, f'graph ended with {code} while waiting for {what}'
        time.sleep(0.3)
    raise AssertionError(f'timed out waiting for {what}')


def test_reviewer_resolves_request_in_browser_and_receipt_is_amended(tmp_path, ros_env):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip('chromium not installed (tools/setup.sh installs it)')
    sync_api = pytest.importorskip('playwright.sync_api')
    doc = {'scenario': {'store': 'demo_store', 'seed': 5, 'duration_s': 16.0, 'shoppers': [
        {'id': 'acct-a', 'enter_s': 1.0, 'exit_s': 10.0, 'actions': [
            {'t_s': 6.0, 'kind': 'take', 'plate': 'g1.s1.p1', 'sku': 'COLA-330',
             'quantity': 1}]},
        {'id': 'acct-b', 'enter_s': 3.0, 'exit_s': 12.0, 'actions': []}]}}
    scenario = tmp_path / 'overlap.yaml'
    scenario.write_text(yaml.safe_dump(doc))
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    db = ReviewStore(run_dir / 'review.sqlite')
    Auth(db).add_user('alice', 'reviewer', 'alice-password', time.time_ns())
    db.close()

    specs = build_graph(load_store(DEMO_STORE), GraphOptions(
        mode='sim', params_file=str(PARAMS), run_dir=str(run_dir), scenario_file=str(scenario),
        record=True, overrides={'review': {'port': 0},
                                'receipt_recorder': {'settle_s': 120.0}}))
    runner = Runner(specs, run_dir, out=sys.stdout, env=ros_env)
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

        with sync_api.sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(tmp_path / 'profile'), executable_path=CHROMIUM, headless=True,
                args=CHROMIUM_ARGS)
            try:
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
            finally:
                ctx.close()

        def amended():
            revs = [r for r in read_jsonl(receipts)
                    if r['shopper_id'] == 'acct-a' and r['revision'] == 2]
            return revs[0] if revs else None
        rev2 = wait_for('receipt revision 2', amended, 30, runner)
        assert [(ln['sku'], ln['quantity']) for ln in rev2['lines']] == [('COLA-330', 1)]
        assert rev2['pending_reviews'] == 0
        assert 'decided by alice' in rev2['correction_note']

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
