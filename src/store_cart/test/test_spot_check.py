"""Spot checks: a share of the decisions made without review goes to a person anyway."""
from __future__ import annotations

import pytest

from cart_helpers import CATALOG, enter, leave, ns, shelf, STORE_ID, take
from store_cart.engine import CartEngine, CartParams, RECEIPT_NOTE_REVIEW, spot_checked
from store_cart.model import (
    ACK_APPLIED, ACTION_NONE, ACTION_TAKE, CartUpdateData, DecisionAckData, REASON_SPOT_CHECK,
    ReceiptData, ReviewDecisionData, ReviewRequestData, SOURCE_FUSED, SOURCE_REVIEW,
    spot_check_id)

A, B = 'acct-a', 'acct-b'


def of(outs, cls):
    return [o for o in outs if isinstance(o, cls)]


def answer(request, shopper, sku, action, q, t_s):
    return ReviewDecisionData(request.request_id, 'alice', shopper, sku, action, q, ns(t_s))


@pytest.fixture
def checked(tmp_path):
    """Every decision made without review is spot-checked."""
    with CartEngine(str(tmp_path / 'carts.sqlite'), CATALOG, STORE_ID,
                    CartParams(min_confidence=0.6, spot_check_fraction=1.0)) as e:
        yield e


def _two_shoppers_fused_take(engine, hint):
    ev = shelf('g1.s1.p1', 5.0, [take('COLA-330', 0.95), take('LEMON-330', 0.05)])
    outs = engine.on_gate_event(enter(A, 1.0)) + engine.on_gate_event(enter(B, 2.0))
    outs += engine.on_shelf_event(ev, shopper_hint=hint)
    outs += engine.on_gate_event(leave(A, 10.0)) + engine.on_gate_event(leave(B, 11.0))
    outs += engine.tick(ns(7.0))
    return ev, outs


def test_a_spot_check_keeps_the_decision_and_blocks_nothing(checked):
    ev, outs = _two_shoppers_fused_take(checked, {A: 0.9, B: 0.1})
    (update,) = of(outs, CartUpdateData)
    assert (update.shopper_id, update.sku, update.quantity_delta, update.source) == (
        A, 'COLA-330', 1, SOURCE_FUSED)
    (request,) = of(outs, ReviewRequestData)
    assert request.reason == REASON_SPOT_CHECK and request.is_spot_check
    assert request.request_id == spot_check_id(ev.event_id)
    assert request.label_chance == 1.0
    # the machine's decision is offered first, with its confidence; every shopper present and
    # "no change" are offered too
    first = request.candidates[0]
    assert (first.shopper_id, first.sku, first.action, first.quantity) == (
        A, 'COLA-330', ACTION_TAKE, 1)
    assert first.confidence == pytest.approx(update.confidence)
    assert {c.shopper_id for c in request.candidates} == {A, B, ''}
    assert set(request.shopper_ids) == {A, B}
    # nobody's cart counts it as pending, and the receipts do not wait for it
    assert all(c.pending_reviews == 0 for c in checked.state().carts)
    receipts = of(checked.tick(ns(15.0)), ReceiptData)
    assert {(r.shopper_id, r.pending_reviews) for r in receipts} == {(A, 0), (B, 0)}
    (receipt_a,) = [r for r in receipts if r.shopper_id == A]
    assert [(ln.sku, ln.quantity) for ln in receipt_a.lines] == [('COLA-330', 1)]
    assert checked.state().open_reviews == [request]


def test_a_spot_check_answered_the_machines_way_changes_nothing(checked):
    ev, outs = _two_shoppers_fused_take(checked, {A: 0.9, B: 0.1})
    (request,) = of(outs, ReviewRequestData)
    checked.tick(ns(15.0))
    outs = checked.on_review_decision(answer(request, A, 'COLA-330', ACTION_TAKE, 1, 20.0))
    assert [a.status for a in of(outs, DecisionAckData)] == [ACK_APPLIED]
    assert not of(outs, CartUpdateData) and not of(outs, ReceiptData)
    assert checked.state().open_reviews == []
    (rv,) = checked.db.decided_reviews()
    assert rv['event_id'] == ev.event_id and rv['request']['reason'] == REASON_SPOT_CHECK


def test_a_spot_check_that_finds_the_wrong_shopper_moves_the_product_and_revises(checked):
    _, outs = _two_shoppers_fused_take(checked, {A: 0.9, B: 0.1})
    (request,) = of(outs, ReviewRequestData)
    issued = of(checked.tick(ns(15.0)), ReceiptData)
    assert len(issued) == 2
    outs = checked.on_review_decision(answer(request, B, 'COLA-330', ACTION_TAKE, 1, 20.0))
    assert [a.status for a in of(outs, DecisionAckData)] == [ACK_APPLIED]
    assert sorted((u.shopper_id, u.sku, u.quantity_delta, u.source)
                  for u in of(outs, CartUpdateData)) == [
        (A, 'COLA-330', -1, SOURCE_REVIEW), (B, 'COLA-330', 1, SOURCE_REVIEW)]
    revised = {r.shopper_id: r for r in of(outs, ReceiptData)}
    assert set(revised) == {A, B}
    assert revised[A].revision == 2 and revised[A].lines == ()
    assert [(ln.sku, ln.quantity) for ln in revised[B].lines] == [('COLA-330', 1)]
    assert {r.correction_note for r in revised.values()} == {RECEIPT_NOTE_REVIEW}


def test_a_spot_check_answered_no_change_takes_the_product_out(checked):
    _, outs = _two_shoppers_fused_take(checked, {A: 0.9, B: 0.1})
    (request,) = of(outs, ReviewRequestData)
    outs = checked.on_review_decision(answer(request, '', '', ACTION_NONE, 0, 8.0))
    assert [(u.shopper_id, u.quantity_delta) for u in of(outs, CartUpdateData)] == [(A, -1)]
    assert all(not c.lines for c in checked.state().carts)


def test_reviews_are_not_spot_checked_and_fraction_zero_checks_nothing(tmp_path):
    # an ambiguous event goes to review, never to a spot check as well
    with CartEngine(str(tmp_path / 'a.sqlite'), CATALOG, STORE_ID,
                    CartParams(min_confidence=0.6, spot_check_fraction=1.0)) as e:
        _, outs = _two_shoppers_fused_take(e, {A: 0.5, B: 0.5})
        assert [r.reason for r in of(outs, ReviewRequestData)] != [REASON_SPOT_CHECK]
        assert not [r for r in of(outs, ReviewRequestData) if r.is_spot_check]
    with CartEngine(str(tmp_path / 'b.sqlite'), CATALOG, STORE_ID,
                    CartParams(min_confidence=0.6)) as e:
        _, outs = _two_shoppers_fused_take(e, {A: 0.9, B: 0.1})
        assert of(outs, CartUpdateData) and not of(outs, ReviewRequestData)


def test_the_draw_is_the_event_ids_and_hits_its_share():
    ids = [f'g{i % 7}.s1.p{i % 3}@{1_000_000_000 * i + 17 * i}' for i in range(4000)]
    share = sum(spot_checked(i, 0.1) for i in ids) / len(ids)
    assert 0.085 < share < 0.115
    assert [spot_checked(i, 0.1) for i in ids] == [spot_checked(i, 0.1) for i in ids]
    # a larger fraction checks a superset: raising it never un-checks an event
    assert all(spot_checked(i, 0.3) for i in ids if spot_checked(i, 0.1))
    assert not any(spot_checked(i, 0.0) for i in ids)
    assert all(spot_checked(i, 1.0) for i in ids)


def test_spot_check_fraction_out_of_range_is_refused(tmp_path):
    with pytest.raises(ValueError, match='spot_check_fraction'):
        CartParams(spot_check_fraction=1.5)
