"""Multi-view shopper tracker in the store frame; identity bound at the entrance gate.

Each cycle takes the detections of every camera at (about) one instant:

1. :meth:`StoreGeometry.observe` lifts each shopper box to the floor (bottom centre back-projected
   to z = 0; when a gondola hides the feet, the box top to head height with a larger std) and
   gives it the rays of the hand and product boxes inside it.
2. Per camera, observations are assigned to the predicted tracks seen in the last second
   (Hungarian on the Mahalanobis distance plus the shirt's cost, gated); then observations are
   clustered across cameras (one per camera, within ``cluster_m``), never two that their cameras
   gave to different tracks (two look-alikes side by side, each seen by another camera).
3. Clusters are assigned to the predicted tracks (Hungarian, gated) and each track is updated
   with its cluster's fused position (constant-velocity Kalman filter on x, y, vx, vy).
   A cluster no track took in the entrance zone gives birth to a track, bound to the account of
   an entrance ``GateEvent`` within ``bind_window_s``; one elsewhere re-identifies the nearest
   bound track that lost sight of its shopper (occlusion, camera dropout) or starts an anonymous
   tentative track. One camera's box in the shirt of a track seen this cycle, lifted far off
   (feet hidden), is that shopper from another side and starts nothing.
4. Hands of each track are triangulated from its observations' hand rays across cameras (or one
   ray meets a plate height); product boxes are kept as (time, SKU) evidence for event fusion.

A track not seen coasts (position predicted, covariance growing) for up to ``max_coast_s`` and is
then lost (a tentative one once missed in ``tentative_misses`` steps with a frame of a camera that
sees it, or unseen ``tentative_max_s``: a starved detector's sparse frames lose nobody); a
track seen in the exit zone is closed by the exit ``GateEvent`` of its account.
Never imports rclpy.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from store_interfaces.msg import ShopperTrack

from store_fusion.assign import hungarian
from store_fusion.geometry import appearance_d2, AXIS_MARGIN_M, hands_3d, LooseHand, \
    Observation, plate_hits, StoreGeometry, triangulate_rays

TENTATIVE, CONFIRMED, COASTING, LOST = (ShopperTrack.STATE_TENTATIVE, ShopperTrack.STATE_CONFIRMED,
                                        ShopperTrack.STATE_COASTING, ShopperTrack.STATE_LOST)
HEAD_TRI_STD_M = 0.12        # floor std of a head triangulated from two or more cameras [m]
STATE_NAMES = {TENTATIVE: 'tentative', CONFIRMED: 'confirmed', COASTING: 'coasting',
               LOST: 'lost'}


@dataclass(frozen=True)
class TrackerParams:
    accel_sd: float = 1.5          # process noise: random acceleration [m/s^2]
    gate_chi2: float = 13.8        # Mahalanobis gate (chi2, 2 dof, 99.9 %)
    cluster_m: float = 0.7         # observations of one shopper from different cameras [m]
    confirm_hits: int = 3          # cycles seen before a track is confirmed
    max_coast_s: float = 20.0      # a track not seen this long is lost [s]
    bind_window_s: float = 4.0     # entrance scan and track birth at most this far apart [s]
    entrance_margin_m: float = 1.2  # births within this of the entrance zone are entries [m]
    bind_walk_mps: float = 1.5     # a newcomer walks at most this fast from the gate [m/s]
    bind_hits: int = 2             # ... that has been seen at least this many cycles
    bind_delay_s: float = 0.6      # decide this long after the scan (the newcomer is seen) [s]
    bind_m_per_s: float = 1.0      # binding cost of a birth away from the scan time [m/s]
    reid_radius_m: float = 2.5     # re-identification radius around a lost track, + growth [m]
    reid_speed_mps: float = 1.5    # the radius grows this fast while the track is unseen [m/s]
    max_speed_mps: float = 2.5
    color_weight: float = 1.0      # appearance term added to the association cost (per chi2)
    color_cap: float = 30.0        # at most this much (a partly hidden box mixes colours)
    color_gate: float = 30.0       # never associate beyond this appearance distance (chi2) ...
    color_min_n: int = 3           # ... once the track's colour rests on this many cycles
    color_alone_m: float = 0.9     # learn a track's colour only with no other track this near
    color_learn: float = 12.0      # and only from observations this close to it (chi2): no drift
    duplicate_m: float = 0.6       # an anonymous track this near a seen bound one is its double
    lookalike_bind_m: float = 2.0  # binding cost of a track in the shirt of a shopper inside [m]
    bind_max_wait_s: float = 20.0  # a scan nobody took by then waits no more for a newcomer [s]
    bind_door_looks: int = 5       # ... if the door was looked at fewer times in bind_window_s
    tentative_misses: int = 2      # a tentative track is lost once unseen in this many looks
    tentative_max_s: float = 5.0   # ... (and 1 s) or unseen this long, looked at or not [s]
    # a hand in no shopper box (an arm stretched out of the body's box, or a body hidden behind
    # a gondola), placed where its ray meets a plate, is the hand of the shopper in front of that
    # plate this near to it [m]; 0: such hands are dropped (0.6-1.0 alike on 9 replayed live
    # runs; docs/RESULTS.md)
    hand_reach_m: float = 0.8


@dataclass
class Track:
    track_id: str
    x: np.ndarray                   # (4,) x, y, vx, vy
    P: np.ndarray                   # (4, 4)
    born_ns: int
    last_ns: int                    # last prediction time
    last_seen_ns: int
    shopper_id: str = ''
    hits: int = 1
    state: int = TENTATIVE
    hands: list = field(default_factory=list)      # [(3D point, std, HAND_*)] last cycle
    products: list = field(default_factory=list)   # [(sku, score, hand-side-point)] last cycle
    seen_cameras: tuple = ()
    closed: bool = False
    at_entrance: bool = False
    color: np.ndarray | None = None  # appearance feature (running mean), None unknown
    color_n: int = 0                 # cycles it rests on
    id_confidence: float = 1.0       # how sure the account bound to this track is still right
    born_xy: np.ndarray | None = None  # where the track started (None: unknown)
    misses: int = 0                 # steps since last seen in which a camera looked at it

    @property
    def position(self) -> np.ndarray:
        return self.x[:2]

    @property
    def velocity(self) -> np.ndarray:
        return self.x[2:]

    @property
    def std_m(self) -> float:
        return float(math.sqrt(max(self.P[0, 0], self.P[1, 1])))

    def confidence(self, now_ns: int) -> float:
        unseen = (now_ns - self.last_seen_ns) / 1e9
        base = 0.5 if self.state == TENTATIVE else 0.95
        return float(base * math.exp(-unseen / 10.0) * (1.0 if self.shopper_id else 0.8))


class ShopperTracker:
    """Fuses multi-camera detections into shopper tracks (see the module docstring)."""

    def __init__(self, store, params: TrackerParams | None = None):
        self.geom = StoreGeometry(store)
        self.size_m = tuple(store.size_m)
        self.params = params or TrackerParams()
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self.pending_entries: list[tuple[int, str]] = []   # (stamp ns, account) not yet bound
        # per waiting scan: the tracks that were away from the entrance when it happened
        self._away_at_scan: dict[tuple[int, str], set[str]] = {}
        # per waiting scan: steps within bind_window_s after it with a frame of a camera that
        # sees the entrance (few: the detector was starved, the newcomer may be first seen late)
        self._door_looks: dict[tuple[int, str], int] = {}
        self.exited: set[str] = set()
        ent = next((g for g in store.gates if g.kind == 'entrance'), None)
        ext = next((g for g in store.gates if g.kind == 'exit'), None)
        self.entrance = ent.zone if ent else None
        self.exit = ext.zone if ext else None

    # --- gates ------------------------------------------------------------------------------
    def on_gate(self, stamp_ns: int, kind: str, shopper_id: str) -> None:
        """``kind``: 'enter' or 'exit'."""
        if kind == 'enter':
            self.pending_entries.append((stamp_ns, shopper_id))
            self.pending_entries.sort()
            # the shopper who scans stands in the gate zone now: a track elsewhere is somebody
            # else (a duplicate of an earlier shopper, born at the gate and walked in)
            self._away_at_scan[(stamp_ns, shopper_id)] = {
                t.track_id for t in self.tracks
                if not self._near_zone(self.entrance, t.x[:2], self.params.entrance_margin_m)}
            self._bind_waiting(stamp_ns)
        else:
            self.exited.add(shopper_id)
            for t in self.tracks:
                if t.shopper_id == shopper_id:
                    t.closed = True
                    t.state = LOST

    def _near_zone(self, zone, xy, margin: float) -> bool:
        return zone is not None and (zone.x_min - margin <= xy[0] <= zone.x_max + margin
                                     and zone.y_min - margin <= xy[1] <= zone.y_max + margin)

    def _zone_distance(self, zone, xy) -> float:
        """Distance from ``xy`` to the zone's rectangle (0 inside; infinite without a zone) [m]."""
        if zone is None:
            return math.inf
        dx = max(zone.x_min - xy[0], 0.0, xy[0] - zone.x_max)
        dy = max(zone.y_min - xy[1], 0.0, xy[1] - zone.y_max)
        return math.hypot(dx, dy)

    def _could_have_scanned(self, t: Track, entry: tuple[int, str], now_ns: int) -> bool:
        """Whether ``t`` can be the shopper of the waiting scan ``entry``: near the entrance at
        the scan, and no farther from it now than a walk since then."""
        if t.track_id in self._away_at_scan.get(entry, ()):
            return False
        if t.born_ns >= entry[0] and t.born_xy is not None:
            # born after the scan (first seen late: a starved detector), where a walk from the
            # gate since the scan could take the newcomer; tracked since
            return self._within_walk(t.born_xy, entry[0], t.born_ns)
        return self._within_walk(t.x[:2], entry[0], now_ns)

    def _within_walk(self, xy, scan_ns: int, now_ns: int) -> bool:
        """Whether ``xy`` is within ``entrance_margin_m`` of the entrance plus a walk at
        ``bind_walk_mps`` from the scan at ``scan_ns`` until ``now_ns``."""
        walked_s = max(0.0, (now_ns - scan_ns) / 1e9)
        return self._zone_distance(self.entrance, xy) <= (
            self.params.entrance_margin_m + self.params.bind_walk_mps * walked_s)

    def _may_take_a_scan(self, t: Track, now_ns: int) -> bool:
        """Whether a waiting entrance scan may still go to ``t``."""
        return any(self._could_have_scanned(t, e, now_ns) for e in self.pending_entries)

    def _bind_waiting(self, now_ns: int) -> None:
        """Bind each waiting entrance scan to the unbound track that is at the gate now.

        The shopper who scans stands in the gate zone: of the unbound tracks born within
        ``bind_window_s`` of the scan and within ``entrance_margin_m`` of the zone, the one born
        nearest the zone's centre and nearest the scan time takes the account (oldest scan
        first), once it has been seen ``bind_hits`` cycles and was seen in the last 0.5 s; the
        choice waits ``bind_delay_s`` after the scan so that the newcomer's track exists. A track
        born near the entrance that has already walked away (a duplicate of an earlier shopper)
        is not bound: a track farther than ``entrance_margin_m`` from the zone at the scan, or
        farther now than that plus a walk at ``bind_walk_mps`` since the scan, is not the
        shopper who scanned, however long nobody else is seen there. A track in the shirt of
        a shopper already inside (most likely a second view of them) is passed over for the first
        half of ``bind_window_s`` and costs ``lookalike_bind_m`` more after that. A scan that no
        track born within the window took waits for the newcomer: the first track born at the
        entrance after the window (the detector's frames of the door came late, or were skipped)
        may take it, up to ``bind_max_wait_s`` after the scan. "Seen" counts looks, not seconds:
        a track is a blip only if a camera that delivered a frame since did not see it.
        """
        p = self.params
        win = p.bind_window_s * 1e9
        z = self.entrance
        inside = [t for t in self.tracks if t.shopper_id and not t.closed]
        late = self._first_late_births(now_ns)
        for stamp, sid in list(self.pending_entries):
            if now_ns - stamp < p.bind_delay_s * 1e9:
                continue        # let the newcomer's own track be born and seen first
            best, best_d = None, float('inf')
            for t in self.tracks:
                if t.shopper_id or t.closed or t.state == LOST or not t.at_entrance \
                        or not self._could_have_scanned(t, (stamp, sid), now_ns):
                    continue
                if t.hits < p.bind_hits or (t.misses and now_ns - t.last_seen_ns > 0.5e9):
                    continue    # a one-frame blip (a false positive) takes no account
                if stamp - t.born_ns > win or (t.born_ns - stamp > win
                                               and t is not late.get((stamp, sid))):
                    continue
                b = t.born_xy if t.born_xy is not None else t.x[:2]
                d = math.hypot(b[0] - (z.x_min + z.x_max) / 2, b[1] - (z.y_min + z.y_max) / 2)
                d += p.bind_m_per_s * abs(stamp - t.born_ns) / 1e9   # born with the scan wins
                if t.color_n and any(self._same_shirt(o, t.color) for o in inside):
                    # the shirt of a shopper already inside: most likely a second view of them
                    # (a ghost); it takes the account only late in the window, and last
                    if now_ns - stamp < 0.5 * win:
                        continue
                    d += p.lookalike_bind_m
                if d < best_d:
                    best, best_d = t, d
            if best is not None:
                best.shopper_id = sid
                self.pending_entries.remove((stamp, sid))
                self._away_at_scan.pop((stamp, sid), None)
                self._door_looks.pop((stamp, sid), None)

    def _first_late_births(self, now_ns: int) -> dict[tuple[int, str], Track]:
        """Per waiting scan that nobody born within ``bind_window_s`` of it took (the
        detector's frames of the door came late, or were skipped): the first track born at the
        entrance after the window that is still there to take it; the window extends until a
        newcomer is seen, for at most ``bind_max_wait_s`` after the scan, when the door was
        looked at fewer than ``bind_door_looks`` times in the window (a detector at full rate
        watched the door: a track born there later is somebody else, a ghost or a passer-by)."""
        p = self.params
        win = p.bind_window_s * 1e9
        out = {}
        for entry in self.pending_entries:
            if now_ns - entry[0] > p.bind_max_wait_s * 1e9 \
                    or self._door_looks.get(entry, 0) >= p.bind_door_looks:
                continue    # too late, or the door was watched in the window: nobody came
            late = [t for t in self.tracks if t.at_entrance and not t.shopper_id
                    and not t.closed and t.state != LOST and t.born_ns - entry[0] > win]
            if late:
                out[entry] = min(late, key=lambda t: (t.born_ns, t.track_id))
        return out

    # --- the cycle --------------------------------------------------------------------------
    def predict(self, now_ns: int) -> None:
        q = self.params.accel_sd ** 2
        for t in self.tracks:
            dt = (now_ns - t.last_ns) / 1e9
            if dt <= 0:
                continue
            f = np.eye(4)
            f[0, 2] = f[1, 3] = dt
            g = np.array([[dt * dt / 2, 0], [0, dt * dt / 2], [dt, 0], [0, dt]])
            t.x = f @ t.x
            t.P = f @ t.P @ f.T + g @ g.T * q
            sp = float(np.linalg.norm(t.x[2:]))
            if sp > self.params.max_speed_mps:
                t.x[2:] *= self.params.max_speed_mps / sp
            t.last_ns = now_ns

    def _update(self, t: Track, ob: Observation) -> None:
        h = np.zeros((2, 4))
        h[0, 0] = h[1, 1] = 1.0
        r = np.eye(2) * ob.std_m ** 2
        s = h @ t.P @ h.T + r
        k = t.P @ h.T @ np.linalg.inv(s)
        t.x = t.x + k @ (ob.xy - h @ t.x)
        t.P = (np.eye(4) - k @ h) @ t.P

    def _gated_cost(self, t: Track, xy, std: float, color, one_camera: bool,
                    now_ns: int | None = None) -> float | None:
        """Cost of track ``t`` taking an observation at ``xy`` (1-sigma ``std``) in ``color``:
        the Mahalanobis distance plus the shirt's term; None beyond the gates shared by the
        per-camera assignment and the cluster assignment (one camera alone never drags a track
        far, not the shirt the track has been wearing, outside chi2 and further than 0.4 m).
        "Far" is 1.5 m, or as far as a shopper walks at ``max_speed_mps`` since the track was
        last seen at ``now_ns`` (a starved detector's frames of a camera come seconds apart)."""
        p = self.params
        s = t.P[:2, :2] + np.eye(2) * std ** 2
        d = xy - t.x[:2]
        m = float(d @ np.linalg.solve(s, d))
        dist = float(np.linalg.norm(d))
        unseen_s = 0.0 if now_ns is None else max(0.0, (now_ns - t.last_seen_ns) / 1e9)
        if one_camera and dist > max(1.5, p.max_speed_mps * unseen_s):
            return None     # one camera alone never drags a track far
        a2 = appearance_d2(t.color, color) if t.color_n >= 1 else 0.0
        if t.color_n >= p.color_min_n and a2 > p.color_gate:
            return None     # not the shirt this track has been wearing
        if not (m < p.gate_chi2 or dist < 0.4):
            return None
        return m + min(p.color_cap, p.color_weight * a2)

    def cluster(self, obs: list[Observation],
                owners: dict[int, int] | None = None) -> list[list[Observation]]:
        """Observations of one shopper from different cameras: at most one per camera, within
        ``cluster_m`` (plus their std) of the cluster's weighted mean. ``owners`` ({id(ob):
        track index}, :meth:`owners`): two observations their cameras gave to different tracks
        are never one cluster, and one given to the same track as a cluster's joins it first."""
        owners = owners or {}
        clusters: list[list[Observation]] = []
        for ob in sorted(obs, key=lambda o: o.std_m):
            mine = owners.get(id(ob))
            best, best_key = None, (True, float('inf'))
            for c in clusters:
                if ob.camera_id in {o.camera_id for o in c}:
                    continue
                theirs = {owners[id(o)] for o in c if id(o) in owners}
                if mine is not None and theirs - {mine}:
                    continue    # each camera saw one of two shoppers: not one between them
                d = float(np.linalg.norm(ob.xy - _fuse(c)[0]))
                if appearance_d2(ob.color, _fuse_color(c)) > self.params.color_gate:
                    continue    # two shoppers side by side: one cluster each
                key = (mine is None or mine not in theirs, d)
                if d < self.params.cluster_m + 0.5 * ob.std_m and key < best_key:
                    best, best_key = c, key
            if best is None:
                clusters.append([ob])
            else:
                best.append(ob)
        return clusters

    def owners(self, now_ns: int, obs: list[Observation], live: list[Track]) -> dict[int, int]:
        """Per camera, its observations assigned to the predicted tracks seen in the last
        second (Hungarian on the Mahalanobis distance plus the shirt's cost, gated as in
        :meth:`step`): {id(observation): index into ``live``}. Two shoppers side by side in
        look-alike shirts, each seen by another camera, stay two clusters."""
        recent = [i for i, t in enumerate(live) if now_ns - t.last_seen_ns <= 1e9]
        out: dict[int, int] = {}
        for cam in sorted({o.camera_id for o in obs}):
            mine = [o for o in obs if o.camera_id == cam]
            cost = np.full((len(recent), len(mine)), 1e6)
            for r, i in enumerate(recent):
                for j, ob in enumerate(mine):
                    c = self._gated_cost(live[i], ob.xy, ob.std_m, ob.color, True, now_ns)
                    if c is not None:
                        cost[r, j] = c
            for r, j in hungarian(cost):
                if cost[r, j] < 1e6:
                    out[id(mine[j])] = recent[r]
        return out

    def step(self, now_ns: int, detections: dict[str, list]) -> list[Track]:
        """One cycle: ``detections`` {camera_id: [Detection2D]} for the cameras that delivered
        a frame at ``now_ns`` (a camera missing from the dict has dropped out)."""
        p = self.params
        self.predict(now_ns)
        if self.entrance is not None and self.pending_entries:
            z = self.entrance
            gate = ((z.x_min + z.x_max) / 2, (z.y_min + z.y_max) / 2)
            if self._looked_at(gate, detections):
                for e in self.pending_entries:
                    if 0 <= now_ns - e[0] <= p.bind_window_s * 1e9:
                        self._door_looks[e] = self._door_looks.get(e, 0) + 1
        obs, loose = [], []
        for cam_id in sorted(detections):
            if cam_id in self.geom.cameras:
                obs.extend(self.geom.observe(cam_id, detections[cam_id],
                                             loose if p.hand_reach_m > 0.0 else None))
        live = [t for t in self.tracks if not t.closed and t.state != LOST]
        clusters = self.cluster(obs, self.owners(now_ns, obs, live))
        fused = [_fuse(c) for c in clusters]
        colors = [_fuse_color(c) for c in clusters]
        cost = np.full((len(live), len(clusters)), 1e6)
        for i, t in enumerate(live):
            for j, (xy, std) in enumerate(fused):
                dist = float(np.linalg.norm(xy - t.x[:2]))
                unseen_s = (now_ns - t.last_seen_ns) / 1e9
                if dist > p.max_speed_mps * unseen_s + 0.6 + 2 * std:
                    continue    # faster than a shopper walks
                if (self.pending_entries and dist > 0.5
                        and self._near_zone(self.entrance, xy, 0.5)):
                    continue    # someone just scanned in: a new shopper, not an old track
                one = len(clusters[j]) == 1
                c = self._gated_cost(t, xy, std, colors[j], one, now_ns)
                if c is not None:
                    # bound tracks win ties over anonymous ones; one-camera clusters cost more
                    cost[i, j] = c + (0.0 if t.shopper_id else 2.0) + (1.0 if one else 0.0)
        taken: dict[int, int] = {}
        for i, j in hungarian(cost):
            if cost[i, j] < 1e6:
                taken[i] = j
        reaching = self._reaching(live, [fused[taken[i]][0] if i in taken else t.x[:2]
                                         for i, t in enumerate(live)], loose)
        for i, t in enumerate(live):
            if i not in taken:
                t.hands, t.products = [], []
                t.x[2:] *= 0.6          # a shopper out of sight is assumed to slow down
                t.misses += self._looked_at(t.x[:2], detections)
                unseen_s = (now_ns - t.last_seen_ns) / 1e9
                if unseen_s > p.max_coast_s or (t.state == TENTATIVE and unseen_s > 1.0 and (
                        t.misses >= p.tentative_misses or unseen_s > p.tentative_max_s)):
                    t.state = LOST
                elif t.state != TENTATIVE:
                    t.state = COASTING
                continue
            c = clusters[taken[i]]
            xy, std = fused[taken[i]]
            self._update(t, Observation('fused', xy, std, 1.0))
            if all(np.linalg.norm(o.x[:2] - xy) > p.color_alone_m for o in live if o is not t) \
                    and (t.color_n < p.color_min_n
                         or appearance_d2(t.color, colors[taken[i]]) < p.color_learn):
                _learn_color(t, colors[taken[i]])
            t.last_seen_ns = now_ns
            t.hits += 1
            t.misses = 0
            self._seen(t, c, reaching.get(i, []))
            if t.state in (COASTING, LOST) or (t.state == TENTATIVE
                                               and t.hits >= p.confirm_hits):
                t.state = CONFIRMED
        used = set(taken.values())
        self._births(now_ns, [(c, fused[j], colors[j]) for j, c in enumerate(clusters)
                              if j not in used])
        self._bind_waiting(now_ns)
        for t in self.tracks:
            if not t.shopper_id and not t.closed and t.state != LOST and not (
                    t.at_entrance and self._may_take_a_scan(t, now_ns)):
                if t.last_seen_ns == now_ns:
                    self._reidentify(t, now_ns)
                if not t.closed and self._duplicate(t, now_ns):
                    t.closed, t.state = True, LOST
        self.tracks = [t for t in self.tracks
                       if not (t.state == LOST and not t.shopper_id) and not
                       (t.closed and now_ns - t.last_seen_ns > 5e9)]
        return [t for t in self.tracks if not t.closed]

    def _looked_at(self, xy, detections: dict) -> bool:
        """Whether a camera that delivered a frame this step sees a shopper standing at
        ``xy`` (feet or head in its image): a track it did not report was missed, not unseen
        for want of frames (a starved detector delivers a camera's frame seconds apart)."""
        pts = [[xy[0], xy[1], 0.0], [xy[0], xy[1], 1.75]]
        for cam_id in detections:
            m = self.geom.cameras.get(cam_id)
            if m is None:
                continue
            uv, _ = m.project(pts)
            ok = np.all(np.isfinite(uv), axis=1)
            if ok.any() and m.in_image(uv[ok]).any():
                return True
        return False

    def _reaching(self, live: list[Track], xys: list, loose: list[LooseHand]
                  ) -> dict[int, list[LooseHand]]:
        """{index in ``live``: the hands in no shopper box that are its}. A hand out of its
        body's box is of interest only reaching into a plate: placed where its ray meets a
        plate (:func:`plate_hits`), it is the hand of the track (at ``xys``: this cycle's
        position) standing in front of that plate nearest to it, within ``hand_reach_m``, with
        no other live track within ``AXIS_MARGIN_M`` as near (between two shoppers a hand is
        nobody's)."""
        out: dict[int, list[LooseHand]] = {}
        if not loose or not live:
            return out
        for h in loose:
            hits = plate_hits(self.geom, h.origin, h.direction)
            dist = sorted((min((float(np.hypot(q[0] - xy[0], q[1] - xy[1]))
                                for q, pid in hits if self.geom.in_front_of(pid, xy)),
                               default=float('inf')), i) for i, xy in enumerate(xys))
            if dist[0][0] > self.params.hand_reach_m or (
                    len(dist) > 1 and dist[1][0] < dist[0][0] + AXIS_MARGIN_M):
                continue
            out.setdefault(dist[0][1], []).append(h)
        return out

    def _seen(self, t: Track, c: list[Observation], reaching: list[LooseHand] = ()) -> None:
        t.seen_cameras = tuple(sorted({o.camera_id for o in c}))
        rays = [(o_, u, s, ob.camera_id) for ob in c for (o_, u, s) in ob.hand_rays]
        rays += [(h.origin, h.direction, h.score, h.camera_id) for h in reaching]
        t.hands = hands_3d(self.geom, t.x[:2], rays)
        t.products = [(sku, sc, ob.camera_id) for ob in c
                      for (sku, sc, _o, _u) in ob.products if sku]
        t.products += [(sku, sc, h.camera_id) for h in reaching
                       for (sku, sc, _o, _u) in h.products]

    def _births(self, now_ns: int, clusters: list[tuple]) -> None:
        """``clusters``: (observations, fused (xy, std), fused colour) no track took."""
        p = self.params
        sx, sy = self.size_m
        for c, (xy, std), color in clusters:
            if not (-0.2 <= xy[0] <= sx + 0.2 and -0.2 <= xy[1] <= sy + 0.2):
                continue        # nobody stands outside the store's walls
            # an entry: near the gate, or, in the first look at the door since a waiting scan
            # (the detector's first frame after it came late), where a walk from the gate since
            # the scan takes the newcomer
            at_entrance = self._near_zone(self.entrance, xy, p.entrance_margin_m) or any(
                0 <= now_ns - e[0] <= p.bind_window_s * 1e9 and self._door_looks.get(e, 0) <= 1
                and self._within_walk(xy, e[0], now_ns) for e in self.pending_entries)
            if len(c) < 2 and not at_entrance:
                continue        # one camera alone (a false positive?) does not start a track
            if all(o.feet_hidden for o in c) and not at_entrance:
                continue
            if self._second_view(now_ns, c, xy, std, color):
                continue
            # never start a second track on top of a live one (a duplicate measurement), unless
            # it wears another shirt than the one that track has been seen in
            if any(np.linalg.norm(t.x[:2] - xy) < 0.9 and not (
                    t.color_n >= p.color_min_n
                    and appearance_d2(t.color, color) > p.color_gate)
                   for t in self.tracks if not t.closed and t.state != LOST):
                continue
            t = Track(f't{next(self._ids)}', np.array([xy[0], xy[1], 0.0, 0.0]),
                      np.diag([std ** 2, std ** 2, 0.5, 0.5]), now_ns, now_ns, now_ns)
            t.at_entrance = at_entrance
            t.born_xy = np.array(xy, float)
            _learn_color(t, color)
            self._seen(t, c)
            self.tracks.append(t)

    def _second_view(self, now_ns: int, c: list, xy, std: float, color) -> bool:
        """One camera's box of a shopper a track already holds this cycle, lifted far off (feet
        hidden: placed at a typical head height, std over a metre): the same shirt within reach
        of its std is that shopper seen from another side, not a newcomer."""
        if len(c) > 1:
            return False
        return any(t.last_seen_ns == now_ns and self._same_shirt(t, color)
                   and float(np.linalg.norm(t.x[:2] - xy)) < self.params.cluster_m + 2.0 * std
                   for t in self.tracks if not t.closed and t.state != LOST)

    def _same_shirt(self, t: Track, color) -> bool:
        """``color`` (an appearance feature) is the shirt track ``t`` has been seen in: its
        colour rests on ``color_min_n`` looks and is within ``color_learn`` of it."""
        p = self.params
        return color is not None and t.color_n >= p.color_min_n \
            and appearance_d2(t.color, color) < p.color_learn

    def _duplicate(self, t: Track, now_ns: int) -> bool:
        """An anonymous track riding on a bound one that is seen too: a second cluster of the
        same shopper (a box split, a one-camera outlier), not a person of its own."""
        return any(o.shopper_id and not o.closed and o.last_seen_ns == now_ns
                   and float(np.linalg.norm(o.x[:2] - t.x[:2])) < self.params.duplicate_m
                   for o in self.tracks)

    def _reidentify(self, new: Track, now_ns: int) -> None:
        """A bound track that lost its shopper (occlusion, a camera dropout, or an anonymous
        track that took the shopper's observations) takes over the anonymous track seen now
        nearest to it (the radius grows with the time unseen; the shirt must match)."""
        p = self.params
        best, best_d = None, float('inf')
        for t in self.tracks:
            if not t.shopper_id or t.closed or t.last_seen_ns >= now_ns:
                continue
            unseen = (now_ns - t.last_seen_ns) / 1e9 + 0.5
            d = float(np.linalg.norm(t.x[:2] - new.x[:2]))
            a2 = appearance_d2(t.color, new.color) if t.color_n and new.color_n else 0.0
            if t.color_n >= p.color_min_n and a2 > p.color_gate:
                continue
            score = d + 0.1 * min(p.color_cap, a2)     # the same shirt nearby wins
            if d < p.reid_radius_m + p.reid_speed_mps * unseen and score < best_d:
                best, best_d = t, score
        if best is not None:
            best.x[:2] = new.x[:2]
            best.x[2:] = 0.0
            best.P = new.P.copy()
            best.last_seen_ns = now_ns
            best.state = CONFIRMED
            best.hands, best.products = new.hands, new.products
            best.seen_cameras = new.seen_cameras
            new.closed = True       # absorbed
            new.state = LOST
            best.hits = max(best.hits, new.hits)


def _fuse_color(c: list[Observation]) -> np.ndarray | None:
    """Mean appearance feature of a cluster's observations that have one."""
    f = [o.color for o in c if o.color is not None]
    return np.mean(f, axis=0) if f else None


def _learn_color(t: Track, f: np.ndarray | None) -> None:
    if f is None:
        return
    a = max(0.1, 1.0 / (t.color_n + 1))
    t.color = f.copy() if t.color is None else (1 - a) * t.color + a * f
    t.color_n += 1


def _fuse(c: list[Observation]) -> tuple[np.ndarray, float]:
    """A cluster's floor position and its std [m]: the inverse-variance mean of the feet seen
    on the floor and, when two or more cameras see the top of the head, the head triangulated
    from their rays (which needs no assumed height: feet hidden behind a gondola or another
    shopper are otherwise lifted at a typical head height, off by a metre at a shallow view)."""
    tri = None
    rays = [o.head_ray for o in c if o.head_ray is not None]
    if len(rays) >= 2:
        tri = triangulate_rays(rays)
    pts, ws = [], []
    for o in c:
        if tri is not None and o.feet_hidden:
            continue            # its head ray is in the triangulation
        pts.append(o.xy)
        ws.append(1.0 / o.std_m ** 2)
    if tri is not None:
        pts.append(tri[0][:2])
        ws.append(1.0 / (HEAD_TRI_STD_M + tri[1]) ** 2)
    w = np.array(ws)
    xy = (np.array(pts) * w[:, None]).sum(axis=0) / w.sum()
    return xy, max(0.08, float(math.sqrt(1.0 / w.sum())))
