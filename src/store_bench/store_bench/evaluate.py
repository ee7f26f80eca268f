"""End-to-end evaluation of a detector on a dataset with truth (``make_dataset``'s truth/*.jsonl).

For whatever :class:`~store_perception.detection.Detector` gives on the full images (one stage
or two), against the full-image truth boxes:

* per class AP50 and AP50-95: detections matched to truth greedily in descending score per IoU
  threshold 0.50:0.05:0.95 (as ultralytics' validator does), AP from ultralytics'
  ``ap_per_class`` (COCO-style 101-point interpolated area under the precision-recall curve);
  run the detector with a low ``conf`` (0.001) for it;
* at an operating score (``score_min``, 0.25 by default): recall (IoU >= 0.5), false positives
  per image, box centre and size errors of the matched boxes, SKU-by-colour accuracy of matched
  product boxes -- the figures of ``store_bench.simcam.DetectorStats`` (:func:`stats_dict`) --
  and which SKU the matched product boxes were named, per true SKU (``sku_confusion``, the
  counts of ``store_fusion.sku_confusion.SkuConfusion``);
* per true SKU of the products in hand (``products_by_sku``): truth boxes, boxes found at the
  operating score, and found boxes named that SKU.

Only benchmarks use it (``bench_detector``, ``bench_real_footage``; the detector node
and training do not), hence here and not in store_perception. Never imports rclpy.
"""
from __future__ import annotations

import json
import math
import pathlib

import numpy as np

from store_perception.detection import CLASS_NAMES, iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def load_truth(dataset_dir: str | pathlib.Path, split: str = 'test') -> list[dict]:
    """Truth records of a split: {'image': absolute path, 'boxes': [{cls, bbox, sku?...}]}."""
    root = pathlib.Path(dataset_dir)
    out = []
    for f in sorted((root / 'truth').glob(f'{split}*.jsonl')):
        for line in f.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                rec['image'] = str(root / rec['image'])
                out.append(rec)
    return out


def _match(dets, truth) -> tuple[np.ndarray, list]:
    """(correct (D, 10) per IoU threshold, [truth index or -1 at IoU 0.5] per detection);
    detections in descending score, classes must agree."""
    correct = np.zeros((len(dets), len(IOU_THRESHOLDS)), bool)
    claimed = np.zeros((len(truth), len(IOU_THRESHOLDS)), bool)
    at50 = []
    for j, d in enumerate(dets):
        ious = np.array([iou((d.x0, d.y0, d.x1, d.y1), t['bbox']) if t['cls'] == d.class_name
                         else 0.0 for t in truth])
        best = -1
        for k, thr in enumerate(IOU_THRESHOLDS):
            if not len(ious):
                break
            avail = np.where(claimed[:, k], 0.0, ious)
            i = int(np.argmax(avail))
            if avail[i] >= thr:
                correct[j, k] = True
                claimed[i, k] = True
                if k == 0:
                    best = i
        at50.append(best)
    return correct, at50


def evaluate(records: list[dict], dets_per_image: list[list], score_min: float = 0.25) -> dict:
    """Per-class figures (module docstring) of detections on the records' images."""
    from store_perception.yolo_offline import ultralytics_offline
    ultralytics_offline()
    from ultralytics.utils.metrics import ap_per_class
    tps, confs, pcls, tcls = [], [], [], []
    per = {c: {'truth': 0, 'hit': 0, 'fp': 0, 'dc': [], 'ds': [], 'sku_right': 0}
           for c in CLASS_NAMES}
    confusion: dict[str, dict[str, int]] = {}     # true SKU -> {named SKU: matched boxes}
    by_sku: dict[str, dict[str, int]] = {}        # true SKU -> truth, found, named right
    for rec, dets in zip(records, dets_per_image):
        dets = sorted(dets, key=lambda d: -d.score)
        truth = rec['boxes']
        correct, at50 = _match(dets, truth)
        tps.append(correct)
        confs += [d.score for d in dets]
        pcls += [CLASS_NAMES.index(d.class_name) for d in dets]
        tcls += [CLASS_NAMES.index(t['cls']) for t in truth]
        for t in truth:
            per[t['cls']]['truth'] += 1
            if t['cls'] == 'product' and t.get('sku'):
                by_sku.setdefault(t['sku'], {'truth': 0, 'found': 0, 'named_right': 0})
                by_sku[t['sku']]['truth'] += 1
        # operating point: the same greedy matching among detections scoring >= score_min
        op = [d for d in dets if d.score >= score_min]
        _, op50 = _match(op, truth)
        for d, i in zip(op, op50):
            p = per[d.class_name]
            if i < 0:
                p['fp'] += 1
                continue
            p['hit'] += 1
            x0, y0, x1, y1 = truth[i]['bbox']
            w, h = max(1.0, x1 - x0), max(1.0, y1 - y0)
            (cx, cy), (sw, sh) = d.center, d.size
            p['dc'] += [(cx - (x0 + x1) / 2) / w, (cy - (y0 + y1) / 2) / h]
            p['ds'] += [math.log(max(sw, 0.5) / w), math.log(max(sh, 0.5) / h)]
            if d.class_name == 'product':
                right = bool(d.sku) and d.sku == truth[i].get('sku')
                p['sku_right'] += int(right)
                if truth[i].get('sku'):
                    by_sku[truth[i]['sku']]['found'] += 1
                    by_sku[truth[i]['sku']]['named_right'] += int(right)
                if d.sku and truth[i].get('sku'):
                    row = confusion.setdefault(truth[i]['sku'], {})
                    row[d.sku] = row.get(d.sku, 0) + 1
    tp = np.concatenate(tps) if tps else np.zeros((0, 10), bool)
    res = ap_per_class(tp, np.array(confs), np.array(pcls), np.array(tcls))
    ap, classes = res[5], res[6]
    out = {'images': len(records), 'score_min': score_min, 'classes': {}}
    for c, name in enumerate(CLASS_NAMES):
        p = per[name]
        k = list(classes).index(c) if c in classes else -1
        out['classes'][name] = {
            'truth': p['truth'], 'ap50': float(ap[k, 0]) if k >= 0 else 0.0,
            'ap50_95': float(ap[k].mean()) if k >= 0 else 0.0,
            'recall': p['hit'] / p['truth'] if p['truth'] else 0.0, 'hits': p['hit'],
            'fp_per_image': p['fp'] / max(1, len(records)), 'fp': p['fp'],
            'center_sd_rel': _rms(p['dc']), 'size_sd_rel': _rms(p['ds'])}
    hits = per['product']['hit']
    out['sku_accuracy'] = per['product']['sku_right'] / hits if hits else 0.0
    out['sku_hits'] = per['product']['sku_right']
    out['sku_confusion'] = confusion
    out['products_by_sku'] = by_sku
    return out


def sku_shape(store, sku: str) -> str:
    """The catalog shape of a SKU (its ``look.shape``: can, bottle, ...), '?' for a SKU not in
    the catalog."""
    if sku not in store.catalog:
        return '?'
    return (store.catalog[sku].look or {}).get('shape', 'box')


def products_by_group(ev: dict, group_of) -> dict[str, dict[str, int]]:
    """``products_by_sku`` summed per group (``group_of(sku)``: a name, e.g. the SKU's shape)."""
    out: dict[str, dict[str, int]] = {}
    for sku, c in ev['products_by_sku'].items():
        g = out.setdefault(group_of(sku), {'truth': 0, 'found': 0, 'named_right': 0})
        for k in g:
            g[k] += c[k]
    return dict(sorted(out.items()))


def _rms(v: list) -> float:
    return float(np.sqrt(np.mean(np.square(v)))) if v else 0.0


def stats_dict(ev: dict, source: str) -> dict:
    """The figures in the layout ``store_bench.simcam.DetectorStats.from_dict`` reads."""
    out = {'source': source, 'sku_accuracy': round(ev['sku_accuracy'], 4)}
    for name in CLASS_NAMES:
        c = ev['classes'][name]
        out[name] = {'recall': round(c['recall'], 4), 'fp_per_image': round(c['fp_per_image'], 4),
                     'center_sd_rel': round(c['center_sd_rel'], 4),
                     'size_sd_rel': round(c['size_sd_rel'], 4),
                     'ap50': round(c['ap50'], 4), 'ap50_95': round(c['ap50_95'], 4),
                     'truth_boxes': c['truth']}
    out['images'] = ev['images']
    out['score_min'] = ev['score_min']
    return out


def table(ev: dict) -> str:
    lines = [f'class      truth  AP50   AP50-95  recall@{ev["score_min"]:.2f}  FP/img  '
             f'centre_sd  size_sd']
    for name, c in ev['classes'].items():
        lines.append(f'{name:<10} {c["truth"]:>5}  {c["ap50"]:.3f}  {c["ap50_95"]:.3f}    '
                     f'{c["hits"]:>3}/{c["truth"]:<3} {c["recall"]:.2f}  {c["fp_per_image"]:.2f}'
                     f'    {c["center_sd_rel"]:.3f}      {c["size_sd_rel"]:.3f}')
    return '\n'.join(lines)
