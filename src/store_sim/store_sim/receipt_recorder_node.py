"""Records what the store decided, for the evaluator; its exit ends a run.

Appends every ``receipts``, ``review_requests``, ``review_decision_acks``, ``shelf_events``,
``gate_events`` and ``sim/ground_truth`` message as one JSON line to ``<out_dir>/<name>.jsonl``
(flushed per line). When every shopper of the scenario has a receipt it waits ``settle_s`` for
corrections and exits with code 0; after ``timeout_s`` it logs the shoppers without a receipt
and exits with code 3. With ``await_decisions_s`` > 0 (a run with a reviewer answering the
console), "all receipts in" also needs the cart's ack of a decision for every review request
and spot check recorded, for at most that long after the last receipt; what is still open then
is logged by id, and the run ends all the same (code 0: the receipts are in).
"""
from __future__ import annotations

import array
import json
import math
import pathlib
import shutil
import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from std_msgs.msg import String
from store_interfaces.msg import (GateEvent, Receipt, ReviewDecisionAck, ReviewRequest,
                                  ShelfEvent)

from store_common.ros import declare, EVENT_QOS, spin_until, STATE_QOS

from store_sim.scenario import load_scenario, ScenarioError

EXIT_DONE = 0
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130


def to_jsonable(value):
    """A ROS message (or field value) as plain JSON types; NaN and inf become None."""
    if hasattr(value, 'get_fields_and_field_types'):
        return {name: to_jsonable(getattr(value, name))
                for name in value.get_fields_and_field_types()}
    if isinstance(value, (list, tuple, array.array)) or type(value).__name__ == 'ndarray':
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, 'item'):        # numpy scalar
        return value.item()
    return value


class ReceiptRecorder(Node):

    def __init__(self):
        super().__init__('receipt_recorder')
        out_dir = declare(self, 'out_dir', '', 'Directory for the *.jsonl records.')
        scenario_file = declare(self, 'scenario_file', '', 'Scenario being played: names the '
                                'shoppers whose receipts end the run. Empty: shoppers seen in '
                                'sim/ground_truth enter events.')
        declare(self, 'store_file', '', 'Store description (unused; accepted for uniformity).')
        self.timeout_s = declare(self, 'timeout_s', 180.0, 'Give up (exit code 3) after this '
                                 'long without all receipts [s].', lo=1.0, hi=86400.0)
        self.settle_s = declare(self, 'settle_s', 2.0, 'Wait this long after the last expected '
                                'receipt for corrections before exiting [s].', lo=0.0, hi=600.0)
        self.await_decisions_s = declare(
            self, 'await_decisions_s', 0.0, 'With a reviewer answering (benches): after the '
            'last receipt, wait up to this long for the cart to acknowledge a decision on every '
            'review request and spot check recorded [s]; 0: do not wait.', lo=0.0, hi=3600.0)
        if not out_dir:
            raise ValueError('out_dir must be set')
        self.out = pathlib.Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.expected: set[str] = set()
        self.from_truth = not scenario_file
        if scenario_file:
            scenario = load_scenario(scenario_file)
            self.expected = {s.id for s in scenario.shoppers}
            copy = self.out / 'scenario.yaml'
            if not copy.exists():
                shutil.copyfile(scenario_file, copy)
        self.files = {name: open(self.out / f'{name}.jsonl', 'a', encoding='utf-8')
                      for name in ('receipts', 'review_requests', 'review_decision_acks',
                                   'shelf_events', 'gate_events', 'ground_truth')}
        self.requested: set[str] = set()
        self.acked: set[str] = set()
        self.all_in_at: float | None = None
        self.have_receipt: set[str] = set()
        self.exit_code: int | None = None
        self.started = time.monotonic()
        self.done_at: float | None = None
        self.create_subscription(Receipt, 'receipts', self.on_receipt, STATE_QOS)
        self.create_subscription(ReviewRequest, 'review_requests', self.on_request, EVENT_QOS)
        self.create_subscription(ReviewDecisionAck, 'review_decision_acks', self.on_ack,
                                 EVENT_QOS)
        self.create_subscription(ShelfEvent, 'shelf_events',
                                 lambda m: self.write('shelf_events', to_jsonable(m)), EVENT_QOS)
        self.create_subscription(GateEvent, 'gate_events',
                                 lambda m: self.write('gate_events', to_jsonable(m)), EVENT_QOS)
        self.create_subscription(String, 'sim/ground_truth', self.on_truth, EVENT_QOS)
        self.create_timer(0.2, self.check)
        self.get_logger().info(f'recording to {self.out}; expecting receipts of '
                               f'{", ".join(sorted(self.expected)) or "(shoppers seen)"}')

    def write(self, name: str, record: dict) -> None:
        f = self.files[name]
        f.write(json.dumps(record, sort_keys=True) + '\n')
        f.flush()

    def on_receipt(self, msg: Receipt) -> None:
        self.write('receipts', to_jsonable(msg))
        self.have_receipt.add(msg.shopper_id)
        self.get_logger().info(f'receipt {msg.receipt_id} rev {msg.revision}: '
                               f'{len(msg.lines)} lines, {msg.total_cents} cents, '
                               f'{msg.pending_reviews} pending')

    def on_request(self, msg: ReviewRequest) -> None:
        self.write('review_requests', to_jsonable(msg))
        self.requested.add(msg.request_id)

    def on_ack(self, msg: ReviewDecisionAck) -> None:
        self.write('review_decision_acks', to_jsonable(msg))
        self.acked.add(msg.request_id)

    def undecided(self) -> list[str]:
        """Recorded review requests (and spot checks) the cart has acknowledged no decision
        of."""
        return sorted(self.requested - self.acked)

    def on_truth(self, msg: String) -> None:
        try:
            record = json.loads(msg.data)
        except json.JSONDecodeError:
            record = {'raw': msg.data}
        self.write('ground_truth', record)
        if self.from_truth and record.get('event') == 'enter':
            self.expected.add(record.get('shopper_id', ''))

    def check(self) -> None:
        now = time.monotonic()
        if self.expected and self.expected <= self.have_receipt:
            if self.all_in_at is None:
                self.all_in_at = now
            open_ = self.undecided() if self.await_decisions_s > 0.0 else []
            if open_ and self.done_at is None:
                if now - self.all_in_at < self.await_decisions_s:
                    return
                self.get_logger().warning(
                    f'{len(open_)} review requests without a decision after '
                    f'{self.await_decisions_s:g} s: {", ".join(open_[:10])}')
            if self.done_at is None:
                self.done_at = now + self.settle_s
                self.get_logger().info(f'all {len(self.expected)} receipts in; settling '
                                       f'{self.settle_s:g} s')
            elif now >= self.done_at:
                self.exit_code = EXIT_DONE
            return
        if now - self.started >= self.timeout_s:
            missing = sorted(self.expected - self.have_receipt)
            self.get_logger().error(f'timeout after {self.timeout_s:g} s; no receipt for: '
                                    f'{", ".join(missing) or "(no shopper seen)"}')
            self.exit_code = EXIT_TIMEOUT

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def main(args=None):
    code = EXIT_INTERRUPTED
    node = None
    try:
        with rclpy.init(args=args):
            try:
                node = ReceiptRecorder()
            except (ScenarioError, ValueError, OSError) as exc:
                rclpy.logging.get_logger('receipt_recorder').fatal(str(exc))
                raise SystemExit(2) from None
            try:
                spin_until(node, lambda: node.exit_code is not None)
                if node.exit_code is not None:
                    code = node.exit_code
            finally:
                node.close()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        if node is not None and node.exit_code is not None:
            code = node.exit_code
    raise SystemExit(code)


if __name__ == '__main__':
    main()
