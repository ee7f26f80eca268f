"""The detector node with ``backend: pose`` and ``backend: people`` over DDS, on a real frame
(OpenCV's vtest.avi, stored in tests/data/real/frames): it publishes shopper and hand boxes in
the same DetectionArray as the YOLO path, follows the camera as a stream, and survives an image
it cannot read."""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import threading
import time

import cv2
import pytest

from store_bringup.graph import NodeSpec
from store_bringup.runner import executable_path

ROOT = pathlib.Path(__file__).resolve().parents[2]
FRAME = ROOT / 'tests' / 'data' / 'real' / 'frames' / 'vtest_0452.jpg'   # 3 people, 768x576

pytestmark = pytest.mark.graph


@pytest.mark.parametrize('backend', ['pose', 'people'])
def test_pose_backend_node_finds_people_on_a_real_frame(ros_env, backend):
    import rclpy
    from sensor_msgs.msg import Image
    from store_common.ros import SENSOR_QOS
    from store_interfaces.msg import DetectionArray
    from store_perception.image_conversion import CvBridge

    assert os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE'), 'source tools/env.sh'
    frame = cv2.imread(str(FRAME))
    assert frame is not None
    cmd = [executable_path(NodeSpec('store_perception', 'detector', 'detector', '/store')),
           '--ros-args', '-r', '__ns:=/store', '-p', 'camera_ids:=[cam1]',
           '-p', f'backend:={backend}']
    bridge = CvBridge()
    got: list = []
    topic = '/store/cameras/cam1/detections'
    with rclpy.init():
        node = rclpy.create_node('pose_probe')
        node.create_subscription(DetectionArray, topic, got.append, 10)
        pub = node.create_publisher(Image, '/store/cameras/cam1/image_raw', SENSOR_QOS)
        stop = threading.Event()

        def spin():
            while not stop.is_set():
                rclpy.spin_once(node, timeout_sec=0.05)
        th = threading.Thread(target=spin, daemon=True)
        th.start()
        proc = subprocess.Popen(cmd, env=ros_env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            # an image that says 640x480 bgr8 but carries 12 bytes: refused, logged, no crash
            bad = Image(height=480, width=640, encoding='bgr8', step=1920, data=bytes(12))
            # then the real frame as a stream: the detector looks at two windows a frame, so it
            # takes a few frames to have looked everywhere
            deadline = time.monotonic() + 90
            k = 0
            while time.monotonic() < deadline:
                if k == 0:
                    bad.header.stamp.sec = 999
                    pub.publish(bad)
                msg = bridge.cv2_to_imgmsg(frame, 'bgr8')
                msg.header.stamp.sec = 1000 + k
                msg.header.frame_id = 'camera_cam1_optical'
                pub.publish(msg)
                k += 1
                time.sleep(0.3)
                if sum(1 for m in got if m.header.stamp.sec >= 1000) >= 24:
                    break
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=20)
            stop.set()
            th.join()
            node.destroy_node()
    answers = [m for m in got if m.header.stamp.sec >= 1000]
    assert len(answers) >= 20, out
    assert all(m.header.stamp.sec != 999 for m in got), out          # the bad image: no answer
    last = answers[-1]
    assert last.camera_id == 'cam1' and last.header.frame_id == 'camera_cam1_optical'
    assert (last.image_width, last.image_height) == (768, 576)
    shoppers = [d for d in last.detections if d.class_name == 'shopper']
    hands = [d for d in last.detections if d.class_name == 'hand']
    assert len(shoppers) >= 2, [(d.class_name, d.score) for d in last.detections]
    for h in hands:
        assert any(abs(h.center_x - s.center_x) <= s.size_x / 2 + 4 and
                   abs(h.center_y - s.center_y) <= s.size_y / 2 + 4 for s in shoppers)
    scores = [d.score for d in last.detections]
    assert scores == sorted(scores, reverse=True)
    assert proc.returncode == 0, out
