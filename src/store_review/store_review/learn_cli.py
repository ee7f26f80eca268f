"""Learn from the review database: weight models, tuned thresholds, YOLO export, hand windows.

    review_learn --db review.sqlite --store config/stores/demo.yaml --out-dir STATE_DIR \
        [--cart-db carts.sqlite [--params config/params/store.yaml]] \
        [--target-accuracy 0.995] [--credibility 0.9] \
        [--yolo DIR] [--hands DIR [--fine-tune DIR] [--epochs 3] [--nearest-hand]]

Writes ``STATE_DIR/weight_models.yaml`` (the shelf event node's ``weight_models_file``) and
``STATE_DIR/thresholds.yaml`` (the cart node's ``thresholds_file``). With ``--cart-db`` (the cart
node's database) of a camera store, whose events came with the fusion's shopper hint, the
thresholds are tuned on what that cart compares with them (``learning.fused_rows``: the top
shopper's probability and lead beside the best hypothesis' posterior and lead, every decided
event the population, the reviewed and spot-checked ones labelled by their answers) by the
step ``learning_days`` measures (``learning.tune_fused_bars``), and the fusion's confidence
calibration is refitted on the same labels (``learning.refit_fusion_calibration``, anchored
at the ``--params`` file's ``calibration_file``) into ``STATE_DIR/calibration.json`` (the
fusion node's ``calibration_file``, read when it starts); without it, or for a weight-only
cart, on the shelf events' product posteriors in the review database. With ``--yolo`` a YOLO
dataset of the reviewed crops, with ``--hands`` the hand-window classification dataset of the
reviewed evidence (``store_review.export.export_hand_windows``: ``empty`` and SKU folders,
hand proposals from the shipped crop model run on each evidence crop; a reviewed product is
looked for only in the hands of the shopper the answer names, and in the one the shipped
classifier sees a product in, :func:`classifier_choice`, unless ``--nearest-hand``), added to
what the folder already holds, and with ``--fine-tune`` the shipped hand SKU classifier
fine-tuned on it (``store_perception.train.fine_tune_hand_classifier``: ``store_hand_sku.pt``,
its prior and ONNX export in that folder; the detector's ``hand_model_path`` can then name it).
The last two need torch and ultralytics (store_perception).

``--db`` and ``--cart-db`` may each be given more than once (several lanes, or a bench's runs,
each with its own databases): the labelled examples and decided events of all of them are
learned from together. ``--yolo`` and ``--hands`` take one review database.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

from store_cart.db import CartDb, CartDbError
from store_cart.engine import cart_params_of, CartParams, fused_params
from store_cart.thresholds import read_thresholds
from store_common.description import load_store, StoreConfigError
from store_common.params import load_params_file
from store_fusion.calibration import Platt

from store_review.export import export_hand_windows, export_yolo
from store_review.learning import (CREDIBILITY, fit_weight_models, fused_rows,
                                   labelled_pairs, MIN_LABELLED, population_pairs,
                                   refit_fusion_calibration, tune_fused_bars, tune_thresholds,
                                   write_thresholds, write_weight_models)
from store_review.store import ReviewDbError, ReviewStore


def crop_model_proposals(detector, conf: float = 0.05):
    """A callable: evidence crop (BGR) -> hand boxes (x0, y0, x1, y1) of the detector's crop
    model scoring at least ``conf``. The evidence crop (the plate with its surroundings, at
    full resolution) is the window: made square (grey padding) and resized to the crop model's
    input, about the scale of its training crops around shoppers."""
    from store_perception.crops import crop_window, cut, to_image
    if detector.crop_model is None:
        raise ValueError('hand proposals need the detector\'s crop model (crop_model_path)')
    hand = [k for k, v in detector.crop_names.items() if v == 'hand']

    def proposals(image):
        h, w = image.shape[:2]
        win = crop_window((0, 0, w, h), w, h, 0.0)
        [(boxes, scores, classes)] = detector.crop_model.predict(
            [cut(image, win, detector.crop_size)], imgsz=detector.crop_size, conf=conf,
            iou=detector.iou, max_det=detector.max_det)
        if not len(boxes):
            return []
        xyxy = to_image(boxes, win, detector.crop_size)
        return [tuple(float(v) for v in b) for b, c in zip(xyxy, classes) if int(c) in hand]
    return proposals


# which hand holds a reviewed product (classifier_choice's gates), measured on rendered events
# against the renderer's truth (docs/RESULTS.md, "Hand labels that name the hand")
CHOOSE_MIN_P_PRODUCT = 0.25
CHOOSE_OTHER_SKU_MAX = 0.5


def classifier_choice(classifier, min_p_product: float = CHOOSE_MIN_P_PRODUCT,
                      other_sku_max: float = CHOOSE_OTHER_SKU_MAX):
    """A ``choose`` for export_hand_windows: of the hands near the plate, the one a
    HandSkuClassifier names the reviewer's SKU with the highest p(product); if it names it on
    none, the most product-like one (the reviewer says a product left in a hand; the
    classifier only picks which hand). None when that hand's p(product) is below
    ``min_p_product``: the product is not seen in any of them (hidden behind the body, or in
    the other hand out of view), and a window labelled with it would teach the classifier to
    call an empty-looking hand a product. A hand the classifier names another SKU with a SKU
    score above ``other_sku_max`` is not chosen: most often the shopper's other hand, holding
    what they took before."""
    def choose(image, boxes, sku):
        answers = classifier.classify(image, boxes)
        ok = [i for i, a in enumerate(answers)
              if a.p_product >= min_p_product and (a.sku == sku or a.sku_score <= other_sku_max)]
        if not ok:
            return None
        return max(ok, key=lambda i: (answers[i].sku == sku, answers[i].p_product))
    return choose


def hand_learning(db, catalog, hands_dir: str, fine_tune_dir: str | None,
                  epochs: int, by_classifier: bool = True) -> str:
    """Export the hand windows (and fine-tune); returns a summary line. ``by_classifier``: the
    shipped classifier picks which of the named shopper's hands holds the reviewed product
    (:func:`classifier_choice`); otherwise the nearest to the plate."""
    import hashlib

    from store_perception.detection import CROP_WEIGHTS, Detector, resolve_model_path
    from store_perception.hand_sku import HAND_WEIGHTS, HandSkuClassifier
    from store_perception.train import fine_tune_hand_classifier
    detector = Detector(None, crop_model_path=CROP_WEIGHTS)
    choose = classifier_choice(HandSkuClassifier(resolve_model_path(None, HAND_WEIGHTS))) \
        if by_classifier else None
    tag = hashlib.sha256(str(pathlib.Path(db.path).resolve()).encode()).hexdigest()[:6]
    counts = export_hand_windows(db, hands_dir, crop_model_proposals(detector),
                                 class_names=sorted(catalog.products), tag=f'{tag}_',
                                 choose=choose)
    line = f'hand windows in {hands_dir}: {counts}'
    if fine_tune_dir:
        weights = fine_tune_hand_classifier(hands_dir, fine_tune_dir, epochs=epochs,
                                            use_val=True)
        line += f'\nfine-tuned hand SKU classifier: {weights}'
    return line


def fused_rows_of(path: str, cannot_tell=()) -> list[dict]:
    """:func:`learning.fused_rows` of the cart database at ``path``."""
    if not os.path.isfile(os.path.expanduser(path)):
        raise CartDbError(f'{path}: no such file (the cart node\'s db_path)')
    cart_db = CartDb(os.path.expanduser(path))
    try:
        return fused_rows(cart_db, cannot_tell)
    finally:
        cart_db.close()


def calibration_in_force(params_path: str | None) -> tuple[Platt, str]:
    """The fusion's calibration the graph ships (the ``fusion:`` section's
    ``calibration_file`` of the parameters file, relative to that file), which a refit is
    anchored at, and where it came from; the identity without one. ValueError / OSError for a
    file that cannot be read."""
    if params_path:
        cal = str(load_params_file(params_path).get('fusion', {}).get('calibration_file', '')
                  or '')
        if cal:
            path = pathlib.Path(cal)
            if not path.is_absolute():
                path = (pathlib.Path(params_path).parent / path).resolve()
            return Platt.load(path), str(path)
    return Platt(), 'the identity'


def bars_in_force(out_dir: pathlib.Path, params_path: str | None, camera: bool
                  ) -> tuple[tuple[float, float], str]:
    """(min_confidence, min_margin) that stay when there are too few labels to move them, and
    where they came from: the thresholds file in ``out_dir`` (the cart's ``thresholds_file``),
    else the ``cart:`` section of the graph's parameters file (``fused_min_confidence`` for a
    camera cart), else the cart's defaults. StoreConfigError / ValueError for a parameters
    file that cannot be read."""
    cart = None
    if params_path:     # read even when not needed: a broken file named is an error
        node = load_params_file(params_path).get('cart', {})
        cart = cart_params_of(node)
        if camera:
            cart = fused_params(cart, float(node.get('fused_min_confidence', -1.0)))
    try:
        th = read_thresholds(out_dir / 'thresholds.yaml')
        return (th['min_confidence'], th['min_margin']), str(out_dir / 'thresholds.yaml')
    except (OSError, ValueError):
        pass
    if cart is not None:
        return (cart.min_confidence, cart.min_margin), f'{params_path} (cart)'
    return (CartParams.min_confidence, CartParams.min_margin), "the cart's defaults"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='review_learn', description=__doc__.split('\n')[0])
    ap.add_argument('--db', required=True, action='append',
                    help='review database (repeatable: learned from together)')
    ap.add_argument('--store', required=True, help='store description (catalog)')
    ap.add_argument('--out-dir', required=True, help='where the overlay files go')
    ap.add_argument('--target-accuracy', type=float, default=0.995,
                    help='accuracy the auto-decided events must reach (default %(default)s)')
    ap.add_argument('--cart-db', action='append', default=[],
                    help="the cart node's database (db_path): a camera store's thresholds are "
                    "tuned on what its cart compares (repeatable)")
    ap.add_argument('--params', help="the graph's parameters file (e.g. "
                    "config/params/store.yaml): its cart bars stay while there are too few "
                    "labels, unless --out-dir holds a thresholds file already")
    ap.add_argument('--credibility', type=float, default=CREDIBILITY,
                    help="the target must be reached in this share of the calibration's "
                    "draws, not only on its mean (default %(default)s; 0: on the mean)")
    ap.add_argument('--yolo', help='also export reviewed crops as a YOLO dataset here')
    ap.add_argument('--hands', help='also export reviewed hand windows (classification '
                    'dataset: empty and SKU folders) into this folder')
    ap.add_argument('--fine-tune', help='with --hands: fine-tune the shipped hand SKU '
                    'classifier on them, weights into this folder (never the shipped one)')
    ap.add_argument('--epochs', type=int, default=3, help='fine-tuning epochs (%(default)s)')
    ap.add_argument('--nearest-hand', action='store_true',
                    help="with --hands: label the named shopper's hand nearest the plate with "
                    "the reviewed product, without asking the shipped classifier which hand "
                    "shows it")
    args = ap.parse_args(argv)
    if not 0.0 <= args.credibility < 1.0:
        ap.error(f'--credibility must be in [0, 1), got {args.credibility}')
    if args.fine_tune and not args.hands:
        ap.error('--fine-tune needs --hands (the dataset it trains on)')
    if (args.yolo or args.hands) and len(args.db) > 1:
        ap.error('--yolo and --hands export one review database (give one --db)')
    try:
        store_desc = load_store(args.store)
    except StoreConfigError as exc:
        print(f'review_learn: {exc}', file=sys.stderr)
        return 2
    dbs = []
    try:
        for path in args.db:
            dbs.append(ReviewStore(os.path.expanduser(path)))
    except ReviewDbError as exc:
        for d in dbs:
            d.close()
        print(f'review_learn: {exc}', file=sys.stderr)
        return 2
    db = dbs[0]
    # "cannot tell" answers teach nothing (the cart holds them as "no change")
    cannot_tell = set().union(*(d.cannot_tell_events() for d in dbs))
    rows = []
    try:
        for path in args.cart_db:
            rows += fused_rows_of(path, cannot_tell)
    except CartDbError as exc:
        for d in dbs:
            d.close()
        print(f'review_learn: --cart-db: {exc}', file=sys.stderr)
        return 2
    out = pathlib.Path(args.out_dir)
    camera = any(r['fused'] for r in rows)
    try:
        fallback, fallback_from = bars_in_force(out, args.params, camera)
        anchor, anchor_from = calibration_in_force(args.params) if camera else (None, '')
    except (StoreConfigError, ValueError, OSError, KeyError) as exc:
        for d in dbs:
            d.close()
        print(f'review_learn: --params: {exc}', file=sys.stderr)
        return 2
    try:
        examples = [e for d in dbs for e in d.examples()]
        models = fit_weight_models(store_desc.catalog, examples)
        write_weight_models(models, out / 'weight_models.yaml')
        if camera:
            th, _prior = tune_fused_bars(rows, args.target_accuracy, fallback,
                                         args.credibility or None)
            checks = sum(1 for r in rows if r['labelled'] and r['label_chance'] < 1.0)
            how = (f'camera cart: {len(rows)} decided events, '
                   f'{sum(r["labelled"] for r in rows) - checks} reviewed, {checks} '
                   'spot-checked, bars on shopper x product')
            # the fusion node's calibration_file, by the step learning_days measures
            platt = refit_fusion_calibration(rows, anchor)
            out.mkdir(parents=True, exist_ok=True)
            platt.save(out / 'calibration.json')
            n_raw = sum(1 for r in rows if r['labelled'] and r['raw_confidence'] is not None)
            how += (f'\nfusion calibration: a {platt.a:.3f}, b {platt.b:.3f} from {n_raw} '
                    f'labelled events with a raw confidence, anchored at {anchor_from} '
                    f'(-> {out / "calibration.json"})')
        else:
            th = tune_thresholds(labelled_pairs(examples),
                                 population_pairs([e for d in dbs for e in d.shelf_events()]),
                                 target_accuracy=args.target_accuracy,
                                 fallback=fallback,
                                 credibility=args.credibility or None)
            checks = sum(1 for e in examples if e.get('label_chance', 1.0) < 1.0)
            how = f'weight cart: bars on the product posteriors ({checks} spot checks)'
        write_thresholds(th, out / 'thresholds.yaml')
        print(f'{len(examples)} labelled examples; {how}')
        if (th.min_confidence, th.min_margin) == fallback and th.n_labelled < MIN_LABELLED:
            print(f'too few labels ({th.n_labelled} < {MIN_LABELLED}): the bars of '
                  f'{fallback_from} stay')
        for sku, m in models.items():
            print(f'  {sku:<12} {m.prior_mu:8.1f} g -> {m.mu:8.2f} g (sd {m.sd:.2f}, n={m.n})')
        print(f'thresholds: min_confidence {th.min_confidence:.3f}, min_margin '
              f'{th.min_margin:.2f}: estimated accuracy {th.estimated_accuracy:.4f}'
              + (f' (at least {th.accuracy_bound:.4f} at credibility {th.credibility:g})'
                 if th.accuracy_bound is not None else '') + ', review '
              f'rate {th.estimated_review_rate:.3f} over {th.n_population} events'
              + (f' [{th.rule}]' if th.rule else ''))
        if args.yolo:
            names = sorted(store_desc.catalog.products)
            counts = export_yolo(db, args.yolo, names)
            print(f'YOLO dataset in {args.yolo}: {counts}')
        if args.hands:
            try:
                print(hand_learning(db, store_desc.catalog, args.hands, args.fine_tune,
                                    args.epochs, not args.nearest_hand))
            except (ValueError, FileNotFoundError) as exc:
                print(f'review_learn: hand classifier: {exc}', file=sys.stderr)
                return 2
    finally:
        for d in dbs:
            d.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
