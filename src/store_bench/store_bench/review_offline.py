"""The weight pipeline offline, through the same pure modules the nodes use (benchmarks).

store_sim physics (ADC counts -> grams as the driver decodes them) -> one
``store_shelf.pipeline.GondolaPipeline`` per gondola (the shelf node's object with the launched
node's parameters: step detectors, event merger, hypothesis ranker, inventory) -> store_cart
CartEngine
(gate events at the scenario's scan times, ticks every 0.1 s) -> review requests -> a
:class:`SimulatedReviewer` answering after its delay -> the engine applies the decisions
(receipt revisions after exit) -> every decision becomes a labelled example (learning.py).

With ``spot_check_fraction`` > 0 the cart engine spot-checks that share of the events the
machine decided alone (as the cart node does), answered by the same reviewer: labels above the
threshold, which the threshold tuner needs. Sensor time is the simulated time; no clock is
read, no rclpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from store_cart.engine import CartEngine, CartParams
from store_cart.model import GateEventData, KIND_ENTER, KIND_EXIT, ReceiptData, ReviewRequestData
from store_shelf.pipeline import GondolaPipeline, load_params, on_sample_block, PipelineParams
from store_sim.physics import PhysicsParams, StorePhysics

from store_review.learning import make_example
from store_bench.reviewer_sim import SimulatedReviewer

NS_PER_S = 1_000_000_000
T0_NS = 1_000 * NS_PER_S       # sensor time of scenario t = 0
STEP_S = 0.1


@dataclass
class ScenarioRun:
    receipts: list[ReceiptData] = field(default_factory=list)   # every revision
    shelf_events: list[dict] = field(default_factory=list)
    requests: list[ReviewRequestData] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)
    spot_checks: int = 0
    reviewer_wrong: int = 0


def _gate_events(store, scenario) -> list[GateEventData]:
    entrance = next(g.id for g in store.gates if g.kind == 'entrance')
    exit_gate = next(g.id for g in store.gates if g.kind == 'exit')
    out = []
    for s in scenario.shoppers:
        for gate, kind, t_s in ((entrance, KIND_ENTER, s.enter_s),
                                (exit_gate, KIND_EXIT, s.exit_s)):
            t = T0_NS + int(round(t_s * NS_PER_S))
            out.append(GateEventData(f'{gate}@{t}', gate, kind, s.id, t))
    return sorted(out, key=lambda g: g.stamp_ns)


def run_scenario(store, scenario, *, overlay: dict | None = None,
                 cart_params: CartParams | None = None,
                 physics_params: PhysicsParams | None = None,
                 pipeline_params: PipelineParams | None = None,
                 reviewer_delay_s: float = 20.0, reviewer_error_rate: float = 0.0,
                 spot_check_fraction: float | None = None, seed: int = 0,
                 rate_hz: float = 40.0) -> ScenarioRun:
    """``pipeline_params``: the shelf pipeline's, default
    :func:`store_shelf.pipeline.load_params` (the launched node's values); ``overlay``: learned
    unit weights, as the node's ``weight_models_file``; ``spot_check_fraction``: replaces
    ``cart_params``'."""
    phys = StorePhysics(store, scenario, params=physics_params or PhysicsParams())
    pipes = GondolaPipeline.for_store(store, pipeline_params or load_params(), overlay)
    cart_params = cart_params or CartParams()
    if spot_check_fraction is not None:
        cart_params = replace(cart_params, spot_check_fraction=spot_check_fraction)
    engine = CartEngine(':memory:', store.catalog, store.id, cart_params)
    reviewer = SimulatedReviewer.from_scenario(scenario, T0_NS, delay_s=reviewer_delay_s,
                                               error_rate=reviewer_error_rate, seed=seed)
    run = ScenarioRun()
    gates = _gate_events(store, scenario)
    events_by_id: dict[str, dict] = {}
    due: list[tuple[int, object, ReviewRequestData]] = []

    end_s = scenario.duration_s + reviewer_delay_s + 10.0
    t_samples = np.arange(0.0, end_s, 1.0 / rate_hz)
    counts, not_ready = phys.adc(t_samples)
    grams = phys.counts_to_grams(counts)
    valid = ~not_ready
    stamps = T0_NS + np.round(t_samples * NS_PER_S).astype(np.int64)
    per_step = int(round(STEP_S * rate_hz))

    def handle(outs) -> None:
        for o in outs:
            if isinstance(o, ReceiptData):
                run.receipts.append(o)
            elif isinstance(o, ReviewRequestData):
                if o.is_spot_check:
                    run.spot_checks += 1
                else:
                    run.requests.append(o)
                due_ns, decision, ok = reviewer.answer(o, now)
                run.reviewer_wrong += not ok
                due.append((due_ns, decision, o))

    for i0 in range(0, len(t_samples), per_step):
        i1 = min(len(t_samples), i0 + per_step)
        now = int(stamps[i1 - 1])
        for data in on_sample_block(pipes, phys.plate_ids, stamps[i0:i1], grams[:, i0:i1],
                                    valid[:, i0:i1]):
            events_by_id[data.event_id] = data.to_dict()
            run.shelf_events.append(data.to_dict())
            handle(engine.on_shelf_event(data))
        while gates and gates[0].stamp_ns <= now:
            handle(engine.on_gate_event(gates.pop(0)))
        for item in sorted([d for d in due if d[0] <= now], key=lambda d: d[0]):
            due.remove(item)
            _, decision, request = item
            handle(engine.on_review_decision(decision))
            run.examples.append(make_example(request, events_by_id.get(request.event_id),
                                             decision))
        handle(engine.tick(now))
    engine.close()
    return run
