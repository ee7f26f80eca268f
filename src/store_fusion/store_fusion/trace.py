"""A trace of the tracker node's steps (JSON lines) and its exact offline replay.

Each line is one step: ``stamp_ns``, ``arrival_ns`` (the node's clock when it stepped), the gate
scans applied before it (``gates``: [stamp ns, kind, shopper]), the detections per camera
(``dets``: {camera: [[cls, score, cx, cy, w, h, sku, sku_score, rgb or null]]}) and the tracks it
returned (``tracks``: [[id, shopper, x, y, state]]). :func:`replay` steps a fresh
:class:`ShopperTracker` on the same inputs, so a live run's binding or association can be
examined and a fix tested on the frames the live graph saw. Never imports rclpy.
"""
from __future__ import annotations

import json
import pathlib

from store_fusion.geometry import Detection2D


class StepTrace:
    """Appends one JSON line per tracker step to ``path`` (flushed: a killed node keeps it)."""

    def __init__(self, path: str | pathlib.Path):
        self._f = open(path, 'a', encoding='utf-8')

    def write(self, stamp_ns: int, dets: dict, gates: list, tracks: list, arrival_ns: int):
        rec = {'stamp_ns': int(stamp_ns), 'arrival_ns': int(arrival_ns),
               'gates': [[int(g[0]), g[1], g[2]] for g in gates],
               'dets': {c: [[d.cls, d.score, d.cx, d.cy, d.w, d.h, d.sku, d.sku_score,
                             list(d.color) if d.color is not None else None] for d in ds]
                        for c, ds in dets.items()},
               'tracks': [[t.track_id, t.shopper_id, round(float(t.x[0]), 3),
                           round(float(t.x[1]), 3), int(t.state)] for t in tracks]}
        self._f.write(json.dumps(rec) + '\n')
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_trace(path: str | pathlib.Path) -> list[dict]:
    """The trace's steps, detections as :class:`Detection2D` (a malformed line is skipped)."""
    out = []
    for line in pathlib.Path(path).read_text(encoding='utf-8').splitlines():
        try:
            rec = json.loads(line)
            rec['dets'] = {c: [Detection2D(d[0], float(d[1]), float(d[2]), float(d[3]),
                                           float(d[4]), float(d[5]), d[6], float(d[7]),
                                           tuple(d[8]) if d[8] is not None else None)
                               for d in ds] for c, ds in rec['dets'].items()}
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        out.append(rec)
    return out


def replay(tracker, steps: list[dict], on_step=None) -> None:
    """Steps ``tracker`` (a fresh :class:`ShopperTracker`) on a trace's steps: each step's gate
    scans first, then its detections. ``on_step(rec, tracks)`` sees every step's result."""
    for rec in steps:
        for stamp, kind, sid in rec['gates']:
            tracker.on_gate(int(stamp), kind, sid)
        tracks = tracker.step(int(rec['stamp_ns']), rec['dets'])
        if on_step is not None:
            on_step(rec, tracks)
