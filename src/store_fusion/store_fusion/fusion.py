"""Event fusion: which shopper's hand was at the plate, and which product, from weight + vision.

For a shelf event [start, settled] on plates P:

* shopper evidence: for each bound track in the track history, the closest approach of any of
  its 3D hands to the reach region of P during [start - pre_s, settled + post_s]
  (``StoreGeometry.plate_distance``); likelihood ``exp(-d^2 / 2 sigma^2)`` with sigma from the
  hand's std (times ``one_view_hand_weight`` for a hand one camera saw, whose depth along its
  ray is assumed at a plate's height), a small body-only term when no hand was seen (the
  shopper stood in front of the plate), times how near to in front of the plates the shopper
  stood along the shelf (``beside_sigma_m``: one reaches into what is in front of one), and a
  "nobody seen" pseudo-candidate, so that an event whose cause no camera saw keeps mass away
  from every shopper and goes to review instead of being guessed; a shopper whose hands show a
  product gained (lost) around the event is weighed by how well the event's weight hypotheses
  explain those SKUs (:func:`product_ratio`): two shoppers at two adjacent plates are told
  apart by what each is seen holding afterwards;
* product evidence: SKUs of product boxes in the chosen shopper's hands after the event minus
  before it (a take shows a new item in the hand; a return shows one gone), each box's SKU right
  with the detector's measured SKU accuracy; multiplied into the weight hypotheses (which already
  carry the planogram and the plate inventory);
* output: shopper posteriors (the cart's ``shopper_hint``), fused hypotheses, and the joint
  confidence. The cart's min_confidence / min_margin turn low or close posteriors into review
  requests with the candidates.

Never imports rclpy.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field, replace

from store_interfaces.msg import FusedShelfEvent, ProductHypothesis

from store_fusion.geometry import HAND_ONE_VIEW_AT_PLATE
from store_fusion.sku_confusion import SkuConfusion

VISION_NONE, VISION_CONFIRMS, VISION_CHANGED, VISION_CONFLICTS = (
    FusedShelfEvent.VISION_NONE, FusedShelfEvent.VISION_CONFIRMS, FusedShelfEvent.VISION_CHANGED,
    FusedShelfEvent.VISION_CONFLICTS)


@dataclass(frozen=True)
class FusionParams:
    pre_s: float = 0.6            # look this long before the event start [s]
    post_s: float = 0.4           # and after the settled stamp [s]
    hand_sigma_m: float = 0.12    # hand-to-plate distance scale [m]
    body_weight: float = 0.02     # likelihood of a shopper in front of the plate, hands unseen
    reach_max_speed_mps: float = 0.6  # a shopper walking faster than this is not reaching [m/s]
    body_reach_m: float = 1.3     # hands count only with the body in front of the plate, this near
    speed_span_s: float = 0.4     # speed measured over +- this [s]
    body_range_m: float = 1.0     # "in front of the plate": body within this of the hand target
    nobody: float = 0.01          # likelihood that no tracked shopper did it (unseen cause)
    vision_window_s: float = 2.0  # product boxes this long before start / after settled [s]
    sku_accuracy: float = 0.85    # P(a product box's colour SKU is right)
    max_votes: float = 4.0        # product boxes are correlated: at most this many count
    product_shopper_weight: float = 1.0  # SKUs in a shopper's hands as evidence of who (0: off)
    # a hand one camera saw, placed where its ray meets a reachable plate's height, is evidence
    # of a reach this much weaker than a triangulated one: its depth is assumed, and a hand
    # drawn back from one shelf can pass for a reach into the shelf below (about 1 / the three
    # shelf heights; tuning seeds 8100-8117, level 3: 0.1-0.5 all beat 1.0, see ARCHITECTURE)
    one_view_hand_weight: float = 0.3
    # a shopper who stood (median over the frames in front of the plates) this far to the side
    # of the plates' width is exp(-1/2) as likely the cause; 0: where the shopper stood along
    # the shelf is no evidence (the parameters file ships 0.3: live seeds 22000-22009 replayed,
    # 0.2-0.5 alike, see RESULTS)
    beside_sigma_m: float = 0.0
    # a SKU seen gained or lost around an event is another item (one put away, or out of view
    # after the event) rather than the event's product this often: it speaks for no hypothesis
    other_item_share: float = 0.0
    # a SKU among the event's weight hypotheses counts as gained or lost around the event from
    # this share of the shopper's frames (any other SKU from VOTE_FLOOR): a box that names the
    # look-alike the weight could not rule out is seldom there by chance (the parameters file's
    # value: see RESULTS); VOTE_FLOOR: no SKU is special
    hypothesis_vote_floor: float = 0.3
    # which SKU the detector names for which product (the fusion node's sku_confusion_file);
    # None: every wrong SKU equally likely, at sku_accuracy
    sku_confusion: SkuConfusion | None = field(default=None, compare=False)

    @property
    def confusion(self) -> SkuConfusion:
        return self.sku_confusion or SkuConfusion(self.sku_accuracy)


@dataclass
class Snapshot:
    stamp_ns: int
    track_id: str
    shopper_id: str
    xy: tuple
    hands: list                  # [((x, y, z), std [m], HAND_* source)]; source optional
    products: list               # [sku]
    seen: bool


@dataclass
class TrackHistory:
    """Snapshots of every track, in time order (the fusion node's buffer). A track bound to an
    account after some of its snapshots (the newcomer's first frames came before the binding)
    is that account's in all of them: :meth:`window` gives the binding known now."""
    keep_s: float = 60.0
    snaps: list = field(default_factory=list)
    bound: dict = field(default_factory=dict)    # track id -> account, once bound

    def add(self, snap: Snapshot) -> None:
        if snap.shopper_id:
            self.bound.setdefault(snap.track_id, snap.shopper_id)
        self.snaps.append(snap)
        if len(self.snaps) > 20000 and self.snaps[0].stamp_ns < snap.stamp_ns - self.keep_s * 1e9:
            cut = bisect_left([s.stamp_ns for s in self.snaps],
                              snap.stamp_ns - self.keep_s * 1e9)
            del self.snaps[:cut]

    def window(self, t0_ns: int, t1_ns: int) -> list[Snapshot]:
        return [s if s.shopper_id or s.track_id not in self.bound
                else replace(s, shopper_id=self.bound[s.track_id])
                for s in self.snaps if t0_ns <= s.stamp_ns <= t1_ns]


@dataclass
class Candidate:
    shopper_id: str
    track_id: str
    probability: float
    hand_distance_m: float
    visible_share: float
    likelihood: float = float('nan')   # unnormalised evidence (``shopper_evidence``)


@dataclass
class FusionResult:
    shoppers: list               # [Candidate], best first
    hypotheses: list             # fused hypotheses (same type as the input), best first
    confidence: float
    vision: int
    skus_seen: list
    detail: str
    raw_confidence: float = float('nan')   # before calibration

    @property
    def hint(self) -> dict[str, float]:
        return {c.shopper_id: c.probability for c in self.shoppers if c.shopper_id}


def shopper_evidence(geom, plate_ids, start_ns: int, settled_ns: int, history: TrackHistory,
                     params: FusionParams, rivals: tuple = (), hyps: tuple = (),
                     n_skus: int = 0) -> list[Candidate]:
    """Every bound shopper seen in the event's window with its unnormalised likelihood
    (``Candidate.likelihood``; ``probability`` is 0 until normalised): the per-shopper evidence
    that :func:`shopper_posterior` normalises against each other and ``params.nobody``, and that
    ``joint`` multiplies across concurrent events. ``rivals``: plates of concurrent events; a
    hand nearer to one of them than to ``plate_ids`` is evidence for that event, not this one
    (one hand, one plate at a moment). ``hyps`` (the event's weight hypotheses) and ``n_skus``:
    a shopper whose hands show a product gained (or lost) around the event is weighed by
    :func:`product_ratio`: the hypotheses' SKUs in the hands of the one who did it."""
    p = params
    snaps = history.window(int(start_ns - p.pre_s * 1e9), int(settled_ns + p.post_s * 1e9))
    by: dict[str, list[Snapshot]] = {}
    for s in snaps:
        if s.shopper_id:
            by.setdefault(s.shopper_id, []).append(s)
    targets = [geom.plate_targets[pid] for pid in plate_ids if pid in geom.plate_targets]
    out = []
    for sid, ss in by.items():
        dmin, like = float('nan'), 0.0
        body_ok = False
        speeds = _speeds(ss, p.speed_span_s)
        aside = []          # how far to the side of the plates the shopper stood, reaching
        for s, speed in zip(ss, speeds):
            if speed > p.reach_max_speed_mps:
                continue    # walking past: a hand ray that crosses a plate is not a reach
            if not any(geom.in_front_of(pid, s.xy, p.body_reach_m) for pid in plate_ids):
                continue    # behind the gondola or too far away to reach into the plate
            aside.append(min(geom.beside(pid, s.xy) for pid in plate_ids))
            for hp, hstd, *source in s.hands:
                d = min(geom.plate_distance(pid, hp) for pid in plate_ids)
                if rivals and min(geom.plate_distance(r, hp) for r in rivals) < d:
                    continue
                sig = math.hypot(p.hand_sigma_m, hstd)
                w = p.one_view_hand_weight if source[:1] == [HAND_ONE_VIEW_AT_PLATE] else 1.0
                like = max(like, w * math.exp(-0.5 * (d / sig) ** 2))
                dmin = d if math.isnan(dmin) else min(dmin, d)
            for t in targets:
                if math.hypot(s.xy[0] - t[0], s.xy[1] - t[1]) < p.body_range_m:
                    body_ok = True
        like += p.body_weight if body_ok else 0.0
        if aside and p.beside_sigma_m > 0.0:
            # one reaches into what is in front of one: a shopper who stood beside the plates
            # (in front of the next plate) is a less likely cause than one in front of them
            off = sorted(aside)[len(aside) // 2]
            like *= math.exp(-0.5 * (off / p.beside_sigma_m) ** 2)
        if like > 0.0 and hyps and n_skus > 1 and p.product_shopper_weight > 0.0:
            before, after = vision_votes(history, ss[-1].track_id, start_ns, settled_ns, p)
            like *= product_ratio(hyps, before, after, n_skus, p)
        seen = sum(1 for s in ss if s.seen) / max(1, len(ss))
        out.append(Candidate(sid, ss[-1].track_id, 0.0, dmin, seen, like))
    return out


def normalise(candidates: list[Candidate], nobody: float) -> list[Candidate]:
    """Probabilities from the likelihoods (against the "nobody seen" pseudo-candidate), best
    first; the candidates are updated in place."""
    total = sum(c.likelihood for c in candidates) + nobody
    for c in candidates:
        c.probability = c.likelihood / total if total > 0 else 0.0
    candidates.sort(key=lambda c: -c.probability)
    return candidates


def shopper_posterior(geom, plate_ids, start_ns: int, settled_ns: int, history: TrackHistory,
                      params: FusionParams, hyps: tuple = (), n_skus: int = 0
                      ) -> list[Candidate]:
    """P(shopper did it) for one event on its own, best first."""
    return normalise(shopper_evidence(geom, plate_ids, start_ns, settled_ns, history, params,
                                      hyps=hyps, n_skus=n_skus), params.nobody)


def _speeds(ss: list[Snapshot], span_s: float) -> list[float]:
    """Floor speed of a shopper at each snapshot, over about +-span_s (one track's snapshots in
    time order; a single frame's position noise would fake a walk) [m/s]."""
    t = [s.stamp_ns / 1e9 for s in ss]
    out = []
    for i in range(len(ss)):
        a = bisect_left(t, t[i] - span_s)
        b = min(len(ss) - 1, bisect_left(t, t[i] + span_s))
        dt = t[b] - t[a]
        out.append(0.0 if dt < 0.25 else math.hypot(ss[b].xy[0] - ss[a].xy[0],
                                                    ss[b].xy[1] - ss[a].xy[1]) / dt)
    return out


def vision_votes(history: TrackHistory, track_id: str, start_ns: int, settled_ns: int,
                 params: FusionParams) -> tuple[Counter, Counter]:
    """(SKU boxes in the hands before the event, after the event), per frame-averaged count."""
    w = params.vision_window_s * 1e9
    before, after = Counter(), Counter()
    nb = na = 0
    for s in history.window(int(start_ns - w), int(settled_ns + w)):
        if s.track_id != track_id or not s.seen:
            continue
        # sorted: the counters' order (ties in a later max) must not follow string hashing
        if s.stamp_ns < start_ns - 0.3e9:
            before.update(sorted(set(s.products)))
            nb += 1
        elif s.stamp_ns > settled_ns + 0.3e9:
            after.update(sorted(set(s.products)))
            na += 1
    return (Counter({k: v / max(1, nb) for k, v in before.items()}),
            Counter({k: v / max(1, na) for k, v in after.items()}))


# a SKU must be gained/lost in >= 30 % of the frames (false positives); the SKUs of the event's
# hypotheses from FusionParams.hypothesis_vote_floor
VOTE_FLOOR = 0.3


def _changes(before: Counter, after: Counter, hyps=(),
             hyp_floor: float = VOTE_FLOOR) -> tuple[Counter, Counter]:
    """(SKUs gained, SKUs lost) between the frames before and after an event: by at least
    VOTE_FLOOR of the frames, or ``hyp_floor`` for the SKUs of the hypotheses ``hyps``."""
    skus = {h.sku for h in hyps if h.sku}

    def floor(k: str) -> float:
        return min(VOTE_FLOOR, hyp_floor) if k in skus else VOTE_FLOOR
    gained = Counter({k: after[k] - before.get(k, 0) for k in after
                      if after[k] - before.get(k, 0) >= floor(k)})
    lost = Counter({k: before[k] - after.get(k, 0) for k in before
                    if before[k] - after.get(k, 0) >= floor(k)})
    return gained, lost


def _log_votes(h, ev: Counter, n_skus: int, params: FusionParams,
               baseline: bool = False) -> float:
    """log P(the SKU boxes ``ev`` | hypothesis ``h``): each box is the event's product with
    probability 1 - ``other_item_share``, named as the detector names that product
    (``params.confusion``: a look-alike far more often than an unrelated SKU), else another
    item (named as a product drawn evenly from the catalog); correlated boxes capped at
    ``max_votes``. ``baseline``: relative to boxes of a product unrelated to ``h``."""
    conf = params.confusion
    other = params.other_item_share
    scale = min(1.0, params.max_votes / max(1.0, sum(ev.values()) * 3))
    log_l = 0.0
    for sku, n in ev.items():
        unrelated = conf.p_seen_unrelated(sku, n_skus)
        # the unknown hypothesis explains a seen SKU no better than a product that is not it
        p = conf.p_seen(sku, h.sku, n_skus) if h.sku else conf.p_seen_wrong(sku, n_skus)
        p = (1.0 - other) * p + other * unrelated
        if baseline:
            p /= unrelated
        log_l += n * 3 * scale * math.log(max(1e-12, p))
    return log_l


def product_ratio(hyps, before: Counter, after: Counter, n_skus: int, params: FusionParams,
                  take_action: int = ProductHypothesis.ACTION_TAKE) -> float:
    """How much better one shopper's product boxes around an event (``before``/``after``, from
    :func:`vision_votes`) are explained by that shopper having done it (the weight hypotheses
    by their posterior) than by products unrelated to it; 1 when the hands show no change.
    Tempered by ``params.product_shopper_weight``: the same object is seen in many frames."""
    gained, lost = _changes(before, after, hyps, params.hypothesis_vote_floor)
    total = sum(h.posterior for h in hyps)
    if total <= 0.0 or not (gained or lost):
        return 1.0
    ratio = 0.0
    for h in hyps:
        ev = gained if h.action == take_action else lost
        log_r = _log_votes(h, ev, n_skus, params, baseline=True) if ev else 0.0
        ratio += h.posterior / total * math.exp(
            max(-50.0, min(50.0, params.product_shopper_weight * log_r)))
    return ratio


def fuse_products(hyps: list, before: Counter, after: Counter, n_skus: int,
                  params: FusionParams,
                  take_action: int = ProductHypothesis.ACTION_TAKE) -> tuple[list, int, list]:
    """Weight hypotheses x vision: (fused hypotheses, VISION_*, SKUs seen as new/gone)."""
    if not hyps:
        return hyps, VISION_NONE, []
    gained, lost = _changes(before, after, hyps, params.hypothesis_vote_floor)
    fused = []
    evidence = False
    for h in hyps:
        ev = gained if h.action == take_action else lost
        if not ev:
            fused.append((h, h.posterior))
            continue
        evidence = True
        log_l = _log_votes(h, ev, n_skus, params)
        fused.append((h, h.posterior * math.exp(max(-50.0, log_l))))
    if not evidence:
        return hyps, VISION_NONE, []
    # renormalise against the strongest, then over all
    total = sum(x for _, x in fused) or 1.0
    out = sorted((replace(h, posterior=x / total) for h, x in fused),
                 key=lambda h: -h.posterior)
    seen = sorted(set(gained) | set(lost))
    if out[0].sku != hyps[0].sku or out[0].action != hyps[0].action:
        flag = VISION_CHANGED
    elif out[0].sku in seen:
        flag = VISION_CONFIRMS
    else:
        flag = VISION_CONFLICTS
    return out, flag, seen


def fuse_event(geom, plate_ids, start_ns: int, settled_ns: int, hyps: list,
               history: TrackHistory, n_skus: int, params: FusionParams | None = None,
               calibration=None, shoppers: list[Candidate] | None = None) -> FusionResult:
    """``calibration``: a callable confidence -> calibrated confidence (``Platt``), or None.
    ``shoppers``: the shopper posterior when the caller has it already (``joint``: the marginal
    over concurrent events), best first; else :func:`shopper_posterior` of this event alone."""
    params = params or FusionParams()
    if shoppers is None:
        shoppers = shopper_posterior(geom, plate_ids, start_ns, settled_ns, history, params,
                                     tuple(hyps), n_skus)
    fused, flag, seen = list(hyps), VISION_NONE, []
    if shoppers:
        before, after = vision_votes(history, shoppers[0].track_id, start_ns, settled_ns, params)
        fused, flag, seen = fuse_products(list(hyps), before, after, n_skus, params)
    p_s = shoppers[0].probability if shoppers else 0.0
    p_h = fused[0].posterior if fused else 0.0
    detail = ', '.join(f'{c.shopper_id} p={c.probability:.2f} d={c.hand_distance_m:.2f} m'
                       for c in shoppers[:3]) or 'no tracked shopper'
    raw = p_s * p_h
    conf = calibration(raw) if calibration is not None else raw
    return FusionResult(shoppers, fused, conf, flag, seen, detail, raw)
