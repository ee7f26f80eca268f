"""store_bench.bench_kill: its verdict on a run, from the records a run leaves (no ROS, no run)."""
import json

import pytest

from store_common.description import load_store

from store_bench import bench_kill
from store_bench.paths import repo_root

S = 1_000_000_000


def stamp(t_s: float) -> dict:
    ns = int(t_s * S)
    return {'sec': ns // S, 'nanosec': ns % S}


def gate(gate_id: str, kind: int, who: str, t_s: float) -> dict:
    return {'event_id': f'{gate_id}@{int(t_s * S)}', 'gate_id': gate_id, 'kind': kind,
            'shopper_id': who, 'header': {'stamp': stamp(t_s)}}


def shelf(plate: str, sku: str, grams: float, t_s: float, p: float = 0.99) -> dict:
    return {'event_id': f'{plate}@{int(t_s * S)}', 'gondola_id': plate.split('.')[0],
            'plate_ids': [plate], 'delta_grams': -grams, 'plate_delta_grams': [-grams],
            'noise_grams': 0.5, 'start_stamp': stamp(t_s), 'settled_stamp': stamp(t_s + 0.6),
            'hypotheses': [{'sku': sku, 'action': 1, 'quantity': 1, 'posterior': p,
                            'expected_grams': -grams, 'on_home_plate': True},
                           {'sku': '', 'action': 1, 'quantity': 0, 'posterior': 1 - p,
                            'expected_grams': 0.0, 'on_home_plate': False}]}


def write(path, records):
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))


@pytest.fixture
def run(tmp_path):
    """A run of one shopper who took a cola; its receipt as the cart published it."""
    bench = bench_kill
    store = load_store(repo_root() / 'config' / 'stores' / 'demo.yaml')
    sku = next(iter(store.catalog.products))
    grams = store.catalog.products[sku].unit_grams
    price = store.catalog.products[sku].price_cents
    write(tmp_path / 'gate_events.jsonl', [gate('entrance', 1, 'acct-a', 1.0),
                                           gate('exit', 2, 'acct-a', 9.0)])
    write(tmp_path / 'shelf_events.jsonl', [shelf('g1.s1.p1', sku, grams, 4.0)] * 2)
    receipt = {'receipt_id': f'acct-a@{S}', 'revision': 1, 'shopper_id': 'acct-a',
               'lines': [{'sku': sku, 'quantity': 1, 'status': 1}], 'total_cents': price,
               'pending_reviews': 0}
    ref = bench.reference(tmp_path, store, bench.CartParams())
    return bench, tmp_path, ref, receipt


def test_a_run_that_matches_its_inputs_passes(run):
    bench, path, ref, receipt = run
    write(path / 'receipts.jsonl', [receipt, receipt])          # republished after a restart
    got = bench.compare(path, ref)
    assert ref['n_inputs'] == 3 and got['receipts'] == 1
    assert (got['units_lost'], got['units_doubled'], got['wrong_revisions'],
            got['missing_receipts'], got['wrong_reviews']) == (0, 0, 0, 0, 0)


def test_lost_doubled_and_wrong_revisions_are_counted(run):
    bench, path, ref, receipt = run
    doubled = dict(receipt, revision=2, lines=[dict(receipt['lines'][0], quantity=2)])
    write(path / 'receipts.jsonl', [dict(receipt, lines=[]), doubled])
    got = bench.compare(path, ref)
    assert got['units_doubled'] == 1 and got['wrong_revisions'] == 2
    write(path / 'receipts.jsonl', [])
    got = bench.compare(path, ref)
    assert got['units_lost'] == 1 and got['missing_receipts'] == 1
