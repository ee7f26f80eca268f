"""store_bench.sweep_review_threshold: pools bench_fusion outputs per threshold and picks the
lowest one whose unreviewed decisions stay accurate enough."""
import json

import pytest

from store_bench import sweep_review_threshold


@pytest.fixture(scope='module')
def sweep():
    return sweep_review_threshold


def _bench(path, min_conf, exact, reviews, auto_acc, events=100, shoppers=40):
    level = {'shoppers': shoppers, 'receipts_exact': exact, 'shelf_events': events,
             'review_requests': reviews}
    doc = {'cart': {'min_confidence': 0.9, 'min_margin': 0.2},
           'fused_cart': {'min_confidence': min_conf, 'min_margin': 0.2},
           'modes': {'fused': {'2': level, '3': level, 'all': level}},
           'auto_decided': 2 * (events - reviews), 'auto_decided_accuracy': auto_acc}
    path.write_text(json.dumps(doc))
    return str(path)


def test_picks_the_lowest_threshold_that_keeps_guesses_reliable(sweep, tmp_path, capsys):
    files = [_bench(tmp_path / 'a.json', 0.5, 36, 2, 0.95),
             _bench(tmp_path / 'b.json', 0.7, 35, 5, 0.985),
             _bench(tmp_path / 'c.json', 0.9, 33, 12, 0.99)]
    assert sweep.main(files + ['--min-auto', '0.98']) == 0
    out = capsys.readouterr().out
    assert 'pick: min_confidence 0.7,' in out
    # two outputs of one threshold (other seeds) are pooled
    files.append(_bench(tmp_path / 'd.json', 0.7, 30, 25, 0.90))
    assert sweep.main(files + ['--min-auto', '0.98']) == 0
    assert 'pick: min_confidence 0.9,' in capsys.readouterr().out
    assert sweep.main(files + ['--min-auto', '0.999']) == 1


def test_a_file_that_is_not_a_bench_output_is_named(sweep, tmp_path, capsys):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"modes": {}}')
    assert sweep.main([str(bad)]) == 2
    assert 'bad.json' in capsys.readouterr().err


def test_an_output_without_the_levels_asked_for_is_named(sweep, tmp_path, capsys):
    f = _bench(tmp_path / 'a.json', 0.5, 36, 2, 0.95)
    assert sweep.main([f, '--levels', '2,4']) == 2
    assert 'level 4 missing' in capsys.readouterr().err
