"""CameraSource: reads a real video file at its frame rate, loops, and reopens with backoff after
the file goes away and comes back."""
import os
import time

import cv2
import numpy as np
import pytest

from store_perception.camera_source import (Backoff, CameraSource, EvidenceThrottle,
                                            parse_source, source_kind)


def write_video(path, n=6, size=(160, 120), fps=20.0):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, size)
    assert w.isOpened()
    for i in range(n):
        img = np.full((size[1], size[0], 3), 30 * i + 10, np.uint8)
        cv2.putText(img, str(i), (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        w.write(img)
    w.release()
    return path


def level(frame):
    return int(np.median(frame[:10, :10]))


def test_parse_and_kind():
    assert parse_source(0) == 0 and parse_source('2') == 2
    assert parse_source(' /tmp/v.avi ') == '/tmp/v.avi'
    assert source_kind(3) == 'device' and source_kind('/dev/store/cam1') == 'device'
    assert source_kind('rtsp://cam.local/stream') == 'url'
    assert source_kind('http://127.0.0.1:8080/cam1.mjpg') == 'url'
    assert source_kind('videos/cam1.avi') == 'file'
    for bad in ('', -1, True):
        with pytest.raises(ValueError):
            parse_source(bad)


def test_backoff_doubles_and_resets():
    b = Backoff(0.5, 3.0)
    assert [b.fail() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.fail() == 0.5


def test_reads_a_video_file_paced_at_fps_and_loops(tmp_path):
    path = write_video(tmp_path / 'v.avi', n=6)
    src = CameraSource(str(path), 320, 240, fps=20.0, loop=True)
    start = time.monotonic()
    frames = [src.read() for _ in range(9)]
    took = time.monotonic() - start
    assert all(f is not None and f.shape == (240, 320, 3) for f in frames)   # resized
    levels = [level(f) for f in frames]
    assert levels[:6] == sorted(levels[:6]) and levels[6] == levels[0]       # looped
    assert abs(levels[1] - 40) <= 3
    assert src.state.loops == 1 and src.state.opens == 1
    assert 0.3 <= took <= 1.5          # 9 frames at 20 fps, not as fast as it can decode


def test_without_loop_the_end_is_a_failure_and_it_reopens(tmp_path):
    path = write_video(tmp_path / 'v.avi', n=3)
    src = CameraSource(str(path), 160, 120, fps=100.0, loop=False, backoff=Backoff(0.05, 0.1))
    got = [src.read() for _ in range(4)]
    assert [g is not None for g in got] == [True, True, True, False]
    assert src.state.last_error == 'end of file' and not src.state.connected
    deadline = time.monotonic() + 2
    frame = None
    while frame is None and time.monotonic() < deadline:
        frame = src.read()
    assert frame is not None and src.state.opens == 2


def test_reopens_after_the_file_is_removed_and_restored(tmp_path):
    path = write_video(tmp_path / 'v.avi', n=6)
    src = CameraSource(str(path), 160, 120, fps=100.0, backoff=Backoff(0.05, 0.2))
    assert src.read() is not None
    os.rename(path, tmp_path / 'gone.avi')
    assert src.read() is None
    assert not src.state.connected and 'disappeared' in src.state.last_error
    for _ in range(5):
        assert src.read() is None                      # keeps trying, never raises
    assert 'file not found' in src.state.last_error
    os.rename(tmp_path / 'gone.avi', path)
    deadline = time.monotonic() + 3
    frame = None
    while frame is None and time.monotonic() < deadline:
        frame = src.read()
    assert frame is not None and src.state.connected and src.state.opens == 2


def test_a_source_that_never_opens_backs_off(tmp_path):
    t = [0.0]
    slept = []
    src = CameraSource(str(tmp_path / 'none.avi'), 160, 120, 10.0,
                       backoff=Backoff(0.5, 2.0), clock=lambda: t[0],
                       sleep=lambda s: slept.append(s) or t.__setitem__(0, t[0] + s))
    for _ in range(60):
        assert src.read() is None
    assert src.state.opens == 0
    # attempts at 0, 0.5, 1.5, 3.5, 5.5 ... : capped at 2 s apart
    assert 3 <= src.state.failures <= 5
    assert src.backoff.next_s == 2.0


def test_evidence_throttle_sends_one_frame_per_slot():
    th = EvidenceThrottle(4.0)
    stamps = [1_000_000_000 * 7 + k * 100_000_000 + 3_000_000 for k in range(100)]   # 10 fps
    sent = [t for t in stamps if th.due(t)]
    assert len(sent) == 40                                    # 4 of 10 a second
    gaps = np.diff(sent)
    assert gaps.min() >= 200_000_000 and gaps.max() <= 300_000_000
    assert th.due(stamps[0])                                  # a clock that went back: afresh
    assert not any(EvidenceThrottle(0.0).due(t) for t in stamps)
    with pytest.raises(ValueError):
        EvidenceThrottle(-1.0)
