"""HypothesisRanker and PlateInventory on the demo store's catalog (near-equal weights)."""
import pytest

from store_shelf.hypotheses import (ACTION_RETURN, ACTION_TAKE, HypothesisParams,
                                    HypothesisRanker, PlateInventory)

COLA_PLATE = 'g1.s1.p1'
CHOC_DARK_PLATE = 'g2.s1.p1'
PRETZEL_PLATE = 'g2.s2.p3'


@pytest.fixture()
def ranker(store):
    return HypothesisRanker.from_store(store)


@pytest.fixture()
def inventory(store):
    return PlateInventory.from_store(store)


def test_cola_taken_from_its_home_plate_beats_lemon(ranker, inventory):
    for delta in (-352.0, -353.5, -355.0):       # even a can that weighs like a LEMON
        hyps = ranker.rank([COLA_PLATE], delta, 0.3, inventory)
        assert (hyps[0].sku, hyps[0].action, hyps[0].quantity) == ('COLA-330', ACTION_TAKE, 1)
        assert hyps[0].on_home_plate and hyps[0].posterior > 0.9


def test_two_dark_chocolates_versus_one_pretzel(ranker, inventory):
    hyps = ranker.rank([CHOC_DARK_PLATE], -212.3, 0.3, inventory)
    assert (hyps[0].sku, hyps[0].quantity) == ('CHOC-DARK', 2)
    hyps = ranker.rank([PRETZEL_PLATE], -213.8, 0.3, inventory)
    assert (hyps[0].sku, hyps[0].quantity) == ('PRETZEL', 1)
    # returns: home SKU first, the other explanation still listed
    hyps = ranker.rank([CHOC_DARK_PLATE], 212.0, 0.3, inventory)
    assert (hyps[0].sku, hyps[0].quantity, hyps[0].action) == ('CHOC-DARK', 2, ACTION_RETURN)
    assert ('PRETZEL', 1) in [(h.sku, h.quantity) for h in hyps]
    hyps = ranker.rank([PRETZEL_PLATE], 214.0, 0.3, inventory)
    assert (hyps[0].sku, hyps[0].quantity) == ('PRETZEL', 1)


def test_wrong_plate_return_of_a_can_onto_chocolate(ranker, inventory):
    hyps = ranker.rank([CHOC_DARK_PLATE], 351.6, 0.3, inventory)
    assert (hyps[0].sku, hyps[0].quantity, hyps[0].action) == ('COLA-330', 1, ACTION_RETURN)
    assert hyps[0].on_home_plate is False
    assert hyps[1].sku == 'LEMON-330'                 # the near-equal can is the runner-up
    assert all(h.sku != 'CHOC-DARK' or h.posterior < 1e-3 for h in hyps)


def test_weight_that_matches_nothing_is_unknown(ranker, inventory):
    hyps = ranker.rank([COLA_PLATE], -500.0, 0.3, inventory)
    assert hyps[0].is_unknown and hyps[0].quantity == 0 and hyps[0].sku == ''
    assert hyps[0].action == ACTION_TAKE
    assert hyps[0].posterior > 0.99


@pytest.mark.parametrize('plates,delta', [([COLA_PLATE], -352.0), ([COLA_PLATE], 700.0),
                                          (['g1.s1.p2', 'g1.s1.p3'], -355.0),
                                          ([CHOC_DARK_PLATE], 3.0), (['g2.s3.p1'], -25.2)])
def test_posteriors_sum_to_one_and_are_ranked(ranker, inventory, plates, delta):
    hyps = ranker.rank(plates, delta, 0.4, inventory)
    assert 1 <= len(hyps) <= ranker.params.top_k
    assert sum(h.posterior for h in hyps) == pytest.approx(1.0, abs=1e-9)
    assert [h.posterior for h in hyps] == sorted((h.posterior for h in hyps), reverse=True)
    assert any(h.is_unknown for h in hyps) or len(hyps) == ranker.params.top_k


def test_takes_respect_the_units_present(store):
    ranker = HypothesisRanker.from_store(store)
    inv = PlateInventory.from_store(store)
    inv.units[COLA_PLATE]['COLA-330'] = 1
    hyps = ranker.rank([COLA_PLATE], -704.0, 0.3, inv)
    assert all(h.quantity <= 1 for h in hyps if h.sku == 'COLA-330')
    assert hyps[0].is_unknown


def test_misplaced_item_can_later_be_taken_from_the_wrong_plate(ranker, inventory):
    before = ranker.rank([CHOC_DARK_PLATE], -352.0, 0.3, inventory)
    assert before[0].is_unknown                       # nothing of 352 g on the plate yet
    ret = ranker.rank([CHOC_DARK_PLATE], 352.4, 0.3, inventory)
    assert inventory.apply([CHOC_DARK_PLATE], ret, min_posterior=0.5)
    assert inventory.units[CHOC_DARK_PLATE]['COLA-330'] == 1
    take = ranker.rank([CHOC_DARK_PLATE], -352.2, 0.3, inventory)
    assert (take[0].sku, take[0].quantity, take[0].on_home_plate) == ('COLA-330', 1, False)
    assert inventory.apply([CHOC_DARK_PLATE], take, min_posterior=0.5)
    assert inventory.units[CHOC_DARK_PLATE]['COLA-330'] == 0
    # and the chocolate itself is still recognised
    hyps = ranker.rank([CHOC_DARK_PLATE], -106.2, 0.3, inventory)
    assert (hyps[0].sku, hyps[0].on_home_plate) == ('CHOC-DARK', True)


def test_inventory_ignores_unconfident_or_unknown_events(ranker, inventory):
    hyps = ranker.rank([COLA_PLATE], -500.0, 0.3, inventory)
    assert not inventory.apply([COLA_PLATE], hyps)
    hyps = ranker.rank([COLA_PLATE], -352.0, 0.3, inventory)
    assert not inventory.apply([COLA_PLATE], hyps, min_posterior=1.01)
    assert inventory.units[COLA_PLATE]['COLA-330'] == 24
    assert inventory.apply([COLA_PLATE], hyps)
    assert inventory.units[COLA_PLATE]['COLA-330'] == 23


def test_top_k_and_parameter_validation(store):
    ranker = HypothesisRanker.from_store(store, HypothesisParams(top_k=3))
    assert len(ranker.rank([COLA_PLATE], 352.0, 0.3)) == 3
    with pytest.raises(ValueError):
        HypothesisParams(quantity_decay=0.0).validate()
    with pytest.raises(ValueError):
        HypothesisParams(foreign_prior=-1.0).validate()


def test_smaller_quantities_are_slightly_preferred():
    from store_common.description import Product
    catalog = {'X': Product('X', 'x', 100, unit_grams=100.0, unit_grams_sd=0.0)}
    ranker = HypothesisRanker(catalog, {'a': 'X'}, HypothesisParams(min_noise_grams=30.0))
    hyps = ranker.rank(['a'], -150.0, 0.3)           # exactly between one and two units
    assert [(h.sku, h.quantity) for h in hyps[:2]] == [('X', 1), ('X', 2)]
    assert hyps[0].posterior / hyps[1].posterior == pytest.approx(1 / 0.6, rel=0.05)


def test_weight_overlay_replaces_catalog_weights(tmp_path):
    from types import SimpleNamespace

    from store_common.description import Catalog, Product
    from store_shelf.hypotheses import HypothesisRanker, load_weight_overlay
    import pytest

    cat = Catalog('EUR', {'A': Product('A', 'a', 1, 352.0, 2.5), 'B': Product('B', 'b', 1, 355.0,
                                                                              2.5)})
    store = SimpleNamespace(catalog=cat, planogram={
        'p1': SimpleNamespace(sku='A'), 'p2': SimpleNamespace(sku='B')})
    (tmp_path / 'w.yaml').write_text('weight_models:\n  A: {unit_grams: 349.0, '
                                     'unit_grams_sd: 1.0, n: 40}\n  Z: {unit_grams: 5.0}\n')
    overlay = load_weight_overlay(str(tmp_path / 'w.yaml'))
    plain = HypothesisRanker.from_store(store)
    learned = HypothesisRanker.from_store(store, overlay=overlay)
    assert learned.products['A'].unit_grams == 349.0 and 'Z' not in learned.products
    assert cat['A'].unit_grams == 352.0          # the catalog itself is untouched
    # a return of 349 g on p1 (home of A): the learned model is surer it is A
    p_plain = plain.rank(['p1'], 349.0, 0.4)[0]
    p_learned = learned.rank(['p1'], 349.0, 0.4)[0]
    assert p_learned.sku == 'A' and p_learned.posterior > p_plain.posterior
    (tmp_path / 'bad.yaml').write_text('weight_models:\n  A: {unit_grams: -1}\n')
    with pytest.raises(ValueError, match='unit_grams must be > 0'):
        load_weight_overlay(str(tmp_path / 'bad.yaml'))
