"""The store offline, through the same pure modules the nodes use (benchmarks, tests).

Weight: store_sim physics -> one ``store_shelf.pipeline.GondolaPipeline`` per gondola (the shelf
node's object, with the parameters the launched node reads: config/params/store.yaml's
``shelf_events:`` section) -> shelf events.
Vision: rendered ground-truth boxes per camera frame (``simcam``) -> a detection model ->
``ShopperTracker`` (gate events at the scenario's scan times) -> ``TrackHistory``.
Decisions: three ``CartEngine`` instances side by side: ``weight`` (no hint: the presence rule),
``vision`` (shopper and product from vision alone), ``fused`` (the fusion node's ``EventFuser``
over the recorded tracks, :func:`fuse_offline`: the same hold, joint reasoning over concurrent
events and ``fuse_event``). Sensor time is simulated time; no clock is read, no rclpy.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from store_cart.engine import CartEngine, CartParams
from store_cart.model import (ACTION_NONE, ACTION_RETURN, ACTION_TAKE, GateEventData, KIND_ENTER,
                              KIND_EXIT, ReceiptData, ReviewRequestData)
from store_shelf.event import HypothesisData, ShelfEventData
from store_shelf.pipeline import GondolaPipeline, load_params, on_sample_block, PipelineParams
from store_sim.physics import PhysicsParams, StorePhysics

from store_fusion.event_buffer import EventFuser
from store_fusion.fusion import FusionParams, FusionResult, Snapshot, TrackHistory, vision_votes
from store_fusion.joint import JointParams
from store_fusion.tracker import ShopperTracker, TrackerParams

NS = 1_000_000_000
T0_NS = 1_000 * NS
MODES = ('weight', 'vision', 'fused')


@dataclass
class ModeRun:
    receipts: list = field(default_factory=list)
    requests: list = field(default_factory=list)     # reviews (the machine asked)
    decisions: list = field(default_factory=list)    # (event_id, confidence, shopper, hyp)
    spot_checks: int = 0                             # the cart's checks of its own decisions


def _gates(store, scenario) -> list[GateEventData]:
    ent = next(g.id for g in store.gates if g.kind == 'entrance')
    ext = next(g.id for g in store.gates if g.kind == 'exit')
    out = []
    for s in scenario.shoppers:
        for gate, kind, t in ((ent, KIND_ENTER, s.enter_s), (ext, KIND_EXIT, s.exit_s)):
            ns = T0_NS + int(round(t * NS))
            out.append(GateEventData(f'{gate}@{ns}', gate, kind, s.id, ns))
    return sorted(out, key=lambda g: g.stamp_ns)


def run_tracking(store, scenario, frames: list[dict], detection_model,
                 tracker_params: TrackerParams | None = None,
                 dropout: tuple | None = None) -> tuple[TrackHistory, ShopperTracker]:
    """Frames of rendered truth -> detections -> tracker -> history. ``dropout``: (camera,
    t0_s, t1_s) during which that camera delivers nothing."""
    tracker = ShopperTracker(store, tracker_params)
    history = TrackHistory(keep_s=1e9)
    gates = [(g.stamp_ns, 'enter' if g.kind == KIND_ENTER else 'exit', g.shopper_id)
             for g in _gates(store, scenario)]
    for fr in frames:
        now = T0_NS + int(round(fr['t_s'] * NS))
        while gates and gates[0][0] <= now:
            tracker.on_gate(*gates.pop(0))
        dets = {}
        for cam, boxes in fr['cams'].items():
            if dropout and cam == dropout[0] and dropout[1] <= fr['t_s'] <= dropout[2]:
                continue
            dets[cam] = detection_model.detect(boxes)
        record_tracks(history, now, tracker.step(now, dets))
    return history, tracker


def record_tracks(history: TrackHistory, now: int, tracks) -> None:
    """The tracker's tracks of one step as the fusion node gets them (snapshots)."""
    for t in tracks:
        history.add(Snapshot(now, t.track_id, t.shopper_id, (float(t.x[0]), float(t.x[1])),
                             [(tuple(float(v) for v in p), s, src) for p, s, src in t.hands],
                             [sku for sku, _sc, _cam in t.products], t.last_seen_ns == now))


def shelf_events(store, scenario, physics_params=None, rate_hz: float = 40.0,
                 tail_s: float = 8.0,
                 pipeline_params: PipelineParams | None = None,
                 overlay: dict | None = None) -> list[ShelfEventData]:
    """The scenario's shelf events through the shelf node's pipeline, one per gondola, fed a
    0.1 s batch at a time (a controller's rate). ``pipeline_params``: default
    :func:`store_shelf.pipeline.load_params` (the launched node's values); ``overlay``: learned
    unit weights, as the node's ``weight_models_file``."""
    phys = StorePhysics(store, scenario, params=physics_params or PhysicsParams())
    pipes = GondolaPipeline.for_store(store, pipeline_params or load_params(), overlay)
    t = np.arange(0.0, scenario.duration_s + tail_s, 1.0 / rate_hz)
    counts, not_ready = phys.adc(t)
    grams = phys.counts_to_grams(counts)
    valid = ~not_ready
    stamps = T0_NS + np.round(t * NS).astype(np.int64)
    per = int(round(0.1 * rate_hz))
    out = []
    for i0 in range(0, len(t), per):
        i1 = min(len(t), i0 + per)
        out += on_sample_block(pipes, phys.plate_ids, stamps[i0:i1], grams[:, i0:i1],
                               valid[:, i0:i1])
    return out


def vision_only_hypotheses(history, track_id, ev: ShelfEventData, params) -> tuple:
    before, after = vision_votes(history, track_id, ev.start_ns, ev.settled_ns, params)
    gained = {k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)}
    lost = {k: before[k] - after.get(k, 0) for k in before if before[k] > after.get(k, 0)}
    if gained and (not lost or max(gained.values()) >= max(lost.values())):
        sku, action = max(gained, key=gained.get), ACTION_TAKE
    elif lost:
        sku, action = max(lost, key=lost.get), ACTION_RETURN
    else:
        return (HypothesisData('', ACTION_NONE, 0, 1.0, 0.0, False),)
    return (HypothesisData(sku, action, 1, 0.95, 0.0, True),
            HypothesisData('', ACTION_NONE, 0, 0.05, 0.0, False))


def fuse_offline(geom, events: list[ShelfEventData], history: TrackHistory, n_skus: int,
                 params: FusionParams | None = None, joint: JointParams | None = None,
                 calibration=None, max_hold_s: float = 5.0) -> dict[str, FusionResult]:
    """{event id: fusion result} from the fusion node's logic (``EventFuser``) over a recorded
    track history: one track message per snapshot stamp, in order; each shelf event arrives at
    its settled stamp; the caller's clock is sensor time. Events the track stream never passes
    go out by ``max_hold_s``, as in the node."""
    fuser = EventFuser(geom, n_skus, params or FusionParams(), max_hold_s=max_hold_s,
                       keep_s=1e9, calibration=calibration, joint=joint or JointParams())
    pending = sorted(events, key=lambda e: (e.settled_ns, e.event_id))
    out: dict[str, FusionResult] = {}
    frames: dict[int, list[Snapshot]] = {}
    for s in history.snaps:
        frames.setdefault(s.stamp_ns, []).append(s)
    now = T0_NS
    for now in sorted(frames):
        while pending and pending[0].settled_ns <= now:
            ev = pending.pop(0)
            fuser.on_shelf_event(ev, None, ev.settled_ns)
        fuser.on_tracks(now, frames[now])
        out.update((o.released.event_id, o.result) for o in fuser.poll(now))
    for ev in pending:
        fuser.on_shelf_event(ev, None, ev.settled_ns)
        now = max(now, ev.settled_ns)
    out.update((o.released.event_id, o.result)
               for o in fuser.poll(now + int(max_hold_s * NS) + 1))
    return out


def run_modes(store, scenario, events: list[ShelfEventData], history: TrackHistory,
              geom, cart_params: CartParams | None = None,
              fusion_params: FusionParams | None = None,
              joint_params: JointParams | None = None,
              fused_cart_params: CartParams | None = None) -> dict[str, ModeRun]:
    """``joint_params``: joint reasoning over concurrent events (default on; ``max_group=1``:
    every event on its own). ``fused_cart_params``: the fused mode's cart thresholds, as the
    cart node's ``fused_min_confidence`` sets them (default: ``cart_params``)."""
    fp = fusion_params or FusionParams()
    n_skus = len(store.catalog.products)
    results = fuse_offline(geom, events, history, n_skus, fp, joint_params)
    runs = {m: ModeRun() for m in MODES}
    cart_params = cart_params or CartParams()
    engines = {m: CartEngine(':memory:', store.catalog, store.id,
                             (fused_cart_params or cart_params) if m == 'fused' else cart_params)
               for m in MODES}
    gates = _gates(store, scenario)
    pending = sorted(events, key=lambda e: e.settled_ns)
    end = T0_NS + int((scenario.duration_s + 10) * NS)
    for now in range(T0_NS, end, NS // 10):
        while pending and pending[0].settled_ns <= now:
            ev = pending.pop(0)
            res = results[ev.event_id]
            fused = ShelfEventData(**{**ev.__dict__, 'hypotheses': tuple(res.hypotheses)})
            top = res.shoppers[0] if res.shoppers else None
            vis = ShelfEventData(**{**ev.__dict__, 'hypotheses': vision_only_hypotheses(
                history, top.track_id if top else '', ev, fp)})
            runs['fused'].decisions.append((ev, res))
            # the hint as the cart node gets it (store_cart.convert.fused_event_from_msg): None,
            # not {}, when fusion named no shopper, so the cart falls back to its presence rule
            hint = res.hint or None
            for m, e, h in (('weight', ev, None), ('vision', vis, hint), ('fused', fused, hint)):
                _collect(runs[m], engines[m].on_shelf_event(e, shopper_hint=h))
        while gates and gates[0].stamp_ns <= now:
            g = gates.pop(0)
            for m in MODES:
                _collect(runs[m], engines[m].on_gate_event(g))
        for m in MODES:
            _collect(runs[m], engines[m].tick(now))
    for e in engines.values():
        e.close()
    return runs


def _collect(run: ModeRun, outs) -> None:
    for o in outs:
        if isinstance(o, ReceiptData):
            run.receipts.append(o)
        elif isinstance(o, ReviewRequestData):
            if o.is_spot_check:
                run.spot_checks += 1
            else:
                run.requests.append(o)


def truth_of_event(scenario, ev: ShelfEventData, tol_s: float = 2.0):
    """The scenario action (shopper id, Action) that caused a shelf event, or None."""
    settled_s = (ev.settled_ns - T0_NS) / NS
    best, best_dt = None, tol_s
    for s in scenario.shoppers:
        for a in s.actions:
            if set(a.plates) & set(ev.plate_ids):
                dt = abs(settled_s - a.t_s)
                if dt < best_dt:
                    best, best_dt = (s.id, a), dt
    return best


def action_code(action) -> int:
    """The cart's action code (``ACTION_TAKE``/``ACTION_RETURN``) of a scenario action."""
    return ACTION_TAKE if action.kind == 'take' else ACTION_RETURN


def seed_ranges(spec: str) -> list[int]:
    """'8100:8104,9100:9102' -> the seeds of each inclusive range, in order (benchmarks' --seeds;
    a tuning set is often two separate ranges)."""
    out = []
    for part in spec.split(','):
        try:
            a, b = (int(x) for x in part.split(':'))
        except ValueError:
            raise ValueError(f'--seeds: {part!r} is not first:last') from None
        if b < a:
            raise ValueError(f'--seeds: {part!r} ends before it starts')
        out.extend(range(a, b + 1))
    return out


def identity_census(frames: list[dict], history: TrackHistory, near_m: float = 0.5,
                    far_m: float = 0.8) -> Counter:
    """Per shopper present in a truth frame (``frames``: the renderer's, ``shoppers`` with
    ``id`` and floor ``xy``): is the track bound to their account there? Counts
    ``shopper_frames``; ``ok`` (within ``near_m``), ``swap`` (more than ``far_m`` off and within
    ``near_m`` of another shopper: the account rides on someone else, and their events with
    it), ``off`` (neither), ``missing`` (no track bound to the account yet or any more)."""
    bound: dict[int, dict[str, tuple]] = {}
    for s in history.snaps:
        if s.shopper_id:
            bound.setdefault(s.stamp_ns, {})[s.shopper_id] = s.xy
    out = Counter()
    for fr in frames:
        now = T0_NS + int(round(fr['t_s'] * NS))
        at = bound.get(now, {})
        for sh in fr['shoppers']:
            out['shopper_frames'] += 1
            xy = at.get(sh['id'])
            if xy is None:
                out['missing'] += 1
                continue
            d = float(np.hypot(xy[0] - sh['xy'][0], xy[1] - sh['xy'][1]))
            if d < near_m:
                out['ok'] += 1
            elif d > far_m and any(
                    np.hypot(xy[0] - o['xy'][0], xy[1] - o['xy'][1]) < near_m
                    for o in fr['shoppers'] if o['id'] != sh['id']):
                out['swap'] += 1
            else:
                out['off'] += 1
    return out
