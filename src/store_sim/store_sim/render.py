"""Rendered store cameras: what each calibrated camera of the store sees during a scenario.

A small ray caster in NumPy (no GPU, no OpenGL). Every pixel's ray comes from the camera's
calibration through :meth:`store_common.camera.CameraModel.ray_grid`, distortion included, so an
image point and a store point are related by exactly the geometry the detector and the
multi-view fusion use. Depth is resolved per pixel (a z-buffer of the depth along the optical
axis), so shoppers occlude each other, shelves and products correctly.

The scene:

* floor (tiles), walls, gondolas (posts, a base, one slab per shelf, open at the back),
* products on plates, one primitive per unit in a grid on the plate, shaped and coloured by the
  catalog's ``look`` (can, bottle, carton, bar, bag, box, bowl, cup, round, long); the units on a
  plate follow the scenario's inventory at time t (wrong-plate returns show up where they land),
* shoppers (:class:`ShopperMotion`): legs, torso, head and hair, arms and hands, each with its own
  height and clothes; they walk from the entrance gate to the gondola of each action, stand in
  front of it, reach with the right hand so that the hand is at the plate from ``t_s - reach`` to
  ``t_s`` (the same reach as the plate physics), carry what they took in their hands until they
  put it back or leave (a held unit stands beside the palm, on the outer side of the hand:
  :func:`held_product_base`), and walk to the exit gate, arriving at the exit scan,
* lighting: ambient plus three rows of ceiling lamps whose intensities drift and dip over time
  (per-scenario seed), a colour tint, and sensor noise.

Ground truth per frame: 2D boxes of the *visible* part of each shopper, hand and held product
(objects less than ``min_visible`` visible or tiny are dropped) and, camera-independent, the 3D
state of every shopper (floor position, head, both hands, what each hand holds, which plate is
being reached). Scenario time of frame k is ``t0_s + k / fps``.

This module never imports rclpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from store_common.reach import reach_target
from store_sim.scenario import DEFAULT_REACH_S, Scenario
from store_sim.walkways import gate_center, standing_spot, WALK_SPEED_MPS, Walkways

CLASSES = ('shopper', 'hand', 'product')       # detector classes, in YOLO index order
SHAPES = {   # shape -> (kind, size): box (x, y, z) [m]; cyl (radius, height); sphere (radius)
    'can': ('cyl', (0.033, 0.12)), 'bottle': ('cyl', (0.036, 0.23)),
    'carton': ('box', (0.075, 0.075, 0.2)), 'bar': ('box', (0.16, 0.08, 0.022)),
    'bag': ('box', (0.19, 0.07, 0.26)), 'box': ('box', (0.12, 0.075, 0.055)),
    'bowl': ('cyl', (0.085, 0.07)), 'cup': ('cyl', (0.046, 0.11)),
    'round': ('sphere', (0.042,)), 'long': ('capsule', (0.17, 0.022)),
}
SKIN = ((224, 172, 135), (198, 134, 99), (141, 85, 54), (241, 194, 158), (110, 66, 40))
HAIR = ((40, 30, 25), (90, 60, 30), (200, 170, 110), (120, 120, 120), (20, 20, 20))
ARM_EXTEND_S = 0.5           # the arm moves to / from the plate this long [s]


# --- ray-primitive intersection (vectorised; unit directions u, returns distance and normal) --
def _hit_box(o, u, center, half, yaw):
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])        # store -> box frame
    lo = rot @ (o - center)
    lu = u @ rot.T
    with np.errstate(divide='ignore', invalid='ignore'):
        inv = 1.0 / np.where(np.abs(lu) < 1e-12, 1e-12, lu)
    t1 = (-half - lo) * inv
    t2 = (half - lo) * inv
    tn = np.minimum(t1, t2)
    tf = np.maximum(t1, t2)
    t_near = tn.max(axis=1)
    t_far = tf.min(axis=1)
    hit = (t_far >= t_near) & (t_near > 0)
    axis = tn.argmax(axis=1)
    n_local = np.zeros_like(lu)
    idx = np.arange(len(lu))
    n_local[idx, axis] = -np.sign(lu[idx, axis])
    return np.where(hit, t_near, np.inf), n_local @ rot


def _hit_sphere(o, u, center, r):
    oc = o - center
    b = u @ oc
    c = oc @ oc - r * r
    h = b * b - c
    ok = h >= 0
    t = -b - np.sqrt(np.where(ok, h, 0))
    ok &= t > 0
    p = o + u * t[:, None]
    return np.where(ok, t, np.inf), (p - center) / r


def _hit_capsule(o, u, a, b, r):
    ba = b - a
    baba = ba @ ba
    if baba < 1e-12:
        return _hit_sphere(o, u, a, r)
    oa = o - a
    bard = u @ ba
    baoa = ba @ oa
    rdoa = u @ oa
    oaoa = oa @ oa
    qa = baba - bard * bard
    qb = baba * rdoa - baoa * bard
    qc = baba * oaoa - baoa * baoa - r * r * baba
    h = qb * qb - qa * qc
    t = np.full(len(u), np.inf)
    ok = (h >= 0) & (np.abs(qa) > 1e-12)
    with np.errstate(divide='ignore', invalid='ignore'):
        tb = (-qb - np.sqrt(np.where(ok, h, 0))) / qa
    y = baoa + tb * bard
    body = ok & (y > 0) & (y < baba) & (tb > 0)
    t[body] = tb[body]
    # caps: spheres at both ends where the body was missed
    rest = ~body & (h >= 0)
    if rest.any():
        for end in (a, b):
            ts, _ = _hit_sphere(o, u[rest], end, r)
            t[rest] = np.minimum(t[rest], ts)
    p = o + u * np.where(np.isfinite(t), t, 0)[:, None]
    hh = np.clip(((p - a) @ ba) / baba, 0, 1)
    n = (p - a - hh[:, None] * ba) / r
    return t, n


def _hit_cylinder(o, u, a, b, r):
    """Capped cylinder from a to b."""
    ba = b - a
    oc = o - a
    baba = ba @ ba
    bard = u @ ba
    baoc = ba @ oc
    k2 = baba - bard * bard
    k1 = baba * (u @ oc) - baoc * bard
    k0 = baba * (oc @ oc) - baoc * baoc - r * r * baba
    h = k1 * k1 - k2 * k0
    ok = h >= 0
    hs = np.sqrt(np.where(ok, h, 0))
    t = np.full(len(u), np.inf)
    n = np.zeros_like(u)
    with np.errstate(divide='ignore', invalid='ignore'):
        tb = (-k1 - hs) / np.where(np.abs(k2) < 1e-12, 1e-12, k2)
    y = baoc + tb * bard
    body = ok & (y > 0) & (y < baba) & (tb > 0)
    t[body] = tb[body]
    pb = o + u[body] * tb[body][:, None]
    if body.any():
        n[body] = (pb - a - np.outer(((pb - a) @ ba) / baba, ba)) / r
    with np.errstate(divide='ignore', invalid='ignore'):
        tc = (np.where(y < 0, 0.0, baba) - baoc) / np.where(np.abs(bard) < 1e-12, 1e-12, bard)
    cap = ok & ~body & (np.abs(k1 + k2 * tc) < hs) & (tc > 0)
    t[cap] = tc[cap]
    axis = ba / math.sqrt(baba)
    n[cap] = np.outer(np.where(y[cap] < 0, -1.0, 1.0), axis)
    return t, n


@dataclass
class Prim:
    kind: str                   # box | sphere | capsule | cyl
    params: tuple
    color: tuple                # RGB 0..255
    obj: int = -1               # object index (ground truth); -1 for the static scene

    def bounds(self) -> np.ndarray:
        """(8,3) corners of an axis-aligned box around the primitive [m]."""
        if self.kind == 'box':
            center, half, yaw = self.params
            r = math.hypot(half[0], half[1])
            lo, hi = center - [r, r, half[2]], center + [r, r, half[2]]
        elif self.kind == 'sphere':
            center, rad = self.params
            lo, hi = center - rad, center + rad
        else:
            a, b, rad = self.params
            lo, hi = np.minimum(a, b) - rad, np.maximum(a, b) + rad
        return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                         for z in (lo[2], hi[2])])

    def hit(self, o, u):
        if self.kind == 'box':
            return _hit_box(o, u, *self.params)
        if self.kind == 'sphere':
            return _hit_sphere(o, u, *self.params)
        if self.kind == 'capsule':
            return _hit_capsule(o, u, *self.params)
        return _hit_cylinder(o, u, *self.params)


def shape_of(look: dict) -> tuple[str, tuple]:
    """(kind, size) of a catalog ``look`` (:data:`SHAPES`; unknown or missing: a box)."""
    return SHAPES.get(look.get('shape', 'box'), SHAPES['box'])


def product_prims(sku: str, look: dict, base_xyz, yaw: float, obj: int = -1,
                  shade: float = 1.0) -> list[Prim]:
    """One unit of a product standing at ``base_xyz`` (bottom centre)."""
    kind, size = shape_of(look)
    color = tuple(float(np.clip(c * shade, 0, 255)) for c in look.get('color', (128, 128, 128)))
    b = np.asarray(base_xyz, dtype=float)
    if kind == 'box':
        return [Prim('box', (b + [0, 0, size[2] / 2], np.array(size) / 2, yaw), color, obj)]
    if kind == 'cyl':
        return [Prim('cyl', (b, b + [0, 0, size[1]], size[0]), color, obj)]
    if kind == 'sphere':
        return [Prim('sphere', (b + [0, 0, size[0]], size[0]), color, obj)]
    half = size[0] / 2
    d = np.array([math.cos(yaw), math.sin(yaw), 0.0]) * half
    return [Prim('capsule', (b + [0, 0, size[1]] - d, b + [0, 0, size[1]] + d, size[1]),
                 color, obj)]


HAND_RADIUS_M = 0.042    # the hand capsule's radius (wrist to fingertips)


def product_half_width(look: dict) -> float:
    """Half the width of one unit across the shopper's body (the axis a hand holds it beside)."""
    kind, size = shape_of(look)
    if kind == 'box':
        return size[1] / 2      # boxes face the shopper's heading: y runs along their left
    if kind == 'capsule':
        return size[1]          # a long product lies along the heading; its radius is across
    return size[0]              # cylinders and spheres: the radius


def held_product_base(look: dict, hand, outward) -> np.ndarray:
    """Bottom centre of a unit held in ``hand`` (store frame, m).

    The unit hangs from the grip (55 % of its height below the hand centre) and stands beside the
    palm, towards ``outward`` (a unit vector across the body, away from it), by the hand's radius
    and half the unit's own half-width: about half of it overlaps the fingers and half shows
    beside them. Centred on the hand, a can, an apple or a small bottle lay inside the 42 mm hand
    capsule and no camera saw it.
    """
    kind, size = shape_of(look)
    height = size[-1] if kind in ('box', 'cyl') else 2 * size[0]
    side = HAND_RADIUS_M + 0.5 * product_half_width(look)
    return (np.asarray(hand, dtype=float) + np.asarray(outward, dtype=float) * side
            - [0.0, 0.0, height * 0.55])


def product_footprint(look: dict) -> tuple[float, float]:
    kind, size = shape_of(look)
    if kind == 'box':
        return size[0], size[1]
    if kind == 'cyl' or kind == 'sphere':
        return 2 * size[0], 2 * size[0]
    return size[0] + 2 * size[1], 2 * size[1]


# --- scenario state over time ---------------------------------------------------------------
def reach_starts(store, scenario: Scenario, seed: int | None = None) -> dict:
    """{(shopper_id, action_index): time the hand arrives at the plate [s]}, taken from the plate
    physics so that camera and load cells agree."""
    from store_sim.physics import StorePhysics
    phys = StorePhysics(store, scenario, seed=seed)
    out = {}
    for ev in phys.events:
        key = (ev.shopper_id, ev.action_index)
        out[key] = min(out.get(key, ev.reach_start_s), ev.reach_start_s)
    for s in scenario.shoppers:
        for j, a in enumerate(s.actions):
            out.setdefault((s.id, j), a.t_s - (a.reach_s or DEFAULT_REACH_S))
    return out


def plate_contents(store, scenario: Scenario, t_s: float) -> dict[str, list[tuple[str, int]]]:
    """{plate: [(sku, units), ...]} at scenario time t: the planogram's SKU first, then any
    foreign units returned there. An action changes the shelf at its ``t_s``."""
    stock = {pid: {e.sku: e.initial_units} for pid, e in store.planogram.items()}
    for s in scenario.shoppers:
        for a in s.actions:
            if a.t_s <= t_s:
                units = stock.setdefault(a.plate, {})
                units[a.sku] = units.get(a.sku, 0) + (-a.quantity if a.kind == 'take'
                                                      else a.quantity)
    return {pid: [(k, n) for k, n in units.items() if n > 0] for pid, units in stock.items()}


class ShopperMotion:
    """Where a shopper is, what their hands do and hold, at any scenario time."""

    def __init__(self, store, shopper, index: int, reach: dict, seed: int,
                 walk_speed_mps: float = WALK_SPEED_MPS, walkways: Walkways | None = None):
        self.store = store
        self.shopper = shopper
        rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x5A5A, index])
        self.height_m = float(rng.uniform(1.55, 1.95))
        self.width_m = float(rng.uniform(0.16, 0.21))
        hue = (index * 0.381 + float(rng.uniform(0, 0.2))) % 1.0
        self.shirt = _hsv_rgb(hue, float(rng.uniform(0.45, 0.95)), float(rng.uniform(0.4, 0.95)))
        self.pants = _hsv_rgb(float(rng.uniform(0, 1)), float(rng.uniform(0.1, 0.6)),
                              float(rng.uniform(0.15, 0.55)))
        self.skin = SKIN[int(rng.integers(len(SKIN)))]
        self.hair = HAIR[int(rng.integers(len(HAIR)))]
        self.reach_offset = rng.uniform(-0.2, 0.2, len(shopper.actions))
        self.walkways = walkways or Walkways(store)
        self.reach = [(reach[(shopper.id, j)], a.t_s) for j, a in enumerate(shopper.actions)]
        # timeline of (t, xy, heading) keyframes
        keys: list[tuple[float, np.ndarray, float]] = []
        pos = gate_center(store, 'entrance')
        t_free = shopper.enter_s
        keys.append((t_free, pos, math.pi / 2))
        for j, a in enumerate(shopper.actions):
            spot, heading = standing_spot(store, a.plate)
            arrive = self.reach[j][0] - ARM_EXTEND_S - 0.3
            t_free = self._walk(keys, pos, spot, t_free, arrive, walk_speed_mps, heading)
            pos = spot
            t_free = max(t_free, a.t_s + ARM_EXTEND_S)
            keys.append((t_free, pos, heading))
        exit_xy = gate_center(store, 'exit')
        self._walk(keys, pos, exit_xy, t_free, shopper.exit_s, walk_speed_mps, -math.pi / 2)
        self.keys = keys

    def _walk(self, keys, a, b, t_free, t_arrive, speed, heading_end) -> float:
        path = self.walkways.route(a, b)
        seg = [float(np.linalg.norm(q - p)) for p, q in zip(path, path[1:])]
        total = sum(seg)
        if total < 1e-6:
            keys.append((max(t_free, t_arrive), b, heading_end))
            return max(t_free, t_arrive)
        t_arrive = max(t_arrive, t_free + 0.2)
        depart = max(t_free, t_arrive - total / speed)
        dur = t_arrive - depart
        keys.append((depart, a, keys[-1][2]))
        t = depart
        for p, q, d in zip(path, path[1:], seg):
            t += dur * d / total
            keys.append((t, q, math.atan2(q[1] - p[1], q[0] - p[0])))
        keys.append((t_arrive + 0.15, b, heading_end))
        return t_arrive + 0.15

    def present(self, t: float) -> bool:
        return self.shopper.enter_s <= t <= self.shopper.exit_s

    def pose(self, t: float) -> tuple[np.ndarray, float, float]:
        """(floor xy, heading [rad], walked phase [rad]) at time t."""
        ks = self.keys
        if t <= ks[0][0]:
            return ks[0][1].copy(), ks[0][2], 0.0
        for (t0, p0, h0), (t1, p1, h1) in zip(ks, ks[1:]):
            if t0 <= t <= t1:
                f = 0.0 if t1 - t0 < 1e-9 else (t - t0) / (t1 - t0)
                xy = p0 + (p1 - p0) * f
                moving = np.linalg.norm(p1 - p0) > 1e-6
                heading = h1 if moving else h0 + _angle(h1 - h0) * min(1.0, f * 4)
                speed = np.linalg.norm(p1 - p0) / max(t1 - t0, 1e-6)
                phase = (t - t0) * speed * 6.0 if moving else 0.0
                return xy, heading, phase
        return ks[-1][1].copy(), ks[-1][2], 0.0

    def holding(self, t: float) -> tuple[str | None, str | None, int]:
        """(right-hand SKU, left-hand SKU, index of the action whose reach is on, or -1)."""
        held: list[str] = []
        active = -1
        for j, a in enumerate(self.shopper.actions):
            start, end = self.reach[j][0] - ARM_EXTEND_S, a.t_s
            if a.t_s <= t:
                if a.kind == 'take':
                    held.extend([a.sku] * a.quantity)
                else:
                    for _ in range(a.quantity):
                        if a.sku in held:
                            held.reverse()
                            held.remove(a.sku)
                            held.reverse()
            elif start <= t < end:
                active = j
        if active >= 0:
            a = self.shopper.actions[active]
            if a.kind == 'take':
                return None, (held[-1] if held else None), active
            rest = list(held)
            if a.sku in rest:
                rest.reverse()
                rest.remove(a.sku)
                rest.reverse()
            return a.sku, (rest[-1] if rest else None), active
        return (held[-1] if held else None), (held[-2] if len(held) > 1 else None), active

    def arm_extension(self, t: float) -> tuple[float, int]:
        """(0..1 how far the right arm is out towards the plate, action index or -1)."""
        for j, a in enumerate(self.shopper.actions):
            start, t_s = self.reach[j]
            if start - ARM_EXTEND_S <= t <= t_s + ARM_EXTEND_S:
                if t < start:
                    f = (t - (start - ARM_EXTEND_S)) / ARM_EXTEND_S
                elif t <= t_s:
                    f = 1.0
                else:
                    f = 1.0 - (t - t_s) / ARM_EXTEND_S
                return float(np.clip(f, 0, 1)), j
        return 0.0, -1

    def state(self, t: float) -> dict:
        """3D truth: body, head, hands and what they hold (store frame, metres)."""
        xy, heading, phase = self.pose(t)
        h = self.height_m
        fwd = np.array([math.cos(heading), math.sin(heading), 0.0])
        left = np.array([-math.sin(heading), math.cos(heading), 0.0])
        base = np.array([xy[0], xy[1], 0.0])
        swing = 0.12 * math.sin(phase)
        shoulder_z = 0.81 * h
        sh_r = base + left * -(self.width_m + 0.04) + [0, 0, shoulder_z]
        sh_l = base + left * (self.width_m + 0.04) + [0, 0, shoulder_z]
        rest_r = base + left * -(self.width_m + 0.07) + fwd * swing + [0, 0, 0.46 * h]
        rest_l = base + left * (self.width_m + 0.07) - fwd * swing + [0, 0, 0.46 * h]
        ext, j = self.arm_extension(t)
        hand_r = rest_r
        plate = None
        if j >= 0:
            a = self.shopper.actions[j]
            p = self.store.plate(a.plate)
            target = np.array(reach_target(p, float(self.reach_offset[j])))
            e = ext * ext * (3 - 2 * ext)   # smoothstep
            hand_r = rest_r + (target - rest_r) * e
            if ext > 0.999:
                plate = a.plate
        right, left_sku, _ = self.holding(t)
        return {'id': self.shopper.id, 'xy': [float(xy[0]), float(xy[1])],
                'heading_rad': float(heading), 'height_m': h,
                'head': [float(xy[0]), float(xy[1]), 0.91 * h],
                'hands': {'right': [float(v) for v in hand_r], 'left': [float(v) for v in rest_l]},
                'shoulders': {'right': [float(v) for v in sh_r], 'left': [float(v) for v in sh_l]},
                'holding': {'right': right, 'left': left_sku},
                'reaching_plate': plate, 'phase': phase}


def _angle(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _hsv_rgb(h: float, s: float, v: float) -> tuple:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (255 * r, 255 * g, 255 * b)


# --- lighting --------------------------------------------------------------------------------
@dataclass
class Lighting:
    """Ambient + three rows of ceiling lamps (west, centre, east); drifts and dips over time."""
    seed: int = 0
    variant: int = 0             # lighting variant (datasets): changes levels, tint and dips
    ambient: float = 0.45
    lamp_gain: float = 0.75
    tint: tuple = (1.0, 1.0, 1.0)
    dips: list = field(default_factory=list)    # (t_start, t_end, row, factor)
    noise_sd: float = 3.0        # sensor noise [8-bit levels]

    def __post_init__(self):
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x11, self.variant])
        if self.variant:
            self.ambient = float(rng.uniform(0.25, 0.6))
            self.lamp_gain = float(rng.uniform(0.5, 1.0))
            self.tint = tuple(float(v) for v in rng.uniform(0.85, 1.12, 3))
            self.noise_sd = float(rng.uniform(2.0, 7.0))
        self.phase = rng.uniform(0, 2 * math.pi, 4)
        self.dips = [(float(s), float(s + rng.uniform(1.0, 6.0)), int(rng.integers(3)),
                      float(rng.uniform(0.2, 0.6)))
                     for s in rng.uniform(0, 120, int(rng.integers(1, 4)))]

    def weights(self, t: float) -> tuple[float, np.ndarray]:
        """(ambient, (3,) lamp row intensities) at scenario time t."""
        amb = self.ambient * (1 + 0.08 * math.sin(2 * math.pi * t / 37.0 + self.phase[0]))
        rows = np.array([self.lamp_gain * (1 + 0.1 * math.sin(2 * math.pi * t / (23.0 + 7 * i)
                                                              + self.phase[1 + i]))
                         for i in range(3)])
        for t0, t1, row, f in self.dips:
            if t0 <= t <= t1:
                rows[row] *= f
        return amb, rows


# --- the renderer ----------------------------------------------------------------------------
class CameraRenderer:
    """Renders one camera of a store playing one scenario."""

    def __init__(self, store, camera, scenario: Scenario, seed: int | None = None,
                 lighting_variant: int = 0, noise: bool = True):
        self.store = store
        self.camera = camera
        self.model = camera.model
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.H, self.W = self.model.height, self.model.width
        rays = self.model.ray_grid()
        self.ray_norm = np.linalg.norm(rays, axis=2)           # |d| with optical-z 1
        self.units = rays / self.ray_norm[..., None]           # unit directions
        self.origin = self.model.t_store_cam.astype(float)
        self.lighting = Lighting(seed=self.seed, variant=lighting_variant)
        self.noise = noise
        self.reach = reach_starts(store, scenario, seed)
        walkways = Walkways(store)
        self.shoppers = [ShopperMotion(store, s, i, self.reach, self.seed, walkways=walkways)
                         for i, s in enumerate(scenario.shoppers)]
        self.lamps = self._lamps()
        self._static_key = None
        self._static = None
        self.rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x77,
                                          lighting_variant, _cam_hash(camera.id)])

    def _lamps(self) -> list[np.ndarray]:
        sx, sy = self.store.size_m
        return [np.array([[x, y, 3.3] for y in (sy * 0.2, sy * 0.5, sy * 0.8)])
                for x in (sx * 0.2, sx * 0.5, sx * 0.8)]

    # --- buffers ---
    def _empty(self):
        return {'depth': np.full((self.H, self.W), np.inf, np.float32),
                'albedo': np.zeros((self.H, self.W, 3), np.float32),
                'normal': np.zeros((self.H, self.W, 3), np.float32),
                'obj': np.full((self.H, self.W), -1, np.int32)}

    def _region(self, prim: Prim):
        corners = prim.bounds()
        uv, depth = self.model.project(corners)
        if np.any(depth <= 0.05):
            return 0, self.H, 0, self.W
        if np.any(~np.isfinite(uv)):
            return 0, self.H, 0, self.W
        u0, v0 = uv.min(axis=0)
        u1, v1 = uv.max(axis=0)
        mu, mv = 3 + 0.05 * (u1 - u0), 3 + 0.05 * (v1 - v0)
        u0, u1 = int(max(0, math.floor(u0 - mu))), int(min(self.W, math.ceil(u1 + mu) + 1))
        v0, v1 = int(max(0, math.floor(v0 - mv))), int(min(self.H, math.ceil(v1 + mv) + 1))
        return v0, v1, u0, u1

    def _draw(self, buf, prim: Prim, masks: dict | None = None) -> None:
        v0, v1, u0, u1 = self._region(prim)
        if v1 <= v0 or u1 <= u0:
            return
        u = self.units[v0:v1, u0:u1].reshape(-1, 3)
        t, n = prim.hit(self.origin, u)
        depth = (t / self.ray_norm[v0:v1, u0:u1].reshape(-1)).reshape(v1 - v0, u1 - u0)
        hit = np.isfinite(depth)
        if not hit.any():
            return
        if masks is not None and prim.obj >= 0:
            m = masks.setdefault(prim.obj, np.zeros((self.H, self.W), bool))
            m[v0:v1, u0:u1] |= hit
        zb = buf['depth'][v0:v1, u0:u1]
        closer = hit & (depth < zb)
        if not closer.any():
            return
        zb[closer] = depth[closer]
        buf['albedo'][v0:v1, u0:u1][closer] = prim.color
        buf['normal'][v0:v1, u0:u1][closer] = n.reshape(v1 - v0, u1 - u0, 3)[closer]
        buf['obj'][v0:v1, u0:u1][closer] = prim.obj

    # --- static scene ---
    def _background(self, buf) -> None:
        o, u, norm = self.origin, self.units, self.ray_norm
        sx, sy = self.store.size_m
        wall_h = 3.4
        best = np.full((self.H, self.W), np.inf)
        normal = np.zeros((self.H, self.W, 3))
        albedo = np.zeros((self.H, self.W, 3))
        planes = [(2, 0.0, (0, 0, 1)), (0, 0.0, (1, 0, 0)), (0, sx, (-1, 0, 0)),
                  (1, 0.0, (0, 1, 0)), (1, sy, (0, -1, 0)), (2, wall_h, (0, 0, -1))]
        for axis, value, nrm in planes:
            with np.errstate(divide='ignore', invalid='ignore'):
                t = (value - o[axis]) / u[..., axis]
            p = o + u * t[..., None]
            inside = ((p[..., 0] >= -1e-6) & (p[..., 0] <= sx + 1e-6) & (p[..., 1] >= -1e-6)
                      & (p[..., 1] <= sy + 1e-6) & (p[..., 2] >= -1e-6)
                      & (p[..., 2] <= wall_h + 1e-6))
            ok = (t > 0) & inside & (t < best)
            best[ok] = t[ok]
            normal[ok] = nrm
            if axis == 2 and value == 0.0:
                tx, ty = np.floor(p[..., 0] / 0.6), np.floor(p[..., 1] / 0.6)
                fx, fy = p[..., 0] / 0.6 - tx, p[..., 1] / 0.6 - ty
                grout = (np.minimum(fx, 1 - fx) < 0.02) | (np.minimum(fy, 1 - fy) < 0.02)
                var = 0.92 + 0.08 * ((tx * 7 + ty * 13) % 5) / 4
                col = np.stack([190 * var, 185 * var, 175 * var], axis=-1)
                col[grout] = (120, 118, 112)
                albedo[ok] = col[ok]
            elif axis == 2:
                albedo[ok] = (235, 235, 230)
            else:
                band = (p[..., 2] < 0.15)
                col = np.where(band[..., None], np.array([90, 90, 95.0]),
                               np.array([205, 200, 185.0]))
                albedo[ok] = col[ok]
        buf['depth'][:] = (best / norm).astype(np.float32)
        buf['albedo'][:] = albedo
        buf['normal'][:] = normal

    def _static_prims(self, t: float) -> list[Prim]:
        prims: list[Prim] = []
        steel, shelf_col = (150, 150, 158), (205, 205, 210)
        for g in self.store.gondolas:
            c, s = math.cos(g.yaw_rad), math.sin(g.yaw_rad)
            lx, ly, lz = g.size_m

            def at(x, y, z):
                return np.array([g.x_m + c * x - s * y, g.y_m + s * x + c * y, z])
            for px in (-lx / 2 + 0.025, lx / 2 - 0.025):
                for py in (-ly / 2 + 0.025, ly / 2 - 0.025):
                    prims.append(Prim('box', (at(px, py, lz / 2), np.array([0.025, 0.025, lz / 2]),
                                              g.yaw_rad), steel))
            prims.append(Prim('box', (at(0, 0, 0.06), np.array([lx / 2, ly / 2, 0.06]),
                                      g.yaw_rad), (110, 110, 118)))
            for sh in g.shelves:
                prims.append(Prim('box', (at(0, 0, sh.z_m - 0.02),
                                          np.array([lx / 2, ly / 2, 0.02]), g.yaw_rad),
                                  shelf_col))
        contents = plate_contents(self.store, self.scenario, t)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x99])
        for pid, plate in sorted(self.store.plates.items()):
            units = [sku for sku, n in contents.get(pid, []) for _ in range(n)]
            if not units:
                continue
            prims.extend(self._plate_units(plate, units, rng))
        return prims

    def _plate_units(self, plate, units: list[str], rng) -> list[Prim]:
        """Units in a grid on the plate, front rows last to go (taken from the front)."""
        prims = []
        looks = [self.store.catalog[s].look if s in self.store.catalog else {} for s in units]
        fw, fd = product_footprint(looks[0])
        pitch_x, pitch_y = fw + 0.012, fd + 0.012
        cols = max(1, int(plate.size_x_m // pitch_x))
        rows = max(1, int(plate.size_y_m // pitch_y))
        c, s = math.cos(plate.yaw_store), math.sin(plate.yaw_store)
        cx, cy, cz = plate.center_store
        n = min(len(units), cols * rows)
        for k in range(n):
            r_back = k // cols                 # fill from the back row forwards
            col = k % cols
            x = -plate.size_x_m / 2 + pitch_x * (col + 0.5) + (plate.size_x_m - cols * pitch_x) / 2
            y = plate.size_y_m / 2 - pitch_y * (r_back + 0.5)
            shade = float(rng.uniform(0.9, 1.08))
            base = (cx + c * x - s * y, cy + s * x + c * y, cz)
            prims.extend(product_prims(units[len(units) - n + k], looks[len(units) - n + k],
                                       base, plate.yaw_store, -1, shade))
        return prims

    def _static_buffers(self, t: float):
        key = tuple(sorted((pid, tuple(v)) for pid, v in
                           plate_contents(self.store, self.scenario, t).items()))
        if key != self._static_key:
            buf = self._empty()
            self._background(buf)
            for prim in self._static_prims(t):
                self._draw(buf, prim)
            self._static = (buf, self._shading_terms(buf, np.ones((self.H, self.W), bool)))
            self._static_key = key
        return self._static

    def _shading_terms(self, buf, mask) -> np.ndarray:
        """(4, H, W): diffuse-from-sky term and one term per lamp row, where ``mask``."""
        terms = np.zeros((4, self.H, self.W), np.float32)
        n = buf['normal'][mask]
        d = buf['depth'][mask]
        p = self.origin + (self.units[mask] * (d * self.ray_norm[mask])[:, None])
        p[~np.isfinite(d)] = 0
        terms[0][mask] = 0.6 + 0.4 * np.clip(n[:, 2], -1, 1)
        for i, row in enumerate(self.lamps):
            acc = np.zeros(len(n), np.float32)
            for lamp in row:
                v = lamp - p
                dist2 = np.einsum('ij,ij->i', v, v)
                lam = np.clip(np.einsum('ij,ij->i', n, v) / np.sqrt(dist2), 0, 1)
                acc += lam * 4.0 / (1.0 + dist2 / 3.0)
            terms[1 + i][mask] = acc / 3.0
        return terms

    # --- dynamic objects ---
    def _shopper_prims(self, motion: ShopperMotion, t: float, objects: list) -> list[Prim]:
        st = motion.state(t)
        h = motion.height_m
        xy, heading, phase = motion.pose(t)
        fwd = np.array([math.cos(heading), math.sin(heading), 0.0])
        left = np.array([-math.sin(heading), math.cos(heading), 0.0])
        base = np.array([xy[0], xy[1], 0.0])
        body = len(objects)
        objects.append({'cls': 'shopper', 'shopper_id': motion.shopper.id})
        prims = []
        swing = 0.16 * math.sin(phase)
        hip_z, r_leg = 0.47 * h, 0.065
        for side, sgn in ((-1, 1), (1, -1)):
            hip = base + left * (side * 0.09) + [0, 0, hip_z]
            foot = base + left * (side * 0.1) + fwd * (sgn * swing) + [0, 0, r_leg]
            prims.append(Prim('capsule', (hip, foot, r_leg), motion.pants, body))
        w = motion.width_m
        prims.append(Prim('capsule', (base + [0, 0, 0.52 * h] - left * (w - 0.1),
                                      base + [0, 0, 0.52 * h] + left * (w - 0.1), 0.12),
                          motion.pants, body))
        for lz in (0.6, 0.72):
            prims.append(Prim('capsule', (base + [0, 0, lz * h] - left * (w - 0.1),
                                          base + [0, 0, lz * h] + left * (w - 0.1), 0.13),
                              motion.shirt, body))
        neck = base + [0, 0, 0.84 * h]
        prims.append(Prim('capsule', (base + [0, 0, 0.79 * h] - left * w,
                                      base + [0, 0, 0.79 * h] + left * w, 0.07),
                          motion.shirt, body))
        head = np.array(st['head'])
        prims.append(Prim('sphere', (head, 0.105), motion.skin, body))
        prims.append(Prim('sphere', (head + [0, 0, 0.03] - fwd * 0.025, 0.1), motion.hair, body))
        prims.append(Prim('capsule', (neck - [0, 0, 0.02], head - [0, 0, 0.08], 0.05),
                          motion.skin, body))
        for side in ('right', 'left'):
            shoulder = np.array(st['shoulders'][side])
            hand = np.array(st['hands'][side])
            v = hand - shoulder
            dist = max(np.linalg.norm(v), 1e-6)
            wrist = hand - v / dist * 0.07
            prims.append(Prim('capsule', (shoulder, wrist, 0.048), motion.shirt, body))
            hid = len(objects)
            objects.append({'cls': 'hand', 'shopper_id': motion.shopper.id, 'side': side})
            tip = hand + v / dist * 0.04
            prims.append(Prim('capsule', (wrist, tip, HAND_RADIUS_M), motion.skin, hid))
            sku = st['holding'][side]
            if sku:
                look = self.store.catalog[sku].look if sku in self.store.catalog else {}
                pid = len(objects)
                objects.append({'cls': 'product', 'sku': sku, 'shopper_id': motion.shopper.id,
                                'side': side})
                outward = -left if side == 'right' else left
                prims.extend(product_prims(sku, look, held_product_base(look, hand, outward),
                                           heading, pid))
        return prims

    # --- frames ---
    def render(self, t: float, min_visible: float = 0.3) -> tuple[np.ndarray, list[dict]]:
        """(BGR uint8 image, visible 2D boxes) at scenario time t."""
        static, terms_static = self._static_buffers(t)
        buf = {k: v.copy() for k, v in static.items()}
        objects: list[dict] = []
        prims: list[Prim] = []
        for m in self.shoppers:
            if m.present(t):
                prims.extend(self._shopper_prims(m, t, objects))
        masks: dict[int, np.ndarray] = {}
        for p in prims:
            self._draw(buf, p, masks)
        dyn = buf['obj'] >= 0
        terms = terms_static.copy()
        if dyn.any():
            terms[:, dyn] = self._shading_terms(buf, dyn)[:, dyn]
        amb, rows = self.lighting.weights(t)
        shade = amb * terms[0] + np.tensordot(rows, terms[1:], axes=1)
        img = buf['albedo'] * shade[..., None] * np.array(self.lighting.tint, np.float32)
        if self.noise:
            img += self.rng.normal(0, self.lighting.noise_sd, img.shape).astype(np.float32)
        img = np.clip(img, 0, 255).astype(np.uint8)[..., ::-1].copy()   # RGB -> BGR
        return img, self._boxes(buf['obj'], masks, objects, min_visible)

    def _boxes(self, obj, masks, objects, min_visible) -> list[dict]:
        out = []
        min_px = {'shopper': 150, 'hand': 12, 'product': 12}
        # a shopper's box covers the body and both hands (a person box), not the product
        person: dict[str, list[int]] = {}
        for i, o in enumerate(objects):
            if o['cls'] in ('shopper', 'hand'):
                person.setdefault(o['shopper_id'], []).append(i)
        for i, o in enumerate(objects):
            full = masks.get(i)
            if full is None:
                continue
            if o['cls'] == 'shopper':
                ids = person[o['shopper_id']]
                vis = np.isin(obj, ids)
                full = np.logical_or.reduce([masks[k] for k in ids if k in masks])
            else:
                vis = obj == i
            n_full, n_vis = int(full.sum()), int(vis.sum())
            if n_full == 0 or n_vis < min_px[o['cls']] or n_vis / n_full < min_visible:
                continue
            vs, us = np.nonzero(vis)
            box = dict(o)
            box.update({'bbox': [int(us.min()), int(vs.min()), int(us.max()) + 1,
                                 int(vs.max()) + 1],
                        'visible': round(n_vis / n_full, 3), 'pixels': n_vis})
            out.append(box)
        return out

    def truth_3d(self, t: float) -> list[dict]:
        out = []
        for m in self.shoppers:
            if m.present(t):
                st = m.state(t)
                st.pop('phase', None)
                out.append(st)
        return out


def _cam_hash(text: str) -> int:
    return sum((i + 1) * ord(ch) for i, ch in enumerate(text)) & 0xFFFF
