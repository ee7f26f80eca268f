"""Top-down PNG of visualization_msgs markers, for machines without rviz2 (OpenCV, no rclpy).

Markers are projected on the floor plane (x right, y up), drawn lowest ``z`` first, with alpha
blending: CUBE as a rotated rectangle, CYLINDER/SPHERE as an ellipse, LINE_STRIP/LINE_LIST as
lines, POINTS/SPHERE_LIST/CUBE_LIST as dots, ARROW as an arrow, TEXT_VIEW_FACING as text (its
``scale.z`` is the text height in metres; newlines start new lines). The view fits every marker,
with a scale bar and a legend. Works on rclpy messages and on rosbags-deserialized ones (same
field names).

:class:`MarkerScene` keeps the current markers of one or more topics the way rviz does (ADD
replaces by (ns, id), DELETE removes one, DELETEALL clears its topic).
"""
from __future__ import annotations

import math
from typing import Iterable

import cv2
import numpy as np

ARROW, CUBE, SPHERE, CYLINDER, LINE_STRIP, LINE_LIST = 0, 1, 2, 3, 4, 5
CUBE_LIST, SPHERE_LIST, POINTS, TEXT_VIEW_FACING = 6, 7, 8, 9
ADD, DELETE, DELETEALL = 0, 2, 3
FONT = cv2.FONT_HERSHEY_SIMPLEX
BG = (255, 255, 255)


class MarkerScene:
    """The markers currently shown, per topic, keyed by (ns, id)."""

    def __init__(self):
        self.topics: dict[str, dict[tuple[str, int], object]] = {}

    def update(self, topic: str, markers: Iterable) -> None:
        shown = self.topics.setdefault(topic, {})
        for m in markers:
            if m.action == DELETEALL:
                shown.clear()
            elif m.action == DELETE:
                shown.pop((m.ns, m.id), None)
            else:
                shown[(m.ns, m.id)] = m

    def markers(self) -> list:
        return [m for t in sorted(self.topics) for m in self.topics[t].values()]


def _yaw(q) -> float:
    return math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))


def _bgr(c) -> tuple[int, int, int]:
    return (int(255 * c.b), int(255 * c.g), int(255 * c.r))


def _extent(m) -> list[tuple[float, float]]:
    p = m.pose.position
    if m.type in (LINE_STRIP, LINE_LIST, POINTS, SPHERE_LIST, CUBE_LIST):
        return [(p.x + q.x, p.y + q.y) for q in m.points] or [(p.x, p.y)]
    if m.type == TEXT_VIEW_FACING:
        w = 0.55 * m.scale.z * max((len(s) for s in m.text.split('\n')), default=0)
        h = m.scale.z * 1.4 * max(1, len(m.text.split('\n')))
        return [(p.x - w / 2, p.y - h), (p.x + w / 2, p.y + h)]
    yaw = _yaw(m.pose.orientation)
    c, s = math.cos(yaw), math.sin(yaw)
    hx, hy = m.scale.x / 2, m.scale.y / 2
    return [(p.x + dx * c - dy * s, p.y + dx * s + dy * c)
            for dx in (-hx, hx) for dy in (-hy, hy)]


class _View:
    def __init__(self, markers: list, px_per_m: float, margin_m: float, legend_px: int):
        pts = [xy for m in markers for xy in _extent(m)] or [(0.0, 0.0), (1.0, 1.0)]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        self.x0, self.x1 = min(xs) - margin_m, max(xs) + margin_m
        self.y0, self.y1 = min(ys) - margin_m, max(ys) + margin_m
        self.k = px_per_m
        self.w = int(math.ceil((self.x1 - self.x0) * px_per_m))
        self.h = int(math.ceil((self.y1 - self.y0) * px_per_m))
        self.legend_px = legend_px

    def px(self, x: float, y: float) -> tuple[int, int]:
        return (int(round((x - self.x0) * self.k)), int(round((self.y1 - y) * self.k)))

    def fpx(self, x: float, y: float) -> tuple[float, float]:
        return ((x - self.x0) * self.k, (self.y1 - y) * self.k)


def _blend(img: np.ndarray, draw, alpha: float) -> None:
    if alpha >= 0.999:
        draw(img)
        return
    layer = img.copy()
    draw(layer)
    cv2.addWeighted(layer, alpha, img, 1 - alpha, 0, dst=img)


def _draw_marker(img: np.ndarray, v: _View, m) -> None:
    p, s = m.pose.position, m.scale
    color, alpha = _bgr(m.color), float(m.color.a) if m.color.a > 0 else 1.0
    yaw = _yaw(m.pose.orientation)
    if m.type == CUBE:
        c = v.fpx(p.x, p.y)
        box = cv2.boxPoints((c, (s.x * v.k, s.y * v.k), -math.degrees(yaw)))
        pts = np.round(box).astype(np.int32)
        _blend(img, lambda im: cv2.fillPoly(im, [pts], color, cv2.LINE_AA), alpha)
        cv2.polylines(img, [pts], True, tuple(int(0.6 * c) for c in color), 1, cv2.LINE_AA)
    elif m.type in (CYLINDER, SPHERE):
        c = v.px(p.x, p.y)
        axes = (max(1, int(s.x * v.k / 2)), max(1, int(s.y * v.k / 2)))
        _blend(img, lambda im: cv2.ellipse(im, c, axes, -math.degrees(yaw), 0, 360, color, -1,
                                           cv2.LINE_AA), alpha)
    elif m.type in (LINE_STRIP, LINE_LIST):
        pts = [v.px(p.x + q.x, p.y + q.y) for q in m.points]
        th = max(1, int(round(s.x * v.k)))
        if m.type == LINE_STRIP and len(pts) >= 2:
            arr = np.array(pts, np.int32)
            _blend(img, lambda im: cv2.polylines(im, [arr], False, color, th, cv2.LINE_AA),
                   alpha)
        elif m.type == LINE_LIST:
            for a, b in zip(pts[0::2], pts[1::2]):
                _blend(img, lambda im, a=a, b=b: cv2.line(im, a, b, color, th, cv2.LINE_AA),
                       alpha)
    elif m.type in (POINTS, SPHERE_LIST, CUBE_LIST):
        r = max(1, int(s.x * v.k / 2))
        for i, q in enumerate(m.points):
            col = _bgr(m.colors[i]) if len(m.colors) == len(m.points) else color
            cv2.circle(img, v.px(p.x + q.x, p.y + q.y), r, col, -1, cv2.LINE_AA)
    elif m.type == ARROW:
        if len(m.points) >= 2:
            a = v.px(p.x + m.points[0].x, p.y + m.points[0].y)
            b = v.px(p.x + m.points[1].x, p.y + m.points[1].y)
        else:
            a = v.px(p.x, p.y)
            b = v.px(p.x + s.x * math.cos(yaw), p.y + s.x * math.sin(yaw))
        cv2.arrowedLine(img, a, b, color, max(1, int(s.y * v.k)), cv2.LINE_AA, tipLength=0.3)
    elif m.type == TEXT_VIEW_FACING and m.text:
        _draw_text(img, v, m.text, p.x, p.y, s.z, color)


def _draw_text(img, v: _View, text: str, x: float, y: float, height_m: float, color,
               centred: bool = True) -> None:
    px_h = max(8.0, height_m * v.k)
    scale = px_h / 22.0
    th = 1 if px_h < 24 else 2
    lines = text.split('\n')
    cx, cy = v.fpx(x, y)
    line_h = px_h * 1.35
    top = cy - line_h * (len(lines) - 1) / 2
    for i, line in enumerate(lines):
        (w, h), _ = cv2.getTextSize(line, FONT, scale, th)
        org = (int(cx - w / 2) if centred else int(cx), int(top + i * line_h + h / 2))
        cv2.putText(img, line, org, FONT, scale, (255, 255, 255), th + 2, cv2.LINE_AA)
        cv2.putText(img, line, org, FONT, scale, color, th, cv2.LINE_AA)


def _nice_length(max_m: float) -> float:
    for v in (10, 5, 2, 1, 0.5, 0.2, 0.1):
        if v <= max_m:
            return float(v)
    return 0.1


def _scale_bar(img: np.ndarray, v: _View) -> None:
    length_m = _nice_length((v.w / v.k) / 5)
    x0, y0 = 15, img.shape[0] - 20
    x1 = x0 + int(length_m * v.k)
    cv2.rectangle(img, (x0 - 6, y0 - 28), (x1 + 60, y0 + 10), (255, 255, 255), -1)
    cv2.line(img, (x0, y0), (x1, y0), (0, 0, 0), 3)
    for x in (x0, x1):
        cv2.line(img, (x, y0 - 7), (x, y0 + 7), (0, 0, 0), 2)
    label = f'{length_m:g} m'
    cv2.putText(img, label, (x0, y0 - 12), FONT, 0.7, (0, 0, 0), 2, cv2.LINE_AA)


def _legend(img: np.ndarray, x0: int, legend, title: str) -> None:
    y = 30
    if title:
        cv2.putText(img, title, (x0, y), FONT, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
        y += 40
    cv2.putText(img, 'Legend', (x0, y), FONT, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
    y += 12
    for name, rgba in legend:
        y += 36
        col = (int(255 * rgba[2]), int(255 * rgba[1]), int(255 * rgba[0]))
        cv2.rectangle(img, (x0, y - 20), (x0 + 30, y + 4), col, -1)
        cv2.rectangle(img, (x0, y - 20), (x0 + 30, y + 4), (60, 60, 60), 1)
        cv2.putText(img, name, (x0 + 40, y), FONT, 0.75, (0, 0, 0), 2, cv2.LINE_AA)


def render(markers: Iterable, *, px_per_m: float = 150.0, margin_m: float = 0.5,
           legend=(), legend_px: int = 320, title: str = '') -> np.ndarray:
    """BGR image (H, W, 3) of ``markers`` seen from above. Markers with DELETE actions are
    ignored (use :class:`MarkerScene` to apply them)."""
    ms = [m for m in markers if m.action == ADD]
    v = _View(ms, px_per_m, margin_m, legend_px if legend else 0)
    img = np.full((max(v.h, 400), v.w + v.legend_px, 3), BG, np.uint8)
    # draw order: solid shapes lowest z first, then lines, then text on top
    order = {TEXT_VIEW_FACING: 2, LINE_STRIP: 1, LINE_LIST: 1, ARROW: 1}
    for m in sorted(ms, key=lambda m: (order.get(m.type, 0), m.pose.position.z)):
        _draw_marker(img, v, m)
    _scale_bar(img, v)
    if legend:
        cv2.line(img, (v.w, 0), (v.w, img.shape[0]), (180, 180, 180), 1)
        _legend(img, v.w + 15, legend, title)
    return img


def world_to_pixel(markers: Iterable, x: float, y: float, *, px_per_m: float = 150.0,
                   margin_m: float = 0.5) -> tuple[int, int]:
    """Where store point (x, y) lands in :func:`render`'s image of the same markers."""
    v = _View([m for m in markers if m.action == ADD], px_per_m, margin_m, 0)
    return v.px(x, y)


def save_png(path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise OSError(f'cannot write {path}')
