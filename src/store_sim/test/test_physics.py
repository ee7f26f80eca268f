"""Plate physics and ADC model: settled steps, press transients, straddle split, noise, speed."""
import pathlib
import time

import numpy as np
import pytest

from store_common.description import load_store
from store_sim.generator import generate
from store_sim.physics import ADC_MAX, StorePhysics
from store_sim.scenario import Action, load_scenario, Scenario, Shopper

ROOT = pathlib.Path(__file__).resolve().parents[3]
STORE = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')
DEMO = load_scenario(ROOT / 'config' / 'scenarios' / 'demo.yaml', STORE)
RATE_HZ = 40.0


@pytest.fixture(scope='module')
def run():
    ph = StorePhysics(STORE, DEMO)
    t = np.arange(-5.0, DEMO.duration_s + 5.0, 1 / RATE_HZ)
    counts, nr = ph.adc(t)
    grams = ph.counts_to_grams(counts)
    grams[nr] = np.nan
    return ph, t, grams


def window(t, grams, k, lo, hi):
    sel = (t >= lo) & (t < hi)
    return grams[k, sel]


def test_settled_weights_match_truth_deltas(run):
    ph, t, grams = run
    assert len(ph.events) == 11           # 10 actions, one straddles two plates
    for ev in ph.events:
        k = ph.index[ev.plate_id]
        before = np.nanmean(window(t, grams, k, ev.reach_start_s - 1.0, ev.reach_start_s - 0.1))
        after = np.nanmean(window(t, grams, k, ev.t_s + 0.6, ev.t_s + 1.6))
        assert after - before == pytest.approx(ev.delta_grams, abs=0.6), ev
    # the moved weights are real unit weights of the catalog products
    for (shopper, j, moved), ev in zip(ph.action_grams, sorted(
            (e for e in ph.events if e.plate_id == DEMO.shopper(e.shopper_id)
             .actions[e.action_index].plate), key=lambda e: e.t_s)):
        a = DEMO.shopper(shopper).actions[j]
        prod = STORE.catalog[a.sku]
        assert moved == pytest.approx(prod.unit_grams * a.quantity,
                                      abs=5 * prod.unit_grams_sd * a.quantity)


def test_truth_settled_grams_follow_the_actions(run):
    ph, _, _ = run
    k = ph.index['g1.s1.p1']
    before, after = ph.settled_grams([6.9, 7.1])[k]
    assert before - after == pytest.approx(352.0, abs=15)
    assert ph.settled_grams([-1000.0])[k][0] == pytest.approx(ph.initial_grams[k])
    # the GUM-MINT returned at 17 s is one of the two units taken at 12 s
    g = ph.index['g2.s3.p1']
    w0, w1, w2 = ph.settled_grams([11.0, 13.0, 18.0])[g]
    taken = w0 - w1
    assert taken == pytest.approx(50.0, abs=3)
    assert 0 < w2 - w1 < taken


def test_press_transient_before_the_item_leaves(run):
    ph, t, grams = run
    for ev in ph.events:
        a = DEMO.shopper(ev.shopper_id).actions[ev.action_index]
        if a.straddle:
            continue
        k = ph.index[ev.plate_id]
        base = np.nanmedian(window(t, grams, k, ev.reach_start_s - 1.0, ev.reach_start_s))
        press = np.nanmax(window(t, grams, k, ev.reach_start_s, ev.t_s)) - base
        assert 150.0 < press < 2500.0, ev
        assert 0.5 < ev.t_s - ev.reach_start_s < 1.0
        # ringing after t_s, then settled within a few tenths of a second
        ring = window(t, grams, k, ev.t_s, ev.t_s + ev.ring_s)
        settled = window(t, grams, k, ev.t_s + 0.5, ev.t_s + 1.5)
        assert np.nanstd(ring) > 3 * np.nanstd(settled)


def test_straddle_split_sums_to_the_unit_weight(run):
    ph, t, grams = run
    evs = [e for e in ph.events if e.t_s == 57.0]
    assert {e.plate_id for e in evs} == {'g1.s1.p3', 'g1.s1.p2'}
    moved = [m for s, j, m in ph.action_grams if s == 'acct-0003' and j == 2][0]
    assert sum(e.delta_grams for e in evs) == pytest.approx(-moved)
    measured = []
    for e in evs:
        k = ph.index[e.plate_id]
        measured.append(np.nanmean(window(t, grams, k, 58.0, 59.0))
                        - np.nanmean(window(t, grams, k, 54.0, 55.5)))
        assert 0.3 < e.delta_grams / -moved < 0.7
    assert sum(measured) == pytest.approx(-moved, abs=1.0)
    assert sum(measured) == pytest.approx(-276.0, abs=10.0)


def test_noise_std_in_range_and_quantised(run):
    ph, t, grams = run
    counts, _ = ph.adc(np.arange(0, 2.0, 1 / RATE_HZ))
    assert counts.dtype == np.int64
    idle = [k for k, pid in enumerate(ph.plate_ids)
            if not any(e.plate_id == pid for e in ph.events)]
    assert len(idle) > 10
    stds = np.array([np.nanstd(window(t, grams, k, 0.0, 60.0)) for k in idle])
    assert np.all((stds > 0.25) & (stds < 0.7)), stds


def test_drift_is_slow():
    ph = StorePhysics(STORE, DEMO)
    d = ph.drift_grams([0.0, 3600.0])
    assert np.all(np.abs(d[:, 1] - d[:, 0]) < 4.0)
    assert np.any(np.abs(d[:, 1] - d[:, 0]) > 0.5)


def test_saturation_and_not_ready():
    ph = StorePhysics(STORE, DEMO)
    ph.tare_counts[0] = ADC_MAX - 5
    counts, nr = ph.adc(np.arange(0, 600.0, 1 / RATE_HZ))
    assert counts[0].max() == ADC_MAX
    assert 0 < nr.sum() < 0.001 * nr.size


def test_deterministic_for_a_seed():
    a, b = StorePhysics(STORE, DEMO), StorePhysics(STORE, DEMO)
    t = np.arange(0, 30, 0.025)
    assert np.array_equal(a.load_grams(t), b.load_grams(t))
    assert np.array_equal(a.adc(t)[0], b.adc(t)[0])
    c = StorePhysics(STORE, DEMO, seed=DEMO.seed + 1)
    assert not np.array_equal(a.load_grams(t), c.load_grams(t))


def test_multi_item_take_removes_distinct_units():
    sc = Scenario('demo_store', 3, 30.0, [Shopper('a', 1.0, 20.0, [
        Action(5.0, 'take', 'g3.s3.p1', 'APPLE', 3)])])
    ph = StorePhysics(STORE, sc)
    k = ph.index['g3.s3.p1']
    w0, w1 = ph.settled_grams([4.0, 6.0])[k]
    assert w0 - w1 == pytest.approx(3 * 182.0, abs=5 * 14.0 * 3)
    assert w0 - w1 != pytest.approx(3 * 182.0, abs=1e-6)


def test_sixty_seconds_of_27_plates_is_fast():
    sc = generate(STORE, 5, 3)
    t0 = time.perf_counter()
    ph = StorePhysics(STORE, sc)
    t = np.arange(0, 60.0, 1 / RATE_HZ)
    for c in STORE.controllers:
        rows, mask = ph.controller_rows(c.id, t)
        assert rows.shape == (t.size, c.n_channels) == mask.shape
    assert time.perf_counter() - t0 < 0.5


def test_catalog_bias_shifts_true_unit_weights():
    from store_common.description import load_store
    from store_sim.physics import PhysicsParams, StorePhysics
    from store_sim.scenario import Scenario
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[3]
    store = load_store(root / 'config' / 'stores' / 'demo.yaml')
    empty = Scenario(store=store.id, seed=1, duration_s=10.0, shoppers=[])
    plain = StorePhysics(store, empty, params=PhysicsParams())
    sku = store.planogram['g1.s1.p1'].sku
    biased = StorePhysics(store, empty, params=PhysicsParams(catalog_bias=((sku, -5.0),)))
    k = plain.index['g1.s1.p1']
    units = store.planogram['g1.s1.p1'].initial_units
    diff = biased.initial_grams[k] - plain.initial_grams[k]
    assert abs(diff - (-5.0 * units)) < 1e-6
    other = plain.index['g2.s1.p1']
    assert biased.initial_grams[other] == plain.initial_grams[other]
