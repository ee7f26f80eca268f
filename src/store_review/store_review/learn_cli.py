"""Learn from the review database: weight models, tuned thresholds, YOLO export.

    review_learn --db review.sqlite --store config/stores/demo.yaml --out-dir STATE_DIR \
        [--target-accuracy 0.995] [--yolo DIR]

Writes ``STATE_DIR/weight_models.yaml`` (the shelf event node's ``weight_models_file``) and
``STATE_DIR/thresholds.yaml`` (the cart node's ``thresholds_file``), and with ``--yolo`` a YOLO
dataset of the reviewed crops.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

from store_common.description import load_store, StoreConfigError

from store_review.export import export_yolo
from store_review.learning import (fit_weight_models, labelled_pairs, population_pairs,
                                   tune_thresholds, write_thresholds, write_weight_models)
from store_review.store import ReviewDbError, ReviewStore


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='review_learn', description=__doc__.split('\n')[0])
    ap.add_argument('--db', required=True, help='review database')
    ap.add_argument('--store', required=True, help='store description (catalog)')
    ap.add_argument('--out-dir', required=True, help='where the overlay files go')
    ap.add_argument('--target-accuracy', type=float, default=0.995,
                    help='accuracy the auto-decided events must reach (default %(default)s)')
    ap.add_argument('--yolo', help='also export reviewed crops as a YOLO dataset here')
    args = ap.parse_args(argv)
    try:
        store_desc = load_store(args.store)
        db = ReviewStore(os.path.expanduser(args.db))
    except (StoreConfigError, ReviewDbError) as exc:
        print(f'review_learn: {exc}', file=sys.stderr)
        return 2
    out = pathlib.Path(args.out_dir)
    try:
        examples = db.examples()
        models = fit_weight_models(store_desc.catalog, examples)
        write_weight_models(models, out / 'weight_models.yaml')
        th = tune_thresholds(labelled_pairs(examples), population_pairs(db.shelf_events()),
                             target_accuracy=args.target_accuracy)
        write_thresholds(th, out / 'thresholds.yaml')
        print(f'{len(examples)} labelled examples')
        for sku, m in models.items():
            print(f'  {sku:<12} {m.prior_mu:8.1f} g -> {m.mu:8.2f} g (sd {m.sd:.2f}, n={m.n})')
        print(f'thresholds: min_confidence {th.min_confidence:.3f}, min_margin '
              f'{th.min_margin:.2f}: estimated accuracy {th.estimated_accuracy:.4f}, review '
              f'rate {th.estimated_review_rate:.3f} over {th.n_population} events')
        if args.yolo:
            names = sorted(store_desc.catalog.products)
            counts = export_yolo(db, args.yolo, names)
            print(f'YOLO dataset in {args.yolo}: {counts}')
    finally:
        db.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
