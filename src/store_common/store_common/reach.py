"""Where a hand taking from (or putting on) a plate is: one definition for the renderer that
draws the reach and the fusion that scores hands against it. No rclpy, no numpy arrays in."""
from __future__ import annotations

import math

PLATE_HAND_DZ_M = 0.09       # a reaching hand is this far above the plate surface [m]
REACH_DEPTH_M = 0.12         # ... and this far in from the plate's front edge [m]


def reach_target(plate, along_m: float = 0.0) -> tuple[float, float, float]:
    """The hand's point over ``plate`` (a store description plate: ``center_store``,
    ``yaw_store``, ``size_y_m``) in the store frame [m]: ``along_m`` from the plate's centre
    along its width, :data:`REACH_DEPTH_M` in from its front edge, :data:`PLATE_HAND_DZ_M`
    above its surface."""
    c, s = math.cos(plate.yaw_store), math.sin(plate.yaw_store)
    dx, dy = float(along_m), -plate.size_y_m / 2 + REACH_DEPTH_M
    x, y, z = plate.center_store[:3]
    return (float(x + c * dx - s * dy), float(y + s * dx + c * dy), float(z + PLATE_HAND_DZ_M))
