"""store_bench.paths: the bench tools find the checkout wherever they are installed or run."""
import pathlib

import pytest

from store_bench.paths import repo_root, RepoRootNotFound

CHECKOUT = pathlib.Path(__file__).resolve().parents[3]


def fake_checkout(path: pathlib.Path) -> pathlib.Path:
    (path / 'config' / 'stores').mkdir(parents=True)
    (path / 'colcon.meta').write_text('{"names": {}}\n')
    return path


def test_the_checkout_above_the_module_is_found_from_anywhere(tmp_path):
    assert repo_root(environ={}, cwd=tmp_path) == CHECKOUT
    assert (CHECKOUT / 'config' / 'stores' / 'demo.yaml').is_file()


def test_store_root_wins_and_a_wrong_one_is_an_error(tmp_path):
    other = fake_checkout(tmp_path / 'other')
    assert repo_root(environ={'STORE_ROOT': str(other)}) == other
    with pytest.raises(RepoRootNotFound, match='STORE_ROOT=.* is not a checkout'):
        repo_root(environ={'STORE_ROOT': str(tmp_path)})


def test_an_installed_copy_falls_back_to_store_ws_then_the_working_directory(tmp_path):
    installed = tmp_path / 'site-packages' / 'store_bench' / 'paths.py'   # not in a checkout
    installed.parent.mkdir(parents=True)
    ws = fake_checkout(tmp_path / 'ws')
    here = fake_checkout(tmp_path / 'here')
    (here / 'out' / 'deep').mkdir(parents=True)
    assert repo_root(installed, environ={'STORE_WS': str(ws)}, cwd=here / 'out') == ws
    assert repo_root(installed, environ={}, cwd=here / 'out' / 'deep') == here
    with pytest.raises(RepoRootNotFound, match='set STORE_ROOT'):
        repo_root(installed, environ={}, cwd=tmp_path / 'site-packages')


def test_a_tool_without_a_checkout_exits_with_the_reason(tmp_path, monkeypatch, capsys):
    from store_bench import bench_fusion
    monkeypatch.setenv('STORE_ROOT', str(tmp_path))
    with pytest.raises(SystemExit, match='is not a checkout of the store'):
        bench_fusion.main(['--help'])
