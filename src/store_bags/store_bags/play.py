"""Playback timing of a bag: bag time <-> wall time at a rate, start offset. No rclpy.

Bag time ``t0_ns`` plays at wall time ``wall0_s``; afterwards bag time advances ``rate`` times as
fast as wall time. The player publishes a message when the wall clock reaches its due time and
publishes ``/clock`` with :meth:`PlayClock.bag_ns` of the current wall time.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class PlayClock:
    t0_ns: int          # bag time that plays at wall0_s [ns]
    wall0_s: float      # wall (monotonic) time of t0_ns [s]
    rate: float         # bag seconds per wall second, > 0

    def __post_init__(self):
        if not self.rate > 0:
            raise ValueError(f'rate must be > 0, got {self.rate}')

    def wall_s(self, bag_ns: int) -> float:
        """Wall time at which bag time ``bag_ns`` is due."""
        return self.wall0_s + (bag_ns - self.t0_ns) / NS_PER_S / self.rate

    def bag_ns(self, wall_s: float) -> int:
        """Bag time playing at wall time ``wall_s``."""
        return self.t0_ns + int(round((wall_s - self.wall0_s) * self.rate * NS_PER_S))


def start_ns(bag_start_ns: int, start_offset_s: float) -> int:
    """First bag time to play: the bag's start plus the offset (>= 0)."""
    if start_offset_s < 0:
        raise ValueError(f'start offset must be >= 0 s, got {start_offset_s}')
    return int(bag_start_ns + round(start_offset_s * NS_PER_S))


def parse_topics(text: str | list[str] | None) -> list[str] | None:
    """Topic selection: comma-separated text or list; empty means every topic (None)."""
    if text is None:
        return None
    items = text.split(',') if isinstance(text, str) else list(text)
    items = [i.strip() for i in items if i and i.strip()]
    return items or None


def message_class(msgtype: str):
    """The Python class of 'pkg/msg/Type' (rosidl-generated), or raise LookupError."""
    parts = msgtype.split('/')
    if len(parts) != 3:
        raise LookupError(f'malformed type name {msgtype!r}')
    pkg, kind, name = parts
    try:
        return getattr(importlib.import_module(f'{pkg}.{kind}'), name)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f'message type {msgtype!r} is not installed: {exc}') from None
