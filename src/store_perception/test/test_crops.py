"""Second-stage crop geometry, crop labels and the end-to-end evaluation (no model needed)."""
import json

import numpy as np
import pytest

from store_perception.crops import (clip_into, crop_window, cut, distinct_windows,
                                    share_inside, to_image)
from store_perception.datasets import crop_labels, make_crop_dataset
from store_perception.detection import centre_matches, Det, nms, recall
from store_bench.evaluate import evaluate, products_by_group, stats_dict


def test_window_is_square_grown_and_inside():
    x0, y0, side = crop_window((300, 200, 340, 300), 640, 480, margin=0.25)
    assert side == 150                       # 100 px tall box, +25 % of it on each side
    assert (x0, y0) == (245, 175)            # centred on the box
    x0, y0, side = crop_window((0, 400, 40, 480), 640, 480, margin=0.25)
    assert side == 120 and x0 == 0 and y0 == 360     # shifted inside, still square


def test_window_larger_than_the_image_is_padded():
    win = crop_window((0, 0, 640, 480), 640, 480, margin=0.25)
    assert win[2] == 960
    img = np.full((480, 640, 3), 200, np.uint8)
    crop = cut(img, win, 96)
    assert crop.shape == (96, 96, 3)
    assert crop[0, 0, 0] == 114 and crop[48, 48, 0] == 200


def test_crop_boxes_map_back_to_image_pixels():
    img = np.zeros((480, 640, 3), np.uint8)
    img[250:260, 320:330] = 255                  # a 10 px bright square
    win = crop_window((300, 200, 340, 300), 640, 480)
    crop = cut(img, win, 300)                    # 150 px -> 300 px: scale 2
    ys, xs = np.nonzero(crop[:, :, 0] > 128)
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], float)
    back = to_image(box, win, 300)[0]
    assert np.allclose(back, [320, 250, 330, 260], atol=1.0)


def test_labels_mostly_outside_the_crop_are_dropped():
    win = (100, 100, 100)
    assert clip_into((90, 120, 110, 130), win, 640, 480) == (0, 20, 10, 30)     # half inside
    assert clip_into((85, 120, 105, 130), win, 640, 480, min_inside=0.4) is None  # 25 %
    labels = [(0, (110, 110, 150, 190)), (1, (120, 150, 130, 160)), (2, (195, 150, 215, 160))]
    lines = crop_labels(labels, win, 640, 480, 200)
    assert lines == ['0 0.250000 0.550000 0.100000 0.100000']   # no shopper, product 25 % in


def test_nms_merges_duplicates_from_overlapping_crops():
    boxes = np.array([[10, 10, 20, 20], [10.5, 10, 20.5, 20], [40, 40, 50, 50]], float)
    assert nms(boxes, np.array([0.6, 0.9, 0.5]), 0.5) == [1, 2]


def test_crop_dataset_from_a_yolo_dataset(tmp_path):
    import cv2
    src = tmp_path / 'ds'
    (src / 'images' / 'train').mkdir(parents=True)
    (src / 'labels' / 'train').mkdir(parents=True)
    img = np.full((480, 640, 3), 90, np.uint8)
    cv2.imwrite(str(src / 'images' / 'train' / 'a.jpg'), img)
    (src / 'labels' / 'train' / 'a.txt').write_text(
        '0 0.5 0.5 0.0625 0.2083\n1 0.5 0.5 0.0125 0.0167\n2 0.9 0.1 0.02 0.02\n')
    counts = make_crop_dataset(str(src), str(tmp_path / 'crops'), size=160, copies=3,
                               background=0.0)
    assert counts == {'train': (3, 3, 0)}      # 3 jittered crops, the hand in each
    meta = (tmp_path / 'crops' / 'data.yaml').read_text()
    assert 'hand' in meta and 'val: images/train' in meta
    assert len(list((tmp_path / 'crops' / 'images' / 'train').glob('*.jpg'))) == 3


def test_evaluation_of_perfect_and_missing_detections():
    records = [{'image': 'x', 'boxes': [
        {'cls': 'shopper', 'bbox': [100, 100, 140, 200]},
        {'cls': 'hand', 'bbox': [110, 150, 118, 158]},
        {'cls': 'product', 'bbox': [111, 151, 117, 157], 'sku': 'COLA-330'}]}]
    dets = [[Det(0, 'shopper', 0.9, 100, 100, 140, 200),
             Det(2, 'product', 0.8, 111, 151, 117, 157, sku='COLA-330'),
             Det(1, 'hand', 0.1, 300, 300, 308, 308)]]       # a low-score false positive
    ev = evaluate(records, dets, score_min=0.25)
    c = ev['classes']
    assert c['shopper']['recall'] == 1.0 and c['shopper']['ap50'] > 0.99
    assert c['product']['recall'] == 1.0 and ev['sku_accuracy'] == 1.0
    assert c['hand']['recall'] == 0.0 and c['hand']['ap50'] == 0.0
    assert c['hand']['fp_per_image'] == 0.0      # below the operating score
    st = stats_dict(ev, 'test')
    assert json.loads(json.dumps(st))['product']['center_sd_rel'] == pytest.approx(0.0)
    assert ev['products_by_sku'] == {'COLA-330': {'truth': 1, 'found': 1, 'named_right': 1}}


def test_products_in_hand_are_counted_per_sku_and_per_group():
    records = [{'image': 'x', 'boxes': [
        {'cls': 'product', 'bbox': [10, 10, 20, 20], 'sku': 'APPLE'},
        {'cls': 'product', 'bbox': [50, 50, 60, 60], 'sku': 'COLA-330'},
        {'cls': 'product', 'bbox': [90, 90, 100, 100], 'sku': 'LEMON-330'}]}]
    dets = [[Det(2, 'product', 0.8, 10, 10, 20, 20, sku='LEMON-330'),    # found, misnamed
             Det(2, 'product', 0.2, 50, 50, 60, 60, sku='COLA-330'),     # below the score
             Det(2, 'product', 0.7, 90, 90, 100, 100, sku='LEMON-330')]]
    ev = evaluate(records, dets, score_min=0.25)
    assert ev['products_by_sku'] == {
        'APPLE': {'truth': 1, 'found': 1, 'named_right': 0},
        'COLA-330': {'truth': 1, 'found': 0, 'named_right': 0},
        'LEMON-330': {'truth': 1, 'found': 1, 'named_right': 1}}
    shapes = {'APPLE': 'round', 'COLA-330': 'can', 'LEMON-330': 'can'}
    assert products_by_group(ev, shapes.get) == {
        'can': {'truth': 2, 'found': 1, 'named_right': 1},
        'round': {'truth': 1, 'found': 1, 'named_right': 0}}


def test_a_partial_box_inside_a_cut_window_is_not_cut_again():
    full = ((200, 100, 260, 260), 0.9)          # a shopper
    partial = ((205, 150, 255, 250), 0.02)      # a low-score partial box of the same shopper
    beside = ((330, 110, 390, 270), 0.03)       # a half-hidden shopper beside them
    boxes = [partial, beside, full]
    every = distinct_windows(boxes, 640, 480, 0.25)
    assert len(every) == 3                      # 1.0: every window, best score first
    assert every[0] == crop_window(full[0], 640, 480, 0.25)
    kept = distinct_windows(boxes, 640, 480, 0.25, max_inside=0.8)
    assert kept == [every[0], crop_window(beside[0], 640, 480, 0.25)]
    assert share_inside(crop_window(partial[0], 640, 480, 0.25), every[0]) > 0.8
    assert share_inside(kept[1], kept[0]) < 0.8
    assert share_inside((0, 0, 10), (100, 100, 10)) == 0.0
    assert share_inside((0, 0, 10), (0, 0, 20)) == 1.0


def test_products_are_found_by_where_their_box_is():
    truth = [{'cls': 'product', 'bbox': [100, 100, 108, 110]},      # centre (104, 105)
             {'cls': 'product', 'bbox': [300, 300, 306, 306]},      # centre (303, 303)
             {'cls': 'hand', 'bbox': [100, 100, 110, 110]}]
    dets = [Det(2, 'product', 0.9, 103, 106, 113, 116),       # centre 4 px right, 6 down
            Det(2, 'product', 0.5, 97, 98, 105, 106),         # centre 3 px left, 3 up: found
            # (nearest first), and the first box is a second box on it: not false
            Det(2, 'product', 0.6, 315, 300, 321, 306),       # 15 px from the other: false
            Det(1, 'hand', 0.9, 400, 400, 410, 410)]          # another class: ignored
    assert centre_matches(truth, dets, 'product', 8.0) == (1, 2, 1)
    assert centre_matches(truth, dets, 'product', 20.0) == (2, 2, 0)
    assert centre_matches([], dets, 'product', 8.0) == (0, 0, 3)
    assert centre_matches(truth, [], 'product', 8.0) == (0, 2, 0)
    # IoU says the found box was missed: its placement, not where the product is seen
    assert recall(truth, dets, 'product') == (0, 2)
