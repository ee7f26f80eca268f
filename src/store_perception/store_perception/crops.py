"""Second-stage crops: square windows around shopper boxes, cut for inference and for training.

Hands and products in hand are 4-10 px in a 640x480 ceiling view, 2-6 px once the whole frame
is letterboxed to the first-stage input. The second stage looks again at full resolution: each
shopper box is grown by ``margin`` of its longer side on every side, made square, shifted into
the image (or padded grey where it is larger than the image), and resized to ``size`` px, so a
7 px hand in a 100 px tall shopper becomes ~10-12 px at 224 (more for far, small shoppers). The
same :func:`crop_window` / :func:`cut` serve inference (``detection.Detector``) and the dataset.

The crop dataset is built by ``make_crop_dataset`` (:mod:`store_perception.datasets`).

Never imports rclpy.
"""
from __future__ import annotations

import cv2
import numpy as np

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


def share_inside(window: tuple[int, int, int], other: tuple[int, int, int]) -> float:
    """The share of ``window``'s area that lies inside ``other`` (both (x0, y0, side))."""
    x0, y0, side = window
    ox0, oy0, oside = other
    ix = max(0, min(x0 + side, ox0 + oside) - max(x0, ox0))
    iy = max(0, min(y0 + side, oy0 + oside) - max(y0, oy0))
    return ix * iy / float(side * side) if side > 0 else 1.0


def distinct_windows(boxes_scores, width: int, height: int, margin: float,
                     max_inside: float = 1.0) -> list[tuple[int, int, int]]:
    """The crop windows of shopper boxes [((x0, y0, x1, y1), score)], best score first, without
    those lying more than ``max_inside`` of their area inside a window already kept (a partial,
    low-score box of a shopper cut already: its pixels would be looked at twice). 1.0 keeps
    every window."""
    kept: list[tuple[int, int, int]] = []
    for box, _ in sorted(boxes_scores, key=lambda bs: -bs[1]):
        win = crop_window(box, width, height, margin)
        if max_inside < 1.0 and any(share_inside(win, k) > max_inside for k in kept):
            continue
        kept.append(win)
    return kept


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
