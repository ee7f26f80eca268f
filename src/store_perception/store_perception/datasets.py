"""Training datasets of the detector's second and third stages (dataset building, not runtime:
the detector node never imports this module). Two command lines, installed as console scripts:

``make_crop_dataset``: the second stage's crops around shopper boxes (:mod:`store_perception.crops`
has the window geometry inference uses too)::

    make_crop_dataset --data out/perception/dataset --out out/perception/crops \
        [--size 224] [--margin 0.25] [--copies 4] [--jitter 0.08] [--background 0.15] \
        [--min-inside 0.4] [--seed 0] [--splits train,val,test]

The crop dataset is built from a YOLO dataset with truth boxes (``make_dataset``: classes 0
shopper, 1 hand, 2 product): for every *truth* shopper box of every image of every split,
``--copies`` crops whose window is jittered like a first-stage box would be (centre shifted by
``--jitter`` of the box size per axis, size scaled log-normally by the same sd, margin drawn in
[0.7, 1.3] x ``--margin``) so the model tolerates stage-1 box error; validation and test splits
get one copy each. Hand and product boxes of *any* shopper are clipped into the window; those
less than ``--min-inside`` inside are dropped. ``--background`` crops per image of shopper-sized
windows at random places (shelf stock, no shopper: nothing to find) keep shelf units from being
taken for products in hand. Crop classes: 0 hand, 1 product.

``make_hand_dataset``: the third stage's hand windows (:mod:`store_perception.hand_sku` has the
classifier and its prior), built from *detected* hand proposals on rendered images with truth
(``make_dataset``'s ``truth/*.jsonl``), so the classifier sees the boxes it will get: a proposal
whose centre is within ``match_px`` of a truth product-in-hand box is labelled with that
product's SKU; one at a hand that holds a product the truth has no visible box for is left out
(its window may show part of it); any other proposal is ``empty`` (an empty hand, or a false
hand). ``--copies`` jittered windows per positive proposal balance the classes. ultralytics'
folder layout::

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
from dataclasses import asdict

import cv2
import numpy as np
import yaml

from store_perception.crops import (clip_into, CROP_CLASSES, crop_window, cut, jittered,
                                    SOURCE_CLASSES)
from store_perception.detection import CROP_WEIGHTS, Detector, PRODUCT_MATCH_PX
from store_perception.hand_sku import (DATASET_PRIOR, EMPTY, HAND_WINDOW_SCALE, hand_window,
                                       HandPrior)

HAND_JITTER = 0.12          # sd of the hand training copies' centre and log size


# --- crops around shoppers (second stage) -----------------------------------------------------
def read_yolo_labels(path: pathlib.Path, width: int, height: int) -> list[tuple[int, tuple]]:
    """[(class id, (x0, y0, x1, y1) px)] of a YOLO label file (empty when missing)."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        c, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:])
        out.append((c, ((cx - w / 2) * width, (cy - h / 2) * height,
                        (cx + w / 2) * width, (cy + h / 2) * height)))
    return out


def crop_labels(labels, window, width: int, height: int, size: int,
                min_inside: float = 0.4) -> list[str]:
    """YOLO lines (crop classes, normalised to the crop) of the hands and products in a window."""
    lines = []
    s = size / float(window[2])
    for c, box in labels:
        name = SOURCE_CLASSES[c] if 0 <= c < len(SOURCE_CLASSES) else ''
        if name not in CROP_CLASSES:
            continue
        b = clip_into(box, window, width, height, min_inside)
        if b is None:
            continue
        x0, y0, x1, y1 = (min(size, max(0.0, v * s)) for v in b)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        lines.append(f'{CROP_CLASSES.index(name)} {(x0 + x1) / 2 / size:.6f} '
                     f'{(y0 + y1) / 2 / size:.6f} {(x1 - x0) / size:.6f} {(y1 - y0) / size:.6f}')
    return lines


def make_crop_dataset(data: str, out: str, size: int = 224, margin: float = 0.25,
                      copies: int = 4, jitter: float = 0.08, background: float = 0.15,
                      min_inside: float = 0.4, seed: int = 0,
                      splits: tuple = ('train', 'val', 'test')) -> dict:
    """Write the crop dataset; returns {split: (crops, hands, products)}."""
    src, dst = pathlib.Path(data), pathlib.Path(out)
    rng = np.random.default_rng(seed)
    counts = {}
    for split in splits:
        images = sorted((src / 'images' / split).glob('*.jpg')) + \
            sorted((src / 'images' / split).glob('*.png'))
        if not images:
            continue
        (dst / 'images' / split).mkdir(parents=True, exist_ok=True)
        (dst / 'labels' / split).mkdir(parents=True, exist_ok=True)
        n_copies = copies if split == 'train' else 1
        n = hands = products = 0
        for img_path in images:
            img = cv2.imread(str(img_path))
            h, w = img.shape[:2]
            labels = read_yolo_labels(src / 'labels' / split / (img_path.stem + '.txt'), w, h)
            shoppers = [b for c, b in labels if c == 0]
            windows = []
            for k, box in enumerate(shoppers):
                for j in range(n_copies):
                    m = margin * rng.uniform(0.7, 1.3)
                    windows.append((f'{k}_{j}', crop_window(jittered(box, rng, jitter), w, h, m)))
            n_bg = int(background) + (rng.random() < background % 1)
            for j in range(n_bg):
                side = int(rng.uniform(90, 220))
                x0, y0 = int(rng.uniform(0, w - side)), int(rng.uniform(0, h - side))
                windows.append((f'bg{j}', (x0, y0, side)))
            for tag, win in windows:
                lines = crop_labels(labels, win, w, h, size, min_inside)
                name = f'{img_path.stem}_{tag}'
                cv2.imwrite(str(dst / 'images' / split / f'{name}.jpg'), cut(img, win, size),
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
                (dst / 'labels' / split / f'{name}.txt').write_text(
                    '\n'.join(lines) + ('\n' if lines else ''))
                n += 1
                hands += sum(ln.startswith('0 ') for ln in lines)
                products += sum(ln.startswith('1 ') for ln in lines)
        counts[split] = (n, hands, products)
    splits = {s: f'images/{s}' for s in counts}
    some = splits.get('val') or splits.get('test') or next(iter(splits.values()), 'images/train')
    for key in ('train', 'val'):            # ultralytics wants both keys
        splits.setdefault(key, some)
    meta = {'path': str(dst.resolve()), **splits,
            'names': {i: n for i, n in enumerate(CROP_CLASSES)}}
    (dst / 'data.yaml').write_text(yaml.safe_dump(meta, sort_keys=False))
    return counts


def crop_dataset_main(args=None) -> int:
    """``make_crop_dataset``: the crop dataset of a YOLO dataset (see the module doc)."""
    p = argparse.ArgumentParser(prog='make_crop_dataset',
                                description='The second stage\'s crop dataset.')
    p.add_argument('--data', required=True, help='YOLO dataset directory (make_dataset)')
    p.add_argument('--out', required=True, help='crop dataset directory')
    p.add_argument('--size', type=int, default=224, help='crop side [px]')
    p.add_argument('--margin', type=float, default=0.25,
                   help='growth of the shopper box on each side (share of its longer side)')
    p.add_argument('--copies', type=int, default=4, help='jittered crops per training shopper')
    p.add_argument('--jitter', type=float, default=0.08,
                   help='sd of the window centre (share of box size) and log size')
    p.add_argument('--background', type=float, default=0.15,
                   help='random background crops per image (mean)')
    p.add_argument('--min-inside', type=float, default=0.4,
                   help='drop hand/product boxes less inside the crop than this share')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--splits', default='train,val,test',
                   help='splits of --data to crop (comma-separated; missing ones are skipped)')
    ns = p.parse_args(args)
    if not (pathlib.Path(ns.data) / 'images').is_dir():
        p.error(f'{ns.data}: no images/ directory (make it with make_dataset)')
    counts = make_crop_dataset(ns.data, ns.out, ns.size, ns.margin, ns.copies, ns.jitter,
                               ns.background, ns.min_inside, ns.seed,
                               tuple(ns.splits.split(',')))
    for split, (n, hands, products) in counts.items():
        print(f'{split}: {n} crops, {hands} hands, {products} products')
    print(f'wrote {pathlib.Path(ns.out) / "data.yaml"}')
    return 0


# --- hand windows (third stage) ---------------------------------------------------------------
def _centre_distance(a, b) -> float:
    return float(np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2))


def label_proposals(proposals, truth_boxes, match_px: float = PRODUCT_MATCH_PX, busy_hands=()):
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
                      match_px: float = PRODUCT_MATCH_PX, seed: int = 0, log=None,
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


def hand_dataset_main(args=None) -> int:
    """``make_hand_dataset``: the hand classifier's dataset (see the module doc)."""
    p = argparse.ArgumentParser(prog='make_hand_dataset',
                                description='The third stage\'s hand-window dataset.')
    p.add_argument('--data', action='append', required=True,
                   help='make_dataset directory with truth/*.jsonl (repeatable)')
    p.add_argument('--out', required=True, help='classifier dataset directory')
    p.add_argument('--size', type=int, default=64, help='window side after resizing [px]')
    p.add_argument('--copies', type=int, default=3,
                   help='windows per training proposal holding a product (jittered)')
    p.add_argument('--val-share', type=float, default=0.15, help='share of scenes for val')
    p.add_argument('--proposal-conf', type=float, default=0.05,
                   help='lowest crop-model hand score taken as a proposal')
    p.add_argument('--match-px', type=float, default=PRODUCT_MATCH_PX,
                   help='proposal centre to product centre distance for a match [px]')
    p.add_argument('--window-scale', type=float, default=HAND_WINDOW_SCALE,
                   help=f'window side / longer side of the hand box (kept in {DATASET_PRIOR})')
    p.add_argument('--seed', type=int, default=0)
    ns = p.parse_args(args)
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
