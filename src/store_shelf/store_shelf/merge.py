"""Merge simultaneous steps on adjacent plates into one shelf event (no rclpy).

A product resting across two adjacent plates splits its weight between them, so one take shows
as two steps whose activity windows overlap. Steps are grouped when their plates are adjacent
(``adjacency``, from ``Store.adjacent_plates``), their changes have the same sign, and their
``[start, settled]`` windows overlap or lie within ``gap_s`` of each other, unless they are
separate grabs (``separate``, from :meth:`HypothesisRanker.separate_grabs`: each plate's change
is whole units of its own product, and the sum is not one unit; takes, and returns to each
plate's own product); a group is
held for ``hold_s`` of sensor time after its last step was detected, so the partner plate's step
can still arrive. Groups made only of minor steps (under the detector's ``min_step_grams``) are
dropped. A released group of three or more takes that ``split`` (from
:meth:`HypothesisRanker.split_grabs`) finds to be two grabs is released as two events: a step
joins the first adjacent group that overlaps it, before its own partner plate's step exists.

Events come out in settled order. Sensor time advances with :meth:`EventMerger.advance`; no clock
is read, so replays produce the same events with the same ids.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

from store_shelf.event import ShelfEventData
from store_shelf.steps import NS_PER_S, WeightStep


@dataclass
class _Group:
    steps: list[WeightStep]

    @property
    def start_ns(self) -> int:
        return min(s.start_ns for s in self.steps)

    @property
    def settled_ns(self) -> int:
        return max(s.settled_ns for s in self.steps)

    @property
    def detected_ns(self) -> int:
        return max(s.detected_ns or s.settled_ns for s in self.steps)

    @property
    def plates(self) -> set[str]:
        return {s.plate_id for s in self.steps}


def event_from_steps(steps: Iterable[WeightStep], gondola_id: str = '') -> ShelfEventData:
    """The (not yet ranked) event of steps merged together."""
    steps = sorted(steps, key=lambda s: (-abs(s.delta_grams), s.plate_id))
    start_ns = min(s.start_ns for s in steps)
    return ShelfEventData(
        event_id=f'{steps[0].plate_id}@{start_ns}', gondola_id=gondola_id,
        plate_ids=tuple(s.plate_id for s in steps),
        plate_delta_grams=tuple(s.delta_grams for s in steps),
        delta_grams=sum(s.delta_grams for s in steps),
        noise_grams=math.sqrt(sum(s.noise_grams ** 2 for s in steps)),
        start_ns=start_ns,
        settled_ns=max(s.settled_ns for s in steps),
        steps=tuple(steps))


def shelf_watermark_ns(released_through_ns: int, detectors: Iterable,
                       merger: 'EventMerger') -> int:
    """The gondola's promise (a ``SourceWatermark``): no event it publishes later will have a
    settled stamp at or before this. ``released_through_ns`` is the sensor time the merger was
    advanced to (every live weight topic has reached it, so a step yet to start starts after
    it); a plate still active may report a step that settled as early as its activity start,
    and a group still held settled at its own stamp."""
    bound = released_through_ns
    for d in detectors:
        since = d.pending_since_ns()
        if since is not None:
            bound = min(bound, since)
    held = merger.earliest_settled_ns()
    if held is not None:
        bound = min(bound, held)
    return max(bound - 1, 0)


class EventMerger:
    """Groups :class:`WeightStep` s of adjacent plates into (unranked) :class:`ShelfEventData`."""

    def __init__(self, adjacency: Callable[[str], Iterable[str]] | dict[str, Iterable[str]],
                 hold_s: float = 0.6, gap_s: float = 0.3,
                 separate: Callable[[list[WeightStep]], bool] | None = None,
                 gondola_id: str = '',
                 split: Callable[[list[WeightStep]], list | None] | None = None):
        """``separate``: steps of adjacent plates at once that are separate grabs, not one
        unit across the plates; None merges every adjacent simultaneous pair. ``split``: a
        released group's steps -> its parts when they are separate grabs (None: one event).
        ``gondola_id``: the events' gondola."""
        if hold_s < 0 or gap_s < 0:
            raise ValueError('hold_s and gap_s must be >= 0')
        if callable(adjacency):
            self._adjacent = lambda p: set(adjacency(p))
        else:
            table = {k: set(v) for k, v in adjacency.items()}
            self._adjacent = lambda p: table.get(p, set())
        self._separate = separate
        self._split = split
        self.split_groups = 0       # released groups split into two events
        self.hold_ns = int(hold_s * NS_PER_S)
        self.gap_ns = int(gap_s * NS_PER_S)
        self.gondola_id = gondola_id
        self._groups: list[_Group] = []
        self.dropped_minor = 0

    @property
    def pending(self) -> int:
        return len(self._groups)

    def earliest_settled_ns(self) -> int | None:
        """Settled stamp of the earliest group still held; None when none is."""
        return min((g.settled_ns for g in self._groups), default=None)

    def add(self, step: WeightStep) -> None:
        """Add a step to the group it belongs with, or start a new group."""
        best, best_overlap = None, None
        for g in self._groups:
            if step.plate_id in g.plates:
                continue
            if (step.delta_grams < 0) != (g.steps[0].delta_grams < 0):
                continue      # a take on one plate and a return on the next are two events
            if not any(p in self._adjacent(step.plate_id) for p in g.plates):
                continue
            lo = max(g.start_ns, step.start_ns)
            hi = min(g.settled_ns, step.settled_ns)
            overlap = hi - lo
            if overlap < -self.gap_ns:
                continue
            if self._separate is not None and self._separate([*g.steps, step]):
                continue      # two grabs at once, one per plate: not one unit across both
            if best is None or overlap > best_overlap:
                best, best_overlap = g, overlap
        if best is None:
            self._groups.append(_Group([step]))
        else:
            best.steps.append(step)

    def advance(self, now_ns: int) -> list[ShelfEventData]:
        """Release the groups held for ``hold_s`` by sensor time ``now_ns``, in settled order."""
        ready = [g for g in self._groups if now_ns - g.detected_ns >= self.hold_ns]
        return self._release(ready)

    def flush(self) -> list[ShelfEventData]:
        """Release every pending group (end of a replay or test)."""
        return self._release(list(self._groups))

    def _release(self, ready: list[_Group]) -> list[ShelfEventData]:
        if not ready:
            return []
        ids = {id(g) for g in ready}
        self._groups = [g for g in self._groups if id(g) not in ids]
        out = []
        for g in ready:
            if all(s.minor for s in g.steps):
                self.dropped_minor += 1
                continue
            parts = self._split(g.steps) if self._split is not None else None
            if parts:
                self.split_groups += 1
            out.extend(event_from_steps(part, self.gondola_id) for part in (parts or [g.steps]))
        out.sort(key=lambda e: (e.settled_ns, e.event_id))
        return out
