"""Third stage: what is in each hand. A classifier on small windows around the hands.

A product in a shopper's hand is 6-12 px in a 640x480 ceiling view, and it covers the hand it is
in. Detecting it as an object of its own (the crop model's ``product`` class) found 3 of 20 on
held-out scenes. But the crop model's *hand* boxes land on that hand-plus-product blob for about
9 of 10 held products (score >= 0.02), so this stage asks a simpler question of each hand
proposal: empty, or which SKU? (The issue's "product-in-hand plus SKU classification".)

- Every hand box of the crop stage scoring at least ``proposal_conf`` gives a square window
  around its centre, ``HAND_WINDOW_SCALE`` times its longer side (at least 32 px),
  cut from the full-resolution image and resized to ``size`` px (:func:`hand_window`).
- An ultralytics classifier (``yolov8n-cls``, trained here) gives probabilities over ``empty``
  and the catalog SKUs seen in training. p(product) = 1 - p(empty); where it reaches the
  detector's threshold the detector reports a ``product`` box with that score, the most likely
  SKU and its probability given a product (``sku_score``).
- The product's box is the proposal's centre moved by the prior offset and sized by the prior
  ratios (:class:`HandPrior`, fitted on the training proposals and shipped next to the weights);
  where the crop model found a product box there itself, that box is kept instead.

The dataset is built by ``make_hand_dataset`` (:mod:`store_perception.datasets`).

Never imports rclpy.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import asdict, dataclass, field

import numpy as np

from store_perception.crops import crop_window, cut

EMPTY = 'empty'
HAND_WINDOW_SCALE = 4.0       # window side / longer side of the hand box
HAND_WEIGHTS = 'store_hand_sku.pt'
HAND_PRIOR = 'store_hand_sku_prior.json'     # shipped next to HAND_WEIGHTS
DATASET_PRIOR = 'hand_prior.json'            # written by make_hand_dataset
MIN_SKU_PAIRS = 8                            # matched pairs behind a per-SKU box shape


def hand_window(box, width: int, height: int, scale: float = HAND_WINDOW_SCALE):
    """Square window (x0, y0, side) [px] centred on a hand box: ``scale`` x its longer side,
    at least crops.MIN_SIDE_PX, shifted into the image like the shopper crops
    (:func:`crop_window`)."""
    return crop_window(box, width, height, (scale - 1.0) / 2.0)


@dataclass
class HandPrior:
    """What the classifier was trained with, shipped next to its weights:

    * ``window_scale``: the window side over the hand box's longer side L;
    * the product box from its hand proposal (x0, y0, x1, y1), in units of L: centre =
      proposal centre + (dx, dy) L, size = (w, h) L (medians over the matched training pairs,
      ``fitted_on`` of them); ``per_sku``: the same four figures per SKU with at least
      MIN_SKU_PAIRS pairs (a bar lies flat and wide, a bottle stands tall), used for the SKU
      the classifier names;
    * ``odds_scale``: training drew ``copies`` windows per product proposal and one per empty
      one, so the classifier's odds p(product) / p(empty) are ``copies`` times the odds among
      real proposals; the score it reports is corrected by this factor (1 / copies)."""
    window_scale: float = HAND_WINDOW_SCALE
    dx: float = 0.0
    dy: float = -0.07
    w: float = 1.2
    h: float = 0.8
    fitted_on: int = 0
    odds_scale: float = 1.0
    per_sku: dict = field(default_factory=dict)     # sku -> [dx, dy, w, h]

    def box(self, proposal, sku: str = '') -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = (float(v) for v in proposal)
        side = max(x1 - x0, y1 - y0, 1.0)
        dx, dy, w, h = self.per_sku.get(sku) or (self.dx, self.dy, self.w, self.h)
        cx, cy = (x0 + x1) / 2 + dx * side, (y0 + y1) / 2 + dy * side
        return cx - w * side / 2, cy - h * side / 2, cx + w * side / 2, cy + h * side / 2

    def p_product(self, p_model: float) -> float:
        """The classifier's p(product) with its training odds undone."""
        p_model = min(max(float(p_model), 0.0), 1.0)
        if p_model >= 1.0:
            return 1.0
        odds = p_model / (1.0 - p_model) * self.odds_scale
        return odds / (1.0 + odds)

    @classmethod
    def fit(cls, pairs, window_scale: float = HAND_WINDOW_SCALE,
            odds_scale: float = 1.0) -> 'HandPrior':
        """Median box relation over (proposal box, product box, SKU) triples."""
        rel, by_sku = [], {}
        for prop, prod, sku in pairs:
            px0, py0, px1, py1 = (float(v) for v in prop)
            side = max(px1 - px0, py1 - py0, 1.0)
            qx0, qy0, qx1, qy1 = (float(v) for v in prod)
            r = ((qx0 + qx1 - px0 - px1) / 2 / side, (qy0 + qy1 - py0 - py1) / 2 / side,
                 (qx1 - qx0) / side, (qy1 - qy0) / side)
            rel.append(r)
            by_sku.setdefault(sku, []).append(r)
        if not rel:
            return cls(window_scale, odds_scale=odds_scale)

        def median(rows):
            return [round(float(v), 4) for v in np.median(np.array(rows), axis=0)]
        per_sku = {k: median(v) for k, v in sorted(by_sku.items())
                   if k and len(v) >= MIN_SKU_PAIRS}
        return cls(window_scale, *median(rel), fitted_on=len(rel),
                   odds_scale=round(odds_scale, 6), per_sku=per_sku)

    @classmethod
    def load(cls, path) -> 'HandPrior':
        p = pathlib.Path(path)
        try:
            d = json.loads(p.read_text())
            return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k != 'per_sku'},
                       per_sku={str(k): [float(x) for x in v]
                                for k, v in d.get('per_sku', {}).items()})
        except FileNotFoundError:
            raise FileNotFoundError(f'{p}: the hand classifier\'s prior (window, box, odds) is '
                                    f'missing (make_hand_dataset writes it as {DATASET_PRIOR} '
                                    f'in the dataset; ship it next to the weights)') from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f'{p}: not a hand classifier prior ({exc})') from exc

    def save(self, path) -> None:
        pathlib.Path(path).write_text(json.dumps(asdict(self), indent=1) + '\n')


@dataclass
class InHand:
    """The classifier's answer for one hand proposal."""
    p_product: float              # 1 - p(empty), training odds undone (HandPrior.p_product)
    sku: str                      # most likely SKU ('' when the model knows none)
    sku_score: float              # p(sku | a product is in the hand)
    box: tuple                    # the product's box [px] from the box prior


def ultralytics_or_error():
    """ultralytics (offline), or a ValueError saying the torch runtime is not installed (a
    runtime install, requirements/runtime.txt, runs the .onnx exports only)."""
    try:
        from store_perception.yolo_offline import ultralytics_offline
        return ultralytics_offline()
    except ImportError as exc:
        raise ValueError(f'runtime torch needs torch and ultralytics (requirements/ml.txt), '
                         f'not installed here ({exc}); this install runs the .onnx exports: '
                         f'runtime onnx or auto') from exc


class HandSkuClassifier:
    """The shipped (or given) classifier weights on hand windows cut from BGR images.

    ``runtime``: 'onnx' = the .onnx export next to the .pt on ONNX Runtime (no torch import),
    'onnx_int8' = its int8 sibling ``<stem>.int8.onnx`` (the detector runs this stage on
    'onnx': only its full-frame stage is int8), 'torch' = ultralytics on the .pt,
    'auto' = onnx where the .onnx exists."""

    def __init__(self, model_path, size: int = 64, device: str = 'cpu', prior_path=None,
                 runtime: str = 'auto', threads: int = 0):
        from store_perception.onnx_runtime import onnx_path, pick_runtime
        path = pathlib.Path(model_path)
        if not path.is_file() and not onnx_path(path, runtime).is_file():
            raise FileNotFoundError(f'hand SKU classifier weights not found: {path} (train '
                                    f'them with make_hand_dataset + train_detector; see '
                                    f'models/DATA_CARD.md)')
        kind, file = ('torch', path) if runtime == 'torch' else pick_runtime(path, runtime)
        self.onnx = None
        if kind == 'onnx' and device in ('cpu', ''):
            from store_perception.onnx_runtime import OnnxClassifier
            self.onnx = OnnxClassifier(file, threads=threads)
            names = self.onnx.names
        else:
            self.model = ultralytics_or_error().YOLO(str(path), task='classify')
            names = self.model.names
        self.runtime = 'torch' if self.onnx is None else 'onnx'
        self.names = {int(k): v for k, v in names.items()}
        if EMPTY not in self.names.values():
            raise ValueError(f'{path}: a hand SKU classifier needs an "{EMPTY}" class, '
                             f'has {sorted(self.names.values())}')
        self.empty_index = next(k for k, v in self.names.items() if v == EMPTY)
        self.size, self.device = int(size), device
        self.model_path = str(path)
        self.prior = HandPrior.load(prior_path or path.with_name(HAND_PRIOR))

    def classify(self, image_bgr: np.ndarray, hand_boxes) -> list[InHand]:
        """One answer per hand box (x0, y0, x1, y1) of this image."""
        return self.classify_many([(image_bgr, b) for b in hand_boxes])

    def classify_many(self, items) -> list[InHand]:
        """Answers for (image, hand box) pairs, in one batch."""
        if not items:
            return []
        crops = []
        for img, box in items:
            h, w = img.shape[:2]
            crops.append(cut(img, hand_window(box, w, h, self.prior.window_scale), self.size))
        out = []
        for (img, box), p in zip(items, self._probs(crops)):
            p = np.asarray(p, dtype=float)
            p_empty = float(p[self.empty_index])
            rest = p.copy()
            rest[self.empty_index] = -1.0
            k = int(np.argmax(rest))
            p_model = max(0.0, 1.0 - p_empty)
            sku = self.names[k] if k != self.empty_index and rest[k] >= 0 else ''
            sku_score = float(rest[k] / p_model) if sku and p_model > 0 else 0.0
            out.append(InHand(self.prior.p_product(p_model), sku, min(1.0, sku_score),
                              self.prior.box(box, sku)))
        return out

    def _probs(self, crops) -> list:
        """Class probabilities per crop (size x size BGR), on this classifier's runtime."""
        if self.onnx is not None:
            return list(self.onnx.probs(crops, self.size))
        results = self.model.predict(crops, imgsz=self.size, device=self.device, verbose=False)
        return [res.probs.data.cpu().numpy() for res in results]
