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


def cdr_header_stamp_ns(data: bytes) -> int | None:
    """The ``header.stamp`` of a serialized message whose first field is a
    ``std_msgs/Header`` (sensor_msgs/Image, ...), read without deserializing the rest: a
    subscriber that keeps one frame in several skips the copy of the others. The CDR
    encapsulation (4 bytes: plain CDR, big or little endian) is followed by the stamp's int32
    ``sec`` and uint32 ``nanosec``. None when ``data`` is too short, another encapsulation,
    or a nanosec out of range."""
    if len(data) < 12 or data[0] != 0 or data[1] not in (0, 1):
        return None
    order = 'little' if data[1] == 1 else 'big'
    sec = int.from_bytes(data[4:8], order, signed=True)
    nanosec = int.from_bytes(data[8:12], order, signed=False)
    if nanosec >= NS_PER_S:
        return None
    return sec * NS_PER_S + nanosec
