"""GondolaPipeline and its parameters (no rclpy): the one object the node and the offline paths
run, the one parameter table the node declares and the offline paths check."""
import dataclasses

import numpy as np
import pytest
from store_common.params import ParameterError

from store_shelf.hypotheses import HypothesisParams
from store_shelf.pipeline import (GondolaPipeline, load_params, NODE_WIRING_PARAMS, PARAMETERS,
                                  PipelineParams)
from store_shelf.steps import StepDetectorParams
from shelf_synth import Action, PlateSignal

NS = 1_000_000_000
PLATE = 'g2.s2.p3'             # PRETZEL, 214 g


def test_parameter_table_covers_every_setting_once():
    fields = ({f.name for f in dataclasses.fields(StepDetectorParams)}
              | {f.name for f in dataclasses.fields(HypothesisParams)}
              | {f.name for f in dataclasses.fields(PipelineParams)} - {'detector', 'hypotheses'})
    assert set(PARAMETERS) == fields and not set(PARAMETERS) & NODE_WIRING_PARAMS
    defaults = PipelineParams()
    assert {k: v[0] for k, v in PARAMETERS.items()} == defaults.values()
    assert PipelineParams.from_values(defaults.values()) == defaults
    assert all(desc for _default, desc, _lo, _hi in PARAMETERS.values())


def test_values_are_checked_like_the_nodes_parameters():
    p = PipelineParams.from_values({'min_step_grams': 25, 'merge_hold_s': 1.0, 'top_k': 3,
                                    'separate_grabs': False, 'store_file': 'x.yaml'})
    assert p.detector.min_step_grams == 25.0 and isinstance(p.detector.min_step_grams, float)
    assert (p.merge_hold_s, p.hypotheses.top_k, p.separate_grabs) == (1.0, 3, False)
    with pytest.raises(ParameterError, match='min_step_gram'):
        PipelineParams.from_values({'min_step_gram': 25.0})           # a typo is not ignored
    with pytest.raises(ParameterError, match='merge_hold_s'):
        PipelineParams.from_values({'merge_hold_s': 'long'})
    with pytest.raises(ParameterError, match='inventory_min_posterior'):
        PipelineParams.from_values({'inventory_min_posterior': 1.5})
    with pytest.raises(ValueError, match='min_partner_step_grams'):
        PipelineParams.from_values({'min_step_grams': 2.0})           # below the partner's 3 g


def test_load_params_reads_the_shelf_events_section(tmp_path):
    f = tmp_path / 'store.yaml'
    f.write_text('cart:\n  ros__parameters:\n    hold_s: 1.0\n'
                 'shelf_events:\n  ros__parameters:\n    min_step_grams: 30.0\n'
                 '    merge_gap_s: 0.5\n    weight_models_file: w.yaml\n')
    p = load_params(f)
    assert (p.detector.min_step_grams, p.merge_gap_s) == (30.0, 0.5)
    assert p.hypotheses == HypothesisParams()
    f.write_text('cart:\n  ros__parameters:\n    hold_s: 1.0\n')
    assert load_params(f) == PipelineParams()
    f.write_text('shelf_events:\n  ros__parameters:\n    settle_window: 0.4\n')
    with pytest.raises(ParameterError, match='settle_window'):
        load_params(f)


def take_stream(t_take_s=3.0, duration_s=8.0, seed=1):
    sig = PlateSignal(base_grams=6000.0, actions=[Action(t_take_s, -428.0)], t0_s=1000.0)
    st, w, v = sig.samples(duration_s, np.random.default_rng(seed))
    return [(PLATE, int(a), float(b), bool(c)) for a, b, c in zip(st, w, v)]


def batches(samples, per=4):
    return [samples[i:i + per] for i in range(0, len(samples), per)]


def test_events_are_ranked_and_the_inventory_follows(store):
    pipe = GondolaPipeline(store, 'g2')
    assert pipe.watermark_ns() is None
    out = [e for b in batches(take_stream()) for e in pipe.on_samples('a', b)]
    assert len(out) == 1
    ev = out[0]
    assert (ev.gondola_id, ev.plate_ids) == ('g2', (PLATE,))
    best = ev.hypotheses[0]
    assert (best.sku, best.action, best.quantity) == ('PRETZEL', 1, 2) and best.posterior > 0.9
    assert sum(h.posterior for h in ev.hypotheses) == pytest.approx(1.0)
    initial = store.planogram[PLATE].initial_units
    assert pipe.inventory.on_plates([PLATE])['PRETZEL'] == initial - 2
    assert ev.settled_ns < pipe.watermark_ns() < pipe.released_ns


def test_a_lagging_source_holds_release_until_it_catches_up_or_times_out(store):
    samples = take_stream()
    t0, t_end = samples[0][1], samples[-1][1]
    other = 'g2.s1.p1'

    def run(b_until_s, timeout_s=2.0):
        """Source b (another controller) reports 0.5 s behind a, until ``b_until_s``."""
        pipe = GondolaPipeline(store, 'g2', PipelineParams(source_timeout_s=timeout_s))
        out, out_at = [], None
        for batch in batches(samples):
            t = batch[-1][1]
            got = pipe.on_samples('a', batch)
            if t <= t0 + int(b_until_s * NS):
                got += pipe.on_samples('b', [(other, t - NS // 2, 5000.0, True)])
            if got and out_at is None:
                out_at = t
            out += got
        return pipe, out, out_at

    # b keeps up: release follows b, 0.5 s behind a
    pipe, out, kept_up_at = run(8.0)
    assert len(out) == 1 and pipe.released_ns == t_end - NS // 2
    # b goes quiet at 3 s: it holds release for source_timeout_s, then a alone releases
    pipe, out, quiet_at = run(3.0)
    assert len(out) == 1 and pipe.released_ns == t_end
    assert quiet_at < kept_up_at
    # with a timeout longer than the rest of the stream, the quiet source holds the event
    pipe, out, _ = run(3.0, timeout_s=10.0)
    assert out == [] and pipe.merger.pending == 1
    assert pipe.released_ns <= t0 + int(2.5 * NS) < pipe.flush()[0].settled_ns


def test_samples_of_other_gondolas_are_counted_not_used(store):
    pipe = GondolaPipeline(store, 'g2')
    moved = [('g1.s1.p1', t, w, v) for _p, t, w, v in take_stream()]
    assert [e for b in batches(moved) for e in pipe.on_samples('a', b)] == []
    assert pipe.foreign_samples == len(moved)
    with pytest.raises(KeyError):
        GondolaPipeline(store, 'g9')
