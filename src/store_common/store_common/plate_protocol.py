"""Codec of the plate controller line protocol (see docs/ARCHITECTURE.md).

The simulator encodes with it; the load-cell driver parses with it; so the two can never drift.

    $PCI,<controller_id>,<firmware>,<n_channels>,<rate_hz>*HH   info
    $PCD,<seq>,<tick_ms>,<c0>,...,<c(n-1)>*HH                   one sample row (ci int or NR)
    $PCE,<seq>,<tick_ms>,<channel>,<code>*HH                    channel error
"""
from __future__ import annotations

import math
from dataclasses import dataclass

ADC_MIN, ADC_MAX = -(1 << 23), (1 << 23) - 1
NOT_READY = None  # a channel value of None in a row means "NR": no conversion this sample
# Channels of one controller. Real gondola boards carry up to 72 (8 shelves x 9 plates); 128
# leaves room and still fits a worst-case row (1183 bytes, see max_row_bytes) in one line.
MAX_CHANNELS = 128
MAX_LINE_BYTES = 2048     # longest line accepted; a worst-case row of MAX_CHANNELS must fit
BITS_PER_BYTE = 10        # 8N1 framing on the serial line: start bit, 8 data bits, stop bit
LINE_USE_MAX = 0.9        # share of the line rows may use: info and error lines, clock drift
STANDARD_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 921600, 1000000,
                  1500000, 2000000, 3000000, 4000000)


class ProtocolError(ValueError):
    """A line that is not a valid protocol line. ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        super().__init__(f'{reason}: {detail}')


@dataclass(frozen=True)
class InfoLine:
    controller_id: str
    firmware: str
    n_channels: int
    rate_hz: float


@dataclass(frozen=True)
class RowLine:
    seq: int
    tick_ms: int
    counts: tuple[int | None, ...]  # None = not ready


@dataclass(frozen=True)
class ErrorLine:
    seq: int
    tick_ms: int
    channel: int
    code: str


def checksum(body: str) -> str:
    c = 0
    for b in body.encode('ascii'):
        c ^= b
    return f'{c:02X}'


def _frame(body: str) -> bytes:
    return f'${body}*{checksum(body)}\r\n'.encode('ascii')


def encode_info(controller_id: str, firmware: str, n_channels: int, rate_hz: float) -> bytes:
    return _frame(f'PCI,{controller_id},{firmware},{n_channels},{rate_hz:g}')


def encode_row(seq: int, tick_ms: int, counts) -> bytes:
    vals = ','.join('NR' if c is None else str(max(ADC_MIN, min(ADC_MAX, int(c))))
                    for c in counts)
    return _frame(f'PCD,{seq & 0xFFFFFFFF},{tick_ms & 0xFFFFFFFF},{vals}')


def encode_error(seq: int, tick_ms: int, channel: int, code: str) -> bytes:
    return _frame(f'PCE,{seq & 0xFFFFFFFF},{tick_ms & 0xFFFFFFFF},{channel},{code}')


def max_row_bytes(n_channels: int) -> int:
    """Bytes of the longest row a controller of ``n_channels`` can send (line ending included):
    sequence and tick at their widest, every channel at ADC_MIN."""
    return len(encode_row(0xFFFFFFFF, 0xFFFFFFFF, [ADC_MIN] * int(n_channels)))


def required_baud(n_channels: int, rate_hz: float) -> int:
    """Lowest baud rate that carries worst-case rows of ``n_channels`` at ``rate_hz`` while
    using at most LINE_USE_MAX of the line."""
    return math.ceil(max_row_bytes(n_channels) * rate_hz * BITS_PER_BYTE / LINE_USE_MAX)


def _uint32(text: str, what: str) -> int:
    if not text.isdigit():
        raise ProtocolError('bad_field', f'{what} {text!r} is not an unsigned integer')
    v = int(text)
    if v > 0xFFFFFFFF:
        raise ProtocolError('bad_field', f'{what} {v} exceeds uint32')
    return v


def parse_line(line: bytes | str, expect_channels: int | None = None):
    """Parse one line (with or without its line ending). Returns an InfoLine, RowLine or ErrorLine.

    Raises ProtocolError for anything else; never any other exception, whatever the bytes.
    """
    if isinstance(line, bytes):
        if len(line) > MAX_LINE_BYTES:
            raise ProtocolError('too_long', f'{len(line)} bytes')
        try:
            line = line.decode('ascii')
        except UnicodeDecodeError:
            raise ProtocolError('not_ascii', repr(line[:40])) from None
    line = line.strip('\r\n')
    if not line.startswith('$'):
        raise ProtocolError('no_start', repr(line[:40]))
    star = line.rfind('*')
    if star < 0 or len(line) - star != 3:
        raise ProtocolError('no_checksum', repr(line[:40]))
    body, cs = line[1:star], line[star + 1:].upper()
    if checksum(body) != cs:
        raise ProtocolError('bad_checksum', f'got {cs}, computed {checksum(body)}')
    fields = body.split(',')
    kind = fields[0]
    if kind == 'PCD':
        if len(fields) < 4:
            raise ProtocolError('short_row', f'{len(fields) - 3} channels')
        counts: list[int | None] = []
        for i, f in enumerate(fields[3:]):
            if f == 'NR':
                counts.append(None)
                continue
            try:
                v = int(f)
            except ValueError:
                raise ProtocolError('bad_field', f'channel {i} value {f!r}') from None
            if not ADC_MIN <= v <= ADC_MAX:
                raise ProtocolError('bad_field', f'channel {i} value {v} outside 24 bits')
            counts.append(v)
        if expect_channels is not None and len(counts) != expect_channels:
            raise ProtocolError('channel_count',
                                f'{len(counts)} channels, expected {expect_channels}')
        return RowLine(seq=_uint32(fields[1], 'seq'), tick_ms=_uint32(fields[2], 'tick_ms'),
                       counts=tuple(counts))
    if kind == 'PCI':
        if len(fields) != 5:
            raise ProtocolError('bad_info', f'{len(fields)} fields')
        try:
            n, rate = int(fields[3]), float(fields[4])
        except ValueError:
            raise ProtocolError('bad_info', repr(body)) from None
        return InfoLine(controller_id=fields[1], firmware=fields[2], n_channels=n, rate_hz=rate)
    if kind == 'PCE':
        if len(fields) != 5:
            raise ProtocolError('bad_error', f'{len(fields)} fields')
        return ErrorLine(seq=_uint32(fields[1], 'seq'), tick_ms=_uint32(fields[2], 'tick_ms'),
                         channel=_uint32(fields[3], 'channel'), code=fields[4])
    raise ProtocolError('unknown_kind', kind)
