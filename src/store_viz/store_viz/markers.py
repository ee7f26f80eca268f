"""MarkerArrays of the store for rviz (and the PNG renderer), from the store description and state.

Frames are named as a real TF tree would name them, so a tf2 broadcaster can be added later
without renaming anything::

    store                              the store frame (store.frame_id), origin at the entrance
    ├── gondola_<gondola>              gondola centre on the floor, x along the gondola
    │   └── plate_<gondola>_<shelf>_<plate>   plate centre on its shelf surface
    └── gate_<gate>                    gate zone centre on the floor

There is no tf2 here, so every marker is published in the ``store`` frame with poses computed
from the description (:func:`tf_frames` lists the transforms a broadcaster would send).

Two arrays:
* layout (static, latched): floor and walls, gate zones, gondolas, plates with ids;
* state (a few Hz): plate weights (a bar and a text per plate, one line per shelf), carts (a panel
  beside the store), shelf events as short-lived discs behind the gondola in line with their
  plates (a label behind the disc), open review requests highlighted (a pulsing red frame
  around the plate), shopper tracks (when cameras provide them). No disc or frame lies on a
  text: top-down, a marker above a text would hide it.

Top-down, the shelves of a gondola are on top of each other; state texts and bars of shelf ``k``
are shifted across the plate (by shelf index) so the renderer's floor-plane view stays legible.

No rclpy here: only message classes.
"""
from __future__ import annotations

import math
from typing import Iterable

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA, Header
from store_interfaces.msg import CartLine, CartState
from visualization_msgs.msg import Marker, MarkerArray

# colours (r, g, b, a)
FLOOR = (0.93, 0.93, 0.90, 1.0)
WALL = (0.25, 0.25, 0.25, 1.0)
ENTRANCE = (0.2, 0.7, 0.3, 0.5)
EXIT = (0.95, 0.55, 0.1, 0.5)
GONDOLA = (0.55, 0.45, 0.35, 0.35)
PLATE = (0.45, 0.6, 0.8, 0.55)
TEXT = (0.1, 0.1, 0.1, 1.0)
TAKE = (0.15, 0.35, 0.95, 0.7)
RETURN = (0.1, 0.75, 0.25, 0.7)
REVIEW = (0.95, 0.05, 0.05, 0.85)
CART = (0.05, 0.05, 0.3, 1.0)
TRACK = (0.6, 0.1, 0.7, 0.9)

FILL_FULL = (0.0, 0.9, 0.2, 0.9)     # a plate's fill bar: its colour runs empty -> full
FILL_EMPTY = (1.0, 0.3, 0.2, 0.9)

LEGEND = (('entrance gate', ENTRANCE), ('exit gate', EXIT), ('gondola', GONDOLA),
          ('plate', PLATE), ('fill bar: plate full', FILL_FULL),
          ('fill bar: plate empty', FILL_EMPTY), ('take event', TAKE), ('return event', RETURN),
          ('review request', REVIEW), ('shopper track', TRACK),
          ('"s2 3.64": shelf 2 holds 3.64 kg', None))
CHAR_WIDTH = 0.65     # a text's width per character, as a share of its height (generous)

SHELF_SHIFT_M = 0.15      # across-plate shift of shelf k's state markers (top-down legibility)
EVENT_DISC_M = 0.3        # diameter of a shelf event's disc, behind its plate's gondola
EVENT_DISC_GAP_M = 0.03   # between the gondola's back and the disc
REVIEW_FRAME_GAP_M = 0.02  # between a plate's edge and the centre of its review frame's line


def frame_of_gondola(gondola_id: str) -> str:
    return f'gondola_{gondola_id}'


def frame_of_plate(plate_id: str) -> str:
    return 'plate_' + plate_id.replace('.', '_')


def frame_of_gate(gate_id: str) -> str:
    return f'gate_{gate_id}'


def tf_frames(store) -> list[tuple[str, str, tuple[float, float, float], float]]:
    """(child, parent, (x, y, z), yaw) of every frame, as a tf2 broadcaster would publish."""
    out = []
    for g in store.gondolas:
        out.append((frame_of_gondola(g.id), store.frame_id, (g.x_m, g.y_m, 0.0), g.yaw_rad))
        for s in g.shelves:
            for p in s.plates:
                out.append((frame_of_plate(p.id), frame_of_gondola(g.id),
                            (p.x_m - g.size_m[0] / 2, p.y_m, s.z_m), 0.0))
    for gate in store.gates:
        z = gate.zone
        out.append((frame_of_gate(gate.id), store.frame_id,
                    ((z.x_min + z.x_max) / 2, (z.y_min + z.y_max) / 2, 0.0), 0.0))
    return out


# --- marker helpers ---
def _color(c) -> ColorRGBA:
    return ColorRGBA(r=float(c[0]), g=float(c[1]), b=float(c[2]), a=float(c[3]))


def _quat(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


class _Builder:
    def __init__(self, frame_id: str, stamp=None):
        self.header = Header(frame_id=frame_id)
        if stamp is not None:
            self.header.stamp = stamp
        self.markers: list[Marker] = []
        self._ids: dict[str, int] = {}

    def add(self, ns: str, mtype: int, xyz, scale, color, *, yaw: float = 0.0, text: str = '',
            points=(), lifetime_s: float = 0.0) -> Marker:
        mid = self._ids.get(ns, 0)
        self._ids[ns] = mid + 1
        m = Marker(header=self.header, ns=ns, id=mid, type=mtype, action=Marker.ADD,
                   pose=Pose(position=Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2])),
                             orientation=_quat(yaw)),
                   scale=Vector3(x=float(scale[0]), y=float(scale[1]), z=float(scale[2])),
                   color=_color(color), text=text, frame_locked=True)
        m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2] if len(p) > 2 else 0.0))
                    for p in points]
        if lifetime_s > 0:
            m.lifetime = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1) * 1e9))
        self.markers.append(m)
        return m

    def array(self, delete_all_first: bool = False) -> MarkerArray:
        out = MarkerArray()
        if delete_all_first:
            out.markers.append(Marker(header=self.header, ns='', id=0, action=Marker.DELETEALL))
        out.markers.extend(self.markers)
        return out


def _local(g, lx: float, ly: float) -> tuple[float, float]:
    """Gondola-local (x from the gondola centre, y) to store x, y."""
    c, s = math.cos(g.yaw_rad), math.sin(g.yaw_rad)
    return g.x_m + lx * c - ly * s, g.y_m + lx * s + ly * c


def _shelf_index(store, plate) -> int:
    g = store.gondola(plate.gondola_id)
    return [s.id for s in g.shelves].index(plate.shelf_id)


def _state_xy(store, plate) -> tuple[float, float]:
    """Top-down anchor of a plate's state markers: shifted across the plate by shelf index."""
    g = store.gondola(plate.gondola_id)
    n = len(g.shelves)
    k = _shelf_index(store, plate)
    shift = (k - (n - 1) / 2) * SHELF_SHIFT_M
    return _local(g, plate.x_m - g.size_m[0] / 2, plate.y_m + shift)


# --- layout ---
def layout_markers(store, stamp=None) -> MarkerArray:
    """The static store: floor, walls, gate zones, gondolas, plates with their ids."""
    b = _Builder(store.frame_id, stamp)
    sx, sy = store.size_m
    b.add('floor', Marker.CUBE, (sx / 2, sy / 2, -0.01), (sx, sy, 0.02), FLOOR)
    b.add('walls', Marker.LINE_STRIP, (0, 0, 0), (0.05, 0, 0), WALL,
          points=[(0, 0), (sx, 0), (sx, sy), (0, sy), (0, 0)])
    b.add('store_name', Marker.TEXT_VIEW_FACING, (sx / 2, sy + 0.35, 0.5), (0, 0, 0.35), TEXT,
          text=f'{store.name} ({store.id})')
    for gate in store.gates:
        z = gate.zone
        color = ENTRANCE if gate.kind == 'entrance' else EXIT
        cx, cy = (z.x_min + z.x_max) / 2, (z.y_min + z.y_max) / 2
        b.add('gates', Marker.CUBE, (cx, cy, 0.01), (z.x_max - z.x_min, z.y_max - z.y_min, 0.02),
              color)
        b.add('gate_labels', Marker.TEXT_VIEW_FACING, (cx, cy, 0.3), (0, 0, 0.2), TEXT,
              text=gate.id if gate.id == gate.kind else f'{gate.id} ({gate.kind})')
    for g in store.gondolas:
        b.add('gondolas', Marker.CUBE, (g.x_m, g.y_m, g.size_m[2] / 2), g.size_m, GONDOLA,
              yaw=g.yaw_rad)
        lx, ly = _local(g, -g.size_m[0] / 2 - 0.25, 0.0)
        b.add('gondola_labels', Marker.TEXT_VIEW_FACING, (lx, ly, g.size_m[2] + 0.2),
              (0, 0, 0.3), TEXT, text=g.id)
        for s in g.shelves:
            for p in s.plates:
                cx, cy, cz = p.center_store
                b.add('plates', Marker.CUBE, (cx, cy, cz), (p.size_x_m, p.size_y_m, 0.02), PLATE,
                      yaw=p.yaw_store)
        # plate ids once per column (the shelves' plates share x, y top-down): "p1 (s1-s3)"
        cols: dict[str, list] = {}
        for s in g.shelves:
            for p in s.plates:
                cols.setdefault(p.id.rsplit('.', 1)[1], []).append(p)
        for name, plates in cols.items():
            p = plates[0]
            lx, ly = _local(g, p.x_m - g.size_m[0] / 2, -g.size_m[1] / 2 - 0.15)
            b.add('plate_ids', Marker.TEXT_VIEW_FACING, (lx, ly, 0.05), (0, 0, 0.16), TEXT,
                  text=name)
    return b.array()


# --- state ---
def _money(cents: int, currency: str) -> str:
    return f'{cents / 100:.2f} {currency}'


def state_markers(store, *, weights: dict[str, float] | None = None,
                  carts: Iterable = (), events: Iterable = (), reviews: Iterable = (),
                  tracks: dict[str, list] | None = None, now_s: float = 0.0,
                  event_show_s: float = 5.0, stamp=None) -> MarkerArray:
    """The live state as one MarkerArray (DELETEALL first, so vanished items disappear).

    ``weights``: {plate_id: grams}; ``carts``: CartState messages; ``events``: (ShelfEvent,
    received_s) pairs; ``reviews``: open ReviewRequest messages; ``tracks``: {shopper_id:
    [(x, y)]} in the store frame; ``now_s``: the time that ``received_s`` and pulsing use.
    """
    b = _Builder(store.frame_id, stamp)
    plates = store.plates
    currency = store.catalog.currency
    for pid, grams in sorted((weights or {}).items()):
        plate = plates.get(pid)
        if plate is None:
            continue
        x, y = _state_xy(store, plate)
        z = plate.center_store[2]
        entry = store.planogram.get(pid)
        full = (store.catalog[entry.sku].unit_grams * entry.capacity_units
                if entry else plate.load_cell.capacity_grams)
        frac = 0.0 if not math.isfinite(grams) else max(0.0, min(1.0, grams / full))
        color = tuple(e + (f - e) * frac for e, f in zip(FILL_EMPTY, FILL_FULL))
        h = 0.02 + 0.3 * frac
        bx = x - plate.size_x_m / 2 + 0.06
        b.add('weight_bars', Marker.CUBE, (bx, y, z + h / 2), (0.08, 0.1, h), color)
        text = (f's{_shelf_index(store, plate) + 1} ' +
                (f'{grams / 1000:.2f}' if math.isfinite(grams) else 'n/a'))
        b.add('weights', Marker.TEXT_VIEW_FACING, (x + 0.05, y, z + 0.05), (0, 0, 0.1), TEXT,
              text=text)

    for ev, received_s in events:
        age = now_s - received_s
        if age > event_show_s or not ev.plate_ids:
            continue
        plate = plates.get(ev.plate_ids[0])
        if plate is None:
            continue
        take = ev.delta_grams < 0
        z = plate.center_store[2]
        left = max(0.1, event_show_s - age)
        g = store.gondola(plate.gondola_id)
        # the disc floats just above the gondola's top, behind the gondola in line with its
        # plate: on the plate it would hide the plate's weight texts (rviz and PNG); its label
        # is further back, clear of the disc
        dx, dy = _local(g, plate.x_m - g.size_m[0] / 2, g.size_m[1] / 2 + EVENT_DISC_GAP_M
                        + EVENT_DISC_M / 2)
        b.add('shelf_events', Marker.CYLINDER, (dx, dy, g.size_m[2] + 0.1),
              (EVENT_DISC_M, EVENT_DISC_M, 0.04), TAKE if take else RETURN, lifetime_s=left)
        best = ev.hypotheses[0] if ev.hypotheses else None
        what = f'{best.quantity} x {best.sku}' if best is not None and best.sku else '?'
        lx, ly = _local(g, plate.x_m - g.size_m[0] / 2,
                        g.size_m[1] / 2 + EVENT_DISC_GAP_M + EVENT_DISC_M + 0.17)
        b.add('shelf_event_labels', Marker.TEXT_VIEW_FACING, (lx, ly, z + 0.3),
              (0, 0, 0.14), TEXT, lifetime_s=left,
              text=f'{"take" if take else "return"} {ev.delta_grams:+.0f} g {what}')

    pulse = 0.5 + 0.5 * math.sin(2 * math.pi * 1.0 * now_s)
    for r in reviews:
        for i, pid in enumerate(r.plate_ids):
            plate = plates.get(pid)
            if plate is None:
                continue
            g = store.gondola(plate.gondola_id)
            # a thick red frame around the plate's column, pulsing: a filled disc there would
            # hide the plate's weight texts
            cx = plate.x_m - g.size_m[0] / 2
            hx = plate.size_x_m / 2 + REVIEW_FRAME_GAP_M
            hy = plate.size_y_m / 2 + REVIEW_FRAME_GAP_M
            corners = [_local(g, cx + sx_ * hx, plate.y_m + sy_ * hy)
                       for sx_, sy_ in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))]
            b.add('review_requests', Marker.LINE_STRIP, (0, 0, g.size_m[2] + 0.15),
                  (0.03 + 0.03 * pulse, 0, 0), REVIEW, points=corners)
            if i == 0:
                # below the plate ids, in front of the gondola
                who = ', '.join(r.shopper_ids) or 'nobody'
                lx, ly = _local(g, plate.x_m - g.size_m[0] / 2, -g.size_m[1] / 2 - 0.42)
                b.add('review_labels', Marker.TEXT_VIEW_FACING,
                      (lx, ly, plate.center_store[2] + 0.5), (0, 0, 0.16), REVIEW,
                      text=f'REVIEW {r.delta_grams:+.0f} g ({who})')

    carts = sorted(carts, key=lambda c: (c.state, c.shopper_id))
    sx, sy = store.size_m
    head = f'Carts ({sum(1 for c in carts if c.state == CartState.STATE_IN_STORE)} in store)'
    texts = []
    for c in carts:
        inside = c.state == CartState.STATE_IN_STORE
        lines = [f'{c.shopper_id}{"" if inside else " (exited)"}: '
                 f'{_money(c.total_cents, currency)}'
                 + (f', {c.pending_reviews} in review' if c.pending_reviews else '')]
        lines += [f'{ln.quantity} x {ln.sku}'
                  + (' ?' if ln.status == CartLine.STATUS_PENDING_REVIEW else '')
                  for ln in c.lines]
        texts.append((inside, lines))
    # the carts panel right of the far wall: texts are centred, so its centre is half the
    # widest line away from the wall (and a margin): no cart text crosses the wall
    widest = max([0.22 * len(head)] + [0.17 * len(ln) for _, lines in texts for ln in lines])
    px = sx + 0.4 + CHAR_WIDTH * widest / 2
    b.add('carts', Marker.TEXT_VIEW_FACING, (px, sy - 0.3, 0.5), (0, 0, 0.22), CART, text=head)
    y = sy - 0.75
    for inside, lines in texts:
        b.add('carts', Marker.TEXT_VIEW_FACING, (px, y - 0.125 * (len(lines) - 1), 0.5),
              (0, 0, 0.17),
              CART if inside else (0.4, 0.4, 0.4, 1.0), text='\n'.join(lines))
        y -= 0.25 * len(lines) + 0.2

    for shopper_id, pts in sorted((tracks or {}).items()):
        if not pts:
            continue
        b.add('tracks', Marker.LINE_STRIP, (0, 0, 0), (0.04, 0, 0), TRACK,
              points=[(p[0], p[1], 0.02) for p in pts])
        b.add('track_heads', Marker.SPHERE, (pts[-1][0], pts[-1][1], 0.9), (0.35, 0.35, 0.35),
              TRACK)
        b.add('track_labels', Marker.TEXT_VIEW_FACING, (pts[-1][0], pts[-1][1] + 0.35, 1.9),
              (0, 0, 0.18), TRACK, text=shopper_id)
    return b.array(delete_all_first=True)


def merge(*arrays: MarkerArray) -> list[Marker]:
    return [m for a in arrays for m in a.markers]
