"""Message <-> data conversion (messages only, no rclpy)."""
from builtin_interfaces.msg import Time
from std_msgs.msg import Header
from store_interfaces.msg import (CartLine, GateEvent, ProductHypothesis, ReviewDecision,
                                  ReviewRequest, ShelfEvent)

from cart_helpers import ns
from store_cart import convert
from store_shelf.convert import hypothesis_msg, shelf_event_from_msg
from store_cart.model import (CandidateData, CartLineData, CartStateData, CartUpdateData,
                              ReceiptData, ReviewRequestData)


def t(s):
    return Time(sec=int(s), nanosec=int(round((s - int(s)) * 1e9)))


def test_inputs_from_messages():
    msg = ShelfEvent(header=Header(stamp=t(5.6), frame_id='store'), event_id='g1.s1.p1@5000000000',
                     gondola_id='g1', plate_ids=['g1.s1.p1', 'g1.s1.p2'],
                     plate_delta_grams=[-300.0, -52.0], delta_grams=-352.0, noise_grams=1.5,
                     start_stamp=t(5.0), settled_stamp=t(5.6),
                     hypotheses=[ProductHypothesis(sku='COLA-330', action=1, quantity=1,
                                                   expected_grams=-352.0, posterior=0.9,
                                                   on_home_plate=True)])
    ev = shelf_event_from_msg(msg)
    assert (ev.start_ns, ev.settled_ns, ev.plate_ids) == (ns(5.0), ns(5.6),
                                                          ('g1.s1.p1', 'g1.s1.p2'))
    assert ev.hypotheses[0].sku == 'COLA-330' and ev.hypotheses[0].posterior == 0.9
    g = convert.gate_event_from_msg(GateEvent(header=Header(stamp=t(1.5)), event_id='entrance@1',
                                              gate_id='entrance', kind=1, shopper_id='acct-1'))
    assert (g.stamp_ns, g.kind, g.shopper_id) == (ns(1.5), 1, 'acct-1')
    d = convert.review_decision_from_msg(ReviewDecision(
        header=Header(stamp=t(9.0)), request_id='review/x', reviewer_id='alice',
        shopper_id='acct-1', sku='COLA-330', action=1, quantity=1))
    assert (d.request_id, d.stamp_ns, d.changes_cart) == ('review/x', ns(9.0), True)


def test_fused_event_gives_fused_hypotheses_and_a_shopper_hint():
    from store_interfaces.msg import FusedShelfEvent, ShopperCandidate
    shelf = ShelfEvent(header=Header(stamp=t(5.6)), event_id='g1.s1.p1@5000000000',
                       gondola_id='g1', plate_ids=['g1.s1.p1'], delta_grams=-352.0,
                       start_stamp=t(5.0), settled_stamp=t(5.6),
                       hypotheses=[ProductHypothesis(sku='COLA-330', action=1, quantity=1,
                                                     posterior=0.55),
                                   ProductHypothesis(sku='LEMON-330', action=1, quantity=1,
                                                     posterior=0.45)])
    fused = [ProductHypothesis(sku='LEMON-330', action=1, quantity=1, posterior=0.9,
                               expected_grams=-355.0, on_home_plate=True),
             ProductHypothesis(sku='COLA-330', action=1, quantity=1, posterior=0.1)]
    msg = FusedShelfEvent(event=shelf, hypotheses=fused, shoppers=[
        ShopperCandidate(shopper_id='acct-b', track_id='t2', probability=0.93),
        ShopperCandidate(shopper_id='acct-a', track_id='t1', probability=0.05),
        ShopperCandidate(shopper_id='', probability=0.02)])
    ev, hint = convert.fused_event_from_msg(msg)
    assert (ev.event_id, ev.start_ns, ev.settled_ns) == (shelf.event_id, ns(5.0), ns(5.6))
    assert [(h.sku, h.posterior) for h in ev.hypotheses] == [('LEMON-330', 0.9),
                                                             ('COLA-330', 0.1)]
    assert hint == {'acct-b': 0.93, 'acct-a': 0.05}
    # no shopper candidates: no vision evidence, the presence rule applies (no hint)
    ev, hint = convert.fused_event_from_msg(FusedShelfEvent(event=shelf))
    assert hint is None and [h.sku for h in ev.hypotheses] == ['COLA-330', 'LEMON-330']
    # hypothesis data back to a message
    h = hypothesis_msg(ev.hypotheses[0])
    assert (h.sku, h.action, h.posterior) == ('COLA-330', 1, 0.55)


def test_outputs_to_messages():
    ln = CartLineData('COLA-330', 'Cola', 2, 129, 258, CartLine.STATUS_PENDING_REVIEW)
    u = convert.cart_update_msg(CartUpdateData('e/a/COLA-330', 'a', 'a@1', 'e', 'COLA-330', -1,
                                               0.95, 1, ns(3.25)), 'store')
    assert (u.header.stamp.sec, u.header.stamp.nanosec, u.quantity_delta) == (3, 250000000, -1)
    c = convert.cart_state_msg(CartStateData('a', 'a@1', 1, (ln,), 258, 1, ns(4.0)), 'store')
    assert c.lines[0].status == CartLine.STATUS_PENDING_REVIEW and c.header.frame_id == 'store'
    r = convert.receipt_msg(ReceiptData('a@1', 2, 'a', 'demo', ns(1.0), ns(9.0), (ln,), 258,
                                        'EUR', 0, 'fixed', ns(20.0)), 'store')
    assert (r.revision, r.exited_stamp.sec, r.header.stamp.sec, r.correction_note) == (
        2, 9, 20, 'fixed')
    q = convert.review_request_msg(ReviewRequestData(
        'review/e', 'e', ReviewRequest.REASON_AMBIGUOUS_SHOPPER, 'two', 'g1', ('g1.s1.p1',),
        -352.0, ('a', 'b'), (CandidateData('a', 'COLA-330', 1, 1, 0.5),), ns(5.0)), 'store')
    assert list(q.shopper_ids) == ['a', 'b'] and q.candidates[0].confidence == 0.5


def test_model_constants_match_the_messages():
    from store_cart import model
    from store_interfaces.msg import CartState, CartUpdate
    pairs = [(GateEvent, 'KIND_ENTER'), (GateEvent, 'KIND_EXIT'),
             (ProductHypothesis, 'ACTION_TAKE'), (ProductHypothesis, 'ACTION_RETURN'),
             (CartLine, 'STATUS_CONFIRMED'), (CartLine, 'STATUS_PENDING_REVIEW'),
             (CartUpdate, 'SOURCE_WEIGHT'), (CartUpdate, 'SOURCE_FUSED'),
             (CartUpdate, 'SOURCE_REVIEW'), (CartState, 'STATE_IN_STORE'),
             (CartState, 'STATE_EXITED')]
    pairs += [(ReviewRequest, n) for n in dir(ReviewRequest) if n.startswith('REASON_')]
    for cls, name in pairs:
        assert getattr(model, name) == getattr(cls, name), name
