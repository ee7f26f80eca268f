"""Weight-only store end to end: simulator -> pty -> drivers -> shelf events -> cart -> receipts.

Every node runs as its own process over DDS on a private ROS domain (see conftest.py). The
scenarios play in real time, so these tests take a minute or so each.
"""
import json
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import yaml

from store_bench.console_reviewer import add_account, ConsoleReviewer, USER
from store_common.description import load_store
from store_interfaces.msg import CartLine, ReviewRequest
from store_sim.generator import generate
from store_sim.scenario import load_scenario, save_scenario, truth_receipts

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO_STORE = ROOT / 'config' / 'stores' / 'demo.yaml'
REASON_AMBIGUOUS_SHOPPER = ReviewRequest.REASON_AMBIGUOUS_SHOPPER
STATUS_CONFIRMED = CartLine.STATUS_CONFIRMED

pytestmark = pytest.mark.graph


def receipt_items(receipt: dict, status: int = STATUS_CONFIRMED) -> dict[str, int]:
    return {ln['sku']: ln['quantity'] for ln in receipt['lines'] if ln['status'] == status}


def assert_exact_receipts(result, scenario):
    assert result.exit_code == 0, (
        f'run did not complete: {result.exit_code}\n{result.log("receipt_recorder")[-3000:]}')
    truth = truth_receipts(scenario)
    receipts = result.latest_receipts()
    assert set(receipts) == {s.id for s in scenario.shoppers}
    for shopper, receipt in receipts.items():
        assert receipt['pending_reviews'] == 0, receipt
        assert receipt_items(receipt) == truth.get(shopper, {}), (
            f'{shopper}: receipt {receipt_items(receipt)} != truth {truth.get(shopper)}\n'
            f'events: {[e["delta_grams"] for e in result.shelf_events]}')
        assert receipt['total_cents'] == sum(ln['line_total_cents'] for ln in receipt['lines'])
    # every receipt id issued once per revision: nothing double counted
    ids = [(r['receipt_id'], r['revision']) for r in result.receipts]
    assert len(ids) == len(set(ids))
    # the cart heard every gate's and gondola's watermark: it never decided on the hold alone
    cart_log = result.log('cart')
    assert 'waits for the watermarks of gate/' in cart_log
    assert 'no longer waited for' not in cart_log, cart_log[-3000:]


def single_shopper_scenario(tmp_path, seed, level=2):
    store = load_store(DEMO_STORE)
    scenario = generate(store, seed, level, max_concurrent=1)
    path = tmp_path / f'scenario_{seed}.yaml'
    save_scenario(scenario, path)
    return load_scenario(path, store), path


def test_single_shoppers_get_exact_receipts_despite_serial_garbage(tmp_path, run_sim_store):
    scenario, path = single_shopper_scenario(tmp_path, seed=12)
    assert {a.kind for s in scenario.shoppers for a in s.actions} == {'take', 'return'}
    # every decision the cart makes alone is spot-checked in this run
    result = run_sim_store(path, overrides={'sim': {'garbage_line_rate': 0.03},
                                            'cart': {'spot_check_fraction': 1.0}})
    assert_exact_receipts(result, scenario)       # ... and no receipt waits for the checks
    # nothing asked: the only requests are the spot checks, one per shelf event, each offering
    # first the decision the (exact) receipt of that shopper holds
    checks = [r for r in result.review_requests
              if r['reason'] == ReviewRequest.REASON_SPOT_CHECK]
    assert checks == result.review_requests
    assert sorted(r['event_id'] for r in checks) == sorted(
        e['event_id'] for e in result.shelf_events)
    for r in checks:
        assert r['request_id'] == f'spot-check/{r["event_id"]}' and r['label_chance'] == 1.0
        first = r['candidates'][0]
        assert first['shopper_id'] in {s.id for s in scenario.shoppers}, r
    # the garbage really reached the drivers, which counted it and carried on
    driver_logs = ''.join(result.log(f'{c}.loadcell_driver') for c in ('pc_g1', 'pc_g2', 'pc_g3'))
    assert 'garbage' in driver_logs.lower()


def overlap_scenario(tmp_path) -> pathlib.Path:
    """Two shoppers inside together: with load cells alone nobody can tell whose hand it was."""
    doc = {'scenario': {'store': 'demo_store', 'seed': 5, 'duration_s': 24.0, 'shoppers': [
        {'id': 'acct-a', 'enter_s': 1.0, 'exit_s': 19.0, 'actions': [
            {'t_s': 6.0, 'kind': 'take', 'plate': 'g1.s1.p1', 'sku': 'COLA-330', 'quantity': 1},
            {'t_s': 12.0, 'kind': 'take', 'plate': 'g3.s2.p1', 'sku': 'YOGURT', 'quantity': 1},
        ]},
        {'id': 'acct-b', 'enter_s': 3.0, 'exit_s': 21.0, 'actions': [
            {'t_s': 9.0, 'kind': 'take', 'plate': 'g2.s1.p2', 'sku': 'CHOC-MILK', 'quantity': 1},
        ]}]}}
    path = tmp_path / 'overlap.yaml'
    path.write_text(yaml.safe_dump(doc))
    return path


def test_overlapping_shoppers_get_review_requests_never_guesses(tmp_path, run_sim_store):
    result = run_sim_store(overlap_scenario(tmp_path))
    assert result.exit_code == 0
    assert len(result.shelf_events) == 3
    assert len(result.review_requests) == 3
    for req in result.review_requests:
        assert req['reason'] == REASON_AMBIGUOUS_SHOPPER
        assert set(req['shopper_ids']) == {'acct-a', 'acct-b'}
        assert {c['shopper_id'] for c in req['candidates']} >= {'acct-a', 'acct-b'}
    # no silent guess: nothing confirmed in anyone's cart, and both receipts say what is open
    for receipt in result.latest_receipts().values():
        assert receipt_items(receipt) == {}
        assert receipt['pending_reviews'] == 3


def test_a_reviewer_at_the_console_makes_every_receipt_exact(tmp_path, run_sim_store):
    # the benches' simulated reviewer: logs in to the running graph's console over HTTP and
    # answers each review from the truth the simulator published; the run waits for the acks
    path = overlap_scenario(tmp_path)
    add_account(tmp_path / 'reviewed', 'sim-password-1')
    bot = ConsoleReviewer(tmp_path / 'reviewed', 'sim-password-1', delay_s=1.0, poll_s=0.2)
    result = run_sim_store(path, name='reviewed', during=lambda _: bot.start(),
                           overrides={'receipt_recorder': {'await_decisions_s': 60.0}})
    bot.stop()
    assert_exact_receipts(result, load_scenario(path, load_store(DEMO_STORE)))
    assert len(result.review_requests) == 3
    assert [a['how'] for a in bot.answers] == ['exact'] * 3, bot.errors[-5:]
    acks = [json.loads(line) for line in
            (result.run_dir / 'review_decision_acks.jsonl').read_text().splitlines()]
    assert sorted(a['request_id'] for a in acks) == sorted(
        r['request_id'] for r in result.review_requests)
    assert {a['status'] for a in acks} == {1} and {a['reviewer_id'] for a in acks} == {USER}


def test_cart_node_killed_mid_scenario_loses_nothing(tmp_path, run_sim_store):
    scenario, path = single_shopper_scenario(tmp_path, seed=11)
    down = {}

    def crash_cart(runner):
        # wait until the cart has put something in a cart, then kill it hard, keep it dead
        # through further shelf events, and start it again on the same database
        log = runner.node('cart').log_path
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and ': +1 ' not in log.read_text():
            time.sleep(0.2)
        assert runner.kill('cart', signal.SIGKILL) == -signal.SIGKILL
        down['from_ns'] = time.time_ns()
        time.sleep(8.0)
        down['to_ns'] = time.time_ns()
        runner.restart('cart')

    result = run_sim_store(path, during=crash_cart)
    assert_exact_receipts(result, scenario)
    assert result.log('cart').count('--- start') == 2
    # shelf events settled while the cart was dead: the restarted node got them from the
    # transient-local history, and the database kept it from counting any event twice
    settled = [e['header']['stamp']['sec'] * 10**9 + e['header']['stamp']['nanosec']
               for e in result.shelf_events]
    assert any(down['from_ns'] < t < down['to_ns'] for t in settled), (down, settled)


def test_malformed_store_file_is_named_with_field_and_nothing_starts(tmp_path):
    doc = yaml.safe_load(DEMO_STORE.read_text())
    doc['store']['catalog'] = str(ROOT / 'config' / 'catalog.yaml')
    doc['store']['gondolas'][1]['shelves'][2]['plates'][0]['load_cell']['channel'] = 'seven'
    bad = tmp_path / 'broken.yaml'
    bad.write_text(yaml.safe_dump(doc))
    proc = subprocess.run(
        [sys.executable, '-m', 'store_bringup.runner', '--store', str(bad), '--mode', 'sim',
         '--scenario', str(ROOT / 'config' / 'scenarios' / 'demo.yaml'),
         '--run-dir', str(tmp_path / 'run')], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert (f'{bad}: store.gondolas[1].shelves[2].plates[0].load_cell.channel: '
            f"expected a number, got a string 'seven'") in proc.stderr
    assert not (tmp_path / 'run' / 'logs').exists()
