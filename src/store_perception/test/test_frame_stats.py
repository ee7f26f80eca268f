"""The detector's frame accounting: every frame counted, drops where there is activity warn."""
import math

from store_perception.frame_stats import FrameStats, percentile


def test_every_frame_is_accounted_for_and_latency_percentiles():
    s = FrameStats('cam1', warn_drop_share=0.05)
    for k in range(20):
        s.frame_in(active=False)
        if k % 2:
            s.skipped()
        else:
            s.processed(full=False, latency_ms=10.0 + k)
    level, msg, v = s.report()
    assert level == 'ok' and 'cam1' not in msg
    assert v['window_frames_in'] == 20 and v['window_skipped_by_schedule'] == 10
    assert v['window_processed_shoppers'] == 10 and v['window_dropped'] == 0
    assert v['window_latency_p50_ms'] in (18.0, 20.0) and v['window_latency_p95_ms'] == 28.0
    level, msg, v = s.report()                         # a new window
    assert v['window_frames_in'] == 0 and v['total_frames_in'] == 20
    assert math.isnan(v['window_latency_p95_ms']) and 'no frames' in msg


def test_drops_where_there_is_activity_warn_above_the_share():
    s = FrameStats('cam2', warn_drop_share=0.05)
    for _ in range(40):
        s.frame_in(active=False)
    for _ in range(10):
        s.dropped(active=False)                        # quiet camera: drops do not warn
    for _ in range(40):
        s.frame_in(active=True)
        s.processed(full=True, latency_ms=50.0)
    s.dropped(active=True)                             # 1/40 = 2.5 %
    level, _, v = s.report()
    assert level == 'ok' and v['window_dropped'] == 11 and v['window_active_dropped'] == 1
    for _ in range(40):
        s.frame_in(active=True)
    for _ in range(3):
        s.dropped(active=True)                         # 3/40 = 7.5 %
    level, msg, v = s.report()
    assert level == 'warn' and abs(v['window_active_drop_share'] - 0.075) < 1e-9
    assert '3 dropped' in msg
    assert s.total.n['active_dropped'] == 4 and s.total.n['processed_full'] == 40


def test_latency_memory_is_bounded():
    s = FrameStats('cam1', max_latencies=10)
    for k in range(100):
        s.processed(full=True, latency_ms=float(k))
    assert len(s.total.latency_ms) == 10 and min(s.total.latency_ms) == 90.0


def test_percentile():
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile(range(101), 0.95) == 95.0


def test_run_summary_line_and_file(tmp_path):
    import json
    from store_perception.frame_stats import run_summary, summary_line, write_summary
    a, b = FrameStats('cam1'), FrameStats('cam2')
    for k in range(10):
        a.frame_in(active=True)
        if k < 3:
            a.dropped(active=True)
        else:
            a.processed(full=True, latency_ms=100.0 + k)
    b.frame_in(active=False)
    b.skipped()
    a.report()                                   # a report window does not reset the totals
    s = run_summary({'cam2': b, 'cam1': a})
    assert list(s['cameras']) == ['cam1', 'cam2']
    assert s['cameras']['cam1']['active_drop_share'] == 0.3
    assert s['cameras']['cam2']['active_drop_share'] is None       # never active
    assert s['cameras']['cam2']['latency_p50_ms'] is None
    o = s['overall']
    assert (o['frames_in'], o['dropped'], o['processed_full'], o['skipped_by_schedule']) == \
        (11, 3, 7, 1)
    assert o['latency_p50_ms'] == 106.0 and o['latency_p95_ms'] == 109.0
    line = summary_line(s)
    assert '\n' not in line and line.startswith('run totals: 11 in')
    assert '30.0% of 10 active' in line and 'cam2: 1 in' in line and 'no frames' in line
    write_summary(tmp_path / 'sum.json', s)
    assert json.loads((tmp_path / 'sum.json').read_text()) == s
    assert not list(tmp_path.glob('*.tmp'))
    try:
        write_summary(tmp_path / 'missing' / 'sum.json', s)
    except OSError:
        pass
    else:
        raise AssertionError('an unwritable summary file must raise OSError')
