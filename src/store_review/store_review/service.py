"""The review service: what the node and the web console share (no rclpy, no web framework).

It owns the :class:`ReviewStore` and :class:`Auth`, turns a reviewer's choice into a
``ReviewDecisionData`` (published by the node through ``publish``; the cart node applies it, and
amends the receipt with a correction record when the shopper has already left), enforces who may
see and decide what, and stores every decision as a labelled example for learning.
"""
from __future__ import annotations

import math
from typing import Callable

from store_cart.model import (ACK_APPLIED, ACK_REJECTED, ACTION_NONE, CandidateData,
                              ReviewDecisionData, ReviewRequestData)

from store_review.auth import Auth, PasswordHasher, Session
from store_review.learning import make_example
from store_review.login_guard import HashGate, LoginThrottle
from store_review.store import ReviewStore

NO_CHANGE = -1      # choice index meaning "no cart change"

ROLE_STATUSES = {
    'reviewer': ('open',),
    'supervisor': ('open', 'escalated', 'expired'),
}


MAX_TEXT_LEN = 4096      # longest id/detail text accepted from a message
MAX_CANDIDATES = 64


def request_problem(req: ReviewRequestData) -> str | None:
    """Why a review request from a message must not be stored, or None when it may.

    The boundary check of ``review_requests``: a NaN or infinite weight or confidence would be
    stored and then break every page and the queue API that shows it (JSON has no NaN).
    """
    if not req.request_id or len(req.request_id) > MAX_TEXT_LEN:
        return f'request_id must have 1..{MAX_TEXT_LEN} characters'
    if not math.isfinite(req.delta_grams):
        return f'delta_grams is {req.delta_grams} (not a finite number)'
    if not math.isfinite(req.label_chance) or not 0.0 < req.label_chance <= 1.0:
        return (f'label_chance is {req.label_chance} (the chance the event was put to a person '
                'must be in (0, 1])')
    if len(req.candidates) > MAX_CANDIDATES:
        return f'{len(req.candidates)} candidates (at most {MAX_CANDIDATES})'
    for i, c in enumerate(req.candidates):
        if not math.isfinite(c.confidence) or not 0.0 <= c.confidence <= 1.0:
            return f'candidate {i} confidence is {c.confidence} (not a number in 0..1)'
        if c.quantity < 0:
            return f'candidate {i} quantity is {c.quantity} (negative)'
    texts = (req.event_id, req.detail, req.gondola_id, *req.plate_ids, *req.shopper_ids,
             *(t for c in req.candidates for t in (c.shopper_id, c.sku)))
    if any(len(t) > MAX_TEXT_LEN for t in texts):
        return f'a text field is longer than {MAX_TEXT_LEN} characters'
    return None


def ack_problem(request_id: str, status: int) -> str | None:
    """Why a ReviewDecisionAck must be ignored, or None (the boundary check of the acks)."""
    if not request_id or len(request_id) > MAX_TEXT_LEN:
        return f'request_id must have 1..{MAX_TEXT_LEN} characters'
    if status not in (ACK_APPLIED, ACK_REJECTED):
        return f'status {status} is not STATUS_APPLIED ({ACK_APPLIED}) or STATUS_REJECTED ' \
            f'({ACK_REJECTED})'
    return None


class DecisionRefused(Exception):
    """A decision that is not allowed (role, status, bad choice); ``str()`` says why."""


class ReviewService:

    def __init__(self, store: ReviewStore, publish: Callable[[ReviewDecisionData], None],
                 clock: Callable[[], int], session_ttl_s: float = 8 * 3600.0,
                 hasher: PasswordHasher | None = None, throttle: LoginThrottle | None = None,
                 gate: HashGate | None = None):
        self.store = store
        self.auth = Auth(store, session_ttl_s, hasher, throttle, gate)
        self.auth.dummy_record()     # now, so that no login pays a second hash for it
        self.publish = publish
        self.clock = clock           # ns; the node's clock

    # --- inputs from topics -------------------------------------------------------------------
    def on_request(self, request: ReviewRequestData) -> bool:
        """Store a new request; False when it was known, or refused (see ``request_problem``,
        which the node calls first to log the reason)."""
        if request_problem(request) is not None:
            return False
        return self.store.add_request(request.to_dict(), self.clock())

    # --- what a user may see and do -----------------------------------------------------------
    @staticmethod
    def statuses_for(session: Session) -> tuple[str, ...]:
        return ROLE_STATUSES.get(session.role, ())

    def queue(self, session: Session) -> list[dict]:
        return self.store.queue(self.clock(), self.statuses_for(session))

    def request_for(self, session: Session, seq: int) -> dict | None:
        """The request if ``session`` may see it (decided ones stay visible for the record)."""
        d = self.store.request(int(seq))
        if d is None:
            return None
        if d['status'] != 'decided' and d['status'] not in self.statuses_for(session):
            return None
        return d

    def decide(self, session: Session, seq: int, choice: int) -> ReviewDecisionData:
        """Apply a choice (candidate index, or NO_CHANGE) as ``session``'s user."""
        d = self.store.request(int(seq))
        if d is None:
            raise DecisionRefused('no such request')
        if d['status'] == 'decided':
            raise DecisionRefused('the request was already decided')
        if d['status'] not in self.statuses_for(session):
            raise DecisionRefused(f'a {session.role} may not decide a request that is '
                                  f'{d["status"]}')
        request = ReviewRequestData.from_dict(d['request'])
        if choice == NO_CHANGE:
            cand = CandidateData('', '', ACTION_NONE, 0, 0.0)
        elif 0 <= choice < len(request.candidates):
            cand = request.candidates[choice]
        else:
            raise DecisionRefused(f'choice {choice} is not a candidate of this request')
        now = self.clock()
        decision = ReviewDecisionData(
            request_id=request.request_id, reviewer_id=session.user,
            shopper_id=cand.shopper_id if cand.quantity > 0 else '',
            sku=cand.sku if cand.quantity > 0 else '',
            action=cand.action if cand.quantity > 0 else ACTION_NONE,
            quantity=cand.quantity if cand.quantity > 0 else 0, stamp_ns=now)
        example = make_example(request, self.store.shelf_event(request.event_id), decision)
        if not self.store.decide(request.request_id, session.user, session.role, choice,
                                 decision.to_dict(), now, example):
            raise DecisionRefused('the request was already decided')
        self.publish(decision)
        self.store.mark_sent([request.request_id], now)
        return decision

    # --- hand-off to the cart -----------------------------------------------------------------
    def resend(self, min_age_ns: int = 0, limit: int = 200) -> list[str]:
        """Re-publish decisions the cart has not acknowledged and that were last sent at least
        ``min_age_ns`` ago (or at a time after now: the clock went back), at most ``limit``,
        least recently sent first; returns their request ids."""
        now = self.clock()
        due = [u for u in self.store.unacked(limit)
               if u['sent_ns'] + min_age_ns <= now or u['sent_ns'] > now]
        for u in due:
            self.publish(ReviewDecisionData.from_dict(u['decision']))
        self.store.mark_sent([u['request_id'] for u in due], now)
        return [u['request_id'] for u in due]

    def on_ack(self, request_id: str, reviewer_id: str, status: int, reason: str) -> str:
        """The cart's ReviewDecisionAck; returns the outcome (``ReviewStore.on_ack``), or
        ``invalid`` when the ack fails ``ack_problem``."""
        if ack_problem(request_id, status) is not None:
            return 'invalid'
        return self.store.on_ack(request_id, reviewer_id, status == ACK_APPLIED, reason,
                                 self.clock())

    def sweep(self) -> list[tuple[str, str]]:
        return self.store.sweep(self.clock())
