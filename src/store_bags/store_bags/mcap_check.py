"""Walk an MCAP file record by record and find where it is damaged (no rclpy).

rosbags reads chunks through their index and skips what it cannot parse: zeroed bytes in a chunk
read as empty records, so a bag with garbage in the middle can yield part of its messages and
then end as if nothing happened. :func:`check` reads the whole data section in file order and
checks what the format lets one check:

* every record's length stays inside its file or chunk, opcodes are defined ones;
* a chunk's compression is known, its records decompress to the size it declares, its CRC (when
  written: :func:`write_chunk_crcs`) matches, its messages lie in its time range;
* every message record belongs to a declared channel, and the message index written after each
  chunk points at exactly the messages found in it (none lost, none made up);
* the data section ends with a DataEnd record, the file with the footer and magic.

The first problem raises :class:`McapDamage` with the byte offset, how many messages were good
before it (in file order, which for our recorder is time order) and the channel's topic when
known. Payload bytes inside an intact message record cannot be checked without a CRC: bags
written by :class:`store_bags.bag.BagWriter` carry chunk CRCs so that they can.
"""
from __future__ import annotations

import pathlib
import struct
import zlib
from dataclasses import dataclass, field

MAGIC = b'\x89MCAP0\r\n'
OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x02, 0x03, 0x04, 0x05, 0x06
OP_MESSAGE_INDEX, OP_DATA_END = 0x07, 0x0F
KNOWN_OPS = set(range(0x01, 0x10))        # 0x80..0xFF are user opcodes, also allowed
CHUNK_FIXED = 8 + 8 + 8 + 4               # start, end, uncompressed size, uncompressed crc
CRC_AT = 1 + 8 + 24                       # offset of the crc field from the chunk record start


class McapDamage(ValueError):
    """Where an MCAP file is damaged: ``offset`` [byte], ``messages_before`` good messages
    (in file order), ``topic`` of the last good one ('' when none) and what is wrong."""

    def __init__(self, offset: int, messages_before: int, topic: str, what: str):
        self.offset, self.messages_before, self.topic, self.what = (
            offset, messages_before, topic, what)
        where = f'at byte offset {offset}, after {messages_before} good messages'
        super().__init__(where + (f' (the last on {topic})' if topic else '') + f': {what}')


@dataclass
class CheckResult:
    messages: int = 0
    chunks: int = 0
    crc_checked_chunks: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)


class _Walk:
    def __init__(self, f, size: int):
        self.f, self.size = f, size
        self.topics: dict[int, str] = {}
        self.result = CheckResult()
        self.last_topic = ''

    def fail(self, offset: int, what: str, topic: str | None = None) -> McapDamage:
        return McapDamage(offset, self.result.messages,
                          self.last_topic if topic is None else topic, what)

    def record(self, buf, pos: int, end: int, base: int, where: str) -> tuple[int, int, int]:
        """(opcode, body start, body end) of the record at ``pos`` of ``buf`` (``base`` is its
        file offset); checked against ``end``."""
        if pos + 9 > end:
            raise self.fail(base + pos, f'{end - pos} stray bytes at the end of {where}')
        op = buf[pos]
        (length,) = struct.unpack_from('<Q', buf, pos + 1)
        if op not in KNOWN_OPS and op < 0x80:
            raise self.fail(base + pos, f'invalid record opcode 0x{op:02x} in {where}')
        if length > end - pos - 9:
            raise self.fail(base + pos, f'record 0x{op:02x} claims {length} bytes, only '
                                        f'{end - pos - 9} left in {where}')
        return op, pos + 9, pos + 9 + length

    def channel(self, buf, body: int, body_end: int, base: int) -> None:
        try:
            cid, _schema, tlen = struct.unpack_from('<HHI', buf, body)
            if body + 8 + tlen > body_end:
                raise ValueError
            topic = bytes(buf[body + 8:body + 8 + tlen]).decode('utf-8')
        except (struct.error, ValueError, UnicodeDecodeError):
            raise self.fail(base + body - 9, 'unreadable channel record') from None
        self.topics[cid] = topic

    def message(self, buf, body: int, body_end: int, base: int,
                span: tuple[int, int] | None) -> tuple[int, int]:
        if body_end - body < 22:
            raise self.fail(base + body - 9, f'message record of {body_end - body} bytes '
                                             f'(at least 22)')
        cid, _seq, log_time = struct.unpack_from('<HIQ', buf, body)
        if cid not in self.topics:
            raise self.fail(base + body - 9, f'message of undeclared channel {cid}', '')
        topic = self.topics[cid]
        if span is not None and not span[0] <= log_time <= span[1]:
            raise self.fail(base + body - 9, f'message time {log_time} ns outside its chunk\'s '
                                             f'{span[0]}..{span[1]} ns', topic)
        self.last_topic = topic
        self.result.messages += 1
        self.result.per_topic[topic] = self.result.per_topic.get(topic, 0) + 1
        return cid, log_time

    def chunk(self, buf: bytes, pos: int) -> dict[int, tuple[int, int]]:
        """Check one chunk (``buf`` its body, ``pos`` its file offset); its messages as
        {offset in chunk: (channel, log time)}."""
        body, body_end = 0, len(buf)
        if body_end - body < CHUNK_FIXED + 4 + 8:
            raise self.fail(pos, 'chunk record too short')
        t0, t1, usize, crc = struct.unpack_from('<QQQI', buf, body)
        p = body + CHUNK_FIXED
        (clen,) = struct.unpack_from('<I', buf, p)
        if p + 4 + clen + 8 > body_end:
            raise self.fail(pos, 'chunk compression name runs past the record')
        compression = bytes(buf[p + 4:p + 4 + clen]).decode('ascii', 'replace')
        p += 4 + clen
        (rlen,) = struct.unpack_from('<Q', buf, p)
        p += 8
        if p + rlen != body_end:
            raise self.fail(pos, f'chunk records of {rlen} bytes do not fill the record '
                                 f'({body_end - p} bytes)')
        if t0 > t1:
            raise self.fail(pos, f'chunk time range {t0}..{t1} ns is reversed')
        data = buf[p:body_end]
        if compression == '':
            raw = data
        else:
            from rosbags.rosbag2.storage_mcap import DECOMPRESSORS
            if compression not in DECOMPRESSORS:
                raise self.fail(pos, f'unknown chunk compression {compression!r}')
            try:
                raw = DECOMPRESSORS[compression](data, usize)
            except Exception as exc:   # noqa: BLE001 - each decompressor raises its own errors
                raise self.fail(pos, f'chunk does not decompress ({compression}): '
                                     f'{exc}') from None
        if len(raw) != usize:
            raise self.fail(pos, f'chunk holds {len(raw)} bytes, its header says {usize}')
        self.result.chunks += 1
        crc_ok = not crc or zlib.crc32(raw) == crc
        self.result.crc_checked_chunks += int(bool(crc))
        before, last_topic = self.result.messages, self.last_topic
        base = pos + 9 + p if compression == '' else pos   # file offsets of uncompressed chunks
        found: dict[int, tuple[int, int]] = {}
        q = 0
        while q < usize:
            op, b, e = self.record(raw, q, usize, base, 'a chunk')
            if op == OP_MESSAGE:
                found[q] = self.message(raw, b, e, base, (t0, t1))
            elif op == OP_CHANNEL:
                self.channel(raw, b, e, base)
            elif op not in (OP_SCHEMA,) and op < 0x80:
                raise self.fail(base + q, f'record 0x{op:02x} may not be inside a chunk')
            q = e
        if not crc_ok:       # the records parse, so the damage is inside a message's bytes
            self.result.messages, self.last_topic = before, last_topic
            raise self.fail(pos, f'chunk CRC mismatch: bytes changed after writing somewhere in '
                                 f'the chunk of messages {before + 1}..{before + len(found)} '
                                 f'(bytes {pos}..{pos + 9 + body_end})')
        return found

    def message_index(self, buf: bytes, found: dict, pos: int, seen: dict[int, int]) -> None:
        body, body_end = 0, len(buf)
        if body_end - body < 6:
            raise self.fail(pos, 'message index record too short')
        cid, nbytes = struct.unpack_from('<HI', buf, body)
        if nbytes % 16 or body + 6 + nbytes != body_end:
            raise self.fail(pos, 'message index entries do not fill the record')
        topic = self.topics.get(cid, '')
        for k in range(nbytes // 16):
            ts, off = struct.unpack_from('<QQ', buf, body + 6 + 16 * k)
            if found.get(off) != (cid, ts):
                raise self.fail(pos, f'the chunk before lost the message the index lists at '
                                     f'chunk offset {off} ({ts} ns)', topic)
        seen[cid] = seen.get(cid, 0) + nbytes // 16

    def read(self, pos: int, n: int) -> bytes:
        self.f.seek(pos)
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail(pos, f'file ends {n - len(data)} bytes early')
        return data

    def run(self) -> CheckResult:
        size = self.size
        if size < 2 * len(MAGIC) or self.read(0, 8) != MAGIC:
            raise self.fail(0, 'no MCAP magic at the start')
        if self.read(size - 8, 8) != MAGIC:
            raise self.fail(size - 8, 'no MCAP magic at the end (truncated?)')
        pos, end = 8, size - 8
        found: dict | None = None
        seen: dict[int, int] = {}
        chunk_pos = 0
        in_data = True
        while True:
            head = self.read(pos, min(9, max(0, end - pos)))
            op, _, body_end = self.record(head, 0, end - pos, pos, 'the file')
            body_end += pos
            if op == OP_FOOTER:
                if body_end != end:
                    raise self.fail(body_end, 'bytes after the footer')
                break
            if in_data:
                if found is not None and op != OP_MESSAGE_INDEX:
                    self._chunk_done(found, seen, chunk_pos)
                    found = None
                if op in (OP_CHUNK, OP_MESSAGE_INDEX, OP_MESSAGE, OP_CHANNEL):
                    body = self.read(pos + 9, body_end - pos - 9)
                if op == OP_CHUNK:
                    found, seen, chunk_pos = self.chunk(body, pos), {}, pos
                elif op == OP_MESSAGE_INDEX:
                    if found is None:
                        raise self.fail(pos, 'message index without a chunk before it')
                    self.message_index(body, found, pos, seen)
                elif op == OP_MESSAGE:
                    self.message(body, 0, len(body), pos + 9, None)
                elif op == OP_CHANNEL:
                    self.channel(body, 0, len(body), pos + 9)
                elif op == OP_DATA_END:
                    in_data = False
            pos = body_end
        if in_data:
            raise self.fail(pos, 'no DataEnd record: the data section never ended')
        return self.result

    def _chunk_done(self, found: dict, seen: dict[int, int], pos: int) -> None:
        per_channel: dict[int, int] = {}
        for cid, _ in found.values():
            per_channel[cid] = per_channel.get(cid, 0) + 1
        if seen and per_channel != seen:
            raise self.fail(pos, f'chunk holds {sum(per_channel.values())} messages, its index '
                                 f'lists {sum(seen.values())}')


def check(path: str | pathlib.Path) -> CheckResult:
    """Check one .mcap file; raises McapDamage at the first problem (OSError if unreadable)."""
    with open(path, 'rb') as f:
        size = f.seek(0, 2)
        return _Walk(f, size).run()


def write_chunk_crcs(path: str | pathlib.Path) -> int:
    """Fill in the CRC32 of every uncompressed chunk whose CRC was left 0 (rosbags' writer does
    not compute them); returns how many were written. Sizes and indexes do not change; the file
    is read one record at a time."""
    n = 0
    with open(path, 'r+b') as f:
        end = f.seek(0, 2) - 8
        pos = 8
        while pos + 9 <= end:
            f.seek(pos)
            head = f.read(9)
            op = head[0]
            (length,) = struct.unpack_from('<Q', head, 1)
            if op in (OP_DATA_END, OP_FOOTER) or pos + 9 + length > end:
                break
            if op == OP_CHUNK and length >= CHUNK_FIXED + 12:
                fixed = f.read(CHUNK_FIXED + 4)
                usize, crc = struct.unpack_from('<QI', fixed, 16)
                (clen,) = struct.unpack_from('<I', fixed, CHUNK_FIXED)
                compression = f.read(clen)
                (rlen,) = struct.unpack('<Q', f.read(8))
                if (crc == 0 and compression == b'' and rlen == usize
                        and CHUNK_FIXED + 4 + clen + 8 + rlen == length):
                    value = zlib.crc32(f.read(rlen))
                    f.seek(pos + CRC_AT)
                    f.write(struct.pack('<I', value))
                    n += 1
            pos += 9 + length
    return n
