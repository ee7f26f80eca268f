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

import glob
import pathlib
from dataclasses import dataclass
from typing import Iterable, Iterator

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
import yaml

from store_bags import mcap_check
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
        """Close the bag: rosbags writes the summary and metadata.yaml; then every chunk gets
        its CRC32 (rosbags leaves it 0), so that damage to message bytes is found on reading."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            for f in sorted(glob.glob(str(self.path / '*.mcap'))):
                mcap_check.write_chunk_crcs(f)

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- reading ---------------------------------------------------------------------------------
class BagReader:
    """Open a bag and check it: metadata, storage file, and that every type is known.

    ``messages()`` yields :class:`BagMessage` in time order; corrupt data met on the way, or
    fewer messages than the bag's index promises (rosbags reads zeroed bytes as empty records
    and ends early without a word), raises a BagError naming the bag, the storage file, the
    byte offset and the message index where the damage starts (:meth:`scan`).
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

    @property
    def storage_files(self) -> list[pathlib.Path]:
        paths = getattr(self._reader, 'paths', None) or sorted(self.path.glob('*.mcap'))
        return [pathlib.Path(p) for p in paths]

    def scan(self) -> dict[str, int]:
        """Walk every storage file record by record (:mod:`store_bags.mcap_check`): structure,
        chunk CRCs, message indexes; and check the message count of every topic against the
        metadata. Returns ``{topic: messages}``; raises a BagError naming the file, the byte
        offset, how many messages were good before it and the last good one's topic."""
        per_topic: dict[str, int] = {}
        for f in self.storage_files:
            if f.suffix != '.mcap':
                continue
            try:
                res = mcap_check.check(f)
            except mcap_check.McapDamage as exc:
                raise BagError(self.path, f'damaged storage file {f.name} {exc}',
                               exc.topic or None) from None
            except OSError as exc:
                raise BagError(self.path, f'cannot read {f.name}: {exc}') from None
            for t, n in res.per_topic.items():
                per_topic[t] = per_topic.get(t, 0) + n
        for t, info in sorted(self.topics.items()):
            if per_topic.get(t, 0) != info.count:
                raise BagError(self.path, f'the metadata lists {info.count} messages, the '
                                          f'storage holds {per_topic.get(t, 0)}', t)
        return per_topic

    def _damage(self, index: int, last: BagMessage | None, what: str) -> BagError:
        """The BagError for a read that failed or ended early after ``index`` messages: where
        the storage is damaged when the scan finds it, else what the read saw."""
        try:
            self.scan()
        except BagError as exc:
            return BagError(self.path, f'replay stopped after message {index}: {exc.message}',
                            exc.topic)
        after = ('before the first message' if last is None else
                 f'after message {index} ({last.topic} at {last.stamp_ns} ns)')
        return BagError(self.path, f'corrupt or truncated data {after}: {what}',
                        last.topic if last else None)

    def messages(self, topics: Iterable[str] | None = None,
                 start_ns: int | None = None) -> Iterator[BagMessage]:
        """Messages of ``topics`` (default all) with stamp >= ``start_ns``, in time order.

        Raises a BagError where the data is damaged, also when the storage ends before every
        message the bag's index lists was read."""
        wanted = set(self.check_topics(topics)) if topics is not None else None
        conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        index, last = 0, None
        try:
            for conn, stamp, data in self._reader.messages(connections=conns, start=start_ns):
                last = BagMessage(conn.topic, conn.msgtype, int(stamp), bytes(data))
                index += 1
                yield last
        except BagError:
            raise
        except Exception as exc:   # noqa: BLE001 - mcap/zstd/struct errors on corrupt data
            raise self._damage(index, last, f'{type(exc).__name__}: {exc}') from None
        if start_ns is None or start_ns <= self.start_ns:
            expected = sum(i.count for t, i in self.topics.items()
                           if wanted is None or t in wanted)
            if index != expected:
                raise self._damage(index, last, f'the bag lists {expected} messages of these '
                                                f'topics, the storage gave {index}')
        else:
            self.scan()      # a partial read cannot count: check the whole storage instead

    def deserialize(self, msg: BagMessage):
        """A rosbags message object (same field names as the ROS message)."""
        try:
            return self.typestore.deserialize_cdr(msg.data, msg.msgtype)
        except Exception as exc:   # noqa: BLE001
            raise BagError(self.path, f'cannot deserialize a {msg.msgtype} at {msg.stamp_ns} ns:'
                                      f' {type(exc).__name__}: {exc}', msg.topic) from None

    def verify(self) -> int:
        """Check the storage (:meth:`scan`), then read and deserialize every message; returns
        the count. Raises BagError naming where the bag is damaged."""
        self.scan()
        n = 0
        for m in self.messages():
            try:
                self.deserialize(m)
            except BagError as exc:
                raise BagError(self.path, f'message {n + 1}: {exc.message}', m.topic) from None
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
