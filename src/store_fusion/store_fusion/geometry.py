"""Detections in the store frame: foot points on the floor, hand rays, triangulation.

Never imports rclpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from store_common.appearance import TORSO_COLS, TORSO_ROWS, torso_color  # noqa: F401 (API)
from store_common.camera import rays_to_plane_z
from store_common.reach import PLATE_HAND_DZ_M, reach_target
from store_interfaces.msg import ShopperTrack


@dataclass
class Detection2D:
    """One detection of one camera image (the fields of store_interfaces/Detection we use)."""
    cls: str                 # 'shopper', 'hand' or 'product'
    score: float             # detector confidence 0..1
    cx: float                # box centre [px]
    cy: float
    w: float                 # box size [px]
    h: float
    sku: str = ''            # product boxes: SKU from the crop's colour; '' unknown
    sku_score: float = 0.0
    color: tuple | None = None   # shopper boxes: mean RGB [0..255] of the torso; None unknown
    age_s: float = 0.0       # shopper boxes: found on an image this much older, carried over [s]


HEAD_TOP_Z_M = 1.75          # typical top of a shopper's head [m] (fallback when feet are hidden)
HAND_REST_Z_M = 0.8          # a hand hanging at the side [m]
BORDER_PX = 2.0              # a box edge this close to the image border is cut by it [px]
_SEGMENT_T = np.linspace(0.05, 0.97, 24)  # where a camera-to-foot segment is checked for gondolas
# a shopper box carried over from an earlier image (Detection2D.age_s) is this far off per
# second of its age, 1 sigma: a shopper's walking speed [m/s]
CARRIED_MPS = 1.2
SIDE_CUT_STD_M = 0.8         # extra floor std of a box cut at the left or right border [m]
# how a 3D hand was placed: two cameras' rays meet (its depth is measured); one camera's ray,
# placed where it meets a reachable plate's height; or at the height of a hand at rest
HAND_TRIANGULATED = ShopperTrack.HAND_TRIANGULATED
HAND_ONE_VIEW_AT_PLATE = ShopperTrack.HAND_ONE_VIEW_AT_PLATE
HAND_ONE_VIEW_AT_REST = ShopperTrack.HAND_ONE_VIEW_AT_REST


@dataclass
class Observation:
    """One shopper box of one camera, lifted to the floor, with its hands and products."""
    camera_id: str
    xy: np.ndarray                     # floor position estimate [m]
    std_m: float                       # 1-sigma of xy [m]
    score: float
    hand_rays: list = None             # [(origin (3,), unit direction (3,), score)]
    products: list = None              # [(sku, sku_score, ray origin, ray direction)]
    feet_hidden: bool = False
    color: np.ndarray | None = None    # appearance feature (:func:`appearance_feature`)
    head_ray: tuple | None = None      # (origin (3,), unit direction (3,)) through the box top


@dataclass
class LooseHand:
    """A hand box in no shopper box of its image, and the product boxes on it."""
    camera_id: str
    origin: np.ndarray                 # camera centre (3,)
    direction: np.ndarray              # unit ray through the hand box's centre (3,)
    score: float
    products: list                     # [(sku, sku_score, ray origin, ray direction)]


def _loose_hands(camera_id: str, origin, parts: list) -> list[LooseHand]:
    """``parts``: (Detection2D, ray) of the hand and product boxes in no shopper box; a
    product box overlapping a hand box is held by that hand."""
    out = []
    for d, u in parts:
        if d.cls != 'hand':
            continue
        held = [(q.sku, q.sku_score, origin.copy(), uq) for q, uq in parts
                if q.cls == 'product' and q.sku and abs(q.cx - d.cx) <= (q.w + d.w) / 2
                and abs(q.cy - d.cy) <= (q.h + d.h) / 2]
        out.append(LooseHand(camera_id, origin.copy(), u, d.score, held))
    return out


# --- appearance ---------------------------------------------------------------------------------
CHROMA_SD = 0.04             # sd of one observation's chromaticity (lighting tint, mixing)
BRIGHT_SD = 0.25             # sd of one observation's log brightness (shading, exposure)


def appearance_feature(rgb) -> np.ndarray | None:
    """Mean torso RGB [0..255] -> (r, g chromaticity, log brightness): the chromaticity barely
    moves with the lighting's level, the brightness does (so it is weighted less)."""
    if rgb is None:
        return None
    c = np.asarray(rgb, float) + 1.0
    s = float(c.sum())
    return np.array([c[0] / s, c[1] / s, math.log(s / 3.0)])


def checked_torso_rgb(values) -> tuple[tuple | None, str]:
    """A detection's measured torso colour (``Detection.torso_rgb``: empty, or mean R, G, B in
    0..255) -> (the colour, '') or (None, why it is not used). Empty is "not measured" (no
    reason); a wrong length, a non-finite or an out-of-range value is refused with its reason."""
    try:
        vals = [float(v) for v in values]
    except (TypeError, ValueError):
        return None, f'torso_rgb is not a list of numbers: {values!r}'
    if not vals:
        return None, ''
    if len(vals) != 3:
        return None, f'torso_rgb has {len(vals)} values, not 3 (R, G, B)'
    if not all(math.isfinite(v) for v in vals):
        return None, f'torso_rgb {vals} is not finite'
    if not all(0.0 <= v <= 255.0 for v in vals):
        return None, f'torso_rgb {vals} is outside 0..255'
    return tuple(vals), ''


def appearance_d2(a, b) -> float:
    """Squared normalised distance of two appearance features (~chi2, 3 dof); 0 if unknown."""
    if a is None or b is None:
        return 0.0
    d = (np.asarray(a) - np.asarray(b)) / np.array([CHROMA_SD, CHROMA_SD, BRIGHT_SD])
    return float(d @ d)


class StoreGeometry:
    """Camera models and the store's gondolas, plates and gates (from the store description)."""

    def __init__(self, store):
        self.store = store
        self.cameras = {c.id: c.model for c in store.cameras}
        self.gondola_boxes = []      # (x0, x1, y0, y1, z1) axis-aligned bounds [m]
        for g in store.gondolas:
            c, s = abs(math.cos(g.yaw_rad)), abs(math.sin(g.yaw_rad))
            hx = (g.size_m[0] * c + g.size_m[1] * s) / 2
            hy = (g.size_m[0] * s + g.size_m[1] * c) / 2
            self.gondola_boxes.append((g.x_m - hx, g.x_m + hx, g.y_m - hy, g.y_m + hy,
                                       g.size_m[2]))
        self.plates = store.plates
        self.plate_targets = {pid: self._plate_target(p) for pid, p in self.plates.items()}

    @staticmethod
    def _plate_target(p) -> np.ndarray:
        """Where a hand taking from the plate is: over its front part, at its centre [m]
        (``store_common.reach``, as the renderer draws the reach)."""
        return np.array(reach_target(p))

    def plate_distance(self, plate_id: str, point) -> float:
        """Distance from a 3D point to the plate's reach region (its width, front band) [m]."""
        p = self.plates[plate_id]
        q = np.asarray(point, float) - self.plate_targets[plate_id]
        c, s = math.cos(p.yaw_store), math.sin(p.yaw_store)
        lx = c * q[0] + s * q[1]
        ly = -s * q[0] + c * q[1]
        ex = max(0.0, abs(lx) - p.size_x_m / 2)
        ey = max(0.0, abs(ly) - 0.1)
        ez = max(0.0, abs(q[2]) - 0.08)
        return float(math.sqrt(ex * ex + ey * ey + ez * ez))

    def _on_plate(self, plate_id: str, body_xy) -> tuple[float, float, float]:
        """``body_xy`` in the plate's floor frame: (along its width, across it towards its back,
        distance) from the plate's centre [m]."""
        p = self.plates[plate_id]
        q = np.asarray(body_xy, float)[:2] - np.asarray(p.center_store[:2], float)
        c, s = math.cos(p.yaw_store), math.sin(p.yaw_store)
        return (float(c * q[0] + s * q[1]), float(-s * q[0] + c * q[1]),
                math.hypot(q[0], q[1]))

    def beside(self, plate_id: str, body_xy) -> float:
        """How far a shopper at ``body_xy`` stands to the side of the plate: the distance along
        the shelf from the body to the plate's width, 0 in front of it [m]."""
        along, _, _ = self._on_plate(plate_id, body_xy)
        return max(0.0, abs(along) - self.plates[plate_id].size_x_m / 2)

    def in_front_of(self, plate_id: str, body_xy, reach_m: float = 1.1) -> bool:
        """Is a shopper standing at ``body_xy`` on the plate's open (front) side and within
        ``reach_m`` of it? Gondolas are single-sided: from the aisle behind, a hand ray that
        crosses the plate's height above it is not a reach into it."""
        _, across, dist = self._on_plate(plate_id, body_xy)
        return across < -self.plates[plate_id].size_y_m / 2 and dist <= reach_m

    def _blocked(self, o, p) -> bool:
        """Does the segment o -> p pass through a gondola (below its top)? Checked at 24
        points along it."""
        if not self.gondola_boxes:
            return False
        pts = o + (p - o) * _SEGMENT_T[:, None]                     # (24, 3)
        b = np.asarray(self.gondola_boxes, dtype=float)             # (G, 5)
        x, y, z = pts[:, None, 0], pts[:, None, 1], pts[:, None, 2]
        inside = ((b[:, 0] <= x) & (x <= b[:, 1]) & (b[:, 2] <= y) & (y <= b[:, 3])
                  & (z <= b[:, 4]))
        return bool(inside.any())

    def observe(self, camera_id: str, dets: list[Detection2D],
                loose: list[LooseHand] | None = None) -> list[Observation]:
        """Shopper boxes of one image -> floor observations with their hands' rays.

        ``loose``: a list to which the hands in no shopper box are added, with the products on
        them (an arm stretched to a shelf reaches out of its body's box, or the body is hidden
        behind a gondola and the hand above it is not); None: such hands are dropped."""
        cam = self.cameras[camera_id]
        shoppers = [d for d in dets if d.cls == 'shopper']
        parts = [d for d in dets if d.cls in ('hand', 'product')]
        if not shoppers and (loose is None or not parts):
            return []       # hands and products belong to a shopper box
        # every ray of the image in one undistortion (the tracker's main cost, per call): the
        # feet and head tops of the shopper boxes, then the centres of hands and products
        n = len(shoppers)
        uv = ([[d.cx, d.cy + d.h / 2] for d in shoppers]
              + [[d.cx, d.cy - d.h / 2] for d in shoppers]
              + [[d.cx, d.cy] for d in parts])
        origin, rays = cam.pixel_rays(uv)
        feet = rays_to_plane_z(origin, rays[:n], 0.0)
        heads = rays_to_plane_z(origin, rays[n:2 * n], HEAD_TOP_Z_M)
        obs: list[Observation] = []
        boxes = []      # the person box of each observation (hands and products go to one)
        sx, sy = self.store.size_m
        edge = BORDER_PX
        for i, d in enumerate(shoppers):
            # a box cut by the image border: its bottom is not the feet, or its top not the head,
            # or its centre is pulled inwards (left/right)
            cut_bottom = d.cy + d.h / 2 >= cam.height - 1 - edge
            cut_top = d.cy - d.h / 2 <= edge
            cut_side = d.cx - d.w / 2 <= edge or d.cx + d.w / 2 >= cam.width - 1 - edge
            if cut_bottom and cut_top:
                continue        # neither feet nor head: no floor position
            foot = feet[i]
            hidden = cut_bottom or not np.all(np.isfinite(foot)) \
                or self._blocked(cam.t_store_cam, foot)
            rng = float(np.linalg.norm(cam.t_store_cam[:2] - foot[:2])) \
                if np.all(np.isfinite(foot)) else 99.0
            std = 0.12 + 0.03 * rng
            if hidden or not (-0.5 <= foot[0] <= sx + 0.5 and -0.5 <= foot[1] <= sy + 0.5):
                head = heads[i]
                if not np.all(np.isfinite(head)):
                    continue
                foot = head
                rng = float(np.linalg.norm(cam.t_store_cam[:2] - head[:2]))
                std = 0.25 + 0.12 * rng
                hidden = True
            if cut_side:
                std += SIDE_CUT_STD_M
            if d.age_s > 0.0:
                # the box is an earlier image's: the shopper may have walked on since
                std = math.hypot(std, CARRIED_MPS * d.age_s)
            head_ray = None
            if not cut_top:
                head_ray = (origin.copy(), rays[n + i])
            obs.append(Observation(camera_id, np.asarray(foot[:2], float), std, d.score, [],
                                   [], hidden, appearance_feature(d.color), head_ray))
            boxes.append((d.cx - d.w / 2, d.cy - d.h / 2, d.cx + d.w / 2, d.cy + d.h / 2,
                          d.w * d.h))
        # hands and products go to a shopper box containing their centre: of several, the
        # smallest, unless the part's ray passes another's body (at arm's height) nearer by
        # AXIS_MARGIN_M (in a crowd a reaching hand lies inside the boxes of the shoppers
        # behind it too, and the smaller box may be theirs)
        outside = []
        for k, d in enumerate(parts):
            u = rays[2 * n + k]
            inside = []
            for i, (x0, y0, x1, y1, _a) in enumerate(boxes):
                m = 0.08 * (x1 - x0) + 4
                if x0 - m <= d.cx <= x1 + m and y0 - m <= d.cy <= y1 + m:
                    inside.append(i)
            if not inside:
                outside.append(k)
                continue
            best = min(inside, key=lambda i: boxes[i][4])
            if len(inside) > 1:
                dist = {i: ray_axis_distance(origin, u, obs[i].xy) for i in inside}
                near = min(inside, key=lambda i: dist[i])
                if dist[near] + AXIS_MARGIN_M < dist[best]:
                    best = near
            o = origin.copy()
            if d.cls == 'hand':
                obs[best].hand_rays.append((o, u, d.score))
            else:
                obs[best].products.append((d.sku, d.sku_score, o, u))
        if loose is not None:
            loose.extend(_loose_hands(camera_id, origin, [(parts[k], rays[2 * n + k])
                                                          for k in outside]))
        return obs


def triangulate_rays(rays: list[tuple], z_range=(1.2, 2.2), max_rms_m: float = 0.2,
                     min_angle_rad: float = 0.17) -> tuple[np.ndarray, float] | None:
    """Least-squares meeting point of >= 2 rays [(origin, unit direction)] and the RMS distance
    of the rays from it [m]; None when they are near-parallel, miss each other by more than
    ``max_rms_m``, or meet outside ``z_range`` (a head top is between 1.2 and 2.2 m)."""
    if len(rays) < 2:
        return None
    dirs = np.array([u for _, u in rays])
    if max(float(np.arccos(np.clip(abs(a @ b), -1.0, 1.0)))
           for i, a in enumerate(dirs) for b in dirs[i + 1:]) < min_angle_rad:
        return None
    a = np.zeros((3, 3))
    b = np.zeros(3)
    for o, u in rays:
        m = np.eye(3) - np.outer(u, u)
        a += m
        b += m @ o
    try:
        p = np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return None
    rms = float(np.sqrt(np.mean([np.sum(((np.eye(3) - np.outer(u, u)) @ (p - o)) ** 2)
                                 for o, u in rays])))
    if rms > max_rms_m or not z_range[0] <= p[2] <= z_range[1]:
        return None
    if any((p - o) @ u <= 0 for o, u in rays):
        return None          # behind a camera
    return p, rms


# how much nearer [m] another shopper's body must be to a hand's ray than the smallest
# containing box's to take the hand (StoreGeometry.observe); 0 let through as many wrong
# owners as it put right on the learning_days scenarios (docs/RESULTS.md)
AXIS_MARGIN_M = 0.25


def ray_axis_distance(origin, direction, xy, z_range=(0.3, 1.9)) -> float:
    """Least horizontal distance [m] between a camera ray's points at heights ``z_range`` (a
    hand's or a held product's) and the vertical axis of a shopper standing at ``xy``."""
    o, u = np.asarray(origin, float), np.asarray(direction, float)
    q = np.asarray(xy, float)[:2]
    if abs(u[2]) > 1e-9:
        ts = sorted(((z_range[0] - o[2]) / u[2], (z_range[1] - o[2]) / u[2]))
        lo, hi = max(ts[0], 0.0), ts[1]
        if hi < lo:
            return float('inf')     # the ray never passes those heights in front of the camera
    else:
        if not z_range[0] <= o[2] <= z_range[1]:
            return float('inf')
        lo, hi = 0.0, float('inf')
    w, v = o[:2] - q, u[:2]
    vv = float(v @ v)
    t = -float(w @ v) / vv if vv > 1e-12 else lo
    t = min(max(t, lo), hi)
    return float(np.linalg.norm(w + t * v))


def closest_points(o1, d1, o2, d2) -> tuple[np.ndarray, float]:
    """Midpoint of the closest approach of two rays and the gap between them [m]."""
    w0 = o1 - o2
    a, b, c = d1 @ d1, d1 @ d2, d2 @ d2
    d, e = d1 @ w0, d2 @ w0
    den = a * c - b * b
    if den < 1e-9:
        return (o1 + o2) / 2, float('inf')
    s = (b * e - c * d) / den
    t = (a * e - b * d) / den
    if s <= 0 or t <= 0:
        return (o1 + o2) / 2, float('inf')
    p1, p2 = o1 + s * d1, o2 + t * d2
    return (p1 + p2) / 2, float(np.linalg.norm(p1 - p2))


def plate_hits(geom: StoreGeometry, origin, direction, max_d_m: float = 0.12,
               plates=None) -> list[tuple[np.ndarray, str]]:
    """Where a hand on a camera ray would be if it reached into a plate: (the ray's point at
    a reaching hand's height above a plate level, a plate of ``plates`` (default: all) whose
    reach region is within ``max_d_m`` of it), every such pair, lowest plate level first."""
    o, u = np.asarray(origin, float), np.asarray(direction, float)
    if abs(u[2]) < 1e-6:
        return []
    plates = list(geom.plates) if plates is None else plates
    out = []
    for z in sorted({round(p.center_store[2] + PLATE_HAND_DZ_M, 3) for p in geom.plates.values()}):
        t = (z - o[2]) / u[2]
        if t <= 0:
            continue
        q = o + t * u
        out.extend((q, pid) for pid in plates if geom.plate_distance(pid, q) < max_d_m)
    return out


def hands_3d(geom: StoreGeometry, body_xy, rays: list) -> list[tuple[np.ndarray, float, int]]:
    """Hand rays of one shopper (several cameras) -> [(3D hand, std [m], HAND_* source)].

    Pairs of rays from different cameras that pass within 0.15 m of each other near the body
    are triangulated; a ray left over is intersected with the plate heights (a reaching hand is
    just above a plate surface) where that lands on a plate within reach (of two, the one
    nearer the body), else with the height of a hand at rest. A one-view hand's depth along its
    ray is assumed, not measured: a hand drawn back from one shelf can pass for a reach into
    the shelf below it.
    """
    body = np.asarray(body_xy, float)
    used = set()
    out = []
    for i in range(len(rays)):
        for j in range(i + 1, len(rays)):
            if i in used or j in used or rays[i][3] == rays[j][3]:
                continue
            p, gap = closest_points(rays[i][0], rays[i][1], rays[j][0], rays[j][1])
            if gap < 0.15 and np.linalg.norm(p[:2] - body) < 1.2 and 0.1 < p[2] < 2.0:
                out.append((p, 0.05 + gap / 2, HAND_TRIANGULATED))
                used.update((i, j))
    reachable = [pid for pid in geom.plates if geom.in_front_of(pid, body)]
    for k, (o, u, _score, _cam) in enumerate(rays):
        if k in used:
            continue
        best = None
        for p, _pid in plate_hits(geom, o, u, plates=reachable):
            reach = float(np.linalg.norm(p[:2] - body))
            if reach <= 1.1 and (best is None or reach < best[1]):
                best = (p, reach)     # of two shelves the ray crosses, the one within arm's reach
        if best is not None:
            out.append((best[0], 0.12, HAND_ONE_VIEW_AT_PLATE))
            continue
        if abs(u[2]) > 1e-6:
            t = (HAND_REST_Z_M - o[2]) / u[2]
            p = o + t * u
            if t > 0 and np.linalg.norm(p[:2] - body) < 1.1:
                out.append((p, 0.3, HAND_ONE_VIEW_AT_REST))
    # merge duplicates (the same hand from two single-ray fallbacks)
    merged: list[tuple[np.ndarray, float, int]] = []
    for p, s, src in sorted(out, key=lambda x: x[1]):
        if all(np.linalg.norm(p - q) > 0.2 for q, _, _ in merged):
            merged.append((p, s, src))
    return merged
