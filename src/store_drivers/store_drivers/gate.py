"""Gate QR-reader scans: parsing and double-read suppression (no rclpy).

The shopper app shows a code reading ``WOS1:<account_id>``, ``account_id`` matching
``[A-Za-z0-9_-]{1,64}``. Anything else is rejected with a reason. Scanners double-read a code
held in front of them, so a repeat of the same code within ``dedupe_s`` of its previous read is
suppressed (the window restarts with every read, so a phone held still yields one scan).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = 'WOS1:'
ACCOUNT_RE = re.compile(r'[A-Za-z0-9_-]{1,64}')
MAX_SCAN_CHARS = 256

KIND_BY_GATE_KIND = {'entrance': 1, 'exit': 2}   # GateEvent.KIND_ENTER / KIND_EXIT


class ScanRejected(ValueError):
    """A scanned text that is not a store code. ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        super().__init__(f'{reason}: {detail}')


def parse_scan(text: bytes | str) -> str:
    """Return the account id of a scanned ``WOS1:<account_id>``; raise ScanRejected otherwise.

    Surrounding whitespace (and the line ending) is ignored.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_SCAN_CHARS:
            raise ScanRejected('too_long', f'{len(text)} bytes')
        try:
            text = text.decode('ascii')
        except UnicodeDecodeError:
            raise ScanRejected('not_ascii', repr(text[:40])) from None
    if len(text) > MAX_SCAN_CHARS:
        raise ScanRejected('too_long', f'{len(text)} characters')
    text = text.strip()
    if not text.isascii():
        raise ScanRejected('not_ascii', repr(text[:40]))
    if not text.startswith(PREFIX):
        raise ScanRejected('wrong_prefix', f'{text[:40]!r} does not start with {PREFIX!r}')
    account_id = text[len(PREFIX):]
    if not ACCOUNT_RE.fullmatch(account_id):
        raise ScanRejected('bad_account_id',
                           f'{account_id[:70]!r} does not match {ACCOUNT_RE.pattern}')
    return account_id


class ScanDeduper:
    """Suppress a repeat of the same code within ``dedupe_s`` of its previous read."""

    def __init__(self, dedupe_s: float):
        self.dedupe_ns = int(dedupe_s * 1e9)
        self._last_seen_ns: dict[str, int] = {}
        self.suppressed = 0

    def accept(self, code: str, stamp_ns: int) -> bool:
        last = self._last_seen_ns.get(code)
        self._last_seen_ns[code] = stamp_ns
        if last is not None and 0 <= stamp_ns - last < self.dedupe_ns:
            self.suppressed += 1
            return False
        # forget codes whose window has passed, so the table stays small
        if len(self._last_seen_ns) > 256:
            self._last_seen_ns = {c: t for c, t in self._last_seen_ns.items()
                                  if stamp_ns - t < self.dedupe_ns}
            self._last_seen_ns[code] = stamp_ns
        return True


@dataclass(frozen=True)
class Scan:
    gate_id: str
    account_id: str
    stamp_ns: int

    @property
    def event_id(self) -> str:
        return f'{self.gate_id}@{self.stamp_ns}'


class GateDecoder:
    """Lines from one gate reader to accepted scans, counting rejections and duplicates.

    Stamps of accepted scans are strictly increasing, so event ids stay unique even when two
    scans arrive in one poll.
    """

    def __init__(self, gate_id: str, dedupe_s: float):
        self.gate_id = gate_id
        self.deduper = ScanDeduper(dedupe_s)
        self.accepted = 0
        self.rejected: dict[str, int] = {}
        self._last_stamp_ns: int | None = None

    def feed(self, line: bytes | str, receive_ns: int) -> tuple[Scan | None, str, str]:
        """Returns ``(scan, '', '')`` when accepted, else ``(None, reason, text)``.

        ``reason`` is ``'duplicate'`` for a suppressed double read, otherwise the rejection
        reason; ``text`` is a log line naming the gate and the scanned text.
        """
        try:
            account_id = parse_scan(line)
        except ScanRejected as exc:
            self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
            return None, exc.reason, f'gate {self.gate_id}: rejected scan {line[:80]!r}: {exc}'
        stamp_ns = int(receive_ns)
        if self._last_stamp_ns is not None and stamp_ns <= self._last_stamp_ns:
            stamp_ns = self._last_stamp_ns + 1
        if not self.deduper.accept(account_id, stamp_ns):
            return None, 'duplicate', (f'gate {self.gate_id}: duplicate read of {account_id} '
                                       'suppressed')
        self._last_stamp_ns = stamp_ns
        self.accepted += 1
        return Scan(self.gate_id, account_id, stamp_ns), '', ''
