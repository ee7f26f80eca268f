"""PlateStepDetector on synthetic signals: settled steps only, never drift or transients."""
import numpy as np
import pytest

from store_shelf.steps import PlateStepDetector, StepDetectorParams
from shelf_synth import Action, deliver, PlateSignal

NS = 1_000_000_000
SEEDS = range(6)


def run(actions, duration_s, seed, noise_grams=0.5, drift=4.0, batch_s=0.1, **kw):
    rng = np.random.default_rng(seed)
    sig = PlateSignal(noise_grams=noise_grams, drift_grams_per_hour=drift, actions=actions, **kw)
    det = PlateStepDetector('p')
    return deliver({'p': det}, {'p': sig.samples(duration_s, rng)}, batch_s), sig


@pytest.mark.parametrize('seed', SEEDS)
def test_light_take_with_noise_and_drift_is_one_step(seed):
    steps, sig = run([Action(6.0, -25.0, press_grams=400)], 14.0, seed, drift=6.0)
    assert len(steps) == 1
    s = steps[0]
    assert s.delta_grams == pytest.approx(-25.0, abs=1.0)
    assert not s.minor
    t_s = (s.settled_ns - sig.t0_s * NS) / NS
    assert 6.0 <= t_s <= 6.6          # settles just after the hand leaves (ringing)
    assert (s.start_ns - sig.t0_s * NS) / NS < 6.0   # activity began with the press
    assert 0 < s.noise_grams < 1.0


@pytest.mark.parametrize('seed', SEEDS)
def test_press_spike_that_returns_gives_no_step(seed):
    steps, _ = run([Action(5.0, 0.0, press_grams=1200, reach_s=1.0)], 12.0, seed)
    assert steps == []


@pytest.mark.parametrize('seed', SEEDS)
def test_press_then_take(seed):
    steps, _ = run([Action(5.0, -352.0, press_grams=900, ring_grams=30)], 12.0, seed,
                   noise_grams=0.6)
    assert [round(s.delta_grams) for s in steps] in ([-352], [-351], [-353])


@pytest.mark.parametrize('seed', SEEDS)
def test_put_back(seed):
    steps, _ = run([Action(5.0, 106.0, press_grams=300)], 12.0, seed)
    assert len(steps) == 1
    assert steps[0].delta_grams == pytest.approx(106.0, abs=1.0)


@pytest.mark.parametrize('seed', SEEDS)
def test_two_takes_three_seconds_apart(seed):
    steps, _ = run([Action(5.0, -62.0), Action(8.0, -62.0, press_grams=1500)], 14.0, seed)
    assert len(steps) == 2
    assert steps[0].settled_ns < steps[1].start_ns
    for s in steps:
        assert s.delta_grams == pytest.approx(-62.0, abs=1.0)


def test_hours_of_idle_with_drift_give_no_steps():
    rng = np.random.default_rng(7)
    sig = PlateSignal(noise_grams=0.6, drift_grams_per_hour=8.0,
                      drift_walk_grams_per_sqrt_hour=3.0, nr_probability=0.02)
    det = PlateStepDetector('p')
    stamps, weights, valid = sig.samples(2 * 3600.0, rng)
    steps = det.add_many(zip(stamps.tolist(), weights.tolist(), valid.tolist()))
    assert steps == []
    assert det.state == det.IDLE
    # the baseline followed the drift
    assert det.baseline_grams == pytest.approx(np.nanmean(weights[-200:]), abs=0.5)
    assert 0.45 < det.noise_grams < 0.75


def test_invalid_samples_and_out_of_order_stamps_are_skipped():
    rng = np.random.default_rng(3)
    sig = PlateSignal(actions=[Action(5.0, -38.0)], nr_probability=0.1)
    stamps, weights, valid = sig.samples(12.0, rng)
    # a 0.4 s outage right when the hand leaves
    out = (stamps >= (sig.t0_s + 4.9) * NS) & (stamps < (sig.t0_s + 5.3) * NS)
    valid = valid & ~out
    weights = np.where(valid, weights, np.nan)
    det = PlateStepDetector('p')
    steps = []
    for k, (t, w, v) in enumerate(zip(stamps.tolist(), weights.tolist(), valid.tolist())):
        steps += det.add(t, w, v)
        if k % 7 == 0:        # a repeated (stale) sample from a resent batch
            steps += det.add(t - 1_000_000, w + 500.0, True)
    assert len(steps) == 1
    assert steps[0].delta_grams == pytest.approx(-38.0, abs=1.0)
    assert det.invalid_samples > 0 and det.out_of_order_samples > 0


def test_batch_size_does_not_change_the_steps():
    acts = [Action(4.0, -104.0), Action(9.0, 25.0, press_grams=200)]
    a, _ = run(acts, 14.0, 11, batch_s=0.1)
    b, _ = run(acts, 14.0, 11, batch_s=1.7)
    assert len(a) == 2 and a == b


def test_small_residual_change_is_minor_not_a_step():
    steps, _ = run([Action(5.0, -6.0, press_grams=300)], 12.0, 2, noise_grams=0.3)
    assert len(steps) == 1 and steps[0].minor
    steps, _ = run([Action(5.0, -1.5, press_grams=300)], 12.0, 2, noise_grams=0.3)
    assert steps == []


def test_parameters_are_validated():
    with pytest.raises(ValueError):
        StepDetectorParams(min_partner_step_grams=20.0, min_step_grams=10.0).validate()
    with pytest.raises(ValueError):
        PlateStepDetector('p', StepDetectorParams(settle_window_s=0.0))
