"""A decision made while the cart is down survives a restart of the review node (real graph).

Two shoppers are in the store together when one takes a can, so the cart asks for review; both
leave. The cart node is killed; a reviewer decides through the console's HTTP API (the review
node publishes, nobody hears it); the review node is killed too and started again on the same
database, and only then the cart. The restarted review node publishes the unacknowledged
decision again, the cart applies it (receipt revision 2 with the can) and acknowledges it, and
the review database records the hand-off as applied.
"""
import json
import pathlib
import re
import signal
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


def handoffs(db_path):
    db = ReviewStore(db_path)
    try:
        return db.handoffs()
    finally:
        db.close()


def test_decision_made_while_the_cart_is_down_survives_a_review_restart(tmp_path, ros_env):
    doc = {'scenario': {'store': 'demo_store', 'seed': 5, 'duration_s': 16.0, 'shoppers': [
        {'id': 'acct-a', 'enter_s': 1.0, 'exit_s': 10.0, 'actions': [
            {'t_s': 6.0, 'kind': 'take', 'plate': 'g1.s1.p1', 'sku': 'COLA-330',
             'quantity': 1}]},
        {'id': 'acct-b', 'enter_s': 3.0, 'exit_s': 12.0, 'actions': []}]}}
    scenario = tmp_path / 'overlap.yaml'
    scenario.write_text(yaml.safe_dump(doc))
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    db_path = run_dir / 'review.sqlite'
    db = ReviewStore(db_path)
    Auth(db).add_user('alice', 'reviewer', 'alice-password', time.time_ns())
    db.close()
    specs = build_graph(load_store(DEMO_STORE), GraphOptions(
        mode='sim', params_file=str(PARAMS), run_dir=str(run_dir), scenario_file=str(scenario),
        record=True, overrides={'review': {'port': 0},
                                'receipt_recorder': {'settle_s': 120.0}}))
    runner = Runner(specs, run_dir, out=sys.stdout, env=ros_env)
    receipts = run_dir / 'receipts.jsonl'
    url_file = run_dir / 'review_url.txt'
    try:
        runner.start()
        url = wait_for('console URL', lambda: url_file.exists() and url_file.read_text().strip(),
                       60, runner)
        wait_for('first receipts', lambda: {r['shopper_id'] for r in read_jsonl(receipts)}
                 == {'acct-a', 'acct-b'}, 90, runner)
        assert runner.kill('cart', signal.SIGKILL) == -signal.SIGKILL

        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.post('/login', data={'username': 'alice', 'password': 'alice-password'}
                          ).status_code in (200, 303)
            [req] = c.get('/api/queue').json()['requests']
            page = c.get(f'/r/{req["seq"]}').text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            choice = next(int(m.group(1)) for m in re.finditer(
                r'name="choice" value="(\d+)"><button[^>]*><kbd>\d</kbd>acct-a took', page))
            r = c.post(f'/r/{req["seq"]}/decide', data={'choice': choice, 'csrf_token': csrf})
            assert r.status_code == 200, r.text
        [h] = handoffs(db_path)
        assert h['state'] == 'sent' and h['reviewer'] == 'alice'

        # the review node dies before the cart is back, and comes back first
        assert runner.kill('review', signal.SIGKILL) == -signal.SIGKILL
        url_file.unlink()
        runner.restart('review')
        wait_for('the restarted console', lambda: url_file.exists(), 60, runner)
        time.sleep(3.0)                       # a resend period or so with nobody listening
        assert handoffs(db_path)[0]['state'] == 'sent'
        runner.restart('cart')

        def amended():
            revs = [r for r in read_jsonl(receipts)
                    if r['shopper_id'] == 'acct-a' and r['revision'] == 2]
            return revs[0] if revs else None
        rev2 = wait_for('receipt revision 2', amended, 60, runner)
        assert [(ln['sku'], ln['quantity']) for ln in rev2['lines']] == [('COLA-330', 1)]
        assert 'decided by alice' in rev2['correction_note']
        wait_for('the cart acknowledging the decision',
                 lambda: handoffs(db_path)[0]['state'] == 'applied', 30, runner)
    finally:
        runner.stop()
    [h] = handoffs(db_path)
    assert h['state'] == 'applied' and h['sends'] >= 2
    review_log = (run_dir / 'logs' / 'review.log').read_text()
    assert 'not yet acknowledged by the cart published again' in review_log
