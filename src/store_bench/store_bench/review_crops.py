"""One learning step of the hand/product classifier from a day's reviewed events (benchmark).

:func:`learn_classifier` turns the events reviewers decided during a simulated day into what the
live store would learn from them, through the code the live graph runs:

1. **Evidence, as the review node stores it.** For each decided event the renderer
   (``store_sim.render.CameraRenderer``) draws only the frames the review node would keep: the
   ``cameras_per_event`` cameras that see the plate largest (every demo camera sees every
   plate), ``frames_per_event`` frames evenly over ``[start - 1 s, settled + 1 s]``; they go
   through the review node's own ``FrameBuffer`` / ``ImageCollector`` (anonymised crops around
   the plate) into a ``ReviewStore`` with the request and the reviewer's answer
   (``ReviewDecisionData``). The event's start is the scenario action on that plate that the
   settled stamp follows (its ``t_s``: the hand leaves the plate, the weight changes); take or
   return and the quantity come from that action too (the decided item gives only the SKU).
2. **The console's export**: ``store_review.export.export_hand_windows`` with the detector's
   crop model run on each evidence crop for hand proposals
   (``store_review.learn_cli.crop_model_proposals``), accumulated with the previous call's
   dataset (``prev['dataset']``). With ``by_owner`` (the default) the evidence carries the
   shoppers' boxes and a reviewed product is looked for only in the hands of the shopper the
   answer names (``store_review.export.hand_owner``). With ``choose_hand`` (the default, as
   ``review_learn --hands`` does) the shipped classifier picks which of those hands near the
   plate shows the reviewed product, and none where it sees a product in none
   (``learn_cli.classifier_choice``); without it the nearest one.
3. **Fine-tuning** the *shipped* classifier on the accumulated windows
   (``store_perception.train.fine_tune_hand_classifier``; always from the shipped weights, so
   days do not compound a drift).
4. **Measurement on a fixed held-out set** of hand windows: generated scenarios of seeds
   ``HELDOUT_SEEDS`` (levels 2-3, never used by the learning days, whose seeds start at 1000),
   other lighting (variants 801+), frames at moments a shopper holds a product; the shipped
   crop model's hand proposals (score >= 0.05) labelled by the renderer's truth as
   ``make_hand_dataset`` does (``store_perception.datasets.label_proposals``). Built once,
   cached under ``work_dir.parent``. Per classifier: product recall = truth products in hand
   whose hand proposal the classifier calls a product at score >= ``SCORE_MIN`` (the detector's
   threshold) over all truth products in hand (a product without a proposal counts as missed);
   SKU accuracy = the share of those with the right SKU; false products per image.

The returned ``detector_stats`` is ``store_bench.simcam.measured_stats()`` (the shipped
detector's end-to-end figures) with product recall, SKU accuracy and product false positives
per image moved by the *ratio* of the fine-tuned to the shipped classifier's figures on the
held-out windows (a classifier that finds more products by calling empty hands products must
pay for it in the simulated detections too): the window-level figures
are not the end-to-end ones (no box IoU, proposals only), so the shipped classifier's own figure
on the same windows anchors them, and a classifier that learned nothing gives the shipped stats
back exactly. Both raw figures are in the ``report`` and in ``detector_stats['hand_classifier']``.

Never imports rclpy.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import time

import numpy as np

from store_bench.fusion_offline import NS, T0_NS

# 30 scenes, about 400 products in hand: with the first 6 (46 products) the same fine-tuning run
# with another seed moved SKU accuracy by 0.1-0.3 (docs/RESULTS.md, "Hand labels that name the
# hand"), so the adoption gate decided on noise
HELDOUT_SEEDS = tuple(range(97000, 97030))
HELDOUT_LIGHTING = 800          # lighting variant offset of the held-out frames
HELDOUT_FRAMES = 4              # frames per camera and held-out scene
SCORE_MIN = 0.25                # the detector's output threshold (config/params/store.yaml)
PROPOSAL_CONF = 0.05            # the detector's hand_proposal_conf
DAY_LIGHTING = 1                # lighting variants of the days' evidence: 1 + seed % 40
_PROBE_BOX = (24.0, 24.0, 40.0, 40.0)   # hand_window of this box in a 64 px image: the image

_DETECTOR = {}


def _detector(threads: int = 1):
    """The shipped detector's first two stages (hand proposals), loaded once per process."""
    if threads not in _DETECTOR:
        from store_perception.detection import CROP_WEIGHTS, Detector
        _DETECTOR[threads] = Detector(None, crop_model_path=CROP_WEIGHTS, threads=threads)
    return _DETECTOR[threads]


# --- the held-out windows ---------------------------------------------------------------------
def heldout_path(cache_dir, store, seeds, frames: int) -> pathlib.Path:
    key = json.dumps([store.id, list(seeds), frames, HELDOUT_LIGHTING, PROPOSAL_CONF, 'v1'])
    return pathlib.Path(cache_dir) / (f'hand_heldout_{store.id}_'
                                      f'{hashlib.sha256(key.encode()).hexdigest()[:10]}.npz')


def build_heldout(store, detector, seeds=HELDOUT_SEEDS, frames: int = HELDOUT_FRAMES,
                  size: int = 64, log=None) -> dict:
    """Labelled hand-proposal windows of held-out rendered frames (module doc, step 4)."""
    from store_perception.crops import cut
    from store_perception.datasets import busy_hand_boxes, label_proposals
    from store_perception.hand_sku import EMPTY, hand_window
    from store_sim.dataset import held_times, sample_times
    from store_sim.generator import generate
    from store_sim.render import CameraRenderer
    windows, labels = [], []
    n_products = n_images = 0
    for i, seed in enumerate(seeds):
        scenario = generate(store, seed, 2 + seed % 2, max_concurrent=3)
        rng = np.random.default_rng([seed, 0x4E1D])
        held = None
        for cam in store.cameras:
            r = CameraRenderer(store, cam, scenario, seed=seed,
                               lighting_variant=HELDOUT_LIGHTING + i + 1)
            if held is None:
                held = held_times(r.shoppers, scenario.duration_s)
            for t in sample_times(scenario, rng, frames, held=held, held_share=0.9):
                img, boxes = r.render(t)
                h, w = img.shape[:2]
                n_images += 1
                n_products += sum(1 for b in boxes if b['cls'] == 'product' and b.get('sku'))
                props = detector.hand_proposals(img, PROPOSAL_CONF)
                rec = {'boxes': boxes, 'shoppers': r.truth_3d(t)}
                for prop, (label, _) in zip(props, label_proposals(props, boxes, 8.0,
                                                                   busy_hand_boxes(rec))):
                    if not label:
                        continue          # unknown (a hidden product), or no SKU
                    windows.append(cut(img, hand_window(prop, w, h), size))
                    labels.append(label)
        if log:
            log(f'held-out scene {seed}: {len(labels)} windows, {n_products} products so far')
    return {'windows': np.stack(windows) if windows else np.zeros((0, size, size, 3), np.uint8),
            'labels': np.array(labels, dtype=str), 'n_products': n_products,
            'n_images': n_images, 'n_empty': sum(1 for v in labels if v == EMPTY)}


def load_or_build_heldout(cache_dir, store, detector, seeds=HELDOUT_SEEDS,
                          frames: int = HELDOUT_FRAMES, log=None) -> dict:
    path = heldout_path(cache_dir, store, seeds, frames)
    if path.is_file():
        with np.load(path) as z:
            return {'windows': z['windows'], 'labels': z['labels'].astype(str),
                    'n_products': int(z['n_products']), 'n_images': int(z['n_images']),
                    'n_empty': int(z['n_empty']), 'path': str(path)}
    held = build_heldout(store, detector, seeds, frames, log=log)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + '.tmp.npz')
    np.savez_compressed(tmp, **held)
    tmp.replace(path)
    return dict(held, path=str(path))


def evaluate_on_heldout(classifier, held: dict, score_min: float = SCORE_MIN) -> dict:
    """Product recall, SKU accuracy and false products per image of a HandSkuClassifier on
    the held-out windows (module doc, step 4)."""
    from store_perception.hand_sku import EMPTY
    wins, labels = held['windows'], list(held['labels'])
    answers = classifier.classify_many([(w, _PROBE_BOX) for w in wins]) if len(wins) else []
    found = right = false = 0
    for label, ans in zip(labels, answers):
        called = ans.p_product >= score_min
        if label == EMPTY:
            false += called
        elif called:
            found += 1
            right += ans.sku == label
    n = max(1, held['n_products'])
    return {'recall': found / n, 'sku_accuracy': right / found if found else 0.0,
            'false_per_image': false / max(1, held['n_images']), 'found': found,
            'sku_right': right, 'products': held['n_products'],
            'windows': len(labels)}


# --- the day's evidence -----------------------------------------------------------------------
def _action_of(scenario, plate_ids, settled_s: float, sku: str):
    """The scenario action on one of ``plate_ids`` that the settled stamp follows (latest
    ``t_s`` not after settled + 0.5 s, preferring one of ``sku``), or None."""
    cands = [a for s in scenario.shoppers for a in s.actions
             if set(a.plates) & set(plate_ids) and a.t_s <= settled_s + 0.5]
    if not cands:
        return None
    best = max(a.t_s for a in cands)
    near = [a for a in cands if best - a.t_s < 1.0]
    return next((a for a in near if a.sku == sku), max(near, key=lambda a: a.t_s))


def _cameras_for(views, plate_ids, n: int):
    """The ``n`` camera views with the largest box of the event's first seen plate."""
    def area(v):
        box = next((v.plates.get(p) for p in plate_ids if v.plates.get(p)), None)
        return box[2] * box[3] if box else -1
    seen = [v for v in views if v.sees(plate_ids)]
    return sorted(seen, key=lambda v: (-area(v), v.camera_id))[:n]


def write_evidence(store, scenarios: dict, decided: list, db, evidence_dir,
                   cameras_per_event: int = 2, frames_per_event: int = 4, log=None,
                   tracked: bool = True) -> dict:
    """Render each decided event's evidence into ``db`` (a ReviewStore), request, evidence and
    decision as the review node and the console store them (module doc, step 1). ``tracked``:
    the evidence carries the shoppers' boxes, as the review node draws them from the tracker's
    positions; here the positions are the renderer's truth (a tracker without error)."""
    from store_cart.model import (ACTION_NONE, ACTION_RETURN, ACTION_TAKE, CandidateData,
                                  ReviewRequestData, ReviewDecisionData)
    from store_review.evidence import camera_views, FrameBuffer, ImageCollector, TrackBuffer
    from store_sim.render import CameraRenderer
    views = camera_views(store)
    cams = {c.id: c for c in store.cameras}
    models = {c.id: c.model for c in store.cameras}
    renderers: dict = {}
    counts = {'events': 0, 'images': 0, 'skipped': 0, 'truth': {}}

    def order(d):        # by scenario and time: each renderer redraws the shelves once per
        try:             # action it passes, not once per event
            return (0, int(d['scenario_seed']), int(d['stamp_ns']))
        except (KeyError, TypeError, ValueError):
            return (1, 0, 0)
    for k, d in enumerate(sorted(decided, key=order)):
        try:
            seed = int(d['scenario_seed'])
            plate_ids = tuple(str(p) for p in d['plate_ids'])
            settled_ns = int(d['stamp_ns'])
            sku = str(d.get('sku') or '')
        except (KeyError, TypeError, ValueError):
            counts['skipped'] += 1
            continue
        scenario = scenarios.get((seed, d.get('level'))) or scenarios.get(seed)
        chosen = _cameras_for(views, plate_ids, cameras_per_event)
        if scenario is None or not plate_ids or not chosen:
            counts['skipped'] += 1
            continue
        settled_s = (settled_ns - T0_NS) / NS
        act = _action_of(scenario, plate_ids, settled_s, sku)
        start_s = act.t_s if act is not None else settled_s - 1.0
        start_ns = T0_NS + int(round(start_s * NS))
        action = ACTION_NONE
        if sku:
            action = ACTION_RETURN if act is not None and act.kind == 'return' and \
                act.sku == sku else ACTION_TAKE
        quantity = (act.quantity if act is not None and act.sku == sku else 1) if sku else 0
        event_id = f'{plate_ids[0]}@{start_ns}'
        rid = f'review/s{seed}/{event_id}'
        shopper = str(d.get('shopper_id') or '') if sku else ''
        gondola = plate_ids[0].split('.')[0]
        req = ReviewRequestData(rid, event_id, 2, 'learning-day bench', gondola, plate_ids, 0.0,
                                (shopper,) if shopper else (),
                                (CandidateData(shopper, sku, action, quantity, 0.5),),
                                settled_ns)
        if not db.add_request(req.to_dict(), settled_ns):
            counts['skipped'] += 1
            continue
        frames = FrameBuffer(keep_s=3600.0, max_fps=0.0)
        tracks = TrackBuffer(keep_s=3600.0) if tracked else None
        collector = ImageCollector(frames, chosen, evidence_dir, pad_s=1.0,
                                   max_frames=frames_per_event, tracks=tracks, models=models)
        collector.request(rid, event_id, plate_ids, settled_ns, (shopper,) if shopper else ())
        # inside the collector's window [start - 1 s, settled + 1 s] whatever the rounding
        times = np.linspace(start_s - 0.999, settled_s + 0.999, frames_per_event)
        for view in chosen:
            key = (seed, view.camera_id)
            if key not in renderers:
                renderers[key] = CameraRenderer(store, cams[view.camera_id], scenario,
                                                lighting_variant=DAY_LIGHTING + seed % 40)
        if tracks is not None:      # the tracker's floor positions, here the renderer's truth
            first = renderers[(seed, chosen[0].camera_id)]
            for t in times:
                tracks.add(T0_NS + int(round(float(t) * NS)),
                           {m['id']: tuple(m['xy']) for m in first.truth_3d(float(t))})
        for view in chosen:
            key = (seed, view.camera_id)
            for t in times:
                img, boxes = renderers[key].render(float(t))
                stamp = T0_NS + int(round(float(t) * NS))
                frames.add(view.camera_id, stamp, img)
                counts['truth'][(view.camera_id, stamp)] = {
                    'boxes': boxes, 'shoppers': renderers[key].truth_3d(float(t))}
        for r_id, name, stamp, path, meta in collector.ready(settled_ns + 60 * NS):
            db.add_evidence(r_id, 'image', name, stamp, meta, path)
            counts['images'] += 1
        decision = ReviewDecisionData(rid, 'bench', shopper, sku, action, quantity, settled_ns)
        db.decide(rid, 'bench', 'reviewer', 0, decision.to_dict(), settled_ns)
        counts['events'] += 1
        if log and (k + 1) % 5 == 0:
            log(f'evidence: {k + 1}/{len(decided)} events')
    return counts


def check_labels(db, dataset: pathlib.Path, tag: str, truth: dict, proposals) -> dict:
    """How often the export's labels (from the reviewer's answer and the frame time) agree
    with the renderer's truth for the windows of this export (file names ``<tag>r.._e.._h..``):
    the window's hand, back in full-frame pixels, labelled as the held-out set is
    (``label_proposals``; None = a hand holding a product too hidden to label)."""
    import re

    import cv2

    from store_perception.datasets import busy_hand_boxes, label_proposals
    out = {'wrong': {}, 'by_kind': {k: {'checked': 0, 'agree': 0, 'truth_unknown': 0}
                                    for k in ('empty', 'product')}}
    pattern = re.compile(re.escape(tag) + r'r\d+_e(\d+)_h(\d+)\.jpg$')
    for f in sorted(dataset.glob(f'train/*/{tag}*.jpg')):
        m = pattern.match(f.name)
        ev = db.evidence_item(int(m.group(1))) if m else None
        if ev is None:
            continue
        cam, _, stamp = ev['name'].partition('@')
        rec = truth.get((cam, int(stamp)))
        img = cv2.imread(ev['path'])
        meta = ev['payload']
        if rec is None or img is None or not meta.get('plate_box'):
            continue
        ox = meta['plate_box'][0] - meta['plate_box_in_crop'][0]
        oy = meta['plate_box'][1] - meta['plate_box_in_crop'][1]
        x0, y0, x1, y1 = proposals(img)[int(m.group(2))]
        [(label, _)] = label_proposals([(x0 + ox, y0 + oy, x1 + ox, y1 + oy)], rec['boxes'],
                                       8.0, busy_hand_boxes(rec))
        kind = out['by_kind']['empty' if f.parent.name == 'empty' else 'product']
        kind['checked'] += 1
        if label is None:
            kind['truth_unknown'] += 1
        elif label == f.parent.name:
            kind['agree'] += 1
        else:
            key = f'{f.parent.name}->{label or "?"}'
            out['wrong'][key] = out['wrong'].get(key, 0) + 1
    for n in ('checked', 'agree', 'truth_unknown'):       # both kinds together
        out[n] = sum(k[n] for k in out['by_kind'].values())
    return out


def _by_seed(scenarios: list) -> dict:
    """Scenarios by (seed, level) and by seed alone (write_evidence's lookup)."""
    out = {}
    for s in scenarios:
        out[(int(s.seed), s.meta.get('level'))] = s
        out.setdefault(int(s.seed), s)
    return out


# the export's rules for which hand holds a reviewed product, from the oldest: the hand nearest
# the plate; only the named shopper's hands; and of those the one the shipped classifier sees a
# product in (store_review.learn_cli.classifier_choice), the default
LABEL_RULES = ('nearest', 'owner', 'owner+classifier')


def compare_labels(store, scenarios: list, decided: list[dict], work_dir: pathlib.Path,
                   cameras_per_event: int = 2, frames_per_event: int = 4, threads: int = 1,
                   log=None) -> dict:
    """The hand labels each of LABEL_RULES gives on the same rendered evidence of ``decided``,
    checked against the renderer's truth (:func:`check_labels`): {rule: {'windows', 'check'}}."""
    from store_perception.detection import resolve_model_path
    from store_perception.hand_sku import HandSkuClassifier, HAND_WEIGHTS
    from store_review.export import export_hand_windows
    from store_review.learn_cli import classifier_choice, crop_model_proposals
    from store_review.store import ReviewStore
    work_dir = pathlib.Path(work_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    db = ReviewStore(work_dir / 'review.sqlite')
    out = {}
    try:
        ev = write_evidence(store, _by_seed(scenarios), decided, db, work_dir / 'evidence',
                            cameras_per_event, frames_per_event, log=log)
        proposals = crop_model_proposals(_detector(threads), PROPOSAL_CONF)
        classifier = HandSkuClassifier(resolve_model_path(None, HAND_WEIGHTS), threads=threads)
        for rule in LABEL_RULES:
            counts = export_hand_windows(
                db, work_dir / rule, proposals, class_names=sorted(store.catalog.products),
                val_share=0.0, tag='c_', by_owner=rule != 'nearest',
                choose=classifier_choice(classifier) if rule == 'owner+classifier' else None)
            out[rule] = {'windows': counts['windows'],
                         'check': check_labels(db, work_dir / rule, 'c_', ev['truth'],
                                               proposals)}
    finally:
        db.close()
    return out


def labels_table(compared: dict) -> str:
    """compare_labels' result as a table: per rule, the empty and product windows and how many
    of those the truth can tell agree with it."""
    lines = ['| rule | empty windows | right (truth known) | product windows | right (truth '
             'known) |', '|---|---|---|---|---|']
    for rule, got in compared.items():
        cells = []
        for kind in ('empty', 'product'):
            k = got['check']['by_kind'][kind]
            known = k['checked'] - k['truth_unknown']
            share = f' ({100.0 * k["agree"] / known:.0f} %)' if known else ''
            cells += [str(k['checked']), f'{k["agree"]}/{known}{share}']
        lines.append(f'| {rule} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


# --- one learning step ------------------------------------------------------------------------
def _agreement(checked: dict | None) -> str:
    if not checked or not checked['checked']:
        return ''
    known = checked['checked'] - checked['truth_unknown']
    return (f', labels right by truth {checked["agree"]}/{known} (unknown '
            f'{checked["truth_unknown"]})')


def _ratio(shipped: float, new: float, base: float) -> float:
    """``shipped`` moved by the ratio new / base (1 when base is 0), not below 0."""
    return float(max(0.0, shipped * (new / base if base > 0 else 1.0)))


def _anchored(shipped: float, new: float, base: float) -> float:
    """``shipped`` moved by the ratio new / base (1 when base is 0), clipped to [0, 1]."""
    return float(np.clip(shipped * (new / base if base > 0 else 1.0), 0.0, 1.0))


def learn_classifier(store, day_scenarios: list, decided: list[dict], work_dir: pathlib.Path,
                     prev: dict | None, *, epochs: int = 3, cameras_per_event: int = 2,
                     frames_per_event: int = 4, heldout_seeds=HELDOUT_SEEDS,
                     heldout_frames: int = HELDOUT_FRAMES, threads: int = 1,
                     onnx: bool = False, check: bool = True, choose_hand: bool = True,
                     by_owner: bool = True, log=None) -> dict:
    """One learning step (module doc). Returns ``{'detector_stats', 'weights', 'report',
    'dataset', 'heldout'}``; pass the return value as ``prev`` to the next day's call."""
    from store_perception.hand_sku import HandSkuClassifier, HAND_WEIGHTS
    from store_perception.detection import resolve_model_path
    from store_perception.train import fine_tune_hand_classifier
    from store_review.export import export_hand_windows
    from store_review.learn_cli import classifier_choice, crop_model_proposals
    from store_review.store import ReviewStore

    from store_bench.simcam import measured_stats
    started = time.monotonic()
    work_dir = pathlib.Path(work_dir)
    tag = f'{work_dir.name}_'       # this call's windows in the accumulated dataset
    if prev and prev.get('dataset') and any(pathlib.Path(prev['dataset']).glob(
            f'train/*/{tag}*.jpg')):
        # the previous days' windows are copied in: the same name would overwrite them and
        # mix their evidence ids with this day's
        raise ValueError(f'learn_classifier: work_dir {work_dir} has the name of an earlier '
                         f"call's ({tag[:-1]!r} windows are in {prev['dataset']}); give each "
                         'day its own folder name')
    work_dir.mkdir(parents=True, exist_ok=True)
    det = _detector(threads)
    held = load_or_build_heldout(work_dir.parent, store, det, tuple(heldout_seeds),
                                 heldout_frames, log=log)
    shipped_path = resolve_model_path(None, HAND_WEIGHTS)
    base_file = pathlib.Path(held['path']).with_suffix('.shipped.json')
    if base_file.is_file():
        base = json.loads(base_file.read_text())
    else:
        base = evaluate_on_heldout(HandSkuClassifier(shipped_path, threads=threads), held)
        base_file.write_text(json.dumps(base) + '\n')

    db_path = work_dir / 'review.sqlite'
    for p in work_dir.glob('review.sqlite*'):
        p.unlink()
    shutil.rmtree(work_dir / 'evidence', ignore_errors=True)
    db = ReviewStore(db_path)
    try:
        ev = write_evidence(store, _by_seed(day_scenarios), decided, db, work_dir / 'evidence',
                            cameras_per_event, frames_per_event, log=log, tracked=by_owner)
        dataset = work_dir / 'dataset'
        shutil.rmtree(dataset, ignore_errors=True)
        if prev and prev.get('dataset') and pathlib.Path(prev['dataset']).is_dir():
            shutil.copytree(prev['dataset'], dataset)
        proposals = crop_model_proposals(det, PROPOSAL_CONF)
        choose = classifier_choice(HandSkuClassifier(shipped_path, threads=threads)) \
            if choose_hand else None
        counts = export_hand_windows(db, dataset, proposals,
                                     class_names=sorted(store.catalog.products),
                                     val_share=0.0, tag=tag, choose=choose,
                                     by_owner=by_owner)
        checked = check_labels(db, dataset, tag, ev['truth'], proposals) \
            if check else None
    finally:
        db.close()
    n_windows = sum(1 for _ in (dataset / 'train').rglob('*.jpg')) if \
        (dataset / 'train').is_dir() else 0
    if n_windows:
        weights = fine_tune_hand_classifier(dataset, work_dir / 'weights', epochs=epochs,
                                            threads=threads, onnx=onnx, log=log)
        new = evaluate_on_heldout(HandSkuClassifier(weights, runtime='torch',
                                                    threads=threads), held)
    else:
        weights = pathlib.Path(prev['weights']) if prev and prev.get('weights') \
            else shipped_path
        new = evaluate_on_heldout(HandSkuClassifier(weights, threads=threads), held)
    # adoption gate: a fine-tuned classifier replaces the one in use only where it is better on
    # the fixed held-out windows (more products found with the right SKU, no more false products);
    # otherwise the one in use stays and the day's windows still join the dataset for the next try
    current = (prev or {}).get('in_use') or {'weights': str(shipped_path), 'heldout': base}
    adopted = bool(n_windows) and better_on_heldout(new, current['heldout'])
    tried = new
    if not adopted:
        weights, new = pathlib.Path(current['weights']), current['heldout']
    shipped = measured_stats()
    stats = shipped.to_dict()
    stats['product'] = dict(stats['product'], recall=_anchored(
        shipped.product.recall, new['recall'], base['recall']),
        fp_per_image=_ratio(shipped.product.fp_per_image, new['false_per_image'],
                            base['false_per_image']))
    stats['sku_accuracy'] = _anchored(shipped.sku_accuracy, new['sku_accuracy'],
                                      base['sku_accuracy'])
    stats['source'] = (f'{shipped.source}; product recall and sku_accuracy moved by the hand '
                       f'classifier fine-tuned on {n_windows} reviewed hand windows '
                       f'(store_bench.review_crops, held-out {pathlib.Path(held["path"]).name})')
    stats['hand_classifier'] = {'shipped': base, 'fine_tuned': tried, 'in_use': new,
                                'adopted': adopted, 'windows': n_windows,
                                'new_windows': counts['windows'], 'events': ev['events'],
                                'label_check': checked}
    new_w = sum(counts['windows'].values())
    report = (f'hand classifier: {ev["events"]} events -> {ev["images"]} evidence crops -> '
              f'{new_w} new windows ({counts["windows"].get("empty", 0)} empty), {n_windows} in '
              f'all{_agreement(checked)}; held-out ({held["n_products"]} products in hand, '
              f'{len(held["labels"])} windows): recall {base["recall"]:.3f} -> '
              f'{tried["recall"]:.3f}, SKU right '
              f'{base["sku_accuracy"]:.3f} -> {tried["sku_accuracy"]:.3f}, false products per '
              f'image {base["false_per_image"]:.3f} -> {tried["false_per_image"]:.3f}: '
              f'{"adopted" if adopted else "not adopted (not better on held-out)"}; stats '
              f'product recall {shipped.product.recall:.3f} -> '
              f'{stats["product"]["recall"]:.3f}, sku_accuracy {shipped.sku_accuracy:.3f} -> '
              f'{stats["sku_accuracy"]:.3f}, product fp_per_image '
              f'{shipped.product.fp_per_image:.3f} -> {stats["product"]["fp_per_image"]:.3f} '
              f'({time.monotonic() - started:.0f} s)')
    return {'detector_stats': stats, 'weights': str(weights), 'report': report,
            'dataset': str(dataset), 'heldout': held['path'], 'adopted': adopted,
            'in_use': {'weights': str(weights), 'heldout': new}}


def right_products(m: dict) -> float:
    """Held-out products in hand found with the right SKU, as a share of all of them."""
    return float(m['recall']) * float(m['sku_accuracy'])


def better_on_heldout(new: dict, current: dict) -> bool:
    """Whether a fine-tuned classifier should replace the one in use: it finds more held-out
    products with the right SKU and makes no more false products per image."""
    return (right_products(new) > right_products(current)
            and float(new['false_per_image']) <= float(current['false_per_image']))
