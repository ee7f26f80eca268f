"""Synthetic detections: the shopper boxes each camera would give for people standing at given
floor positions (tests, and traces to replay). Never imports rclpy."""
from __future__ import annotations

import numpy as np

from store_fusion.geometry import Detection2D

HEIGHT_M = 1.75


def standing_boxes(store, xy, skip=(), colors=None, height_m: float = HEIGHT_M
                   ) -> dict[str, list[Detection2D]]:
    """{camera id: shopper boxes} of people standing at the floor positions ``xy`` [(x, y) m]:
    each box spans the projections of the feet and the head, 0.3 x as wide as tall, score 0.9;
    a person not wholly in a camera's image is not in its list. ``skip``: cameras left out;
    ``colors``: torso RGB per person."""
    out = {}
    for cam in store.cameras:
        if cam.id in skip:
            continue
        dets = []
        for i, (x, y) in enumerate(xy):
            uv, _ = cam.model.project([[x, y, 0.0], [x, y, height_m]])
            if not np.all(np.isfinite(uv)) or not cam.model.in_image(uv).all():
                continue
            h = uv[0, 1] - uv[1, 1]
            dets.append(Detection2D('shopper', 0.9, (uv[0, 0] + uv[1, 0]) / 2,
                                    (uv[0, 1] + uv[1, 1]) / 2, 0.3 * h, h,
                                    color=colors[i] if colors else None))
        out[cam.id] = dets
    return out
