"""Plate controller decoding, time mapping, calibration and tare (no rclpy).

* :class:`Calibration` - per-channel tare offset and scale of one controller, from the store
  description, with tare overrides on top.
* :class:`ClockSync` - maps the controller's uint32 millisecond tick to host time [ns].
* :class:`PlateDecoder` - turns received lines into :class:`Batch` es of samples.
* :class:`TareAverager` - averages a plate's counts for a while and yields a new tare offset.
* :class:`TareStore` - persists tare overrides in a YAML state file (atomic write).
"""
from __future__ import annotations

import collections
import contextlib
import datetime
import fcntl
import math
import os
import pathlib
import tempfile
from dataclasses import dataclass, field
from typing import Iterable

import yaml

from store_common import plate_protocol as pp
from store_common import strict_yaml
from store_interfaces.msg import RawPlateSample

STATUS_OK = RawPlateSample.STATUS_OK
STATUS_SATURATED = RawPlateSample.STATUS_SATURATED
STATUS_NOT_READY = RawPlateSample.STATUS_NOT_READY

U32 = 1 << 32
HALF_U32 = 1 << 31
NS_PER_MS = 1_000_000


# --- calibration -------------------------------------------------------------------------------
@dataclass
class ChannelCalibration:
    channel: int
    plate_id: str
    tare_offset_counts: int
    grams_per_count: float


class Calibration:
    """Calibration of one controller's channels. Unmapped channels have plate_id ''."""

    def __init__(self, controller_id: str, channels: Iterable[ChannelCalibration]):
        self.controller_id = controller_id
        self.by_channel: dict[int, ChannelCalibration] = {c.channel: c for c in channels}
        self.by_plate: dict[str, ChannelCalibration] = {c.plate_id: c
                                                        for c in self.by_channel.values()}

    @classmethod
    def from_store(cls, store, controller_id: str) -> 'Calibration':
        """Build from a ``store_common.description.Store`` (raises KeyError if unknown)."""
        store.controller(controller_id)
        return cls(controller_id, (
            ChannelCalibration(channel=p.load_cell.channel, plate_id=p.id,
                               tare_offset_counts=int(p.load_cell.tare_offset_counts),
                               grams_per_count=float(p.load_cell.grams_per_count))
            for p in store.plates_of_controller(controller_id)))

    @property
    def plate_ids(self) -> list[str]:
        return [c.plate_id for c in sorted(self.by_channel.values(), key=lambda c: c.channel)]

    def plate_of(self, channel: int) -> str:
        cal = self.by_channel.get(channel)
        return cal.plate_id if cal else ''

    def weight_grams(self, channel: int, counts: int) -> float:
        """(counts - tare) * grams_per_count; NaN for an unmapped channel."""
        cal = self.by_channel.get(channel)
        if cal is None:
            return math.nan
        return (counts - cal.tare_offset_counts) * cal.grams_per_count

    def set_tare(self, plate_id: str, tare_offset_counts: int) -> None:
        self.by_plate[plate_id].tare_offset_counts = int(tare_offset_counts)

    def apply_overrides(self, overrides: dict[str, int]) -> tuple[list[str], list[str]]:
        """Apply ``{plate_id: tare_offset_counts}``; returns (applied, ignored) plate ids.

        Plates of other controllers are ignored (a state file may be shared).
        """
        applied, ignored = [], []
        for plate_id, counts in sorted(overrides.items()):
            if plate_id in self.by_plate:
                self.set_tare(plate_id, counts)
                applied.append(plate_id)
            else:
                ignored.append(plate_id)
        return applied, ignored


# --- time mapping ------------------------------------------------------------------------------
class ClockSync:
    """Map the controller's uint32 ``tick_ms`` to host time with a minimum-latency offset.

    ``stamp = tick + min over a sliding window of (receive - tick)``: the sample delivered with the
    least delay bounds the offset, so rows that waited in the controller's ~100 ms flush buffer
    are stamped at their conversion time, not at their arrival. Ticks are unwrapped across the
    2^32 ms wrap. Returned stamps are strictly increasing (a new, lower offset minimum cannot move
    a stamp before the previous one) and never later than the receive time.

    Every row goes through :meth:`accept`, which refuses a tick that disagrees with the anchor
    (the last accepted row and the offset window), so that one row with a valid checksum and a
    wrong tick can neither set the minimum nor move the unwrapping:

    * ``dev`` is how far the row's offset lies from the window minimum: below 0 the tick is ahead
      of host time, which no delivery delay explains;
    * with the sample period and sequence numbers known, a row whose tick advanced by its
      sequence gap x period (within ``period_tol_ms`` + 1 %) is *consistent*: it is accepted
      even ahead of the window (up to ``host_jump_s``: the first rows' latency set the offset too
      high); an inconsistent row is accepted only within ``jitter_ms`` ahead, or its own tick
      step up to ``ahead_ms`` (a controller whose real rate differs from the description's);
    * without them, a row is accepted within ``ahead_ms`` ahead;
    * a row behind the window by more than ``late_ms`` (``reset_jump_ms``) is accepted when its
      tick went forward (a late delivery, or the host clock jumping: see :meth:`observe`),
      refused when it went back (a reset or a garbage tick); a tick that went back while the
      sequence went forward is refused too.

    Refused rows are collected as a candidate anchor; when they stay consistent with each other
    and with the host clock for ``reanchor_s`` (at least 3 rows) the controller's clock really
    did reset or jump: the window is re-anchored on them (``reanchors``). One accepted row drops
    the candidate.
    """

    def __init__(self, window_s: float = 10.0, reset_jump_ms: int = 1000,
                 host_jump_s: float = 5.0, *, period_ms: float | None = None,
                 ahead_ms: float = 100.0, jitter_ms: float = 30.0, reanchor_s: float = 1.0,
                 period_tol_ms: float = 20.0):
        self.window_ns = int(window_s * 1e9)
        self.late_ns = int(reset_jump_ms) * NS_PER_MS
        self.host_jump_ns = int(host_jump_s * 1e9)
        self.period_ms = period_ms
        self.ahead_ns = int(ahead_ms * NS_PER_MS)
        self.jitter_ns = int(jitter_ms * NS_PER_MS)
        self.reanchor_ns = int(reanchor_s * 1e9)
        self.period_tol_ms = float(period_tol_ms)
        self._last_receive_ns: int | None = None
        self._last_raw: int | None = None
        self._last_seq: int | None = None
        self._ext_ms = 0                       # unwrapped tick of the last raw tick
        self._window: collections.deque[tuple[int, int]] = collections.deque()  # (recv, off)
        self._last_stamp_ns: int | None = None
        self._cand: dict | None = None          # refused rows that agree with each other
        self.resets = 0         # re-anchors on a tick that went back (controller restart)
        self.reanchors = 0      # re-anchors of any kind (restart, jump, bad first offset)
        self.rejected = 0       # rows refused as outliers
        self.host_jumps = 0     # host clock jumps seen (window cleared)
        self.last_rejection = ''

    def reset(self) -> None:
        """Forget the anchor: the next row starts a new one."""
        self._last_raw = None
        self._last_seq = None
        self._window.clear()
        self._cand = None

    @staticmethod
    def _signed(delta: int) -> int:
        delta %= U32
        return delta - U32 if delta >= HALF_U32 else delta

    def unwrap(self, tick_ms: int) -> int:
        """Unwrapped tick [ms] of a raw uint32 tick, moving the unwrapping to it (no checks:
        :meth:`accept` is the checked way in)."""
        tick_ms &= 0xFFFFFFFF
        if self._last_raw is None:
            self._last_raw, self._ext_ms = tick_ms, tick_ms
            return tick_ms
        self._ext_ms += self._signed(tick_ms - self._last_raw)
        self._last_raw = tick_ms
        return self._ext_ms

    def _consistent(self, delta_ms: int, seq: int | None) -> bool | None:
        if not self.period_ms or seq is None or self._last_seq is None:
            return None
        dseq = (seq - self._last_seq) % U32
        if dseq >= HALF_U32:
            return False
        expected_ms = dseq * self.period_ms
        return abs(delta_ms - expected_ms) <= self.period_tol_ms + 0.01 * expected_ms

    def accept(self, tick_ms: int, receive_ns: int, seq: int | None = None) -> int | None:
        """Check one row; its unwrapped tick [ms] (observed) if accepted, None if refused."""
        tick_ms &= 0xFFFFFFFF
        receive_ns = int(receive_ns)
        if self._last_raw is None or (self._last_receive_ns is not None
                                      and receive_ns < self._last_receive_ns - 1000 * NS_PER_MS):
            ext = self._take(tick_ms, seq, receive_ns)     # first row, or host time went back
            return ext
        delta = self._signed(tick_ms - self._last_raw)
        ext = self._ext_ms + delta
        dev = (receive_ns - ext * NS_PER_MS) - self._window[0][1]
        consistent = self._consistent(delta, seq)
        if dev > self.late_ns or (consistent is False and delta < -self.period_tol_ms):
            ok = delta >= 0
            why = f'tick went back {-delta} ms'
        elif consistent is True:
            ok = dev >= -self.host_jump_ns
            why = f'tick {-dev / 1e6:.0f} ms ahead of host time'
        else:
            # off the nominal period: a burst's rows still step ahead of each other by the
            # real period (a mis-stated rate), so allow that step, up to ahead_ms
            tol_ns = (min(max(self.jitter_ns, delta * NS_PER_MS), self.ahead_ns)
                      if consistent is False else self.ahead_ns)
            ok = dev >= -tol_ns
            why = (f'tick {-dev / 1e6:.0f} ms ahead of host time' +
                   (f', advanced {delta} ms over the sequence gap' if consistent is False
                    else ''))
        if ok:
            self._cand = None
            return self._take(tick_ms, seq, receive_ns, ext)
        self.rejected += 1
        self.last_rejection = f'tick {tick_ms} (seq {seq}): {why}'
        self._candidate(tick_ms, seq, receive_ns, went_back=delta < 0)
        return None

    def _take(self, tick_ms: int, seq: int | None, receive_ns: int,
              ext: int | None = None) -> int:
        if ext is None:
            ext = self.unwrap(tick_ms)
        else:
            self._last_raw, self._ext_ms = tick_ms, ext
        self._last_seq = seq
        self.observe(ext, receive_ns)
        return ext

    def _candidate(self, tick_ms: int, seq: int | None, receive_ns: int, went_back: bool) -> None:
        c = self._cand
        if c is not None:
            delta = self._signed(tick_ms - c['raw'])
            ext = c['ext'] + delta
            off = receive_ns - ext * NS_PER_MS
            if -self.jitter_ns <= off - c['min_off'] <= self.late_ns and delta >= 0:
                c.update(raw=tick_ms, ext=ext, seq=seq, n=c['n'] + 1,
                         min_off=min(c['min_off'], off))
                if c['n'] >= 3 and receive_ns - c['first_rx'] >= self.reanchor_ns:
                    self.reanchors += 1
                    self.resets += int(c['went_back'])
                    self._window.clear()
                    self._last_stamp_ns = None
                    self._last_raw, self._ext_ms, self._last_seq = tick_ms, ext, seq
                    self._window.append((receive_ns, c['min_off']))
                    self._cand = None
                return
        self._cand = dict(raw=tick_ms, ext=tick_ms, seq=seq, n=1, first_rx=receive_ns,
                          min_off=receive_ns - tick_ms * NS_PER_MS, went_back=went_back)

    def observe(self, ext_tick_ms: int, receive_ns: int) -> None:
        """Add one (unwrapped tick, receive time) pair to the offset window.

        A host clock that jumps (ROS time starting from /clock, a replay looping back) makes the
        old offsets meaningless: an offset ``host_jump_s`` above the current minimum, or a receive
        time going back by more than 1 s, clears the window (going back also restarts the
        monotonic stamp sequence).
        """
        receive_ns = int(receive_ns)
        off = receive_ns - ext_tick_ms * NS_PER_MS
        w = self._window
        last_rx, self._last_receive_ns = self._last_receive_ns, receive_ns
        if last_rx is not None and receive_ns < last_rx - NS_PER_MS * 1000:
            w.clear()
            self._last_stamp_ns = None
            self.host_jumps += 1
        elif w and off - w[0][1] > self.host_jump_ns:
            w.clear()
            self.host_jumps += 1
        while w and w[-1][1] >= off:          # monotonic deque: offsets increasing
            w.pop()
        w.append((receive_ns, off))
        while w and w[0][0] < receive_ns - self.window_ns and len(w) > 1:
            w.popleft()

    @property
    def offset_ns(self) -> int | None:
        return self._window[0][1] if self._window else None

    def stamp(self, ext_tick_ms: int, receive_ns: int | None = None) -> int:
        """Host time [ns] of an unwrapped tick; call after observing the batch it belongs to.
        With ``receive_ns`` the stamp is never later than the row's arrival."""
        off = self.offset_ns
        if off is None:
            raise RuntimeError('ClockSync.stamp() before any observe()')
        s = ext_tick_ms * NS_PER_MS + off
        if self._last_stamp_ns is not None and s <= self._last_stamp_ns:
            s = self._last_stamp_ns + 1
        if receive_ns is not None and s > receive_ns:
            s = int(receive_ns)
        self._last_stamp_ns = s
        return s


# --- decoding ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    stamp_ns: int
    channel: int
    plate_id: str
    adc_counts: int            # 0 when not ready
    status: int                # STATUS_*
    weight_grams: float        # NaN unless valid
    valid: bool


@dataclass
class Batch:
    """Everything decoded from the lines of one poll."""

    first_sequence: int
    dropped_frames: int
    samples: list[Sample]
    rows: int

    @property
    def newest_stamp_ns(self) -> int:
        return max(s.stamp_ns for s in self.samples)


@dataclass(frozen=True)
class DecoderMessage:
    level: str        # 'info', 'warn' or 'error'
    text: str
    key: str          # groups repeated messages for throttled logging


@dataclass
class DecoderCounters:
    rows: int = 0
    samples: int = 0
    dropped_frames: int = 0
    seq_resyncs: int = 0            # backward sequence jumps (controller restart, duplicates)
    saturated: int = 0
    not_ready: int = 0
    channel_errors: int = 0         # $PCE lines
    info_lines: int = 0
    clock_rejected: int = 0         # rows refused for a tick that disagrees with the clock anchor
    garbage: collections.Counter = field(default_factory=collections.Counter)  # by reason

    @property
    def garbage_total(self) -> int:
        return sum(self.garbage.values())


class PlateDecoder:
    """Decode one controller's lines into batches of calibrated samples.

    Garbage lines (any :class:`~store_common.plate_protocol.ProtocolError`, rows with the wrong
    channel count, rows while a different controller answers on the port) are counted by reason
    in ``counters.garbage`` and skipped; good rows in the same poll are still decoded.

    An info line naming another controller id, or another channel count, than the store
    description is an error (``mismatch`` holds its text): the wrong device is on the port, so
    its rows are rejected (reason ``wrong_controller``) until a matching info line arrives.
    """

    def __init__(self, controller_id: str, n_channels: int, calibration: Calibration, *,
                 port: str = '', sample_rate_hz: float | None = None,
                 clock_sync: ClockSync | None = None):
        self.controller_id = controller_id
        self.n_channels = int(n_channels)
        self.calibration = calibration
        self.port = port
        self.sample_rate_hz = sample_rate_hz
        self.clock = clock_sync or ClockSync(
            period_ms=1000.0 / sample_rate_hz if sample_rate_hz else None)
        self.counters = DecoderCounters()
        self.info: pp.InfoLine | None = None
        self.mismatch = ''
        self._last_seq: int | None = None
        self._messages: list[DecoderMessage] = []

    def take_messages(self) -> list[DecoderMessage]:
        out, self._messages = self._messages, []
        return out

    def _msg(self, level: str, key: str, text: str) -> None:
        self._messages.append(DecoderMessage(level, text, key))

    def _garbage(self, reason: str, detail: str) -> None:
        self.counters.garbage[reason] += 1
        self._msg('warn', 'garbage',
                  f'controller {self.controller_id} on {self.port or "?"}: garbage line '
                  f'({reason}): {detail}')

    def _check_info(self, info: pp.InfoLine) -> None:
        self.counters.info_lines += 1
        problems = []
        if info.controller_id != self.controller_id:
            problems.append(f'controller id: expected {self.controller_id!r}, '
                            f'got {info.controller_id!r}')
        if info.n_channels != self.n_channels:
            problems.append(f'channel count: expected {self.n_channels}, got {info.n_channels}')
        text = ''
        if problems:
            text = (f'controller {self.controller_id} on port {self.port or "?"} does not match '
                    f'the store description: ' + '; '.join(problems))
        if text and text != self.mismatch:
            self._msg('error', 'info_mismatch', text)
        elif not text and (self.mismatch or self.info is None):
            self._msg('info', 'info_ok',
                      f'controller {self.controller_id} on port {self.port or "?"} '
                      f'identified: firmware {info.firmware}, {info.n_channels} channels, '
                      f'{info.rate_hz:g} Hz')
        self.mismatch = text
        if (not problems and self.sample_rate_hz
                and abs(info.rate_hz - self.sample_rate_hz) > 0.01 * self.sample_rate_hz):
            self._msg('warn', 'info_rate',
                      f'controller {self.controller_id} on port {self.port or "?"} samples at '
                      f'{info.rate_hz:g} Hz, the store description says '
                      f'{self.sample_rate_hz:g} Hz')
        self.info = info
        if not problems and 1.0 <= info.rate_hz <= 1000.0:
            self.clock.period_ms = 1000.0 / info.rate_hz     # the controller's own word

    def _sequence(self, seq: int) -> int:
        """Account for a row's sequence number; returns frames dropped before it."""
        last, self._last_seq = self._last_seq, seq
        if last is None:
            return 0
        gap = (seq - last - 1) % U32
        if gap >= HALF_U32:                       # backward: restart or duplicate
            self.counters.seq_resyncs += 1
            self._msg('warn', 'seq_resync',
                      f'controller {self.controller_id}: sequence went back from {last} '
                      f'to {seq} (controller restart?)')
            return 0
        self.counters.dropped_frames += gap
        return gap

    def decode(self, lines: Iterable[bytes | str], receive_ns: int) -> Batch | None:
        """Decode the lines received in one poll at ``receive_ns`` (host time)."""
        parsed: list[pp.RowLine] = []
        for line in lines:
            try:
                msg = pp.parse_line(line, expect_channels=self.n_channels)
            except pp.ProtocolError as exc:
                self._garbage(exc.reason, str(exc))
                continue
            if isinstance(msg, pp.InfoLine):
                self._check_info(msg)
            elif isinstance(msg, pp.ErrorLine):
                if msg.channel >= self.n_channels:
                    self._garbage('bad_channel', f'error line for channel {msg.channel} of '
                                                 f'{self.n_channels}')
                else:
                    self.counters.channel_errors += 1
            elif self.mismatch:
                self._garbage('wrong_controller', self.mismatch)
            else:
                parsed.append(msg)
        # check and observe the whole burst first: its last row bounds the latency of all
        rows: list[tuple[pp.RowLine, int]] = []    # (row, unwrapped tick)
        reanchors = self.clock.reanchors
        for row in parsed:
            ext = self.clock.accept(row.tick_ms, receive_ns, seq=row.seq)
            if ext is None:
                self.counters.clock_rejected += 1
                self._msg('warn', 'clock_outlier',
                          f'controller {self.controller_id} on {self.port or "?"}: row refused, '
                          f'{self.clock.last_rejection} ({self.counters.clock_rejected} so far)')
            else:
                rows.append((row, ext))
        if self.clock.reanchors != reanchors:
            self._msg('warn', 'clock_reanchor',
                      f'controller {self.controller_id} on {self.port or "?"}: its clock reset or '
                      f'jumped; time mapping re-anchored (offset now '
                      f'{self.clock.offset_ns / 1e9:.3f} s)')
        if not rows:
            return None
        samples: list[Sample] = []
        dropped = 0
        cal = self.calibration
        for row, ext in rows:
            dropped += self._sequence(row.seq)
            stamp_ns = self.clock.stamp(ext, receive_ns)
            for ch, counts in enumerate(row.counts):
                if counts is None:
                    status, counts = STATUS_NOT_READY, 0
                    self.counters.not_ready += 1
                elif counts <= pp.ADC_MIN or counts >= pp.ADC_MAX:
                    status = STATUS_SATURATED
                    self.counters.saturated += 1
                else:
                    status = STATUS_OK
                valid = status == STATUS_OK and ch in cal.by_channel
                samples.append(Sample(
                    stamp_ns=stamp_ns, channel=ch, plate_id=cal.plate_of(ch), adc_counts=counts,
                    status=status, valid=valid,
                    weight_grams=cal.weight_grams(ch, counts) if valid else math.nan))
        self.counters.rows += len(rows)
        self.counters.samples += len(samples)
        return Batch(first_sequence=rows[0][0].seq, dropped_frames=dropped, samples=samples,
                     rows=len(rows))


# --- tare --------------------------------------------------------------------------------------
class TareAverager:
    """Average the valid counts of some plates over ``duration_s`` of sensor time.

    Feed it samples; once a sample at least ``duration_s`` after the first one fed has been seen,
    :attr:`done` is true and :meth:`result` returns ``{plate_id: mean counts}`` (rounded) or
    raises ValueError naming the plates that had no valid sample.
    """

    def __init__(self, plate_ids: Iterable[str], duration_s: float):
        self.plate_ids = list(plate_ids)
        self.duration_ns = int(duration_s * 1e9)
        self._sum = {p: 0 for p in self.plate_ids}
        self._sumsq = {p: 0.0 for p in self.plate_ids}
        self._n = {p: 0 for p in self.plate_ids}
        self._start_ns: int | None = None
        self.done = False

    def feed(self, samples: Iterable[Sample]) -> bool:
        for s in samples:
            if self.done:
                break
            if self._start_ns is None:
                self._start_ns = s.stamp_ns
            if s.stamp_ns - self._start_ns >= self.duration_ns:
                self.done = True
                break
            if s.valid and s.plate_id in self._n:
                self._sum[s.plate_id] += s.adc_counts
                self._sumsq[s.plate_id] += float(s.adc_counts) ** 2
                self._n[s.plate_id] += 1
        return self.done

    def count(self, plate_id: str) -> int:
        return self._n[plate_id]

    def sd_counts(self, plate_id: str) -> float:
        n = self._n[plate_id]
        if n < 2:
            return 0.0
        mean = self._sum[plate_id] / n
        return math.sqrt(max(0.0, self._sumsq[plate_id] / n - mean * mean))

    def result(self) -> dict[str, int]:
        missing = [p for p in self.plate_ids if self._n[p] == 0]
        if missing:
            raise ValueError(f'no valid samples for {", ".join(missing)}')
        return {p: int(round(self._sum[p] / self._n[p])) for p in self.plate_ids}


class TareStore:
    """Tare overrides in a YAML state file shared safely by several drivers.

    File format::

        tare_overrides:
          g1.s1.p1: {tare_offset_counts: 24890, controller_id: pc_g1, set_at: '2026-...Z'}

    Writes merge with the file's current content under an exclusive lock and replace the file
    atomically (temporary file in the same directory, fsync, rename).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)

    def load(self) -> dict[str, int]:
        """``{plate_id: tare_offset_counts}``; {} if the file does not exist.

        Raises ValueError if the file exists but is not a valid state file.
        """
        return {p: int(e['tare_offset_counts']) for p, e in self._read().items()}

    def _read(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        try:
            # strict: a plate listed twice is an error naming the line, not "last one wins"
            doc = strict_yaml.load_file(self.path).data or {}
        except strict_yaml.YamlError as exc:
            raise ValueError(str(exc)) from None
        entries = doc.get('tare_overrides', {}) if isinstance(doc, dict) else None
        if not isinstance(entries, dict):
            raise ValueError(f'{self.path}: expected a mapping "tare_overrides"')
        for plate_id, e in entries.items():
            if (not isinstance(e, dict) or isinstance(e.get('tare_offset_counts'), bool)
                    or not isinstance(e.get('tare_offset_counts'), int)):
                raise ValueError(f'{self.path}: tare_overrides.{plate_id}: expected a mapping '
                                 f'with an integer tare_offset_counts')
        return entries

    @contextlib.contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(str(self.path) + '.lock', 'a') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def save(self, controller_id: str, tares: dict[str, int]) -> None:
        """Merge ``{plate_id: tare_offset_counts}`` into the file, atomically."""
        with self._locked():
            try:
                entries = self._read()
            except ValueError:
                entries = {}     # a corrupt file is replaced rather than blocking every tare
            now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
            for plate_id, counts in tares.items():
                entries[plate_id] = {'tare_offset_counts': int(counts),
                                     'controller_id': controller_id, 'set_at': now}
            text = yaml.safe_dump({'tare_overrides': dict(sorted(entries.items()))},
                                  sort_keys=False)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name + '.', suffix='.tmp',
                                       dir=str(self.path.parent))
            try:
                with os.fdopen(fd, 'w') as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
