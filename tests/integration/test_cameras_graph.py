"""Camera driver and detector nodes over DDS: a real video file, its removal and return; the
detector answering a camera's images; the simulated store streaming its rendered cameras
through the drivers to the detector."""
from __future__ import annotations

import os
import pathlib
import random
import signal
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
