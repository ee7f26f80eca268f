"""The detection model behind the benchmark's vision path: measured error rates, and what-if
runs that stay paired (changing one figure changes only what that figure governs)."""
from dataclasses import replace

import pytest

from store_bench.simcam import ASSUMED, DetectionModel

SKUS = ['CHIPS-PAPR', 'CHIPS-SALT', 'COLA-330', 'PRETZEL']


def _frames(n=400):
    """n frames, each with one shopper, one hand and the product in it."""
    return [[{'cls': 'shopper', 'bbox': (100, 100, 160, 230), 'shopper_id': 'a'},
             {'cls': 'hand', 'bbox': (150, 160, 158, 168)},
             {'cls': 'product', 'bbox': (152, 158, 162, 168), 'sku': 'CHIPS-SALT'}]
            for _ in range(n)]


def _run(stats, seed=3):
    model = DetectionModel(stats, SKUS, seed=seed, colors={'a': (200, 40, 40)})
    return [model.detect(f) for f in _frames()]


def _of(runs, cls):
    return [[d for d in dets if d.cls == cls] for dets in runs]


def _with_product(stats, **kw):
    return replace(stats, product=replace(stats.product, **kw))


def test_detections_follow_the_measured_rates():
    stats = _with_product(ASSUMED, recall=0.5, fp_per_image=0.0)
    stats = replace(stats, sku_accuracy=0.8)
    products = [d for f in _of(_run(stats), 'product') for d in f]
    assert 0.42 < len(products) / 400 < 0.58
    right = sum(d.sku == 'CHIPS-SALT' for d in products) / len(products)
    assert 0.7 < right < 0.9
    assert all(d.sku in SKUS for d in products)


@pytest.mark.parametrize('change', [{'recall': 0.98}, {'fp_per_image': 0.0},
                                    {'center_sd_rel': 0.01}])
def test_changing_the_product_figures_leaves_shoppers_and_hands_as_they_were(change):
    base, what_if = _run(ASSUMED), _run(_with_product(ASSUMED, **change))
    for cls in ('shopper', 'hand'):
        assert _of(base, cls) == _of(what_if, cls), cls


def test_a_higher_product_recall_finds_the_same_boxes_and_more():
    low = _of(_run(_with_product(ASSUMED, recall=0.4, fp_per_image=0.0)), 'product')
    high = _of(_run(_with_product(ASSUMED, recall=0.9, fp_per_image=0.0)), 'product')
    assert sum(map(len, high)) > sum(map(len, low)) * 1.8
    # the boxes the low-recall model finds, it finds where the high-recall one does, with the
    # same SKU: only the boxes that fall between the two recalls differ
    assert all(not lo or lo == hi for lo, hi in zip(low, high))


def test_a_better_sku_accuracy_only_turns_wrong_skus_right():
    kw = {'recall': 0.9, 'fp_per_image': 0.0}
    worse = _of(_run(replace(_with_product(ASSUMED, **kw), sku_accuracy=0.5)), 'product')
    better = _of(_run(replace(_with_product(ASSUMED, **kw), sku_accuracy=0.9)), 'product')
    flipped = 0
    for w, b in zip(worse, better):
        assert [(d.cx, d.cy, d.w, d.h) for d in w] == [(d.cx, d.cy, d.w, d.h) for d in b]
        for dw, db in zip(w, b):
            assert dw.sku == db.sku or db.sku == 'CHIPS-SALT'
            flipped += dw.sku != db.sku
    assert flipped > 50


def test_with_a_confusion_model_wrong_skus_go_to_the_look_alike():
    from store_fusion.sku_confusion import SkuConfusion
    conf = SkuConfusion.from_counts({'CHIPS-SALT': {'CHIPS-SALT': 20, 'PRETZEL': 15},
                                     'COLA-330': {'COLA-330': 30}})
    stats = replace(_with_product(ASSUMED, recall=0.9, fp_per_image=0.0), sku_accuracy=0.5)
    model = DetectionModel(stats, SKUS, seed=3, colors={'a': (200, 40, 40)}, confusion=conf)
    boxes = [d for f in _frames() for d in model.detect(f) if d.cls == 'product']
    wrong = [d.sku for d in boxes if d.sku != 'CHIPS-SALT']
    assert len(wrong) > 100 and wrong.count('PRETZEL') / len(wrong) > 0.8
    # the same boxes are right as without the model (paired draws): it only picks the wrong SKU
    model = DetectionModel(stats, SKUS, seed=3, colors={'a': (200, 40, 40)}, confusion=conf)
    with_model = _of([model.detect(f) for f in _frames()], 'product')
    even = _of(_run(stats), 'product')
    assert [[d.sku == 'CHIPS-SALT' for d in f] for f in with_model] == \
        [[d.sku == 'CHIPS-SALT' for d in f] for f in even]
