"""bench_live_graph's detector figures: each run's detector summary read from its run folder
(missing or broken files are counted, never a crash) and the per-level table of drops."""
import json

from store_bench.bench_live_graph import detector_table, detector_text, read_detector_summary


def summary(active_in, active_dropped, p95, frames_in=100):
    return {'frames_in': frames_in, 'processed_full': 40, 'processed_shoppers': 30,
            'skipped_by_schedule': 20, 'dropped': active_dropped, 'failed': 0,
            'active_in': active_in, 'active_dropped': active_dropped,
            'active_drop_share': active_dropped / active_in if active_in else None,
            'latency_p50_ms': p95 / 2, 'latency_p95_ms': p95}


def test_read_detector_summary(tmp_path):
    assert read_detector_summary(tmp_path) is None                        # no file
    (tmp_path / 'detector_summary.json').write_text('{"overall": {"frames_in": "x"}}')
    assert read_detector_summary(tmp_path) is None                        # not a summary
    (tmp_path / 'detector_summary.json').write_text('{not json')
    assert read_detector_summary(tmp_path) is None
    s = summary(50, 5, 180.0)
    (tmp_path / 'detector_summary.json').write_text(json.dumps({'cameras': {}, 'overall': s}))
    assert read_detector_summary(tmp_path) == s
    assert detector_text(s) == 'detector dropped 5/50 active frames, p95 180 ms'
    assert detector_text(None) == 'no detector summary'


def test_detector_table_pools_drops_per_level():
    runs = {2: [{'detector': summary(100, 2, 150.0)}, {'detector': summary(100, 8, 250.0)}],
            3: [{'detector': None}, {'detector': summary(200, 10, 190.0)}]}
    lines = detector_table(runs)
    by = {line.split()[2]: line.split() for line in lines[2:]}
    assert by['2'][3] == '2' and by['2'][7] == '5.0%'           # (2 + 8) / 200
    assert by['2'][8:10] == ['250', '250']                      # median of 2 = upper, max
    assert by['3'][7] == '5.0%' and by['3'][-1] == '1'          # one run had no summary
    assert by['all'][7] == f'{20 / 400:.1%}' and by['all'][4] == '300'
    assert by['all'][-1] == '1'
    lines = detector_table({2: [{'detector': None}]})
    assert lines[2].split()[4] == '-' and lines[2].split()[-1] == '1'


def metrics(shoppers, exact, tp, fp, fn, events, reviews):
    return {'shoppers': shoppers, 'receipts_received': shoppers, 'receipts_exact': exact,
            'tp': tp, 'fp': fp, 'fn': fn, 'shelf_events': events, 'review_requests': reviews,
            'units_pending': 0}


def test_receipts_table_has_live_weight_only_rows_beside_fused():
    from store_bench.bench_live_graph import receipts_table
    fused = dict(metrics(4, 3, 9, 1, 0, 10, 1), before_review=metrics(4, 4, 10, 0, 0, 10, 1))
    live = {'live fused': {2: [fused]},
            'live weight': {2: [metrics(4, 1, 6, 2, 2, 10, 5)]}}
    offline = {'modes': {'fused': {'2': None, 'all': None}, 'weight': {}}}
    lines, doc = receipts_table(live, offline, [2])
    rows = {(ln[:16].strip(), ln.split()[-8]): ln.split() for ln in lines[2:]
            if len(ln.split()) > 4}
    w = rows[('live weight', '2')]
    # 1/4 exact (a run without a before-review score counts as issued), F1 6/8, 5/10 reviewed
    assert w[-5:] == ['25.0%', '25.0%', '0.750', '10', '50.0%']
    f = rows[('live fused', 'all')]
    # the offline rule (pending billed as guessed) first, then the receipts as issued
    assert f[-5:-3] == ['100.0%', '75.0%'] and f[-3] == '1.000' and f[-2] == '10'
    assert doc['live weight']['2']['aggregate']['receipts_exact'] == 1
    assert doc['live fused']['2']['issued']['receipts_exact'] == 3
    assert any(ln.startswith('offline fused') for ln in lines)  # offline rows still printed
    lines, doc = receipts_table({'live fused': live['live fused'], 'live weight': {}}, None, [2])
    assert not any(ln.startswith('live weight') for ln in lines)  # off by default: no row
