"""Camera driver and detector nodes over DDS: a real video file, its removal and return; the
detector answering a camera's images; the simulated store streaming its rendered cameras
through the drivers to the detector."""
from __future__ import annotations

import os
import pathlib
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import yaml

from store_bringup.graph import build_graph, GraphOptions, NodeSpec
from store_bringup.runner import executable_path, Runner
from store_common.description import load_store

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO_STORE = ROOT / 'config' / 'stores' / 'demo.yaml'
PARAMS = ROOT / 'config' / 'params' / 'store.yaml'

pytestmark = pytest.mark.graph


@pytest.fixture
def cam_ros_env(monkeypatch):
    """A private ROS domain on loopback, for this process (rclpy) and those it starts."""
    monkeypatch.setenv('ROS_DOMAIN_ID', str(random.randint(1, 100)))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return dict(os.environ)


class Probe:
    """Subscriptions in this process, spun in a thread; messages kept with arrival times."""

    def __init__(self, rclpy, name):
        self.rclpy = rclpy
        self.node = rclpy.create_node(name)
        self.got: dict[str, list] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def sub(self, msg_type, topic, qos):
        self.got[topic] = []
        self.node.create_subscription(msg_type, topic, lambda m: self.got[topic].append(
            (time.monotonic(), m)), qos)

    def _spin(self):
        while not self._stop.is_set():
            self.rclpy.spin_once(self.node, timeout_sec=0.05)

    def start(self):
        self._thread.start()
        return self

    def wait(self, topic, n, timeout_s, since=0.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(1 for t, _ in self.got[topic] if t >= since) >= n:
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self._stop.set()
        self._thread.join()
        self.node.destroy_node()


def _spec(package, executable, namespace):
    return NodeSpec(package, executable, executable, namespace)


def test_camera_driver_streams_a_file_and_reopens_it(tmp_path, cam_ros_env):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from sensor_msgs.msg import CameraInfo, Image
    from store_common.ros import SENSOR_QOS

    video = tmp_path / 'cam1.avi'
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 10.0, (640, 480))
    for i in range(30):
        w.write(np.full((480, 640, 3), 5 * i, np.uint8))
    w.release()
    store = load_store(DEMO_STORE)
    cmd = [executable_path(_spec('store_perception', 'camera_driver', '/store/cameras/cam1')),
           '--ros-args', '-r', '__ns:=/store/cameras/cam1', '-p', 'camera_id:=cam1',
           '-p', f'store_file:={DEMO_STORE}', '-p', f'source:={video}', '-p', 'fps:=10.0',
           '-p', 'reopen_initial_s:=0.2', '-p', 'reopen_max_s:=0.5',
           '-p', 'diagnostics_period_s:=0.3']
    with rclpy.init():
        probe = Probe(rclpy, 'camera_probe')
        probe.sub(Image, '/store/cameras/cam1/image_raw', SENSOR_QOS)
        probe.sub(CameraInfo, '/store/cameras/cam1/camera_info', SENSOR_QOS)
        probe.sub(DiagnosticArray, '/diagnostics', 10)
        probe.start()
        proc = subprocess.Popen(cmd, env=cam_ros_env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            img_topic = '/store/cameras/cam1/image_raw'
            assert probe.wait(img_topic, 15, 20.0), 'no images from the driver'
            images = [m for _, m in probe.got[img_topic]]
            m = images[-1]
            assert (m.width, m.height, m.encoding) == (640, 480, 'bgr8')
            assert m.header.frame_id == 'camera_cam1_optical'
            stamps = [x.header.stamp.sec + x.header.stamp.nanosec * 1e-9 for x in images]
            assert all(b > a for a, b in zip(stamps, stamps[1:]))
            # the driver reads at 10 fps (its diagnostics); ~1 MB best-effort images may drop
            # on the way to this probe, so the rate is the driver's own
            rates = [float(kv.value) for _, d in probe.got['/diagnostics'] for s in d.status
                     if s.name == 'store/camera/cam1' for kv in s.values
                     if kv.key == 'frame_rate_hz']
            # each figure counts frames over one 0.3 s period (3 frames): one frame late under
            # load reads 6.7 then 13.3, so the median over the periods is the driver's rate
            assert rates and 8.0 <= float(np.median(rates)) <= 12.0, rates
            infos = [i for _, i in probe.got['/store/cameras/cam1/camera_info']]
            assert infos, 'no camera_info'
            k = np.array(infos[-1].k).reshape(3, 3)
            np.testing.assert_allclose(k, store.camera('cam1').model.K)
            assert infos[-1].distortion_model == 'plumb_bob'
            assert infos[-1].header.stamp in [x.header.stamp for x in images]

            # the file goes away: errors on diagnostics, no images, the node lives on
            os.rename(video, tmp_path / 'away.avi')
            time.sleep(1.5)
            gone_at = time.monotonic()
            time.sleep(1.0)
            assert not [t for t, _ in probe.got[img_topic] if t > gone_at]
            diags = [s for t, d in probe.got['/diagnostics'] if t > gone_at for s in d.status
                     if s.name == 'store/camera/cam1']
            assert diags and all(s.level == DiagnosticStatus.ERROR for s in diags)
            assert 'disconnected' in diags[-1].message
            assert proc.poll() is None

            os.rename(tmp_path / 'away.avi', video)
            back_at = time.monotonic()
            assert probe.wait(img_topic, 5, 10.0, since=back_at), 'no images after restore'
            time.sleep(0.8)
            diags = [s for t, d in probe.got['/diagnostics'] if t > back_at + 1.0
                     for s in d.status if s.name == 'store/camera/cam1']
            assert diags and diags[-1].level == DiagnosticStatus.OK
            values = {kv.key: kv.value for kv in diags[-1].values}
            assert int(values['opens']) >= 2 and values['connected'] == 'true'
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=15)
            probe.close()
    assert proc.returncode == 0, out
    assert 'reopening' in out


def _textured_video(path, n=30):
    """A 640x480 MJPEG file whose frames JPEG can carry (noise blurred, a frame number band)."""
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur((rng.random((480, 640, 3)) * 255).astype(np.uint8), (9, 9), 3)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10.0, (640, 480))
    for i in range(n):
        f = base.copy()
        f[:40] = 8 * i
        w.write(f)
    w.release()


def test_review_node_keeps_the_drivers_jpeg_evidence_frames(tmp_path, cam_ros_env):
    """The camera driver's evidence topic (a few JPEG frames a second) reaches the review
    node's camera evidence; a frame in another format is refused with a logged reason."""
    import rclpy
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CompressedImage, Image
    from store_common.evidence_frames import decode_image
    from store_common.ros import EVENT_QOS, SENSOR_QOS
    from store_interfaces.msg import ReviewRequest
    from store_review.evidence import camera_views

    video = tmp_path / 'cam1.avi'
    _textured_video(video)
    store = load_store(DEMO_STORE)
    plate = next(p for p, box in next(v for v in camera_views(store)
                                      if v.camera_id == 'cam1').plates.items() if box)
    db = tmp_path / 'review.sqlite'
    driver = [executable_path(_spec('store_perception', 'camera_driver', '/store/cameras/cam1')),
              '--ros-args', '-r', '__ns:=/store/cameras/cam1', '-p', 'camera_id:=cam1',
              '-p', f'store_file:={DEMO_STORE}', '-p', f'source:={video}',
              '-p', 'evidence_rate_hz:=4.0']
    review = [executable_path(_spec('store_review', 'review', '/store')), '--ros-args',
              '-r', '__ns:=/store', '-p', f'store_file:={DEMO_STORE}', '-p', f'db_path:={db}',
              '-p', 'port:=0']
    with rclpy.init():
        probe = Probe(rclpy, 'evidence_probe')
        ev_topic = '/store/cameras/cam1/image_evidence/compressed'
        raw_topic = '/store/cameras/cam1/image_raw'
        probe.sub(CompressedImage, ev_topic, SENSOR_QOS)
        probe.sub(Image, raw_topic, SENSOR_QOS)
        junk = probe.node.create_publisher(CompressedImage, ev_topic, SENSOR_QOS)
        req_pub = probe.node.create_publisher(ReviewRequest, '/store/review_requests',
                                              qos_profile=EVENT_QOS)
        probe.start()
        procs = [subprocess.Popen(cmd, env=cam_ros_env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
                 for cmd in (driver, review)]
        try:
            assert probe.wait(ev_topic, 3, 20.0), 'no evidence frames from the driver'
            t_first = time.monotonic()
            time.sleep(3.0)
            n_ev = sum(1 for t, _ in probe.got[ev_topic] if t > t_first)
            # a frame in another format, from a second publisher: refused, never stored
            for _ in range(12):
                now = probe.node.get_clock().now().to_msg()
                m = CompressedImage(format='rgb8; raw', data=bytes(64))
                m.header.stamp = now
                junk.publish(m)
                time.sleep(0.1)
            now_ns = probe.node.get_clock().now().nanoseconds
            start_ns = now_ns - 2 * 10**9
            req = ReviewRequest(request_id=f'review/{plate}@{start_ns}',
                                event_id=f'{plate}@{start_ns}', reason=2, detail='test',
                                gondola_id=plate.split('.')[0], plate_ids=[plate],
                                delta_grams=-330.0, label_chance=1.0)
            req.header.stamp = Time(sec=now_ns // 10**9, nanosec=now_ns % 10**9)
            deadline = time.monotonic() + 20.0
            rows = []
            while time.monotonic() < deadline and not rows:
                req_pub.publish(req)          # transient-local: late joiners get it anyway
                time.sleep(1.0)
                if db.exists():
                    con = sqlite3.connect(f'file:{db}?mode=ro', uri=True, timeout=5.0)
                    rows = con.execute("SELECT name, path FROM evidence WHERE request_id = ? "
                                       "AND kind = 'image' AND name LIKE 'cam1@%'",
                                       (req.request_id,)).fetchall()
                    con.close()
        finally:
            outs = []
            for proc in procs:
                proc.send_signal(signal.SIGINT)
            for proc in procs:
                outs.append(proc.communicate(timeout=20)[0])
            probe.close()
    driver_out, review_out = outs
    assert rows, f'no image evidence from cam1 for {plate}:\n{review_out[-3000:]}'
    # about evidence_rate_hz: 4 a second (first frame of each 250 ms slot of 10 fps)
    assert 8 <= n_ev <= 15, n_ev
    ev = [m for _, m in probe.got[ev_topic] if m.format.endswith('jpeg compressed bgr8')]
    raw = {(m.header.stamp.sec, m.header.stamp.nanosec): m for _, m in probe.got[raw_topic]}
    same = [(e, raw[(e.header.stamp.sec, e.header.stamp.nanosec)]) for e in ev
            if (e.header.stamp.sec, e.header.stamp.nanosec) in raw]
    assert same, 'no evidence frame has the stamp of an image_raw frame'
    e, r = same[-1]
    jpeg = decode_image(bytes(e.data))
    full = np.frombuffer(bytes(r.data), np.uint8).reshape(480, 640, 3)
    assert jpeg.shape == full.shape
    assert np.abs(jpeg.astype(int) - full).mean() < 4.0      # the same picture, JPEG-close
    for _name, path in rows:
        img = cv2.imread(path)
        assert img is not None and img.size, path
    assert 'evidence frame refused: format' in review_out, review_out[-3000:]
    assert all(p.returncode == 0 for p in procs), (driver_out[-2000:], review_out[-2000:])


def _rendered_frames(n=3):
    from store_sim.render import CameraRenderer
    from store_sim.scenario import load_scenario
    store = load_store(DEMO_STORE)
    sc = load_scenario(ROOT / 'config' / 'scenarios' / 'demo.yaml', store)
    r = CameraRenderer(store, store.camera('cam4'), sc)
    return [r.render(t)[0] for t in (0.5, 34.5, 46.8)[:n]]


def test_detector_node_answers_each_image_with_its_header(tmp_path, cam_ros_env):
    import rclpy
    from sensor_msgs.msg import Image
    from store_common.ros import SENSOR_QOS
    from store_interfaces.msg import DetectionArray
    from store_perception.image_conversion import CvBridge

    # ~1 MB images need the shared-memory segments of config/fastdds.xml in this process and the
    # node (with Fast DDS's 512 KiB default most of them are lost on a busy machine)
    assert os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE'), 'source tools/env.sh'
    frames = _rendered_frames()
    cmd = [executable_path(_spec('store_perception', 'detector', '/store')), '--ros-args',
           '-r', '__ns:=/store', '-p', 'camera_ids:=[cam4, cam9]',
           '-p', f'store_file:={DEMO_STORE}', '-p', 'annotated_images:=true']
    bridge = CvBridge()
    with rclpy.init():
        probe = Probe(rclpy, 'detector_probe')
        probe.sub(DetectionArray, '/store/cameras/cam4/detections', 10)
        probe.sub(Image, '/store/cameras/cam4/detections_image', SENSOR_QOS)
        pub = probe.node.create_publisher(Image, '/store/cameras/cam4/image_raw', SENSOR_QOS)
        probe.start()
        proc = subprocess.Popen(cmd, env=cam_ros_env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            # one frame at a time, re-sent until answered (best-effort ~1 MB images may drop)
            topic = '/store/cameras/cam4/detections'
            for k, frame in enumerate(frames):
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline and 1000 + k not in {
                        m.header.stamp.sec for _, m in probe.got[topic]}:
                    msg = bridge.cv2_to_imgmsg(frame, 'bgr8')
                    msg.header.stamp.sec = 1000 + k
                    msg.header.frame_id = 'camera_cam4_optical'
                    pub.publish(msg)
                    time.sleep(0.4)
            got = {m.header.stamp.sec: m for _, m in probe.got['/store/cameras/cam4/detections']}
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=20)
            probe.close()
    assert set(got) == {1000, 1001, 1002}, out
    for sec, arr in got.items():
        assert arr.header.frame_id == 'camera_cam4_optical' and arr.camera_id == 'cam4'
        assert (arr.image_width, arr.image_height) == (640, 480) and arr.inference_ms > 0
        scores = [d.score for d in arr.detections]
        assert scores == sorted(scores, reverse=True)
    assert got[1000].detections == []                       # the empty store
    assert any(d.class_name == 'shopper' for d in got[1002].detections)
    for d in got[1002].detections:
        assert d.id.startswith('cam4/') and d.size_x > 0 and d.size_y > 0
        assert 0 <= d.center_x <= 640 and 0 <= d.center_y <= 480
    assert probe.got['/store/cameras/cam4/detections_image']
    assert proc.returncode == 0, out


SCENARIO = """
scenario:
  store: demo_store
  seed: 11
  duration_s: 9.0
  shoppers:
    - id: acct-cam
      enter_s: 0.5
      exit_s: 8.5
      actions:
        - {t_s: 4.5, kind: take, plate: g1.s2.p2, sku: SPARK-500, quantity: 1}
"""


def test_sim_streams_rendered_cameras_through_drivers_to_the_detector(tmp_path, cam_ros_env):
    import rclpy
    from store_interfaces.msg import DetectionArray

    scenario = tmp_path / 'cam.yaml'
    scenario.write_text(SCENARIO)
    run_dir = tmp_path / 'run'
    store = load_store(DEMO_STORE)
    specs = build_graph(store, GraphOptions(
        mode='sim', params_file=str(PARAMS), run_dir=str(run_dir),
        scenario_file=str(scenario), cameras=True,
        overrides={'sim': {'start_delay_s': 2.0, 'camera_fps': 5.0}}))
    labels = [s.label for s in specs]
    assert {'cameras.cam1.camera_driver', 'cameras.cam4.camera_driver', 'detector'} <= set(
        labels)
    runner = Runner(specs, run_dir, out=sys.stdout, env=cam_ros_env)
    with rclpy.init():
        probe = Probe(rclpy, 'sim_camera_probe')
        for c in store.cameras:
            probe.sub(DetectionArray, f'/store/cameras/{c.id}/detections', 50)
        probe.start()
        try:
            runner.start()
            # rendering 4 cameras x 51 frames first, then 9 s of scenario
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline and runner.check() is None:
                clock = run_dir / 'scenario_clock.json'
                if clock.exists():
                    start_ns = yaml.safe_load(clock.read_text())['scenario_start_ros_ns']
                    if time.time_ns() > start_ns + 10 * 10**9:
                        break
                time.sleep(0.5)
            code = runner.check()
        finally:
            runner.stop()
            probe.close()
    assert code is None, 'a node died'
    start_ns = yaml.safe_load((run_dir / 'scenario_clock.json').read_text())[
        'scenario_start_ros_ns']
    shopper_times = []
    arrays_per_camera = {}
    for c in store.cameras:
        arrays = [m for _, m in probe.got[f'/store/cameras/{c.id}/detections']]
        assert arrays, f'no detections from {c.id}'
        arrays_per_camera[c.id] = len(arrays)
        for a in arrays:
            t_s = (a.header.stamp.sec * 10**9 + a.header.stamp.nanosec - start_ns) / 1e9
            if any(d.class_name == 'shopper' for d in a.detections):
                shopper_times.append(t_s)
    # the shopper is seen while inside the store (image stamps on the scenario clock), and
    # nobody is seen before the entrance
    # (one CPU detector serves four 5 fps cameras: it takes the newest frame of each in turn)
    assert len(shopper_times) >= 3, (shopper_times, arrays_per_camera)
    assert min(shopper_times) > 0.2 and max(shopper_times) < 9.5, shopper_times
    assert (run_dir / 'cameras' / 'cam1.avi').exists()
    # the scenario clock waited for the detector: the first images of every camera were
    # answered before any shopper could enter
    assert 'every camera detected' in (run_dir / 'logs' / 'sim.log').read_text()
