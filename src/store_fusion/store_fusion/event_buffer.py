"""Hold shelf events until the camera evidence after them is in, then fuse them.

The fusion node's logic, without rclpy. Two clocks meet here:

* sensor time of the track stream (``ShopperTracks`` header stamps): its *watermark* is the
  newest stamp received. A shelf event is ready once the watermark has passed
  ``settled + after_s`` (``after_s = max(post_s, vision_window_s)``): every track snapshot the
  fusion looks at has arrived;
* the caller's clock (ROS time): an event that has waited ``max_hold_s`` since it arrived is
  released anyway (cameras down, tracker dead or lagging) with whatever evidence there is, so no
  event is ever lost. While the track stream is alive but lagging (its watermark advanced within
  ``alive_s`` of the caller's clock: a loaded detector delivers seconds late) the event waits on,
  up to ``lagging_hold_s``. An empty track window gives no shopper candidates: the cart then
  applies its weight-only presence rule.

Events are released in (settled stamp, event id) order: an event released by the timeout takes
every earlier-settled pending event with it. Event ids are remembered, so a re-delivered shelf
event (transient-local history, a restarted shelf node) is fused once.

Concurrent events on different plates are fused jointly (``joint.py``: one shopper, one plate at a
time). An event linked to pending ones is held until the evidence of its whole group is in
(``EventBuffer.hold_until``; ``max_hold_s`` still bounds the wait), so the group is decided with
the same evidence the offline benchmark uses; an event released earlier (recently: the track
history still holds its window) joins a later event's group, and its evidence is taken again.
"""
from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from store_fusion.fusion import (FusionParams, FusionResult, fuse_event, Snapshot, TrackHistory,
                                 VISION_NONE)
from store_fusion.joint import EventEvidence, group_evidence, groups, JointParams, marginals

NS = 1_000_000_000


@dataclass
class Released:
    event_id: str
    settled_ns: int
    payload: Any
    timed_out: bool             # released by max_hold_s, not by the watermark
    waited_s: float             # caller's clock from arrival to release [s]
    watermark_ns: int | None    # track watermark at release; None if no tracks ever arrived


@dataclass
class BufferStats:
    received: int = 0
    duplicates: int = 0
    released: int = 0
    timed_out: int = 0


def fused_watermark_ns(shelf_frontier_ns: int | None, buffer: 'EventBuffer') -> int | None:
    """The fusion node's promise (a ``SourceWatermark``): every fused event settled at or
    before it is published. Every shelf event up to the shelf sources' frontier is in, and
    those not yet released are held; None while the shelf sources promise nothing."""
    if shelf_frontier_ns is None or shelf_frontier_ns < 0:
        return None
    held = buffer.earliest_pending_ns()
    return shelf_frontier_ns if held is None else min(shelf_frontier_ns, held - 1)


class EventBuffer:
    """Shelf events waiting for the track watermark (or the timeout)."""

    def __init__(self, after_s: float, max_hold_s: float, remember_ids: int = 100_000,
                 lagging_hold_s: float | None = None, alive_s: float = 1.0):
        if after_s < 0 or max_hold_s < 0:
            raise ValueError(f'after_s ({after_s}) and max_hold_s ({max_hold_s}) must be >= 0')
        self.after_ns = int(round(after_s * NS))
        self.max_hold_ns = int(round(max_hold_s * NS))
        self.lagging_hold_ns = max(self.max_hold_ns, int(round(
            (max_hold_s if lagging_hold_s is None else lagging_hold_s) * NS)))
        self.alive_ns = int(round(alive_s * NS))
        self.watermark_ns: int | None = None
        self.watermark_moved_ns: int | None = None   # caller's clock when it last advanced
        self.stats = BufferStats()
        self._pending: list[tuple[int, str]] = []          # sorted (settled_ns, event_id)
        self._held: dict[str, tuple[int, int, Any]] = {}   # id -> (settled, arrival, payload)
        self._until: dict[str, int] = {}                   # id -> watermark it also waits for
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember_ids

    def __len__(self) -> int:
        return len(self._pending)

    def seen(self, event_id: str) -> bool:
        """Whether an event of this id was received (held or released)."""
        return event_id in self._seen

    def earliest_pending_ns(self) -> int | None:
        """Settled stamp of the earliest event still held; None when none is."""
        return self._pending[0][0] if self._pending else None

    def add(self, event_id: str, settled_ns: int, payload: Any, now_ns: int) -> bool:
        """Hold an event; False (and nothing held) when its id was seen before."""
        if event_id in self._seen:
            self.stats.duplicates += 1
            return False
        self._seen[event_id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self.stats.received += 1
        bisect.insort(self._pending, (int(settled_ns), event_id))
        self._held[event_id] = (int(settled_ns), int(now_ns), payload)
        return True

    def hold_until(self, event_id: str, stamp_ns: int) -> None:
        """Keep a pending event until the watermark has reached ``stamp_ns`` as well (the
        evidence of the events it is fused with); ``max_hold_s`` still applies."""
        if event_id in self._held:
            self._until[event_id] = max(self._until.get(event_id, 0), int(stamp_ns))

    def advance_watermark(self, stamp_ns: int, now_ns: int | None = None) -> None:
        """The track stream has delivered everything up to ``stamp_ns`` (sensor time), at
        ``now_ns`` of the caller's clock (None: unknown; the stream is not counted alive)."""
        if self.watermark_ns is None or stamp_ns > self.watermark_ns:
            self.watermark_ns = int(stamp_ns)
            if now_ns is not None:
                self.watermark_moved_ns = int(now_ns)

    def _timed_out(self, waited_ns: int, now_ns: int) -> bool:
        """Whether an event that has waited ``waited_ns`` goes out without its evidence: after
        ``max_hold_s``, or after ``lagging_hold_s`` while the track stream is alive (its
        watermark advanced within ``alive_s``) but behind."""
        if waited_ns < self.max_hold_ns:
            return False
        alive = self.watermark_moved_ns is not None and \
            now_ns - self.watermark_moved_ns <= self.alive_ns
        return not alive or waited_ns >= self.lagging_hold_ns

    def oldest_wait_s(self, now_ns: int) -> float:
        """How long the longest-waiting pending event has waited [s]; 0 when none."""
        if not self._held:
            return 0.0
        return max(0.0, (now_ns - min(a for _, a, _ in self._held.values())) / NS)

    def _evidence_in(self, settled_ns: int) -> bool:
        return self.watermark_ns is not None and self.watermark_ns >= settled_ns + self.after_ns

    def release(self, now_ns: int) -> list[Released]:
        """The events due at ``now_ns`` (caller's clock), in settled order."""
        last = -1
        for i, (settled, eid) in enumerate(self._pending):
            arrival = self._held[eid][1]
            due = self._evidence_in(settled) and self.watermark_ns >= self._until.get(eid, 0)
            if due or self._timed_out(now_ns - arrival, now_ns):
                last = i
        out = []
        for settled, eid in self._pending[:last + 1]:
            _, arrival, payload = self._held.pop(eid)
            self._until.pop(eid, None)
            timed_out = not self._evidence_in(settled)
            out.append(Released(eid, settled, payload, timed_out, (now_ns - arrival) / NS,
                                self.watermark_ns))
            self.stats.released += 1
            self.stats.timed_out += int(timed_out)
        del self._pending[:last + 1]
        return out


@dataclass
class FusedOutput:
    released: Released
    result: FusionResult


@dataclass
class EventFuser:
    """Track history + event buffer + :func:`fuse_event` (+ ``joint``): what the fusion node
    runs.

    ``payload`` of :meth:`on_shelf_event` is passed through to the output (the node keeps the
    original message there); ``event`` is a ``store_shelf.event.ShelfEventData``.
    """
    geom: Any
    n_skus: int
    params: FusionParams = field(default_factory=FusionParams)
    max_hold_s: float = 5.0
    keep_s: float = 60.0
    calibration: Callable[[float], float] | None = None
    joint: JointParams = field(default_factory=JointParams)
    lagging_hold_s: float | None = None     # None: max_hold_s (no longer for a lagging stream)

    def __post_init__(self):
        hold_s = max(self.max_hold_s, self.lagging_hold_s or 0.0)
        self.history = TrackHistory(keep_s=max(self.keep_s, hold_s + self.after_s
                                               + self.params.pre_s + 10.0))
        self.buffer = EventBuffer(self.after_s, self.max_hold_s,
                                  lagging_hold_s=self.lagging_hold_s)
        self.track_messages = 0
        self._events: dict[str, Any] = {}             # pending event id -> ShelfEventData
        self._recent: list = []                       # released events, for later groups

    @property
    def after_s(self) -> float:
        return max(self.params.post_s, self.params.vision_window_s)

    def on_tracks(self, stamp_ns: int, snapshots: list[Snapshot],
                  now_ns: int | None = None) -> bool:
        """One ``ShopperTracks`` message (received at ``now_ns`` of the caller's clock; None:
        unknown); False (ignored) when it is not newer than the watermark (a re-delivery, or a
        message out of order)."""
        wm = self.buffer.watermark_ns
        if wm is not None and stamp_ns <= wm:
            return False
        for s in snapshots:
            self.history.add(s)
        self.buffer.advance_watermark(stamp_ns, now_ns)
        self.track_messages += 1
        return True

    def on_shelf_event(self, event, payload: Any, now_ns: int) -> bool:
        """Hold a shelf event; False when its id was seen before (nothing happens)."""
        if not self.buffer.add(event.event_id, event.settled_ns, (event, payload), now_ns):
            return False
        if self.joint.enabled and self._plates(event):
            self._events[event.event_id] = event
            self._hold_group(event.event_id)
        return True

    def _plates(self, event) -> tuple:
        return tuple(p for p in event.plate_ids if p in self.geom.plate_targets)

    def _stub(self, event) -> EventEvidence:
        return EventEvidence(event.event_id, event.start_ns, event.settled_ns,
                             self._plates(event), [], self.params.nobody,
                             tuple(event.hypotheses), self.n_skus)

    def _joint_groups(self, pool: list, ids: set) -> list[list[EventEvidence]]:
        """The groups of linked events among ``pool`` that contain one of ``ids`` and are
        decided jointly (2..max_group members), as evidence stubs without candidates."""
        context = [self._stub(e) for e in pool]
        out = []
        for comp in groups(context, self.joint.gap_s):
            members = [context[i] for i in comp]
            if ids & {m.event_id for m in members} and \
                    2 <= len(members) <= self.joint.max_group:
                out.append(members)
        return out

    def _hold_group(self, event_id: str) -> None:
        """The pending members of a new event's group wait for the evidence of all of them."""
        for members in self._joint_groups(self._recent + list(self._events.values()),
                                          {event_id}):
            until = max(m.settled_ns for m in members) + self.buffer.after_ns
            for m in members:
                self.buffer.hold_until(m.event_id, until)

    def _posteriors(self, events: list) -> dict[str, tuple[list, list[str]]]:
        """{event id: (joint shopper posterior, ids of the other events it was decided with)}
        of the released ``events``; events decided alone are left out."""
        if not self.joint.enabled:
            return {}
        released = [e for e in events if self._plates(e)]
        ids = {e.event_id for e in released}
        pool = self._recent + released + [e for e in self._events.values()
                                          if e.event_id not in ids]
        out = {}
        for members in self._joint_groups(pool, ids):
            # pending group-mates with the evidence so far (normally complete: see hold_until)
            evidence = group_evidence(self.geom, members, self.history, self.params,
                                      self.joint)
            cands, joint = marginals(evidence, self.joint)
            for m, c in zip(members, cands):
                if m.event_id in ids and joint:
                    out[m.event_id] = (c, [o.event_id for o in members if o is not m])
        self._recent.extend(released)
        if self._recent:
            horizon = max(e.settled_ns for e in self._recent) - int(
                (self.max_hold_s + self.after_s + self.joint.gap_s + 10.0) * NS)
            self._recent = [e for e in self._recent if e.settled_ns >= horizon]
        return out

    def poll(self, now_ns: int) -> list[FusedOutput]:
        """Fuse and return the events due at ``now_ns`` (caller's clock), in settled order."""
        released = self.buffer.release(now_ns)
        for r in released:
            self._events.pop(r.event_id, None)
        joint = self._posteriors([r.payload[0] for r in released]) if released else {}
        out = []
        for r in released:
            event, payload = r.payload
            plates = self._plates(event)
            hyps = list(event.hypotheses)
            if plates:
                shoppers, others = joint.get(event.event_id, (None, []))
                res = fuse_event(self.geom, plates, event.start_ns, event.settled_ns, hyps,
                                 self.history, self.n_skus, self.params, self.calibration,
                                 shoppers=shoppers)
                if others:
                    res.detail += f'; jointly with {", ".join(others)}'
            else:       # plates the store geometry does not know: no vision evidence
                res = FusionResult([], hyps, 0.0, VISION_NONE, [], 'no known plate', 0.0)
            out.append(FusedOutput(replace(r, payload=payload), res))
        return out
