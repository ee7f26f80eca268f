"""Sensor-time helpers. Stamps travel as integer nanoseconds inside the pure modules."""
from __future__ import annotations

NS_PER_S = 1_000_000_000


def to_ns(stamp) -> int:
    """``builtin_interfaces/Time`` (or anything with sec/nanosec) to integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def from_ns(ns: int, cls):
    """Integer nanoseconds to an instance of ``cls`` (a ``builtin_interfaces/Time`` class)."""
    ns = int(ns)
    return cls(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def ns_to_s(ns: int) -> float:
    return ns / NS_PER_S


def s_to_ns(s: float) -> int:
    return int(round(s * NS_PER_S))
