"""Source watermarks: the sensor time up to which every source of events has published them all.

A consumer of events from several publishers (the cart: gate drivers and shelf event nodes; the
fusion node: shelf event nodes) must not decide an event before the events that precede it in
sensor time are in. Live, a short hold in sensor time is enough; after a restart it is not, since
DDS redelivers what each publisher kept in no order across publishers, long after the hold has
passed. So each source publishes a ``SourceWatermark``: "every event of mine stamped at or before
``stamp_ns`` has been published, and the newest of them is ``last_event_id``".

:class:`WatermarkTracker` turns those promises into a *frontier*: the sensor time up to which
the consumer has every event of every source it waits for. A source's watermark counts only once
the consumer holds its ``last_event_id`` (a reliable publisher delivers its events in order, so
holding the newest means holding all of them, whichever topic arrived first). A source that has
said nothing for ``timeout_s`` (of a monotonic clock, so it works in bag replay), or whose named
event never arrives within that time, is *stalled*: the consumer stops waiting for it, reports
it, and waits again as soon as it speaks.

No rclpy here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

NO_BOUND = None                 # frontier when no source is waited for: decide by the hold alone
BLOCKED = -1                    # frontier while a live source has promised nothing (stamps >= 0)

OK = 'ok'                       # its watermark counts
WAITING = 'waiting'             # not heard yet, or its newest event has not arrived yet
SILENT = 'silent'               # stalled: nothing heard for timeout_s
MISSING_EVENT = 'missing event'  # stalled: the event it names never arrived within timeout_s


@dataclass
class _Mark:
    run_id: str
    stamp_ns: int                       # latest watermark of this source
    last_event_id: str
    heard_ns: int                       # monotonic time it was heard
    verified_ns: int | None = None      # newest watermark whose last event the consumer holds
    unverified_since_ns: int | None = None


class WatermarkTracker:
    """The frontier of a set of sources (see the module documentation).

    ``has_event(event_id)`` says whether the consumer holds an event; ``monotonic_ns`` is the
    clock of silence (injected in tests).
    """

    def __init__(self, sources: Iterable[str], timeout_s: float,
                 has_event: Callable[[str], bool],
                 monotonic_ns: Callable[[], int] = time.monotonic_ns):
        if not timeout_s > 0:
            raise ValueError(f'source timeout must be > 0 s, got {timeout_s}')
        self.sources = tuple(sorted(set(sources)))
        self._timeout_ns = int(timeout_s * 1e9)
        self._has_event = has_event
        self._mono = monotonic_ns
        self._start_ns = monotonic_ns()
        self._marks: dict[str, _Mark] = {}
        self._told_unknown: set[str] = set()
        self._last_states: dict[str, str] = {}
        self.rejected = 0

    def update(self, source_id: str, run_id: str, stamp_ns: int,
               last_event_id: str) -> str | None:
        """Take one watermark message; returns a warning when it is refused, else None."""
        if not source_id:
            self.rejected += 1
            return 'watermark without a source_id ignored'
        if source_id not in self.sources:
            if source_id in self._told_unknown:
                return None
            self._told_unknown.add(source_id)
            return (f'watermark of {source_id!r} ignored: not a source this node waits for '
                    f'({", ".join(self.sources) or "none"})')
        if not isinstance(stamp_ns, int) or stamp_ns < 0:
            self.rejected += 1
            return f'watermark of {source_id} with stamp {stamp_ns!r} ignored'
        now = self._mono()
        m = self._marks.get(source_id)
        if m is not None and m.run_id == run_id and stamp_ns < m.stamp_ns:
            self.rejected += 1
            return (f'watermark of {source_id} went back from {m.stamp_ns} to {stamp_ns} ns in '
                    f'run {run_id!r}; ignored')
        if m is None:
            m = self._marks[source_id] = _Mark(run_id, stamp_ns, last_event_id, now)
        else:
            m.run_id, m.stamp_ns, m.last_event_id, m.heard_ns = (run_id, stamp_ns,
                                                                 last_event_id, now)
        self._verify(m, now)
        return None

    def _verify(self, m: _Mark, now: int) -> None:
        if not m.last_event_id or self._has_event(m.last_event_id):
            m.verified_ns = (m.stamp_ns if m.verified_ns is None
                             else max(m.verified_ns, m.stamp_ns))
            m.unverified_since_ns = None
        elif m.unverified_since_ns is None:
            m.unverified_since_ns = now

    def state(self, source_id: str) -> str:
        """OK, WAITING, SILENT or MISSING_EVENT (see the constants)."""
        now = self._mono()
        m = self._marks.get(source_id)
        if m is None:
            return SILENT if now - self._start_ns >= self._timeout_ns else WAITING
        if now - m.heard_ns >= self._timeout_ns:
            return SILENT
        self._verify(m, now)
        if m.unverified_since_ns is not None:
            if now - m.unverified_since_ns >= self._timeout_ns:
                return MISSING_EVENT
            return OK if m.verified_ns is not None else WAITING
        return OK

    def frontier_ns(self) -> int | None:
        """Sensor time up to which every event of every live source is in: the smallest
        verified watermark of the sources not stalled; BLOCKED while one of them has not
        promised anything yet; NO_BOUND (None) when no source is waited for."""
        bound = NO_BOUND
        for s in self.sources:
            st = self.state(s)
            if st in (SILENT, MISSING_EVENT):
                continue
            m = self._marks.get(s)
            v = m.verified_ns if m is not None and m.verified_ns is not None else BLOCKED
            bound = v if bound is None else min(bound, v)
        return bound

    def changes(self) -> list[str]:
        """Lines for the log about sources whose state changed since the last call."""
        out = []
        for s in self.sources:
            st = self.state(s)
            before = self._last_states.get(s)
            if st == before:
                continue
            self._last_states[s] = st
            m = self._marks.get(s)
            if st == SILENT:
                out.append(f'event source {s} silent for {self._timeout_ns / 1e9:g} s: no longer '
                           'waited for; events are decided without its watermark')
            elif st == MISSING_EVENT:
                out.append(f'event source {s} says it published {m.last_event_id!r}, which has '
                           f'not arrived in {self._timeout_ns / 1e9:g} s: no longer waited for')
            elif before in (SILENT, MISSING_EVENT):
                out.append(f'event source {s} is back ({st}); waited for again')
        return out

    def summary(self) -> dict[str, tuple[str, int | None]]:
        """{source: (state, verified watermark or None)} for diagnostics."""
        return {s: (self.state(s), self._marks[s].verified_ns if s in self._marks else None)
                for s in self.sources}
