"""The machine figures the live benchmark prints beside each run (store_bench.machine)."""
from store_bench.bench_live_graph import machine_line, machine_text
from store_bench.machine import probe_ms, StealMeter


def write_stat(path, steal, total_rest):
    # user nice system idle iowait irq softirq steal guest guest_nice
    path.write_text(f'cpu  {total_rest} 0 0 0 0 0 0 {steal} 7 7\ncpu0 1 2 3 4 5 6 7 8 0 0\n')


def test_steal_share_is_the_stolen_part_of_the_cpu_time_between_two_reads(tmp_path):
    stat = tmp_path / 'stat'
    write_stat(stat, steal=100, total_rest=900)
    meter = StealMeter(str(stat))
    write_stat(stat, steal=130, total_rest=1170)       # +30 stolen of +300 (guest not counted)
    assert abs(meter.share() - 0.1) < 1e-12


def test_steal_share_is_none_without_a_readable_stat_or_time_passing(tmp_path):
    assert StealMeter(str(tmp_path / 'missing')).share() is None
    stat = tmp_path / 'stat'
    write_stat(stat, steal=5, total_rest=50)
    assert StealMeter(str(stat)).share() is None       # nothing elapsed
    stat.write_text('intr 1 2 3\n')
    assert StealMeter(str(stat)).share() is None       # not a cpu line


def test_the_probe_times_the_shipped_crop_model():
    ms = probe_ms(repeats=3)
    assert ms is not None and 0.5 < ms < 5000


def test_machine_figures_read_as_text_and_a_missing_probe_is_said():
    assert machine_text({'probe_ms': 14.24, 'steal_share': 0.0031}) == \
        'probe 14.2 ms, steal 0.3 %'
    assert machine_text({'probe_ms': None, 'steal_share': None}) == 'probe n/a, steal n/a'
    line = machine_line([{'probe_ms': 20.0, 'steal_share': 0.0},
                         {'probe_ms': 14.0, 'steal_share': 0.02},
                         {'probe_ms': 16.0, 'steal_share': None}])
    assert 'median 16.0 ms, 14.0-20.0 ms' in line and 'median run 2.0 %' in line
    assert machine_line([]) == 'machine: no probe; steal n/a'
