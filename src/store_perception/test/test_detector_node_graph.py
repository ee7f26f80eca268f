"""The detector node over DDS with the store description: detections with the shopper's torso
colour, the schedule (shoppers at the tracking rate while the plates are quiet), and per-camera
/diagnostics in which every frame is accounted for; bad plate weights change nothing."""
from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import threading
import time

import pytest

from store_bringup.graph import NodeSpec
from store_bringup.runner import executable_path
from store_common.description import load_store
from store_sim.render import CameraRenderer
from store_sim.scenario import load_scenario

ROOT = pathlib.Path(__file__).resolve().parents[3]
STORE = ROOT / 'config' / 'stores' / 'demo.yaml'
SCENARIO = ROOT / 'config' / 'scenarios' / 'demo.yaml'
CAMS = ('cam1', 'cam2')

pytestmark = pytest.mark.graph


def test_detector_node_schedules_reports_and_colours(monkeypatch, tmp_path):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from store_common.ros import RELIABLE_STREAM_QOS, SENSOR_QOS
    from store_interfaces.msg import DetectionArray, PlateWeight, PlateWeights
    from store_perception.image_conversion import CvBridge

    assert os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE'), 'source tools/env.sh'
    monkeypatch.setenv('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(101, 200)))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    store = load_store(STORE)
    sc = load_scenario(SCENARIO, store)
    frames = {c.id: CameraRenderer(store, c, sc).render(34.6)[0] for c in store.cameras
              if c.id in CAMS}
    cmd = [executable_path(NodeSpec('store_perception', 'detector', 'detector', '/store')),
           '--ros-args', '-r', '__ns:=/store', '-p', f'camera_ids:=[{",".join(CAMS)}]',
           '-p', f'store_file:={STORE}', '-p', 'crop_model_path:=store_yolo_crops.pt',
           '-p', 'hand_model_path:=store_hand_sku.pt', '-p', 'conf_threshold:=0.3',
           '-p', 'shopper_rate_hz:=2.0', '-p', 'diagnostics_period_s:=0.5',
           '-p', 'reach_px:=0.0', '-p', 'activity_hold_s:=0.0',
           '-p', f'summary_file:={tmp_path / "summary.json"}']
    bridge = CvBridge()
    got: list = []
    diags: list = []
    with rclpy.init():
        node = rclpy.create_node('detector_probe')
        for cid in CAMS:
            node.create_subscription(DetectionArray, f'/store/cameras/{cid}/detections',
                                     got.append, 10)
        node.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 50)
        pubs = {cid: node.create_publisher(Image, f'/store/cameras/{cid}/image_raw',
                                           SENSOR_QOS) for cid in CAMS}
        plates = node.create_publisher(PlateWeights, '/store/pc_g1/plate_weights',
                                       RELIABLE_STREAM_QOS)
        stop = threading.Event()

        def spin():
            while not stop.is_set():
                rclpy.spin_once(node, timeout_sec=0.05)
        th = threading.Thread(target=spin, daemon=True)
        th.start()
        proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        sent = 0
        try:
            deadline = time.monotonic() + 120
            k = 0
            while time.monotonic() < deadline:
                stamp_ns = 1000 * 10**9 + k * 10**8          # 10 frames/s of sensor time
                for cid in CAMS:
                    msg = bridge.cv2_to_imgmsg(frames[cid], 'bgr8')
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
                    msg.header.frame_id = f'camera_{cid}_optical'
                    pubs[cid].publish(msg)
                    sent += 1
                bad = PlateWeights(controller_id='pc_g1', weights=[
                    PlateWeight(plate_id='nope', weight_grams=1e9, valid=True),
                    PlateWeight(plate_id='g1.s1.p1', weight_grams=float('nan'), valid=True)])
                bad.weights[1].stamp.sec = 1000 + k // 10
                plates.publish(bad)
                k += 1
                time.sleep(0.1)
                if k >= 40 and len(got) >= 8 and diags:
                    break
            time.sleep(1.5)                                   # a report after the last frame
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
            stop.set()
            th.join()
            node.destroy_node()
    assert len(got) >= 8, out
    shoppers = [d for m in got for d in m.detections if d.class_name == 'shopper']
    assert shoppers, out
    for d in shoppers:
        assert len(d.torso_rgb) == 3 and all(0 <= v <= 255 for v in d.torso_rgb)
    assert all(len(d.torso_rgb) == 0 for m in got for d in m.detections
               if d.class_name != 'shopper')
    # quiet plates (no load-cell change; a reach holds for no time): shoppers only, at 2 Hz
    # of sensor time
    full = [m for m in got if any(d.class_name != 'shopper' for d in m.detections)]
    assert len(full) <= 2, out
    stamps = sorted({m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got})
    assert sum(b - a < 4 * 10**8 for a, b in zip(stamps, stamps[1:])) <= 2, stamps
    last = {}
    for arr in diags:
        for st in arr.status:
            if st.name.startswith('store/detector/'):
                last[st.name] = {kv.key: kv.value for kv in st.values}
    assert set(last) == {f'store/detector/{c}' for c in CAMS}, last
    for name, v in last.items():
        keys = ('frames_in', 'processed_full', 'processed_shoppers', 'skipped_by_schedule',
                'dropped', 'failed')
        n = {k: int(v[f'total_{k}']) for k in keys}
        assert n['frames_in'] >= 15 and n['processed_full'] <= 2, (name, n)
        assert n['skipped_by_schedule'] >= n['frames_in'] // 2, (name, n)
        accounted = (n['processed_shoppers'] + n['skipped_by_schedule'] + n['dropped']
                     + n['failed'])
        assert n['frames_in'] - 1 <= accounted <= n['frames_in'], (name, n)
    assert proc.returncode == 0, out
    # at stop: one line of run totals in the log, and the same totals as JSON
    assert sum('run totals:' in line for line in out.splitlines()) == 1, out
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert set(summary['cameras']) == set(CAMS)
    for cid in CAMS:
        diag_in = int(last[f'store/detector/{cid}']['total_frames_in'])
        assert summary['cameras'][cid]['frames_in'] >= diag_in, (summary, diag_in)
    assert summary['overall']['frames_in'] == sum(c['frames_in']
                                                  for c in summary['cameras'].values())
    assert summary['overall']['latency_p95_ms'] >= summary['overall']['latency_p50_ms'] > 0
