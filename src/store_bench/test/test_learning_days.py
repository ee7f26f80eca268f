"""learning_days: the learning step moves the bars the right way, the files it writes load back
through the nodes' own loaders, and a short run writes its table, JSON and PNG.

The 2-day x 2-scenario run has no camera frames (``frames_of`` returns none, so the fusion has
no shopper evidence and the cart falls back to presence, as the node does with an empty
candidate list): it checks the plumbing of the days, not the cameras' figures (those are the
benchmark's, docs/RESULTS.md)."""
import json
import pathlib

import pytest

from store_cart.engine import CartParams
from store_cart.thresholds import read_thresholds
from store_fusion.calibration import fit_platt, Platt
from store_shelf.hypotheses import load_weight_overlay

from store_bench import learning_days as ld
from store_bench.simcam import measured_stats

ROOT = pathlib.Path(__file__).resolve().parents[3]
PARAMS = ROOT / 'config' / 'params' / 'store.yaml'


def _rows(spec):
    """Labelled rows: [(p, margin, raw confidence, right, count)]."""
    out = []
    for p, margin, raw, right, n in spec:
        for _ in range(n):
            out.append({'p': p, 'margin': margin, 'raw_confidence': raw, 'labelled': True,
                        'label_right': right, 'label_chance': 1.0})
    return out


def _state(conf, margin=0.2):
    return ld.ArmState(cart=CartParams(min_confidence=conf, min_margin=margin),
                       calibration=Platt(), stats=measured_stats())


def test_learning_raises_the_bar_when_unreviewed_events_are_wrong(store, tmp_path):
    # events at p=0.6 are right only 70 % of the time, events at 0.97 always: at a bar of 0.5
    # the cart decides both alone; the tuner must lift it above 0.6 for 99 %
    rows = _rows([(0.6, 0.5, 0.6, True, 28), (0.6, 0.5, 0.6, False, 12),
                  (0.97, 0.9, 0.97, True, 60)])
    nxt = ld.learn(store, _state(0.5), rows, [], tmp_path / 'day0', target_accuracy=0.99)
    assert nxt.cart.min_confidence > 0.6
    assert read_thresholds(tmp_path / 'day0' / 'thresholds.yaml')['min_confidence'] > 0.6
    # Platt was fitted on the labels: the identity would claim 0.6 where 70 % are right
    assert Platt.load(tmp_path / 'day0' / 'calibration.json').n == len(rows)
    assert nxt.calibration.n == len(rows)


def test_learning_lowers_the_bar_when_answers_confirm_the_machine(store, tmp_path):
    # everything the reviewers saw between 0.7 and 0.9 was right (only coin tosses at 0.4 were
    # not): a bar of 0.9 reviews for nothing, and the tuner must lower it
    rows = _rows([(0.4, 0.1, 0.4, True, 10), (0.4, 0.1, 0.4, False, 10),
                  (0.75, 0.6, 0.75, True, 40), (0.85, 0.7, 0.85, True, 40),
                  (0.99, 0.9, 0.99, True, 40)])
    nxt = ld.learn(store, _state(0.9), rows, [], tmp_path / 'day0', target_accuracy=0.99)
    assert nxt.cart.min_confidence < 0.9


def test_learned_weights_go_through_the_shelf_nodes_loader(store, tmp_path):
    sku, prod = sorted(store.catalog.products.items())[0]
    true_unit = prod.unit_grams + 1.5 * prod.unit_grams_sd
    examples = [{'product': {'sku': sku, 'action': 1, 'quantity': 1},
                 'delta_grams': -true_unit} for _ in range(30)]
    nxt = ld.learn(store, _state(0.5), [], examples, tmp_path / 'd', target_accuracy=0.99)
    overlay = load_weight_overlay(str(tmp_path / 'd' / 'weight_models.yaml'))
    assert nxt.overlay == overlay
    assert abs(overlay[sku]['unit_grams'] - true_unit) < abs(prod.unit_grams - true_unit) / 2
    # too few labels: the thresholds in force stay
    assert nxt.cart.min_confidence == 0.5


def test_two_days_write_files_the_nodes_load_and_a_table_and_png(store, tmp_path):
    calls = []

    def classifier(st, day_scenarios, decided, work_dir, prev):
        calls.append((len(day_scenarios), list(decided), prev))
        stats = measured_stats().to_dict()
        stats['sku_accuracy'] = 0.97
        return {'detector_stats': stats, 'weights': str(work_dir / 'w.pt'), 'report': 'fake'}

    days = ld.run_experiment(store, PARAMS, ld.day_plan(2, 2, 20000), tmp_path,
                             frames_of=lambda st, sc: [], classifier=classifier,
                             start_bars=(0.85, 0.4), heldout=[(29000, 2), (29001, 3)])
    assert [(d['day'], d['arm']) for d in days] == [
        (0, 'control'), (0, 'learning'), (1, 'control'), (1, 'learning')]
    for d in days:
        assert d['events'] > 0 and d['scenarios'] == 2
        assert 0.0 <= d['review_rate'] <= 1.0 and 0.0 <= d['unreviewed_accuracy'] <= 1.0
    # the same seeds on both arms on the first day (nothing learned yet): same figures
    assert days[0]['events'] == days[1]['events'] and days[0]['reviews'] == days[1]['reviews']
    # both arms start from the bars asked for; the control keeps them
    assert [(d['min_confidence'], d['min_margin']) for d in days[:3]] == [(0.85, 0.4)] * 3
    # the held-out set: the same events every day, each arm with its state of the day
    ho = [d['heldout'] for d in days]
    assert all(h['scenarios'] == 2 and h['events'] == ho[0]['events'] > 0 for h in ho)
    assert ho[0] == ho[1] and ho[0] == ho[2]        # nothing learned: same as day 0
    for day in (0, 1):
        d = tmp_path / 'learning' / f'day{day}'
        Platt.load(d / 'calibration.json')
        read_thresholds(d / 'thresholds.yaml')
        load_weight_overlay(str(d / 'weight_models.yaml'))
    # day 1 of the learning arm ran with what day 0 wrote: its Platt and the classifier's stats
    learned = days[3]
    assert learned['files']['calibration'] == str(tmp_path / 'learning' / 'day0' /
                                                  'calibration.json')
    assert learned['platt'] == Platt.load(learned['files']['calibration']).to_dict()
    assert learned['detector_sku_accuracy'] == 0.97
    assert days[2]['detector_sku_accuracy'] == measured_stats().sku_accuracy
    # the classifier got the day's decided events in the agreed layout, then its own result
    assert len(calls) == 2 and calls[0][2] is None and calls[1][2]['report'] == 'fake'
    assert calls[0][1] and set(calls[0][1][0]) == {'scenario_seed', 'level', 'stamp_ns',
                                                   'plate_ids', 'sku', 'shopper_id'}
    text = ld.table(days)
    assert text.count('learning') == 2 and text.count('control') == 2
    line, held = ld.goal_lines(days)
    assert line.startswith('goal m') and 'review rate' in line
    assert held.startswith('goal m') and 'held-out set (2 scenarios' in held
    assert 'ho_rev%' in text and 'hind%' in text
    # the bars chosen with hindsight keep 99 % of the events above them right
    for d in days:
        h = d['hindsight']
        assert h['accuracy'] >= 0.99 and h['events'] == d['events']
        assert f'{h["review_rate"]:.1%}' in text
    png = tmp_path / 'p.png'
    ld.plot(days, png)
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b'\x89PNG'
    json.dumps(days, default=str)


def test_the_calibration_refit_is_anchored_and_weighs_spot_checks(store, tmp_path):
    shipped = Platt(0.25, 3.0, 65)
    state = ld.ArmState(cart=CartParams(min_confidence=0.5, min_margin=0.2),
                        calibration=shipped, stats=measured_stats())
    # a day of 8 labels, all wrong at a raw confidence of 0.9: alone they would say "0.9 means
    # never right"; anchored at the shipped fit of 65 events they only lower it
    rows = _rows([(0.9, 0.5, 0.9, False, 8)]) + _rows([(0.3, 0.1, 0.3, True, 2)])
    nxt = ld.learn(store, state, rows, [], tmp_path / 'day0', target_accuracy=0.99)
    free = fit_platt([(r['raw_confidence'], r['label_right']) for r in rows])
    assert nxt.calibration(0.9) < shipped(0.9)
    assert abs(nxt.calibration(0.9) - shipped(0.9)) < abs(free(0.9) - shipped(0.9))
    # the next day's refit is anchored at the shipped fit again, not at day 0's
    assert nxt.shipped_calibration == shipped
    # a spot check's label (chance 0.1) counts as ten reviews' labels
    audit = [dict(r, label_chance=0.1) for r in rows[:8]]
    tenfold = [dict(r) for r in rows[:8] for _ in range(10)]
    a = ld.learn(store, state, audit + rows[8:], [], tmp_path / 'a', target_accuracy=0.99)
    b = ld.learn(store, state, tenfold + rows[8:], [], tmp_path / 'b', target_accuracy=0.99)
    assert a.calibration.a == pytest.approx(b.calibration.a, rel=1e-6)
    assert a.calibration.b == pytest.approx(b.calibration.b, rel=1e-6)
