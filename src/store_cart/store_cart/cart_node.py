"""The cart node: wires shelf, gate and review topics to the cart engine (``engine.py``).

Subscribes ``shelf_events`` (or, with ``use_fused_events``, ``fused_shelf_events`` from the
fusion node: the fused hypotheses and a shopper hint from the cameras), ``gate_events``,
``review_decisions`` (EVENT_QOS: a restarted node receives what it missed and the engine
de-duplicates by id), and the watermarks of the ``event_sources`` it waits for (``gate_watermarks``
and ``shelf_watermarks`` or ``fused_watermarks``; see ``store_common.watermarks``); publishes
``cart_updates``, ``review_requests`` and ``review_decision_acks`` (EVENT_QOS: one ack per
decision handled, applied or refused, so the review node re-sends what is not confirmed),
``carts`` and ``receipts`` (STATE_QOS), and ``/diagnostics`` (decisions applied and refused,
inputs refused, redelivery conflicts, each source's state, events waiting). On start it
republishes every cart, the latest revision of every receipt and every open review request from
the database. A timer ticks the engine with the node's clock, which follows ``/clock`` in bag
replay.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from store_common import diagnostics
from store_common.description import load_store, StoreConfigError
from store_common.ros import declare, EVENT_QOS, run_node, STATE_QOS
from store_common.ros_watermarks import WATERMARK_QOS, watermark_from_msg
from store_common.watermarks import MISSING_EVENT, SILENT, WAITING
from store_interfaces.msg import (CartState, CartUpdate, FusedShelfEvent, GateEvent, Receipt,
                                  ReviewDecision, ReviewDecisionAck, ReviewRequest, ShelfEvent,
                                  SourceWatermark)
from store_shelf.convert import shelf_event_from_msg

from store_cart import convert
from store_cart.db import CartDbError
from store_cart.engine import CartEngine, CartParams, fused_params
from store_cart.model import (ACK_APPLIED, CartStateData, CartUpdateData, DecisionAckData, Note,
                              REASON_NAMES, ReceiptData, ReviewRequestData, SOURCE_FUSED,
                              SOURCE_REVIEW, StateSnapshot)
from store_cart.thresholds import read_thresholds

DEFAULT_DB_PATH = '~/.local/state/walkout/carts.sqlite'
_SOURCE = {SOURCE_FUSED: 'fused', SOURCE_REVIEW: 'review'}


class CartNode(Node):

    def __init__(self):
        super().__init__('cart')
        self._started_s = time.monotonic()
        self._started_ns: int | None = None     # node clock at the first tick
        self._caught_up = False
        store_file = declare(self, 'store_file', '', 'Store description YAML file; its catalog '
                             'gives names and prices. Required.', read_only=True)
        db_path = declare(self, 'db_path', DEFAULT_DB_PATH, 'SQLite cart database; "~" is '
                          'expanded and missing parent folders are created.', read_only=True)
        params = CartParams(
            hold_s=declare(self, 'hold_s', 1.0, 'Shelf events wait this long in sensor time '
                           'before they are assigned, so late gate events count [s].',
                           lo=0.0, hi=30.0, read_only=True),
            receipt_grace_s=declare(self, 'receipt_grace_s', 3.0, 'The receipt is issued this '
                                    'long after the exit scan; must exceed hold_s [s].',
                                    lo=0.0, hi=600.0, read_only=True),
            min_confidence=declare(self, 'min_confidence', 0.9, 'Posterior a product hypothesis '
                                   'needs to go into a cart without review.', lo=0.0, hi=1.0,
                                   read_only=True),
            min_margin=declare(self, 'min_margin', 0.2, 'Lead over the second hypothesis needed '
                               'to go into a cart without review.', lo=0.0, hi=1.0,
                               read_only=True),
            source_timeout_s=declare(self, 'source_timeout_s', 10.0, 'An event source whose '
                                     'watermark has not come for this long (monotonic time) is '
                                     'no longer waited for; logged and on /diagnostics [s].',
                                     lo=0.5, hi=600.0, read_only=True),
            return_wait_s=declare(self, 'return_wait_s', 60.0, 'A return of a product the '
                                  "shopper's cart does not hold waits up to this long for the "
                                  "answer to an open review of that shopper's take of it, and "
                                  'is then decided without a second review; 0: reviewed at '
                                  'once [s].', lo=0.0, hi=3600.0, read_only=True),
            spot_check_fraction=declare(
                self, 'spot_check_fraction', 0.0, 'Share of the events decided without review '
                'that are put to a person anyway as a spot check (reason spot check; the cart '
                'keeps the decision until an answer corrects it), chosen by a hash of the event '
                'id. Their answers teach review_learn how often the machine is right above its '
                'thresholds. 0: none.', lo=0.0, hi=1.0, read_only=True))
        sources = declare(self, 'event_sources', [], 'The sources of gate and shelf events whose '
                          'watermarks the cart waits for before deciding ("gate/<id>", '
                          '"shelf/<gondola>", "fusion"), so inputs redelivered in any order '
                          'after a restart are decided in stamp order. Empty: the hold alone '
                          '(bag replays without watermarks).', read_only=True,
                          array_type='string')
        tick_period_s = declare(self, 'tick_period_s', 0.1, 'How often queued shelf events and '
                                'due receipts are processed [s].', lo=0.01, hi=5.0,
                                read_only=True)
        self._thresholds_file = declare(
            self, 'thresholds_file', '', 'YAML with min_confidence and min_margin tuned from '
            'reviews (store_review review_learn); overrides the two parameters while it exists, '
            'reloaded when it changes. "": the parameters.', read_only=True)
        use_fused = declare(self, 'use_fused_events', False, 'Take shelf events from the '
                            'fusion node (fused_shelf_events: hypotheses fused with vision, '
                            'shopper probabilities from the cameras) instead of shelf_events. An '
                            'event without shopper candidates falls back to the presence rule.',
                            read_only=True)
        fused_min_confidence = declare(
            self, 'fused_min_confidence', -1.0, 'With use_fused_events: the posterior needed '
            'without review instead of min_confidence (the fused posterior is calibrated and '
            'sharper; pick it with sweep_review_threshold on tuning scenarios). '
            '-1: min_confidence.', lo=-1.0, hi=1.0, read_only=True)
        if use_fused:
            params = fused_params(params, fused_min_confidence)
        self._thresholds_mtime = None
        if not store_file:
            raise ValueError('parameter store_file is required (the store description YAML)')
        store = load_store(store_file)
        self._frame_id = store.frame_id
        db_path = os.path.expanduser(db_path)
        self._engine = CartEngine(db_path, store.catalog, store.id, params, sources=sources)
        source = 'fused_shelf_events' if use_fused else 'shelf_events'
        self.get_logger().info(f'store {store.id}, cart database {db_path}, hold {params.hold_s}'
                               f' s, receipt grace {params.receipt_grace_s} s, shelf events from '
                               f'{source}, review below {params.min_confidence:g} or margin '
                               f'{params.min_margin:g}; waits for the watermarks of '
                               f'{", ".join(sources) or "no event source (hold only)"}')

        self._pub_updates = self.create_publisher(CartUpdate, 'cart_updates', EVENT_QOS)
        self._pub_carts = self.create_publisher(CartState, 'carts', STATE_QOS)
        self._pub_receipts = self.create_publisher(Receipt, 'receipts', STATE_QOS)
        self._pub_reviews = self.create_publisher(ReviewRequest, 'review_requests', EVENT_QOS)
        self._pub_acks = self.create_publisher(ReviewDecisionAck, 'review_decision_acks',
                                               EVENT_QOS)
        self._pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._republish(self._engine.state())

        if use_fused:
            self.create_subscription(FusedShelfEvent, 'fused_shelf_events', self._on_fused,
                                     EVENT_QOS)
        else:
            self.create_subscription(ShelfEvent, 'shelf_events', self._on_shelf, EVENT_QOS)
        self.create_subscription(GateEvent, 'gate_events', self._on_gate, EVENT_QOS)
        self.create_subscription(ReviewDecision, 'review_decisions', self._on_decision,
                                 EVENT_QOS)
        for topic in ('gate_watermarks', 'fused_watermarks' if use_fused else 'shelf_watermarks'):
            self.create_subscription(SourceWatermark, topic, self._on_watermark, WATERMARK_QOS)
        self.create_timer(1.0, self._publish_diagnostics)
        self.create_timer(tick_period_s, self._on_tick)
        if self._thresholds_file:
            self._load_thresholds()
            self.create_timer(5.0, self._load_thresholds)

    def close(self) -> None:
        self._engine.close()

    def _load_thresholds(self) -> None:
        try:
            mtime = os.stat(self._thresholds_file).st_mtime_ns
        except OSError:
            return
        if mtime == self._thresholds_mtime:
            return
        self._thresholds_mtime = mtime
        try:
            th = read_thresholds(self._thresholds_file)
            self._engine.params = replace(self._engine.params, **th)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            self.get_logger().error(f'thresholds file {self._thresholds_file}: {exc}; '
                                    'keeping the current thresholds')
            return
        self.get_logger().info(f'thresholds from {self._thresholds_file}: min_confidence '
                               f'{th["min_confidence"]:.3f}, min_margin {th["min_margin"]:.3f}')

    # --- callbacks ----------------------------------------------------------------------------
    def _on_shelf(self, msg: ShelfEvent) -> None:
        self._publish(self._engine.on_shelf_event(shelf_event_from_msg(msg)))

    def _on_fused(self, msg: FusedShelfEvent) -> None:
        ev, hint = convert.fused_event_from_msg(msg)
        self._publish(self._engine.on_shelf_event(
            ev, shopper_hint=hint, raw_confidence=float(msg.raw_confidence)))

    def _on_gate(self, msg: GateEvent) -> None:
        self._publish(self._engine.on_gate_event(convert.gate_event_from_msg(msg)))

    def _on_watermark(self, msg: SourceWatermark) -> None:
        for warning in self._engine.on_watermark(*watermark_from_msg(msg)):
            self.get_logger().warning(warning, throttle_duration_sec=5.0)

    def _on_decision(self, msg: ReviewDecision) -> None:
        self._publish(self._engine.on_review_decision(convert.review_decision_from_msg(msg)))

    def _on_tick(self) -> None:
        now = self.get_clock().now().nanoseconds
        self._publish(self._engine.tick(now))
        if self._started_ns is None and now > 0:
            self._started_ns = now
        if (not self._caught_up and self._started_ns is not None
                and self._engine.caught_up(self._started_ns, now)):
            self._caught_up = True
            self.get_logger().info(f'caught up {time.monotonic() - self._started_s:.2f} s after '
                                   'start: every event stamped before the start is decided')

    # --- output -------------------------------------------------------------------------------
    def _republish(self, snap: StateSnapshot) -> None:
        for cart in snap.carts:
            self._pub_carts.publish(convert.cart_state_msg(cart, self._frame_id))
        for receipt in snap.receipts:
            self._pub_receipts.publish(convert.receipt_msg(receipt, self._frame_id))
        for request in snap.open_reviews:
            self._pub_reviews.publish(convert.review_request_msg(request, self._frame_id))
        self.get_logger().info(f'republished {len(snap.carts)} carts, {len(snap.receipts)} '
                               f'receipts, {len(snap.open_reviews)} open review requests')

    def _publish_diagnostics(self) -> None:
        e = self._engine
        states = e.watermarks.summary()
        stalled = [s for s, (st, _) in states.items() if st in (SILENT, MISSING_EVENT)]
        waiting = [s for s, (st, _) in states.items() if st == WAITING]
        level, message = 'ok', 'deciding'
        if stalled:
            level, message = 'warn', f'not waiting for stalled sources {", ".join(stalled)}'
        elif waiting:
            message = f'waiting for {", ".join(waiting)}'
        now_t = self.get_clock().now()
        now = now_t.nanoseconds
        values: dict[str, object] = dict(e.counts)
        values['events_waiting'] = e.db.queued_count()
        values['decided_through_lag_s'] = max(0.0, (now - e.decided_through_ns(now)) / 1e9)
        for s, (st, stamp) in states.items():
            values[f'source.{s}'] = st if stamp is None else f'{st} @ {stamp / 1e9:.3f} s'
        msg = DiagnosticArray()
        msg.header.stamp = now_t.to_msg()
        msg.status.append(diagnostics.status('store/cart', e.store_id, level, message, values))
        self._pub_diag.publish(msg)

    def _publish(self, outs: list) -> None:
        log = self.get_logger()
        for o in outs:
            if isinstance(o, Note):
                log.info(o)
            elif isinstance(o, str):
                log.warning(o)
            elif isinstance(o, CartUpdateData):
                self._pub_updates.publish(convert.cart_update_msg(o, self._frame_id))
                log.info(f'cart {o.session_id}: {o.quantity_delta:+d} {o.sku} '
                         f'(p={o.confidence:.3f}, {_SOURCE.get(o.source, "weight")}, '
                         f'{o.event_id})')
            elif isinstance(o, CartStateData):
                self._pub_carts.publish(convert.cart_state_msg(o, self._frame_id))
            elif isinstance(o, DecisionAckData):
                self._pub_acks.publish(convert.decision_ack_msg(o, self.get_clock().now()))
                if o.status == ACK_APPLIED:
                    log.debug(f'decision on {o.request_id} applied')
            elif isinstance(o, ReceiptData):
                self._pub_receipts.publish(convert.receipt_msg(o, self._frame_id))
                log.info(f'receipt {o.receipt_id} revision {o.revision}: {len(o.lines)} lines, '
                         f'{o.total_cents} cents {o.currency}, {o.pending_reviews} pending'
                         + (f'; {o.correction_note}' if o.correction_note else ''))
            elif isinstance(o, ReviewRequestData):
                self._pub_reviews.publish(convert.review_request_msg(o, self._frame_id))
                log.info(f'review {o.request_id} ({REASON_NAMES.get(o.reason, o.reason)}): '
                         f'{o.detail}')
            else:
                log.error(f'unexpected engine output {o!r}')


def main(args=None):
    return run_node('cart', CartNode, (CartDbError, StoreConfigError, ValueError), args=args)


if __name__ == '__main__':
    raise SystemExit(main())
