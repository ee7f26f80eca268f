"""tools/bench_fusion.py's seed ranges: tuning sets are two separate ranges of seeds."""
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location('bench_fusion',
                                                  ROOT / 'tools' / 'bench_fusion.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_seed_ranges(bench):
    assert bench.seed_list('9103:9105') == [9103, 9104, 9105]
    assert bench.seed_list('8100:8101,9100:9100') == [8100, 8101, 9100]


@pytest.mark.parametrize('spec', ['9103', '9105:9103', 'a:b', '1:2,'])
def test_a_bad_seed_range_is_named(bench, spec):
    with pytest.raises(ValueError, match='--seeds'):
        bench.seed_list(spec)
