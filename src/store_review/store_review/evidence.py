"""Evidence for a review request: the plates' weight traces and camera frames, faces blurred.

Weight traces
    :class:`TraceBuffer` keeps the last ``keep_s`` seconds of every plate's samples (a ring
    buffer per plate, fed from PlateWeights). A request asks for its plates over
    ``[start - pad_s, settled + pad_s]`` (the start stamp is in the event id,
    ``"<plate>@<start ns>"``). The request usually arrives before ``settled + pad_s`` has been
    sampled (the cart holds events for ``hold_s``), so :class:`TraceCollector` keeps the job
    until the buffer's newest sample passes the window end (or ``give_up_s`` of sensor time
    later, then it saves what there is) and hands back finished traces to store.

Images
    :class:`FrameBuffer` keeps a few recent frames per camera (decimated to ``max_fps``), the
    camera drivers' JPEG evidence frames still compressed, decoded only for a request;
    :class:`CameraView` says which plates a camera sees (optionally with the plate's pixel box).
    The store description's ``cameras:`` section gives them; without cameras a request simply has
    no image evidence. :func:`anonymize` blurs faces before anything is written: the top quarter of
    each detected ``shopper`` box plus OpenCV's Haar frontal-face detections; with neither,
    everything above the shelf line except the plate's box. :func:`crop_for_plate` cuts the plate
    region with a margin.

Shopper tracks
    :class:`TrackBuffer` keeps the tracker's recent floor positions per shopper (from
    ShopperTracks). For each kept frame, :func:`person_box` projects a standing shopper (a
    prism ``radius_m`` around the track's floor point, ``height_m`` tall) through the calibrated
    camera: the box of each bound shopper is stored with the image (``shoppers`` in its
    metadata, in crop pixels), and the console draws it labelled with the shopper's answer
    colour. Boxes are for the reviewer only: faces are blurred as above, whatever the tracks say.

No rclpy here.
"""
from __future__ import annotations

import bisect
import hashlib
import html
import math
import re
import pathlib
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
from store_common.evidence_frames import decode_image, encode_jpeg

NS_PER_S = 1_000_000_000
BLUR_CELL_PX = 12              # a blurred region is first pixelated to cells of this size

Box = tuple[int, int, int, int]       # x, y, w, h in pixels


def start_ns_of(event_id: str, default: int) -> int:
    """The start stamp encoded in a shelf event id ``"<plate>@<start ns>"``."""
    _, sep, tail = event_id.rpartition('@')
    try:
        return int(tail) if sep else default
    except ValueError:
        return default


# --- weight traces ----------------------------------------------------------------------------
class TraceBuffer:
    """Per-plate ring buffers of (stamp_ns, grams); invalid samples are kept as NaN."""

    def __init__(self, keep_s: float = 60.0):
        self.keep_ns = int(keep_s * NS_PER_S)
        self._t: dict[str, deque] = {}
        self._w: dict[str, deque] = {}
        self.newest_ns = 0

    def add(self, plate_id: str, stamp_ns: int, grams: float, valid: bool = True) -> None:
        t = self._t.setdefault(plate_id, deque())
        w = self._w.setdefault(plate_id, deque())
        if t and stamp_ns < t[-1]:
            return                  # out of order: drop (traces are for display)
        t.append(int(stamp_ns))
        w.append(float(grams) if valid and math.isfinite(grams) else float('nan'))
        self.newest_ns = max(self.newest_ns, int(stamp_ns))
        floor = stamp_ns - self.keep_ns
        while t and t[0] < floor:
            t.popleft()
            w.popleft()

    def cut(self, plate_id: str, t0_ns: int, t1_ns: int) -> tuple[list[int], list[float]]:
        t = list(self._t.get(plate_id, ()))
        w = list(self._w.get(plate_id, ()))
        i, j = bisect.bisect_left(t, t0_ns), bisect.bisect_right(t, t1_ns)
        return t[i:j], w[i:j]


@dataclass
class TraceJob:
    request_id: str
    plate_ids: tuple[str, ...]
    t0_ns: int
    t1_ns: int


@dataclass
class Trace:
    request_id: str
    plate_id: str
    t0_ns: int
    t1_ns: int
    stamps_ns: list[int]
    grams: list[float]

    def payload(self) -> dict:
        # relative milliseconds and 0.1 g keep the JSON small
        return {'t0_ns': self.t0_ns, 't1_ns': self.t1_ns,
                't_ms': [int((t - self.t0_ns) // 1_000_000) for t in self.stamps_ns],
                'grams': [None if math.isnan(g) else round(g, 1) for g in self.grams]}


class TraceCollector:
    """Waits until a request's trace window has been sampled, then cuts the traces."""

    def __init__(self, buffer: TraceBuffer, pad_s: float = 2.0, give_up_s: float = 10.0):
        self.buffer = buffer
        self.pad_ns = int(pad_s * NS_PER_S)
        self.give_up_ns = int(give_up_s * NS_PER_S)
        self.jobs: dict[str, TraceJob] = {}

    def request(self, request_id: str, event_id: str, plate_ids: Sequence[str],
                settled_ns: int) -> None:
        start = start_ns_of(event_id, settled_ns)
        self.jobs.setdefault(request_id, TraceJob(request_id, tuple(plate_ids),
                                                  start - self.pad_ns, settled_ns + self.pad_ns))

    def ready(self) -> list[Trace]:
        """Traces whose window is complete (or given up on); their jobs are done."""
        head = self.buffer.newest_ns
        out = []
        for rid, job in list(self.jobs.items()):
            if head < job.t1_ns:
                continue            # still filling; expire() gives up on it eventually
            for pid in job.plate_ids:
                t, w = self.buffer.cut(pid, job.t0_ns, job.t1_ns)
                out.append(Trace(rid, pid, job.t0_ns, job.t1_ns, t, w))
            del self.jobs[rid]
        return out

    def expire(self, now_head_ns: int | None = None) -> list[Trace]:
        """Give up on jobs the buffer cannot complete (restart, quiet controller)."""
        head = self.buffer.newest_ns if now_head_ns is None else now_head_ns
        out = []
        for rid, job in list(self.jobs.items()):
            if head >= job.t1_ns + self.give_up_ns or head == 0:
                for pid in job.plate_ids:
                    t, w = self.buffer.cut(pid, job.t0_ns, job.t1_ns)
                    out.append(Trace(rid, pid, job.t0_ns, job.t1_ns, t, w))
                del self.jobs[rid]
        return out


def trace_svg(traces: Iterable[dict], width: int = 640, height: int = 220,
              marks_ns: Sequence[tuple[int, str]] = ()) -> str:
    """An inline SVG plot of stored trace payloads (one polyline per plate).

    Plate names and mark labels are escaped: they come from messages and the database.
    """
    traces = [t for t in traces if t['payload'].get('t_ms')]
    colors = ('#1f77b4', '#d62728', '#2ca02c', '#9467bd')
    pad_l, pad_b, pad_t = 56, 28, 10
    if not traces:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="60">'
                '<text x="10" y="30">no weight samples were buffered for this event</text>'
                '</svg>')
    t0 = min(t['payload']['t0_ns'] for t in traces)
    t1 = max(t['payload']['t1_ns'] for t in traces)
    vals = [g for t in traces for g in t['payload']['grams'] if g is not None]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if hi - lo < 1.0:
        lo, hi = lo - 0.5, hi + 0.5
    span = max(1, t1 - t0)

    def x(t_ns: float) -> float:
        return pad_l + (t_ns - t0) / span * (width - pad_l - 10)

    def y(g: float) -> float:
        return pad_t + (hi - g) / (hi - lo) * (height - pad_t - pad_b)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'class="trace" role="img" aria-label="weight trace">',
             f'<rect x="{pad_l}" y="{pad_t}" width="{width - pad_l - 10}" '
             f'height="{height - pad_t - pad_b}" fill="#fafafa" stroke="#999"/>',
             f'<text x="4" y="{pad_t + 10}" font-size="11">{hi:.0f} g</text>',
             f'<text x="4" y="{height - pad_b}" font-size="11">{lo:.0f} g</text>',
             f'<text x="{pad_l}" y="{height - 6}" font-size="11">0 s</text>',
             f'<text x="{width - 60}" y="{height - 6}" font-size="11">'
             f'{span / NS_PER_S:.1f} s</text>']
    for t_ns, label in marks_ns:
        if t0 <= t_ns <= t1:
            parts.append(f'<line x1="{x(t_ns):.1f}" x2="{x(t_ns):.1f}" y1="{pad_t}" '
                         f'y2="{height - pad_b}" stroke="#888" stroke-dasharray="4 3"/>'
                         f'<text x="{x(t_ns) + 3:.1f}" y="{pad_t + 22}" font-size="10">'
                         f'{html.escape(str(label), quote=True)}</text>')
    for k, tr in enumerate(traces):
        p = tr['payload']
        pts = [f'{x(p["t0_ns"] + ms * 1_000_000):.1f},{y(g):.1f}'
               for ms, g in zip(p['t_ms'], p['grams']) if g is not None]
        col = colors[k % len(colors)]
        parts.append(f'<polyline fill="none" stroke="{col}" stroke-width="1.5" '
                     f'points="{" ".join(pts)}"/>')
        parts.append(f'<text x="{pad_l + 6 + 110 * k}" y="{height - pad_b - 6}" '
                     f'font-size="11" fill="{col}">{html.escape(str(tr["name"]), quote=True)}'
                     '</text>')
    parts.append('</svg>')
    return ''.join(parts)


# --- images -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraView:
    """What one camera sees: plate ids, optionally each plate's pixel box, the shelf line."""

    camera_id: str
    plates: dict[str, Box | None] = field(default_factory=dict)
    shelf_top_y: int | None = None     # pixel row of the highest shelf surface seen
    sees_all: bool = False             # no plate list given: assume it may see every plate

    def sees(self, plate_ids: Iterable[str]) -> bool:
        return self.sees_all or any(p in self.plates for p in plate_ids)


def cameras_from_description(doc: dict) -> list[CameraView]:
    """``cameras:`` of a store description (raw YAML mapping under ``store``), tolerant.

    Accepted per camera: ``id``, ``plates`` (a list of plate ids, or a mapping plate id ->
    ``[x, y, w, h]`` pixel box), optional ``shelf_top_y``. A camera without ``plates`` (only
    its calibration) is taken to see every plate, its frames kept whole. Unknown keys are
    ignored so this keeps working while the perception package grows the section.
    """
    out = []
    for cam in (doc or {}).get('cameras') or []:
        if not isinstance(cam, dict) or 'id' not in cam:
            continue
        plates = cam.get('plates') or cam.get('sees_plates') or {}
        if isinstance(plates, list):
            plates = {str(p): None for p in plates}
        boxes = {}
        for pid, box in dict(plates).items():
            boxes[str(pid)] = tuple(int(v) for v in box) if box and len(box) == 4 else None
        out.append(CameraView(str(cam['id']), boxes, cam.get('shelf_top_y'),
                              sees_all=not plates))
    return out


def camera_views(store, product_height_m: float = 0.25, margin_px: float = 0.0
                 ) -> list[CameraView]:
    """Which plates each calibrated camera of ``store`` sees, with the plate's pixel box.

    A plate is seen when its centre projects inside the image in front of the camera; its box
    bounds the projections of the plate's corners at the shelf surface and
    ``product_height_m`` above it (where products stand and hands reach), clipped to the image.
    ``shelf_top_y`` is the highest image row of any seen plate's surface: above it the image
    shows the shoppers rather than the shelves. Occlusion by other gondolas is not modelled: a
    box may show the gondola in front, which a reviewer can tell apart.
    """
    views = []
    for cam in getattr(store, 'cameras', ()):
        model = cam.model
        plates: dict[str, Box | None] = {}
        top_rows = []
        for plate in store.plates.values():
            cx, cy, cz = plate.center_store
            c, s = math.cos(plate.yaw_store), math.sin(plate.yaw_store)
            corners = []
            for dz in (0.0, product_height_m):
                for ex, ey in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                    lx, ly = ex * plate.size_x_m / 2, ey * plate.size_y_m / 2
                    corners.append((cx + lx * c - ly * s, cy + lx * s + ly * c, cz + dz))
            pts = np.array([(cx, cy, cz)] + corners, dtype=float)
            uv, depth = model.project(pts)
            if depth[0] <= 0 or not bool(model.in_image(uv[:1], margin_px)[0]):
                continue
            ok = depth[1:] > 0
            u, v = uv[1:][ok, 0], uv[1:][ok, 1]
            x0 = int(max(0, np.floor(u.min())))
            y0 = int(max(0, np.floor(v.min())))
            x1 = int(min(model.width, np.ceil(u.max())))
            y1 = int(min(model.height, np.ceil(v.max())))
            plates[plate.id] = (x0, y0, max(1, x1 - x0), max(1, y1 - y0))
            top_rows.append(float(np.nanmin(uv[1:5][:, 1])))
        shelf_top = int(max(0, min(top_rows))) if top_rows else None
        views.append(CameraView(cam.id, plates, shelf_top, sees_all=False))
    return views


class FrameBuffer:
    """Recent frames per camera: (stamp_ns, BGR image or its JPEG/PNG bytes), at most
    ``max_fps``, ``keep_s``. Compressed frames are kept compressed (about 1/20 of the memory)
    and decoded only when :meth:`around` hands them out for evidence."""

    def __init__(self, keep_s: float = 20.0, max_fps: float = 4.0):
        self.keep_ns = int(keep_s * NS_PER_S)
        self.min_dt_ns = int(NS_PER_S / max_fps) if max_fps > 0 else 0
        self.frames: dict[str, deque] = {}
        self.undecodable = 0               # compressed frames that did not decode

    def wants(self, camera_id: str, stamp_ns: int) -> bool:
        """Whether a frame at ``stamp_ns`` would be kept (check before decoding it)."""
        q = self.frames.get(camera_id)
        return not q or stamp_ns - q[-1][0] >= self.min_dt_ns

    def add(self, camera_id: str, stamp_ns: int, image: np.ndarray | bytes) -> bool:
        q = self.frames.setdefault(camera_id, deque())
        if not self.wants(camera_id, stamp_ns):
            return False
        q.append((int(stamp_ns), image))
        while q and q[0][0] < stamp_ns - self.keep_ns:
            q.popleft()
        return True

    def around(self, camera_id: str, t0_ns: int, t1_ns: int,
               max_frames: int = 6) -> list[tuple[int, np.ndarray]]:
        """Frames within [t0, t1], spread evenly, at most ``max_frames``, decoded; a
        compressed frame that does not decode is left out (and counted)."""
        sel = [f for f in self.frames.get(camera_id, ()) if t0_ns <= f[0] <= t1_ns]
        if len(sel) > max_frames:
            idx = np.linspace(0, len(sel) - 1, max_frames).round().astype(int)
            sel = [sel[i] for i in idx]
        out = []
        for stamp, image in sel:
            if not isinstance(image, np.ndarray):
                image = decode_image(image)
                if image is None:
                    self.undecodable += 1
                    continue
            out.append((stamp, image))
        return out


_FACE_CASCADE = None


def haar_faces(image: np.ndarray) -> list[Box]:
    """Frontal faces found by OpenCV's bundled Haar cascade (an empty list if unavailable)."""
    global _FACE_CASCADE
    import cv2
    if _FACE_CASCADE is None:
        # OpenCV 5 dropped the Haar cascades (no CascadeClassifier, no data files): then no
        # face detections, and anonymize() falls back to blurring above the shelf line
        path = getattr(getattr(cv2, 'data', None), 'haarcascades', '') + \
            'haarcascade_frontalface_default.xml'
        classifier = getattr(cv2, 'CascadeClassifier', None)
        _FACE_CASCADE = classifier(path) if classifier and pathlib.Path(path).is_file() else False
    if _FACE_CASCADE is False or _FACE_CASCADE.empty():
        return []
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    found = _FACE_CASCADE.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4,
                                           minSize=(24, 24))
    return [tuple(int(v) for v in f) for f in found]


def _blur_region(image: np.ndarray, box: Box) -> None:
    """Blur ``box`` of ``image`` in place (:func:`blur_roi`), clipped to the image."""
    h_img, w_img = image.shape[:2]
    x, y, w, h = box
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(w_img, x + w), min(h_img, y + h)
    if x1 > x0 and y1 > y0:
        blur_roi(image[y0:y1, x0:x1])


def blur_roi(roi: np.ndarray) -> None:
    """Pixelate ``roi`` (a view of an image: changed in place) to 12 px cells, blur the cells
    over a third of the region, scale back up: irreversible, and no detail survives.

    The blur runs on the cells, not on the full-size region: the same blur radius at 1/144 of
    the pixels (a 640 x 240 band above the shelf line took 85 ms with a 213 px kernel, in a
    burst of 16 frames per review request that stalled the detector on the same 2 cores;
    bench_evidence)."""
    import cv2
    h, w = roi.shape[:2]
    small = cv2.resize(roi, (max(1, w // BLUR_CELL_PX), max(1, h // BLUR_CELL_PX)),
                       interpolation=cv2.INTER_AREA)
    k = max(3, (max(small.shape[:2]) // 3) | 1)
    small = cv2.GaussianBlur(small, (k, k), 0)
    roi[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def anonymize(image: np.ndarray, shopper_boxes: Sequence[Box] = (),
              plate_box: Box | None = None, shelf_top_y: int | None = None,
              head_share: float = 0.25, detect_faces: bool = True,
              track_boxes: Sequence[Box] = ()) -> tuple[np.ndarray, dict]:
    """A copy of ``image`` with faces blurred, and what was blurred.

    Blurs the top ``head_share`` of each shopper box and every Haar frontal face. With no
    detections at all, blurs everything above the shelf line (``shelf_top_y``, default the
    middle of the image) except the plate's box, so an undetected head is never shown.
    ``track_boxes`` (shoppers projected from the tracker, less exact than detections) have the
    top third of their box blurred as well, without replacing that fallback.
    """
    out = image.copy()
    faces = haar_faces(out) if detect_faces else []
    regions: list[Box] = []
    for x, y, w, h in shopper_boxes:
        regions.append((x, y, w, max(1, int(round(h * head_share)))))
    for x, y, w, h in track_boxes:
        regions.append((x, y, w, max(1, int(round(h / 3)))))
    regions.extend(faces)
    for box in regions:
        _blur_region(out, box)
    fallback = False
    if not shopper_boxes and not faces:
        fallback = True
        h_img, w_img = out.shape[:2]
        line = h_img // 2 if shelf_top_y is None else int(np.clip(shelf_top_y, 0, h_img))
        keep = None
        if plate_box is not None:
            keep = out[max(0, plate_box[1]):plate_box[1] + plate_box[3],
                       max(0, plate_box[0]):plate_box[0] + plate_box[2]].copy()
        _blur_region(out, (0, 0, w_img, line))
        if keep is not None and keep.size:
            out[max(0, plate_box[1]):max(0, plate_box[1]) + keep.shape[0],
                max(0, plate_box[0]):max(0, plate_box[0]) + keep.shape[1]] = keep
    return out, {'shopper_boxes': len(shopper_boxes), 'faces': len(faces),
                 'fallback_above_shelf': fallback}


def crop_for_plate(image: np.ndarray, plate_box: Box | None, margin: float = 0.6,
                   min_size: int = 160) -> tuple[np.ndarray, Box | None]:
    """The plate's region with a margin (hands and products), or the whole frame, and the
    plate's box inside the crop."""
    if plate_box is None:
        return image, None
    h_img, w_img = image.shape[:2]
    x, y, w, h = plate_box
    mx, my = int(w * margin) + min_size // 4, int(h * margin) + min_size // 4
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(w_img, x + w + mx), min(h_img, y + h + my)
    return image[y0:y1, x0:x1], (x - x0, y - y0, w, h)


def image_from_msg_fields(encoding: str, height: int, width: int, step: int,
                          data: bytes) -> np.ndarray | None:
    """A BGR uint8 array from sensor_msgs/Image fields (bgr8, rgb8, mono8); None otherwise."""
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if encoding in ('bgr8', 'rgb8'):
        if step < width * 3 or buf.size < step * height:
            return None
        img = buf[:step * height].reshape(height, step)[:, :width * 3].reshape(height, width, 3)
        return img[:, :, ::-1].copy() if encoding == 'rgb8' else img.copy()
    if encoding == 'mono8':
        if buf.size < step * height:
            return None
        g = buf[:step * height].reshape(height, step)[:, :width]
        return np.repeat(g[:, :, None], 3, axis=2)
    return None


class TrackBuffer:
    """Recent shopper floor positions: (stamp_ns, {shopper_id: (x_m, y_m)}) per tracker cycle,
    ``keep_s`` seconds of them; only tracks bound to an account are kept."""

    def __init__(self, keep_s: float = 30.0):
        self.keep_ns = int(keep_s * NS_PER_S)
        self.snapshots: deque = deque()

    def add(self, stamp_ns: int, positions: dict[str, tuple[float, float]]) -> None:
        ok = {str(k): (float(x), float(y)) for k, (x, y) in positions.items()
              if k and math.isfinite(x) and math.isfinite(y)}
        if self.snapshots and stamp_ns < self.snapshots[-1][0]:
            return                  # out of order: drop (boxes are for display)
        self.snapshots.append((int(stamp_ns), ok))
        while self.snapshots and self.snapshots[0][0] < stamp_ns - self.keep_ns:
            self.snapshots.popleft()

    def at(self, stamp_ns: int, max_gap_s: float = 0.5) -> dict[str, tuple[float, float]]:
        """The snapshot nearest ``stamp_ns`` within ``max_gap_s``; empty when none is."""
        if not self.snapshots:
            return {}
        stamps = [t for t, _ in self.snapshots]
        i = bisect.bisect_left(stamps, stamp_ns)
        near = [j for j in (i - 1, i) if 0 <= j < len(stamps)]
        j = min(near, key=lambda k: abs(stamps[k] - stamp_ns))
        if abs(stamps[j] - stamp_ns) > max_gap_s * NS_PER_S:
            return {}
        return dict(self.snapshots[j][1])


def person_box(model, x_m: float, y_m: float, height_m: float = 1.75,
               radius_m: float = 0.3) -> Box | None:
    """The pixel box of a shopper standing at floor point (x, y) seen by camera ``model``
    (a ``CameraModel``), clipped to the image; None when the shopper is behind the camera or
    out of the picture."""
    pts = np.array([(x_m + dx, y_m + dy, z) for z in (0.0, height_m)
                    for dx in (-radius_m, radius_m) for dy in (-radius_m, radius_m)], float)
    uv, depth = model.project(pts)
    ok = (depth > 0) & np.isfinite(uv).all(axis=1)
    if ok.sum() < 2:
        return None
    u, v = uv[ok, 0], uv[ok, 1]
    x0, y0 = max(0, int(np.floor(u.min()))), max(0, int(np.floor(v.min())))
    x1, y1 = min(model.width, int(np.ceil(u.max()))), min(model.height, int(np.ceil(v.max())))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def box_in_crop(box: Box, crop_origin: tuple[int, int], crop_size: tuple[int, int]
                ) -> Box | None:
    """``box`` (image pixels) in a crop whose top-left is ``crop_origin`` and size
    ``(w, h)``, clipped to it; None when it does not overlap the crop."""
    x, y, w, h = box
    ox, oy = crop_origin
    cw, ch = crop_size
    x0, y0 = max(0, x - ox), max(0, y - oy)
    x1, y1 = min(cw, x - ox + w), min(ch, y - oy + h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


@dataclass
class ImageJob:
    request_id: str
    cameras: tuple[CameraView, ...]
    plate_ids: tuple[str, ...]
    t0_ns: int
    t1_ns: int
    shopper_ids: tuple[str, ...] = ()


def evidence_folder_name(request_id: str) -> str:
    """A file name for a request's images: safe characters only (a request id comes from a
    message: ``..`` or ``/`` must not leave the evidence folder), made unique by a hash."""
    safe = re.sub(r'[^A-Za-z0-9_.-]', '_', request_id)[:80].strip('.') or '_'
    return f'{safe}_{hashlib.sha256(request_id.encode("utf-8", "replace")).hexdigest()[:12]}'


class ImageCollector:
    """Frames of the cameras that see a request's plates, anonymized and written as JPEG.

    ``ready()`` returns ``(request_id, name, stamp_ns, path, metadata)`` per written crop once
    the frames cover the window (or ``give_up_s`` after its end by the newest frame). With no
    cameras configured, ``request`` does nothing and nothing is ever returned.
    """

    def __init__(self, frames: FrameBuffer, cameras: Sequence[CameraView], out_dir,
                 pad_s: float = 1.0, give_up_s: float = 5.0, max_frames: int = 4,
                 detections=None, tracks: TrackBuffer | None = None, models=None):
        self.frames = frames
        self.cameras = list(cameras)
        self.out_dir = out_dir
        self.pad_ns = int(pad_s * NS_PER_S)
        self.give_up_ns = int(give_up_s * NS_PER_S)
        self.max_frames = max_frames
        # hook: detections(camera_id, stamp_ns) -> shopper boxes (store_perception, later)
        self.detections = detections or (lambda camera_id, stamp_ns: [])
        self.tracks = tracks                  # shopper floor positions (TrackBuffer) or None
        self.models = dict(models or {})      # camera_id -> CameraModel, for the track boxes
        self.jobs: dict[str, ImageJob] = {}

    def request(self, request_id: str, event_id: str, plate_ids: Sequence[str],
                settled_ns: int, shopper_ids: Sequence[str] = ()) -> None:
        cams = tuple(c for c in self.cameras if c.sees(plate_ids))
        if not cams:
            return
        start = start_ns_of(event_id, settled_ns)
        self.jobs.setdefault(request_id, ImageJob(request_id, cams, tuple(plate_ids),
                                                  start - self.pad_ns, settled_ns + self.pad_ns,
                                                  tuple(shopper_ids)))

    def tracked_boxes(self, camera_id: str, stamp_ns: int) -> list[tuple[str, Box]]:
        """(shopper id, pixel box in the whole frame) of each tracked shopper in view."""
        model = self.models.get(camera_id)
        if self.tracks is None or model is None:
            return []
        out = []
        for sid, (x, y) in sorted(self.tracks.at(stamp_ns).items()):
            box = person_box(model, x, y)
            if box:
                out.append((sid, box))
        return out

    def shopper_boxes(self, camera_id: str, stamp_ns: int, shopper_ids: Sequence[str],
                      crop_origin: tuple[int, int], crop_size: tuple[int, int]) -> list[dict]:
        """The tracked shoppers' boxes in a crop of ``camera_id``'s frame at ``stamp_ns``:
        ``[{'shopper_id', 'box', 'candidate'}]`` (box in crop pixels), candidates first."""
        out = []
        for sid, box in self.tracked_boxes(camera_id, stamp_ns):
            box = box_in_crop(box, crop_origin, crop_size)
            if box:
                out.append({'shopper_id': sid, 'box': list(box),
                            'candidate': sid in shopper_ids})
        return sorted(out, key=lambda b: not b['candidate'])

    def ready(self, sensor_now_ns: int = 0) -> list[tuple[str, str, int, str, dict]]:
        """Finished crops; a job is done when its cameras' frames pass the window end, or when
        ``sensor_now_ns`` (e.g. the newest weight sample) is ``give_up_s`` past it."""
        out = []
        for rid, job in list(self.jobs.items()):
            newest = max((q[-1][0] for c in job.cameras
                          for q in [self.frames.frames.get(c.camera_id)] if q), default=0)
            if newest < job.t1_ns and sensor_now_ns < job.t1_ns + self.give_up_ns:
                continue
            folder = pathlib.Path(self.out_dir) / evidence_folder_name(rid)
            for cam in job.cameras:
                box = next((cam.plates.get(p) for p in job.plate_ids if cam.plates.get(p)),
                           None)
                for stamp, img in self.frames.around(cam.camera_id, job.t0_ns, job.t1_ns,
                                                     self.max_frames):
                    tracked = [b for _, b in self.tracked_boxes(cam.camera_id, stamp)]
                    clean, meta = anonymize(img, self.detections(cam.camera_id, stamp), box,
                                            cam.shelf_top_y, track_boxes=tracked)
                    crop, plate_in_crop = crop_for_plate(clean, box)
                    origin = (0, 0) if box is None or plate_in_crop is None else (
                        box[0] - plate_in_crop[0], box[1] - plate_in_crop[1])
                    folder.mkdir(parents=True, exist_ok=True)
                    path = folder / f'{cam.camera_id}_{stamp}.jpg'
                    path.write_bytes(encode_jpeg(crop))
                    meta.update({'camera_id': cam.camera_id, 'plate_box': box,
                                 'plate_box_in_crop': plate_in_crop,
                                 'width': int(crop.shape[1]), 'height': int(crop.shape[0]),
                                 'shoppers': self.shopper_boxes(
                                     cam.camera_id, stamp, job.shopper_ids, origin,
                                     (int(crop.shape[1]), int(crop.shape[0])))})
                    out.append((rid, f'{cam.camera_id}@{stamp}', stamp, str(path), meta))
            del self.jobs[rid]
        return out
