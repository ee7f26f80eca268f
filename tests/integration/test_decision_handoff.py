"""A decision made while the cart is down survives a restart of the review node.

Two shoppers are inside when one takes a can: the cart asks for review, and both leave with the
review pending. Then the cart node is SIGKILLed, a reviewer decides in the console, and the
review node is SIGKILLed too before the cart is back (its publisher, and the transient-local
history of the decision with it, is gone). The review node starts again, then the cart: the
decision must still reach the cart (the review node re-sends what the cart has not confirmed),
the shopper's receipt must be amended, and the review database must record the cart's ack.
A forged decision published on the domain for a product never offered is refused by the cart
and changes no receipt.
"""
import json
import pathlib
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from store_interfaces.msg import ReviewRequest
from store_review.store import ReviewStore

pytestmark = pytest.mark.graph

FORGER = r'''
import sys, time
import rclpy
from rclpy.node import Node
from store_common.ros import EVENT_QOS
from store_interfaces.msg import ReviewDecision, ReviewDecisionAck
rclpy.init()
node = Node('forger', namespace='/store')
acks = []
node.create_subscription(ReviewDecisionAck, 'review_decision_acks',
                         lambda m: acks.append(m), EVENT_QOS)
pub = node.create_publisher(ReviewDecision, 'review_decisions', EVENT_QOS)
msg = ReviewDecision(request_id=sys.argv[1], reviewer_id='mallory', shopper_id='acct-b',
                     sku='OJ-1L', action=1, quantity=9)
deadline = time.monotonic() + 30
while time.monotonic() < deadline and not [a for a in acks if a.reviewer_id == 'mallory']:
    pub.publish(msg)
    rclpy.spin_once(node, timeout_sec=0.5)
mine = [a for a in acks if a.reviewer_id == 'mallory']
print('ACK', *((mine[0].status, mine[0].reason) if mine else ('none',)), flush=True)
'''


def read_jsonl(path: pathlib.Path) -> list[dict]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(x) for x in lines if x.strip()]


def handoffs(run_dir: pathlib.Path) -> list[dict]:
    db = ReviewStore(run_dir / 'review.sqlite')
    try:
        return db.handoffs()
    finally:
        db.close()


def test_a_decision_made_while_the_cart_is_down_survives_a_review_node_restart(
        overlap_graph, ros_env, wait_for):
    runner, run_dir = overlap_graph({'review': {'resend_period_s': 1.0}})
    receipts = run_dir / 'receipts.jsonl'
    url_file = run_dir / 'review_url.txt'
    try:
        runner.start()
        url = wait_for('console URL', lambda: url_file.exists() and url_file.read_text().strip(),
                       60, runner)
        wait_for('first receipts', lambda: {r['shopper_id'] for r in read_jsonl(receipts)}
                 == {'acct-a', 'acct-b'}, 90, runner)
        first = {r['shopper_id']: r for r in read_jsonl(receipts)}
        assert first['acct-a']['pending_reviews'] == 1 and first['acct-a']['lines'] == []
        [request] = [r for r in read_jsonl(run_dir / 'review_requests.jsonl')
                     if r['reason'] != ReviewRequest.REASON_SPOT_CHECK]

        # a decision forged on the domain for a product never offered: refused, acknowledged
        # as refused, no receipt touched, the review still open for the real answer
        out = subprocess.run([sys.executable, '-c', FORGER, request['request_id']],
                             env=ros_env, capture_output=True, text=True, timeout=90)
        assert 'ACK 2' in out.stdout and 'not one of' in out.stdout, out.stdout + out.stderr
        time.sleep(1.0)
        assert len(read_jsonl(receipts)) == 2

        assert runner.kill('cart', signal.SIGKILL) == -signal.SIGKILL
        with httpx.Client(base_url=url, follow_redirects=False, timeout=30.0) as web:
            r = web.post('/login', data={'username': 'alice', 'password': 'alice-password'})
            assert r.status_code == 303, r.text
            [row] = [q for q in web.get('/api/queue').json()['requests']
                     if q['reason'] != 'spot check']
            page = web.get(f'/r/{row["seq"]}').text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            choice = re.search(r'name="choice" value="(\d+)"><button[^>]*>(?:(?!</button>).)*'
                               r'acct-a took 1 x COLA-330', page, re.S).group(1)
            r = web.post(f'/r/{row["seq"]}/decide',
                         data={'choice': choice, 'csrf_token': csrf})
            assert r.status_code in (200, 303) and 'error' not in r.text, r.text
        time.sleep(1.5)                  # a re-send or two into the void
        [h] = handoffs(run_dir)
        assert h['state'] == 'sent'      # the cart is down: nobody confirmed it

        assert runner.kill('review', signal.SIGKILL) == -signal.SIGKILL
        url_file.unlink()
        runner.restart('review')
        wait_for('review node back', url_file.exists, 60, runner)
        runner.restart('cart')

        def amended():
            revs = [r for r in read_jsonl(receipts)
                    if r['shopper_id'] == 'acct-a' and r['revision'] == 2]
            return revs[0] if revs else None
        rev2 = wait_for('receipt revision 2', amended, 60, runner)
        assert [(ln['sku'], ln['quantity']) for ln in rev2['lines']] == [('COLA-330', 1)]
        assert rev2['pending_reviews'] == 0
        wait_for('the cart acknowledging the decision',
                 lambda: [x for x in handoffs(run_dir) if x['state'] == 'applied'], 30, runner)
        assert not [r for r in read_jsonl(receipts) if r['revision'] > 2 or (
            r['shopper_id'] == 'acct-b' and r['lines'])]
    finally:
        runner.stop()
    cart_log = (run_dir / 'logs' / 'cart.log').read_text()
    assert cart_log.count('--- start') == 2 and 'mallory' in cart_log and 'refused' in cart_log
