"""Messages <-> the engine's plain data (``model.py``). Imports messages, never rclpy.

The shelf event's conversions are store_shelf's (:mod:`store_shelf.convert`); the cart adds the
fused event's (its fused hypotheses and shopper hint)."""
from __future__ import annotations

from dataclasses import replace

from builtin_interfaces.msg import Time
from std_msgs.msg import Header
from store_common.stamps import from_ns, to_ns
from store_interfaces.msg import (CartLine, CartState, CartUpdate, FusedShelfEvent, GateEvent,
                                  Receipt, ReviewCandidate, ReviewDecision, ReviewDecisionAck,
                                  ReviewRequest)
from store_shelf.convert import hypothesis_from_msg, shelf_event_from_msg
from store_shelf.event import ShelfEventData

from store_cart.model import (CartLineData, CartStateData, CartUpdateData, DecisionAckData,
                              GateEventData, ReceiptData, ReviewDecisionData, ReviewRequestData)


def _header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=from_ns(stamp_ns, Time), frame_id=frame_id)


# --- inputs -----------------------------------------------------------------------------------
def gate_event_from_msg(msg: GateEvent) -> GateEventData:
    return GateEventData(event_id=msg.event_id, gate_id=msg.gate_id, kind=int(msg.kind),
                         shopper_id=msg.shopper_id, stamp_ns=to_ns(msg.header.stamp))


def fused_event_from_msg(msg: FusedShelfEvent) -> tuple[ShelfEventData, dict[str, float] | None]:
    """The embedded shelf event with the fused hypotheses, and the shopper hint for
    ``CartEngine.on_shelf_event``: {shopper_id: probability} of the candidates (the "" nobody
    candidate left out), or None when the fusion had no shopper evidence (empty list: the
    engine's weight-only presence rule applies)."""
    ev = shelf_event_from_msg(msg.event)
    if msg.hypotheses:
        ev = replace(ev, hypotheses=tuple(hypothesis_from_msg(h) for h in msg.hypotheses))
    hint: dict[str, float] = {}
    for c in msg.shoppers:
        if c.shopper_id:
            p = min(1.0, max(0.0, float(c.probability)))
            hint[c.shopper_id] = max(p, hint.get(c.shopper_id, 0.0))
    return ev, (hint or None)


def review_decision_from_msg(msg: ReviewDecision) -> ReviewDecisionData:
    return ReviewDecisionData(request_id=msg.request_id, reviewer_id=msg.reviewer_id,
                              shopper_id=msg.shopper_id, sku=msg.sku, action=int(msg.action),
                              quantity=int(msg.quantity), stamp_ns=to_ns(msg.header.stamp))


# --- outputs ----------------------------------------------------------------------------------
def _line_msg(x: CartLineData) -> CartLine:
    return CartLine(sku=x.sku, name=x.name, quantity=x.quantity,
                    unit_price_cents=x.unit_price_cents, line_total_cents=x.line_total_cents,
                    status=x.status)


def cart_update_msg(x: CartUpdateData, frame_id: str) -> CartUpdate:
    return CartUpdate(header=_header(x.stamp_ns, frame_id), update_id=x.update_id,
                      shopper_id=x.shopper_id, session_id=x.session_id, event_id=x.event_id,
                      sku=x.sku, quantity_delta=x.quantity_delta, confidence=x.confidence,
                      source=x.source)


def cart_state_msg(x: CartStateData, frame_id: str) -> CartState:
    return CartState(header=_header(x.stamp_ns, frame_id), shopper_id=x.shopper_id,
                     session_id=x.session_id, state=x.state,
                     lines=[_line_msg(ln) for ln in x.lines], total_cents=x.total_cents,
                     pending_reviews=x.pending_reviews)


def receipt_msg(x: ReceiptData, frame_id: str) -> Receipt:
    return Receipt(header=_header(x.issued_ns, frame_id), receipt_id=x.receipt_id,
                   revision=x.revision, shopper_id=x.shopper_id, store_id=x.store_id,
                   entered_stamp=from_ns(x.entered_ns, Time),
                   exited_stamp=from_ns(x.exited_ns, Time),
                   lines=[_line_msg(ln) for ln in x.lines], total_cents=x.total_cents,
                   currency=x.currency, pending_reviews=x.pending_reviews,
                   correction_note=x.correction_note)


def review_request_msg(x: ReviewRequestData, frame_id: str) -> ReviewRequest:
    return ReviewRequest(
        header=_header(x.stamp_ns, frame_id), request_id=x.request_id, event_id=x.event_id,
        reason=x.reason, detail=x.detail, gondola_id=x.gondola_id,
        plate_ids=list(x.plate_ids), delta_grams=float(x.delta_grams),
        shopper_ids=list(x.shopper_ids),
        candidates=[ReviewCandidate(shopper_id=c.shopper_id, sku=c.sku, action=c.action,
                                    quantity=c.quantity, confidence=float(c.confidence))
                    for c in x.candidates],
        label_chance=float(x.label_chance))


def decision_ack_msg(x: DecisionAckData, now) -> ReviewDecisionAck:
    """``now``: the node's clock reading (rclpy Time) when the decision was handled."""
    msg = ReviewDecisionAck(request_id=x.request_id, reviewer_id=x.reviewer_id,
                            status=int(x.status), reason=x.reason)
    msg.header.stamp = now.to_msg()
    return msg
