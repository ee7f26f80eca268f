"""The hand SKU stage's plain parts: windows around hands, the product box prior, proposal
labelling and the classifier dataset's class folders (no model needed)."""
import json

import numpy as np
import pytest

from store_perception.crops import MIN_SIDE_PX
from store_perception.datasets import _same_classes, busy_hand_boxes, label_proposals
from store_perception.hand_sku import EMPTY, hand_window, HandPrior


def test_hand_window_is_square_centred_and_four_hands_wide():
    x0, y0, side = hand_window((300, 200, 310, 208), 640, 480)
    assert side == 40
    assert (x0 + side / 2, y0 + side / 2) == pytest.approx((305, 204), abs=1)


def test_hand_window_has_a_floor_and_stays_in_the_image():
    x0, y0, side = hand_window((1, 1, 4, 4), 640, 480)
    assert side == MIN_SIDE_PX
    assert x0 == 0 and y0 == 0
    x0, y0, side = hand_window((630, 470, 639, 479), 640, 480)
    assert x0 + side <= 640 and y0 + side <= 480


def test_box_prior_fits_the_median_relation_and_places_boxes():
    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(51):
        cx, cy, s = rng.uniform(50, 500), rng.uniform(50, 400), rng.uniform(6, 12)
        prop = (cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2)
        prod = (cx + 0.1 * s - 0.6 * s, cy + 0.3 * s - 0.4 * s,
                cx + 0.1 * s + 0.6 * s, cy + 0.3 * s + 0.4 * s)
        pairs.append((prop, prod, 'BAR'))
    pairs += [((0, 0, 10, 10), (3, 0, 7, 12), 'BOTTLE')] * 8   # tall: its own shape
    pairs += [((0, 0, 10, 10), (0, 0, 20, 20), 'RARE')] * 2    # too few: the global shape
    prior = HandPrior.fit(pairs, 2.5)
    assert prior.window_scale == 2.5
    assert (prior.dx, prior.dy, prior.w, prior.h) == pytest.approx((0.1, 0.3, 1.2, 0.8), abs=1e-3)
    assert prior.fitted_on == 61
    bar = prior.box((100, 100, 110, 110), 'BAR')
    assert bar == pytest.approx((100, 104, 112, 112), abs=1e-6)
    assert prior.box((100, 100, 110, 110), 'RARE') == prior.box((100, 100, 110, 110))
    x0, y0, x1, y1 = prior.box((100, 100, 110, 110), 'BOTTLE')
    assert (x1 - x0, y1 - y0) == pytest.approx((4, 12))


def test_the_reported_score_undoes_the_training_odds():
    prior = HandPrior(odds_scale=1 / 3)
    assert prior.p_product(0.75) == pytest.approx(0.5)     # odds 3 -> 1
    assert prior.p_product(0.0) == 0.0 and prior.p_product(1.0) == 1.0
    assert HandPrior().p_product(0.4) == pytest.approx(0.4)
    assert prior.p_product(0.9) > prior.p_product(0.6) > prior.p_product(0.3)


def test_box_prior_round_trips_and_names_a_broken_file(tmp_path):
    p = tmp_path / 'prior.json'
    prior = HandPrior(2.5, 0.05, -0.1, 1.3, 0.9, 12, 0.25, {'MILK-1L': [0.0, 0.1, 0.8, 1.5]})
    prior.save(p)
    assert HandPrior.load(p) == prior
    with pytest.raises(FileNotFoundError, match='missing.json'):
        HandPrior.load(tmp_path / 'missing.json')
    p.write_text(json.dumps({'dx': 1}))
    with pytest.raises(ValueError, match='prior.json'):
        HandPrior.load(p)


def test_label_proposals_matches_each_product_once_to_the_nearest_hand():
    truth = [{'cls': 'product', 'sku': 'COLA-330', 'bbox': [100, 100, 110, 108]},
             {'cls': 'hand', 'bbox': [200, 200, 207, 207]},
             {'cls': 'product', 'sku': 'MILK-1L', 'bbox': [300, 300, 310, 310]}]
    proposals = [(101, 100, 109, 107),      # on the cola
                 (98, 99, 106, 106),        # also near the cola, but farther
                 (200, 200, 207, 207),      # an empty hand
                 (330, 330, 337, 337)]      # 30 px from the milk: no match
    labels = label_proposals(proposals, truth, match_px=8.0)
    assert [name for name, _ in labels] == ['COLA-330', EMPTY, EMPTY, EMPTY]
    assert labels[0][1] == [100, 100, 110, 108]


def test_a_hand_holding_an_unseen_product_is_left_out_not_called_empty():
    record = {'boxes': [{'cls': 'hand', 'shopper_id': 'a', 'side': 'left',
                         'bbox': [200, 200, 207, 207]},
                        {'cls': 'hand', 'shopper_id': 'a', 'side': 'right',
                         'bbox': [300, 200, 307, 207]}],
              'shoppers': [{'id': 'a', 'holding': {'left': 'MILK-1L', 'right': None}}]}
    busy = busy_hand_boxes(record)
    assert busy == [[200, 200, 207, 207]]
    labels = label_proposals([(201, 200, 208, 207), (300, 201, 307, 208)], record['boxes'],
                             busy_hands=busy)
    assert [name for name, _ in labels] == [None, EMPTY]


def test_val_gets_exactly_the_train_classes(tmp_path):
    for split, label, n in (('train', 'empty', 3), ('train', 'A', 2), ('val', 'empty', 1),
                            ('val', 'B', 1)):
        d = tmp_path / split / label
        d.mkdir(parents=True)
        for i in range(n):
            (d / f'{label}{i}.jpg').write_bytes(b'x')
    counts = {'train': {'empty': 3, 'A': 2}, 'val': {'empty': 1, 'B': 1}}
    _same_classes(tmp_path, counts)
    train = sorted(p.name for p in (tmp_path / 'train').iterdir())
    val = sorted(p.name for p in (tmp_path / 'val').iterdir())
    assert train == val == ['A', 'B', 'empty']
    assert counts['train']['B'] == 1 and counts['val']['A'] == 1
