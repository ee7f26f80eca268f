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
        'chatty': '''
            import signal, sys, time
            signal.signal(signal.SIGINT, lambda *a: sys.exit(0))
            for i in range(20):
                print(f'[WARN] [17.{i}] [tcp @ 0x55{i:04x}] Connection to '
                      'tcp://127.0.0.1:3000 failed: Connection refused', flush=True)
            print('streaming', flush=True)
            while True: time.sleep(0.05)
        ''',
        'hung': '''
            import faulthandler, signal, sys, time
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            faulthandler.register(signal.SIGUSR1, all_threads=True)   # as run_node does
            def stuck_in_teardown():
                while True: time.sleep(0.05)
            print('up', flush=True)
            stuck_in_teardown()
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
    paths['camera_driver'] = paths['forever']
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


def test_a_node_that_ignores_every_stop_is_killed_after_its_stack_is_logged(scripts, tmp_path):
    out = io.StringIO()
    r = runner_mod.Runner([spec('hung', 'h')], tmp_path, out=out, stop_timeout_s=1.0)
    r.start()
    time.sleep(0.5)
    problems = r.stop()
    assert r.node('h').poll() == -signal.SIGKILL
    assert problems == ['h was ended by SIGKILL'], problems
    assert 'stacks of h (SIGUSR1) in their logs' in out.getvalue()
    assert 'in stuck_in_teardown' in (tmp_path / 'logs' / 'h.log').read_text()


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


def test_repeated_lines_show_once_on_screen_and_all_in_the_log(scripts, tmp_path):
    out = io.StringIO()
    r = runner_mod.Runner([spec('chatty', 'cam')], tmp_path, out=out)
    r.start()
    deadline = time.monotonic() + 10
    while 'streaming' not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    r.stop()
    screen = out.getvalue()
    assert screen.count('Connection refused') == 1
    assert 'the line above 19 more times' in screen and 'streaming' in screen
    assert (tmp_path / 'logs' / 'cam.log').read_text().count('Connection refused') == 20


def test_a_camera_driver_of_a_local_stream_starts_once_the_stream_listens(scripts, tmp_path):
    import socket
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    cam = NodeSpec('pkg', 'camera_driver', 'camera_driver', '/store/cameras/cam1',
                   {'source': f'http://127.0.0.1:{port}/cam1.mjpg'})
    out = io.StringIO()
    r = runner_mod.Runner([spec('forever', 'sim'), cam], tmp_path, out=out)
    r.start()
    label = cam.label
    try:
        assert r.wait(timeout_s=1.0) is None
        assert r.procs[label].proc is None          # the stream is not up: not started
        assert 'start once the camera streams listen' in out.getvalue()
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(('127.0.0.1', port))
            server.listen(4)
            assert r.wait(timeout_s=1.0) is None
            assert r.procs[label].proc is not None
    finally:
        assert r.stop() == []


def test_a_taken_console_or_camera_port_is_an_error_naming_it(tmp_path, capsys):
    import socket
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        base = ['--store', 'config/stores/demo.yaml', '--mode', 'sim', '--scenario',
                'config/scenarios/demo.yaml', '--run-dir', str(tmp_path / 'r')]
        assert runner_mod.main(base + ['--console-port', str(port)]) == runner_mod.EXIT_CONFIG
        err = capsys.readouterr().err
        assert f'review console: 127.0.0.1 port {port}' in err and '--console-port' in err
        assert runner_mod.main(base + ['--cameras', '--camera-port', str(port)]) == \
            runner_mod.EXIT_CONFIG
        err = capsys.readouterr().err
        assert f'simulated camera streams: 127.0.0.1 port {port}' in err
        assert runner_mod.main(base + ['--console-port', '70000']) == runner_mod.EXIT_CONFIG
        assert 'is not a port' in capsys.readouterr().err


def test_missing_receipts_are_the_scenario_shoppers_without_one(tmp_path):
    scen = tmp_path / 's.yaml'
    scen.write_text('scenario:\n  shoppers:\n  - {id: acct-1}\n  - {id: acct-2}\n'
                    '  - {id: acct-3}\n')
    assert runner_mod.missing_receipts(tmp_path, str(scen)) == ['acct-1', 'acct-2', 'acct-3']
    (tmp_path / 'receipts.jsonl').write_text('{"shopper_id": "acct-2"}\nnot json\n'
                                             '{"shopper_id": "acct-3"}\n')
    assert runner_mod.missing_receipts(tmp_path, str(scen)) == ['acct-1']
    assert runner_mod.missing_receipts(tmp_path, str(tmp_path / 'absent.yaml')) == []


def test_same_fact_ignores_numbers_only():
    assert runner_mod.same_fact('[WARN] [17.5] cam1: refused 0x5f', '[WARN] [18.1] cam1: '
                                'refused 0x60')
    assert not runner_mod.same_fact('[INFO] [1.0] receipt acct-0001', '[INFO] [2.0] receipt '
                                    'acct-0002')
    assert not runner_mod.same_fact('event g1 took 1 COLA', 'event g1 took 1 APPLE')
