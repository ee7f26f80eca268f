"""The store detector: ultralytics YOLO on BGR images -> plain detections; SKU from colour.

Classes (see ``models/DATA_CARD.md`` for why): 0 shopper, 1 hand, 2 product (a product unit in a
shopper's hand). A product box gets a SKU from the colour of its crop, the nearest catalog
``look.color`` in chromaticity and brightness (:class:`SkuByColour`).

Two stages when a crop model is given (``crop_model_path``): the full-frame model finds the
shoppers; every shopper box scoring at least ``proposal_conf`` (0.01: low on purpose, see the
data card) is cut out of the full-resolution image as a square window grown by ``crop_margin``
(:mod:`store_perception.crops`), resized to ``crop_size``, and the crop model (classes hand,
product) runs on the batch of crops; its boxes are mapped back to image pixels and duplicates
from overlapping crops merged by per-class NMS. The full-frame model's own hand/product boxes
are then dropped. Callers see one detector.

Runtimes (``runtime``): ``onnx_int8`` runs the full-frame model's int8 export
(``store_yolo.int8.onnx``) and the later stages' fp32 exports; ``onnx`` runs the .onnx export
shipped next to each .pt file on ONNX
Runtime (:mod:`store_perception.onnx_runtime`: ultralytics' letterbox, NMS and box scaling redone
in NumPy; torch is never imported on this path); ``torch`` runs the .pt weights with ultralytics'
``predict``; ``auto`` (default) = onnx where the .onnx files exist, else torch. Images of one
size in a batch (``detect_batch``: one frame per camera) run as one graph call per stage.

Never imports rclpy; the node (``detector_node``) and the benchmark share this code path.
"""
from __future__ import annotations

import math
import pathlib
import time
from dataclasses import dataclass, replace

import numpy as np

from store_perception.crops import cut, distinct_windows, to_image
from store_perception.hand_sku import HAND_WEIGHTS, HandSkuClassifier, ultralytics_or_error
from store_perception.onnx_runtime import INT8_SUFFIX, onnx_path, pick_runtime

CLASS_NAMES = ('shopper', 'hand', 'product')
MODELS_DIR = pathlib.Path(__file__).resolve().parents[1] / 'models'
DEFAULT_WEIGHTS = 'store_yolo.pt'
CROP_WEIGHTS = 'store_yolo_crops.pt'     # second stage: hands and products on shopper crops


def default_model_path(name: str = DEFAULT_WEIGHTS) -> str:
    """Shipped weights by file name: the package share when installed, else the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory
        p = pathlib.Path(get_package_share_directory('store_perception')) / 'models' / name
        if p.exists():
            return str(p)
    except Exception:   # noqa: BLE001 - no ament index (plain pytest)
        pass
    return str(MODELS_DIR / name)


def resolve_model_path(path: str | None, default: str = DEFAULT_WEIGHTS) -> pathlib.Path:
    """A weights path as given; empty = ``default`` shipped; a bare file name that is not a
    file here = the shipped weights of that name (``store_yolo_crops.pt``)."""
    if not path:
        return pathlib.Path(default_model_path(default))
    p = pathlib.Path(path)
    if not p.is_file() and p.name == str(path):
        shipped = pathlib.Path(default_model_path(p.name))
        if shipped.is_file():
            return shipped
    return p


class TorchYolo:
    """ultralytics ``YOLO.predict`` on .pt weights, with :class:`onnx_runtime.OnnxYolo`'s
    interface."""

    def __init__(self, path: pathlib.Path, device: str = 'cpu'):
        self.yolo = _load(path)
        self.names = dict(self.yolo.names)
        self.path, self.device = pathlib.Path(path), device

    def predict(self, images, imgsz: int, conf: float, iou: float, max_det: int = 300):
        results = self.yolo.predict(images, imgsz=imgsz, conf=conf, iou=iou,
                                    device=self.device, max_det=max_det, verbose=False)
        out = []
        for res in results:
            b = res.boxes
            out.append((b.xyxy.cpu().numpy().astype(float), b.conf.cpu().numpy().astype(float),
                        b.cls.cpu().numpy().astype(int)))
        return out


def load_yolo(path: pathlib.Path, runtime: str = 'auto', device: str = 'cpu',
              threads: int = 0):
    """A detection model with ``names`` and ``predict(images, imgsz, conf, iou, max_det)``
    -> per image (xyxy, scores, class ids), on the runtime :func:`pick_runtime` chooses."""
    if not pathlib.Path(path).is_file() and not onnx_path(path, runtime).is_file():
        raise FileNotFoundError(f'detector weights not found: {path} (train them with '
                                f'train_detector; see models/DATA_CARD.md)')
    kind, file = pick_runtime(path, runtime)
    if kind == 'onnx':
        if device not in ('cpu', ''):
            raise ValueError(f'runtime onnx runs on the CPU; device {device!r} needs runtime '
                             f'torch')
        from store_perception.onnx_runtime import OnnxYolo
        return OnnxYolo(file, threads=threads)
    return TorchYolo(file, device)


@dataclass
class Det:
    class_id: int
    class_name: str
    score: float
    x0: float        # box [px]: left, top, right, bottom
    y0: float
    x1: float
    y1: float
    sku: str = ''
    sku_score: float = 0.0

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    @property
    def size(self) -> tuple[float, float]:
        return self.x1 - self.x0, self.y1 - self.y0


class SkuByColour:
    """Nearest catalog colour of a crop's central pixels (chromaticity + some brightness)."""

    def __init__(self, catalog, temperature: float = 0.04):
        self.skus = [s for s, p in catalog.products.items() if 'color' in p.look]
        rgb = np.array([catalog[s].look['color'] for s in self.skus], dtype=float)
        self.ref = self._features(rgb)
        self.temperature = temperature

    @staticmethod
    def _features(rgb: np.ndarray) -> np.ndarray:
        s = rgb.sum(axis=-1, keepdims=True) + 1e-6
        chroma = rgb / s
        return np.concatenate([chroma, 0.15 * rgb.max(axis=-1, keepdims=True) / 255.0], axis=-1)

    def classify(self, image_bgr: np.ndarray, det: Det) -> tuple[str, float]:
        if not self.skus:
            return '', 0.0
        h, w = image_bgr.shape[:2]
        cx, cy = det.center
        bw, bh = det.size
        x0, x1 = int(max(0, cx - bw * 0.3)), int(min(w, cx + bw * 0.3 + 1))
        y0, y1 = int(max(0, cy - bh * 0.3)), int(min(h, cy + bh * 0.3 + 1))
        crop = image_bgr[y0:y1, x0:x1].reshape(-1, 3)[:, ::-1].astype(float)
        if len(crop) == 0:
            return '', 0.0
        f = self._features(np.median(crop, axis=0)[None])[0]
        d = np.linalg.norm(self.ref - f, axis=1)
        p = np.exp(-(d - d.min()) / self.temperature)
        p /= p.sum()
        k = int(np.argmax(p))
        return self.skus[k], float(p[k])


class Detector:
    """YOLO weights from a file (never downloaded) on ONNX Runtime (CPU) or torch ('cpu' or a
    CUDA device); with ``crop_model_path`` a second stage on crops around the shoppers, with
    ``hand_model_path`` a third on the hands (module docstring)."""

    def __init__(self, model_path: str | None = None, imgsz: int = 416, conf: float = 0.25,
                 iou: float = 0.5, device: str = 'cpu', catalog=None, max_det: int = 100,
                 crop_model_path: str | None = None, crop_size: int = 224,
                 crop_margin: float = 0.25, proposal_conf: float = 0.01,
                 crop_max_inside: float = 1.0, hand_model_path: str | None = None,
                 hand_size: int = 64,
                 hand_proposal_conf: float = 0.05, runtime: str = 'auto', threads: int = 0):
        path = resolve_model_path(model_path)
        self.model = load_yolo(path, runtime, device, threads)
        # onnx_int8 quantizes the full-frame stage only: int8 crop and hand stages found 1.5-2.4x
        # the false products in hands on held-out frames (models/DATA_CARD.md)
        later_runtime = 'onnx' if runtime == 'onnx_int8' else runtime
        self.runtime = ('torch' if isinstance(self.model, TorchYolo) else 'onnx_int8'
                        if self.model.path.name.endswith(INT8_SUFFIX) else 'onnx')
        self.names = dict(self.model.names)
        self.imgsz, self.conf, self.iou, self.device = imgsz, conf, iou, device
        self.max_det = max_det
        self.sku = SkuByColour(catalog) if catalog is not None else None
        self.model_path = str(path)
        self.crop_model = None
        self.crop_model_path = ''
        self.crop_size, self.crop_margin = int(crop_size), float(crop_margin)
        self.proposal_conf = float(proposal_conf)
        self.crop_max_inside = float(crop_max_inside)
        if crop_model_path:
            cpath = resolve_model_path(crop_model_path, CROP_WEIGHTS)
            self.crop_model = load_yolo(cpath, later_runtime, device, threads)
            self.crop_names = dict(self.crop_model.names)
            self.crop_model_path = str(cpath)
        self.hand_model = None
        self.hand_proposal_conf = float(hand_proposal_conf)
        if hand_model_path:
            if self.crop_model is None:
                raise ValueError('hand_model_path needs crop_model_path: the hand SKU stage '
                                 'classifies the crop model\'s hand boxes')
            self.hand_model = HandSkuClassifier(resolve_model_path(hand_model_path,
                                                                   HAND_WEIGHTS),
                                                size=hand_size, device=device,
                                                runtime=later_runtime, threads=threads)

    @property
    def two_stage(self) -> bool:
        return self.crop_model is not None

    @property
    def concurrent(self) -> bool:
        """Whether several threads may detect at once: every stage on ONNX Runtime (whose
        sessions run concurrently; ultralytics' predictors keep per-call state)."""
        return self.runtime != 'torch' and (
            self.crop_model is None or not isinstance(self.crop_model, TorchYolo)) and (
            self.hand_model is None or self.hand_model.runtime != 'torch')

    def warmup(self, width: int = 640, height: int = 480) -> None:
        self.detect(np.zeros((height, width, 3), np.uint8))
        if self.two_stage:
            self._crop_stage([np.zeros((height, width, 3), np.uint8)],
                             [[Det(0, 'shopper', 1.0, 280, 160, 340, 300)]], self.conf)
        if self.hand_model is not None:
            self.hand_model.classify(np.zeros((height, width, 3), np.uint8),
                                     [(300, 200, 308, 208)])

    def detect(self, image_bgr: np.ndarray) -> tuple[list[Det], float]:
        """(detections sorted by score, inference time [ms])."""
        return self.detect_batch([image_bgr])[0]

    def detect_batch(self, images: list[np.ndarray],
                     crop_select: list | None = None,
                     first_stage_hands: list | None = None,
                     shoppers: list | None = None) -> list[tuple[list[Det], float]]:
        """Per image (detections sorted by score, inference time [ms] per image: all stages,
        shared equally over the batch).

        ``crop_select`` (two stages; the scheduler's choice, one entry per image): None = the
        full-frame stage only (shopper boxes), a callable = crops (and the hand stage) only
        around the shopper proposals it accepts (``Det`` -> bool), True = every proposal. Default:
        every image, every proposal. ``first_stage_hands`` (two stages): a list that receives,
        per image, the full-frame model's own hand and product boxes scoring at least ``conf``
        (not returned as detections; the scheduler takes them as reaches).

        ``shoppers`` (two stages): one entry per image, in and out. A list of shopper ``Det``
        (an earlier frame's proposals of the same camera) stands in for the image's full-frame
        stage, which is not run on it: its crops are cut around them, and those scoring at
        least ``conf`` are returned with the image's hands and products (it has no first-stage
        hands). A None entry is replaced by the image's own shopper proposals (every box from
        ``proposal_conf``), for reuse."""
        start = time.perf_counter()
        low = min(self.conf, self.hand_proposal_conf) if self.hand_model else self.conf
        per_image = self._stages(images, low, crop_select, first_stage_hands, shoppers)
        if self.hand_model is not None:
            per_image = self._hand_stage(images, per_image)
        per_image = [[d for d in dets if d.score >= self.conf] for dets in per_image]
        ms = (time.perf_counter() - start) * 1000 / max(1, len(images))
        out = []
        for img, dets in zip(images, per_image):
            if self.sku is not None:
                for d in dets:
                    if d.class_name == 'product' and not d.sku:
                        d.sku, d.sku_score = self.sku.classify(img, d)
            dets.sort(key=lambda d: -d.score)
            out.append((dets[:self.max_det], ms))
        return out

    def _stages(self, images: list[np.ndarray], crop_conf: float,
                crop_select: list | None = None,
                first_stage_hands: list | None = None,
                given: list | None = None) -> list[list[Det]]:
        """Full-frame detections, and with a crop model its hands and products (scoring at
        least ``crop_conf``) in place of the full-frame model's (around the shoppers
        ``crop_select`` accepts; ``given``: :meth:`detect_batch`'s ``shoppers``)."""
        if given is not None and (not self.two_stage or len(given) != len(images)):
            raise ValueError('shoppers needs two stages and one entry per image')
        run = [k for k in range(len(images)) if given is None or given[k] is None]
        conf = min(self.conf, self.proposal_conf) if self.two_stage else self.conf
        results = self.model.predict([images[k] for k in run], imgsz=self.imgsz, conf=conf,
                                     iou=self.iou, max_det=self.max_det) if run else []
        per_image: list[list[Det]] = [[] for _ in images]
        for k, res in zip(run, results):
            per_image[k] = _dets(res, self.names)
        if not self.two_stage:
            return per_image
        if first_stage_hands is not None:
            first_stage_hands[:] = [[d for d in dets if d.class_name != 'shopper' and
                                     d.score >= self.conf] for dets in per_image]
        shoppers = [[d for d in dets if d.class_name == 'shopper'] for dets in per_image]
        if given is not None:
            for k in range(len(images)):
                if given[k] is None:
                    given[k] = list(shoppers[k])
                else:
                    shoppers[k] = [replace(d) for d in given[k] if d.class_name == 'shopper']
        proposals = shoppers
        if crop_select is not None:
            if len(crop_select) != len(images):
                raise ValueError('crop_select needs one entry per image')
            proposals = [[] if sel is None else s if sel is True else [d for d in s if sel(d)]
                         for s, sel in zip(shoppers, crop_select)]
        small = self._crop_stage(images, proposals, crop_conf)
        return [s + extra for s, extra in zip(shoppers, small)]

    def hand_proposals(self, image_bgr: np.ndarray, conf: float) -> list[tuple]:
        """Hand boxes (x0, y0, x1, y1) of the crop stage scoring at least ``conf`` (the hand
        SKU stage's input; also how its training set is built)."""
        if not self.two_stage:
            raise ValueError('hand proposals need the crop model (crop_model_path)')
        return [(d.x0, d.y0, d.x1, d.y1) for d in self._stages([image_bgr], conf)[0]
                if d.class_name == 'hand' and d.score >= conf]

    def _hand_stage(self, images: list[np.ndarray], per_image: list[list[Det]]):
        """Products from the hand SKU classifier on each hand proposal. A crop-model product
        box near the hand (any score the crop stage kept) is a second, independent opinion:
        the product's score is then 1 - (1 - p_classifier)(1 - p_crop) and the crop model's
        box is kept (better than the prior's). Crop-model products no hand proposal explains
        stay as they are."""
        items, owners = [], []
        for k, (img, dets) in enumerate(zip(images, per_image)):
            for d in dets:
                if d.class_name == 'hand' and d.score >= self.hand_proposal_conf:
                    items.append((img, (d.x0, d.y0, d.x1, d.y1)))
                    owners.append((k, d))
        answers = self.hand_model.classify_many(items)
        out = [[d for d in dets if d.class_name != 'product'] for dets in per_image]
        crop_products = [[d for d in dets if d.class_name == 'product'] for dets in per_image]
        taken: set[int] = set()
        for (k, hand), ans in zip(owners, answers):
            box, score = ans.box, ans.p_product
            side = max(hand.size)
            near = [p for p in crop_products[k] if id(p) not in taken and
                    np.hypot(p.center[0] - hand.center[0], p.center[1] - hand.center[1]) <= side]
            if near:
                best = max(near, key=lambda p: p.score)
                score = 1.0 - (1.0 - score) * (1.0 - best.score)
                if score < self.conf:
                    continue
                taken.add(id(best))
                box = (best.x0, best.y0, best.x1, best.y1)
            elif score < self.conf:
                continue
            out[k].append(Det(CLASS_NAMES.index('product'), 'product', score, *box,
                              sku=ans.sku, sku_score=ans.sku_score))
        for k, prods in enumerate(crop_products):
            keep = [p for p in prods if id(p) not in taken]
            cand = [d for d in out[k] if d.class_name == 'product'] + keep
            if keep and cand:
                idx = nms(np.array([(d.x0, d.y0, d.x1, d.y1) for d in cand]),
                          np.array([d.score for d in cand]), self.iou)
                out[k] = [d for d in out[k] if d.class_name != 'product'] + [cand[i] for i in idx]
        return out

    def _crop_stage(self, images: list[np.ndarray], shoppers: list[list[Det]],
                    conf: float) -> list[list[Det]]:
        """Hands and products per image (scoring at least ``conf``) from crops around its
        shoppers (those scoring at least proposal_conf)."""
        crops, owners = [], []
        for k, (img, dets) in enumerate(zip(images, shoppers)):
            h, w = img.shape[:2]
            boxes = [((d.x0, d.y0, d.x1, d.y1), d.score) for d in dets
                     if d.score >= self.proposal_conf]
            for win in distinct_windows(boxes, w, h, self.crop_margin, self.crop_max_inside):
                crops.append(cut(img, win, self.crop_size))
                owners.append((k, win))
        found: list[list] = [[] for _ in images]     # per image: (xyxy, score, class name)
        if crops:
            results = self.crop_model.predict(crops, imgsz=self.crop_size, conf=conf,
                                              iou=self.iou, max_det=self.max_det)
            for (k, win), (boxes, scores, classes) in zip(owners, results):
                if not len(boxes):
                    continue
                xyxy = to_image(boxes, win, self.crop_size)
                for b, c, s in zip(xyxy, classes, scores):
                    found[k].append((b, float(s), self.crop_names.get(int(c), str(c))))
        out = []
        for k, boxes in enumerate(found):
            h, w = images[k].shape[:2]
            dets = []
            for name in sorted({n for _, _, n in boxes}):
                cls = [(b, s) for b, s, n in boxes if n == name]
                keep = nms(np.array([b for b, _ in cls]), np.array([s for _, s in cls]),
                           self.iou)
                cid = CLASS_NAMES.index(name) if name in CLASS_NAMES else -1
                for i in keep:
                    x0, y0, x1, y1 = np.clip(cls[i][0], 0, [w, h, w, h])
                    dets.append(Det(cid, name, cls[i][1], float(x0), float(y0), float(x1),
                                    float(y1)))
            out.append(dets)
        return out


def _load(path: pathlib.Path):
    ul = ultralytics_or_error()
    if not path.is_file():
        raise FileNotFoundError(f'detector weights not found: {path} (train them with '
                                f'train_detector; see models/DATA_CARD.md)')
    return ul.YOLO(str(path), task='detect')


def _dets(res, names: dict) -> list[Det]:
    """Dets of one image's (xyxy, scores, class ids)."""
    xyxy, scores, classes = res
    out = []
    for (x0, y0, x1, y1), c, s in zip(xyxy, classes, scores):
        out.append(Det(int(c), names.get(int(c), str(c)), float(s), float(x0), float(y0),
                       float(x1), float(y1)))
    return out


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression, best score first."""
    xyxy = np.asarray(xyxy, float).reshape(-1, 4)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    order = np.argsort(-np.asarray(scores), kind='stable')
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(int(i))
        ix = np.clip(np.minimum(xyxy[i, 2], xyxy[rest, 2]) - np.maximum(xyxy[i, 0], xyxy[rest, 0]),
                     0, None)
        iy = np.clip(np.minimum(xyxy[i, 3], xyxy[rest, 3]) - np.maximum(xyxy[i, 1], xyxy[rest, 1]),
                     0, None)
        inter = ix * iy
        union = area[i] + area[rest] - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[overlap <= iou_threshold]
    return keep


# --- evaluation helpers (tests, benchmark) ----------------------------------------------------
def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# a product in hand and a box (or hand proposal) whose centres lie this close are one product
# (make_hand_dataset's labels, centre_matches)
PRODUCT_MATCH_PX = 8.0


def centre_matches(truth: list[dict], dets: list[Det], cls: str,
                   max_px: float = PRODUCT_MATCH_PX) -> tuple[int, int, int]:
    """(found, total, false) for boxes of class ``cls`` judged by where they are, not by IoU.

    A truth box is found when a detection's centre lies within ``max_px`` of its centre (one
    detection per truth box, nearest pairs first). A detection is false when its centre is
    farther than ``max_px`` from every truth box; a second box on a found object is neither.
    For products in hand: they are 6-12 px, the third stage places their box by a prior around
    the hand, and the fusion uses a product box only through its centre (which shopper box and
    hand it falls on), so IoU >= 0.5 measures the box's placement, not whether the product was
    seen where it is."""
    gts = [t['bbox'] for t in truth if t['cls'] == cls]
    cand = [d.center for d in dets if d.class_name == cls]
    dist = np.array([[math.hypot(cx - (g[0] + g[2]) / 2, cy - (g[1] + g[3]) / 2)
                      for (cx, cy) in cand] for g in gts]).reshape(len(gts), len(cand))
    pairs = sorted((dist[i, j], i, j) for i in range(len(gts)) for j in range(len(cand))
                   if dist[i, j] <= max_px)
    used_t, used_d = set(), set()
    for _, i, j in pairs:
        if i not in used_t and j not in used_d:
            used_t.add(i)
            used_d.add(j)
    false = int(np.sum(dist.min(axis=0) > max_px)) if len(gts) else len(cand)
    return len(used_t), len(gts), false


def recall(truth: list[dict], dets: list[Det], cls: str, min_iou: float = 0.5) -> tuple[int, int]:
    """(matched, total) truth boxes of class ``cls`` (greedy one-to-one by IoU)."""
    gts = [t['bbox'] for t in truth if t['cls'] == cls]
    cand = [(d.x0, d.y0, d.x1, d.y1) for d in dets if d.class_name == cls]
    used = set()
    hit = 0
    for g in gts:
        best, bi = 0.0, -1
        for i, c in enumerate(cand):
            if i not in used:
                v = iou(g, c)
                if v > best:
                    best, bi = v, i
        if best >= min_iou:
            used.add(bi)
            hit += 1
    return hit, len(gts)
