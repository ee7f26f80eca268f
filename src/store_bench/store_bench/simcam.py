"""Simulated cameras for benchmarks and tests: rendered ground truth -> detections.

Two stages, so that 50+ scenarios fit on a small CPU:

1. :func:`render_truth`: the store_sim renderer's *ground truth* per frame and camera (2D boxes
   of the visible part of each shopper, hand and held product, occlusion by shoppers and shelves
   resolved per pixel by the renderer's z-buffer) plus the 3D truth, without shading the image
   (same boxes as ``CameraRenderer.render``, ~4x faster). Cached as gzipped JSON lines.
2. :class:`DetectionModel`: turns truth boxes into detections with a miss rate, false positives,
   box noise and SKU accuracy, per class. :func:`measured_stats` reads the figures measured
   from the shipped detector on held-out rendered frames (``detector_stats.json``, written by
   ``bench_detector --stats-out``); they are what the benchmark uses.

Never imports rclpy.
"""
from __future__ import annotations

import gzip
import json
import math
import pathlib
from dataclasses import dataclass, field

import numpy as np

from store_fusion.geometry import Detection2D
from store_sim.render import CameraRenderer, CLASSES


def _gt_boxes(r, t: float) -> list[dict]:
    """The renderer's visible boxes at time t without shading (falls back to a full render)."""
    try:
        static, _ = r._static_buffers(t)
        h, w = static['depth'].shape
        buf = {'depth': static['depth'].copy(), 'albedo': np.empty((h, w, 3), np.float32),
               'normal': np.empty((h, w, 3), np.float32),
               'obj': np.full((h, w), -1, np.int32)}
        objects: list = []
        prims: list = []
        for m in r.shoppers:
            if m.present(t):
                prims.extend(r._shopper_prims(m, t, objects))
        masks: dict = {}
        for p in prims:
            r._draw(buf, p, masks)
        return r._boxes(buf['obj'], masks, objects, 0.3)
    except AttributeError:      # the renderer's internals changed: render the image
        return r.render(t)[1]


def render_truth(store, scenario, fps: float = 5.0, cameras: list[str] | None = None,
                 tail_s: float = 1.0) -> list[dict]:
    """[{t_s, cams: {camera_id: [box, ...]}, shoppers: [3D state]}] for every frame."""
    cams = [c for c in store.cameras if cameras is None or c.id in cameras]
    renderers = [CameraRenderer(store, c, scenario, noise=False) for c in cams]
    n = int(math.floor((scenario.duration_s + tail_s) * fps)) + 1
    frames = []
    for k in range(n):
        t = round(k / fps, 6)
        present = any(m.present(t) for m in renderers[0].shoppers)
        frame = {'t_s': t, 'cams': {}, 'shoppers': renderers[0].truth_3d(t) if present else []}
        for c, r in zip(cams, renderers):
            frame['cams'][c.id] = _gt_boxes(r, t) if present else []
        frames.append(frame)
    return frames


def truth_cache_path(cache_dir, store, scenario, fps: float) -> pathlib.Path:
    """One file per scenario *content* (a changed generator never reuses stale truth)."""
    import hashlib
    level = scenario.meta.get('level', 'x')
    digest = hashlib.sha256(json.dumps(scenario.to_dict(), sort_keys=True).encode())
    return pathlib.Path(cache_dir) / (f'{store.id}_l{level}_s{scenario.seed}_f{fps:g}_'
                                      f'{digest.hexdigest()[:10]}.jsonl.gz')


def load_or_render_truth(cache_dir, store, scenario, fps: float = 5.0) -> list[dict]:
    path = truth_cache_path(cache_dir, store, scenario, fps)
    if path.exists():
        with gzip.open(path, 'rt') as f:
            return [json.loads(line) for line in f if line.strip()]
    frames = render_truth(store, scenario, fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix('.tmp')
    with gzip.open(tmp, 'wt') as f:
        for fr in frames:
            f.write(json.dumps(fr) + '\n')
    tmp.replace(path)
    return frames


# --- the detection model ----------------------------------------------------------------------
@dataclass(frozen=True)
class ClassStats:
    recall: float               # share of truth boxes (visible >= 0.3) detected (IoU >= 0.5)
    fp_per_image: float         # false positives per image (Poisson mean)
    center_sd_rel: float        # box centre noise, share of the box size (per axis)
    size_sd_rel: float          # box size noise, share of the box size (log-normal sd)
    min_visible: float = 0.3    # boxes less visible than this are never detected


@dataclass(frozen=True)
class DetectorStats:
    """What the detector gets right and wrong, per class; ``source`` says where it comes from."""
    shopper: ClassStats
    hand: ClassStats
    product: ClassStats
    sku_accuracy: float          # share of detected product boxes whose colour SKU is right
    source: str = ''
    extra: dict = field(default_factory=dict, compare=False)

    def of(self, cls: str) -> ClassStats:
        return getattr(self, cls)

    def to_dict(self) -> dict:
        out = {'source': self.source, 'sku_accuracy': self.sku_accuracy}
        for c in ('shopper', 'hand', 'product'):
            s = self.of(c)
            out[c] = {'recall': s.recall, 'fp_per_image': s.fp_per_image,
                      'center_sd_rel': s.center_sd_rel, 'size_sd_rel': s.size_sd_rel}
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> DetectorStats:
        def cs(k):
            v = d[k]
            return ClassStats(float(v['recall']), float(v['fp_per_image']),
                              float(v['center_sd_rel']), float(v['size_sd_rel']))
        return cls(cs('shopper'), cs('hand'), cs('product'), float(d['sku_accuracy']),
                   str(d.get('source', '')))


# Placeholder until the detector is measured: the detector's own measurement
# (store_perception/models/detector_stats.json, written by ``bench_detector
# --stats-out``) replaces it when present.
ASSUMED = DetectorStats(
    shopper=ClassStats(0.95, 0.05, 0.04, 0.06), hand=ClassStats(0.75, 0.15, 0.12, 0.15),
    product=ClassStats(0.7, 0.1, 0.12, 0.15), sku_accuracy=0.85,
    source='assumed (no measurement of the shipped detector found)')


def stats_file() -> pathlib.Path:
    """The shipped detector's measured stats, found as its weights are (package share, else
    the source tree)."""
    from store_perception.detection import default_model_path
    return pathlib.Path(default_model_path('detector_stats.json'))


def measured_stats(path: str | pathlib.Path | None = None) -> DetectorStats:
    p = pathlib.Path(path) if path else stats_file()
    if p.is_file():
        return DetectorStats.from_dict(json.loads(p.read_text()))
    return ASSUMED


def shopper_colors(store, scenario) -> dict[str, tuple]:
    """{shopper id: shirt RGB [0..255]} as the renderer dresses them (its own seeding)."""
    r = CameraRenderer(store, store.cameras[0], scenario, noise=False)
    return {m.shopper.id: tuple(float(v) for v in m.shirt) for m in r.shoppers}


@dataclass(frozen=True)
class ColorNoise:
    """How the mean torso colour of a shopper box departs from the shirt's albedo. ASSUMED,
    not measured: lighting level and shading (a common gain), the lamps' tint (per channel),
    background and other shoppers inside the box when it is partly hidden, pixel noise."""
    gain: tuple = (0.75, 1.1)        # uniform range of the common gain
    tint_sd: float = 0.04            # per channel relative
    mix_per_hidden: float = 0.6      # share of background mixed in per hidden share of the box
    pixel_sd: float = 4.0            # per channel [0..255]


class DetectionModel:
    """Truth boxes -> noisy detections as the shipped detector would give them.

    ``colors`` ({shopper id: shirt RGB}) adds the torso colour a node would measure from the
    image to shopper boxes (:class:`ColorNoise`); without it shopper boxes carry no colour."""

    def __init__(self, stats: DetectorStats, skus: list[str], seed: int = 0,
                 width: int = 640, height: int = 480, colors: dict | None = None,
                 color_noise: ColorNoise | None = None, confusion=None):
        self.stats = stats
        # which wrong SKU a product box is named (store_fusion.sku_confusion.SkuConfusion, the
        # fusion's sku_confusion_file): None = any other SKU evenly
        self.confusion = confusion
        self.skus = sorted(skus)
        # one random stream per class for true boxes and one for false positives, and a fixed
        # number of draws per box: a class's draws do not depend on any stats, so runs that
        # change one figure (what-if stats) see the same boxes, noise and mistakes otherwise
        self.rngs = {cls: np.random.default_rng([seed, k]) for k, cls in enumerate(CLASSES)}
        self.fp_rngs = {cls: np.random.default_rng([seed, k, 1])
                        for k, cls in enumerate(CLASSES)}
        self.width, self.height = width, height
        self.colors = colors or {}
        self.color_noise = color_noise or ColorNoise()

    def _color(self, b: dict) -> tuple | None:
        shirt = self.colors.get(b.get('shopper_id'))
        if shirt is None:
            return None
        cn, rng = self.color_noise, self.rngs['shopper']
        c = np.asarray(shirt, float) * rng.uniform(*cn.gain) * rng.normal(1.0, cn.tint_sd, 3)
        mix = cn.mix_per_hidden * (1.0 - float(b.get('visible', 1.0)))
        c = (1 - mix) * c + mix * rng.uniform(40, 200, 3)
        return tuple(float(v) for v in np.clip(c + rng.normal(0, cn.pixel_sd, 3), 0, 255))

    def _wrong_sku(self, true: str, others: list[str], u: float) -> str:
        """The wrong SKU a box of ``true`` is named: drawn by the confusion model's odds among
        the other SKUs (a look-alike far more often than an unrelated one)."""
        w = np.array([self.confusion.p_seen(s, true, len(self.skus)) for s in others])
        k = int(np.searchsorted(np.cumsum(w / w.sum()), u, side='right'))
        return others[min(k, len(others) - 1)]

    def detect(self, boxes: list[dict], dropped: bool = False) -> list[Detection2D]:
        if dropped:
            return []
        out = []
        for b in boxes:
            st = self.stats.of(b['cls'])
            rng = self.rngs[b['cls']]
            u_found, u_sku, u_other = rng.random(3)
            d_cx, d_cy, d_w, d_h, d_sku_score, d_score = rng.normal(0.0, 1.0, 6)
            color = self._color(b) if b['cls'] == 'shopper' else None
            if b.get('visible', 1.0) < st.min_visible or u_found > st.recall:
                continue
            x0, y0, x1, y1 = b['bbox']
            w, h = max(1.0, x1 - x0), max(1.0, y1 - y0)
            cx = (x0 + x1) / 2 + d_cx * st.center_sd_rel * w
            cy = (y0 + y1) / 2 + d_cy * st.center_sd_rel * h
            w *= math.exp(d_w * st.size_sd_rel)
            h *= math.exp(d_h * st.size_sd_rel)
            sku, sku_score = '', 0.0
            if b['cls'] == 'product':
                others = [s for s in self.skus if s != b.get('sku')]
                if u_sku < self.stats.sku_accuracy or not others:
                    sku = b.get('sku', '')
                elif self.confusion is None:
                    sku = others[int(u_other * len(others))]
                else:
                    sku = self._wrong_sku(b.get('sku', ''), others, u_other)
                sku_score = float(np.clip(0.7 + 0.15 * d_sku_score, 0.05, 1.0))
            out.append(Detection2D(b['cls'], float(np.clip(0.8 + 0.1 * d_score, 0.25, 1)),
                                   cx, cy, w, h, sku, sku_score, color))
        for cls, rng in self.fp_rngs.items():
            st = self.stats.of(cls)
            for _ in range(int(rng.poisson(st.fp_per_image))):
                w = {'shopper': 60, 'hand': 10, 'product': 14}[cls] * rng.uniform(0.6, 1.6)
                h = w * (2.2 if cls == 'shopper' else 1.0)
                sku = str(rng.choice(self.skus)) if cls == 'product' and self.skus else ''
                color = tuple(rng.uniform(30, 220, 3)) if cls == 'shopper' and self.colors \
                    else None
                out.append(Detection2D(cls, float(rng.uniform(0.25, 0.6)),
                                       float(rng.uniform(0, self.width)),
                                       float(rng.uniform(0, self.height)), w, h, sku,
                                       0.3 if sku else 0.0, color))
        return out
