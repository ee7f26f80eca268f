"""The cart engine: who took what, per shopper visit, persisted; never a silent guess.

Inputs (sensor-stamped) come from the node; ``now_ns`` comes from the caller's clock, which
follows ``/clock`` in bag replay, so a replay reproduces every decision. Every public method
returns the outputs to publish (``model.Output``): cart updates, cart states, receipts, review
requests, and plain strings that are warnings for the operator's log.

Time model
    Shelf events are queued in the database and processed in (settled stamp, event id) order once
    ``now_ns - settled_ns >= hold_s``, so a gate event that arrives a little after a shelf event
    it precedes in sensor time is still taken into account. Gate events and review decisions are
    applied on arrival. Presence is decided at the shelf event's *start* stamp (the hand
    arrived): the sessions whose [enter, exit] contains it. A receipt (revision 1) is issued once
    ``now_ns >= exit_ns + receipt_grace_s`` (grace > hold, so the events of the visit are in).

Policy (weight only)
    One shopper present: the best hypothesis is applied as a confirmed cart change when it is a
    product with posterior >= min_confidence and margin over the second >= min_margin (and, for a
    return, the cart holds enough units). Otherwise a review request (unknown weight, low
    confidence, close candidates, not in cart) and the best product guess goes into the cart as
    a pending line: a take as +q pending units, a return as -q pending units when the cart
    (confirmed and pending lines) holds q of it, else nothing. A pending return nets out first
    the pending and then the confirmed units of its SKU in the cart and receipt (which show the
    best guess: the returned units are not listed, the open review is counted), so the return
    of a unit whose take is itself in review leaves no line. A return "not in cart" while an
    open review offers the same shopper a take of that product waits for the answer (stays
    queued, its guess pending) up to ``return_wait_s``, then is decided on the answered cart:
    no second question about one unit. Several shoppers present: a review
    request with every present shopper x the top hypotheses, no cart line; every candidate's
    pending_reviews counts it. Nobody present: a review request. Cart updates are published only
    for confirmed changes, so their deltas sum to the confirmed cart.

Shopper hint (hook for fusion with cameras)
    ``on_shelf_event(event, shopper_hint={shopper_id: probability})`` replaces the presence-only
    rule, which is the same as a uniform hint over the shoppers present; with one shopper
    present the presence rule stands (the hint only decides between shoppers). Shoppers of the hint
    not present at the event's start stamp are dropped; shoppers present but not in the hint
    count with probability 0 (never decided for, but listed in a review). The top shopper is
    taken alone when its probability >= min_confidence and leads the second by >= min_margin
    (then the product policy above applies and the update's confidence is shopper probability x
    posterior, source FUSED); otherwise the event is reviewed as ambiguous with every present
    shopper as a candidate, candidate confidence = shopper probability x posterior, and the best
    product guess goes as a pending line (as above) into the cart of the shopper the hint makes
    most likely (the reviewer's answer replaces it, in whichever cart). The hint is
    stored with the queued event, so a restart decides the same way.

Sources and restarts
    The hold alone is not enough after a restart: DDS redelivers what each publisher kept in no
    order across publishers, long after the hold has passed, so a shelf event could be decided
    before its shopper's entrance scan arrives. Every source of events (gate drivers, shelf event
    nodes or the fusion node; ``sources``) publishes a watermark (``on_watermark``): all its
    events up to a sensor stamp are published. A shelf event is decided only once every live
    source's watermark has passed its settled stamp (``store_common.watermarks``), and a receipt
    only once every event before ``exit + receipt_grace_s - hold_s`` is decided, so events are
    decided in stamp order with presence known, however they came back. A source silent for
    ``source_timeout_s`` is no longer waited for (logged); with no sources the hold alone rules.

Review decisions
    A decision is applied only when it answers an open review this cart issued with one of that
    review's candidates or the explicit "no change" ('' sku, ACTION_NONE, 0 units);
    anything else is refused with its reason, counted, and acknowledged as refused. Every
    decision handled gets an acknowledgement (``DecisionAckData``): applied (also for the
    redelivery of one already applied) or refused, so the review node re-sends only what the
    cart has not confirmed.

Spot checks
    With ``spot_check_fraction`` > 0, that share of the events decided without review (chosen
    by a hash of the event id: :func:`spot_checked`) is also put to a person, reason
    REASON_SPOT_CHECK, request id "spot-check/<event_id>": the machine's decision is its first
    candidate and is in the cart already (confirmed, published as usual); the request blocks
    nothing (no pending review on carts or receipts). Its answer is applied like a review's: the
    same answer changes nothing, another one replaces the decision's line and revises an issued
    receipt. The answers are the labels above the review thresholds that review_learn needs to
    know how often the machine is right where it does not ask; ``label_chance`` in the request
    says how the event was drawn.

Durability
    All state changes of one input (or of one queued event, or one receipt) happen in one
    transaction; redelivered inputs are recognised by event id / request id and change nothing.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from store_common.description import Catalog
from store_common.stamps import ns_to_s, s_to_ns
from store_common.watermarks import WatermarkTracker
from store_shelf.event import HypothesisData, ShelfEventData

from store_cart.db import CartDb
from store_cart.model import (
    ACK_APPLIED, ACK_REJECTED, ACTION_NONE, ACTION_RETURN, ACTION_TAKE, CandidateData,
    CartLineData, CartStateData, CartUpdateData, DecisionAckData, GateEventData,
    KIND_ENTER, KIND_EXIT, Note, Output,
    REASON_AMBIGUOUS_SHOPPER, REASON_CLOSE_CANDIDATES, REASON_LOW_CONFIDENCE, REASON_NAMES,
    REASON_NO_SHOPPER, REASON_NOT_IN_CART, REASON_SPOT_CHECK, REASON_UNKNOWN_WEIGHT, ReceiptData,
    ReviewDecisionData, ReviewRequestData, review_request_id, session_id_of, SOURCE_FUSED,
    SOURCE_REVIEW, SOURCE_WEIGHT, spot_check_id, STATE_EXITED, STATE_IN_STORE, StateSnapshot,
    STATUS_CONFIRMED, STATUS_PENDING_REVIEW)

_STATUS = {'confirmed': STATUS_CONFIRMED, 'pending': STATUS_PENDING_REVIEW}
_SIGN = {ACTION_TAKE: 1, ACTION_RETURN: -1}       # units a hypothesis adds to the cart, per unit


@dataclass(frozen=True)
class CartParams:
    hold_s: float = 1.0            # shelf events wait this long (sensor time) for late gate events
    receipt_grace_s: float = 3.0   # receipt issued this long after the exit scan; > hold_s
    min_confidence: float = 0.9    # posterior needed to apply a hypothesis without review
    min_margin: float = 0.2        # lead over the second hypothesis needed, same
    review_top_k: int = 3          # product hypotheses per shopper offered to the reviewer
    # prior probability that a shopper returns a unit their cart does not hold (brought in, or
    # taken while the machine looked elsewhere); small but non-zero keeps the posterior defined
    foreign_return_prior: float = 0.001
    # an event source (see the module documentation) silent this long is no longer waited for
    source_timeout_s: float = 10.0
    # a return of a product its shopper's cart does not hold waits up to this long (the
    # caller's clock after the settled stamp) for the answers of that shopper's open take
    # reviews that name the product: the answer may put it in the cart, and the return is then
    # decided without asking anyone again. 0: reviewed at once
    return_wait_s: float = 60.0
    # the share of events decided without review that are put to a person anyway as a spot
    # check (the decision stays in the cart; an answer that differs corrects it), chosen by a
    # hash of the event id so that a replay checks the same events: the labels above the bars
    # that review_learn needs to move them. 0: none
    spot_check_fraction: float = 0.0

    def __post_init__(self):
        if not self.hold_s >= 0:
            raise ValueError(f'hold_s must be >= 0, got {self.hold_s}')
        if not self.receipt_grace_s > self.hold_s:
            raise ValueError(f'receipt_grace_s ({self.receipt_grace_s}) must be > hold_s '
                             f'({self.hold_s}), or receipts would miss held shelf events')
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f'min_confidence must be in 0..1, got {self.min_confidence}')
        if not 0.0 <= self.min_margin <= 1.0:
            raise ValueError(f'min_margin must be in 0..1, got {self.min_margin}')
        if self.review_top_k < 1:
            raise ValueError(f'review_top_k must be >= 1, got {self.review_top_k}')
        if not 0.0 < self.foreign_return_prior <= 1.0:
            raise ValueError(f'foreign_return_prior must be in (0, 1], got '
                             f'{self.foreign_return_prior}')
        if not self.source_timeout_s > 0:
            raise ValueError(f'source_timeout_s must be > 0, got {self.source_timeout_s}')
        if not self.return_wait_s >= 0:
            raise ValueError(f'return_wait_s must be >= 0, got {self.return_wait_s}')
        if not 0.0 <= self.spot_check_fraction <= 1.0:
            raise ValueError(f'spot_check_fraction must be in 0..1, got '
                             f'{self.spot_check_fraction}')


# A revised receipt goes to its shopper: it names neither the reviewer nor anybody else's
# purchase. Who decided what for whom stays in the log, the cart database (the event's and
# the review's records) and the review database's audit trail, for supervisors.
RECEIPT_NOTE_REVIEW = 'Corrected after a review of your visit.'
RECEIPT_NOTE_LATE = 'Corrected: a shelf change during your visit was confirmed after the receipt.'


def cart_params_of(node: Mapping[str, Any]) -> CartParams:
    """The CartParams a cart node runs with, from its parameters (its ``cart:`` section of
    config/params/store.yaml, or a launched node's): every CartParams field given there, the
    rest at their defaults; other keys (db_path, fused_min_confidence, ...) are not read.
    ValueError naming the field when a value is not a number or out of range."""
    values = {}
    for f in fields(CartParams):
        if f.name in node:
            try:
                values[f.name] = (int if f.type in (int, 'int') else float)(node[f.name])
            except (TypeError, ValueError):
                raise ValueError(f'cart parameter {f.name}: expected a number, got '
                                 f'{node[f.name]!r}') from None
    return CartParams(**values)


def fused_params(params: CartParams, fused_min_confidence: float) -> CartParams:
    """The thresholds of a cart that takes fused events: ``fused_min_confidence`` replaces
    min_confidence (the fused posterior is calibrated; sweep_review_threshold picks it
    on tuning scenarios); a negative value keeps min_confidence."""
    if fused_min_confidence < 0:
        return params
    return replace(params, min_confidence=fused_min_confidence)


OFFER_MIN_POSTERIOR = 0.005  # a product hypothesis under this is not offered (but the best)
NEARBY_S = 5.0      # a "no shopper" review offers everyone inside this close to the event [s]


def spot_checked(event_id: str, fraction: float) -> bool:
    """Whether the event is one of the ``fraction`` of decisions put to a person as a spot
    check: a uniform draw from the event id's hash, so a replay, a restart and an offline run
    check the same events, and nobody can tell which events will be checked without the id."""
    if fraction <= 0.0:
        return False
    draw = int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:8], 'big') / 2.0 ** 64
    return draw < fraction


def decision_features(hint: Mapping[str, float] | None, present: Sequence[str],
                      posteriors: Iterable[float]) -> tuple[float, float, str]:
    """(p, margin, top shopper): what :class:`CartEngine` compares with (min_confidence,
    min_margin) for one shelf event, as one pair, for tuning those bars.

    As ``CartEngine._decide``: with no hint or one shopper present, the shopper is decided by
    presence (each present shopper 1/n); else by the hint, present shoppers it does not name
    counting 0. The event goes unreviewed when the top shopper's probability and lead and the
    best hypothesis' posterior and lead all clear the bars, so the feature is the smaller of
    each pair. Nobody present: (0, 0, ''), always reviewed. (The cart's conditioning on what a
    shopper holds, for returns, is left out.)"""
    if not present:
        return 0.0, 0.0, ''
    weights = shopper_weights(hint, present)
    ps = weights[0][1]
    ms = ps - (weights[1][1] if len(weights) > 1 else 0.0)
    post = sorted((float(x) for x in posteriors), reverse=True)
    ph = post[0] if post else 0.0
    mh = ph - (post[1] if len(post) > 1 else 0.0)
    return min(ps, ph), min(ms, mh), weights[0][0]


def shopper_weights(hint: Mapping[str, float] | None, present: Sequence[str]
                    ) -> list[tuple[str, float]]:
    """(shopper, probability) of each shopper ``present``, best first (ties by id): with no
    hint or one shopper present, each 1/n (alone in the store, the shopper is the only one who
    could have done it: the cameras cannot make that surer, and an unseen reach must not send
    it to review); else the hint's, shoppers inside whom the cameras did not name at 0 (they
    stay reviewable)."""
    if hint is None or len(present) == 1:
        weights = [(s, 1.0 / len(present)) for s in present]
    else:
        weights = [(s, float(hint.get(s, 0.0))) for s in present]
    weights.sort(key=lambda w: (-w[1], w[0]))
    return weights


def shelf_event_problem(ev: ShelfEventData) -> str | None:
    """What makes a shelf event unusable (it must not touch a cart), or None."""
    if not ev.event_id:
        return 'no event id'
    numbers = {'delta_grams': ev.delta_grams, 'noise_grams': ev.noise_grams,
               **{f'plate_delta_grams[{i}]': x for i, x in enumerate(ev.plate_delta_grams)}}
    for i, h in enumerate(ev.hypotheses):
        numbers[f'hypotheses[{i}].posterior'] = h.posterior
        numbers[f'hypotheses[{i}].expected_grams'] = h.expected_grams
    bad = [k for k, v in numbers.items() if not math.isfinite(v)]
    if bad:
        return f'non-finite {", ".join(bad)}'
    if any(not 0.0 <= h.posterior <= 1.0 or h.quantity < 0 for h in ev.hypotheses):
        return 'a hypothesis has a posterior outside 0..1 or a negative quantity'
    if not 0 <= ev.start_ns <= ev.settled_ns:
        return f'start stamp {ev.start_ns} is not in 0..settled stamp {ev.settled_ns}'
    return None


def _qty_text(action: int, sku: str, quantity: int) -> str:
    verb = {ACTION_TAKE: 'take', ACTION_RETURN: 'return'}.get(action, f'action {action}')
    return f'{verb} {quantity} {sku}'


def _hyp_text(h: HypothesisData) -> str:
    if h.is_unknown:
        return f'unknown weight (p={h.posterior:.2f})'
    return f'{_qty_text(h.action, h.sku, h.quantity)} (p={h.posterior:.2f})'


class CartEngine:
    """Carts, receipts and review requests of one store, persisted in ``db_path``."""

    def __init__(self, db_path: str, catalog: Catalog, store_id: str,
                 params: CartParams | Mapping | None = None, sources: Iterable[str] = (),
                 monotonic_ns: Callable[[], int] = time.monotonic_ns):
        if params is None:
            params = CartParams()
        elif not isinstance(params, CartParams):
            params = CartParams(**dict(params))
        self.params = params
        self.catalog = catalog
        self.store_id = store_id
        self._hold_ns = s_to_ns(params.hold_s)
        self._grace_ns = s_to_ns(params.receipt_grace_s)
        self.db = CartDb(db_path)
        self.watermarks = WatermarkTracker(sources, params.source_timeout_s,
                                           lambda eid: self.db.event(eid) is not None,
                                           monotonic_ns)
        # counters for diagnostics
        self.counts = {'decisions_applied': 0, 'decisions_rejected': 0,
                       'redelivery_conflicts': 0, 'inputs_rejected': 0}
        # returns that wait for a review's answer -> decisions_applied when they last looked
        self._waiting: dict[str, int] = {}

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> CartEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- inputs -------------------------------------------------------------------------------
    def on_gate_event(self, ev: GateEventData) -> list[Output]:
        """Enter opens a session, exit closes it. Redelivered events change nothing.

        With event sources, the event is queued and applied by :meth:`tick` in stamp order once
        every source has passed its stamp (an exit scan resent before its entrance scan would
        otherwise be dropped); without, it is applied on arrival.
        """
        if not ev.event_id or not ev.shopper_id or ev.stamp_ns < 0:
            self.counts['inputs_rejected'] += 1
            return [f'gate event {ev.event_id!r} refused, no cart changed: it needs an event id, '
                    f'a shopper id and a stamp >= 0 (shopper {ev.shopper_id!r}, stamp '
                    f'{ev.stamp_ns})']
        known = self.db.event(ev.event_id)
        if known is not None:
            if known['payload'] != json.loads(json.dumps(ev.to_dict())):
                self.counts['redelivery_conflicts'] += 1
                return [f'gate event {ev.event_id} redelivered with different content; the '
                        'first delivery stands']
            return []
        if self.watermarks.sources:
            with self.db.transaction():
                self.db.add_event(ev.event_id, 'gate', ev.stamp_ns, ev.to_dict(), 'queued')
            return []
        return self._apply_gate(ev, queued=False)

    def _apply_gate(self, ev: GateEventData, queued: bool) -> list[Output]:
        outs: list[Output] = []
        changed: list[str] = []
        with self.db.transaction():
            if ev.kind == KIND_ENTER:
                inside = self.db.open_session(ev.shopper_id)
                sid = session_id_of(ev.shopper_id, ev.stamp_ns)
                if inside is not None:
                    note = (f'duplicate enter of {ev.shopper_id} at gate {ev.gate_id}: already '
                            f'inside as {inside["session_id"]}; ignored')
                    outs.append(note)
                elif self.db.session(sid) is not None:
                    note = f'enter of {ev.shopper_id}: session {sid} exists already; ignored'
                    outs.append(note)
                else:
                    self.db.add_session(sid, ev.shopper_id, ev.stamp_ns)
                    note = f'opened {sid}'
                    changed.append(sid)
            elif ev.kind == KIND_EXIT:
                inside = self.db.open_session(ev.shopper_id)
                if inside is None:
                    note = (f'exit of unknown shopper {ev.shopper_id} at gate {ev.gate_id} '
                            f'(t={ns_to_s(ev.stamp_ns):.3f} s): nobody of that id is inside; '
                            'ignored')
                    outs.append(note)
                elif ev.stamp_ns < inside['enter_ns']:
                    note = (f'exit of {ev.shopper_id} at {ev.stamp_ns} ns precedes its enter '
                            f'({inside["session_id"]}); ignored')
                    outs.append(note)
                else:
                    sid = inside['session_id']
                    self.db.close_session(sid, ev.stamp_ns)
                    self.db.touch_session(sid, ev.stamp_ns)
                    note = f'closed {sid}'
                    changed.append(sid)
            else:
                note = f'gate event {ev.event_id} has unknown kind {ev.kind}; ignored'
                outs.append(note)
            if queued:
                self.db.mark_processed(ev.event_id, note)
            else:
                self.db.add_event(ev.event_id, 'gate', ev.stamp_ns, ev.to_dict(), 'processed',
                                  note)
        outs.extend(Note(f'{ev.shopper_id} {"entered" if ev.kind == KIND_ENTER else "left"} '
                         f'({sid})') for sid in changed)
        outs.extend(self._cart_state(sid) for sid in changed)
        return outs

    def on_shelf_event(self, ev: ShelfEventData,
                       shopper_hint: Mapping[str, float] | None = None,
                       raw_confidence: float | None = None) -> list[Output]:
        """Queue a shelf event; :meth:`tick` processes it after the hold. Idempotent by id.

        ``shopper_hint`` ({shopper_id: probability}) replaces the presence-only rule (see the
        module documentation). ``raw_confidence``: the fusion's confidence before its
        calibration, kept with the event for ``review_learn`` to refit the calibration on; it
        decides nothing, so a value that is not a number in 0..1 is dropped with a warning,
        not the event.
        """
        problem = shelf_event_problem(ev)
        payload = ev.to_dict()
        outs: list[Output] = []
        if raw_confidence is not None:
            if math.isfinite(raw_confidence) and 0.0 <= raw_confidence <= 1.0:
                payload['raw_confidence'] = float(raw_confidence)
            else:
                outs.append(f'shelf event {ev.event_id!r}: raw_confidence {raw_confidence!r} is '
                            'not a number in 0..1; not kept (the event is)')
        if problem is None and shopper_hint is not None:
            hint = {str(k): float(v) for k, v in shopper_hint.items()}
            bad = {k: v for k, v in hint.items() if not 0.0 <= v <= 1.0}
            if bad:
                problem = f'shopper hint probabilities must be in 0..1, got {bad}'
            payload['shopper_hint'] = hint
        if problem is not None:
            self.counts['inputs_rejected'] += 1
            return [f'shelf event {ev.event_id!r} refused, no cart changed: {problem}']
        known = self.db.event(ev.event_id)
        if known is not None:
            # the stored payload went through JSON (tuples became lists): compare like forms
            if known['payload'] != json.loads(json.dumps(payload)):
                self.counts['redelivery_conflicts'] += 1
                return [f'shelf event {ev.event_id} redelivered with different content; '
                        'the first delivery stands']
            return outs
        with self.db.transaction():
            self.db.add_event(ev.event_id, 'shelf', ev.settled_ns, payload, 'queued')
        return outs

    def on_review_decision(self, d: ReviewDecisionData) -> list[Output]:
        """Apply a reviewer's answer, replacing the pending line of its event.

        Accepted only for an open review this cart issued, with one of its candidates or the
        explicit "no change"; anything else is refused, counted and acknowledged as refused,
        changing nothing. Idempotent by request id: the same decision again is acknowledged as
        applied. A decision about a visit whose receipt was issued issues a new revision.
        """
        def refuse(reason: str) -> list[Output]:
            self.counts['decisions_rejected'] += 1
            return [f'{who} refused: {reason}',
                    DecisionAckData(d.request_id, d.reviewer_id, ACK_REJECTED, reason)]

        who = f'decision on {d.request_id!r} by {d.reviewer_id or "?"}'
        rv = self.db.review(d.request_id)
        if rv is None:
            return refuse('no such review request was issued by this cart')
        if rv['status'] == 'decided':
            first = dict(rv['decision'] or {})
            if {k: v for k, v in first.items() if k != 'stamp_ns'} == {
                    k: v for k, v in d.to_dict().items() if k != 'stamp_ns'}:
                # the same answer again (a re-send until acknowledged): confirm, change nothing
                return [DecisionAckData(d.request_id, d.reviewer_id, ACK_APPLIED, '')]
            return refuse(f'the request was already decided ({self._decision_text(first)})')
        request = ReviewRequestData.from_dict(rv['request'])
        offered = {(c.shopper_id, c.sku, c.action, c.quantity) for c in request.candidates
                   if c.quantity > 0 and c.shopper_id and c.sku}
        no_change = (d.sku, d.action, d.quantity) == ('', ACTION_NONE, 0)
        if not no_change and (d.shopper_id, d.sku, d.action, d.quantity) not in offered:
            return refuse(f'{self._decision_text(d.to_dict())} is not one of the review\'s '
                          'candidates nor "no change"')
        changes = d.changes_cart
        if changes and d.sku not in self.catalog:
            return refuse(f'sku {d.sku!r} is not in the catalog')
        event_id = rv['event_id']
        target = None
        if changes:
            target = self._session_for(d.shopper_id, rv['session_ids'], event_id)
            if target is None:
                return refuse(f'shopper {d.shopper_id!r} was not in the store at the time of '
                              f'event {event_id}')

        outs: list[Output] = []
        with self.db.transaction():
            before = self._confirmed_by_source(event_id, d.request_id)
            old = self.db.lines_of_source(event_id)
            self.db.delete_lines_of_source(event_id)
            if changes:
                if d.action == ACTION_TAKE:
                    self.db.add_line(target, d.sku, d.quantity, 'confirmed', d.request_id)
                else:
                    # units whose take is itself pending count: the answers to the take's and
                    # the return's reviews may come in either order
                    held = self.db.line_quantity(target, d.sku)
                    k = min(d.quantity, held)
                    if k > 0:
                        self.db.add_line(target, d.sku, -k, 'confirmed', d.request_id)
                    if k < d.quantity:
                        outs.append(f'{who}: return of {d.quantity} {d.sku} applied as {k}, '
                                    f'the cart of {target} held only {held}')
            self.db.decide_review(d.request_id, d.to_dict())
            after = self._confirmed_by_source(event_id, d.request_id)
            # the visits the request named, whose lines it replaces (a spot check's decision
            # is in the cart of the shopper the machine chose) and the answer's
            sessions = sorted(set(rv['session_ids']) | {sid for sid, *_ in old}
                              | ({target} if target else set()))
            for sid in sessions:
                self.db.touch_session(sid, d.stamp_ns)
            change = (f'{_qty_text(d.action, d.sku, d.quantity)} for {d.shopper_id}'
                      if changes else 'no cart change')
            pend = '; '.join(f'{"+" if q > 0 else ""}{q} {sku} {st} for {sid}'
                             for sid, sku, q, st in old) or 'nothing pending'
            note = (f'review {d.request_id} ({REASON_NAMES.get(request.reason, request.reason)}) '
                    f'decided by {d.reviewer_id or "?"}: {change} (replaces {pend})')
            updates = [self._update(sid, event_id=d.request_id, sku=sku, delta=after.get(
                (sid, sku), 0) - before.get((sid, sku), 0), confidence=1.0,
                source=SOURCE_REVIEW, stamp_ns=request.stamp_ns)
                for sid, sku in sorted(set(before) | set(after))
                if after.get((sid, sku), 0) != before.get((sid, sku), 0)]
            revisions = [r for r in (self._revise_receipt(sid, RECEIPT_NOTE_REVIEW, d.stamp_ns)
                                     for sid in sessions) if r is not None]
        self.counts['decisions_applied'] += 1
        outs.append(Note(note))
        outs.extend(updates)
        outs.extend(self._cart_state(sid) for sid in sessions)
        outs.extend(revisions)
        outs.append(DecisionAckData(d.request_id, d.reviewer_id, ACK_APPLIED, ''))
        return outs

    def on_watermark(self, source_id: str, run_id: str, stamp_ns: int,
                     last_event_id: str) -> list[Output]:
        """A source's promise that its events up to ``stamp_ns`` are published."""
        warning = self.watermarks.update(source_id, run_id, stamp_ns, last_event_id)
        return [warning] if warning else []

    def decided_through_ns(self, now_ns: int) -> int:
        """Sensor time up to which shelf events are decided at ``now_ns``: the hold, and the
        frontier of the sources' watermarks."""
        return self._through(now_ns, self.watermarks.frontier_ns())

    def _through(self, now_ns: int, frontier: int | None) -> int:
        bound = now_ns - self._hold_ns
        return bound if frontier is None else min(bound, frontier)

    def caught_up(self, since_ns: int, now_ns: int) -> bool:
        """Whether every event stamped before ``since_ns`` (a restart) is decided: the
        sources have passed it and nothing stamped before it waits."""
        return (self.decided_through_ns(now_ns) >= since_ns
                and self.db.queued_count(before_ns=since_ns) == 0)

    def tick(self, now_ns: int) -> list[Output]:
        """Process the shelf events due at ``now_ns`` and issue the receipts due."""
        outs: list[Output] = list(self.watermarks.changes())
        frontier = self.watermarks.frontier_ns()
        through = self._through(now_ns, frontier)
        # queued gate events wait for the frontier only, shelf events for the hold as well;
        # both are applied in stamp order
        for event_id, kind, payload in self.db.due_events(
                through, now_ns if frontier is None else frontier):
            if kind == 'gate':
                outs.extend(self._apply_gate(GateEventData.from_dict(payload), queued=True))
            else:
                outs.extend(self._process_shelf(event_id, payload, now_ns))
        # a receipt waits for every event up to exit + grace - hold to be decided
        for sid in self.db.sessions_due_for_receipt(
                min(now_ns - self._grace_ns, through - (self._grace_ns - self._hold_ns))):
            with self.db.transaction():
                receipt = self._build_receipt(sid, 1, '', now_ns)
                self.db.add_receipt(sid, 1, now_ns, receipt.to_dict())
            outs.append(receipt)
        return outs

    # --- state --------------------------------------------------------------------------------
    def state(self) -> StateSnapshot:
        """Every cart, the latest revision of every receipt, the open review requests."""
        return StateSnapshot(
            carts=[self._cart_state(s['session_id']) for s in self.db.sessions()],
            receipts=[ReceiptData.from_dict(r) for r in self.db.receipts(latest_only=True)],
            open_reviews=[ReviewRequestData.from_dict(r) for r in self.db.open_reviews()])

    def receipt_history(self) -> list[ReceiptData]:
        """Every revision of every receipt (the audit trail), by receipt id then revision."""
        return [ReceiptData.from_dict(r) for r in self.db.receipts(latest_only=False)]

    # --- shelf event processing ---------------------------------------------------------------
    def _process_shelf(self, event_id: str, payload: dict, now_ns: int) -> list[Output]:
        try:
            ev = ShelfEventData.from_dict(payload)
            hint = payload.get('shopper_hint')
            # a return "not in cart" may still wait for a review's answer (return_wait_s)
            may_wait = now_ns - ev.settled_ns < s_to_ns(self.params.return_wait_s)
            waited = self._waiting.get(event_id)
            if may_wait and waited == self.counts['decisions_applied']:
                return []           # waits, and no review was answered since it last looked
            with self.db.transaction():
                # a return that waits for a review put its guess in the cart: decide afresh
                self.db.delete_lines_of_source(event_id)
                outs, sessions, note = self._decide(ev, hint, may_wait)
                if note is None:
                    # waits for a review's answer: stays queued, its guess pending in the cart
                    self._waiting[event_id] = self.counts['decisions_applied']
                    if waited is not None:
                        return []
                    return [*outs, *(self._cart_state(sid) for sid in sessions)]
                self._waiting.pop(event_id, None)
                self.db.mark_processed(event_id, note)
                for sid in sessions:
                    self.db.touch_session(sid, ev.settled_ns)
                revisions = [r for r in (self._revise_receipt(sid, RECEIPT_NOTE_LATE, now_ns)
                                         for sid in sessions) if r is not None]
        except (ValueError, KeyError, TypeError) as exc:
            # A malformed event must not block the queue forever: record it and move on.
            with self.db.transaction():
                self.db.mark_processed(event_id, f'error: {exc!r}')
            return [f'shelf event {event_id} could not be processed: {exc!r}']
        outs.extend(self._cart_state(sid) for sid in sessions)
        outs.extend(revisions)
        return outs

    def _is_product(self, h: HypothesisData) -> bool:
        return (not h.is_unknown and h.action in (ACTION_TAKE, ACTION_RETURN)
                and h.sku in self.catalog)

    def _decide(self, ev: ShelfEventData, hint: Mapping[str, float] | None,
                may_wait: bool = False) -> tuple[list[Output], list[str], str | None]:
        """Apply the policy to one event: (outputs, sessions changed, note for the db). With
        ``may_wait`` (within ``return_wait_s`` of its settled stamp), a note of None: the event
        waits (:meth:`_waits_for`) and stays queued; its guess is pending."""
        present = {s['shopper_id']: s for s in self.db.sessions_at(ev.start_ns)}
        weights = [(present[k], p) for k, p in shopper_weights(hint, list(present))]
        hyps = sorted(ev.hypotheses, key=lambda h: -h.posterior)
        if weights and hyps:
            weights, hyps = self._condition_on_carts(weights, hyps)
        products = [h for h in hyps if self._is_product(h)]
        source = SOURCE_WEIGHT if hint is None else SOURCE_FUSED
        t_s = f'{ns_to_s(ev.start_ns):.3f} s'
        best_text = _hyp_text(hyps[0]) if hyps else 'no hypothesis'

        if not weights:
            detail = f'nobody was in the store at {t_s}; best explanation: {best_text}'
            if hint is not None:
                detail += f' (shopper hint {dict(hint)} names nobody present)'
            # a reviewer is offered everyone inside within NEARBY_S of the event (a gate scan
            # late or early): the product is not lost when it was one of them
            near = [(s, 0.0) for s in self.db.sessions()
                    if s['enter_ns'] <= ev.settled_ns + s_to_ns(NEARBY_S)
                    and (s['exit_ns'] is None or s['exit_ns'] >= ev.start_ns - s_to_ns(NEARBY_S))]
            return self._review(ev, REASON_NO_SHOPPER, detail, near, hyps, products)

        p_top = weights[0][1]
        p_second = weights[1][1] if len(weights) > 1 else 0.0
        if not (p_top >= self.params.min_confidence
                and p_top - p_second >= self.params.min_margin):
            names = ', '.join(f'{s["shopper_id"]} (p={p:.2f})' for s, p in weights)
            detail = f'{len(weights)} possible shoppers at {t_s}: {names}; best: {best_text}'
            outs, sessions, note = self._review(ev, REASON_AMBIGUOUS_SHOPPER, detail, weights,
                                                hyps, products)
            if hint and p_top > 0.0 and products:
                # the cameras named a most likely shopper: their best guess is pending in that
                # cart (presence alone names nobody, so a weight-only store adds no line)
                note += '; ' + self._pending(weights[0][0]['session_id'], products[0],
                                             ev.event_id)
            return outs, sessions, note

        session, p_shopper = weights[0]
        sid = session['session_id']
        best = hyps[0] if hyps else None
        second = hyps[1].posterior if len(hyps) > 1 else 0.0
        reason = None
        if best is None or not self._is_product(best):
            reason = REASON_UNKNOWN_WEIGHT
            detail = f'no catalog product explains {ev.delta_grams:+.1f} g; best: {best_text}'
        elif best.posterior < self.params.min_confidence:
            reason = REASON_LOW_CONFIDENCE
            detail = (f'best {best_text} is below min_confidence '
                      f'{self.params.min_confidence:.2f}')
        elif best.posterior - second < self.params.min_margin:
            reason = REASON_CLOSE_CANDIDATES
            detail = (f'best {best_text} leads the second ({_hyp_text(hyps[1])}) by less than '
                      f'{self.params.min_margin:.2f}')
        elif (best.action == ACTION_RETURN
              and self.db.confirmed_quantity(sid, best.sku) < best.quantity):
            reason = REASON_NOT_IN_CART
            held = self.db.confirmed_quantity(sid, best.sku)
            detail = (f'{best_text} but the cart of {session["shopper_id"]} holds {held} '
                      f'{best.sku}')
        if reason == REASON_NOT_IN_CART and may_wait:
            waits = self._waits_for(session, best)
            if waits:
                note = self._pending(sid, best, ev.event_id)
                return ([Note(f'{ev.event_id}: {detail}; waits up to '
                              f'{self.params.return_wait_s:g} s for the answer to '
                              f'{", ".join(waits)} ({note})')], [sid], None)
        if reason is not None:
            # the product is in doubt, the shopper passed the bars: the cameras' shopper's
            # visit waits for the answer, and every shopper inside is offered beside them (the
            # cameras can be sure and wrong; the reviewer must be able to say so)
            outs, sessions, note = self._review(ev, reason, detail, weights, hyps, products,
                                                blocks=[sid])
            guess = products[0] if products else None
            if guess is not None:
                note += '; ' + self._pending(sid, guess, ev.event_id)
            return outs, sessions, note

        delta = best.quantity if best.action == ACTION_TAKE else -best.quantity
        self.db.add_line(sid, best.sku, delta, 'confirmed', ev.event_id)
        update = self._update(sid, event_id=ev.event_id, sku=best.sku, delta=delta,
                              confidence=best.posterior * p_shopper, source=source,
                              stamp_ns=ev.settled_ns)
        note = f'{session["shopper_id"]}: {delta:+d} {best.sku} (p={update.confidence:.3f})'
        outs: list[Output] = [update]
        if spot_checked(ev.event_id, self.params.spot_check_fraction):
            detail = (f'decided without review: {_qty_text(best.action, best.sku, best.quantity)}'
                      f' for {session["shopper_id"]} (p={update.confidence:.2f}); one of the '
                      f'{self.params.spot_check_fraction:.0%} of such decisions checked by a '
                      'person')
            # every shopper present is offered (weights[0] is the one decided for); the
            # machine's decision first
            request, note_r = self._request(
                ev, REASON_SPOT_CHECK, detail, weights, hyps, products,
                request_id=spot_check_id(ev.event_id), blocks=[],
                label_chance=self.params.spot_check_fraction,
                first=CandidateData(session['shopper_id'], best.sku, best.action, best.quantity,
                                    update.confidence))
            outs.append(request)
            note += f'; {note_r}'
        return outs, [sid], note

    def _condition_on_carts(self, weights: list[tuple[dict, float]],
                            hyps: list[HypothesisData]
                            ) -> tuple[list[tuple[dict, float]], list[HypothesisData]]:
        """Bayes over (shopper, hypothesis): a shopper can only return what their cart holds.

        joint(s, h) = P(s) * P(h) * feasible(s, h), where a return of q units of a SKU is
        feasible for s as far as s's cart holds q of it (:meth:`_held`: confirmed units count
        whole, units of open reviews by their candidates' confidence), with at least the small
        ``foreign_return_prior``. Returns the shoppers re-weighted by their
        marginal (so a return is attributed to the only shopper who could have made it) and the
        hypotheses conditioned on the most likely shopper (so a wrong-plate return of one of
        several near-equal products resolves to the one the shopper holds).
        """
        eps = self.params.foreign_return_prior
        joint = []
        for session, w in weights:
            held = self._held(session)
            joint.append([w * h.posterior * (
                1.0 if h.action != ACTION_RETURN or not self._is_product(h)
                else min(1.0, max(eps, held.get(h.sku, 0.0) - (h.quantity - 1))))
                for h in hyps])
        total = sum(sum(row) for row in joint)
        feasible_all = all(x == w * h.posterior for (_, w), row in zip(weights, joint)
                           for h, x in zip(hyps, row))
        if total <= 0.0 or feasible_all:
            return weights, hyps   # every explanation possible for everyone: nothing to learn
        marginals = [sum(row) / total for row in joint]
        top = max(range(len(weights)), key=lambda i: (marginals[i], -i))
        row_total = sum(joint[top]) or 1.0
        conditioned = sorted((replace(h, posterior=x / row_total)
                              for h, x in zip(hyps, joint[top])), key=lambda h: -h.posterior)
        reweighted = sorted(((s, m) for (s, _), m in zip(weights, marginals)),
                            key=lambda w: (-w[1], w[0]['shopper_id']))
        if not self._is_product(conditioned[0]):
            # the weight says "a return" but nobody holds it: keep the hypotheses as they are,
            # so the review says "not in cart" rather than "unknown weight"
            return reweighted, hyps
        return reweighted, conditioned

    def _waits_for(self, session: dict, best: HypothesisData) -> list[str]:
        """The open reviews a return of ``best`` that ``session``'s cart does not hold waits
        for: those offering this shopper a take of the same product. Their answer can put the
        product in the cart (then the return is decided without a second question) or not
        (then it is reviewed)."""
        return [r['request_id'] for r in self.db.open_reviews_of(session['session_id'])
                if any(c['shopper_id'] == session['shopper_id'] and c['sku'] == best.sku
                       and c['action'] == ACTION_TAKE and c['quantity'] > 0
                       for c in r['candidates'])]

    def _held(self, session: dict) -> dict[str, float]:
        """Units per SKU that a visit's cart holds, as a soft count: confirmed units whole, and
        for every open review of the visit, each candidate naming this shopper adds (a take)
        or removes (a return) its quantity times its confidence. So a unit whose take went to
        review with the shopper or the product in doubt (pending here, or in another cart) is
        held as surely as the review's candidates say, not as a coin toss's winner."""
        held: dict[str, float] = {}
        for sku, status, qty in self.db.line_sums(session['session_id']):
            if status == 'confirmed':
                held[sku] = held.get(sku, 0.0) + int(qty)
        for request in self.db.open_reviews_of(session['session_id']):
            for c in request['candidates']:
                if c['shopper_id'] == session['shopper_id'] and c['sku'] and c['quantity'] > 0:
                    held[c['sku']] = held.get(c['sku'], 0.0) + _SIGN.get(
                        c['action'], 0) * c['quantity'] * float(c['confidence'])
        return held

    def _pending(self, sid: str, guess: HypothesisData, event_id: str) -> str:
        """Put the best product guess into the cart as a pending line; returns a note.

        A take adds +q pending units. A return adds -q pending units only when the cart holds q
        (confirmed plus pending): a guess that the shopper returned what they do not hold is
        no better a guess for this cart than none. Pending lines never make cart updates, so
        the updates keep summing to the confirmed cart; the reviewer's answer replaces them.
        """
        if guess.action == ACTION_TAKE:
            self.db.add_line(sid, guess.sku, guess.quantity, 'pending', event_id)
            return f'pending +{guess.quantity} {guess.sku} for {sid}'
        held = self.db.line_quantity(sid, guess.sku)
        if held >= guess.quantity:
            self.db.add_line(sid, guess.sku, -guess.quantity, 'pending', event_id)
            return f'pending -{guess.quantity} {guess.sku} for {sid}'
        return (f'return guess {guess.quantity} {guess.sku}: the cart of {sid} holds {held}, '
                'so it keeps them until the decision')

    def _review(self, ev: ShelfEventData, reason: int, detail: str,
                weights: list[tuple[dict, float]], hyps: list[HypothesisData],
                products: list[HypothesisData], blocks: list[str] | None = None
                ) -> tuple[list[Output], list[str], str]:
        """A review offering every shopper of ``weights``; ``blocks``: the visits that wait
        for it (default: all of them)."""
        waiting = [s['session_id'] for s, _ in weights] if blocks is None else list(blocks)
        request, note = self._request(ev, reason, detail, weights, hyps, products,
                                      request_id=review_request_id(ev.event_id),
                                      blocks=waiting)
        return [request], waiting, f'review {note}'

    def _request(self, ev: ShelfEventData, reason: int, detail: str,
                 weights: list[tuple[dict, float]], hyps: list[HypothesisData],
                 products: list[HypothesisData], *, request_id: str,
                 blocks: list[str] | None = None, label_chance: float = 1.0,
                 first: CandidateData | None = None) -> tuple[ReviewRequestData, str]:
        """Store and return a request offering every shopper of ``weights`` x the top
        products (the best, and the next ones with a posterior of at least
        ``OFFER_MIN_POSTERIOR``), and "no change". ``blocks``: the visits that wait for it
        (their carts and receipts count it as pending, returns wait for its answer); a spot
        check blocks none:
        the machine's decision (``first``, offered first) is in the cart already."""
        # the best product always; the others only where the weight leaves them a chance
        # (a one-unit change does not offer 2 and 3 units per shopper at p = 0.00)
        top = [h for i, h in enumerate(products[:self.params.review_top_k])
               if i == 0 or h.posterior >= OFFER_MIN_POSTERIOR]
        unknown_p = sum(h.posterior for h in hyps if not self._is_product(h))
        candidates = [CandidateData(s['shopper_id'], h.sku, h.action, h.quantity,
                                    h.posterior * p) for s, p in weights for h in top]
        candidates.append(CandidateData('', '', ACTION_NONE, 0,
                                        1.0 if not any(p for _, p in weights) else unknown_p))
        candidates.sort(key=lambda c: -c.confidence)   # stable: shoppers, then hypotheses
        if first is not None:
            key = (first.shopper_id, first.sku, first.action, first.quantity)
            candidates = [first] + [c for c in candidates if (
                c.shopper_id, c.sku, c.action, c.quantity) != key]
        request = ReviewRequestData(
            request_id=request_id, event_id=ev.event_id, reason=reason,
            detail=detail, gondola_id=ev.gondola_id, plate_ids=tuple(ev.plate_ids),
            delta_grams=ev.delta_grams, shopper_ids=tuple(s['shopper_id'] for s, _ in weights),
            candidates=tuple(candidates), stamp_ns=ev.settled_ns, label_chance=label_chance)
        self.db.add_review(request.request_id, ev.event_id, ev.settled_ns, request.to_dict(),
                           list(blocks or ()))
        return request, f'{request.request_id}: {REASON_NAMES[reason]}: {detail}'

    # --- helpers ------------------------------------------------------------------------------
    def _session_for(self, shopper_id: str, session_ids: Iterable[str],
                     event_id: str) -> str | None:
        """The visit of ``shopper_id`` a decision on ``event_id`` applies to."""
        for sid in session_ids:
            s = self.db.session(sid)
            if s is not None and s['shopper_id'] == shopper_id:
                return sid
        ev = self.db.event(event_id)
        start_ns = ev['payload']['start_ns'] if ev else None
        if start_ns is None:
            return None
        for s in self.db.sessions_at(start_ns):
            if s['shopper_id'] == shopper_id:
                return s['session_id']
        return None

    def _confirmed_by_source(self, *sources: str) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for src in sources:
            for sid, sku, q, status in self.db.lines_of_source(src):
                if status == 'confirmed':
                    out[(sid, sku)] = out.get((sid, sku), 0) + q
        return out

    @staticmethod
    def _decision_text(d: dict | None) -> str:
        if not d:
            return '?'
        if d.get('shopper_id') and d.get('sku') and d.get('quantity', 0) > 0:
            return (f'{_qty_text(d["action"], d["sku"], d["quantity"])} for {d["shopper_id"]} '
                    f'by {d.get("reviewer_id") or "?"}')
        return f'no cart change by {d.get("reviewer_id") or "?"}'

    def _update(self, sid: str, *, event_id: str, sku: str, delta: int, confidence: float,
                source: int, stamp_ns: int) -> CartUpdateData:
        shopper = self.db.session(sid)['shopper_id']
        return CartUpdateData(update_id=f'{event_id}/{shopper}/{sku}', shopper_id=shopper,
                              session_id=sid, event_id=event_id, sku=sku, quantity_delta=delta,
                              confidence=float(confidence), source=source, stamp_ns=stamp_ns)

    def _lines(self, sid: str) -> tuple[tuple[CartLineData, ...], int]:
        """The best guess of the cart: confirmed and pending units per SKU, pending returns
        netted out of the pending units first, then out of the confirmed ones (and a confirmed
        return of a unit whose take is pending out of the pending ones)."""
        per_sku: dict[str, dict[str, int]] = {}
        for sku, status, qty in self.db.line_sums(sid):
            per_sku.setdefault(sku, {'confirmed': 0, 'pending': 0})[status] += int(qty)
        sums = []
        for sku, q in per_sku.items():
            # a confirmed return of a unit whose take is still pending nets out that take
            sums += [(sku, 'confirmed', q['confirmed'] + min(q['pending'], 0)),
                     (sku, 'pending', q['pending'] + min(q['confirmed'], 0))]
        lines = []
        for sku, status, qty in sums:
            if qty <= 0:
                continue
            product = self.catalog.products.get(sku)
            name = product.name if product else f'{sku} (not in the catalog)'
            price = product.price_cents if product else 0
            lines.append(CartLineData(sku=sku, name=name, quantity=int(qty),
                                      unit_price_cents=price, line_total_cents=int(qty) * price,
                                      status=_STATUS[status]))
        return tuple(lines), sum(x.line_total_cents for x in lines)

    def _cart_state(self, sid: str) -> CartStateData:
        s = self.db.session(sid)
        lines, total = self._lines(sid)
        return CartStateData(shopper_id=s['shopper_id'], session_id=sid,
                             state=STATE_EXITED if s['exit_ns'] is not None else STATE_IN_STORE,
                             lines=lines, total_cents=total,
                             pending_reviews=self.db.open_review_count(sid),
                             stamp_ns=s['last_change_ns'])

    def _build_receipt(self, sid: str, revision: int, note: str, issued_ns: int) -> ReceiptData:
        s = self.db.session(sid)
        lines, total = self._lines(sid)
        return ReceiptData(receipt_id=sid, revision=revision, shopper_id=s['shopper_id'],
                           store_id=self.store_id, entered_ns=s['enter_ns'],
                           exited_ns=s['exit_ns'], lines=lines, total_cents=total,
                           currency=self.catalog.currency,
                           pending_reviews=self.db.open_review_count(sid),
                           correction_note=note, issued_ns=issued_ns)

    def _revise_receipt(self, sid: str, note: str, issued_ns: int) -> ReceiptData | None:
        """Issue the next revision of an issued receipt if its content changed."""
        latest = self.db.latest_receipt(sid)
        if latest is None:
            return None
        new = self._build_receipt(sid, latest['revision'] + 1, note, issued_ns)
        old = ReceiptData.from_dict(latest)
        if (new.lines, new.total_cents, new.pending_reviews) == (
                old.lines, old.total_cents, old.pending_reviews):
            return None
        self.db.add_receipt(sid, new.revision, issued_ns, new.to_dict())
        return new
