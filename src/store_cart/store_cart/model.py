"""Plain data the cart engine consumes and produces, mirroring the store_interfaces messages.

No rclpy here, and messages only for their constants: ``convert.py`` maps these to and from
messages. The shelf
event the engine decides on (``ShelfEventData``, ``HypothesisData``) is store_shelf's
(:mod:`store_shelf.event`), the one type from the shelf node to the cart. Stamps are
integer nanoseconds of sensor (or ROS) time, money is integer cents of the catalog currency.
The constants are the messages' own (imported from store_interfaces, never retyped).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Union

from store_interfaces.msg import (CartLine, CartState, CartUpdate, GateEvent, ProductHypothesis,
                                  ReviewDecisionAck, ReviewRequest)

KIND_ENTER = GateEvent.KIND_ENTER
KIND_EXIT = GateEvent.KIND_EXIT

# ProductHypothesis.ACTION_* (also ReviewCandidate.action and ReviewDecision.action, where 0
# means "no cart change": those messages document the 0, no constant names it)
ACTION_NONE = 0
ACTION_TAKE = ProductHypothesis.ACTION_TAKE
ACTION_RETURN = ProductHypothesis.ACTION_RETURN

STATUS_CONFIRMED = CartLine.STATUS_CONFIRMED
STATUS_PENDING_REVIEW = CartLine.STATUS_PENDING_REVIEW

SOURCE_WEIGHT = CartUpdate.SOURCE_WEIGHT
SOURCE_FUSED = CartUpdate.SOURCE_FUSED
SOURCE_REVIEW = CartUpdate.SOURCE_REVIEW

STATE_IN_STORE = CartState.STATE_IN_STORE
STATE_EXITED = CartState.STATE_EXITED

ACK_APPLIED = ReviewDecisionAck.STATUS_APPLIED
ACK_REJECTED = ReviewDecisionAck.STATUS_REJECTED

REASON_AMBIGUOUS_SHOPPER = ReviewRequest.REASON_AMBIGUOUS_SHOPPER
REASON_LOW_CONFIDENCE = ReviewRequest.REASON_LOW_CONFIDENCE
REASON_CLOSE_CANDIDATES = ReviewRequest.REASON_CLOSE_CANDIDATES
REASON_UNKNOWN_WEIGHT = ReviewRequest.REASON_UNKNOWN_WEIGHT
REASON_NO_SHOPPER = ReviewRequest.REASON_NO_SHOPPER
REASON_SENSOR_FAULT = ReviewRequest.REASON_SENSOR_FAULT
REASON_NOT_IN_CART = ReviewRequest.REASON_NOT_IN_CART
REASON_SPOT_CHECK = ReviewRequest.REASON_SPOT_CHECK

REASON_NAMES = {
    REASON_AMBIGUOUS_SHOPPER: 'ambiguous shopper',
    REASON_LOW_CONFIDENCE: 'low confidence',
    REASON_CLOSE_CANDIDATES: 'close candidates',
    REASON_UNKNOWN_WEIGHT: 'unknown weight',
    REASON_NO_SHOPPER: 'no shopper',
    REASON_SENSOR_FAULT: 'sensor fault',
    REASON_NOT_IN_CART: 'not in cart',
    REASON_SPOT_CHECK: 'spot check',
}


def session_id_of(shopper_id: str, enter_ns: int) -> str:
    """A shopper's store visit: ``"<shopper_id>@<enter stamp in ns>"``."""
    return f'{shopper_id}@{int(enter_ns)}'


def review_request_id(event_id: str) -> str:
    return f'review/{event_id}'


def spot_check_id(event_id: str) -> str:
    return f'spot-check/{event_id}'


class _Data:
    """JSON round trip for the dataclasses below (used for the payload columns of the db)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            sub = _NESTED.get((cls.__name__, f.name))
            if sub is not None:
                v = tuple(sub.from_dict(x) for x in v)
            elif isinstance(v, list):
                v = tuple(v)
            kwargs[f.name] = v
        return cls(**kwargs)


# --- inputs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateEventData(_Data):
    event_id: str          # "<gate_id>@<stamp in ns>"
    gate_id: str
    kind: int              # KIND_*
    shopper_id: str
    stamp_ns: int          # sensor time of the scan


@dataclass(frozen=True)
class ReviewDecisionData(_Data):
    request_id: str
    reviewer_id: str
    shopper_id: str        # "" when no cart changes
    sku: str               # "" when no cart changes
    action: int            # ACTION_TAKE, ACTION_RETURN, or ACTION_NONE
    quantity: int          # 0 when no cart changes
    stamp_ns: int          # time of the decision (ROS time)

    @property
    def changes_cart(self) -> bool:
        return bool(self.shopper_id and self.sku and self.quantity > 0
                    and self.action in (ACTION_TAKE, ACTION_RETURN))


# --- outputs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CartLineData(_Data):
    sku: str
    name: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int
    status: int            # STATUS_*


@dataclass(frozen=True)
class CartUpdateData(_Data):
    update_id: str         # "<event_id>/<shopper_id>/<sku>"
    shopper_id: str
    session_id: str
    event_id: str          # shelf event or review request that caused it
    sku: str
    quantity_delta: int    # + added, - returned
    confidence: float
    source: int            # SOURCE_*
    stamp_ns: int          # sensor time of the causing event


@dataclass(frozen=True)
class CartStateData(_Data):
    shopper_id: str
    session_id: str
    state: int             # STATE_*
    lines: tuple[CartLineData, ...]
    total_cents: int
    pending_reviews: int
    stamp_ns: int          # sensor time of the last change


@dataclass(frozen=True)
class ReceiptData(_Data):
    receipt_id: str        # the session id
    revision: int          # 1, then +1 per correction
    shopper_id: str
    store_id: str
    entered_ns: int
    exited_ns: int
    lines: tuple[CartLineData, ...]
    total_cents: int
    currency: str
    pending_reviews: int
    correction_note: str
    issued_ns: int         # time of issue (the caller's clock)


@dataclass(frozen=True)
class CandidateData(_Data):
    shopper_id: str        # "" when nobody's cart should change
    sku: str               # "" with quantity 0 for "no product change"
    action: int
    quantity: int
    confidence: float


@dataclass(frozen=True)
class ReviewRequestData(_Data):
    request_id: str        # "review/<event_id>", "spot-check/<event_id>"
    event_id: str
    reason: int            # REASON_*
    detail: str
    gondola_id: str
    plate_ids: tuple[str, ...]
    delta_grams: float
    shopper_ids: tuple[str, ...]
    candidates: tuple[CandidateData, ...]
    stamp_ns: int          # sensor time of the shelf event
    label_chance: float = 1.0   # 1 for a needed review, spot_check_fraction for a spot check

    @property
    def is_spot_check(self) -> bool:
        return self.reason == REASON_SPOT_CHECK


@dataclass(frozen=True)
class DecisionAckData(_Data):
    """The cart's answer to a review decision (ReviewDecisionAck)."""

    request_id: str
    reviewer_id: str
    status: int            # ACK_APPLIED or ACK_REJECTED
    reason: str            # why it was refused; "" when applied


@dataclass(frozen=True)
class StateSnapshot:
    """Everything a (re)started node republishes."""

    carts: list[CartStateData] = field(default_factory=list)
    receipts: list[ReceiptData] = field(default_factory=list)      # latest revision of each
    open_reviews: list[ReviewRequestData] = field(default_factory=list)


class Note(str):
    """An informational line for the operator's log (a plain ``str`` output is a warning)."""


# Strings are for the log (a Note: info, any other str: warning); every other output is published.
Output = Union[CartUpdateData, CartStateData, ReceiptData, ReviewRequestData, DecisionAckData,
               str]

_NESTED = {
    ('CartStateData', 'lines'): CartLineData,
    ('ReceiptData', 'lines'): CartLineData,
    ('ReviewRequestData', 'candidates'): CandidateData,
}
