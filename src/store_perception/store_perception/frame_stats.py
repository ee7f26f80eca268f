"""Per-camera frame accounting of the detector: every frame that comes in is processed (full or
shoppers only), skipped by the schedule, or dropped (replaced by a newer frame of its camera
before the detector got to it). Nothing is lost silently.

:class:`FrameStats` keeps totals since start and a window (since the last report) for the
level: WARN when more than ``warn_drop_share`` of the window's frames that came in while the
camera was active (a plate it sees shows activity: ``scheduler``) were dropped. Latency is image
stamp to detections ready [ms], p50 / p95 over the window.

Never imports rclpy; the node turns :meth:`FrameStats.report` into a DiagnosticStatus.
"""
from __future__ import annotations

from dataclasses import dataclass, field

COUNTERS = ('frames_in', 'processed_full', 'processed_shoppers', 'skipped_by_schedule',
            'dropped', 'active_in', 'active_dropped', 'failed', 'full_reused_shoppers')


def percentile(values, q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of a sequence; None when empty."""
    v = sorted(values)
    if not v:
        return None
    return float(v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))])


@dataclass
class _Counts:
    n: dict = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    latency_ms: list = field(default_factory=list)


class FrameStats:
    """Frame counters of one camera (totals and the window since the last report)."""

    def __init__(self, camera_id: str, warn_drop_share: float = 0.05, max_latencies: int = 5000):
        self.camera_id = camera_id
        self.warn_drop_share = float(warn_drop_share)
        self.max_latencies = int(max_latencies)
        self.total = _Counts()
        self.window = _Counts()

    def _add(self, key: str, active: bool = False) -> None:
        for c in (self.total, self.window):
            c.n[key] += 1
            if active and key in ('frames_in', 'dropped'):
                c.n['active_' + ('in' if key == 'frames_in' else 'dropped')] += 1

    def frame_in(self, active: bool) -> None:
        """A frame arrived (``active``: its camera saw plate activity at its stamp)."""
        self._add('frames_in', active)

    def skipped(self) -> None:
        """The schedule left the frame out (not due at its camera's rate)."""
        self._add('skipped_by_schedule')

    def dropped(self, active: bool) -> None:
        """A queued frame was replaced by a newer one before it was processed."""
        self._add('dropped', active)

    def failed(self) -> None:
        """Processing the frame raised (logged by the node)."""
        self._add('failed')

    def processed(self, full: bool, latency_ms: float, reused_shoppers: bool = False) -> None:
        """Detections of the frame were published ``latency_ms`` after its stamp
        (``reused_shoppers``: a full frame that cropped around an earlier frame's shopper
        proposals instead of running the full-frame stage; also counted as full)."""
        self._add('processed_full' if full else 'processed_shoppers')
        if full and reused_shoppers:
            self._add('full_reused_shoppers')
        for c in (self.total, self.window):
            c.latency_ms.append(float(latency_ms))
            if len(c.latency_ms) > self.max_latencies:
                del c.latency_ms[:len(c.latency_ms) - self.max_latencies]

    def report(self, reset_window: bool = True) -> tuple[str, str, dict]:
        """(level 'ok' | 'warn', message, values) for the window, totals included; starts a new
        window."""
        w, t = self.window, self.total
        share = w.n['active_dropped'] / w.n['active_in'] if w.n['active_in'] else 0.0
        p50, p95 = percentile(w.latency_ms, 0.5), percentile(w.latency_ms, 0.95)
        values = {f'window_{k}': v for k, v in w.n.items()}
        values.update({f'total_{k}': v for k, v in t.n.items()})
        values['window_active_drop_share'] = share
        values['window_latency_p50_ms'] = p50 if p50 is not None else float('nan')
        values['window_latency_p95_ms'] = p95 if p95 is not None else float('nan')
        level = 'warn' if share > self.warn_drop_share else 'ok'
        lat = f'latency p50 {p50:.0f} ms, p95 {p95:.0f} ms' if p50 is not None else 'no frames'
        message = (f'{w.n["frames_in"]} in, {w.n["processed_full"]} full + '
                   f'{w.n["processed_shoppers"]} shoppers, {w.n["skipped_by_schedule"]} skipped, '
                   f'{w.n["dropped"]} dropped ({share:.0%} of {w.n["active_in"]} active); {lat}')
        if reset_window:
            self.window = _Counts()
        return level, message, values


def run_summary(stats: dict[str, FrameStats]) -> dict:
    """The run's totals, per camera and overall (the detector's line at stop, and the JSON the
    live benchmark reads): the counters, the share of frames dropped among those that came in
    while their camera was active, latency p50 / p95 [ms] (over the last ``max_latencies`` of
    each camera)."""
    def block(counts: dict, lat: list) -> dict:
        out = dict(counts)
        out['active_drop_share'] = (counts['active_dropped'] / counts['active_in']
                                    if counts['active_in'] else None)
        out['latency_p50_ms'], out['latency_p95_ms'] = percentile(lat, 0.5), percentile(lat, 0.95)
        return out
    cams = {c: block(s.total.n, s.total.latency_ms) for c, s in sorted(stats.items())}
    overall = dict.fromkeys(COUNTERS, 0)
    lat: list = []
    for s in stats.values():
        for k in COUNTERS:
            overall[k] += s.total.n[k]
        lat.extend(s.total.latency_ms)
    return {'cameras': cams, 'overall': block(overall, lat)}


def summary_line(summary: dict) -> str:
    """One line of a :func:`run_summary`: overall, then per camera."""
    def text(b: dict) -> str:
        share = ('-' if b['active_drop_share'] is None else f'{b["active_drop_share"]:.1%}')
        lat = ('no frames' if b['latency_p50_ms'] is None else
               f'p50 {b["latency_p50_ms"]:.0f} ms p95 {b["latency_p95_ms"]:.0f} ms')
        return (f'{b["frames_in"]} in, {b["processed_full"]} full ('
                f'{b["full_reused_shoppers"]} on earlier shoppers) + '
                f'{b["processed_shoppers"]} shoppers, {b["skipped_by_schedule"]} skipped, '
                f'{b["dropped"]} dropped '
                f'({share} of {b["active_in"]} active), {b["failed"]} failed, {lat}')
    cams = '; '.join(f'{c}: {text(b)}' for c, b in summary['cameras'].items())
    return f'run totals: {text(summary["overall"])} | {cams}'


def _write_whole(path, text: str) -> None:
    """``text`` to ``path`` via a temporary file that is then renamed: a reader never sees half
    of it. OSError when it cannot be written."""
    import os
    import pathlib
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(text)
    os.replace(tmp, path)


def write_summary(path, summary: dict) -> None:
    """A :func:`run_summary` as JSON at ``path`` (written whole: a temporary file, then renamed);
    OSError when it cannot be written."""
    import json
    _write_whole(path, json.dumps(summary, indent=1) + '\n')


def write_frame_log(path, records) -> None:
    """Frame outcomes (camera, stamp_ns, outcome) as JSON lines at ``path`` (written whole);
    OSError when it cannot be written."""
    import json
    _write_whole(path, ''.join(json.dumps({'camera': c, 'stamp_ns': t, 'outcome': o}) + '\n'
                               for c, t, o in records))
