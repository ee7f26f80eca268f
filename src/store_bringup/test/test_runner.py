"""The local runner: prefixed logs, node death, the run-ending node, clean stop."""
import io
import signal
import sys
import textwrap
import time

import pytest

from store_bringup import runner as runner_mod
from store_bringup.graph import NodeSpec


@pytest.fixture
def scripts(tmp_path, monkeypatch):
    """Nodes are little Python scripts; executable_path points at them."""
    bodies = {
        'forever': '''
            import signal, sys, time
            def bye(*a):
                print('got SIGINT, shutting down', flush=True); sys.exit(0)
            signal.signal(signal.SIGINT, bye)
            print('up', flush=True)
            while True: time.sleep(0.05)
        ''',
        'stubborn': '''
            import signal, time
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            print('up', flush=True)
            while True: time.sleep(0.05)
        ''',
        'crash': '''
            import time, sys
            print('about to fail', flush=True); time.sleep(0.5); sys.exit(7)
        ''',
        'finish': '''
            import time, sys
            time.sleep(0.5); print('all receipts in', flush=True); sys.exit(0)
        ''',
        'messy_stop': '''
            import signal, sys, time, traceback
            def bye(*a):
                try:
                    raise RuntimeError("Unable to convert call argument '0'")
                except RuntimeError:
                    traceback.print_exc()
                sys.exit(0)
            signal.signal(signal.SIGINT, bye)
            print('up', flush=True)
            while True: time.sleep(0.05)
        ''',
        'fail_on_stop': '''
            import signal, sys, time
            signal.signal(signal.SIGINT, lambda *a: sys.exit(1))
            print('up', flush=True)
            while True: time.sleep(0.05)
        ''',
    }
    paths = {}
    for name, body in bodies.items():
        p = tmp_path / f'{name}.py'
        p.write_text(f'#!{sys.executable}\n' + textwrap.dedent(body))
        p.chmod(0o755)
        paths[name] = str(p)
    monkeypatch.setattr(runner_mod, 'executable_path', lambda spec: paths[spec.executable])
    return paths


def spec(exe, name, **kw):
    return NodeSpec('pkg', exe, name, '/store', {'store_file': '/x.yaml'}, **kw)


def test_prefixed_output_and_clean_stop(scripts, tmp_path):
    out = io.StringIO()
    r = runner_mod.Runner([spec('forever', 'a'), spec('forever', 'b')], tmp_path / 'run', out=out)
    r.start()
    assert r.wait(timeout_s=1.5) is None          # nothing died, nothing ended the run
    r.stop()
    text = out.getvalue()
    assert '[a                     ] up' in text and '[b                     ] up' in text
    assert 'got SIGINT, shutting down' in text
    assert all(p.poll() == 0 for p in r.procs.values())
    assert (tmp_path / 'run' / 'logs' / 'a.log').read_text().count('up') == 1
    assert 'store_file' in (tmp_path / 'run' / 'params.yaml').read_text()


def test_a_dead_node_ends_the_run_with_an_error(scripts, tmp_path):
    out = io.StringIO()
    r = runner_mod.Runner([spec('forever', 'a'), spec('crash', 'c')], tmp_path, out=out)
    r.start()
    code = r.wait(timeout_s=10)
    r.stop()
    assert code == runner_mod.EXIT_NODE_DIED
    assert 'ERROR: node c (pkg/crash) died with exit code 7' in out.getvalue()


def test_the_run_ending_node_gives_the_exit_code(scripts, tmp_path):
    r = runner_mod.Runner([spec('forever', 'a'), spec('finish', 'rec', ends_run=True)],
                          tmp_path, out=None)
    r.start()
    assert r.wait(timeout_s=10) == 0
    r.stop()


def test_respawn_restarts_a_node(scripts, tmp_path):
    out = io.StringIO()
    r = runner_mod.Runner([spec('crash', 'c', respawn=True)], tmp_path, out=out)
    r.start()
    deadline = time.monotonic() + 10
    while r.node('c').starts < 2 and time.monotonic() < deadline:
        assert r.check() is None
        time.sleep(0.1)
    r.stop()
    assert r.node('c').starts >= 2
    assert 'respawning' in out.getvalue()


def test_kill_and_restart_on_purpose_keeps_the_graph_running(scripts, tmp_path):
    r = runner_mod.Runner([spec('forever', 'a'), spec('forever', 'cart')], tmp_path, out=None)
    r.start()
    time.sleep(0.5)
    assert r.kill('cart', signal.SIGKILL) == -signal.SIGKILL
    assert r.check() is None                     # an intended kill is not a failure
    r.restart('cart')
    assert r.node('cart').starts == 2
    assert r.wait(timeout_s=0.5) is None
    r.stop()


def test_a_node_ignoring_sigint_is_escalated(scripts, tmp_path):
    out = io.StringIO()
    r = runner_mod.Runner([spec('stubborn', 's')], tmp_path, out=out, stop_timeout_s=1.0)
    r.start()
    time.sleep(0.5)
    r.stop()
    assert r.node('s').poll() == -signal.SIGTERM
    assert 'SIGTERM to s' in out.getvalue()


def test_cli_reports_a_broken_store_file_and_exits_2(tmp_path, capsys):
    bad = tmp_path / 'store.yaml'
    bad.write_text('store: {id: x, catalog: missing.yaml')
    assert runner_mod.main(['--store', str(bad), '--run-dir', str(tmp_path / 'r')]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and 'invalid YAML' in err


def test_set_overrides_parse():
    assert runner_mod.parse_set(['cart.hold_s=1.5', 'cart.db_path=/x']) == {
        'cart': {'hold_s': 1.5, 'db_path': '/x'}}
    with pytest.raises(ValueError, match='NODE.PARAM=VALUE'):
        runner_mod.parse_set(['hold_s=1'])


def test_unknown_package_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="package 'no_such_pkg' is not installed"):
        runner_mod.executable_path(NodeSpec('no_such_pkg', 'x', 'x', '/'))


def test_a_clean_stop_is_said_and_exits_0(scripts, tmp_path):
    out = io.StringIO()
    r = runner_mod.Runner([spec('forever', 'a')], tmp_path, out=out)
    r.start()
    time.sleep(0.5)
    assert r.finish(None) == 0
    assert 'all nodes stopped cleanly' in out.getvalue()


def test_a_traceback_while_stopping_makes_the_stop_unclean(scripts, tmp_path):
    out = io.StringIO()
    r = runner_mod.Runner([spec('forever', 'a'), spec('messy_stop', 'm')], tmp_path, out=out)
    r.start()
    time.sleep(0.5)
    assert r.finish(None) == runner_mod.EXIT_UNCLEAN_STOP
    text = out.getvalue()
    assert 'ERROR: the graph did not stop cleanly: m printed 1 traceback while stopping' in text
    assert 'all nodes stopped cleanly' not in text


def test_a_non_zero_exit_on_stop_makes_the_stop_unclean(scripts, tmp_path):
    out = io.StringIO()
    r = runner_mod.Runner([spec('fail_on_stop', 'f')], tmp_path, out=out)
    r.start()
    time.sleep(0.5)
    assert r.finish(None) == runner_mod.EXIT_UNCLEAN_STOP
    assert 'f exited with code 1' in out.getvalue()


def test_an_unclean_stop_keeps_the_exit_code_of_a_failed_run(scripts, tmp_path):
    r = runner_mod.Runner([spec('fail_on_stop', 'f')], tmp_path, out=None)
    r.start()
    time.sleep(0.5)
    assert r.finish(runner_mod.EXIT_NODE_DIED) == runner_mod.EXIT_NODE_DIED


def test_a_run_dir_that_cannot_be_created_is_a_clear_error(tmp_path):
    blocker = tmp_path / 'out'
    blocker.write_text('a file, not a folder\n')
    with pytest.raises(runner_mod.RunDirError) as exc:
        runner_mod.Runner([spec('forever', 'a')], blocker / 'run1', out=None)
    assert str(exc.value).startswith(f'run directory {blocker / "run1"}: cannot create or '
                                     f'write')
    assert 'writable --run-dir' in str(exc.value)
