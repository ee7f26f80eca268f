"""Second-stage crops: square windows around shopper boxes, and the crop dataset built from them.

Hands and products in hand are 4-10 px in a 640x480 ceiling view, 2-6 px once the whole frame
is letterboxed to the first-stage input. The second stage looks again at full resolution: each
shopper box is grown by ``margin`` of its longer side on every side, made square, shifted into
the image (or padded grey where it is larger than the image), and resized to ``size`` px, so a
7 px hand in a 100 px tall shopper becomes ~10-12 px at 224 (more for far, small shoppers). The
same :func:`crop_window` / :func:`cut` serve inference (``detection.Detector``) and the dataset.

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

Never imports rclpy.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import cv2
import numpy as np
import yaml

CROP_CLASSES = ('hand', 'product')
SOURCE_CLASSES = ('shopper', 'hand', 'product')     # make_dataset's class ids
PAD_VALUE = 114                                      # ultralytics' letterbox grey
MIN_SIDE_PX = 32


def crop_window(box, width: int, height: int, margin: float = 0.25) -> tuple[int, int, int]:
    """Square window (x0, y0, side) [px] around ``box`` (x0, y0, x1, y1): the box grown by
    ``margin`` of its longer side on each side, shifted to lie inside the image where it fits
    (otherwise centred on the box; :func:`cut` pads what lies outside)."""
    bx0, by0, bx1, by1 = (float(v) for v in box)
    side = max(bx1 - bx0, by1 - by0) * (1.0 + 2.0 * margin)
    side = int(round(max(MIN_SIDE_PX, min(side, 2 * max(width, height)))))
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x0 = min(max(x0, 0), width - side) if side <= width else x0
    y0 = min(max(y0, 0), height - side) if side <= height else y0
    return x0, y0, side


def cut(image: np.ndarray, window: tuple[int, int, int], size: int) -> np.ndarray:
    """The window's pixels (grey outside the image), resized to size x size."""
    x0, y0, side = window
    h, w = image.shape[:2]
    out = np.full((side, side) + image.shape[2:], PAD_VALUE, image.dtype)
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if ix1 > ix0 and iy1 > iy0:
        out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = image[iy0:iy1, ix0:ix1]
    interp = cv2.INTER_LINEAR if side <= size else cv2.INTER_AREA
    return cv2.resize(out, (size, size), interpolation=interp)


def to_image(xyxy: np.ndarray, window: tuple[int, int, int], size: int) -> np.ndarray:
    """Boxes (N, 4) in crop pixels -> image pixels."""
    x0, y0, side = window
    s = side / float(size)
    return xyxy * s + np.array([x0, y0, x0, y0], float)


def clip_into(box, window: tuple[int, int, int], width: int, height: int,
              min_inside: float = 0.4):
    """``box`` clipped to the window and the image, in window pixels; None when less than
    ``min_inside`` of its area lies inside."""
    x0, y0, side = window
    bx0, by0, bx1, by1 = (float(v) for v in box)
    area = max(0.0, bx1 - bx0) * max(0.0, by1 - by0)
    cx0, cy0 = max(bx0, x0, 0), max(by0, y0, 0)
    cx1, cy1 = min(bx1, x0 + side, width), min(by1, y0 + side, height)
    if area <= 0 or cx1 <= cx0 or cy1 <= cy0:
        return None
    if (cx1 - cx0) * (cy1 - cy0) / area < min_inside:
        return None
    return cx0 - x0, cy0 - y0, cx1 - x0, cy1 - y0


def jittered(box, rng: np.random.Generator, jitter: float, keep_aspect: bool = False):
    """A box as a detector might give it: centre and size perturbed (sd ``jitter`` of the
    size, and of the log size); ``keep_aspect``: one size factor for both sides."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2 + rng.normal(0, jitter) * w
    cy = (y0 + y1) / 2 + rng.normal(0, jitter) * h
    sw = float(np.exp(rng.normal(0, jitter)))
    sh = sw if keep_aspect else float(np.exp(rng.normal(0, jitter)))
    w, h = w * sw, h * sh
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


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


def main(args=None) -> int:
    p = argparse.ArgumentParser(prog='make_crop_dataset', description=__doc__.split('\n')[0])
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


if __name__ == '__main__':
    sys.exit(main())
