"""One shelf pipeline: the offline paths (store_fusion, store_review) give the events the shelf
node's object gives on the same weight stream with the launched node's parameters (no rclpy)."""
import dataclasses
import pathlib

import numpy as np
import pytest

from store_common.description import load_store
from store_common.params import load_params_file
from store_bench.fusion_offline import NS, shelf_events, T0_NS
from store_bench.review_offline import run_scenario
from store_shelf.pipeline import GondolaPipeline, load_params, NODE_NAME, PARAMETERS, \
    PipelineParams
from store_sim.generator import generate
from store_sim.physics import PhysicsParams, StorePhysics

ROOT = pathlib.Path(__file__).resolve().parents[2]
PARAMS_FILE = ROOT / 'config' / 'params' / 'store.yaml'
RATE_HZ = 40.0
TAIL_S = 8.0


@pytest.fixture(scope='module')
def store():
    return load_store(ROOT / 'config' / 'stores' / 'demo.yaml')


@pytest.fixture(scope='module')
def scenario(store):
    # level 3: concurrent shoppers, straddled units, adjacent grabs at once
    return generate(store, 20034, 3)


def node_path_events(store, scenario, tail_s: float = TAIL_S) -> list:
    """As the launched graph: each gondola's node declares PARAMETERS (values from the params
    file's section, else the declared defaults) and gets one PlateWeights message per
    controller every 0.1 s, its samples time-major, its plates in the store's order. The
    physics' noise depends on the stream's length: ``tail_s`` after the scenario's end."""
    section = load_params_file(PARAMS_FILE)[NODE_NAME]
    values = {name: section.get(name, default) for name, (default, *_r) in PARAMETERS.items()}
    params = PipelineParams.from_values(values)
    phys = StorePhysics(store, scenario, params=PhysicsParams())
    t = np.arange(0.0, scenario.duration_s + tail_s, 1.0 / RATE_HZ)
    counts, not_ready = phys.adc(t)
    grams = phys.counts_to_grams(counts)
    row = {pid: k for k, pid in enumerate(phys.plate_ids)}
    stamps = T0_NS + np.round(t * NS).astype(np.int64)
    nodes = []
    for g in store.gondolas:
        pipe = GondolaPipeline(store, g.id, params)
        topics = {c.id: [p.id for p in store.plates_of_gondola(g.id)
                         if p.load_cell.controller_id == c.id]
                  for c in store.controllers_of_gondola(g.id)}
        nodes.append((pipe, topics))
    out = []
    per = int(round(0.1 * RATE_HZ))
    for i0 in range(0, len(t), per):
        for pipe, topics in nodes:
            for ctrl, plates in topics.items():
                msg = [(p, int(stamps[i]), float(grams[row[p], i]), not not_ready[row[p], i])
                       for i in range(i0, min(len(t), i0 + per)) for p in plates]
                out += pipe.on_samples(f'/store/{ctrl}/plate_weights', msg)
    return sorted(out, key=lambda e: (e.settled_ns, e.event_id))


def test_offline_paths_give_the_node_pipelines_events(store, scenario):
    live = node_path_events(store, scenario)
    takes = sum(a.kind == 'take' for s in scenario.shoppers for a in s.actions)
    assert len(live) >= takes >= 5
    assert any(len(e.plate_ids) > 1 for e in live)          # a straddled unit was merged
    assert all(e.hypotheses and e.gondola_id == store.plate(e.plate_ids[0]).gondola_id
               for e in live)
    assert shelf_events(store, scenario, tail_s=TAIL_S) == live
    # the review path plays the weights until the reviewer's last answer could come
    review = run_scenario(store, scenario, reviewer_delay_s=20.0).shelf_events
    assert review == [e.to_dict() for e in node_path_events(store, scenario, 20.0 + 10.0)]


def test_offline_paths_read_the_params_file(store, scenario, tmp_path):
    assert load_params(PARAMS_FILE) == load_params()        # $STORE_WS's file by default
    doc = PARAMS_FILE.read_text().replace('min_step_grams: 10.0', 'min_step_grams: 400.0')
    assert 'min_step_grams: 400.0' in doc
    changed = tmp_path / 'store.yaml'
    changed.write_text(doc)
    params = load_params(changed)
    assert params.detector.min_step_grams == 400.0
    assert params == dataclasses.replace(
        load_params(), detector=dataclasses.replace(load_params().detector,
                                                    min_step_grams=400.0))
    heavy = shelf_events(store, scenario, pipeline_params=params)
    assert heavy and all(abs(e.delta_grams) >= 400.0 - 5.0 for e in heavy)
    assert len(heavy) < len(shelf_events(store, scenario))
