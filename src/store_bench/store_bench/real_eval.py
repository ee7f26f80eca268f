"""Person detection on labelled real frames: recall, precision, wrist error (issue 18).

Labels (``tests/data/real/vtest_labels.json``, see the README there): per frame, people with a
box [x0, y0, x1, y1] in pixels of the video, flags ``occluded`` (box = the estimated whole body)
and ``cut_by_border``, and ``wrists``: None = not labelled, [] = looked, none clearly visible,
else [[x, y], ...] (side not labelled).

Matching: detections of class shopper scoring at least ``score_min``, greedily in descending
score, to the unclaimed label of highest IoU >= ``min_iou`` (0.5). A person whose box is less
than ``min_height_px`` high (40: far behind the scene, smaller than any shopper a store camera
sees) is an *ignore* region: a detection on it is neither a hit nor a false positive, and it is
not counted in recall. Wrist error: for each labelled wrist of a matched person, the distance to
the nearer of the detection's two wrist keypoints [px], and as a share of the label box's
height. Only benchmarks use it (``bench_real_footage``, ``track_real_footage``), hence here and
not in store_perception. Never imports rclpy.
"""
from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass, field

import numpy as np

from store_perception.detection import iou

from store_bench.paths import repo_root

LABELS = pathlib.Path('tests') / 'data' / 'real' / 'vtest_labels.json'    # in the checkout
MIN_HEIGHT_PX = 40.0


@dataclass
class Prediction:
    """One predicted person: box [px], score, and optionally its two wrists [px]."""
    box: tuple
    score: float
    wrists: list = field(default_factory=list)      # [(x, y), ...] (left, right)


@dataclass
class FrameLabels:
    index: int
    people: list                                      # dicts as in the labels file


def load_labels(path: str | pathlib.Path | None = None) -> tuple[dict, list[FrameLabels]]:
    """(header fields, frames) of a labels file (default: :data:`LABELS` in the checkout);
    raises ValueError naming what is malformed."""
    if path is None:
        path = repo_root() / LABELS
    d = json.loads(pathlib.Path(path).read_text())
    frames = []
    for f in d.get('frames', []):
        people = []
        for k, p in enumerate(f.get('people', [])):
            box = p.get('box')
            if not (isinstance(box, list) and len(box) == 4 and box[2] > box[0] and
                    box[3] > box[1]):
                raise ValueError(f'{path}: frame {f.get("index")} person {k}: bad box {box!r}')
            people.append(p)
        frames.append(FrameLabels(int(f['index']), people))
    header = {k: v for k, v in d.items() if k != 'frames'}
    return header, frames


@dataclass
class Counts:
    hits: int = 0                # labelled people (counted) matched by a detection
    people: int = 0              # labelled people counted in recall
    detections: int = 0          # detections at score >= score_min, not on an ignore region
    false_pos: int = 0
    wrist_err_px: list = field(default_factory=list)
    wrist_err_rel: list = field(default_factory=list)   # share of the label box height
    wrists_labelled: int = 0     # labelled wrists of matched people
    hits_visible: int = 0        # the same for people neither occluded nor cut by the border
    people_visible: int = 0

    @property
    def recall(self) -> float:
        return self.hits / self.people if self.people else float('nan')

    @property
    def precision(self) -> float:
        return (self.detections - self.false_pos) / self.detections if self.detections \
            else float('nan')

    @property
    def recall_visible(self) -> float:
        return self.hits_visible / self.people_visible if self.people_visible else float('nan')

    def add(self, other: Counts) -> None:
        for k in ('hits', 'people', 'detections', 'false_pos', 'wrists_labelled',
                  'hits_visible', 'people_visible'):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.wrist_err_px += other.wrist_err_px
        self.wrist_err_rel += other.wrist_err_rel


def match_frame(labels: list[dict], preds: list[Prediction], score_min: float = 0.3,
                min_iou: float = 0.5, min_height_px: float = MIN_HEIGHT_PX) -> Counts:
    """Counts of one frame (module docstring)."""
    c = Counts()
    preds = sorted([p for p in preds if p.score >= score_min], key=lambda p: -p.score)
    counted = [(p['box'][3] - p['box'][1]) >= min_height_px for p in labels]
    claimed = [False] * len(labels)
    for p in preds:
        best, bi = 0.0, -1
        for i, lab in enumerate(labels):
            if not claimed[i]:
                v = iou(p.box, lab['box'])
                if v > best:
                    best, bi = v, i
        if best < min_iou:
            # on an (already claimed or not) ignore region: neither hit nor false positive
            if any(not counted[i] and iou(p.box, lab['box']) >= min_iou
                   for i, lab in enumerate(labels)):
                continue
            c.detections += 1
            c.false_pos += 1
            continue
        claimed[bi] = True
        if not counted[bi]:
            continue
        c.detections += 1
        c.hits += 1
        lab = labels[bi]
        if not lab.get('occluded') and not lab.get('cut_by_border'):
            c.hits_visible += 1
        height = lab['box'][3] - lab['box'][1]
        for w in lab.get('wrists') or []:
            c.wrists_labelled += 1
            if p.wrists:
                e = min(math.hypot(w[0] - q[0], w[1] - q[1]) for q in p.wrists)
                c.wrist_err_px.append(e)
                c.wrist_err_rel.append(e / height)
    for i, lab in enumerate(labels):
        if counted[i]:
            c.people += 1
            if not lab.get('occluded') and not lab.get('cut_by_border'):
                c.people_visible += 1
    return c


def summary(c: Counts) -> dict:
    """Figures of a total: recall, precision, recall of fully visible people, wrist error."""
    e = np.array(c.wrist_err_px, float)
    r = np.array(c.wrist_err_rel, float)
    return {'recall': c.recall, 'precision': c.precision, 'recall_visible': c.recall_visible,
            'people': c.people, 'hits': c.hits, 'detections': c.detections,
            'false_pos': c.false_pos,
            'wrists_labelled': c.wrists_labelled, 'wrists_measured': int(len(e)),
            'wrist_median_px': float(np.median(e)) if len(e) else float('nan'),
            'wrist_mean_px': float(e.mean()) if len(e) else float('nan'),
            'wrist_within_10pct': float((r <= 0.10).mean()) if len(r) else float('nan')}
