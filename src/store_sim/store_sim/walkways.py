"""Where shoppers can walk: routes around the gondolas, and how long they take.

The scenario generator times a shopper's actions so that the walk between them is possible at a
human pace, and the renderer moves the shopper along the same routes, so camera tracks never
teleport or pass through shelving. Routes come from A* on an occupancy grid of the floor (the
gondola footprints grown by a clearance), shortened by line-of-sight string pulling.

Never imports rclpy.
"""
from __future__ import annotations

import heapq
import math

import numpy as np

WALK_SPEED_MPS = 1.0          # a shopper's usual pace [m/s]
MAX_WALK_SPEED_MPS = 1.25     # the brisk pace generated scenarios never need more than [m/s]


def gate_center(store, kind: str) -> np.ndarray:
    """Floor centre of the store's ``entrance`` or ``exit`` gate zone."""
    g = next(g for g in store.gates if g.kind == kind)
    z = g.zone
    return np.array([(z.x_min + z.x_max) / 2, (z.y_min + z.y_max) / 2])


def standing_spot(store, plate_id: str, clearance_m: float = 0.38):
    """Where a shopper stands to reach a plate, and the heading that faces the gondola."""
    p = store.plate(plate_id)
    g = store.gondola(p.gondola_id)
    c, s = math.cos(g.yaw_rad), math.sin(g.yaw_rad)
    off = -(g.size_m[1] / 2 + clearance_m)
    spot = np.array([p.center_store[0] - s * off, p.center_store[1] + c * off])
    # the front face of a gondola is its local -y side; the shopper faces local +y
    return spot, g.yaw_rad + math.pi / 2


class Walkways:
    """The store floor as a grid; routes between floor points that keep off the gondolas."""

    def __init__(self, store, clearance_m: float = 0.22, cell_m: float = 0.1):
        self.cell_m = cell_m
        self.nx = max(2, int(math.ceil(store.size_m[0] / cell_m)))
        self.ny = max(2, int(math.ceil(store.size_m[1] / cell_m)))
        xs = (np.arange(self.nx) + 0.5) * cell_m
        ys = (np.arange(self.ny) + 0.5) * cell_m
        gx, gy = np.meshgrid(xs, ys, indexing='ij')
        blocked = np.zeros((self.nx, self.ny), bool)
        for g in store.gondolas:
            c, s = math.cos(g.yaw_rad), math.sin(g.yaw_rad)
            dx, dy = gx - g.x_m, gy - g.y_m
            lx, ly = c * dx + s * dy, -s * dx + c * dy       # into the gondola's frame
            blocked |= ((np.abs(lx) <= g.size_m[0] / 2 + clearance_m)
                        & (np.abs(ly) <= g.size_m[1] / 2 + clearance_m))
        self.blocked = blocked
        self._cache: dict[tuple, list[np.ndarray]] = {}

    def _cell(self, p) -> tuple[int, int]:
        i = min(self.nx - 1, max(0, int(p[0] / self.cell_m)))
        j = min(self.ny - 1, max(0, int(p[1] / self.cell_m)))
        if not self.blocked[i, j]:
            return i, j
        free = np.argwhere(~self.blocked)                    # nearest free cell
        k = int(np.argmin((free[:, 0] - i) ** 2 + (free[:, 1] - j) ** 2))
        return int(free[k, 0]), int(free[k, 1])

    def _center(self, c) -> np.ndarray:
        return np.array([(c[0] + 0.5) * self.cell_m, (c[1] + 0.5) * self.cell_m])

    def clear(self, a, b) -> bool:
        """Whether the straight segment a-b keeps off every (grown) gondola."""
        a, b = np.asarray(a, float), np.asarray(b, float)
        n = max(2, int(np.linalg.norm(b - a) / (self.cell_m / 2)) + 1)
        for t in np.linspace(0.0, 1.0, n):
            x, y = a + (b - a) * t
            i, j = int(x / self.cell_m), int(y / self.cell_m)
            if 0 <= i < self.nx and 0 <= j < self.ny and self.blocked[i, j]:
                return False
        return True

    def route(self, a, b) -> list[np.ndarray]:
        """Polyline from a to b (both included) around the gondolas."""
        a, b = np.asarray(a, float), np.asarray(b, float)
        key = (round(a[0], 3), round(a[1], 3), round(b[0], 3), round(b[1], 3))
        if key in self._cache:
            return [p.copy() for p in self._cache[key]]
        if self.clear(a, b):
            path = [a, b]
        else:
            cells = self._astar(self._cell(a), self._cell(b))
            pts = [a] + [self._center(c) for c in cells[1:-1]] + [b]
            path = [pts[0]]
            k = 0
            while k < len(pts) - 1:          # string pulling: farthest visible point next
                m = len(pts) - 1
                while m > k + 1 and not self.clear(pts[k], pts[m]):
                    m -= 1
                path.append(pts[m])
                k = m
        self._cache[key] = path
        return [p.copy() for p in path]

    def length_m(self, a, b) -> float:
        path = self.route(a, b)
        return float(sum(np.linalg.norm(q - p) for p, q in zip(path, path[1:])))

    def _astar(self, start, goal) -> list[tuple[int, int]]:
        if start == goal:
            return [start, goal]
        steps = [(di, dj, math.hypot(di, dj)) for di in (-1, 0, 1) for dj in (-1, 0, 1)
                 if di or dj]

        def h(c):
            dx, dy = abs(c[0] - goal[0]), abs(c[1] - goal[1])
            return max(dx, dy) + (math.sqrt(2) - 1) * min(dx, dy)

        best = {start: 0.0}
        parent = {start: None}
        heap = [(h(start), 0.0, start)]
        while heap:
            _, g, c = heapq.heappop(heap)
            if c == goal:
                out = []
                while c is not None:
                    out.append(c)
                    c = parent[c]
                return out[::-1]
            if g > best.get(c, math.inf):
                continue
            for di, dj, w in steps:
                n = (c[0] + di, c[1] + dj)
                if not (0 <= n[0] < self.nx and 0 <= n[1] < self.ny) or self.blocked[n]:
                    continue
                if di and dj and (self.blocked[c[0] + di, c[1]] or self.blocked[c[0], c[1] + dj]):
                    continue             # no corner cutting
                ng = g + w
                if ng < best.get(n, math.inf):
                    best[n] = ng
                    parent[n] = c
                    heapq.heappush(heap, (ng + h(n), ng, n))
        raise ValueError(f'no walkable route between floor cells {start} and {goal}')
