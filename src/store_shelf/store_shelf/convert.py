"""ShelfEvent / ProductHypothesis messages <-> :mod:`store_shelf.event` (imports messages, never
rclpy). The shelf node publishes with these; the cart, the fusion and the review read with them."""
from __future__ import annotations

from builtin_interfaces.msg import Time
from store_common.stamps import from_ns, to_ns
from store_interfaces.msg import ProductHypothesis, ShelfEvent

from store_shelf.event import HypothesisData, ShelfEventData


def hypothesis_msg(h: HypothesisData) -> ProductHypothesis:
    return ProductHypothesis(sku=h.sku, action=int(h.action), quantity=int(h.quantity),
                             expected_grams=float(h.expected_grams),
                             posterior=float(h.posterior), on_home_plate=bool(h.on_home_plate))


def hypothesis_from_msg(h: ProductHypothesis) -> HypothesisData:
    return HypothesisData(sku=h.sku, action=int(h.action), quantity=int(h.quantity),
                          posterior=float(h.posterior), expected_grams=float(h.expected_grams),
                          on_home_plate=bool(h.on_home_plate))


def shelf_event_msg(ev: ShelfEventData, frame_id: str) -> ShelfEvent:
    """The event as the shelf node publishes it: ``header.stamp`` is the settled stamp."""
    msg = ShelfEvent()
    msg.header.stamp = from_ns(ev.settled_ns, Time)
    msg.header.frame_id = frame_id
    msg.event_id = ev.event_id
    msg.gondola_id = ev.gondola_id
    msg.plate_ids = list(ev.plate_ids)
    msg.plate_delta_grams = [float(d) for d in ev.plate_delta_grams]
    msg.delta_grams = float(ev.delta_grams)
    msg.noise_grams = float(ev.noise_grams)
    msg.start_stamp = from_ns(ev.start_ns, Time)
    msg.settled_stamp = from_ns(ev.settled_ns, Time)
    msg.hypotheses = [hypothesis_msg(h) for h in ev.hypotheses]
    return msg


def shelf_event_from_msg(msg: ShelfEvent) -> ShelfEventData:
    """A zero ``settled_stamp`` falls back to ``header.stamp``, a zero ``start_stamp`` to the
    settled stamp (publishers that fill only the header)."""
    settled_ns = to_ns(msg.settled_stamp) or to_ns(msg.header.stamp)
    start_ns = to_ns(msg.start_stamp) or settled_ns
    return ShelfEventData(
        event_id=msg.event_id, gondola_id=msg.gondola_id, plate_ids=tuple(msg.plate_ids),
        delta_grams=float(msg.delta_grams), start_ns=start_ns, settled_ns=settled_ns,
        hypotheses=tuple(hypothesis_from_msg(h) for h in msg.hypotheses),
        plate_delta_grams=tuple(float(x) for x in msg.plate_delta_grams),
        noise_grams=float(msg.noise_grams))
