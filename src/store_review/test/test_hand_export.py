"""The console's export of reviewed evidence as hand windows (classification dataset)."""
import pathlib

import cv2
from helpers import request, S
import numpy as np

from store_perception.crops import cut
from store_perception.hand_sku import hand_window
from store_review.export import export_hand_windows, hand_at_plate, hand_label, hand_owner
from store_review.learn_cli import main as learn_main
from store_review.store import ReviewStore

DEMO_STORE = pathlib.Path(__file__).resolve().parents[3] / 'config' / 'stores' / 'demo.yaml'
START = 10 * S          # the shelf event's start (in its id)
SETTLED = 11 * S        # the request's stamp: the event settled
PLATE = [60, 50, 40, 30]            # plate box in the crop (x, y, w, h)
AT_PLATE = [74, 58, 84, 68]         # a hand on the plate
AWAY = [150, 10, 160, 20]           # a hand far from it


def crop_image(seed: int) -> np.ndarray:
    """A smooth picture (JPEG keeps it within a few levels) that differs per seed."""
    yy, xx = np.mgrid[0:120, 0:200]
    img = np.stack([(xx + seed) % 256, (yy * 2 + seed) % 256, (xx + yy) % 256], axis=2)
    return img.astype(np.uint8)


def add_event(store, tmp_path, plate: str, sku: str, action: int, stamps_s, hands=None,
              plate_box=PLATE, reviewer_quantity: int = 1, shoppers=None):
    req = request(f'{plate}@{START}', stamp_s=SETTLED / S)
    store.add_request(req.to_dict(), SETTLED)
    for k, t in enumerate(stamps_s):
        path = tmp_path / f'{plate}_{k}.png'
        cv2.imwrite(str(path), crop_image(7 * k + sum(map(ord, plate))))
        meta = {'width': 200, 'height': 120, 'plate_box_in_crop': plate_box}
        if hands is not None:
            meta['hands'] = hands
        if shoppers is not None:
            meta['shoppers'] = shoppers
        store.add_evidence(req.request_id, 'image', f'cam1@{int(t * S)}', int(t * S), meta,
                           str(path))
    q = reviewer_quantity if sku else 0
    store.decide(req.request_id, 'alice', 'reviewer', 0,
                 {'sku': sku, 'quantity': q, 'action': action if q else 0,
                  'shopper_id': 'acct-a' if q else ''}, SETTLED + S)
    return req


def windows(root):
    return {p.parent.name: sorted(p.parent.glob('*.jpg'))
            for p in sorted(root.glob('train/*/*.jpg'))}


def test_labels_follow_the_answer_and_the_frame_time():
    take = {'sku': 'COLA-330', 'quantity': 1, 'action': 1}
    ret = {'sku': 'COLA-330', 'quantity': 1, 'action': 2}
    none = {'sku': '', 'quantity': 0, 'action': 0}
    assert hand_label(take, START, SETTLED, START - S) == 'empty'
    assert hand_label(take, START, SETTLED, START + S // 2) == 'COLA-330'
    assert hand_label(ret, START, SETTLED, START - 1) == 'COLA-330'
    assert hand_label(ret, START, SETTLED, START + S // 2) is None      # being put down
    assert hand_label(ret, START, SETTLED, SETTLED + 1) == 'empty'
    assert hand_label(none, START, SETTLED, START) == 'empty'
    # a SKU with quantity 0 is "no product change"
    assert hand_label({'sku': 'COLA-330', 'quantity': 0, 'action': 1}, START, SETTLED,
                      START) == 'empty'


def test_hand_at_plate_is_the_nearest_hand_within_one_hand_side():
    plate = (60, 50, 40, 30)
    assert hand_at_plate([AWAY, AT_PLATE], plate) == 1
    assert hand_at_plate([AWAY], plate) is None
    # 8 px left of the plate with a 10 px hand: close enough; 12 px: not
    assert hand_at_plate([(47, 60, 57, 70)], plate) == 0
    assert hand_at_plate([(43, 60, 53, 70)], plate) is None
    assert hand_at_plate([(40, 60, 50, 70), (55, 60, 65, 70)], plate) == 1
    # a hand carrying the product away may be further: 3 hand sides
    assert hand_at_plate([(25, 60, 35, 70)], plate, max_sides=6.0) == 0
    assert hand_at_plate([(25, 60, 35, 70)], plate) is None


def test_a_hand_carrying_the_product_away_is_labelled_an_empty_one_so_far_is_not(tmp_path):
    store = ReviewStore(tmp_path / 'r.sqlite')
    carried = [25, 60, 35, 70]             # 3 hand sides left of the plate box
    add_event(store, tmp_path, 'g1.s1.p1', 'COLA-330', 1, (9.5, 10.5), [carried])
    counts = export_hand_windows(store, tmp_path / 'hands', val_share=0.0)
    assert counts['windows'] == {'COLA-330': 1} and counts['no_hand_at_plate'] == 1


def test_export_writes_hand_windows_by_class(tmp_path):
    store = ReviewStore(tmp_path / 'r.sqlite')
    # a take: one frame before the start (empty hand), two after (the SKU)
    add_event(store, tmp_path, 'g1.s1.p1', 'COLA-330', 1, (9.5, 10.5, 11.5), [AWAY, AT_PLATE])
    # a return: before the start the SKU, between start and settled unknown, after empty
    add_event(store, tmp_path, 'g1.s1.p2', 'LEMON-330', 2, (9.0, 10.5, 12.0), [AT_PLATE])
    # no product change: the hand at the plate is empty; the far hand alone is no hand
    add_event(store, tmp_path, 'g1.s1.p3', '', 0, (10.5,), [AT_PLATE])
    add_event(store, tmp_path, 'g1.s1.p4', '', 0, (10.5,), [AWAY])
    # hostile or unknown answers are skipped, never written outside the folder
    add_event(store, tmp_path, 'g1.s2.p1', '../../evil', 1, (10.5,), [AT_PLATE])
    add_event(store, tmp_path, 'g1.s2.p2', 'NOT-IN-CATALOG', 1, (10.5,), [AT_PLATE])
    # no plate box, garbage hand boxes
    add_event(store, tmp_path, 'g1.s2.p3', 'COLA-330', 1, (10.5,), [AT_PLATE], plate_box=None)
    add_event(store, tmp_path, 'g1.s2.p4', 'COLA-330', 1, (10.5,),
              [['a', 1, 2, 3], [5, 5, 1, 1], [float('nan')] * 4])
    out = tmp_path / 'hands'
    counts = export_hand_windows(store, out, class_names=['COLA-330', 'LEMON-330'],
                                 val_share=0.0)
    assert counts['windows'] == {'empty': 3, 'COLA-330': 2, 'LEMON-330': 1}
    assert counts['unknown'] == 1 and counts['skipped'] == 2
    assert counts['no_plate_box'] == 1 and counts['no_hand_at_plate'] == 2
    got = windows(out)
    assert {k: len(v) for k, v in got.items()} == counts['windows']
    assert not list(tmp_path.glob('evil*')) and not (tmp_path / 'evil').exists()
    # the window is the classifier's own rule around the hand at the plate
    first = sorted(got['COLA-330'])[0]
    ev = store.evidence_item(int(first.stem.split('_e')[1].split('_')[0]))
    img = cv2.imread(ev['path'])
    want = cut(img, hand_window(AT_PLATE, 200, 120), 64)
    assert first.stem.endswith('_h1')
    assert np.abs(cv2.imread(str(first)).astype(int) - want.astype(int)).mean() < 4
    # ultralytics: val holds train's classes
    assert sorted(p.name for p in (out / 'val').iterdir()) == sorted(got)


def test_export_uses_proposals_without_stored_hands_and_adds_to_a_folder(tmp_path):
    store = ReviewStore(tmp_path / 'r.sqlite')
    add_event(store, tmp_path, 'g1.s1.p1', 'COLA-330', 1, (10.5, 11.5))
    out = tmp_path / 'hands'
    assert sum(export_hand_windows(store, out)['windows'].values()) == 0   # no hands known
    seen = []

    def proposals(image):
        seen.append(image.shape)
        return [AWAY, AT_PLATE]
    counts = export_hand_windows(store, out, proposals, tag='a_')
    assert counts['windows'] == {'COLA-330': 2} and seen == [(120, 200, 3)] * 2
    counts = export_hand_windows(store, out, proposals, tag='b_')
    assert len(list(out.glob('train/COLA-330/*.jpg'))) == 4


def test_review_learn_exports_hand_windows(tmp_path, capsys):
    db = tmp_path / 'r.sqlite'
    store = ReviewStore(db)
    add_event(store, tmp_path, 'g1.s1.p1', 'COLA-330', 1, (9.5, 10.5), [AT_PLATE])
    store.close()
    out = tmp_path / 'hands'
    rc = learn_main(['--db', str(db), '--store', str(DEMO_STORE), '--out-dir',
                     str(tmp_path / 'state'), '--hands', str(out)])
    assert rc == 0, capsys.readouterr()
    assert 'hand windows in' in capsys.readouterr().out
    assert len(list(out.glob('train/empty/*.jpg'))) == 1
    # the pictures are colour ramps: the shipped classifier sees no product in any hand, so
    # the reviewed COLA-330 is put in none of them
    assert not list(out.glob('train/COLA-330/*.jpg'))
    nearest = tmp_path / 'nearest'
    assert learn_main(['--db', str(db), '--store', str(DEMO_STORE), '--out-dir',
                       str(tmp_path / 'state'), '--hands', str(nearest), '--nearest-hand']) == 0
    assert len(list(nearest.glob('train/COLA-330/*.jpg'))) == 1


def test_a_chooser_picks_which_hand_near_the_plate_holds_the_product(tmp_path):
    store = ReviewStore(tmp_path / 'r.sqlite')
    carried = [25, 60, 35, 70]              # 3 hand sides away: a candidate for the product
    add_event(store, tmp_path, 'g1.s1.p1', 'COLA-330', 1, (9.5, 10.5), [AWAY, AT_PLATE, carried])
    asked = []

    def choose(image, boxes, sku):
        asked.append((len(boxes), sku))
        return 1                            # the second nearest: the carried one
    out = tmp_path / 'hands'
    counts = export_hand_windows(store, out, choose=choose, val_share=0.0)
    # empty hands are never chosen: the nearest within one side; the far hand is no candidate
    assert asked == [(2, 'COLA-330')]
    assert counts['windows'] == {'empty': 1, 'COLA-330': 1}
    [win] = out.glob('train/COLA-330/*.jpg')
    assert win.stem.endswith('_h2')


def shopper(sid, box):
    return {'shopper_id': sid, 'box': box, 'candidate': True}


def test_a_hand_is_the_shoppers_whose_box_holds_it_or_is_nearest_by_a_clear_margin():
    a, b = shopper('acct-a', [0, 0, 50, 120]), shopper('acct-b', [120, 0, 50, 120])
    assert hand_owner([20, 50, 30, 60], [a, b]) == 'acct-a'          # inside a's box
    assert hand_owner([125, 50, 135, 60], [a, b]) == 'acct-b'
    # an arm reaching out of a's box: 15 px from a's, 55 px from b's (10 px hands)
    assert hand_owner([60, 50, 70, 60], [a, b]) == 'acct-a'
    # midway between the two boxes: nobody's; too far from any box (> 3 sides): nobody's
    assert hand_owner([80, 50, 90, 60], [a, b]) is None
    assert hand_owner([60, 50, 70, 60], [shopper('acct-b', [120, 0, 50, 120])]) is None
    # in both boxes (one shopper behind the other): nobody's
    c = shopper('acct-c', [10, 0, 50, 120])
    assert hand_owner([20, 50, 30, 60], [a, c]) is None
    # hostile metadata is no box
    junk = [{'shopper_id': 'x', 'box': ['a', 0, 5, 5]}, {'box': [0, 0, 50, 120]}, 'str',
            {'shopper_id': 'y', 'box': [0, 0, -5, 5]}, {'shopper_id': 'z', 'box': None}]
    assert hand_owner([20, 50, 30, 60], junk) is None
    assert hand_owner([20, 50, 30, 60], junk + [a]) == 'acct-a'


def test_the_product_is_looked_for_only_in_the_hands_of_the_shopper_the_answer_names(tmp_path):
    store = ReviewStore(tmp_path / 'r.sqlite')
    # after the take two hands are near the plate: the nearer is acct-b's (another shopper
    # reaching in), the farther, carried away, is acct-a's, whom the reviewer named
    mine, theirs = [25, 60, 35, 70], [74, 58, 84, 68]
    boxes = [shopper('acct-a', [0, 20, 40, 100]), shopper('acct-b', [70, 20, 40, 100])]
    add_event(store, tmp_path, 'g1.s1.p1', 'COLA-330', 1, (10.5,), [theirs, mine],
              shoppers=boxes)
    counts = export_hand_windows(store, tmp_path / 'hands', val_share=0.0)
    assert counts['windows'] == {'COLA-330': 1} and counts['not_their_hand'] == 1
    [win] = (tmp_path / 'hands').glob('train/COLA-330/*.jpg')
    assert win.stem.endswith('_h1')
    # the export before it knew whose hand is whose: the nearest hand, acct-b's
    counts = export_hand_windows(store, tmp_path / 'any', val_share=0.0, by_owner=False)
    [win] = (tmp_path / 'any').glob('train/COLA-330/*.jpg')
    assert win.stem.endswith('_h0') and counts['not_their_hand'] == 0
    # the named shopper has no hand near the plate: no window, rather than another's hand
    store2 = ReviewStore(tmp_path / 'r2.sqlite')
    add_event(store2, tmp_path, 'g1.s1.p2', 'COLA-330', 1, (10.5,), [theirs], shoppers=boxes)
    counts = export_hand_windows(store2, tmp_path / 'none', val_share=0.0)
    assert counts['windows'] == {} and counts['no_hand_at_plate'] == 1
    # evidence without the tracked shoppers (no tracker): the nearest hand, as before
    store3 = ReviewStore(tmp_path / 'r3.sqlite')
    add_event(store3, tmp_path, 'g1.s1.p3', 'COLA-330', 1, (10.5,), [theirs, mine])
    export_hand_windows(store3, tmp_path / 'untracked', val_share=0.0)
    [win] = (tmp_path / 'untracked').glob('train/COLA-330/*.jpg')
    assert win.stem.endswith('_h0')


class FakeClassifier:
    """classify() answers given per hand, in order: (p_product, sku, sku_score)."""

    def __init__(self, answers):
        self.answers = answers

    def classify(self, image, boxes):
        from store_perception.hand_sku import InHand
        return [InHand(p, sku, score, tuple(b)) for (p, sku, score), b in
                zip(self.answers, boxes)]


def test_the_classifier_picks_a_hand_that_shows_a_product_and_not_another_known_one():
    from store_review.learn_cli import classifier_choice
    boxes = [AT_PLATE, AWAY, [25, 60, 35, 70]]
    choose = classifier_choice(FakeClassifier([(0.9, 'OJ-1L', 0.9), (0.6, 'COLA-330', 0.3),
                                               (0.8, 'LEMON-330', 0.4)]),
                               min_p_product=0.25, other_sku_max=0.5)
    # the reviewed SKU where the classifier names it
    assert choose(None, boxes, 'COLA-330') == 1
    # named nowhere: the most product-like hand the classifier is not sure holds another SKU;
    # the hand it is sure holds OJ-1L (what the shopper took before) is never labelled
    assert choose(None, boxes, 'WATER-500') == 2
    # no hand shows a product: no window
    weak = classifier_choice(FakeClassifier([(0.1, 'COLA-330', 0.9), (0.2, '', 0.0)]),
                             min_p_product=0.25)
    assert weak(None, boxes[:2], 'COLA-330') is None
    assert classifier_choice(FakeClassifier([]))(None, [], 'COLA-330') is None
