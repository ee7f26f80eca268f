"""Export reviewed camera crops as a YOLO dataset for retraining the detector (no rclpy).

Layout (Ultralytics convention)::

    <out>/images/{train,val}/<name>.jpg
    <out>/labels/{train,val}/<name>.txt     # "<class> <cx> <cy> <w> <h>", normalised 0..1
    <out>/data.yaml                         # path, train, val, nc, names

Every image evidence of a decided request whose answer names a product becomes one example
labelled with that product's class, its box the plate region inside the crop (the whole crop
when the camera has no plate box): the product was taken from or returned to that region.
Answers of "no change" give background images (an empty label file), which YOLO also trains on.
Classes are the catalog's SKUs in sorted order, so indices are stable between exports. Works
with zero crops (a valid, empty dataset). The split is deterministic by request id.
"""
from __future__ import annotations

import hashlib
import pathlib
import shutil

import yaml


def _split(key: str, val_share: float) -> str:
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return 'val' if h < val_share else 'train'


def export_yolo(store, out_dir: str | pathlib.Path, class_names: list[str],
                val_share: float = 0.2) -> dict:
    """Write the dataset from a ReviewStore; returns counts."""
    out = pathlib.Path(out_dir)
    for sub in ('images/train', 'images/val', 'labels/train', 'labels/val'):
        (out / sub).mkdir(parents=True, exist_ok=True)
    index = {name: i for i, name in enumerate(class_names)}
    counts = {'images': 0, 'labelled': 0, 'background': 0, 'skipped': 0}
    for req in store.requests(('decided',)):
        dec = (req.get('decision') or store.decision(req['request_id']) or {}).get('decision')
        if dec is None:
            continue
        sku = dec.get('sku') if int(dec.get('quantity', 0)) > 0 else ''
        if sku and sku not in index:
            counts['skipped'] += 1
            continue
        split = _split(req['request_id'], val_share)
        for ev in store.evidence(req['request_id'], 'image'):
            src = pathlib.Path(ev['path'])
            if not src.is_file():
                counts['skipped'] += 1
                continue
            name = f'r{req["seq"]:06d}_{ev["evidence_id"]:06d}'
            shutil.copyfile(src, out / 'images' / split / f'{name}.jpg')
            meta = ev['payload']
            lines = []
            if sku:
                w = max(1, int(meta.get('width', 1)))
                h = max(1, int(meta.get('height', 1)))
                box = meta.get('plate_box_in_crop') or [0, 0, w, h]
                bx, by, bw, bh = (float(v) for v in box)
                bx, by = max(0.0, bx), max(0.0, by)
                bw, bh = min(bw, w - bx), min(bh, h - by)
                lines.append(f'{index[sku]} {(bx + bw / 2) / w:.6f} {(by + bh / 2) / h:.6f} '
                             f'{bw / w:.6f} {bh / h:.6f}')
                counts['labelled'] += 1
            else:
                counts['background'] += 1
            (out / 'labels' / split / f'{name}.txt').write_text(''.join(x + '\n' for x in lines))
            counts['images'] += 1
    (out / 'data.yaml').write_text(yaml.safe_dump({
        'path': str(out.resolve()), 'train': 'images/train', 'val': 'images/val',
        'nc': len(class_names), 'names': list(class_names)}, sort_keys=False))
    return counts
