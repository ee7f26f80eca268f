"""End-to-end accuracy on synthetic single takes and returns (signal -> steps -> events -> top
hypothesis), no benchmark data: random catalog SKUs on their home plates, realistic noise, drift,
hand presses, ringing and not-ready samples. Run with ``-s`` to see the figures."""
import numpy as np

from store_shelf.hypotheses import ACTION_RETURN, ACTION_TAKE, HypothesisRanker, PlateInventory
from store_shelf.merge import EventMerger
from store_shelf.steps import PlateStepDetector
from shelf_synth import Action, deliver, PlateSignal

NS = 1_000_000_000


def trial(store, ranker, rng, max_quantity):
    plate_id = str(rng.choice(sorted(store.planogram)))
    sku = store.planogram[plate_id].sku
    product = store.catalog[sku]
    quantity = int(rng.integers(1, max_quantity + 1))
    action = ACTION_TAKE if rng.random() < 0.5 else ACTION_RETURN
    grams = sum(rng.normal(product.unit_grams, product.unit_grams_sd) for _ in range(quantity))
    sig = PlateSignal(base_grams=float(rng.uniform(500, 9000)),
                      noise_grams=float(rng.uniform(0.3, 0.6)),
                      drift_grams_per_hour=float(rng.uniform(-5, 5)),
                      nr_probability=0.01,
                      actions=[Action(4.0, grams if action == ACTION_RETURN else -grams,
                                      reach_s=float(rng.uniform(0.5, 1.2)),
                                      press_grams=float(rng.uniform(200, 1500)),
                                      ring_grams=float(rng.uniform(2, 0.1 * grams + 5)))])
    det = PlateStepDetector(plate_id)
    merger = EventMerger(store.adjacent_plates)
    for s in deliver({plate_id: det}, {plate_id: sig.samples(8.0, rng)}):
        merger.add(s)
    events = merger.flush()
    if len(events) != 1:
        return False, f'{sku} x{quantity} action {action}: {len(events)} events'
    e = events[0]
    best = ranker.rank(e.plate_ids, e.delta_grams, e.noise_grams,
                       PlateInventory.from_store(store))[0]
    ok = (best.sku, best.action, best.quantity) == (sku, action, quantity)
    return ok, (f'{sku} x{quantity} action {action}: delta {e.delta_grams:.1f} -> '
                f'{best.sku or "UNKNOWN"} x{best.quantity} p={best.posterior:.2f}')


def accuracy(store, seed, n, max_quantity):
    rng = np.random.default_rng(seed)
    ranker = HypothesisRanker.from_store(store)
    results = [trial(store, ranker, rng, max_quantity) for _ in range(n)]
    wrong = [why for ok, why in results if not ok]
    return 1.0 - len(wrong) / n, wrong


def test_single_unit_takes_and_returns_top1_accuracy(store):
    acc, wrong = accuracy(store, seed=2024, n=200, max_quantity=1)
    print(f'\nsingle-unit takes/returns on home plates: top-1 accuracy {acc:.1%} over 200 '
          f'events; wrong: {wrong}')
    assert acc >= 0.97, wrong


def test_multi_unit_grabs_top1_accuracy(store):
    acc, wrong = accuracy(store, seed=7, n=100, max_quantity=3)
    print(f'\n1-3 unit takes/returns on home plates: top-1 accuracy {acc:.1%} over 100 events; '
          f'wrong: {wrong}')
    assert acc >= 0.90, wrong
