"""Where the detector spends its time: shoppers at a tracking rate everywhere, hands and products
(the crop and hand stages) at full rate only where a plate shows activity.

Per camera frame (image stamp, sensor time) :meth:`Scheduler.decide` answers

* ``full``: all stages, on a camera that sees an active plate, at most ``active_rate_hz``;
* ``shoppers``: the full-frame stage only (shopper boxes for the tracker), at most
  ``shopper_rate_hz``;
* ``skip``: not looked at (counted as skipped by schedule, not as dropped).

Shoppers at a tracking rate on active cameras too: with ``active_shopper_rate_hz`` r > 0, a
``full`` frame whose slot of rate r already had a full-frame pass on its camera
(:meth:`Scheduler.shoppers_reusable`) does not run the full-frame stage again: its crops are cut
around the shopper proposals of that pass (at most 1/r s old; the serving code keeps them), and
its hands and products are found at ``active_rate_hz`` all the same. A shopper at a plate
moves little in 1/r s, and the crop window's margin covers it.

Rates are slots on the stamp grid (slot = floor(stamp x rate)): a camera processes the first
frame of each slot, and cameras with unsynchronised clocks pick frames of the same slot, so
the tracker's frame sets stay complete at the lower rate.

A plate is *active* at stamp t when, within ``activity_hold_s`` before t (or after it):

* its load cell moved: a valid weight more than ``activity_grams`` away from the plate's
  baseline (an exponential average with time constant ``weight_baseline_s``: a step stays
  active while the baseline catches up, then for ``activity_hold_s``) -- :meth:`on_weight`;
* a hand or product box comes within ``reach_px`` of the plate's reach point in some camera's
  image -- a reach (:meth:`on_detections`, fed with every processed frame's boxes, the
  full-frame model's own hand boxes included, so a shoppers-only frame sees a reach begin).
  Shopper boxes do not count: a shopper standing at a gondola covers many plates' reach points
  in a ceiling view without taking anything.

A camera is active when one of the plates it sees (the reach point over the plate,
``store_common.reach``, projects into its image, ``plate_pixels``) is active; with
``cameras_per_plate`` k > 0 only the k cameras nearest to the plate (``plate_depths``)
turn active. In ``full`` frames the crop stage looks only at shoppers near an active plate
(:meth:`crop_wanted`: the shopper box grown by ``reach_margin`` of its size covers the plate's
reach point).
Without plate geometry (no store description, or a camera it does not describe) a camera is
always active: all stages at ``active_rate_hz``.

Never imports rclpy; plain data in, plain decisions out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

FULL, SHOPPERS, SKIP = 'full', 'shoppers', 'skip'
NS = 1_000_000_000


@dataclass
class ScheduleParams:
    shopper_rate_hz: float = 5.0     # full-frame stage on cameras without activity [Hz]
    active_rate_hz: float = 10.0     # all stages on cameras that see an active plate [Hz]
    activity_hold_s: float = 1.5     # a plate stays active this long after its last sign [s]
    activity_grams: float = 10.0     # load-cell deviation from the baseline that is activity [g]
    weight_baseline_s: float = 1.0   # time constant of the plate's baseline weight [s]
    reach_px: float = 30.0           # a hand box this close to a plate's reach point reaches it
    reach_margin: float = 0.1        # crops: shopper boxes grown by this share of their size
    view_margin_px: float = 0.0      # a plate's reach point this far inside the image is seen
    cameras_per_plate: int = 0       # an active plate turns its k nearest cameras active (0: all)
    active_shopper_rate_hz: float = 0.0  # full-frame stage on active cameras (0: every frame) [Hz]

    def __post_init__(self):
        for name in ('shopper_rate_hz', 'active_rate_hz', 'weight_baseline_s'):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f'{name} must be > 0, got {v}')
        for name in ('activity_hold_s', 'activity_grams', 'reach_px', 'reach_margin',
                     'view_margin_px', 'active_shopper_rate_hz'):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f'{name} must be >= 0, got {v}')
        if int(self.cameras_per_plate) != self.cameras_per_plate or self.cameras_per_plate < 0:
            raise ValueError(f'cameras_per_plate must be an integer >= 0, got '
                             f'{self.cameras_per_plate}')


def plate_pixels(store, margin_px: float = 0.0) -> dict[str, dict[str, tuple[float, float]]]:
    """Per camera id: plate id -> pixel (u, v) of the plate's reach point, for the plates whose
    reach point lies in the camera's image (the cameras that see the plate)."""
    import numpy as np
    from store_common.reach import reach_target
    plates = list(store.plates.values())
    out = {}
    for cam in store.cameras:
        uv, depth = cam.model.project([reach_target(p) for p in plates])
        ok = cam.model.in_image(uv, margin_px) & (depth > 0) & np.all(np.isfinite(uv), axis=1)
        out[cam.id] = {p.id: (float(u), float(v)) for p, (u, v), k in zip(plates, uv, ok) if k}
    return out


def plate_depths(store) -> dict[str, dict[str, float]]:
    """Per camera id: plate id -> depth of the plate's reach point along the optical axis [m]
    (nearer = more pixels on the hand), for every plate in front of the camera."""
    from store_common.reach import reach_target
    plates = list(store.plates.values())
    out = {}
    for cam in store.cameras:
        _, depth = cam.model.project([reach_target(p) for p in plates])
        out[cam.id] = {p.id: float(d) for p, d in zip(plates, depth) if d > 0}
    return out


class Scheduler:
    """Per camera frame: full, shoppers or skip (module docstring)."""

    def __init__(self, cameras, params: ScheduleParams | None = None,
                 plates_px: dict[str, dict[str, tuple[float, float]]] | None = None,
                 depths: dict[str, dict[str, float]] | None = None):
        self.params = params or ScheduleParams()
        self.cameras = list(cameras)
        # cameras without plate geometry (no store description, or not in it) are always active
        self.gated = {c: plates_px is not None and c in plates_px for c in self.cameras}
        self.plates_px = {c: dict((plates_px or {}).get(c, {})) for c in self.cameras}
        self.plates = {p for px in self.plates_px.values() for p in px}
        self.active_ns: dict[str, int] = {}        # plate -> stamp of its newest sign
        self.baseline: dict[str, tuple[float, int]] = {}   # plate -> (grams, stamp ns)
        self.last_slot: dict[str, tuple[str, int]] = {}    # camera -> (rate kind, slot)
        # plate -> the cameras an active plate makes active (cameras_per_plate nearest)
        self.full_cameras: dict[str, set] = {}
        k = int(self.params.cameras_per_plate)
        for plate in self.plates:
            seen = [c for c in self.cameras if plate in self.plates_px[c]]
            if k and depths is not None:
                seen.sort(key=lambda c: depths.get(c, {}).get(plate, math.inf))
                seen = seen[:k]
            self.full_cameras[plate] = set(seen)

    # --- activity -------------------------------------------------------------------------------
    def on_weight(self, plate_id: str, stamp_ns: int, grams: float, valid: bool = True) -> bool:
        """One load-cell sample; False (ignored) for unknown plates, invalid or non-finite
        values and samples older than the plate's previous one."""
        if plate_id not in self.plates or not valid or not math.isfinite(grams):
            return False
        prev = self.baseline.get(plate_id)
        if prev is None:
            self.baseline[plate_id] = (float(grams), int(stamp_ns))
            return True
        base, t0 = prev
        dt = (int(stamp_ns) - t0) / NS
        if dt < 0:
            return False
        if abs(grams - base) > self.params.activity_grams:
            self._mark(plate_id, int(stamp_ns))
        a = 1.0 - math.exp(-dt / self.params.weight_baseline_s)
        self.baseline[plate_id] = (base + a * (float(grams) - base), int(stamp_ns))
        return True

    def on_detections(self, camera_id: str, stamp_ns: int, boxes) -> list[str]:
        """Boxes (class name, x0, y0, x1, y1) of a processed frame; returns the plates a box
        reaches (now active)."""
        hit = []
        r = self.params.reach_px
        hands = [b[1:] for b in boxes if b[0] in ('hand', 'product')]
        for plate, (u, v) in self.plates_px.get(camera_id, {}).items():
            for x0, y0, x1, y1 in hands:
                dx, dy = max(x0 - u, 0.0, u - x1), max(y0 - v, 0.0, v - y1)
                if dx * dx + dy * dy <= r * r:
                    self._mark(plate, int(stamp_ns))
                    hit.append(plate)
                    break
        return hit

    def _mark(self, plate: str, stamp_ns: int) -> None:
        self.active_ns[plate] = max(self.active_ns.get(plate, stamp_ns), stamp_ns)

    def plate_active(self, plate_id: str, stamp_ns: int) -> bool:
        t = self.active_ns.get(plate_id)
        return t is not None and stamp_ns - t <= self.params.activity_hold_s * NS

    def active_plates(self, camera_id: str, stamp_ns: int) -> list[str]:
        """Active plates this camera is one of the full-rate cameras of."""
        return [p for p in self.plates_px.get(camera_id, {})
                if camera_id in self.full_cameras.get(p, ()) and self.plate_active(p, stamp_ns)]

    def camera_active(self, camera_id: str, stamp_ns: int) -> bool:
        return (not self.gated.get(camera_id, False)
                or bool(self.active_plates(camera_id, stamp_ns)))

    # --- decisions ------------------------------------------------------------------------------
    def decide(self, camera_id: str, stamp_ns: int) -> str:
        """full / shoppers / skip for this frame; a full or shoppers answer takes the frame's
        slot (the next frames of the slot are skipped)."""
        active = self.camera_active(camera_id, stamp_ns)
        kind, rate = ((FULL, self.params.active_rate_hz) if active else
                      (SHOPPERS, self.params.shopper_rate_hz))
        slot = math.floor(stamp_ns * rate / NS)
        last = self.last_slot.get(camera_id)
        if last is not None and last[0] == kind and slot <= last[1]:
            return SKIP
        self.last_slot[camera_id] = (kind, slot)
        return kind

    def shoppers_reusable(self, stamp_ns: int, pass_ns: int | None) -> bool:
        """Whether a ``full`` frame at ``stamp_ns`` may crop around the shopper proposals of its
        camera's full-frame pass at ``pass_ns`` (None: none yet) instead of running that stage:
        the pass is earlier and in the same slot of ``active_shopper_rate_hz`` (module
        docstring); never when that rate is 0."""
        r = self.params.active_shopper_rate_hz
        if not r or pass_ns is None or not pass_ns < stamp_ns:
            return False
        return math.floor(stamp_ns * r / NS) == math.floor(pass_ns * r / NS)

    def crop_wanted(self, camera_id: str, stamp_ns: int, box) -> bool:
        """In a full frame: does this shopper box (x0, y0, x1, y1) get a crop (it covers an
        active plate's reach point, grown by reach_margin)? Always without plate geometry."""
        if not self.gated.get(camera_id, False):
            return True
        x0, y0, x1, y1 = box
        g = self.params.reach_margin * max(x1 - x0, y1 - y0)
        for plate in self.active_plates(camera_id, stamp_ns):
            u, v = self.plates_px[camera_id][plate]
            if x0 - g <= u <= x1 + g and y0 - g <= v <= y1 + g:
                return True
        return False
