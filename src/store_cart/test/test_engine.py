"""Cart engine policy, timing and review tests (plain pytest, no ROS)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from cart_helpers import (CATALOG, decide, enter, feed, leave, ns, ret, shelf, STORE_ID, take,
                          unknown)
from store_cart.engine import CartEngine, CartParams, fused_params, RECEIPT_NOTE_REVIEW
from store_cart.model import (
    ACK_APPLIED, ACK_REJECTED, ACTION_NONE, ACTION_RETURN, ACTION_TAKE, CartLineData,
    CartStateData, CartUpdateData, DecisionAckData, Note,
    REASON_AMBIGUOUS_SHOPPER, REASON_CLOSE_CANDIDATES, REASON_LOW_CONFIDENCE, REASON_NO_SHOPPER,
    REASON_NOT_IN_CART, REASON_UNKNOWN_WEIGHT, ReceiptData, ReviewRequestData, SOURCE_FUSED,
    SOURCE_REVIEW, SOURCE_WEIGHT, STATE_EXITED, STATE_IN_STORE, STATUS_CONFIRMED,
    STATUS_PENDING_REVIEW)

A, B = 'acct-a', 'acct-b'


@pytest.fixture
def engine(tmp_path):
    with CartEngine(str(tmp_path / 'carts.sqlite'), CATALOG, STORE_ID) as e:
        yield e


def of(outs, cls):
    return [o for o in outs if isinstance(o, cls)]


def warnings(outs):
    return [o for o in outs if isinstance(o, str) and not isinstance(o, Note)]


def line(sku, q, status=STATUS_CONFIRMED):
    price = CATALOG[sku].price_cents
    return CartLineData(sku, CATALOG[sku].name, q, price, q * price, status)


def cart_of(engine, shopper) -> CartStateData:
    (cart,) = [c for c in engine.state().carts if c.shopper_id == shopper]
    return cart


# --- single shopper ---------------------------------------------------------------------------
def test_single_shopper_take_and_return_gives_exact_receipt(engine):
    e_cola = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.97), take('LEMON-330', 0.03)])
    e_water = shelf('g1.s2.p1', 8.0, [take('WATER-500', 0.95, 2), unknown(0.05)])
    e_back = shelf('g1.s1.p1', 12.0, [ret('COLA-330', 0.93), ret('LEMON-330', 0.07)])
    e_choc = shelf('g2.s1.p1', 14.0, [take('CHOC-DARK', 0.99)])
    outs = feed(engine, [('gate', enter(A, 1.0)), ('shelf', e_cola), ('shelf', e_water),
                         ('tick', ns(10.0)), ('shelf', e_back), ('shelf', e_choc),
                         ('gate', leave(A, 20.0)), ('tick', ns(20.5))])
    assert not warnings(outs)
    ups = of(outs, CartUpdateData)
    assert [(u.sku, u.quantity_delta, u.source) for u in ups] == [
        ('COLA-330', 1, SOURCE_WEIGHT), ('WATER-500', 2, SOURCE_WEIGHT),
        ('COLA-330', -1, SOURCE_WEIGHT), ('CHOC-DARK', 1, SOURCE_WEIGHT)]
    assert ups[0].confidence == pytest.approx(0.97)
    assert ups[0].update_id == f'{e_cola.event_id}/{A}/COLA-330'
    assert ups[0].session_id == f'{A}@{ns(1.0)}'
    assert ups[0].stamp_ns == e_cola.settled_ns
    assert not of(outs, ReviewRequestData) and not of(outs, ReceiptData)

    (receipt,) = of(engine.tick(ns(23.0)), ReceiptData)
    assert receipt == ReceiptData(
        receipt_id=f'{A}@{ns(1.0)}', revision=1, shopper_id=A, store_id=STORE_ID,
        entered_ns=ns(1.0), exited_ns=ns(20.0),
        lines=(line('CHOC-DARK', 1), line('WATER-500', 2)), total_cents=199 + 2 * 89,
        currency='EUR', pending_reviews=0, correction_note='', issued_ns=ns(23.0))
    cart = cart_of(engine, A)
    assert cart.state == STATE_EXITED and cart.lines == receipt.lines
    assert cart.stamp_ns == ns(20.0)
    assert engine.tick(ns(30.0)) == []   # issued once


def test_receipt_only_after_grace(engine):
    feed(engine, [('gate', enter(A, 1.0)), ('gate', leave(A, 20.0))])
    assert of(engine.tick(ns(22.999)), ReceiptData) == []
    assert engine.state().receipts == []
    (r,) = of(engine.tick(ns(23.0)), ReceiptData)
    assert r.revision == 1 and r.lines == () and r.total_cents == 0


def test_grace_must_exceed_hold(tmp_path):
    with pytest.raises(ValueError, match='receipt_grace_s'):
        CartEngine(str(tmp_path / 'x.sqlite'), CATALOG, STORE_ID,
                   CartParams(hold_s=2.0, receipt_grace_s=1.5))


# --- who was there ----------------------------------------------------------------------------
def test_two_shoppers_present_gives_review_and_no_guess(engine):
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.9), take('LEMON-330', 0.08),
                                 unknown(0.02)])
    outs = feed(engine, [('gate', enter(A, 1.0)), ('gate', enter(B, 2.0)), ('shelf', ev),
                         ('tick', ns(7.0))])
    assert not of(outs, CartUpdateData)
    (req,) = of(outs, ReviewRequestData)
    assert req.reason == REASON_AMBIGUOUS_SHOPPER
    assert req.request_id == f'review/{ev.event_id}' and req.stamp_ns == ev.settled_ns
    assert set(req.shopper_ids) == {A, B}
    got = {(c.shopper_id, c.sku): c.confidence for c in req.candidates}
    assert got == pytest.approx({(A, 'COLA-330'): 0.45, (B, 'COLA-330'): 0.45,
                                 (A, 'LEMON-330'): 0.04, (B, 'LEMON-330'): 0.04,
                                 ('', ''): 0.02})
    assert [c.confidence for c in req.candidates] == sorted(
        (c.confidence for c in req.candidates), reverse=True)
    for shopper in (A, B):
        cart = cart_of(engine, shopper)
        assert cart.lines == () and cart.total_cents == 0 and cart.pending_reviews == 1
    assert engine.state().open_reviews == [req]
    feed(engine, [('gate', leave(A, 10.0)), ('gate', leave(B, 11.0))])
    receipts = of(engine.tick(ns(15.0)), ReceiptData)
    assert [(r.shopper_id, r.lines, r.pending_reviews) for r in receipts] == [
        (A, (), 1), (B, (), 1)]


def test_nobody_present_gives_review(engine):
    before = shelf('g1.s1.p1', 0.5, [take('COLA-330', 0.99)])
    after = shelf('g1.s1.p2', 22.0, [take('COLA-330', 0.99)])
    outs = feed(engine, [('shelf', before), ('gate', enter(A, 1.0)), ('gate', leave(A, 10.0)),
                         ('shelf', after), ('tick', ns(24.0))])
    reqs = of(outs, ReviewRequestData)
    assert [r.reason for r in reqs] == [REASON_NO_SHOPPER, REASON_NO_SHOPPER]
    # 0.5 s before A's entry scan: A is offered (at p=0), "no change" stays the best guess
    assert reqs[0].shopper_ids == (A,)
    assert reqs[0].candidates[0].shopper_id == '' and reqs[0].candidates[0].confidence == 1.0
    assert (A, 'COLA-330', 1) in {(c.shopper_id, c.sku, c.quantity) for c in reqs[0].candidates}
    # 12 s after A left: nobody to offer
    assert reqs[1].shopper_ids == ()
    assert all(c.shopper_id == '' for c in reqs[1].candidates)
    assert not of(outs, CartUpdateData)
    # the reviewer's answer naming A is one of the candidates: the cart takes it
    outs = engine.on_review_decision(decide(before, A, 'COLA-330', ACTION_TAKE, 1, 25.0))
    assert not warnings(outs)
    assert of(outs, DecisionAckData)[0].status == ACK_APPLIED


def test_presence_uses_event_start_stamp_not_processing_time(engine):
    # The hand arrived while A was inside; A left before the event was processed.
    ev = shelf('g1.s1.p1', 9.5, [take('COLA-330', 0.99)], settled_s=10.5)
    outs = feed(engine, [('gate', enter(A, 1.0)), ('shelf', ev), ('gate', leave(A, 10.0)),
                         ('tick', ns(12.0))])
    assert [(u.shopper_id, u.quantity_delta) for u in of(outs, CartUpdateData)] == [(A, 1)]


def test_shopper_hint_replaces_presence_rule(engine):
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.95), take('LEMON-330', 0.05)])
    feed(engine, [('gate', enter(A, 1.0)), ('gate', enter(B, 2.0))])
    assert engine.on_shelf_event(ev, shopper_hint={A: 0.96, B: 0.04}) == []
    (u,) = of(engine.tick(ns(7.0)), CartUpdateData)
    assert (u.shopper_id, u.sku, u.source) == (A, 'COLA-330', SOURCE_FUSED)
    assert u.confidence == pytest.approx(0.95 * 0.96)
    ev2 = shelf('g1.s1.p2', 8.0, [take('COLA-330', 0.99)])
    engine.on_shelf_event(ev2, shopper_hint={A: 0.6, B: 0.4})
    (req,) = of(engine.tick(ns(10.0)), ReviewRequestData)
    assert req.reason == REASON_AMBIGUOUS_SHOPPER
    assert req.candidates[0].shopper_id == A
    assert req.candidates[0].confidence == pytest.approx(0.6 * 0.99)


def test_fused_threshold_lets_a_likely_shopper_through(tmp_path):
    ev = shelf('g1.s1.p2', 8.0, [take('COLA-330', 0.99)])
    hint = {A: 0.8, B: 0.2}
    for fused_min, expect in ((-1.0, ReviewRequestData), (0.7, CartUpdateData)):
        params = fused_params(CartParams(), fused_min)
        with CartEngine(str(tmp_path / f'c{fused_min}.sqlite'), CATALOG, STORE_ID, params) as e:
            feed(e, [('gate', enter(A, 1.0)), ('gate', enter(B, 2.0))])
            e.on_shelf_event(ev, shopper_hint=hint)
            outs = e.tick(ns(10.0))
            assert [type(o) for o in outs if isinstance(o, (ReviewRequestData,
                                                            CartUpdateData))] == [expect]
    assert fused_params(CartParams(min_confidence=0.95), -1.0).min_confidence == 0.95


def test_alone_in_the_store_the_shopper_did_it_whatever_the_cameras_saw(engine):
    """An unseen reach (hint without the shopper, or a weak one) never sends the only shopper
    inside to review: fused is never worse than weight-only when one shopper is present."""
    feed(engine, [('gate', enter(A, 1.0))])
    for k, hint in enumerate(({}, {A: 0.3}, {'acct-gone': 0.9})):
        ev = shelf(f'g1.s1.p{k + 1}', 5.0 + k, [take('COLA-330', 0.99)])
        engine.on_shelf_event(ev, shopper_hint=hint)
    outs = engine.tick(ns(12.0))
    assert not of(outs, ReviewRequestData)
    assert [(u.shopper_id, u.sku, u.quantity_delta) for u in of(outs, CartUpdateData)] == [
        (A, 'COLA-330', 1)] * 3


def test_ambiguous_hint_reviews_with_every_shopper_inside_as_a_candidate(engine):
    C = 'acct-c'
    feed(engine, [('gate', enter(A, 1.0)), ('gate', enter(B, 2.0)), ('gate', enter(C, 3.0))])
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.9), take('LEMON-330', 0.1)])
    engine.on_shelf_event(ev, shopper_hint={B: 0.55, A: 0.4, 'acct-gone': 0.05})
    (req,) = of(engine.tick(ns(7.0)), ReviewRequestData)
    assert req.reason == REASON_AMBIGUOUS_SHOPPER
    assert req.shopper_ids == (B, A, C)         # by hint probability; C unseen by the cameras
    top2 = [(c.shopper_id, c.sku) for c in req.candidates[:2]]
    assert top2 == [(B, 'COLA-330'), (A, 'COLA-330')]
    assert req.candidates[0].confidence == pytest.approx(0.55 * 0.9)
    assert {c.shopper_id for c in req.candidates} == {A, B, C, ''}
    assert all(c.confidence == 0.0 for c in req.candidates if c.shopper_id == C)
    # the cameras' best guess waits, pending, in the cart of the most likely shopper: a receipt
    # issued before the answer carries it as pending, not nothing
    assert cart_of(engine, B).lines == (line('COLA-330', 1, STATUS_PENDING_REVIEW),)
    assert cart_of(engine, A).lines == ()
    # a hint naming nobody inside is no "nobody was in the store", and names nobody to hold it
    ev2 = shelf('g1.s1.p2', 8.0, [take('COLA-330', 0.99)])
    engine.on_shelf_event(ev2, shopper_hint={'acct-gone': 0.9})
    (req2,) = of(engine.tick(ns(10.0)), ReviewRequestData)
    assert req2.reason == REASON_AMBIGUOUS_SHOPPER and set(req2.shopper_ids) == {A, B, C}
    assert not of(engine.tick(ns(11.0)), CartUpdateData)
    assert [c.lines for c in (cart_of(engine, A), cart_of(engine, C))] == [(), ()]
    # the answer names A: the pending line leaves B's cart, A's gets the confirmed one
    outs = engine.on_review_decision(decide(ev, A, 'COLA-330', ACTION_TAKE, 1, 12.0))
    assert not warnings(outs)
    assert cart_of(engine, A).lines == (line('COLA-330', 1),)
    assert cart_of(engine, B).lines == ()


# --- not sure what ----------------------------------------------------------------------------
@pytest.mark.parametrize('hyps, reason, pending_sku', [
    ([take('COLA-330', 0.7), unknown(0.3)], REASON_LOW_CONFIDENCE, 'COLA-330'),
    ([take('CHOC-DARK', 0.58), take('CHOC-MILK', 0.42)], REASON_LOW_CONFIDENCE, 'CHOC-DARK'),
    ([take('LEMON-330', 0.91), take('COLA-330', 0.09)], None, None),
    ([unknown(0.7), take('OJ-1L', 0.3)], REASON_UNKNOWN_WEIGHT, 'OJ-1L'),
    ([unknown(1.0)], REASON_UNKNOWN_WEIGHT, None),
])
def test_uncertain_product_gives_review_and_pending_line(engine, hyps, reason, pending_sku):
    ev = shelf('g1.s1.p1', 5.0, hyps)
    outs = feed(engine, [('gate', enter(A, 1.0)), ('shelf', ev), ('tick', ns(7.0)),
                         ('gate', leave(A, 10.0)), ('tick', ns(13.0))])
    (receipt,) = of(outs, ReceiptData)
    if reason is None:
        assert of(outs, CartUpdateData) and not of(outs, ReviewRequestData)
        assert receipt.lines == (line('LEMON-330', 1),) and receipt.pending_reviews == 0
        return
    (req,) = of(outs, ReviewRequestData)
    assert req.reason == reason and req.shopper_ids == (A,)
    assert not of(outs, CartUpdateData)
    assert receipt.pending_reviews == 1
    if pending_sku is None:
        assert receipt.lines == () and receipt.total_cents == 0
    else:
        assert receipt.lines == (line(pending_sku, 1, STATUS_PENDING_REVIEW),)
        assert receipt.total_cents == CATALOG[pending_sku].price_cents


def test_a_product_review_offers_every_shopper_inside_and_blocks_only_the_cameras_one(
        tmp_path):
    # the cameras are sure of A (past the shopper bars), the weight is unsure of the product;
    # B did it. Seen in a live run: the reviewer could only answer "cannot tell", and B's
    # receipt kept a product B had returned
    params = fused_params(CartParams(min_confidence=0.9, min_margin=0.2), 0.9)
    with CartEngine(str(tmp_path / 'c.sqlite'), CATALOG, STORE_ID, params) as engine:
        ev = shelf('g2.s1.p1', 5.0, [take('CHOC-DARK', 0.58), take('CHOC-MILK', 0.42)])
        engine.on_gate_event(enter(A, 1.0))
        engine.on_gate_event(enter(B, 2.0))
        engine.on_shelf_event(ev, shopper_hint={A: 0.97, B: 0.03})
        (req,) = of(engine.tick(ns(7.0)), ReviewRequestData)
        assert req.reason == REASON_LOW_CONFIDENCE and req.shopper_ids == (A, B)
        assert [(c.shopper_id, c.sku) for c in req.candidates[:2]] == [
            (A, 'CHOC-DARK'), (A, 'CHOC-MILK')]
        assert {(c.shopper_id, c.sku) for c in req.candidates} >= {
            (B, 'CHOC-DARK'), (B, 'CHOC-MILK')}
        # the guess waits in A's cart; B's visit does not wait for this review
        assert cart_of(engine, A).lines == (line('CHOC-DARK', 1, STATUS_PENDING_REVIEW),)
        assert engine.db.open_review_count(engine.db.open_session(B)['session_id']) == 0
        outs = feed(engine, [('gate', leave(B, 8.0)), ('tick', ns(12.0))])
        (receipt_b,) = of(outs, ReceiptData)
        assert receipt_b.pending_reviews == 0 and receipt_b.lines == ()
        # the answer names B: the guess leaves A's cart, B's receipt gets a revision with it
        outs = engine.on_review_decision(decide(ev, B, 'CHOC-DARK', ACTION_TAKE, 1, 13.0))
        assert not warnings(outs)
        assert cart_of(engine, A).lines == ()
        (rev2,) = of(outs, ReceiptData)
        assert (rev2.shopper_id, rev2.revision, rev2.lines) == (
            B, 2, (line('CHOC-DARK', 1),))


def test_a_review_offers_only_the_quantities_the_weight_leaves_a_chance(tmp_path):
    # seen in a live run: a one-unit change offered 1, 2 and 3 units to each of three
    # shoppers, six of the nine answers at p = 0.00
    params = fused_params(CartParams(min_confidence=0.9, min_margin=0.2), 0.9)
    with CartEngine(str(tmp_path / 'c.sqlite'), CATALOG, STORE_ID, params) as engine:
        engine.on_gate_event(enter(A, 1.0))
        engine.on_gate_event(enter(B, 2.0))
        ev = shelf('g2.s1.p1', 5.0, [take('CHOC-DARK', 0.996), take('CHOC-DARK', 0.003, 2),
                                     take('CHOC-DARK', 0.001, 3)])
        engine.on_shelf_event(ev, shopper_hint={A: 0.6, B: 0.4})
        (req,) = of(engine.tick(ns(7.0)), ReviewRequestData)
        got = [(c.shopper_id, c.quantity) for c in req.candidates if c.shopper_id]
        assert got == [(A, 1), (B, 1)]
        # two quantities the weight cannot tell apart are both offered, to every shopper
        ev2 = shelf('g2.s1.p2', 9.0, [take('CHOC-DARK', 0.55), take('CHOC-DARK', 0.44, 2),
                                      take('CHOC-DARK', 0.01, 3)])
        engine.on_shelf_event(ev2, shopper_hint={A: 0.6, B: 0.4})
        (req2,) = of(engine.tick(ns(11.0)), ReviewRequestData)
        got = sorted((c.shopper_id, c.quantity) for c in req2.candidates if c.shopper_id)
        assert got == [(A, 1), (A, 2), (A, 3), (B, 1), (B, 2), (B, 3)]


def test_close_candidates_gives_review(tmp_path):
    params = CartParams(min_confidence=0.5, min_margin=0.2)
    with CartEngine(str(tmp_path / 'c.sqlite'), CATALOG, STORE_ID, params) as engine:
        ev = shelf('g2.s1.p1', 5.0, [take('CHOC-DARK', 0.58), take('CHOC-MILK', 0.42)])
        outs = feed(engine, [('gate', enter(A, 1.0)), ('shelf', ev), ('tick', ns(7.0))])
        (req,) = of(outs, ReviewRequestData)
        assert req.reason == REASON_CLOSE_CANDIDATES
        assert [(c.sku, c.confidence) for c in req.candidates[:2]] == [
            ('CHOC-DARK', pytest.approx(0.58)), ('CHOC-MILK', pytest.approx(0.42))]
        assert cart_of(engine, A).lines == (line('CHOC-DARK', 1, STATUS_PENDING_REVIEW),)


def test_return_not_in_cart_gives_review(engine):
    e_take = shelf('g1.s1.p1', 3.0, [take('COLA-330', 0.99)])
    e_ret2 = shelf('g1.s1.p1', 5.0, [ret('COLA-330', 0.97, 2)])
    e_oj = shelf('g3.s1.p1', 7.0, [ret('OJ-1L', 0.99)])
    outs = feed(engine, [('gate', enter(A, 1.0)), ('shelf', e_take), ('shelf', e_ret2),
                         ('shelf', e_oj), ('tick', ns(9.0))])
    assert [u.quantity_delta for u in of(outs, CartUpdateData)] == [1]
    assert [r.reason for r in of(outs, ReviewRequestData)] == [REASON_NOT_IN_CART] * 2
    # a return of more than the cart holds is no guess for this cart: it keeps what it had
    cart = cart_of(engine, A)
    assert cart.lines == (line('COLA-330', 1),)
    assert cart.pending_reviews == 2
    # a reviewer who answers "two came back" returns what the cart holds, and says so
    outs = engine.on_review_decision(decide(e_ret2, A, 'COLA-330', ACTION_RETURN, 2, 10.0))
    assert [u.quantity_delta for u in of(outs, CartUpdateData)] == [-1]
    assert any('applied as 1' in w for w in warnings(outs))
    assert cart_of(engine, A).lines == ()


@pytest.mark.parametrize('answer_take, answer_return, final, return_first', [
    (None, None, (), False),                           # before any answer: the best guess
    (ACTION_TAKE, None, (), False),                    # the take is confirmed, return pending
    (None, ACTION_RETURN, (), False),                  # the return is confirmed, take pending
    (ACTION_TAKE, ACTION_RETURN, (), False),           # both confirmed
    (ACTION_TAKE, ACTION_RETURN, (), True),            # ... the return's answer first
    (ACTION_TAKE, ACTION_NONE, (('CHOC-DARK', 1, STATUS_CONFIRMED),), False),   # not returned
    (ACTION_NONE, ACTION_NONE, (), False),             # neither happened
])
def test_return_guess_nets_out_the_pending_take_on_the_receipt(tmp_path, answer_take,
                                                               answer_return, final,
                                                               return_first):
    # a bar taken with a low-confidence guess (pending) and put back: the return is reviewed as
    # "not in cart" (nothing confirmed to return), and its guess cancels the pending take, so
    # the receipt issued before any answer does not bill a bar that went back on the shelf.
    # return_wait_s 0: reviewed at once (the next test: it waits for the take's answer)
    engine = CartEngine(str(tmp_path / 'carts.sqlite'), CATALOG, STORE_ID,
                        CartParams(return_wait_s=0.0))
    e_take = shelf('g2.s1.p1', 3.0, [take('CHOC-DARK', 0.58), take('CHOC-MILK', 0.42)])
    e_ret = shelf('g2.s1.p1', 5.0, [ret('CHOC-DARK', 0.97)])
    # a confirmed cola whose return is uncertain: billed on the receipt only if not returned
    e_cola = shelf('g1.s1.p1', 4.0, [take('COLA-330', 0.99)])
    e_cola_back = shelf('g1.s1.p1', 6.0, [ret('COLA-330', 0.7), unknown(0.3)])
    outs = feed(engine, [('gate', enter(A, 1.0)), ('shelf', e_take), ('shelf', e_cola),
                         ('shelf', e_ret), ('shelf', e_cola_back), ('gate', leave(A, 8.0)),
                         ('tick', ns(12.0))])
    assert [r.reason for r in of(outs, ReviewRequestData)] == [
        REASON_LOW_CONFIDENCE, REASON_NOT_IN_CART, REASON_LOW_CONFIDENCE]
    assert [u.quantity_delta for u in of(outs, CartUpdateData)] == [1]   # confirmed only
    (receipt,) = of(outs, ReceiptData)
    assert receipt.lines == () and receipt.total_cents == 0 and receipt.pending_reviews == 3
    outs = []
    answers = [(e_take, answer_take), (e_ret, answer_return)]
    for ev, action in answers[::-1] if return_first else answers:
        if action is not None:
            # "it did not happen" is the explicit no change: no product, no units
            outs += engine.on_review_decision(
                decide(ev, A, 'CHOC-DARK', action, 1, 20.0) if action != ACTION_NONE
                else decide(ev, A, '', ACTION_NONE, 0, 20.0))
    assert not warnings(outs)
    assert cart_of(engine, A).lines == tuple(line(*x) for x in final)
    # the cola's return answered "no": the confirmed cola is billed again
    outs = engine.on_review_decision(decide(e_cola_back, A, '', ACTION_NONE, 0, 21.0))
    assert cart_of(engine, A).lines == tuple(
        sorted((line('COLA-330', 1),) + tuple(line(*x) for x in final), key=lambda ln: ln.sku))
    assert of(outs, ReceiptData)[-1].lines == cart_of(engine, A).lines
    engine.close()


@pytest.mark.parametrize('answer, reviewed, final', [
    ('CHOC-DARK', False, ()),                                # the take was the dark bar
    ('CHOC-MILK', True, (('CHOC-MILK', 1, STATUS_CONFIRMED),)),   # not the bar put back
    ('', True, ()),                                          # no take happened
    (None, True, ()),                                        # no answer within return_wait_s
])
def test_a_return_waits_for_the_answer_to_its_take(tmp_path, answer, reviewed, final):
    # the same bar, taken with a guess in doubt and put back: the return of a product the cart
    # holds only as a pending guess waits for the take's answer (return_wait_s) instead of
    # asking a second question. Meanwhile its own guess nets out the take on the receipt.
    # Answered "the dark bar", the return is decided without review; any other answer, or none
    # in time, and the return is reviewed as "not in cart" as before
    db = str(tmp_path / 'carts.sqlite')
    e_take = shelf('g2.s1.p1', 3.0, [take('CHOC-DARK', 0.58), take('CHOC-MILK', 0.42)])
    e_ret = shelf('g2.s1.p1', 5.0, [ret('CHOC-DARK', 0.97)])
    engine = CartEngine(db, CATALOG, STORE_ID, CartParams(return_wait_s=30.0))
    outs = feed(engine, [('gate', enter(A, 1.0)), ('shelf', e_take), ('shelf', e_ret),
                         ('gate', leave(A, 8.0)), ('tick', ns(12.0))])
    assert [r.event_id for r in of(outs, ReviewRequestData)] == [e_take.event_id]
    assert any(isinstance(o, Note) and 'waits up to 30 s' in o for o in outs), outs
    (receipt,) = of(outs, ReceiptData)
    assert receipt.lines == () and receipt.pending_reviews == 1
    assert not feed(engine, [('tick', ns(12.5))])        # still waiting: nothing new
    # a restart while it waits: the return is still queued in the database
    engine.close()
    engine = CartEngine(db, CATALOG, STORE_ID, CartParams(return_wait_s=30.0))
    outs = feed(engine, [('tick', ns(13.0))])
    assert not of(outs, ReviewRequestData) and not of(outs, CartUpdateData)
    if answer is not None:
        outs = engine.on_review_decision(
            decide(e_take, A, answer, ACTION_TAKE, 1, 20.0) if answer
            else decide(e_take, A, '', ACTION_NONE, 0, 20.0))
        outs += feed(engine, [('tick', ns(20.1))])
    else:
        outs = feed(engine, [('tick', ns(5.0 + 0.6 + 30.0))])
    requests = of(outs, ReviewRequestData)
    assert [(r.event_id, r.reason) for r in requests] == (
        [(e_ret.event_id, REASON_NOT_IN_CART)] if reviewed else [])
    if not reviewed:
        (back,) = [u for u in of(outs, CartUpdateData) if u.quantity_delta < 0]
        assert (back.sku, back.quantity_delta) == ('CHOC-DARK', -1)
    assert cart_of(engine, A).lines == tuple(line(*x) for x in final)
    assert engine.db.queued_count() == 0        # decided: nothing waits any more
    engine.close()


# --- hold and ordering ------------------------------------------------------------------------
@pytest.mark.parametrize('hold_s, expect_shopper', [(1.0, A), (0.0, None)])
def test_hold_waits_for_a_late_enter(tmp_path, hold_s, expect_shopper):
    params = CartParams(hold_s=hold_s, receipt_grace_s=3.0)
    with CartEngine(str(tmp_path / 'h.sqlite'), CATALOG, STORE_ID, params) as engine:
        ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.99)], settled_s=5.6)
        outs = feed(engine, [('shelf', ev), ('tick', ns(5.7)),
                             ('gate', enter(A, 4.8)),          # stamped before, delivered after
                             ('tick', ns(6.0)), ('tick', ns(6.6))])
        ups = of(outs, CartUpdateData)
        if expect_shopper is None:   # without a hold the event is decided before the enter
            assert not ups
            assert [r.reason for r in of(outs, ReviewRequestData)] == [REASON_NO_SHOPPER]
        else:
            assert [(u.shopper_id, u.quantity_delta) for u in ups] == [(A, 1)]


def test_events_are_processed_in_settled_order(engine):
    e_take = shelf('g1.s1.p1', 3.0, [take('COLA-330', 0.99)])
    e_ret = shelf('g1.s1.p1', 4.0, [ret('COLA-330', 0.99)])
    outs = feed(engine, [('gate', enter(A, 1.0)), ('shelf', e_ret), ('shelf', e_take),
                         ('tick', ns(6.0))])
    assert [u.quantity_delta for u in of(outs, CartUpdateData)] == [1, -1]
    assert not of(outs, ReviewRequestData)


# --- gates ------------------------------------------------------------------------------------
def test_gate_duplicates_and_unknown_exit(engine):
    outs = feed(engine, [('gate', enter(A, 1.0)), ('gate', enter(A, 2.0))])
    assert len(of(outs, CartStateData)) == 1 and cart_of(engine, A).state == STATE_IN_STORE
    assert any('duplicate enter' in w for w in warnings(outs))
    outs = engine.on_gate_event(leave(B, 3.0))
    assert outs and 'unknown shopper acct-b' in outs[0]
    assert engine.on_gate_event(enter(A, 1.0)) == []          # redelivered
    feed(engine, [('gate', leave(A, 4.0)), ('gate', enter(A, 5.0))])
    assert [c.session_id for c in engine.state().carts] == [f'{A}@{ns(1.0)}', f'{A}@{ns(5.0)}']


# --- review decisions -------------------------------------------------------------------------
def test_decision_before_exit_updates_cart(engine):
    ev = shelf('g2.s1.p1', 5.0, [take('CHOC-DARK', 0.6), take('CHOC-MILK', 0.4)])
    feed(engine, [('gate', enter(A, 1.0)), ('shelf', ev), ('tick', ns(7.0))])
    assert cart_of(engine, A).lines == (line('CHOC-DARK', 1, STATUS_PENDING_REVIEW),)
    outs = engine.on_review_decision(decide(ev, A, 'CHOC-MILK', ACTION_TAKE, 1, 8.0))
    assert not warnings(outs)
    (note,) = of(outs, Note)
    assert 'decided by alice: take 1 CHOC-MILK for acct-a' in note
    (u,) = of(outs, CartUpdateData)
    assert (u.sku, u.quantity_delta, u.source) == ('CHOC-MILK', 1, SOURCE_REVIEW)
    assert u.confidence == 1.0
    assert u.event_id == f'review/{ev.event_id}'
    (cart,) = of(outs, CartStateData)
    assert cart.lines == (line('CHOC-MILK', 1),) and cart.pending_reviews == 0
    assert not of(outs, ReceiptData) and engine.state().open_reviews == []
    feed(engine, [('gate', leave(A, 10.0))])
    (r,) = of(engine.tick(ns(13.0)), ReceiptData)
    assert r.lines == (line('CHOC-MILK', 1),) and r.pending_reviews == 0 and r.revision == 1


def test_decision_after_exit_issues_revision_2(engine):
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.92), take('LEMON-330', 0.08)])
    feed(engine, [('gate', enter(A, 1.0)), ('gate', enter(B, 2.0)), ('shelf', ev),
                  ('tick', ns(7.0)), ('gate', leave(A, 8.0)), ('gate', leave(B, 9.0)),
                  ('tick', ns(12.0))])
    assert [(r.shopper_id, r.revision, r.pending_reviews) for r in engine.state().receipts] == [
        (A, 1, 1), (B, 1, 1)]
    outs = engine.on_review_decision(decide(ev, B, 'COLA-330', ACTION_TAKE, 1, 20.0, 'bob'))
    revs = {r.shopper_id: r for r in of(outs, ReceiptData)}
    assert set(revs) == {A, B}
    rb = revs[B]
    assert (rb.revision, rb.lines, rb.total_cents, rb.pending_reviews, rb.issued_ns) == (
        2, (line('COLA-330', 1),), 129, 0, ns(20.0))
    # the receipts name neither the reviewer nor the other shopper's purchase; the log does
    for r in revs.values():
        assert r.correction_note == RECEIPT_NOTE_REVIEW
    (note,) = [o for o in outs if isinstance(o, Note)]
    assert 'bob' in note and 'take 1 COLA-330 for acct-b' in note
    assert (revs[A].revision, revs[A].lines, revs[A].pending_reviews) == (2, (), 0)
    history = [(r.shopper_id, r.revision) for r in engine.receipt_history()]
    assert history == [(A, 1), (A, 2), (B, 1), (B, 2)]
    assert {r.revision for r in engine.state().receipts} == {2}


def test_decision_applies_an_uncertain_return(engine):
    # the shopper holds both near-equal cans, so the cart cannot tell which came back
    e_take = shelf('g1.s1.p1', 3.0, [take('COLA-330', 0.99, 2)])
    e_lemon = shelf('g1.s1.p2', 3.5, [take('LEMON-330', 0.99)])
    e_ret = shelf('g1.s1.p1', 5.0, [ret('COLA-330', 0.6), ret('LEMON-330', 0.4)])
    feed(engine, [('gate', enter(A, 1.0)), ('shelf', e_take), ('shelf', e_lemon),
                  ('shelf', e_ret), ('tick', ns(7.0))])
    # before the answer the cart shows the best guess (a cola back), with the review counted
    assert cart_of(engine, A).lines == (line('COLA-330', 1), line('LEMON-330', 1))
    assert cart_of(engine, A).pending_reviews == 1
    outs = engine.on_review_decision(decide(e_ret, A, 'LEMON-330', ACTION_RETURN, 1, 8.0))
    assert [u.quantity_delta for u in of(outs, CartUpdateData)] == [-1]
    assert cart_of(engine, A).lines == (line('COLA-330', 2),)
    assert cart_of(engine, A).pending_reviews == 0


@pytest.mark.parametrize('fused_min_confidence', [-1.0, 0.5])
def test_a_unit_in_doubt_is_held_as_surely_as_its_review_says(tmp_path, fused_min_confidence):
    # two shoppers side by side: B took a cola earlier (confirmed); now one of them takes a cola
    # while the other puts one back on a wrong plate, and the cameras cannot tell who did which
    # (0.5 / 0.5 for both events). The take goes to review with its guess pending in A's cart
    # (the tie's first); A then "holds" that cola only as surely as the take's candidate
    # (0.5), B holds one for sure, so the return is B's, and both receipts come out right
    # before anyone answers. Counting A's pending cola as a whole unit made the return A's
    # (the tie again), and both receipts wrong.
    params = fused_params(CartParams(), fused_min_confidence)
    with CartEngine(str(tmp_path / 'c.sqlite'), CATALOG, STORE_ID, params) as engine:
        feed(engine, [('gate', enter(A, 1.0)), ('gate', enter(B, 1.5))])
        engine.on_shelf_event(shelf('g1.s1.p1', 3.0, [take('COLA-330', 0.99)]),
                              shopper_hint={B: 0.98, A: 0.01})
        e_take = shelf('g1.s1.p1', 6.0, [take('COLA-330', 0.99)])
        e_back = shelf('g3.s1.p1', 6.05, [ret('COLA-330', 0.75), ret('OJ-1L', 0.2),
                                          unknown(0.05)])
        engine.on_shelf_event(e_take, shopper_hint={A: 0.495, B: 0.495})
        engine.on_shelf_event(e_back, shopper_hint={A: 0.495, B: 0.495})
        outs = feed(engine, [('gate', leave(A, 9.0)), ('gate', leave(B, 9.2)),
                             ('tick', ns(13.0))])
        receipts = {r.shopper_id: r.lines for r in engine.state().receipts}
        assert receipts == {A: (line('COLA-330', 1, STATUS_PENDING_REVIEW),), B: ()}
        returns = [u for u in of(outs, CartUpdateData) if u.quantity_delta < 0]
        if fused_min_confidence < 0:    # the cart's own 0.9: the return is reviewed, B's guess
            assert not returns
            (req,) = [r for r in of(outs, ReviewRequestData) if r.event_id == e_back.event_id]
            assert req.shopper_ids[0] == B
        else:                           # 0.67 for B leads A by 0.33: decided without review
            assert [(u.shopper_id, u.sku) for u in returns] == [(B, 'COLA-330')]


def test_a_return_is_conditioned_on_what_the_shopper_holds(engine):
    # a chocolate bar put back on the wrong plate: three bars weigh nearly the same, but the
    # shopper holds only the milk one, so the return is confirmed without asking anyone
    e_take = shelf('g2.s1.p2', 3.0, [take('CHOC-MILK', 0.99)])
    e_ret = shelf('g1.s2.p1', 6.0, [ret('CHOC-MILK', 0.6), ret('CHOC-DARK', 0.35),
                                    unknown(0.05)])
    outs = feed(engine, [('gate', enter(A, 1.0)), ('shelf', e_take), ('shelf', e_ret),
                         ('tick', ns(8.0))])
    assert not of(outs, ReviewRequestData)
    (back,) = [u for u in of(outs, CartUpdateData) if u.quantity_delta < 0]
    assert (back.sku, back.quantity_delta) == ('CHOC-MILK', -1)
    assert back.confidence > 0.9
    assert cart_of(engine, A).lines == ()


def test_a_return_goes_to_the_only_shopper_who_holds_the_product(engine):
    e_cola = shelf('g1.s1.p1', 3.0, [take('COLA-330', 0.99)])
    e_back = shelf('g1.s1.p1', 9.0, [ret('COLA-330', 0.97), unknown(0.03)])
    e_gum = shelf('g2.s2.p1', 10.0, [take('CHIPS-SALT', 0.99)])
    outs = feed(engine, [('gate', enter(A, 1.0)), ('shelf', e_cola), ('tick', ns(5.0)),
                         ('gate', enter(B, 6.0)), ('shelf', e_back), ('shelf', e_gum),
                         ('tick', ns(12.0))])
    back = [u for u in of(outs, CartUpdateData) if u.quantity_delta < 0]
    assert [(u.shopper_id, u.sku) for u in back] == [(A, 'COLA-330')]
    # a take by one of two shoppers inside still cannot be attributed by weight alone
    (req,) = of(outs, ReviewRequestData)
    assert req.event_id == e_gum.event_id and req.reason == REASON_AMBIGUOUS_SHOPPER


def test_decision_no_change_clears_pending(engine):
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.5), unknown(0.5)])
    feed(engine, [('gate', enter(A, 1.0)), ('shelf', ev), ('tick', ns(7.0))])
    outs = engine.on_review_decision(decide(ev, '', '', ACTION_NONE, 0, 8.0))
    assert not of(outs, CartUpdateData)
    cart = cart_of(engine, A)
    assert cart.lines == () and cart.pending_reviews == 0


def test_decisions_are_idempotent_and_validated(engine):
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.5), unknown(0.5)])
    feed(engine, [('gate', enter(A, 1.0)), ('shelf', ev), ('tick', ns(7.0))])
    d = decide(ev, A, 'COLA-330', ACTION_TAKE, 1, 8.0)

    def refused(outs, *words):
        (ack,) = of(outs, DecisionAckData)
        assert ack.status == ACK_REJECTED and all(w in ack.reason for w in words), ack
        assert len(warnings(outs)) == 1 and ack.reason in warnings(outs)[0]
        return ack

    refused(engine.on_review_decision(decide(ev, A, 'NOPE', ACTION_TAKE, 1, 8.0)),
            'not one of the review')
    refused(engine.on_review_decision(decide(ev, B, 'COLA-330', ACTION_TAKE, 1, 8.0)),
            'acct-b', 'not one of the review')
    ack = refused(engine.on_review_decision(
        decide(shelf('x.y.z', 1.0, []), A, 'COLA-330', ACTION_TAKE, 1, 8.0)), 'no such review')
    assert ack.request_id.startswith('review/x.y.z@')
    assert engine.counts['decisions_rejected'] == 3
    outs = engine.on_review_decision(d)
    assert of(outs, CartUpdateData)
    assert of(outs, DecisionAckData) == [DecisionAckData(d.request_id, 'alice', ACK_APPLIED, '')]
    snapshot = engine.db.dump()
    # the same decision re-sent (later stamp) is confirmed again and changes nothing
    again = engine.on_review_decision(replace(d, stamp_ns=ns(30.0)))
    assert again == [DecisionAckData(d.request_id, 'alice', ACK_APPLIED, '')]
    refused(engine.on_review_decision(decide(ev, A, 'COLA-330', ACTION_TAKE, 2, 9.0)),
            'already decided')
    assert engine.db.dump() == snapshot
    assert cart_of(engine, A).lines == (line('COLA-330', 1),)
    assert engine.counts == {'decisions_applied': 1, 'decisions_rejected': 4,
                             'redelivery_conflicts': 0, 'inputs_rejected': 0}


@pytest.mark.parametrize('forged', [
    (A, 'COLA-330', ACTION_TAKE, 5),          # an offered product, a quantity never offered
    (A, 'COLA-330', ACTION_RETURN, 1),        # the offered product, the other action
    (A, 'CHIPS-SALT', ACTION_TAKE, 1),        # a catalog product never offered
    (B, 'COLA-330', ACTION_TAKE, 1),          # a shopper inside who was not a candidate
    (A, 'COLA-330', 7, 1),                    # no such action
    (A, '', ACTION_TAKE, 1),                  # no product
])
def test_a_decision_that_was_never_offered_is_refused_and_changes_nothing(engine, forged):
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.5), unknown(0.5)])
    feed(engine, [('gate', enter(A, 1.0)), ('gate', enter(B, 6.0)), ('shelf', ev),
                  ('tick', ns(7.0))])
    (request,) = engine.state().open_reviews
    snapshot = engine.db.dump()
    outs = engine.on_review_decision(decide(ev, *forged, 8.0))
    (ack,) = of(outs, DecisionAckData)
    assert ack.status == ACK_REJECTED and 'not one of' in ack.reason
    assert not of(outs, CartUpdateData) and not of(outs, CartStateData)
    assert engine.db.dump() == snapshot
    assert engine.state().open_reviews == [request]       # still open for the real answer
    assert engine.counts['decisions_rejected'] == 1


def test_a_refused_decision_leaves_the_review_open_for_the_real_answer(engine):
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.5), unknown(0.5)])
    feed(engine, [('gate', enter(A, 1.0)), ('shelf', ev), ('tick', ns(7.0))])
    engine.on_review_decision(decide(ev, A, 'COLA-330', ACTION_TAKE, 9, 8.0))
    outs = engine.on_review_decision(decide(ev, A, 'COLA-330', ACTION_TAKE, 1, 9.0))
    assert [a.status for a in of(outs, DecisionAckData)] == [ACK_APPLIED]
    assert cart_of(engine, A).lines == (line('COLA-330', 1),)


def test_cart_updates_sum_to_the_confirmed_cart(engine):
    from cart_helpers import mixed_script
    outs = feed(engine, mixed_script())
    totals: dict[tuple[str, str], int] = {}
    for u in of(outs, CartUpdateData):
        totals[(u.session_id, u.sku)] = totals.get((u.session_id, u.sku), 0) + u.quantity_delta
    confirmed = {(c.session_id, ln.sku): ln.quantity for c in engine.state().carts
                 for ln in c.lines if ln.status == STATUS_CONFIRMED}
    assert {k: v for k, v in totals.items() if v} == confirmed
    assert all(u.quantity_delta != 0 for u in of(outs, CartUpdateData))
    # the mixed script covers every path
    reasons = {r.reason for r in of(outs, ReviewRequestData)}
    assert reasons == {REASON_LOW_CONFIDENCE, REASON_AMBIGUOUS_SHOPPER, REASON_NOT_IN_CART,
                       REASON_UNKNOWN_WEIGHT, REASON_NO_SHOPPER}
    revisions = {(r.shopper_id, r.revision) for r in engine.receipt_history()}
    assert {('acct-a', 3), ('acct-b', 2), ('acct-c', 2)} <= revisions
    assert ACTION_RETURN in {c.action for r in of(outs, ReviewRequestData)
                             for c in r.candidates}


def test_read_thresholds_file(tmp_path):
    import pytest

    from store_cart.thresholds import read_thresholds
    good = tmp_path / 't.yaml'
    good.write_text('thresholds: {min_confidence: 0.8, min_margin: 0.1, n_labelled: 9}\n')
    assert read_thresholds(str(good)) == {'min_confidence': 0.8, 'min_margin': 0.1}
    bad = tmp_path / 'b.yaml'
    bad.write_text('thresholds: {min_confidence: 1.5, min_margin: 0.1}\n')
    with pytest.raises(ValueError):
        read_thresholds(str(bad))
    bad.write_text('other: 1\n')
    with pytest.raises(ValueError):
        read_thresholds(str(bad))
    bad.write_text('thresholds: [0.8, 0.1\n')
    with pytest.raises(ValueError):
        read_thresholds(str(bad))


def test_thresholds_file_writer_round_trips_and_refuses_unusable_values(tmp_path):
    import pytest
    import yaml

    from store_cart.thresholds import read_thresholds, write_thresholds
    path = tmp_path / 'sub' / 'thresholds.yaml'
    write_thresholds({'min_confidence': 0.93, 'min_margin': 0.2, 'n_labelled': 40}, path)
    assert read_thresholds(path) == {'min_confidence': 0.93, 'min_margin': 0.2}
    assert yaml.safe_load(path.read_text())['thresholds']['n_labelled'] == 40
    for bad in ({'min_confidence': 1.5, 'min_margin': 0.2}, {'min_confidence': 0.9},
                {'min_confidence': 'high', 'min_margin': 0.2}):
        with pytest.raises(ValueError):
            write_thresholds(bad, path)
    assert read_thresholds(path) == {'min_confidence': 0.93, 'min_margin': 0.2}   # untouched
    assert [p.name for p in path.parent.iterdir()] == ['thresholds.yaml']


def test_an_identical_redelivery_is_silent_and_a_conflicting_one_is_reported(tmp_path):
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.97), unknown(0.03)])
    gate = enter(A, 1.0)
    db = str(tmp_path / 'redeliver.sqlite')
    with CartEngine(db, CATALOG, STORE_ID) as engine:
        feed(engine, [('gate', gate), ('shelf', ev)])
    with CartEngine(db, CATALOG, STORE_ID) as engine:         # restarted: the same inputs again
        assert feed(engine, [('gate', gate), ('shelf', ev)]) == []
        assert engine.on_shelf_event(ev, shopper_hint=None) == []
        changed = replace(ev, delta_grams=-700.0)
        (warning,) = engine.on_shelf_event(changed)
        assert 'different content' in warning and ev.event_id in warning
        (warning,) = engine.on_gate_event(replace(gate, shopper_id='acct-x'))
        assert 'different content' in warning
        assert engine.counts['redelivery_conflicts'] == 2


@pytest.mark.parametrize('bad', [
    lambda ev: replace(ev, delta_grams=float('nan')),
    lambda ev: replace(ev, noise_grams=float('inf')),
    lambda ev: replace(ev, plate_delta_grams=(float('nan'),)),
    lambda ev: replace(ev, hypotheses=(replace(ev.hypotheses[0], posterior=float('nan')),)),
    lambda ev: replace(ev, hypotheses=(replace(ev.hypotheses[0], posterior=1.5),)),
    lambda ev: replace(ev, hypotheses=(replace(ev.hypotheses[0], quantity=-2),)),
    lambda ev: replace(ev, start_ns=ev.settled_ns + 1),
    lambda ev: replace(ev, event_id=''),
])
def test_a_malformed_shelf_event_is_refused_with_a_reason_and_changes_nothing(engine, bad):
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.97), unknown(0.03)])
    feed(engine, [('gate', enter(A, 1.0))])
    snapshot = engine.db.dump()
    (warning,) = engine.on_shelf_event(bad(ev))
    assert 'refused' in warning and 'no cart changed' in warning
    assert engine.tick(ns(30.0)) == [] and engine.db.dump() == snapshot
    assert engine.counts['inputs_rejected'] == 1
    # a bad shopper hint too, and a gate scan without a shopper
    assert 'hint' in engine.on_shelf_event(ev, shopper_hint={A: float('nan')})[0]
    assert 'refused' in engine.on_gate_event(replace(enter(B, 2.0), shopper_id=''))[0]
    assert engine.db.dump() == snapshot and engine.counts['inputs_rejected'] == 3


def test_cart_params_of_a_nodes_parameters_reads_every_field_it_gives():
    from store_cart.engine import cart_params_of
    p = cart_params_of({'hold_s': 2, 'min_margin': '0.3', 'return_wait_s': 0,
                        'fused_min_confidence': 0.5, 'db_path': '~/carts.sqlite'})
    assert (p.hold_s, p.min_margin, p.return_wait_s) == (2.0, 0.3, 0.0)
    assert p.min_confidence == CartParams().min_confidence      # not given: the default
    with pytest.raises(ValueError, match='return_wait_s: expected a number'):
        cart_params_of({'return_wait_s': 'soon'})
    with pytest.raises(ValueError, match='return_wait_s must be >= 0'):
        cart_params_of({'return_wait_s': -1})


@pytest.mark.parametrize('hint,inside,hyps', [
    ({A: 0.4}, [A], [take('COLA-330', 0.9), take('LEMON-330', 0.08)]),     # alone: presence
    ({B: 0.7, A: 0.2}, [A, B], [take('COLA-330', 0.97), take('LEMON-330', 0.03)]),
    ({B: 0.7}, [A, B], [take('WATER-500', 0.8), take('WATER-500', 0.15, 2)]),   # A unnamed
    ({A: 0.55, B: 0.45}, [A, B], [take('CHOC-DARK', 0.99)]),                 # shopper margin
])
def test_decision_features_are_what_the_cart_compares(tmp_path, hint, inside, hyps):
    """The (p, margin) that tuning thresholds (review_learn, learning_days) reads from an
    event is what the engine holds against its bars: just under both, the top shopper's cart
    takes the best hypothesis unasked; just over either, the event is reviewed."""
    from store_cart.engine import decision_features
    p, margin, top = decision_features(hint, inside, [h.posterior for h in hyps])
    assert 0.0 < p and top in inside

    def run(conf, marg, k):
        params = CartParams(min_confidence=conf, min_margin=marg)
        with CartEngine(str(tmp_path / f'c{k}.sqlite'), CATALOG, STORE_ID, params) as e:
            cmds = [('gate', enter(s, 1.0 + i)) for i, s in enumerate(inside)]
            e_ = shelf('g1.s1.p1', 5.0, hyps)
            outs = feed(e, cmds)
            outs += e.on_shelf_event(e_, shopper_hint=hint)
            outs += e.tick(ns(8.0))
        return of(outs, CartUpdateData), of(outs, ReviewRequestData)

    ups, reqs = run(p - 1e-6, max(0.0, margin - 1e-6), 0)
    assert not reqs and [(u.shopper_id, u.sku) for u in ups] == [(top, hyps[0].sku)]
    for k, (conf, marg) in enumerate([(p + 1e-6, 0.0), (0.0, margin + 1e-6)], start=1):
        if conf > 1.0 or marg > 1.0:
            continue
        ups, reqs = run(conf, marg, k)
        assert len(reqs) == 1 and not ups, (conf, marg)


def test_decision_features_without_a_hint_or_anyone_inside():
    from store_cart.engine import decision_features
    # no hint with two inside: 1/2 each, no lead; nobody inside: always reviewed
    assert decision_features(None, [A, B], [0.9, 0.1])[:2] == pytest.approx((0.5, 0.0))
    assert decision_features({A: 1.0}, [], [0.9]) == (0.0, 0.0, '')


def test_the_fusions_raw_confidence_is_kept_and_a_bad_one_dropped_not_the_event(engine):
    feed(engine, [('gate', enter(A, 1.0)), ('gate', enter(B, 2.0))])
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.95), take('LEMON-330', 0.05)])
    assert engine.on_shelf_event(ev, shopper_hint={A: 0.97, B: 0.03},
                                 raw_confidence=0.62) == []
    assert engine.db.event(ev.event_id)['payload']['raw_confidence'] == 0.62
    bad = shelf('g1.s1.p2', 6.0, [take('WATER-500', 0.99)])
    outs = engine.on_shelf_event(bad, shopper_hint={A: 0.97, B: 0.03},
                                 raw_confidence=float('nan'))
    assert len(warnings(outs)) == 1 and 'raw_confidence' in warnings(outs)[0]
    stored = engine.db.event(bad.event_id)['payload']
    assert 'raw_confidence' not in stored and stored['shopper_hint'] == {A: 0.97, B: 0.03}
    # both events are decided as usual: the raw confidence decides nothing
    ups = of(engine.tick(ns(9.0)), CartUpdateData)
    assert sorted((u.shopper_id, u.sku) for u in ups) == [(A, 'COLA-330'), (A, 'WATER-500')]
