"""The store detector: ultralytics YOLO on BGR images -> plain detections; SKU from colour.

Classes (see ``models/DATA_CARD.md`` for why): 0 shopper, 1 hand, 2 product (a product unit in a
shopper's hand). A product box gets a SKU from the colour of its crop, the nearest catalog
``look.color`` in chromaticity and brightness (:class:`SkuByColour`).

Never imports rclpy; the node (``detector_node``) and the benchmark share this code path.
"""
from __future__ import annotations

import pathlib
import time
from dataclasses import dataclass

import numpy as np

CLASS_NAMES = ('shopper', 'hand', 'product')
MODELS_DIR = pathlib.Path(__file__).resolve().parents[1] / 'models'
DEFAULT_WEIGHTS = 'store_yolo.pt'


def default_model_path() -> str:
    """The shipped weights: the package share when installed, else the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory
        p = pathlib.Path(get_package_share_directory('store_perception')) / 'models' / \
            DEFAULT_WEIGHTS
        if p.exists():
            return str(p)
    except Exception:   # noqa: BLE001 - no ament index (plain pytest)
        pass
    return str(MODELS_DIR / DEFAULT_WEIGHTS)


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
    """YOLO weights from a file (never downloaded) on 'cpu' or a CUDA device."""

    def __init__(self, model_path: str | None = None, imgsz: int = 416, conf: float = 0.25,
                 iou: float = 0.5, device: str = 'cpu', catalog=None, max_det: int = 100):
        from store_perception.yolo_offline import ultralytics_offline
        ul = ultralytics_offline()
        path = pathlib.Path(model_path or default_model_path())
        if not path.is_file():
            raise FileNotFoundError(f'detector weights not found: {path} (train them with '
                                    f'train_detector; see models/DATA_CARD.md)')
        self.model = ul.YOLO(str(path), task='detect')
        self.names = dict(self.model.names)
        self.imgsz, self.conf, self.iou, self.device = imgsz, conf, iou, device
        self.max_det = max_det
        self.sku = SkuByColour(catalog) if catalog is not None else None
        self.model_path = str(path)

    def warmup(self, width: int = 640, height: int = 480) -> None:
        self.detect(np.zeros((height, width, 3), np.uint8))

    def detect(self, image_bgr: np.ndarray) -> tuple[list[Det], float]:
        """(detections sorted by score, inference time [ms])."""
        return self.detect_batch([image_bgr])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[tuple[list[Det], float]]:
        start = time.perf_counter()
        results = self.model.predict(images, imgsz=self.imgsz, conf=self.conf, iou=self.iou,
                                     device=self.device, max_det=self.max_det, verbose=False)
        ms = (time.perf_counter() - start) * 1000 / max(1, len(images))
        out = []
        for img, res in zip(images, results):
            dets = []
            boxes = res.boxes
            xyxy = boxes.xyxy.cpu().numpy() if len(boxes) else np.zeros((0, 4))
            cls = boxes.cls.cpu().numpy().astype(int) if len(boxes) else []
            score = boxes.conf.cpu().numpy() if len(boxes) else []
            for (x0, y0, x1, y1), c, s in zip(xyxy, cls, score):
                name = self.names.get(int(c), str(c))
                d = Det(int(c), name, float(s), float(x0), float(y0), float(x1), float(y1))
                if name == 'product' and self.sku is not None:
                    d.sku, d.sku_score = self.sku.classify(img, d)
                dets.append(d)
            dets.sort(key=lambda d: -d.score)
            out.append((dets, ms))
        return out


# --- evaluation helpers (tests, benchmark) ----------------------------------------------------
def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


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
