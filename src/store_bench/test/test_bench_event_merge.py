"""bench_event_merge counts against the scenario truth: concurrent returns on adjacent plates, and
straddled returns swept over the catalogue (weight path only, seconds)."""
from store_bench.bench_event_merge import grouping, straddled_returns
from store_shelf.hypotheses import HypothesisParams
from store_shelf.pipeline import load_params
from store_sim.scenario import load_scenario

# live level-3 seed 23409, shortened: two shoppers put back what they took on neighbouring plates
# at about one time
SCENARIO = """
scenario:
  store: demo_store
  seed: 23409
  duration_s: 30.0
  shoppers:
    - id: ann
      enter_s: 1.0
      exit_s: 26.0
      actions:
        - {t_s: 5.0, kind: take, plate: g1.s2.p1, sku: WATER-500, quantity: 1}
        - {t_s: 18.0, kind: return, plate: g1.s2.p1, sku: WATER-500, quantity: 1}
    - id: ben
      enter_s: 2.0
      exit_s: 27.0
      actions:
        - {t_s: 9.0, kind: take, plate: g1.s2.p2, sku: SPARK-500, quantity: 3}
        - {t_s: 18.3, kind: return, plate: g1.s2.p2, sku: SPARK-500, quantity: 3}
"""


def test_two_returns_at_once_on_adjacent_plates_count_apart_only_with_the_test(store, tmp_path):
    path = tmp_path / 'returns.yaml'
    path.write_text(SCENARIO)
    sc = load_scenario(path, store)
    on = grouping(store, sc, separate=True, within_s=1.0)
    off = grouping(store, sc, separate=False, within_s=1.0)
    assert (on['return_pair_apart'], on['return_pair_merged']) == (1, 0)
    assert (off['return_pair_apart'], off['return_pair_merged']) == (0, 1)
    assert on['pair_apart'] + on['pair_merged'] == 0          # the takes are 4 s apart


def test_the_straddled_return_sweep_covers_every_product_and_adjacent_pair(store):
    gap_m = load_params().adjacent_gap_m
    pairs = {(a, b) for a in store.planogram for b in store.adjacent_plates(a, gap_m) if a < b}
    n, split = straddled_returns(store, shares=(0.35, 0.5))
    hp = HypothesisParams()
    assert n == 2 * len(pairs) * len(store.catalog.products)
    # a split is reported only where each share is whole units of its own plate's product
    for sku, a, b, share in split:
        unit = store.catalog.products[sku].unit_grams
        for plate, grams in ((a, share * unit), (b, (1 - share) * unit)):
            home = store.catalog.products[store.planogram[plate].sku]
            q = max(1, round(grams / home.unit_grams))
            sd = (q * home.unit_grams_sd ** 2 + (hp.calibration_rel * grams) ** 2
                  + hp.min_noise_grams ** 2) ** 0.5
            assert abs(grams - q * home.unit_grams) < 3 * sd, (sku, plate, grams)
