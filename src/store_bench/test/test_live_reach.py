"""The live graph's reach-frame measure: frame indices from stamps, truth reach frames, the
outcome counts and the table."""
import json

from store_bench.live_reach import (load_frame_log, main, reach_outcomes, reach_table,
                                    realtime_line, run_reach_outcomes, truth_reach_frames)

NS = 1_000_000_000


def write_labels(path, frames):
    """frames: {index: [(cls, (x0, y0, x1, y1))]}"""
    path.write_text(''.join(json.dumps({'frame': k, 't_s': k / 10, 'boxes': [
        {'cls': c, 'bbox': list(b)} for c, b in boxes]}) + '\n' for k, boxes in frames.items()))


def test_truth_reach_frames_need_a_hand_near_a_reach_point(tmp_path):
    write_labels(tmp_path / 'cam1.jsonl', {
        0: [('shopper', (90, 90, 110, 110))],                 # a shopper there: no reach
        1: [('hand', (95, 95, 105, 105))],                    # hand centre on the point
        2: [('hand', (125, 95, 135, 105))],                   # 30 px away: outside 20
        3: [('product', (95, 95, 105, 105)), ('hand', (110, 100, 120, 110))]})  # 18 px
    reach = truth_reach_frames(tmp_path, {'cam1': {'p1': (100.0, 100.0)}, 'cam2': {}}, 20.0)
    assert reach == {'cam1': {1, 3}, 'cam2': set()}


def test_outcomes_map_stamps_to_frames_and_count_the_unseen():
    start = 1000 * NS
    records = [('cam1', start + int(0.103 * NS), 'full'),          # frame 1 (3 ms late)
               ('cam1', start + int(0.2 * NS), 'dropped'),         # frame 2
               ('cam1', start + int(0.2 * NS), 'full'),            # ... received again: last
               ('cam1', start + int(0.31 * NS), 'shoppers'),       # frame 3
               ('cam2', start + int(0.1 * NS), 'skipped')]         # frame 1 of cam2
    reach = {'cam1': {1, 2, 3, 4}, 'cam2': {1}}
    c = reach_outcomes(records, start, 10.0, reach)
    assert (c['full'], c['shoppers'], c['skipped'], c['dropped'], c['not received']) == \
        (2, 1, 1, 0, 1)


def test_run_files_and_table(tmp_path):
    run = tmp_path / 'run'
    (run / 'cameras').mkdir(parents=True)
    start = 5 * NS
    (run / 'scenario_clock.json').write_text(json.dumps({'scenario_start_ros_ns': start}))
    write_labels(run / 'cameras' / 'cam1.jsonl', {k: [('hand', (98, 98, 102, 102))]
                                                  for k in range(4)})
    (run / 'detector_frames.jsonl').write_text(''.join(
        json.dumps({'camera': 'cam1', 'stamp_ns': start + k * NS // 10, 'outcome': o}) + '\n'
        for k, o in enumerate(['full', 'dropped', 'full'])) + 'not json\n')
    assert len(load_frame_log(run / 'detector_frames.jsonl')) == 3
    counts = run_reach_outcomes(run, {'cam1': {'p1': (100.0, 100.0)}}, 10.0, 30.0)
    assert (counts['full'], counts['dropped'], counts['not received']) == (2, 1, 1)
    assert run_reach_outcomes(tmp_path / 'missing', {}, 10.0, 30.0) is None
    lines = reach_table({2: [counts], 3: [None]})
    rows = {x.split()[2]: x.split()[3:] for x in lines if x.startswith('live fused')}
    assert rows['2'] == ['1', '4', '2', '0', '0', '1', '1', '33.3%']
    assert rows['3'][:2] == ['0', '0'] and rows['all'][:2] == ['1', '4']


def test_the_goal_line_counts_what_the_detector_received():
    counts = dict.fromkeys(('full', 'shoppers', 'skipped', 'dropped', 'failed', 'unprocessed',
                            'not received'), 0)
    counts.update(full=90, shoppers=5, skipped=1, dropped=4, **{'not received': 30})
    line = realtime_line(counts, 180.0)
    assert '4 of 100 frames' in line and '(4.0%)' in line and ': met' in line
    assert '30 reach frames without a record' in line
    assert ': missed' in realtime_line(counts, 230.0)             # latency over 200 ms
    assert ': missed' in realtime_line(dict(counts, dropped=6), 150.0)   # 6 of 102
    assert ': missed' in realtime_line(counts, None)
    assert ': missed' in realtime_line(dict.fromkeys(counts, 0), 100.0)  # nothing to count


def test_the_command_reads_a_run_and_names_a_run_that_is_not_one(tmp_path, capsys):
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[3]
    store, params = root / 'config/stores/demo.yaml', root / 'config/params/store.yaml'
    run = tmp_path / 'run'
    (run / 'cameras').mkdir(parents=True)
    (run / 'scenario_clock.json').write_text(json.dumps({'scenario_start_ros_ns': 0}))
    (run / 'detector_frames.jsonl').write_text('')
    (run / 'detector_summary.json').write_text(json.dumps({'overall': {
        'latency_p95_ms': 150.0}}))
    assert main(['--run-dir', str(run), '--store', str(store), '--params', str(params)]) == 0
    assert '0 of 0 frames' in capsys.readouterr().out
    assert main(['--run-dir', str(tmp_path / 'nope'), '--store', str(store),
                 '--params', str(params)]) == 1
    assert 'not a finished run_store' in capsys.readouterr().err
