"""bench_fusion as a console script: a run that renders nothing says so and fails."""
from store_bench import bench_fusion


def test_no_rendered_scenario_is_an_error_naming_them(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    code = bench_fusion.main(['--seeds', '9000:9001', '--levels', '2', '--gt-cache',
                              str(tmp_path / 'empty'), '--out', str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert 'no scenario ran: 2 not rendered' in err and 'l2:s9000, l2:s9001' in err
    assert not out.exists()
