"""Plate controller and gate reader emulators on real pseudo-terminals.

Each emulator owns a pty pair (``os.openpty``, slave in raw mode) and a symlink at a chosen path
pointing at the slave (``/dev/pts/N``), so a driver opens the symlink exactly like a udev-named
USB-serial device. Emulators are driven by ``poll(now)`` with an injectable clock (seconds, any
monotonic origin), so tests can run faster than real time.

Writes never block: when nobody reads and the pty buffer is full, the emulator discards what is
queued and drops the rest, like a UART with no listener.
"""
from __future__ import annotations

import errno
import math
import os
import pathlib
import random
import termios
import time
import tty
from typing import Callable

import numpy as np

from store_common import plate_protocol as pp

Clock = Callable[[], float]


class PtyLink:
    """A pseudo-terminal whose slave is reachable through a symlink; non-blocking master writes."""

    def __init__(self, link_path: str | pathlib.Path):
        self.link_path = pathlib.Path(link_path)
        self.master_fd = -1
        self.slave_fd = -1
        self.slave_name = ''
        self.bytes_written = 0
        self.bytes_dropped = 0

    @property
    def is_open(self) -> bool:
        return self.master_fd >= 0

    def open(self) -> str:
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd, termios.TCSANOW)
        attrs = termios.tcgetattr(self.slave_fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.slave_fd, termios.TCSANOW, attrs)
        os.set_blocking(self.master_fd, False)
        self.slave_name = os.ttyname(self.slave_fd)
        self.link_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link_path.with_name(self.link_path.name + '.tmp')
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(self.slave_name, tmp)
        os.replace(tmp, self.link_path)   # atomic: a reader never sees a missing link
        return self.slave_name

    def write(self, data: bytes) -> int:
        """Write without blocking. Returns the bytes accepted; the rest is dropped."""
        if not self.is_open or not data:
            self.bytes_dropped += len(data) if data else 0
            return 0
        sent = self._try_write(data)
        if sent < len(data):
            # buffer full: nobody is reading. Discard the stale queue, like a UART whose bytes
            # simply fall on the floor, and try once more with the fresh data.
            try:
                termios.tcflush(self.slave_fd, termios.TCIFLUSH)
            except termios.error:
                pass
            sent += self._try_write(data[sent:])
        self.bytes_written += sent
        self.bytes_dropped += len(data) - sent
        return sent

    def _try_write(self, data: bytes) -> int:
        sent = 0
        while sent < len(data):
            try:
                n = os.write(self.master_fd, data[sent:])
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EIO):
                    break
                raise
            if n <= 0:
                break
            sent += n
        return sent

    def close(self, remove_link: bool = True) -> None:
        for fd in (self.master_fd, self.slave_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master_fd = self.slave_fd = -1
        if remove_link:
            try:
                if self.link_path.is_symlink():
                    self.link_path.unlink()
            except OSError:
                pass


class PlateControllerEmulator:
    """One plate controller: samples every channel at ``rate_hz``, flushes rows every ~100 ms.

    ``source(t_s) -> (counts (N, n_channels) int, not_ready (N, n_channels) bool)`` gives the
    readings at scenario times ``t_s``; scenario time = clock time - ``scenario_start``.
    """

    def __init__(self, controller_id: str, n_channels: int, rate_hz: float,
                 source: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                 link_path: str | pathlib.Path, *, scenario_start: float = 0.0,
                 clock: Clock = time.monotonic, seed: int = 0, firmware: str = 'sim-1.0',
                 flush_period_s: float = 0.1, info_period_s: float = 10.0,
                 garbage_line_rate: float = 0.0, disconnect_after_s: float | None = None,
                 disconnect_for_s: float = 2.0):
        self.controller_id = controller_id
        self.n_channels = n_channels
        self.rate_hz = float(rate_hz)
        self.source = source
        self.link = PtyLink(link_path)
        self.scenario_start = scenario_start
        self.clock = clock
        self.rng = random.Random(f'plate_controller/{controller_id}/{seed}')
        self.firmware = firmware
        self.flush_period_s = flush_period_s
        self.info_period_s = info_period_s
        self.garbage_line_rate = garbage_line_rate
        self.disconnect_after_s = disconnect_after_s
        self.disconnect_for_s = disconnect_for_s
        self.tick0_ms = self.rng.randrange(0, 1 << 32)
        self.seq0 = self.rng.randrange(0, 1 << 32)
        self.t0 = None            # clock time of sample 0
        self.next_sample = 0      # index of the next sample to take
        self.next_flush = 0.0
        self.next_info = 0.0
        self.reconnect_at: float | None = None
        self.rows_sent = 0
        self.garbage_sent = 0
        self.lines: list[bytes] = []   # the lines of the last burst (for tests and logs)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        self.t0 = now
        self.next_flush = now + self.flush_period_s
        self.next_info = now
        self.link.open()
        return self.link.slave_name

    def close(self) -> None:
        self.link.close()

    # --- time ------------------------------------------------------------------------------------
    def tick_ms(self, k: int) -> int:
        return (self.tick0_ms + int(math.floor(k * 1000.0 / self.rate_hz))) & 0xFFFFFFFF

    def seq(self, k: int) -> int:
        return (self.seq0 + k) & 0xFFFFFFFF

    def poll(self, now: float | None = None) -> int:
        """Take the samples due by ``now``; on a flush instant write them. Returns bytes sent."""
        now = self.clock() if now is None else now
        if self.t0 is None:
            self.start(now)
        self._faults(now)
        if now < self.next_flush:
            return 0
        self.next_flush = now + self.flush_period_s * self.rng.uniform(0.9, 1.1)
        last = int(math.floor((now - self.t0) * self.rate_hz))
        ks = np.arange(self.next_sample, last + 1)
        self.next_sample = last + 1
        lines: list[bytes] = []
        if now >= self.next_info:
            lines.append(pp.encode_info(self.controller_id, self.firmware, self.n_channels,
                                        self.rate_hz))
            self.next_info = now + self.info_period_s
        if ks.size:
            t_scen = self.t0 + ks / self.rate_hz - self.scenario_start
            counts, not_ready = self.source(t_scen)
            for i, k in enumerate(ks.tolist()):
                row = [None if not_ready[i, c] else int(counts[i, c])
                       for c in range(self.n_channels)]
                lines.append(self._maybe_garbage(pp.encode_row(self.seq(k), self.tick_ms(k), row)))
                for c in range(self.n_channels):
                    if not_ready[i, c] and self.rng.random() < 0.5:
                        lines.append(pp.encode_error(self.seq(k), self.tick_ms(k), c, 'NR'))
        self.lines = lines
        if not self.link.is_open:
            return 0
        self.rows_sent += int(ks.size)
        return self.link.write(b''.join(lines))

    def _faults(self, now: float) -> None:
        if (self.disconnect_after_s is not None and self.link.is_open
                and now - self.t0 >= self.disconnect_after_s):
            self.link.close(remove_link=True)
            self.reconnect_at = now + self.disconnect_for_s
            self.disconnect_after_s = None
        if self.reconnect_at is not None and now >= self.reconnect_at:
            self.reconnect_at = None
            self.link.open()
            self.next_info = now

    def _maybe_garbage(self, line: bytes) -> bytes:
        if self.garbage_line_rate <= 0 or self.rng.random() >= self.garbage_line_rate:
            return line
        self.garbage_sent += 1
        return garbage_line(self.rng, line)


def garbage_line(rng: random.Random, line: bytes) -> bytes:
    """A corrupted version of ``line`` (bad checksum or truncated) or random boot noise followed
    by ``line`` intact. Every garbage line ends with CRLF and fails ``parse_line``."""
    kind = rng.randrange(3)
    body = line.rstrip(b'\r\n')
    if kind == 0:       # random bytes (boot noise, line noise): never '$', CR or LF
        n = rng.randrange(1, 60)
        noise = bytes(rng.choice([b for b in range(256) if b not in (0x24, 0x0A, 0x0D)])
                      for _ in range(n))
        return noise + b'\r\n' + line
    if kind == 1:       # one character of the body changed: the checksum no longer matches
        star = body.rfind(b'*')
        i = rng.randrange(1, star)
        old = body[i]
        new = old
        while new == old or new in (0x24, 0x2A, 0x0A, 0x0D):
            new = rng.randrange(0x20, 0x7F)
        return body[:i] + bytes([new]) + body[i + 1:] + b'\r\n'
    cut = rng.randrange(1, body.rfind(b'*'))   # truncated before its checksum
    return body[:cut] + b'\r\n'


class GateReaderEmulator:
    """A gate's QR reader: sends ``WOS1:<account_id>\\r`` at each scan's scenario time."""

    def __init__(self, gate_id: str, scans: list[tuple[float, str]],
                 link_path: str | pathlib.Path, *, scenario_start: float = 0.0,
                 clock: Clock = time.monotonic):
        self.gate_id = gate_id
        self.scans = sorted(scans)
        self.link = PtyLink(link_path)
        self.scenario_start = scenario_start
        self.clock = clock
        self.next_scan = 0
        self.sent: list[tuple[float, str]] = []

    def start(self, now: float | None = None) -> str:
        self.link.open()
        return self.link.slave_name

    def close(self) -> None:
        self.link.close()

    def poll(self, now: float | None = None) -> int:
        now = self.clock() if now is None else now
        if not self.link.is_open:
            self.start(now)
        sent = 0
        while (self.next_scan < len(self.scans)
               and self.scans[self.next_scan][0] <= now - self.scenario_start):
            t_s, account = self.scans[self.next_scan]
            self.next_scan += 1
            sent += self.link.write(f'WOS1:{account}\r'.encode('ascii'))
            self.sent.append((t_s, account))
        return sent


def gate_scans(scenario, store) -> dict[str, list[tuple[float, str]]]:
    """{gate_id: [(t_s, account_id)]}: enter scans at the first entrance gate, exits at the first
    exit gate; every gate of the store gets a (possibly empty) list."""
    out: dict[str, list[tuple[float, str]]] = {g.id: [] for g in store.gates}
    entrance = next(g.id for g in store.gates if g.kind == 'entrance')
    exit_gate = next(g.id for g in store.gates if g.kind == 'exit')
    for s in scenario.shoppers:
        out[entrance].append((s.enter_s, s.id))
        out[exit_gate].append((s.exit_s, s.id))
    return out
