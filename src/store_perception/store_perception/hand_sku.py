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

The dataset (``make_hand_dataset``) is built from *detected* hand proposals on rendered images
with truth (``make_dataset``'s ``truth/*.jsonl``), so the classifier sees the boxes it will get:
a proposal whose centre is within ``match_px`` of a truth product-in-hand box is labelled with
that product's SKU; one at a hand that holds a product the truth has no visible box for is left
out (its window may show part of it); any other proposal is ``empty`` (an empty hand, or a
false hand). ``--copies``
jittered windows per positive proposal balance the classes. ultralytics' folder layout::

    out/train/<class>/<image>_<k>.jpg   out/val/<class>/...   out/hand_prior.json

    make_hand_dataset --data out/perception/dataset_hand [--data ...] --out out/perception/hands \
        [--size 64] [--copies 3] [--val-share 0.15] [--proposal-conf 0.05]
    train_detector --data out/perception/hands --model yolov8n-cls.yaml --imgsz 64 ...

Never imports rclpy.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from store_perception.crops import crop_window, cut, jittered

EMPTY = 'empty'
HAND_WINDOW_SCALE = 4.0       # window side / longer side of the hand box
HAND_WEIGHTS = 'store_hand_sku.pt'
HAND_PRIOR = 'store_hand_sku_prior.json'     # shipped next to HAND_WEIGHTS
DATASET_PRIOR = 'hand_prior.json'            # written by make_hand_dataset
MIN_SKU_PAIRS = 8                            # matched pairs behind a per-SKU box shape
HAND_JITTER = 0.12                           # sd of the training copies' centre and log size


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


class HandSkuClassifier:
    """The shipped (or given) classifier weights on hand windows cut from BGR images."""

    def __init__(self, model_path, size: int = 64, device: str = 'cpu', prior_path=None):
        from store_perception.yolo_offline import ultralytics_offline
        path = pathlib.Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f'hand SKU classifier weights not found: {path} (train '
                                    f'them with make_hand_dataset + train_detector; see '
                                    f'models/DATA_CARD.md)')
        self.model = ultralytics_offline().YOLO(str(path), task='classify')
        self.names = {int(k): v for k, v in self.model.names.items()}
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
        results = self.model.predict(crops, imgsz=self.size, device=self.device, verbose=False)
        out = []
        for (img, box), res in zip(items, results):
            p = res.probs.data.cpu().numpy().astype(float)
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


# --- dataset --------------------------------------------------------------------------------
def _centre_distance(a, b) -> float:
    return float(np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2))


def label_proposals(proposals, truth_boxes, match_px: float = 8.0, busy_hands=()):
    """Per proposal box: the SKU of the truth product-in-hand box whose centre is nearest its
    centre within ``match_px`` (each product used once, best first), else EMPTY; and the
    matched product box (or None). A proposal matching no product but within ``match_px`` of a
    ``busy_hands`` box (a hand that holds a product the truth has no visible box for: hidden
    behind the body, or too small) is labelled None: unknown, left out of training."""
    products = [b for b in truth_boxes if b['cls'] == 'product']
    pairs = []
    for i, prop in enumerate(proposals):
        for j, b in enumerate(products):
            d = _centre_distance(prop, b['bbox'])
            if d <= match_px:
                pairs.append((d, i, j))
    labels: list[tuple] = [(EMPTY, None)] * len(proposals)
    used_p, used_t = set(), set()
    for d, i, j in sorted(pairs):
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        labels[i] = (products[j].get('sku') or '', products[j]['bbox'])
    for i, prop in enumerate(proposals):
        if i not in used_p and any(_centre_distance(prop, h) <= match_px for h in busy_hands):
            labels[i] = (None, None)
    return labels


def busy_hand_boxes(record: dict) -> list:
    """Truth hand boxes of a make_dataset record whose hand holds a product."""
    holding = {s['id']: s.get('holding') or {} for s in record.get('shoppers', [])}
    return [b['bbox'] for b in record['boxes'] if b['cls'] == 'hand'
            and holding.get(b.get('shopper_id'), {}).get(b.get('side'))]


def make_hand_dataset(data_dirs, out: str, detector, size: int = 64, copies: int = 3,
                      val_share: float = 0.15, proposal_conf: float = 0.05,
                      match_px: float = 8.0, seed: int = 0, log=None,
                      window_scale: float = HAND_WINDOW_SCALE) -> dict:
    """Write the classifier dataset from the truth records of ``data_dirs`` (make_dataset
    directories); returns counts per split and class, and the fitted prior."""
    rng = np.random.default_rng(seed)
    dst = pathlib.Path(out)
    counts: dict[str, dict[str, int]] = {'train': {}, 'val': {}}
    pairs = []
    for data in data_dirs:
        src = pathlib.Path(data)
        records = [json.loads(line) for f in sorted((src / 'truth').glob('*.jsonl'))
                   for line in f.read_text().splitlines() if line.strip()]
        for n, rec in enumerate(records):
            img = cv2.imread(str(src / rec['image']))
            if img is None:
                raise FileNotFoundError(f'{src / rec["image"]}: image of a truth record '
                                        f'missing or unreadable')
            h, w = img.shape[:2]
            # scenes, not images, go to val: frames of one scene look alike
            split = 'val' if (rec['scene_seed'] * 7919) % 1000 < val_share * 1000 else 'train'
            proposals = detector.hand_proposals(img, proposal_conf)
            for k, (prop, (label, prod)) in enumerate(
                    zip(proposals, label_proposals(proposals, rec['boxes'], match_px,
                                                   busy_hand_boxes(rec)))):
                if not label:
                    continue                      # unknown, or a product without a SKU
                if prod is not None and split == 'train':
                    pairs.append((prop, prod, label))
                n_copies = copies if (label != EMPTY and split == 'train') else 1
                boxes = [prop] + [jittered(prop, rng, HAND_JITTER, keep_aspect=True)
                                  for _ in range(n_copies - 1)]
                folder = dst / split / label
                folder.mkdir(parents=True, exist_ok=True)
                for c, box in enumerate(boxes):
                    name = f'{pathlib.Path(rec["image"]).stem}_{k}_{c}.jpg'
                    win = hand_window(box, w, h, window_scale)
                    cv2.imwrite(str(folder / name), cut(img, win, size),
                                [cv2.IMWRITE_JPEG_QUALITY, 95])
                    counts[split][label] = counts[split].get(label, 0) + 1
            if log and (n + 1) % 100 == 0:
                log(f'{src}: {n + 1}/{len(records)} images')
    _same_classes(dst, counts)
    prior = HandPrior.fit(pairs, window_scale, odds_scale=1.0 / max(1, copies))
    prior.save(dst / DATASET_PRIOR)
    return {'counts': counts, 'prior': asdict(prior)}


def _same_classes(dst: pathlib.Path, counts: dict) -> None:
    """ultralytics numbers the val folders on their own: val must have exactly train's
    classes. A class only in val moves to train; a class missing in val gets one copy of a
    train window (rare SKUs; val only picks the best epoch)."""
    import shutil
    for label in list(counts['val']):
        if label not in counts['train']:
            (dst / 'train' / label).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(dst / 'val' / label), str(dst / 'train' / label))
            counts['train'][label] = counts['val'].pop(label)
    for label in counts['train']:
        if label not in counts['val']:
            first = sorted((dst / 'train' / label).glob('*.jpg'))[0]
            (dst / 'val' / label).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first, dst / 'val' / label / first.name)
            counts['val'][label] = 1


def main(args=None) -> int:
    p = argparse.ArgumentParser(prog='make_hand_dataset', description=__doc__.split('\n')[0])
    p.add_argument('--data', action='append', required=True,
                   help='make_dataset directory with truth/*.jsonl (repeatable)')
    p.add_argument('--out', required=True, help='classifier dataset directory')
    p.add_argument('--size', type=int, default=64, help='window side after resizing [px]')
    p.add_argument('--copies', type=int, default=3,
                   help='windows per training proposal holding a product (jittered)')
    p.add_argument('--val-share', type=float, default=0.15, help='share of scenes for val')
    p.add_argument('--proposal-conf', type=float, default=0.05,
                   help='lowest crop-model hand score taken as a proposal')
    p.add_argument('--match-px', type=float, default=8.0,
                   help='proposal centre to product centre distance for a match [px]')
    p.add_argument('--window-scale', type=float, default=HAND_WINDOW_SCALE,
                   help=f'window side / longer side of the hand box (kept in {DATASET_PRIOR})')
    p.add_argument('--seed', type=int, default=0)
    ns = p.parse_args(args)
    from store_perception.detection import CROP_WEIGHTS, Detector
    for d in ns.data:
        if not (pathlib.Path(d) / 'truth').is_dir():
            p.error(f'{d}: no truth/ directory (make it with make_dataset)')
    detector = Detector(None, crop_model_path=CROP_WEIGHTS)
    res = make_hand_dataset(ns.data, ns.out, detector, ns.size, ns.copies, ns.val_share,
                            ns.proposal_conf, ns.match_px, ns.seed,
                            log=lambda m: print(m, file=sys.stderr),
                            window_scale=ns.window_scale)
    for split, c in res['counts'].items():
        print(f'{split}: ' + ', '.join(f'{k} {v}' for k, v in sorted(c.items())))
    print(f'prior: {res["prior"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
