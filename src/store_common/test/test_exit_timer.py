"""ExitTimer ends the process with its code even while a C call keeps the interpreter's lock,
and does nothing once cancelled. Each case runs in a child process."""
import subprocess
import sys
import textwrap
import time

import pytest

from store_common.exit_timer import ExitTimer

CHILD = textwrap.dedent('''
    import ctypes, sys, time
    from store_common.exit_timer import ExitTimer
    code, cancel = int(sys.argv[1]), sys.argv[2] == 'cancel'
    timer = ExitTimer(0.3, code)
    if cancel:
        timer.cancel()
        timer.cancel()                  # idempotent
        time.sleep(0.8)
        print('still running')
        sys.exit(3)
    print('blocking', flush=True)
    ctypes.PyDLL(None).sleep(8)         # a C call that keeps the GIL: no Python thread runs
    print('woke up')
''')


def _run(*args):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, '-c', CHILD, *args], capture_output=True, text=True,
                          timeout=30)
    return proc, time.monotonic() - started


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='POSIX timers of glibc')
@pytest.mark.parametrize('code', [0, 7])
def test_the_timer_exits_with_its_code_while_the_interpreter_is_blocked(code):
    proc, took_s = _run(str(code), 'block')
    assert proc.returncode == code, proc
    assert 'blocking' in proc.stdout and 'woke up' not in proc.stdout, proc
    assert took_s < 6.0, took_s         # well before the 8 s call would have returned


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='POSIX timers of glibc')
def test_a_cancelled_timer_never_fires():
    proc, _ = _run('7', 'cancel')
    assert proc.returncode == 3 and 'still running' in proc.stdout, proc


@pytest.mark.parametrize('delay_s, code', [(0, 0), (-1, 0), (1, 256), (1, -1)])
def test_bad_arguments_are_refused(delay_s, code):
    with pytest.raises(ValueError):
        ExitTimer(delay_s, code)
