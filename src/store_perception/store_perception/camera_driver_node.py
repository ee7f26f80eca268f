"""Camera driver node: one camera's frames as sensor_msgs/Image + CameraInfo.

Parameters: ``camera_id``; ``store_file`` (the camera's calibration, source, fps and size come
from the store description) and/or ``calibration_file``, ``source`` (device index, file, URL),
``fps``, ``width``, ``height`` overriding it; ``loop`` (files restart at the end);
``reopen_initial_s`` / ``reopen_max_s`` (backoff); ``stale_timeout_s``; ``frame_id`` (default
``camera_<id>_optical``); ``evidence_rate_hz`` / ``evidence_jpeg_quality``.

Publishes, relative to the node's namespace (``/store/cameras/<id>``), ``image_raw`` (bgr8) and
``camera_info`` with sensor-data QoS, ``image_evidence/compressed`` (sensor_msgs/CompressedImage,
JPEG, sensor-data QoS: ``evidence_rate_hz`` of the frames, for the review node's evidence; rviz
shows it with the compressed image transport), and ``/diagnostics``. Stamps are the ROS time when
the frame was read (a live source, or the simulator's stream, delivers frames as they happen; a
file is paced at ``fps`` from when it was opened). A source that fails is reopened with backoff,
reported on diagnostics, and never stops the node. Frames are read in a thread so that a
blocking device or stream never stalls the executor.
"""
from __future__ import annotations

import threading
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from store_common.camera import load_calibration
from store_common import diagnostics
from store_common.description import load_store
from store_common.evidence_frames import encode_jpeg, EVIDENCE_FORMAT
from store_common.ros import declare, run_node, SENSOR_QOS, stamp_ns

from store_perception.camera_source import Backoff, CameraSource, EvidenceThrottle, parse_source
from store_perception.image_conversion import CvBridge


class CameraDriver(Node):

    def __init__(self):
        super().__init__('camera_driver')
        cid = declare(self, 'camera_id', '', 'Camera id in the store description.')
        store_file = declare(self, 'store_file', '', 'Store description YAML (calibration, '
                             'source, fps and size of camera_id); optional with '
                             'calibration_file and source.')
        calib = declare(self, 'calibration_file', '', 'Calibration YAML; overrides the store '
                        'description\'s.')
        source = declare(self, 'source', '', 'Device index, device path, video file or URL; '
                         'overrides the store description\'s.')
        fps = declare(self, 'fps', 0.0, 'Frame rate [Hz]; 0 = from the store description '
                      '(10 without one).', lo=0.0, hi=120.0)
        width = declare(self, 'width', 0, 'Image width [px]; 0 = the calibration\'s.',
                        lo=0, hi=16384)
        height = declare(self, 'height', 0, 'Image height [px]; 0 = the calibration\'s.',
                         lo=0, hi=16384)
        loop = declare(self, 'loop', True, 'Restart a video file at its end.')
        reopen_initial_s = declare(self, 'reopen_initial_s', 0.5, 'First reopen delay after a '
                                   'failure [s]; doubles per failure.', lo=0.01, hi=60.0)
        reopen_max_s = declare(self, 'reopen_max_s', 5.0, 'Longest reopen delay [s].',
                               lo=0.01, hi=600.0)
        stale_timeout_s = declare(self, 'stale_timeout_s', 5.0, 'A stream that delivers '
                                  'nothing for this long is reopened [s].', lo=0.1, hi=600.0)
        diag_period_s = declare(self, 'diagnostics_period_s', 1.0, 'Period of /diagnostics '
                                '[s].', lo=0.1, hi=60.0)
        frame_id = declare(self, 'frame_id', '', 'Image frame; default camera_<id>_optical.')
        evidence_rate_hz = declare(self, 'evidence_rate_hz', 4.0, 'Frames per second also '
                                   'published as JPEG on image_evidence/compressed (the review '
                                   'evidence; 0 = none) [Hz].', lo=0.0, hi=120.0)
        self.evidence_quality = declare(self, 'evidence_jpeg_quality', 85, 'JPEG quality of '
                                        'the evidence frames (1-100).', lo=1, hi=100)
        if not cid:
            raise ValueError('camera_id must be set')
        cam = None
        if store_file:
            cam = load_store(store_file).camera(cid)
        if not calib and cam is None:
            raise ValueError('set store_file or calibration_file')
        self.model = load_calibration(calib) if calib else cam.model
        src = source if source != '' else (cam.source if cam is not None else '')
        if src == '':
            raise ValueError('set source or store_file')
        self.camera_id = cid
        self.fps = fps or (cam.fps if cam is not None else 10.0)
        self.width = width or self.model.width
        self.height = height or self.model.height
        self.frame_id = frame_id or f'camera_{cid}_optical'
        self.source = CameraSource(parse_source(src), self.width, self.height, self.fps,
                                   loop=loop, backoff=Backoff(reopen_initial_s, reopen_max_s),
                                   stale_timeout_s=stale_timeout_s)
        self.bridge = CvBridge()
        self.info = CameraInfo(**self.model.camera_info_fields())
        if (self.width, self.height) != (self.model.width, self.model.height):
            self.get_logger().warn(f'image size {self.width}x{self.height} differs from the '
                                   f'calibration\'s {self.model.width}x{self.model.height}')
        self.pub_image = self.create_publisher(Image, 'image_raw', SENSOR_QOS)
        self.pub_info = self.create_publisher(CameraInfo, 'camera_info', SENSOR_QOS)
        self.evidence = EvidenceThrottle(evidence_rate_hz)
        self.pub_evidence = (self.create_publisher(CompressedImage, 'image_evidence/compressed',
                                                   SENSOR_QOS) if evidence_rate_hz > 0 else None)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_prev = (time.monotonic(), 0)
        self._logged_error = ''
        self.create_timer(diag_period_s, self._diagnostics)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f'camera-{cid}', daemon=True)
        self._thread.start()
        self.get_logger().info(f'camera {cid}: {self.source.kind} {src!s} at {self.fps:g} fps, '
                               f'{self.width}x{self.height}, frame {self.frame_id}')

    def _run(self) -> None:
        while not self._stop.is_set() and rclpy.ok():
            try:
                frame = self.source.read()
            except Exception as exc:   # noqa: BLE001 - a camera must never take the node down
                self.source._failed(f'{type(exc).__name__}: {exc}')
                frame = None
            st = self.source.state
            if frame is None:
                if st.last_error and st.last_error != self._logged_error:
                    self.get_logger().warn(f'camera {self.camera_id}: {st.last_error}; '
                                           f'reopening in up to {self.source.backoff.next_s:g} s')
                    self._logged_error = st.last_error
                continue
            if self._logged_error:
                self.get_logger().info(f'camera {self.camera_id}: streaming again')
                self._logged_error = ''
            stamp = self.get_clock().now().to_msg()
            msg = self.bridge.cv2_to_imgmsg(frame, 'bgr8')
            msg.header.stamp = stamp
            msg.header.frame_id = self.frame_id
            self.info.header.stamp = stamp
            self.info.header.frame_id = self.frame_id
            try:
                self.pub_image.publish(msg)
                self.pub_info.publish(self.info)
            except Exception:   # noqa: BLE001 - the context is shutting down
                return
            # after image_raw: the detector's frame never waits for the JPEG encoder
            if self.pub_evidence is not None and self.evidence.due(stamp_ns(stamp)):
                if not self._publish_evidence(msg.header, frame):
                    return

    def _publish_evidence(self, header, frame) -> bool:
        """One evidence frame; False once the context is shutting down."""
        try:
            data = encode_jpeg(frame, self.evidence_quality)
        except (ValueError, cv2.error) as exc:
            self.get_logger().warn(f'camera {self.camera_id}: evidence frame not sent: {exc}',
                                   throttle_duration_sec=10.0)
            return True
        try:
            self.pub_evidence.publish(CompressedImage(header=header, format=EVIDENCE_FORMAT,
                                                      data=data))
        except Exception:   # noqa: BLE001 - the context is shutting down
            return False
        return True

    def _diagnostics(self) -> None:
        st = self.source.state
        now = time.monotonic()
        t0, n0 = self._diag_prev
        rate = (st.frames - n0) / max(now - t0, 1e-6)
        self._diag_prev = (now, st.frames)
        if not st.connected:
            level, message = 'error', f'disconnected: {st.last_error}'
        elif rate < 0.5 * self.fps:
            level, message = 'warn', f'frame rate {rate:.1f} Hz, expected ' \
                                                    f'{self.fps:g} Hz'
        else:
            level, message = 'ok', 'streaming'
        age = '' if st.last_frame_mono_s is None else f'{now - st.last_frame_mono_s:.3f}'
        values = {'connected': str(st.connected).lower(), 'source': str(self.source.source),
                  'kind': self.source.kind, 'frames': str(st.frames), 'frame_rate_hz':
                  f'{rate:.2f}', 'expected_frame_rate_hz': f'{self.fps:g}',
                  'opens': str(st.opens), 'failures': str(st.failures), 'loops': str(st.loops),
                  'last_frame_age_s': age, 'last_error': st.last_error}
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status.append(diagnostics.status(f'store/camera/{self.camera_id}',
                                             str(self.source.source), level, message, values))
        self.pub_diag.publish(msg)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.source.close()


def main(args=None):
    return run_node('camera_driver', CameraDriver, (ValueError, KeyError, OSError),
                    args=args, startup_exit_code=2)


if __name__ == '__main__':
    raise SystemExit(main())
