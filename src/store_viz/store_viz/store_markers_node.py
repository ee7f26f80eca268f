"""store_markers: the store's MarkerArrays for rviz.

Publishes ``markers/layout`` (latched, once: gondolas, plates, gates) and ``markers/state`` at
``rate_hz`` (plate weights, carts, recent shelf events, open review requests, shopper tracks),
all in the store frame, built by :mod:`store_viz.markers` from subscriptions to every
controller's ``plate_weights``, ``shelf_events``, ``carts``, ``review_requests`` and
``review_decisions`` (a decided request stops being highlighted).
"""
from __future__ import annotations

import math

from rclpy.node import Node
from visualization_msgs.msg import MarkerArray

from store_common.description import load_store, StoreConfigError
from store_common.ros import declare, EVENT_QOS, RELIABLE_STREAM_QOS, run_node, STATE_QOS
from store_interfaces.msg import (CartState, PlateWeights, ReviewDecision, ReviewRequest,
                                  ShelfEvent)
from store_viz.markers import layout_markers, state_markers


class StoreMarkers(Node):

    def __init__(self):
        super().__init__('store_markers')
        store_file = declare(self, 'store_file', '', 'Store description YAML file.')
        rate_hz = declare(self, 'rate_hz', 4.0, 'Rate of markers/state [Hz].', lo=0.1, hi=30.0)
        self.event_show_s = declare(self, 'event_show_s', 5.0, 'How long a shelf event stays '
                                    'visible [s].', lo=0.5, hi=600.0)
        self.store = load_store(store_file)
        self.weights: dict[str, float] = {}
        self.carts: dict[str, CartState] = {}
        self.events: list[tuple[ShelfEvent, float]] = []
        self.reviews: dict[str, ReviewRequest] = {}
        self.pub_layout = self.create_publisher(MarkerArray, 'markers/layout', STATE_QOS)
        self.pub_state = self.create_publisher(MarkerArray, 'markers/state', 10)
        for c in self.store.controllers:
            self.create_subscription(PlateWeights, f'{c.id}/plate_weights', self._on_weights,
                                     RELIABLE_STREAM_QOS)
        self.create_subscription(ShelfEvent, 'shelf_events', self._on_event, EVENT_QOS)
        self.create_subscription(CartState, 'carts', self._on_cart, STATE_QOS)
        self.create_subscription(ReviewRequest, 'review_requests', self._on_review, EVENT_QOS)
        self.create_subscription(ReviewDecision, 'review_decisions', self._on_decision,
                                 EVENT_QOS)
        self.pub_layout.publish(layout_markers(self.store, self.get_clock().now().to_msg()))
        self.create_timer(1.0 / rate_hz, self._publish_state)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _on_weights(self, msg: PlateWeights) -> None:
        for w in msg.weights:
            self.weights[w.plate_id] = w.weight_grams if w.valid else math.nan

    def _on_event(self, msg: ShelfEvent) -> None:
        self.events.append((msg, self._now_s()))

    def _on_cart(self, msg: CartState) -> None:
        self.carts[msg.shopper_id] = msg

    def _on_review(self, msg: ReviewRequest) -> None:
        if msg.reason == ReviewRequest.REASON_SPOT_CHECK:
            return      # the cart holds the machine's decision: nothing waits at the plate
        self.reviews[msg.request_id] = msg

    def _on_decision(self, msg: ReviewDecision) -> None:
        self.reviews.pop(msg.request_id, None)

    def _publish_state(self) -> None:
        now = self._now_s()
        self.events = [(e, t) for e, t in self.events if now - t <= self.event_show_s
                       and now >= t]
        self.pub_state.publish(state_markers(
            self.store, weights=self.weights, carts=self.carts.values(), events=self.events,
            reviews=self.reviews.values(), now_s=now, event_show_s=self.event_show_s,
            stamp=self.get_clock().now().to_msg()))


def main(args=None):
    return run_node('store_markers', StoreMarkers, (StoreConfigError, ValueError, KeyError),
                    args=args)
