"""`make demo`'s weight-only column (``store_bench.replay_weight_only``): a run's own shelf and
gate events, replayed into a cart without camera hints, give the receipts and reviews the
weight-only graph itself gave on that run."""
from __future__ import annotations

import json
import math
import pathlib
import shutil

import pytest
import yaml

from store_bench import replay_weight_only as rwo
from store_interfaces.msg import GateEvent, ShelfEvent

ROOT = pathlib.Path(__file__).resolve().parents[2]

# acct-a alone takes a cola (confirmed); both inside when a yogurt is taken (nobody can tell
# whose hand: a review, no line); acct-b alone again takes and returns a chocolate milk and
# takes a gum pack (confirmed)
SCENARIO = {'scenario': {'store': 'demo_store', 'seed': 3, 'duration_s': 27.0, 'shoppers': [
    {'id': 'acct-a', 'enter_s': 1.0, 'exit_s': 14.0, 'actions': [
        {'t_s': 5.0, 'kind': 'take', 'plate': 'g1.s1.p1', 'sku': 'COLA-330', 'quantity': 1},
        {'t_s': 10.5, 'kind': 'take', 'plate': 'g3.s2.p1', 'sku': 'YOGURT', 'quantity': 1},
    ]},
    {'id': 'acct-b', 'enter_s': 8.0, 'exit_s': 24.0, 'actions': [
        {'t_s': 16.0, 'kind': 'take', 'plate': 'g2.s1.p2', 'sku': 'CHOC-MILK', 'quantity': 1},
        {'t_s': 19.0, 'kind': 'return', 'plate': 'g2.s1.p2', 'sku': 'CHOC-MILK',
         'quantity': 1},
        {'t_s': 21.0, 'kind': 'take', 'plate': 'g2.s3.p1', 'sku': 'GUM-MINT', 'quantity': 1},
    ]}]}}


@pytest.mark.graph
def test_the_replay_gives_the_weight_only_graphs_receipts(tmp_path, run_sim_store, capsys):
    path = tmp_path / 'scenario.yaml'
    path.write_text(yaml.safe_dump(SCENARIO))
    live = run_sim_store(path)
    assert live.exit_code == 0, live.log('receipt_recorder')[-3000:]
    assert len(live.shelf_events) == 5
    assert len(live.review_requests) >= 1            # the shared moment went to review

    result, out = rwo.replay_run(live.run_dir, tmp_path / 'replay')
    assert result.refused == []
    replayed = rwo.read_receipts(out)
    assert rwo.latest_lines(replayed) == rwo.latest_lines(live.receipts)
    assert set(rwo.latest_lines(replayed)) == {'acct-a', 'acct-b'}
    assert ({(r['request_id'], r['reason']) for r in rwo.read_jsonl(out / 'review_requests.jsonl')}
            == {(r['request_id'], r['reason']) for r in live.review_requests})

    # bad records in the recording are refused with their reason and change no receipt
    run = tmp_path / 'tampered'
    shutil.copytree(live.run_dir, run, ignore=shutil.ignore_patterns('*.sqlite*', 'logs'))
    first = json.loads((run / 'shelf_events.jsonl').read_text().splitlines()[0])
    nan = dict(first, event_id='bad@1', delta_grams=None)        # NaN, as the recorder writes it
    with open(run / 'shelf_events.jsonl', 'a') as f:
        f.write('{not json\n' + json.dumps(nan) + '\n' + json.dumps(dict(first, x=1)) + '\n')
    tampered, out2 = rwo.replay_run(run)
    assert len(tampered.refused) == 2, tampered.refused        # the NaN one the engine refuses
    assert any('no field x' in r for r in tampered.refused)
    assert any('bad@1' in w and 'refused' in w for w in tampered.warnings), tampered.warnings
    assert rwo.latest_lines(rwo.read_receipts(out2)) == rwo.latest_lines(live.receipts)

    # the tool's table: this run had no cameras, so one column, the replay's
    assert rwo.main(['--run-dir', str(live.run_dir), '--out', str(tmp_path / 'cli'),
                     '--json', str(tmp_path / 'cols.json')]) == 0
    table = capsys.readouterr().out
    assert 'weight only' in table and 'cameras + weight' not in table
    cols = json.loads((tmp_path / 'cols.json').read_text())
    assert cols['weight only']['receipts_exact'] == 1       # acct-b; acct-a has a review open


def test_the_table_puts_columns_side_by_side_and_names_the_differing_receipts():
    def metrics(exact_b, confirmed_b, pending_b):
        per = {'acct-a': {'receipts': 1, 'exact': True, 'truth': {'COLA-330': 1},
                          'confirmed': {'COLA-330': 1}, 'pending': {}},
               'acct-b': {'receipts': 1, 'exact': exact_b, 'truth': {'YOGURT': 1},
                          'confirmed': confirmed_b, 'pending': pending_b}}
        return {'shoppers': 2, 'receipts_exact': 1 + exact_b, 'receipt_exact_match_rate':
                (1 + exact_b) / 2, 'precision': 1.0, 'recall': 1.0, 'f1': 1.0,
                'units_pending': len(pending_b), 'shelf_events': 2,
                'review_requests': 1 - exact_b, 'per_shopper': per}
    text = rwo.side_by_side([('cameras + weight', metrics(True, {'YOGURT': 1}, {})),
                             ('weight only', metrics(False, {}, {'YOGURT': 1}))])
    lines = text.splitlines()
    assert lines[0].split() == ['cameras', '+', 'weight', 'weight', 'only']
    assert lines[3].split() == ['exact', 'receipts', '2', '1']
    assert [ln for ln in lines if ln.startswith('  acct-')] == [
        '  acct-b: cameras + weight: 1 x YOGURT (exact) | weight only: nothing; pending '
        '1 x YOGURT']
    same = rwo.side_by_side([('a', metrics(True, {'YOGURT': 1}, {})),
                             ('b', metrics(True, {'YOGURT': 1}, {}))])
    assert same.endswith('every shopper has the same receipt in both columns')


def test_a_record_of_another_message_version_or_type_is_refused():
    with pytest.raises(ValueError, match='has no field likelihood'):
        rwo.msg_from_dict(ShelfEvent, {'event_id': 'e', 'hypotheses': [
            {'sku': 'A', 'likelihood': 0.9}]})
    with pytest.raises(TypeError):
        rwo.msg_from_dict(ShelfEvent, {'hypotheses': 'A'})
    with pytest.raises(TypeError, match='event_id: expected a string'):
        rwo.msg_from_dict(ShelfEvent, {'event_id': 7})
    with pytest.raises(ValueError, match='outside the uint8 range'):
        rwo.msg_from_dict(GateEvent, {'kind': 300})
    with pytest.raises(TypeError, match=r'plate_ids\[1\]: expected a string'):
        rwo.msg_from_dict(ShelfEvent, {'plate_ids': ['g1.s1.p1', None]})
    msg = rwo.msg_from_dict(ShelfEvent, {'delta_grams': None, 'plate_delta_grams': [1, None],
                                         'header': {'stamp': {'sec': 3, 'nanosec': 5}}})
    assert math.isnan(msg.delta_grams) and math.isnan(msg.plate_delta_grams[1])
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (3, 5)


def test_a_run_without_its_recording_is_named(tmp_path):
    with pytest.raises(rwo.ReplayError, match='params.yaml is missing'):
        rwo.replay_run(tmp_path)
    assert rwo.main(['--run-dir', str(tmp_path)]) == 2
