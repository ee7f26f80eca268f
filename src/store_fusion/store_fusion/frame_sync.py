"""Approximate-time synchronisation of the cameras' detections for the tracker node.

The tracker steps once per *frame set*: the detections of every camera at about one instant
(stamps within ``slop_s`` of the set's oldest). A set is stepped as soon as it is complete (every
live camera has delivered its frame, or has already delivered a later one: it skipped this
instant), so the node steps on exactly the frames the offline path steps on, however the
messages interleave; a set a live camera never completes is stepped after ``max_wait_s`` of the
caller's clock without it. A camera that has delivered nothing for ``dropout_s`` is not waited
for (it has dropped out). Gate scans are held until the first step at or after their stamp, as
the offline path applies them. Never imports rclpy.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import Any

NS = 1_000_000_000


@dataclass
class SyncStats:
    frames_in: int = 0          # detection messages received
    frames_used: int = 0        # ... that went into a step
    frames_late: int = 0        # ... stamped at or before a step already done: not used
    frames_dropped: int = 0     # ... pushed out of a full queue: not used
    steps: int = 0
    incomplete_steps: int = 0   # steps a live camera missed (released by max_wait_s)


@dataclass
class FrameSync:
    cameras: tuple
    slop_s: float = 0.1
    max_wait_s: float = 0.3
    dropout_s: float = 1.0
    depth: int = 30
    stats: SyncStats = field(default_factory=SyncStats)

    def __post_init__(self):
        self.cameras = tuple(sorted(self.cameras))
        self._queues: dict[str, deque] = {c: deque() for c in self.cameras}
        self._last_arrival: dict[str, int] = {}
        self._newest: dict[str, int] = {}
        self._gates: list[tuple[int, str, str]] = []
        self.last_step_ns: int | None = None
        self._first_ns: int | None = None

    def add(self, camera_id: str, stamp_ns: int, detections: Any, arrival_ns: int) -> bool:
        """One camera's detections; False (not used) for an unknown camera or a frame at or
        before the last step (late)."""
        if camera_id not in self._queues:
            return False
        self.stats.frames_in += 1
        self._last_arrival[camera_id] = arrival_ns
        if self._first_ns is None:
            self._first_ns = arrival_ns
        if self.last_step_ns is not None and stamp_ns <= self.last_step_ns:
            self.stats.frames_late += 1
            return False
        q = self._queues[camera_id]
        stamps = [s for s, _, _ in q]
        q.insert(bisect.bisect_right(stamps, stamp_ns), (stamp_ns, detections, arrival_ns))
        self._newest[camera_id] = max(stamp_ns, self._newest.get(camera_id, stamp_ns))
        while len(q) > self.depth:
            q.popleft()
            self.stats.frames_dropped += 1
        return True

    def add_gate(self, stamp_ns: int, kind: str, shopper_id: str) -> None:
        bisect.insort(self._gates, (int(stamp_ns), kind, shopper_id))

    def _live(self, now_ns: int) -> list[str]:
        """Cameras waited for: those heard from in the last ``dropout_s``, and, for the first
        ``dropout_s`` after the first frame, those not heard from yet (starting up)."""
        if self._first_ns is None:
            return []
        starting = now_ns - self._first_ns <= self.dropout_s * NS
        return [c for c in self.cameras
                if (c in self._last_arrival
                    and now_ns - self._last_arrival[c] <= self.dropout_s * NS)
                or (c not in self._last_arrival and starting)]

    def ready(self, now_ns: int) -> list[tuple[int, dict[str, Any], list[tuple]]]:
        """The frame sets due at ``now_ns`` (caller's clock), oldest first: (step stamp (the
        newest of the set), {camera: detections}, [gate scans (stamp, kind, shopper) to apply
        before the step])."""
        out = []
        slop = int(self.slop_s * NS)
        while True:
            heads = {c: q[0] for c, q in self._queues.items() if q}
            if not heads:
                break
            t0 = min(s for s, _, _ in heads.values())
            members = {c: h for c, h in heads.items() if h[0] <= t0 + slop}
            waiting = [c for c in self._live(now_ns) if c not in members
                       and self._newest.get(c, -1) <= t0 + slop]
            oldest_arrival = min(a for _, _, a in members.values())
            if waiting and now_ns - oldest_arrival < self.max_wait_s * NS:
                break
            stamp = max(s for s, _, _ in members.values())
            for c in members:
                self._queues[c].popleft()
            self.stats.frames_used += len(members)
            self.stats.steps += 1
            self.stats.incomplete_steps += bool(waiting)
            self.last_step_ns = stamp
            # frames of the set's window queued behind a member are late now
            for q in self._queues.values():
                while q and q[0][0] <= stamp:
                    q.popleft()
                    self.stats.frames_late += 1
            gates = []
            while self._gates and self._gates[0][0] <= stamp:
                gates.append(self._gates.pop(0))
            out.append((stamp, {c: h[1] for c, h in members.items()}, gates))
        return out
