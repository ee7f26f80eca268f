"""Platt refits anchored at the calibration in force, and weighted labels (no rclpy)."""
import numpy as np
import pytest

from store_fusion.calibration import ece, fit_platt, Platt


def draw(seed, n, sharpen=2.5, shift=1.0):
    """An over-confident model: its confidence is a sharpened, shifted true probability."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    z = np.log(p / (1 - p))
    conf = 1 / (1 + np.exp(-(sharpen * z + shift)))
    ok = rng.random(n) < p
    return list(zip(conf.tolist(), ok.tolist()))


def test_few_labels_correct_the_anchor_and_do_not_replace_it():
    shipped = fit_platt(draw(1, 4000))
    held_out = draw(2, 4000)
    few = draw(3, 12)
    free = fit_platt(few)
    anchored = fit_platt(few, l2=65.0, anchor=shipped)
    # 12 labels alone give a calibration far worse on held-out data than the shipped one;
    # anchored, the refit stays near the shipped one and as good on held-out data
    e_shipped = ece([(shipped(c), ok) for c, ok in held_out])
    e_free = ece([(free(c), ok) for c, ok in held_out])
    e_anchored = ece([(anchored(c), ok) for c, ok in held_out])
    assert abs(anchored.a - shipped.a) < abs(free.a - shipped.a)
    assert e_anchored < e_free
    assert e_anchored < e_shipped + 0.02


def test_many_labels_move_an_anchored_fit_to_a_changed_world():
    old = fit_platt(draw(1, 4000))
    changed = draw(4, 4000, sharpen=1.2, shift=-0.5)   # the store's model drifted
    refit = fit_platt(changed, l2=65.0, anchor=old)
    held_out = draw(5, 4000, sharpen=1.2, shift=-0.5)
    assert ece([(old(c), ok) for c, ok in held_out]) > 0.05
    assert ece([(refit(c), ok) for c, ok in held_out]) < 0.03


def test_without_both_classes_the_anchor_stays():
    anchor = Platt(0.3, 2.0, 65)
    assert fit_platt([(0.9, True), (0.8, True)], anchor=anchor) == anchor
    assert fit_platt([(0.9, True)]) == Platt(n=1)


def test_a_weight_counts_a_label_that_many_times():
    pairs = draw(6, 300)
    doubled = fit_platt(pairs + pairs[:100])
    weighted = fit_platt(pairs, weights=[2.0] * 100 + [1.0] * 200)
    assert weighted.a == pytest.approx(doubled.a, rel=1e-6)
    assert weighted.b == pytest.approx(doubled.b, rel=1e-6, abs=1e-9)
    # weight 0 drops a label
    assert fit_platt(pairs, weights=[0.0] * 100 + [1.0] * 200).n == 200


@pytest.mark.parametrize('weights', [[1.0], [1.0, -1.0], [1.0, float('nan')]])
def test_bad_weights_are_refused(weights):
    with pytest.raises(ValueError, match='weight'):
        fit_platt([(0.9, True), (0.2, False)], weights=weights)
