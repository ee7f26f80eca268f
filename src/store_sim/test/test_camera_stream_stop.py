"""The camera stream server stops its clients' threads on close, so the simulator's process ends
without the C++ runtime's abort ("terminate called without an active exception", SIGABRT) that a
thread still inside OpenCV at interpreter exit caused."""
import json
import pathlib
import socket
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from store_sim.camera_stream import CameraStreamServer


def fake_render(path: pathlib.Path, frames: int = 20, size=(640, 480)) -> pathlib.Path:
    """A render directory as render_scenario writes it: noise frames (slow to encode, so the
    client threads spend their time inside OpenCV)."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path / 'cam1.avi'), cv2.VideoWriter_fourcc(*'MJPG'), 10.0,
                             size)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    (path / 'render.json').write_text(json.dumps(
        {'fps': 10.0, 't0_s': 0.0, 'frames': frames, 'video': {'cam1': 'cam1.avi'}}))
    return path


def connect(port: int) -> socket.socket:
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(b'GET /cam1.mjpg HTTP/1.0\r\n\r\n')
    return s


def test_close_ends_every_stream_and_waits_for_its_thread(tmp_path):
    start = time.monotonic()
    server = CameraStreamServer(fake_render(tmp_path / 'r', frames=5, size=(64, 48)),
                                lambda: time.monotonic() - start).start()
    clients = [connect(server.port) for _ in range(4)]
    for c in clients:
        assert c.recv(4096).startswith(b'HTTP/1.0 200')
    deadline = time.monotonic() + 10
    while server.active_clients() < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.active_clients() == 4
    t0 = time.monotonic()
    assert server.close(timeout_s=5.0) is True
    assert time.monotonic() - t0 < 3.0
    assert server.active_clients() == 0
    for c in clients:        # the stream ended: the client reads to the end, not a timeout
        c.settimeout(5)
        while c.recv(65536):
            pass
        c.close()
    # a client arriving after close is refused
    with pytest.raises(OSError):
        connect(server.port).recv(1)


def test_close_without_start_returns(tmp_path):
    # never started: shutdown() would wait forever for a serve_forever that never ran
    server = CameraStreamServer(fake_render(tmp_path / 'r', frames=2, size=(32, 24)),
                                time.monotonic)
    t0 = time.monotonic()
    assert server.close(timeout_s=2.0) is True
    assert time.monotonic() - t0 < 1.0


EXIT_WITH_CLIENTS = """
import socket, sys, threading, time
from store_sim.camera_stream import CameraStreamServer
start = time.monotonic()
srv = CameraStreamServer(sys.argv[1], lambda: time.monotonic() - start + 1.0).start()
def reader():
    s = socket.create_connection(('127.0.0.1', srv.port))
    s.sendall(b'GET /cam1.mjpg HTTP/1.0\\r\\n\\r\\n')
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
for _ in range(16):
    threading.Thread(target=reader, daemon=True).start()
time.sleep(float(sys.argv[2]))
srv.close()
"""


def test_the_process_exits_cleanly_with_clients_still_connected(tmp_path):
    # before the fix, 4 runs in 10 of this script aborted at exit (16 clients on 640x480
    # noise frames); each run here is a fresh chance to catch the abort
    render = fake_render(tmp_path / 'r')
    for pause_s in (1.0, 1.25, 1.5):
        proc = subprocess.run([sys.executable, '-c', EXIT_WITH_CLIENTS, str(render),
                               str(pause_s)], capture_output=True, text=True, timeout=60)
        assert 'terminate called' not in proc.stderr, proc.stderr
        assert proc.returncode == 0, proc.stderr[-2000:]
