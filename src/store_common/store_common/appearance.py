"""Appearance of a person box measured from the image: the mean colour of its torso band.

Shared by the detector (which measures it on every shopper box and sends it in
``store_interfaces/Detection.torso_rgb``) and the tracker (``store_fusion.geometry``, which
turns it into an appearance feature). Never imports rclpy.
"""
from __future__ import annotations

TORSO_ROWS = (0.22, 0.5)     # torso band of a person box, share of its height from the top
TORSO_COLS = (0.3, 0.7)      # and of its width (the arms and the background stay out)


def torso_color(image, cx: float, cy: float, w: float, h: float,
                bgr: bool = True) -> tuple | None:
    """Mean colour (RGB 0..255) of the torso band of a person box in an image (H, W, 3).

    ``cx, cy, w, h``: box centre and size [px]; ``bgr``: the image's channel order (OpenCV's
    default). None when there is no image or the band is under 2 x 2 pixels inside it.
    """
    if image is None:
        return None
    hh, ww = image.shape[:2]
    x0, y0 = cx - w / 2, cy - h / 2
    u0, u1 = int(max(0, x0 + TORSO_COLS[0] * w)), int(min(ww, x0 + TORSO_COLS[1] * w))
    v0, v1 = int(max(0, y0 + TORSO_ROWS[0] * h)), int(min(hh, y0 + TORSO_ROWS[1] * h))
    if u1 - u0 < 2 or v1 - v0 < 2:
        return None
    m = image[v0:v1, u0:u1].reshape(-1, 3).mean(axis=0)
    return tuple(float(v) for v in (m[::-1] if bgr else m))
