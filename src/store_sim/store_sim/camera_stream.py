"""Rendered camera videos served as live MJPEG-over-HTTP streams on the scenario clock.

The simulator renders each camera's video before its scenario clock starts (``render_scenario``)
and then plays it like an IP camera: ``http://127.0.0.1:<port>/<camera_id>.mjpg`` sends frame k
(scenario time ``t0_s + k / fps``) when the scenario clock reaches that time, so the camera
driver, which stamps a frame when it receives it, stamps it ``scenario_start + t_k`` plus the
delivery latency (milliseconds) -- the same time base as the plate controller emulators. Before
the scenario the first frame repeats at ``fps``; after the video the last frame repeats. A client
that connects late starts at the current frame (no backlog), like a live camera.

``multipart/x-mixed-replace`` MJPEG is what OpenCV's FFmpeg backend opens as an ``http://`` URL.
Never imports rclpy.

:meth:`CameraStreamServer.close` stops every client's thread and waits for it (each releases its
``cv2.VideoCapture``): a thread still decoding or encoding inside OpenCV when the interpreter
exits made the C++ runtime abort the process ("terminate called without an active exception",
SIGABRT) while the node stopped.
"""
from __future__ import annotations

import http.server
import json
import pathlib
import socket
import socketserver
import threading
import time

import cv2

from store_sim.render_cache import is_complete, render_key

BOUNDARY = b'storeframe'


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class CameraStreamServer:
    """Serves every camera of a finished render directory on one port."""

    def __init__(self, render_dir: str | pathlib.Path, scenario_time, port: int = 0,
                 host: str = '127.0.0.1', jpeg_quality: int = 90, log=None):
        self.dir = pathlib.Path(render_dir)
        meta = json.loads((self.dir / 'render.json').read_text())
        self.fps = float(meta['fps'])
        self.t0_s = float(meta['t0_s'])
        self.frames = int(meta['frames'])
        self.videos = {cid: self.dir / name for cid, name in meta['video'].items()}
        self.scenario_time = scenario_time       # () -> current scenario time [s]
        self.jpeg_quality = jpeg_quality
        self.log = log or (lambda msg: None)
        self.connections = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._clients: dict[threading.Thread, object] = {}    # serving thread -> its request
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):   # noqa: N802 - http.server API
                outer._serve(self)

            def log_message(self, *args):
                pass

        self.httpd = _Server((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name='camera-stream')

    def url(self, camera_id: str) -> str:
        return f'http://127.0.0.1:{self.port}/{camera_id}.mjpg'

    def start(self) -> 'CameraStreamServer':
        self._thread.start()
        return self

    def active_clients(self) -> int:
        """Client threads still running (serving, or releasing their video)."""
        with self._lock:
            return sum(1 for t in self._clients if t.is_alive())

    def close(self, timeout_s: float = 5.0) -> bool:
        """Stop accepting, end every client's stream and wait up to ``timeout_s`` for their
        threads (each releases its video); True when none is left running."""
        self._stop.set()
        if self._thread.is_alive():
            self.httpd.shutdown()         # serve_forever returns (it blocks if never started)
        self.httpd.server_close()
        with self._lock:
            clients = list(self._clients.items())
        for _, req in clients:
            try:                          # a write blocked on a client that stopped reading
                req.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout_s
        for t, _ in clients:
            t.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        left = self.active_clients()
        if left:
            self.log(f'camera streams: {left} client threads still running {timeout_s:g} s '
                     'after close')
        return left == 0

    def _serve(self, req) -> None:
        me = threading.current_thread()
        with self._lock:
            if self._stop.is_set():
                return
            self._clients[me] = req
        try:
            self._stream(req)
        finally:
            with self._lock:
                self._clients.pop(me, None)

    def _stream(self, req) -> None:
        cid = req.path.strip('/').removesuffix('.mjpg')
        video = self.videos.get(cid)
        if video is None or not video.exists():
            req.send_error(404, f'no camera {cid!r}')
            return
        cap, raw = open_jpeg_packets(video)
        if not cap.isOpened():
            req.send_error(503, f'cannot open the video of {cid}')
            return
        self.connections += 1
        self.log(f'camera stream {cid}: client connected')
        req.send_response(200)
        req.send_header('Content-Type', f'multipart/x-mixed-replace; boundary={BOUNDARY.decode()}')
        req.send_header('Cache-Control', 'no-cache')
        req.end_headers()
        pos = -1            # index of the frame in `data`
        data = None         # the JPEG of frame `pos`
        sent = -10 ** 9     # last sent tick
        try:
            while not self._stop.is_set():
                t = self.scenario_time()
                tick = int((t - self.t0_s) * self.fps + 1e-6) if t >= self.t0_s else \
                    -int((self.t0_s - t) * self.fps) - 1
                if tick <= sent:
                    self._stop.wait(max(0.001, (sent + 1) / self.fps + self.t0_s - t))
                    continue
                want = min(max(tick, 0), self.frames - 1)
                if want != pos:
                    if want != pos + 1:
                        cap.set(cv2.CAP_PROP_POS_FRAMES, want)
                    ok, f = cap.read()
                    if ok:
                        data, pos = (f.ravel().tobytes() if raw else cv2.imencode(
                            '.jpg', f, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])[1]
                            .tobytes()), want
                if data is None:
                    return
                req.wfile.write(b'--' + BOUNDARY + b'\r\nContent-Type: image/jpeg\r\n'
                                + f'Content-Length: {len(data)}\r\n\r\n'.encode() + data
                                + b'\r\n')
                req.wfile.flush()
                sent = tick
        except (BrokenPipeError, ConnectionResetError, OSError):
            if not self._stop.is_set():
                self.log(f'camera stream {cid}: client gone')
        finally:
            cap.release()


def open_jpeg_packets(video: pathlib.Path) -> tuple[cv2.VideoCapture, bool]:
    """Open a rendered video for streaming: (capture, raw). ``raw``: ``read()`` gives each
    frame's JPEG as stored (an MJPEG render), sent the way an IP camera sends what its encoder
    made, without a decode and re-encode (that cost this process ~0.15 cores for 4 cameras).
    Otherwise (a backend without raw packets, another codec) frames are decoded images."""
    cap = cv2.VideoCapture(str(video))
    if cap.isOpened() and cap.set(cv2.CAP_PROP_FORMAT, -1):
        ok, pkt = cap.read()
        if ok and pkt is not None and pkt.ravel()[:2].tobytes() == b'\xff\xd8':
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            return cap, True
        cap.release()
        cap = cv2.VideoCapture(str(video))
    return cap, False


def render_is_current(render_dir: pathlib.Path, store_file: str, scenario_file: str,
                      fps: float, cameras: list[str]) -> bool:
    """True when ``render_dir`` holds a complete render of this scenario, fps and cameras
    (its recorded input key matches: see :mod:`store_sim.render_cache`)."""
    return is_complete(pathlib.Path(render_dir),
                       render_key(store_file, scenario_file, fps, cameras))
