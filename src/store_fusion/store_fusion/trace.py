"""A trace of the tracker node's steps (JSON lines) and its exact offline replay.

Each line is one step: ``stamp_ns``, ``arrival_ns`` (the node's clock when it stepped), the gate
scans applied before it (``gates``: [stamp ns, kind, shopper]), the detections per camera
(``dets``: {camera: [[cls, score, cx, cy, w, h, sku, sku_score, rgb or null, age_s]]}; age_s: a
shopper box carried over from an earlier image, absent in traces written before it existed)
and the tracks it
returned (``tracks``: [[id, shopper, x, y, state]]). :func:`replay` steps a fresh
:class:`ShopperTracker` on the same inputs, so a live run's binding or association can be
examined and a fix tested on the frames the live graph saw. Never imports rclpy.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import replace

from store_fusion.geometry import Detection2D


class StepTrace:
    """Appends one JSON line per tracker step to ``path`` (flushed: a killed node keeps it)."""

    def __init__(self, path: str | pathlib.Path):
        self._f = open(path, 'a', encoding='utf-8')

    def write(self, stamp_ns: int, dets: dict, gates: list, tracks: list, arrival_ns: int):
        rec = {'stamp_ns': int(stamp_ns), 'arrival_ns': int(arrival_ns),
               'gates': [[int(g[0]), g[1], g[2]] for g in gates],
               'dets': {c: [[d.cls, d.score, d.cx, d.cy, d.w, d.h, d.sku, d.sku_score,
                             list(d.color) if d.color is not None else None, d.age_s]
                            for d in ds]
                        for c, ds in dets.items()},
               'tracks': [[t.track_id, t.shopper_id, round(float(t.x[0]), 3),
                           round(float(t.x[1]), 3), int(t.state)] for t in tracks]}
        self._f.write(json.dumps(rec) + '\n')
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_trace(path: str | pathlib.Path) -> list[dict]:
    """The trace's steps, detections as :class:`Detection2D` (a malformed line is skipped).
    A step whose detections have no age (a trace written before ``age_s``) has
    ``ages_recorded`` False: :func:`infer_carried_ages` fills them in."""
    out = []
    for line in pathlib.Path(path).read_text(encoding='utf-8').splitlines():
        try:
            rec = json.loads(line)
            rec['ages_recorded'] = all(len(d) > 9 for ds in rec['dets'].values() for d in ds)
            rec['dets'] = {c: [Detection2D(d[0], float(d[1]), float(d[2]), float(d[3]),
                                           float(d[4]), float(d[5]), d[6], float(d[7]),
                                           tuple(d[8]) if d[8] is not None else None,
                                           float(d[9]) if len(d) > 9 else 0.0)
                               for d in ds] for c, ds in rec['dets'].items()}
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        out.append(rec)
    return out


def infer_carried_ages(steps: list[dict]) -> int:
    """Ages of carried-over shopper boxes in steps recorded without them (``ages_recorded``
    False), in place; returns how many camera frames got one. The detector measures the torso
    colour of every shopper box it finds on the image itself (a band under 2 x 2 pixels
    aside) and of none it carries over, so a camera frame whose shopper boxes all lack a
    colour carried them from that camera's last frame with colours."""
    last_full: dict[str, int] = {}
    n = 0
    for rec in steps:
        for cam, ds in rec['dets'].items():
            boxes = [d for d in ds if d.cls == 'shopper']
            if not boxes:
                continue
            if any(d.color is not None for d in boxes):
                last_full[cam] = int(rec['stamp_ns'])
            elif not rec.get('ages_recorded', True) and cam in last_full:
                age_s = (int(rec['stamp_ns']) - last_full[cam]) / 1e9
                rec['dets'][cam] = [replace(d, age_s=age_s) if d.cls == 'shopper' else d
                                    for d in ds]
                n += 1
    return n


def replay(tracker, steps: list[dict], on_step=None) -> None:
    """Steps ``tracker`` (a fresh :class:`ShopperTracker`) on a trace's steps: each step's gate
    scans first, then its detections. ``on_step(rec, tracks)`` sees every step's result."""
    for rec in steps:
        for stamp, kind, sid in rec['gates']:
            tracker.on_gate(int(stamp), kind, sid)
        tracks = tracker.step(int(rec['stamp_ns']), rec['dets'])
        if on_step is not None:
            on_step(rec, tracks)
