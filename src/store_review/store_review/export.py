"""Export reviewed camera crops as datasets (no rclpy): a YOLO detection dataset for retraining
the detector (:func:`export_yolo`), and a classification dataset of hand windows for the hand
SKU classifier (:func:`export_hand_windows`).

Detection layout (Ultralytics convention)::

    <out>/images/{train,val}/<name>.jpg
    <out>/labels/{train,val}/<name>.txt     # "<class> <cx> <cy> <w> <h>", normalised 0..1
    <out>/data.yaml                         # path, train, val, nc, names

Every image evidence of a decided request whose answer names a product becomes one example
labelled with that product's class, its box the plate region inside the crop (the whole crop
when the camera has no plate box): the product was taken from or returned to that region.
Answers of "no change" give background images (an empty label file), which YOLO also trains on.
Classes are the catalog's SKUs in sorted order, so indices are stable between exports. Works
with zero crops (a valid, empty dataset). The split is deterministic by request id.

Hand windows: reviewed evidence as an ultralytics *classification* dataset. Layout::

    <out>/train/<class>/<tag>r<seq>_e<evidence id>_h<k>.jpg   <out>/val/<class>/...

classes ``empty`` and the SKUs (the hand SKU classifier's, :mod:`store_perception.hand_sku`).

Which hands: an evidence image's hand boxes are the ``hands`` list of its metadata
(``[x0, y0, x1, y1]`` in crop pixels) where the review node stored them; otherwise the
``proposals`` callable (an image -> hand boxes, e.g. the detector's crop model run on the
evidence crop, :func:`store_review.learn_cli.crop_model_proposals`); without either the image is
skipped. Only *the hand at the plate* is labelled: the hand whose centre is nearest the plate's
box in the crop (``plate_box_in_crop``), within one hand side of it for an empty hand, within
``PRODUCT_REACH_SIDES`` hand sides for a hand holding the product (it carries the product away:
on rendered events the hand the truth sees with the taken product is 2-6 hand sides from the
plate box in the frames after the take, while the proposal on the plate then is mostly the
stock or another hand); other hands (another shopper's, the other hand, a false hand) are left
out, their content is unknown. Images without a plate box are skipped (no plate, no hand).
Where the review node stored the tracked shoppers' boxes (``shoppers``) and the answer names a
shopper, the product is looked for only in that shopper's hands (:func:`hand_owner`): in a crowd
the hand nearest the plate after a take is often another shopper's, reaching in.

The label comes from the reviewer's answer and the frame's time against the shelf event's
start (in its id, ``"<plate>@<start ns>"``) and its settled stamp (the request's ``stamp_ns``):

* a take of SKU S: from the start on the hand holds S; before it the hand reaching in is empty;
* a return of S: before the start the hand brings S; after the settled stamp it is empty; frames
  in between (the product is being put down) are left out;
* "no product change": the hand at the plate is empty.

The window is the classifier's own: :func:`store_perception.hand_sku.hand_window` (a square of
``HAND_WINDOW_SCALE`` x the hand box's longer side) cut and resized to ``size`` px by
:func:`store_perception.crops.cut`. Evidence images are anonymised crops around the plate
(faces and everything above the shelf line outside the plate's box blurred), so windows may be
partly blurred: the classifier learns from what the console holds. The split is by request (its
windows look alike). ultralytics needs val to hold exactly train's classes: a class only in
val moves to train, a class missing in val gets a copy of one train window.
"""
from __future__ import annotations

import hashlib
import math
import pathlib
import re
import shutil

import yaml

from store_interfaces.msg import ProductHypothesis
from store_review.evidence import start_ns_of


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


# --- hand windows for the hand/product classifier ---------------------------------------------

ACTION_TAKE = ProductHypothesis.ACTION_TAKE
ACTION_RETURN = ProductHypothesis.ACTION_RETURN
HAND_EMPTY = 'empty'  # store_perception.hand_sku.EMPTY (no import: see export_hand_windows)
EMPTY_REACH_SIDES = 1.0       # an empty hand at the plate: within this many hand sides of it
PRODUCT_REACH_SIDES = 6.0     # a hand with the product: within this many (module doc)
OWNER_REACH_SIDES = 3.0       # a hand out of every shopper's box: theirs within this many sides
OWNER_MARGIN_SIDES = 0.5      # ... and only when no other shopper's box is as near (hand_owner)
_SAFE_CLASS = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$')


def hand_label(decision: dict, start_ns: int, settled_ns: int, stamp_ns: int) -> str | None:
    """The class of the hand at the plate in a frame at ``stamp_ns`` by the reviewer's
    ``decision`` (ReviewDecision as a dict); None = unknown (left out)."""
    sku = str(decision.get('sku') or '') if int(decision.get('quantity') or 0) > 0 else ''
    if not sku:
        return HAND_EMPTY
    action = int(decision.get('action') or 0)
    if action == ACTION_TAKE:
        return sku if stamp_ns >= start_ns else HAND_EMPTY
    if action == ACTION_RETURN:
        if stamp_ns < start_ns:
            return sku
        return HAND_EMPTY if stamp_ns > settled_ns else None
    return None


def _box4(v) -> tuple[float, float, float, float] | None:
    """A finite (x0, y0, x1, y1) box with a positive size, or None (untrusted metadata)."""
    try:
        x0, y0, x1, y1 = (float(x) for x in v)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(x) for x in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _xywh(v) -> tuple[float, float, float, float] | None:
    """A box stored as [x, y, w, h] (untrusted metadata) as a valid (x0, y0, x1, y1), or
    None."""
    if not (isinstance(v, (list, tuple)) and len(v) == 4 and
            all(isinstance(x, (int, float)) for x in v)):
        return None
    return _box4((v[0], v[1], v[0] + v[2], v[1] + v[3]))


def _to_box(cx: float, cy: float, box) -> float:
    """Distance from the point (cx, cy) to the box (x0, y0, x1, y1); 0 inside it."""
    x0, y0, x1, y1 = box
    return math.hypot(max(x0 - cx, 0.0, cx - x1), max(y0 - cy, 0.0, cy - y1))


def hand_at_plate(hands, plate_box, max_sides: float = EMPTY_REACH_SIDES) -> int | None:
    """Index of the hand box (x0, y0, x1, y1) whose centre is nearest the plate box (x, y, w, h)
    and no further from it than ``max_sides`` x the hand's longer side; None when no hand is
    that close."""
    near = hands_near_plate(hands, plate_box, max_sides)
    return near[0] if near else None


def hands_near_plate(hands, plate_box, max_sides: float) -> list[int]:
    """Indices of the hand boxes within ``max_sides`` hand sides of the plate box (x, y, w, h),
    nearest first."""
    px, py, pw, ph = (float(v) for v in plate_box)
    near = []
    for i, (x0, y0, x1, y1) in enumerate(hands):
        d = _to_box((x0 + x1) / 2, (y0 + y1) / 2, (px, py, px + pw, py + ph))
        if d <= max_sides * max(x1 - x0, y1 - y0):
            near.append((d, i))
    return [i for _, i in sorted(near)]


def hand_owner(hand, shoppers) -> str | None:
    """Whose hand the box ``hand`` (x0, y0, x1, y1) is, by the tracked shoppers' boxes in the
    same crop (the evidence's ``shoppers`` metadata, ``[{'shopper_id', 'box': [x, y, w, h]}]``):
    the shopper whose box holds the hand's centre, or, when none does, whose box is nearest and
    within ``OWNER_REACH_SIDES`` hand sides of it (an arm reaching out of its body's box).
    None when the hand is in two shoppers' boxes, or as near to two of them (within
    ``OWNER_MARGIN_SIDES`` hand sides), or near none: who holds it is not known."""
    x0, y0, x1, y1 = hand
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0)
    dist = []
    for s in shoppers:
        sid = str(s.get('shopper_id') or '') if isinstance(s, dict) else ''
        box = _xywh(s.get('box')) if sid else None
        if box is not None:
            dist.append((_to_box(cx, cy, box), sid))
    dist.sort()
    if not dist or dist[0][0] > OWNER_REACH_SIDES * side:
        return None
    if len(dist) > 1 and dist[1][1] != dist[0][1] and \
            dist[1][0] - dist[0][0] <= OWNER_MARGIN_SIDES * side:
        return None
    return dist[0][1]


def export_hand_windows(store, out_dir: str | pathlib.Path, proposals=None,
                        class_names=None, size: int = 64, val_share: float = 0.2,
                        tag: str = '', window_scale: float | None = None,
                        choose=None, by_owner: bool = True) -> dict:
    """Write (or add to) the hand-window dataset from a ReviewStore (module doc);
    returns counts. ``class_names``: the SKUs accepted (the catalog; None = any SKU whose name
    is a safe folder name). ``tag`` prefixes the file names (exports of several databases into
    one folder). ``choose(image, hand boxes, sku) -> index or None``: which of the hands near
    the plate (within PRODUCT_REACH_SIDES) holds the product the reviewer named (e.g. the one
    the current classifier finds most like it, :func:`store_review.learn_cli.classifier_choice`);
    None = the nearest. ``by_owner``: where the evidence has the tracked shoppers' boxes
    (``shoppers``) and the answer names a shopper, a product is looked for only in that
    shopper's hands (:func:`hand_owner`); hands of unknown owner are left out."""
    import cv2
    # the classifier's window rule, imported here: only this export needs store_perception
    from store_perception.crops import cut
    from store_perception.hand_sku import HAND_WINDOW_SCALE, hand_window
    scale = HAND_WINDOW_SCALE if window_scale is None else float(window_scale)
    out = pathlib.Path(out_dir)
    allowed = None if class_names is None else set(class_names)
    counts = {'requests': 0, 'images': 0, 'windows': {}, 'train': 0, 'val': 0,
              'no_plate_box': 0, 'no_hand_at_plate': 0, 'not_their_hand': 0, 'unknown': 0,
              'skipped': 0}
    for req in store.requests(('decided',)):
        dec = (req.get('decision') or store.decision(req['request_id']) or {}).get('decision')
        if not isinstance(dec, dict):
            continue
        sku = str(dec.get('sku') or '')
        if sku and (not _SAFE_CLASS.match(sku) or sku == HAND_EMPTY or
                    (allowed is not None and sku not in allowed)):
            counts['skipped'] += 1
            continue
        settled = int(req['stamp_ns'])
        start = start_ns_of(req['event_id'], settled)
        split = _split(req['request_id'], val_share) if val_share > 0 else 'train'
        counts['requests'] += 1
        for ev in store.evidence(req['request_id'], 'image'):
            meta = ev['payload'] if isinstance(ev['payload'], dict) else {}
            plate = meta.get('plate_box_in_crop')
            if _xywh(plate) is None:
                counts['no_plate_box'] += 1
                continue
            label = hand_label(dec, start, settled, int(ev['stamp_ns']))
            if label is None:
                counts['unknown'] += 1
                continue
            img = cv2.imread(str(ev['path'])) if ev['path'] else None
            if img is None:
                counts['skipped'] += 1
                continue
            counts['images'] += 1
            stored = meta.get('hands')
            if isinstance(stored, list):
                hands = [b for b in (_box4(v) for v in stored) if b]
            elif proposals is not None:
                hands = [b for b in (_box4(v) for v in proposals(img)) if b]
            else:
                hands = []
            tracked = meta.get('shoppers') if by_owner else None
            who = str(dec.get('shopper_id') or '')
            if label == HAND_EMPTY:
                k = hand_at_plate(hands, plate, EMPTY_REACH_SIDES)
            else:
                near = hands_near_plate(hands, plate, PRODUCT_REACH_SIDES)
                if who and isinstance(tracked, list) and tracked:
                    # the reviewer named whose hand it is: only that shopper's hands
                    theirs = [i for i in near if hand_owner(hands[i], tracked) == who]
                    counts['not_their_hand'] += len(near) - len(theirs)
                    near = theirs
                if choose is None:
                    k = near[0] if near else None
                else:
                    pick = choose(img, [hands[i] for i in near], label) if near else None
                    k = near[pick] if pick is not None and 0 <= pick < len(near) else None
            if k is None:
                counts['no_hand_at_plate'] += 1
                continue
            h, w = img.shape[:2]
            folder = out / split / label
            folder.mkdir(parents=True, exist_ok=True)
            name = f'{tag}r{req["seq"]:06d}_e{ev["evidence_id"]:06d}_h{k}.jpg'
            cv2.imwrite(str(folder / name), cut(img, hand_window(hands[k], w, h, scale), size),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            counts['windows'][label] = counts['windows'].get(label, 0) + 1
            counts[split] += 1
    same_classes(out)
    return counts


def same_classes(root: pathlib.Path) -> None:
    """Make ``root/val`` hold exactly ``root/train``'s classes (ultralytics numbers each split's
    folders on their own): a class only in val moves to train; a class missing in val gets a
    copy of its first train window."""
    train, val = root / 'train', root / 'val'
    for folder in sorted(val.glob('*/')) if val.is_dir() else []:
        if folder.is_dir() and not (train / folder.name).is_dir():
            train.mkdir(parents=True, exist_ok=True)
            shutil.move(str(folder), str(train / folder.name))
    for folder in sorted(train.glob('*/')) if train.is_dir() else []:
        first = next(iter(sorted(folder.glob('*.jpg'))), None)
        if first is not None and not any((val / folder.name).glob('*.jpg')):
            (val / folder.name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first, val / folder.name / first.name)
