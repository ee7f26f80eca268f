"""A self-healing line-oriented serial link (no rclpy).

:class:`SerialLink` owns one serial port (often a udev symlink, or a symlink to a ``/dev/pts/N``
pseudo-terminal made by the simulator). Call :meth:`SerialLink.poll` periodically: it opens the
port when due, reads whatever bytes are available without blocking, splits them into lines and
returns the complete ones. It never raises on I/O problems; instead it

* detects a device that disappears (read error, EOF, the port path removed or re-pointed),
* optionally detects a device that went silent (no bytes for ``stale_timeout_s``),
* closes the port and reopens it with exponential backoff (0.5 s doubling to 5 s),
* records what happened in :attr:`SerialLink.state` and in events drained by
  :meth:`SerialLink.take_events`, so a node can log and publish diagnostics.

Lines end with CR, LF or CRLF; empty lines are dropped. A line longer than ``max_line_bytes`` is
discarded (up to its next terminator) and counted in ``state.too_long_lines``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 5.0
READ_CHUNK_BYTES = 4096
MAX_READ_PER_POLL_BYTES = 256 * 1024


def open_pyserial(port: str, baud: int) -> Any:
    """Default opener: a non-blocking pyserial port."""
    import serial  # imported lazily so tests with a fake opener do not need it
    return serial.Serial(port, baud, timeout=0)


@dataclass
class LinkState:
    """What a node reports on diagnostics. Times are in the link's clock [s]."""

    port: str
    connected: bool = False
    opens: int = 0                 # successful opens, the first one included
    reconnects: int = 0            # successful opens after the first one
    disconnects: int = 0           # times an open port was lost (error, EOF, gone, stale)
    open_failures: int = 0         # failed open attempts
    stale: bool = False            # connected but no bytes for stale_timeout_s
    last_error: str = ''           # text of the last problem, '' if none yet
    last_byte_s: float | None = None   # clock time the last byte arrived, None if never
    connected_since_s: float | None = None
    next_attempt_s: float = 0.0    # clock time of the next open attempt while disconnected
    bytes_received: int = 0
    lines_received: int = 0
    too_long_lines: int = 0        # lines discarded for exceeding max_line_bytes


@dataclass(frozen=True)
class LinkEvent:
    """Something a node should log. ``kind`` is one of the KIND_* strings."""

    kind: str
    detail: str

    CONNECTED = 'connected'
    DISCONNECTED = 'disconnected'
    OPEN_FAILED = 'open_failed'
    STALE = 'stale'
    ACTIVE = 'active'          # bytes again after a stale period (staleness not reconnecting)
    TOO_LONG = 'too_long'


class LineSplitter:
    """Splits a byte stream on CR, LF or CRLF, discarding over-long lines."""

    def __init__(self, max_line_bytes: int = 1024):
        self.max_line_bytes = int(max_line_bytes)
        self._buf = bytearray()
        self._discarding = False   # inside an over-long line: drop bytes up to the next terminator
        self.too_long = 0

    def reset(self) -> None:
        self._buf.clear()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        start = 0
        n = len(data)
        while start < n:
            # find the next terminator (CR or LF)
            cr = data.find(b'\r', start)
            lf = data.find(b'\n', start)
            ends = [i for i in (cr, lf) if i >= 0]
            end = min(ends) if ends else -1
            chunk = data[start:] if end < 0 else data[start:end]
            if self._discarding:
                if end >= 0:
                    self._discarding = False
            else:
                self._buf.extend(chunk)
                if len(self._buf) > self.max_line_bytes:
                    self._buf.clear()
                    self.too_long += 1
                    self._discarding = end < 0
                elif end >= 0:
                    if self._buf:
                        out.append(bytes(self._buf))
                    self._buf.clear()
            if end < 0:
                break
            start = end + 1
        return out


class SerialLink:
    """One serial port, read line by line, reopened whenever it fails.

    ``stale_timeout_s`` > 0 marks the link stale after that long without a byte; with
    ``reconnect_on_stale`` the port is then closed and reopened (a plate controller streams
    continuously, so silence means a hung device); without it staleness is only reported (a QR
    reader is silent for long periods). ``clock`` returns seconds (monotonic); ``opener(port,
    baud)`` returns an object with ``read(n)`` and ``close()`` (pyserial by default).
    """

    def __init__(self, port: str, baud: int, *, stale_timeout_s: float = 0.0,
                 reconnect_on_stale: bool = True, max_line_bytes: int = 1024,
                 backoff_initial_s: float = BACKOFF_INITIAL_S,
                 backoff_max_s: float = BACKOFF_MAX_S,
                 clock: Callable[[], float] = time.monotonic,
                 opener: Callable[[str, int], Any] = open_pyserial):
        self.port = port
        self.baud = int(baud)
        self.stale_timeout_s = float(stale_timeout_s)
        self.reconnect_on_stale = bool(reconnect_on_stale)
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self._clock = clock
        self._opener = opener
        self._dev: Any = None
        self._opened_path = ''      # resolved path at open time (to notice a re-pointed symlink)
        self._backoff_s = self.backoff_initial_s
        self._splitter = LineSplitter(max_line_bytes)
        self._events: list[LinkEvent] = []
        self._last_fail_text = ''
        self.state = LinkState(port=port)

    # --- public API ---------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._dev is not None

    def take_events(self) -> list[LinkEvent]:
        """Return and clear the events recorded since the last call."""
        out, self._events = self._events, []
        return out

    def poll(self) -> list[bytes]:
        """Open if due, read what is available, return complete lines. Never raises on I/O."""
        now = self._clock()
        if self._dev is None:
            if now < self.state.next_attempt_s:
                return []
            if not self._open(now):
                return []
        lines = self._read(now)
        if self._dev is not None:
            self._check_path(now)
        if self._dev is not None:
            self._check_stale(now)
        return lines

    def close(self) -> None:
        """Close the port (no reconnect is scheduled until the next poll)."""
        if self._dev is not None:
            self._close_dev()
            self.state.connected = False

    # --- internals ----------------------------------------------------------------------------
    def _event(self, kind: str, detail: str) -> None:
        self._events.append(LinkEvent(kind, detail))

    def _open(self, now: float) -> bool:
        try:
            if not os.path.exists(self.port):
                raise FileNotFoundError(f'{self.port} does not exist')
            resolved = os.path.realpath(self.port)
            dev = self._opener(self.port, self.baud)
        except Exception as exc:  # noqa: BLE001 - any open failure is a device problem
            text = f'open {self.port} failed: {exc}'
            self.state.open_failures += 1
            self.state.last_error = text
            if text != self._last_fail_text:   # log a failure streak once, not every retry
                self._event(LinkEvent.OPEN_FAILED, f'{text}; retrying every <= '
                                                   f'{self.backoff_max_s:g} s')
                self._last_fail_text = text
            self._schedule_retry(now)
            return False
        self._dev = dev
        self._opened_path = resolved
        self._splitter.reset()
        self._last_fail_text = ''
        st = self.state
        st.opens += 1
        if st.opens > 1:
            st.reconnects += 1
        st.connected = True
        st.stale = False
        st.connected_since_s = now
        self._event(LinkEvent.CONNECTED,
                    f'{"reconnected" if st.opens > 1 else "connected"} to {self.port}'
                    + (f' ({resolved})' if resolved != self.port else '')
                    + f' at {self.baud} baud')
        return True

    def _schedule_retry(self, now: float) -> None:
        self.state.next_attempt_s = now + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2.0, self.backoff_max_s)

    def _close_dev(self) -> None:
        dev, self._dev = self._dev, None
        try:
            dev.close()
        except Exception:  # noqa: BLE001 - closing a dead device may fail; nothing to do
            pass

    def _lost(self, now: float, why: str) -> None:
        self._close_dev()
        st = self.state
        st.connected = False
        st.stale = False
        st.disconnects += 1
        st.last_error = why
        self._splitter.reset()
        self._event(LinkEvent.DISCONNECTED, f'{self.port}: {why}')
        self._schedule_retry(now)

    def _read(self, now: float) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while total < MAX_READ_PER_POLL_BYTES:
            try:
                data = self._dev.read(READ_CHUNK_BYTES)
            except Exception as exc:  # noqa: BLE001 - SerialException, OSError, anything
                lines.extend(self._finish_lines())
                self._lost(now, f'read failed: {exc}')
                return lines
            if not data:
                break
            total += len(data)
            lines.extend(self._splitter.feed(data))
            if len(data) < READ_CHUNK_BYTES:
                break
        if total:
            st = self.state
            st.bytes_received += total
            st.last_byte_s = now
            self._backoff_s = self.backoff_initial_s   # the device works: reset the backoff
            if st.stale:
                st.stale = False
                self._event(LinkEvent.ACTIVE, f'{self.port}: data again')
        lines = lines + self._finish_lines()
        self.state.lines_received += len(lines)
        return lines

    def _finish_lines(self) -> list[bytes]:
        """Account for over-long lines found by the splitter."""
        new = self._splitter.too_long - self.state.too_long_lines
        if new > 0:
            self.state.too_long_lines = self._splitter.too_long
            self._event(LinkEvent.TOO_LONG,
                        f'{self.port}: discarded {new} line(s) longer than '
                        f'{self._splitter.max_line_bytes} bytes')
        return []

    def _check_path(self, now: float) -> None:
        if not os.path.exists(self.port):
            self._lost(now, 'port path is gone')
            return
        resolved = os.path.realpath(self.port)
        if resolved != self._opened_path:
            self._lost(now, f'port now points to {resolved} (was {self._opened_path})')

    def _check_stale(self, now: float) -> None:
        if self.stale_timeout_s <= 0:
            return
        st = self.state
        since = st.last_byte_s if (st.last_byte_s is not None and st.connected_since_s is not None
                                   and st.last_byte_s >= st.connected_since_s) \
            else st.connected_since_s
        if since is None or now - since < self.stale_timeout_s:
            return
        why = f'no data for {now - since:.1f} s (stale timeout {self.stale_timeout_s:g} s)'
        if self.reconnect_on_stale:
            self._lost(now, why)
        elif not st.stale:
            st.stale = True
            st.last_error = why
            self._event(LinkEvent.STALE, f'{self.port}: {why}')
