"""A camera source over cv2.VideoCapture that never gives up: device, file or stream.

:class:`CameraSource` opens a device index (``0``), a V4L2 device path, a video file or an
RTSP/HTTP URL, delivers frames, and when the source fails (cannot open, read fails, a stream
stalls, a file disappears) closes it and reopens with exponential backoff. Files are paced at
``fps`` by the caller and loop (or stop and reopen later) at the end. Frames whose size differs
from the configured size are resized to it, so they always match the calibration.

Plain Python + OpenCV; never imports rclpy (the node in ``camera_driver_node`` wires it).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

import cv2
import numpy as np

URL_RE = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*://')


def parse_source(source) -> int | str:
    """A device index (int or all-digit string) or a path/URL string."""
    if isinstance(source, bool):
        raise ValueError(f'invalid camera source {source!r}')
    if isinstance(source, int):
        if source < 0:
            raise ValueError(f'invalid device index {source}')
        return source
    text = str(source).strip()
    if not text:
        raise ValueError('empty camera source')
    return int(text) if text.isdigit() else text


def source_kind(source: int | str) -> str:
    """'device', 'url' or 'file'."""
    if isinstance(source, int) or str(source).startswith('/dev/'):
        return 'device'
    if URL_RE.match(str(source)):
        return 'url'
    return 'file'


class Backoff:
    """Exponential reopen delays: initial, 2x each failure, capped; reset on success."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 5.0):
        self.initial_s, self.max_s = initial_s, max_s
        self.next_s = initial_s

    def fail(self) -> float:
        d = self.next_s
        self.next_s = min(self.max_s, self.next_s * 2)
        return d

    def reset(self) -> None:
        self.next_s = self.initial_s


class EvidenceThrottle:
    """Which frames also go out as JPEG evidence: the first frame of each ``1/rate_hz`` slot
    of the stamp clock, so a 10 frames/s stream gives ``rate_hz`` evidence frames a second on
    average, whatever the phase. A stamp that goes back (a replayed clock) starts afresh.
    ``rate_hz`` 0 sends none."""

    def __init__(self, rate_hz: float):
        if rate_hz < 0:
            raise ValueError(f'evidence rate must be >= 0 Hz, not {rate_hz}')
        self.slot_ns = int(1e9 / rate_hz) if rate_hz > 0 else 0
        self._last_slot: int | None = None

    def due(self, stamp_ns: int) -> bool:
        if not self.slot_ns:
            return False
        slot = int(stamp_ns) // self.slot_ns
        if self._last_slot is not None and slot == self._last_slot:
            return False
        self._last_slot = slot
        return True


@dataclass
class SourceState:
    connected: bool = False
    opens: int = 0               # successful opens
    failures: int = 0            # failed opens and read failures
    frames: int = 0              # frames delivered
    loops: int = 0               # file restarts at the end
    last_error: str = ''
    last_frame_mono_s: float | None = None


class CameraSource:
    """Frames from one source, reopened on failure. Not thread-safe: one reader."""

    def __init__(self, source, width: int, height: int, fps: float, loop: bool = True,
                 backoff: Backoff | None = None, stale_timeout_s: float = 5.0,
                 open_timeout_ms: int = 5000, clock=time.monotonic, sleep=time.sleep):
        self.source = parse_source(source)
        self.kind = source_kind(self.source)
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.loop = loop
        self.backoff = backoff or Backoff()
        self.stale_timeout_s = stale_timeout_s
        self.open_timeout_ms = open_timeout_ms
        self.clock, self.sleep = clock, sleep
        self.cap: cv2.VideoCapture | None = None
        self.state = SourceState()
        self._retry_at = 0.0
        self._file_start = 0.0
        self._file_index = 0

    # --- open / close ---
    def open(self) -> bool:
        """Try once to open; False (and a later retry time) on failure."""
        self.close()
        if self.kind == 'file' and not os.path.isfile(self.source):
            return self._failed(f'file not found: {self.source}')
        try:
            if self.kind == 'url':
                cap = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.open_timeout_ms,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.stale_timeout_s * 1000)])
            else:
                cap = cv2.VideoCapture(self.source)
        except cv2.error as exc:
            return self._failed(f'cannot open {self.source}: {exc}')
        if not cap.isOpened():
            cap.release()
            return self._failed(f'cannot open {self.source}')
        if self.kind == 'device':
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        self.cap = cap
        self.state.connected = True
        self.state.opens += 1
        self.state.last_error = ''
        self.backoff.reset()
        self._file_start = self.clock()
        self._file_index = 0
        return True

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
        self.cap = None
        self.state.connected = False

    def _failed(self, error: str) -> bool:
        self.close()
        self.state.failures += 1
        self.state.last_error = error
        self._retry_at = self.clock() + self.backoff.fail()
        return False

    # --- frames ---
    def read(self) -> np.ndarray | None:
        """The next frame (BGR, configured size), or None (not open yet, or it just failed).

        Blocks for file pacing (until the frame's time at ``fps``) and while a live source
        delivers; waits out the reopen backoff in small steps.
        """
        if self.cap is None:
            now = self.clock()
            if now < self._retry_at:
                self.sleep(min(0.05, self._retry_at - now))
                return None
            if not self.open():
                return None
        if self.kind == 'file':
            if not os.path.isfile(self.source):
                self._failed(f'file disappeared: {self.source}')
                return None
            due = self._file_start + self._file_index / self.fps
            delay = due - self.clock()
            if delay > 0:
                self.sleep(delay)
        ok, frame = self.cap.read()
        if not ok or frame is None:
            if self.kind == 'file' and self.loop and self.state.frames > 0:
                self.state.loops += 1
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self.cap.read()
            if not ok or frame is None:
                self._failed('end of file' if self.kind == 'file' else
                             f'read failed on {self.source}')
                return None
        self._file_index += 1
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if frame.shape[1] != self.width or frame.shape[0] != self.height:
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        self.state.frames += 1
        self.state.last_frame_mono_s = self.clock()
        return frame
