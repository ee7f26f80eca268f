"""Scenario parsing, validation against the store, and truth receipts."""
import copy
import pathlib

import pytest
import yaml

from store_common.description import load_store
from store_sim.scenario import (Action, load_scenario, save_scenario, Scenario, ScenarioError,
                                Shopper, truth_events, truth_receipts)

ROOT = pathlib.Path(__file__).resolve().parents[3]
STORE = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')

BASE = {'scenario': {
    'store': 'demo_store', 'seed': 7, 'duration_s': 40.0,
    'shoppers': [
        {'id': 'acct-0001', 'enter_s': 1.0, 'exit_s': 20.0, 'actions': [
            {'t_s': 5.0, 'kind': 'take', 'plate': 'g1.s1.p1', 'sku': 'COLA-330', 'quantity': 1},
            {'t_s': 10.0, 'kind': 'take', 'plate': 'g2.s1.p1', 'sku': 'CHOC-DARK',
             'quantity': 2},
        ]},
        {'id': 'acct-0002', 'enter_s': 3.0, 'exit_s': 30.0, 'actions': [
            {'t_s': 12.0, 'kind': 'take', 'plate': 'g1.s1.p2', 'sku': 'LEMON-330'},
            {'t_s': 16.0, 'kind': 'return', 'plate': 'g1.s2.p1', 'sku': 'LEMON-330'},
            {'t_s': 22.0, 'kind': 'take', 'plate': 'g1.s1.p3', 'sku': 'ENERGY-250',
             'straddle': 'g1.s1.p2'},
        ]},
    ]}}


def write(tmp_path, doc, name='x.yaml'):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def mutate(fn):
    doc = copy.deepcopy(BASE)
    fn(doc['scenario'])
    return doc


def test_valid_scenario_and_demo_file_load(tmp_path):
    sc = load_scenario(write(tmp_path, BASE), STORE)
    assert [s.id for s in sc.shoppers] == ['acct-0001', 'acct-0002']
    assert sc.shoppers[1].actions[2].straddle == 'g1.s1.p2'
    assert sc.shoppers[1].actions[0].quantity == 1          # default
    demo = load_scenario(ROOT / 'config' / 'scenarios' / 'demo.yaml', STORE)
    assert len(demo.shoppers) == 3


def act(i, j):
    return lambda s: s['shoppers'][i]['actions'][j]


CASES = [
    ('unknown plate', lambda s: act(1, 2)(s).update(plate='g9.s1.p1'),
     "scenario.shoppers[1].actions[2].plate: unknown plate 'g9.s1.p1'"),
    ('unknown sku', lambda s: act(0, 1)(s).update(sku='NOPE'),
     "scenario.shoppers[0].actions[1].sku: unknown sku 'NOPE'"),
    ('straddle not adjacent', lambda s: act(1, 2)(s).update(straddle='g1.s1.p1'),
     'scenario.shoppers[1].actions[2].straddle: plate g1.s1.p1 is not adjacent'),
    ('out of order', lambda s: act(0, 1)(s).update(t_s=4.0),
     'scenario.shoppers[0].actions[1].t_s: 4.0 s is before the previous action'),
    ('after exit', lambda s: act(0, 1)(s).update(t_s=25.0),
     'scenario.shoppers[0].actions[1].t_s: 25.0 s is outside the visit'),
    ('before enter', lambda s: act(1, 0)(s).update(t_s=2.0),
     'scenario.shoppers[1].actions[0].t_s: 2.0 s is outside the visit'),
    ('quantity 0', lambda s: act(0, 0)(s).update(quantity=0),
     'scenario.shoppers[0].actions[0].quantity: must be >= 1'),
    ('return not held', lambda s: act(1, 1)(s).update(sku='COLA-330'),
     'scenario.shoppers[1].actions[1].sku: shopper acct-0002 returns 1 x COLA-330 but holds 0'),
    ('take beyond inventory', lambda s: act(0, 0)(s).update(quantity=25),
     'scenario.shoppers[0].actions[0].quantity: plate g1.s1.p1 has 24 x COLA-330 left'),
    ('take sku not on plate', lambda s: act(0, 0)(s).update(sku='LEMON-330'),
     'scenario.shoppers[0].actions[0].quantity: plate g1.s1.p1 has 0 x LEMON-330 left'),
    ('same plate within 3 s', lambda s: act(0, 1)(s).update(plate='g1.s1.p2', sku='LEMON-330'),
     'scenario.shoppers[1].actions[0].t_s: 12.0 s is 2.00 s after '
     'scenario.shoppers[0].actions[1] on plate g1.s1.p2'),
    ('straddle partner within 3 s', lambda s: act(0, 1)(s).update(
        plate='g1.s1.p2', sku='LEMON-330', t_s=19.5),
     'scenario.shoppers[1].actions[2].t_s: 22.0 s is 2.50 s after '
     'scenario.shoppers[0].actions[1] on plate g1.s1.p2'),
    ('exit after end', lambda s: s['shoppers'][1].update(exit_s=50.0),
     'scenario.shoppers[1].exit_s: exit 50.0 s is after the scenario end'),
    ('duplicate shopper', lambda s: s['shoppers'][1].update(id='acct-0001'),
     "scenario.shoppers[1].id: duplicate shopper id 'acct-0001'"),
    ('wrong store', lambda s: s.update(store='other'),
     "scenario.store: scenario is for store 'other'"),
    ('missing field', lambda s: act(0, 0)(s).pop('kind'),
     'scenario.shoppers[0].actions[0].kind: missing required field'),
    ('bad kind', lambda s: act(0, 0)(s).update(kind='steal'),
     "scenario.shoppers[0].actions[0].kind: 'steal' is not one of take, return"),
]


@pytest.mark.parametrize('name,fn,expected', CASES, ids=[c[0] for c in CASES])
def test_validation_errors_name_file_and_field(tmp_path, name, fn, expected):
    path = write(tmp_path, mutate(fn))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, STORE)
    assert str(info.value).startswith(f'{path}: scenario.')
    assert expected in str(info.value)
    assert info.value.file == str(path)


def test_return_beyond_capacity_rejected(tmp_path):
    doc = mutate(lambda s: s['shoppers'].append(
        {'id': 'acct-0003', 'enter_s': 1.0, 'exit_s': 30.0, 'actions': [
            {'t_s': 4.0, 'kind': 'take', 'plate': 'g2.s1.p2', 'sku': 'CHOC-MILK'},
            {'t_s': 8.0, 'kind': 'return', 'plate': 'g2.s1.p2', 'sku': 'CHOC-MILK'},
            {'t_s': 12.0, 'kind': 'return', 'plate': 'g2.s1.p2', 'sku': 'CHOC-MILK'}]}))
    with pytest.raises(ScenarioError, match='holds 0'):
        load_scenario(write(tmp_path, doc), STORE)
    # held, but the plate is full: the take was from another shopper's plate stock
    doc = mutate(lambda s: s['shoppers'].append(
        {'id': 'acct-0003', 'enter_s': 1.0, 'exit_s': 30.0, 'actions': [
            {'t_s': 4.0, 'kind': 'take', 'plate': 'g2.s1.p2', 'sku': 'CHOC-MILK'},
            {'t_s': 8.0, 'kind': 'return', 'plate': 'g2.s1.p2', 'sku': 'CHOC-MILK'}]}))
    load_scenario(write(tmp_path, doc), STORE)


def test_without_store_only_structure_is_checked(tmp_path):
    path = write(tmp_path, mutate(lambda s: act(1, 2)(s).update(plate='g9.s1.p1')))
    assert load_scenario(path).shoppers[1].actions[2].plate == 'g9.s1.p1'


@pytest.mark.parametrize('suffix', ['.yaml', '.json'])
def test_save_load_round_trip(tmp_path, suffix):
    sc = load_scenario(write(tmp_path, BASE), STORE)
    out = tmp_path / f'copy{suffix}'
    save_scenario(sc, out)
    again = load_scenario(out, STORE)
    assert again.to_dict() == sc.to_dict()


def test_truth_receipts_takes_minus_returns():
    sc = Scenario(store='demo_store', seed=1, duration_s=60.0, shoppers=[
        Shopper('a', 1.0, 50.0, [Action(5.0, 'take', 'g1.s1.p1', 'COLA-330', 2),
                                 Action(10.0, 'return', 'g1.s2.p1', 'COLA-330', 1),
                                 Action(15.0, 'take', 'g2.s1.p1', 'CHOC-DARK', 1),
                                 Action(20.0, 'return', 'g2.s1.p1', 'CHOC-DARK', 1)]),
        Shopper('b', 2.0, 50.0, [])])
    assert truth_receipts(sc) == {'a': {'COLA-330': 1}, 'b': {}}


def test_truth_events_in_time_order():
    sc = load_scenario(ROOT / 'config' / 'scenarios' / 'demo.yaml', STORE)
    events = truth_events(sc, STORE)
    assert [e['t_s'] for e in events] == sorted(e['t_s'] for e in events)
    assert sum(e['event'] == 'enter' for e in events) == 3
    assert events[0] == {'event': 'enter', 't_s': 2.0, 'shopper_id': 'acct-0001',
                         'gate_id': 'entrance'}
    assert sum(e['event'] == 'action' for e in events) == 10


@pytest.mark.parametrize('text, words', [
    ('scenario:\n  store: demo_store\n  seed: 1\n  seed: 2\n', ('duplicate', 'seed', 'line 4')),
    ('scenario:\n' + '  ' + '[' * 5000 + ']' * 5000 + '\n', ('nested',)),
])
def test_a_scenario_file_is_read_strictly_and_the_error_names_file_and_line(tmp_path, text,
                                                                            words):
    from store_sim.scenario import load_scenario, ScenarioError
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(path) in str(err.value) and all(w in str(err.value) for w in words), err.value
    path.write_bytes(b'scenario:\n  store: demo\xff\n')
    with pytest.raises(ScenarioError, match='not UTF-8.*byte offset 23'):
        load_scenario(path)
