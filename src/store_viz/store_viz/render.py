"""Top-down PNG of visualization_msgs markers, for machines without rviz2 (OpenCV, no rclpy).

Markers are projected on the floor plane (x right, y up), drawn lowest ``z`` first, with alpha
blending: CUBE as a rotated rectangle, CYLINDER/SPHERE as an ellipse, LINE_STRIP/LINE_LIST as
lines, POINTS/SPHERE_LIST/CUBE_LIST as dots, ARROW as an arrow, TEXT_VIEW_FACING as text (its
``scale.z`` is the text height in metres; newlines start new lines). The view fits every marker,
with a scale bar below it and a legend (title on top) to its right; the image is cropped to its
content. :func:`render_layout` also returns where every text, disc and line segment was drawn
(pixel boxes), so tests can check that no two texts overlap, none crosses the walls and none
lies under a disc or a highlight. Works on rclpy messages and on
rosbags-deserialized ones (same field names).

:class:`MarkerScene` keeps the current markers of one or more topics the way rviz does (ADD
replaces by (ns, id), DELETE removes one, DELETEALL clears its topic).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
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


def _text_metrics(height_m: float, k: float) -> tuple[float, int, float]:
    """(font scale, thickness, line height in px) of a text ``height_m`` tall at ``k`` px/m."""
    px_h = max(8.0, height_m * k)
    return px_h / 22.0, (1 if px_h < 24 else 2), px_h * 1.5


def _text_size_px(text: str, height_m: float, k: float) -> tuple[float, float]:
    scale, th, line_h = _text_metrics(height_m, k)
    lines = text.split('\n')
    w = max((cv2.getTextSize(line, FONT, scale, th + 2)[0][0] for line in lines), default=0)
    return float(w), line_h * len(lines)


def _extent(m, k: float = 150.0) -> list[tuple[float, float]]:
    p = m.pose.position
    if m.type in (LINE_STRIP, LINE_LIST, POINTS, SPHERE_LIST, CUBE_LIST):
        return [(p.x + q.x, p.y + q.y) for q in m.points] or [(p.x, p.y)]
    if m.type == TEXT_VIEW_FACING:
        w_px, h_px = _text_size_px(m.text, m.scale.z, k)
        w, h = w_px / k, h_px / k
        return [(p.x - w / 2, p.y - h / 2), (p.x + w / 2, p.y + h / 2)]
    yaw = _yaw(m.pose.orientation)
    c, s = math.cos(yaw), math.sin(yaw)
    hx, hy = m.scale.x / 2, m.scale.y / 2
    return [(p.x + dx * c - dy * s, p.y + dx * s + dy * c)
            for dx in (-hx, hx) for dy in (-hy, hy)]


class _View:
    def __init__(self, markers: list, px_per_m: float, margin_m: float, legend_px: int):
        pts = [xy for m in markers for xy in _extent(m, px_per_m)] or [(0.0, 0.0), (1.0, 1.0)]
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


def _draw_marker(img: np.ndarray, v: _View, m, texts: list | None = None,
                 shapes: list | None = None) -> None:
    """Draw ``m``; append the pixel boxes of its texts to ``texts`` and of its discs (CYLINDER,
    SPHERE: the ellipse's box) and lines (LINE_STRIP, LINE_LIST: each segment's box, its
    thickness included) to ``shapes``."""
    p, s = m.pose.position, m.scale
    if shapes is None:
        shapes = []
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
        r = max(axes) + 1
        shapes.append(ShapeBox(m.ns, m.id, m.type, (c[0] - r, c[1] - r, c[0] + r, c[1] + r)))
    elif m.type in (LINE_STRIP, LINE_LIST):
        pts = [v.px(p.x + q.x, p.y + q.y) for q in m.points]
        th = max(1, int(round(s.x * v.k)))
        segments = (zip(pts, pts[1:]) if m.type == LINE_STRIP
                    else zip(pts[0::2], pts[1::2]))
        half = th // 2 + 1
        for a, b in segments:
            shapes.append(ShapeBox(m.ns, m.id, m.type,
                                   (min(a[0], b[0]) - half, min(a[1], b[1]) - half,
                                    max(a[0], b[0]) + half, max(a[1], b[1]) + half)))
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
        boxes = _draw_text(img, v, m.text, p.x, p.y, s.z, color)
        if texts is not None:
            texts.extend(TextBox(m.ns, m.id, line, box) for line, box in boxes)


def _draw_text(img, v: _View, text: str, x: float, y: float, height_m: float, color,
               centred: bool = True) -> list[tuple[str, tuple[int, int, int, int]]]:
    """Draw ``text`` centred on store point (x, y); returns each line's pixel box
    (x0, y0, x1, y1), its white outline included."""
    scale, th, line_h = _text_metrics(height_m, v.k)
    lines = text.split('\n')
    cx, cy = v.fpx(x, y)
    top = cy - line_h * (len(lines) - 1) / 2
    out = []
    for i, line in enumerate(lines):
        (w, h), base = cv2.getTextSize(line, FONT, scale, th)
        org = (int(cx - w / 2) if centred else int(cx), int(top + i * line_h + h / 2))
        cv2.putText(img, line, org, FONT, scale, (255, 255, 255), th + 2, cv2.LINE_AA)
        cv2.putText(img, line, org, FONT, scale, color, th, cv2.LINE_AA)
        if line.strip():
            pad = (th + 2) // 2
            out.append((line, (org[0] - pad, org[1] - h - pad, org[0] + w + pad,
                               org[1] + base // 2 + pad)))
    return out


def _nice_length(max_m: float) -> float:
    for v in (10, 5, 2, 1, 0.5, 0.2, 0.1):
        if v <= max_m:
            return float(v)
    return 0.1


def _scale_bar(img: np.ndarray, v: _View, y0: int) -> None:
    length_m = _nice_length((v.w / v.k) / 5)
    x0 = 15
    x1 = x0 + int(length_m * v.k)
    cv2.line(img, (x0, y0), (x1, y0), (0, 0, 0), 3)
    for x in (x0, x1):
        cv2.line(img, (x, y0 - 7), (x, y0 + 7), (0, 0, 0), 2)
    cv2.putText(img, f'{length_m:g} m', (x1 + 10, y0 + 8), FONT, 0.7, (0, 0, 0), 2,
                cv2.LINE_AA)


def _legend(legend, title: str, width_px: int) -> np.ndarray:
    """The legend column: the title, then one swatch and name per entry (an entry without a
    colour is a note in grey), cropped to its content."""
    rows = (2 if title else 0) + 1 + len(legend)
    img = np.full((40 * rows + 60, width_px, 3), BG, np.uint8)
    y = 30
    if title:
        cv2.putText(img, title, (0, y), FONT, 0.9, (0, 0, 0), 2, cv2.LINE_AA)
        y += 50
    cv2.putText(img, 'Legend', (0, y), FONT, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
    y += 12
    for name, rgba in legend:
        y += 36
        if rgba is None:
            cv2.putText(img, name, (0, y), FONT, 0.65, (90, 90, 90), 1, cv2.LINE_AA)
            continue
        col = (int(255 * rgba[2]), int(255 * rgba[1]), int(255 * rgba[0]))
        cv2.rectangle(img, (0, y - 20), (30, y + 4), col, -1)
        cv2.rectangle(img, (0, y - 20), (30, y + 4), (60, 60, 60), 1)
        cv2.putText(img, name, (40, y), FONT, 0.75, (0, 0, 0), 2, cv2.LINE_AA)
    return _crop(img, 0)[0]


def _crop(img: np.ndarray, pad: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``img`` cut to its non-background pixels plus ``pad``; and the cut's top-left."""
    ink = np.any(img != np.array(BG, np.uint8), axis=2)
    ys, xs = np.nonzero(ink)
    if not len(xs):
        return img, (0, 0)
    x0, y0 = max(0, int(xs.min()) - pad), max(0, int(ys.min()) - pad)
    x1 = min(img.shape[1], int(xs.max()) + 1 + pad)
    y1 = min(img.shape[0], int(ys.max()) + 1 + pad)
    return img[y0:y1, x0:x1].copy(), (x0, y0)


@dataclass(frozen=True)
class TextBox:
    ns: str
    id: int
    text: str
    box: tuple[int, int, int, int]      # x0, y0, x1, y1 in the output image's pixels


@dataclass(frozen=True)
class ShapeBox:
    ns: str
    id: int
    type: int                           # the marker's type (CYLINDER, LINE_STRIP, ...)
    box: tuple[int, int, int, int]      # x0, y0, x1, y1 in the output image's pixels


@dataclass
class Layout:
    """Where :func:`render_layout` put things: the store view's crop offset, every text, and
    every disc and line segment (:class:`ShapeBox`)."""
    offset: tuple[int, int] = (0, 0)    # top-left of the cropped store view in the uncropped one
    texts: list[TextBox] = field(default_factory=list)
    view: object = None
    shapes: list[ShapeBox] = field(default_factory=list)


def render_layout(markers: Iterable, *, px_per_m: float = 150.0, margin_m: float = 0.5,
                  legend=(), legend_px: int = 420, title: str = '',
                  pad_px: int = 20) -> tuple[np.ndarray, Layout]:
    """:func:`render`, and the :class:`Layout` of what it drew."""
    ms = [m for m in markers if m.action == ADD]
    v = _View(ms, px_per_m, margin_m, 0)
    bar_px = 50                      # the scale bar's strip below the store
    img = np.full((v.h + bar_px, v.w, 3), BG, np.uint8)
    texts: list[TextBox] = []
    shapes: list[ShapeBox] = []
    # draw order: solid shapes lowest z first, then lines, then text on top
    order = {TEXT_VIEW_FACING: 2, LINE_STRIP: 1, LINE_LIST: 1, ARROW: 1}
    for m in sorted(ms, key=lambda m: (order.get(m.type, 0), m.pose.position.z)):
        _draw_marker(img, v, m, texts, shapes)
    _scale_bar(img, v, v.h + bar_px // 2)
    img, (ox, oy) = _crop(img, pad_px)
    moved = [TextBox(t.ns, t.id, t.text,
                     (t.box[0] - ox, t.box[1] - oy, t.box[2] - ox, t.box[3] - oy))
             for t in texts]
    layout = Layout((ox, oy), moved, v,
                    [ShapeBox(t.ns, t.id, t.type,
                              (t.box[0] - ox, t.box[1] - oy, t.box[2] - ox, t.box[3] - oy))
                     for t in shapes])
    if not legend and not title:
        return img, layout
    side = _legend(legend, title, legend_px)
    gap = 30
    h = max(img.shape[0], side.shape[0] + 2 * pad_px)
    out = np.full((h, img.shape[1] + gap + side.shape[1] + pad_px, 3), BG, np.uint8)
    out[:img.shape[0], :img.shape[1]] = img
    cv2.line(out, (img.shape[1] + gap // 2, pad_px), (img.shape[1] + gap // 2, h - pad_px),
             (180, 180, 180), 1)
    x = img.shape[1] + gap
    out[pad_px:pad_px + side.shape[0], x:x + side.shape[1]] = side
    return out, layout


def render(markers: Iterable, *, px_per_m: float = 150.0, margin_m: float = 0.5,
           legend=(), legend_px: int = 420, title: str = '') -> np.ndarray:
    """BGR image (H, W, 3) of ``markers`` seen from above, cropped to its content, with the
    legend and title to the right. Markers with DELETE actions are ignored (use
    :class:`MarkerScene` to apply them)."""
    return render_layout(markers, px_per_m=px_per_m, margin_m=margin_m, legend=legend,
                         legend_px=legend_px, title=title)[0]


def world_to_pixel(markers: Iterable, x: float, y: float, *, px_per_m: float = 150.0,
                   margin_m: float = 0.5) -> tuple[int, int]:
    """Where store point (x, y) lands in :func:`render`'s image of the same markers (the
    legend, right of the store, does not move it)."""
    _, layout = render_layout(list(markers), px_per_m=px_per_m, margin_m=margin_m)
    px, py = layout.view.px(x, y)
    return px - layout.offset[0], py - layout.offset[1]


def save_png(path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise OSError(f'cannot write {path}')
