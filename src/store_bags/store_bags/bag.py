"""Write and read rosbag2 bags (MCAP storage) with the store typestore, with clear errors.

A bag is a directory holding ``metadata.yaml`` (written by rosbags when the writer closes) and
one ``.mcap`` file. ``ros2 bag info`` / ``ros2 bag play`` read it on a real ROS install: custom
types travel with their full definitions.

Every failure reading a bag is a :class:`BagError` whose text names the bag and, where it applies,
the topic: a missing or unreadable bag, a truncated or corrupt file, a message type not in the
typestore, a requested topic that is not in the bag.

No rclpy here.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Iterable, Iterator

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
import yaml

from store_bags.topics import bag_qos
from store_bags.typestore import store_typestore

BAG_VERSION = 9


class BagError(RuntimeError):
    """A bag cannot be written or read. ``str()`` reads ``bag PATH[: topic T]: what is wrong``."""

    def __init__(self, bag: str | pathlib.Path, message: str, topic: str | None = None):
        self.bag = str(bag)
        self.topic = topic
        self.message = message
        where = f'bag {self.bag}' + (f': topic {topic}' if topic else '')
        super().__init__(f'{where}: {message}')


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str         # e.g. 'store_interfaces/msg/PlateWeights'
    stamp_ns: int        # receive (record) time [ns]
    data: bytes          # CDR-serialized message, as published


@dataclass(frozen=True)
class TopicInfo:
    topic: str
    msgtype: str
    count: int
    qos: tuple           # offered QoS profiles recorded in the metadata (rosbags Qos)


# --- writing ---------------------------------------------------------------------------------
class BagWriter:
    """rosbag2 writer (MCAP storage). Topics are added on first use with their QoS class.

        with BagWriter('out/bag1') as w:
            w.write('/store/gate_events', 'store_interfaces/msg/GateEvent', stamp_ns, cdr)
    """

    def __init__(self, path: str | pathlib.Path, typestore=None):
        self.path = pathlib.Path(path)
        self.typestore = typestore or store_typestore()
        if self.path.exists():
            raise BagError(self.path, 'already exists; choose a new bag path')
        try:
            self._writer = Writer(self.path, version=BAG_VERSION,
                                  storage_plugin=StoragePlugin.MCAP)
            self._writer.open()
        except Exception as exc:   # noqa: BLE001 - rosbags raises several kinds
            raise BagError(self.path, f'cannot create: {exc}') from None
        self._conns: dict[str, object] = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str) -> None:
        if topic in self._conns:
            if self._conns[topic].msgtype != msgtype:
                raise BagError(self.path, f'already recorded as {self._conns[topic].msgtype}, '
                                          f'cannot add {msgtype}', topic)
            return
        if msgtype not in self.typestore.fielddefs:
            raise BagError(self.path, f'unknown message type {msgtype!r} (not in the store '
                                      f'typestore)', topic)
        self._conns[topic] = self._writer.add_connection(
            topic, msgtype, typestore=self.typestore, offered_qos_profiles=[bag_qos(topic)])
        self.counts[topic] = 0

    def write(self, topic: str, msgtype: str, stamp_ns: int, data: bytes) -> None:
        """Write one serialized (CDR) message received at ``stamp_ns``."""
        self.add_topic(topic, msgtype)
        self._writer.write(self._conns[topic], int(stamp_ns), bytes(data))
        self.counts[topic] += 1

    def write_msg(self, topic: str, msgtype: str, stamp_ns: int, msg) -> None:
        """Serialize a rosbags message object with the typestore and write it."""
        self.write(topic, msgtype, stamp_ns, self.typestore.serialize_cdr(msg, msgtype))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- reading ---------------------------------------------------------------------------------
class BagReader:
    """Open a bag and check it: metadata, storage file, and that every type is known.

    ``messages()`` yields :class:`BagMessage` in time order; corrupt data met on the way raises
    a BagError naming the bag (and the last topic read).
    """

    def __init__(self, path: str | pathlib.Path, typestore=None):
        self.path = pathlib.Path(path)
        self.typestore = typestore or store_typestore()
        if not self.path.exists():
            raise BagError(self.path, 'not found')
        if self.path.is_file():
            # a bare .mcap file: rosbags needs the bag directory with metadata.yaml
            raise BagError(self.path, 'is a file; give the bag directory (with metadata.yaml)')
        if not (self.path / 'metadata.yaml').is_file():
            raise BagError(self.path, 'no metadata.yaml: not a rosbag2 bag, or the recording '
                                      'was not closed (truncated)')
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:   # noqa: BLE001
            raise BagError(self.path, f'cannot open (corrupt or truncated?): '
                                      f'{type(exc).__name__}: {exc}') from None
        try:
            meta = yaml.safe_load((self.path / 'metadata.yaml').read_text())
            self.storage = str(meta['rosbag2_bagfile_information']['storage_identifier'])
        except Exception:   # noqa: BLE001 - rosbags already parsed it; this is for display
            self.storage = '?'
        self.topics: dict[str, TopicInfo] = {}
        for c in self._reader.connections:
            if c.msgtype not in self.typestore.fielddefs:
                raise BagError(self.path, f'unknown message type {c.msgtype!r} (not in the '
                                          f'store typestore)', c.topic)
            prev = self.topics.get(c.topic)
            self.topics[c.topic] = TopicInfo(
                c.topic, c.msgtype, c.msgcount + (prev.count if prev else 0),
                tuple(getattr(c.ext, 'offered_qos_profiles', ()) or ()))

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        """Stamp of the last message + 1 ns (exclusive end)."""
        return int(self._reader.end_time)

    @property
    def duration_s(self) -> float:
        # rosbags' end time is exclusive (last stamp + 1 ns)
        return max(0, self.end_ns - self.start_ns - 1) / 1e9 if self.message_count else 0.0

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    def check_topics(self, topics: Iterable[str]) -> list[str]:
        """Raise a BagError naming the first requested topic the bag does not have."""
        topics = list(topics)
        for t in topics:
            if t not in self.topics:
                raise BagError(self.path, 'not in the bag; it has '
                                          f'{", ".join(sorted(self.topics))}', t)
        return topics

    def messages(self, topics: Iterable[str] | None = None,
                 start_ns: int | None = None) -> Iterator[BagMessage]:
        """Messages of ``topics`` (default all) with stamp >= ``start_ns``, in time order."""
        wanted = set(self.check_topics(topics)) if topics is not None else None
        conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        last_topic = None
        try:
            for conn, stamp, data in self._reader.messages(connections=conns, start=start_ns):
                last_topic = conn.topic
                yield BagMessage(conn.topic, conn.msgtype, int(stamp), bytes(data))
        except BagError:
            raise
        except Exception as exc:   # noqa: BLE001 - mcap/zstd/struct errors on corrupt data
            raise BagError(self.path, f'corrupt or truncated data after '
                                      f'{"the start" if last_topic is None else "a message"}: '
                                      f'{type(exc).__name__}: {exc}', last_topic) from None

    def deserialize(self, msg: BagMessage):
        """A rosbags message object (same field names as the ROS message)."""
        try:
            return self.typestore.deserialize_cdr(msg.data, msg.msgtype)
        except Exception as exc:   # noqa: BLE001
            raise BagError(self.path, f'cannot deserialize a {msg.msgtype} at {msg.stamp_ns} ns:'
                                      f' {type(exc).__name__}: {exc}', msg.topic) from None

    def verify(self) -> int:
        """Read and deserialize every message; returns the count. Raises BagError."""
        n = 0
        for m in self.messages():
            self.deserialize(m)
            n += 1
        if n != self.message_count:
            raise BagError(self.path, f'metadata says {self.message_count} messages, the '
                                      f'storage holds {n} (truncated?)')
        return n

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> 'BagReader':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def summary(reader: BagReader) -> str:
    """Text like ``ros2 bag info``: path, storage, duration, start/end, counts per topic."""
    lines = [f'Files:             {reader.path}',
             f'Storage id:        {reader.storage}',
             f'Duration:          {reader.duration_s:.3f}s',
             f'Start:             {reader.start_ns / 1e9:.3f}' if reader.message_count else
             'Start:             -',
             f'End:               {reader.end_ns / 1e9:.3f}' if reader.message_count else
             'End:               -',
             f'Messages:          {reader.message_count}',
             'Topic information:']
    width = max((len(t) for t in reader.topics), default=0)
    for t in sorted(reader.topics):
        info = reader.topics[t]
        lines.append(f'  Topic: {t:<{width}} | Type: {info.msgtype} | Count: {info.count} | '
                     f'Serialization Format: cdr')
    return '\n'.join(lines)
