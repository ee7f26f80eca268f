"""SerialLink: line splitting, disconnect/reconnect against real pseudo-terminals, staleness."""
import time

import pytest

from store_drivers.serial_link import LineSplitter, LinkEvent, SerialLink


def test_splitter_cr_lf_crlf_and_partial_lines():
    s = LineSplitter(max_line_bytes=64)
    assert s.feed(b'a\rb\nc\r\nd') == [b'a', b'b', b'c']
    assert s.feed(b'e\r') == [b'de']
    assert s.feed(b'\n\n\r') == []          # empty lines are dropped
    assert s.too_long == 0


def test_splitter_discards_over_long_lines_and_counts_them():
    s = LineSplitter(max_line_bytes=8)
    assert s.feed(b'12345678\r\n') == [b'12345678']          # exactly at the cap: kept
    assert s.feed(b'123456789\r\nok\n') == [b'ok']           # one over: dropped
    assert s.too_long == 1
    # an over-long line arriving in pieces is dropped up to its terminator
    assert s.feed(b'x' * 20) == []
    assert s.feed(b'y' * 20) == []
    assert s.feed(b'zz\nnext\n') == [b'next']
    assert s.too_long == 2


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def poll_until(link, pred, timeout_s=3.0, clock=None, step_s=0.01):
    """Poll (advancing a fake clock if given) until pred(lines so far) is true."""
    got = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got += link.poll()
        if pred(got):
            return got
        if clock is not None:
            clock.t += step_s
        time.sleep(0.005)
    return got


def test_reads_lines_then_detects_removal_and_reconnects_to_new_pty(make_pty):
    clock = FakeClock()
    dev = make_pty('pc_test')
    link = SerialLink(str(dev.link), 115200, stale_timeout_s=0.0, clock=clock)
    link.poll()                           # opens (pyserial flushes input on open)
    dev.write(b'hello\r\nwor')
    dev.write(b'ld\n')
    assert poll_until(link, lambda g: len(g) >= 2) == [b'hello', b'world']
    st = link.state
    assert st.connected and st.opens == 1 and st.reconnects == 0
    assert [e.kind for e in link.take_events()] == [LinkEvent.CONNECTED]

    dev.close(remove_link=True)           # the device disappears
    poll_until(link, lambda g: not link.state.connected)
    assert not link.state.connected
    assert link.state.disconnects == 1
    assert link.state.last_error
    assert LinkEvent.DISCONNECTED in [e.kind for e in link.take_events()]

    # nothing there yet: retries fail and back off without raising
    clock.t += 1.0
    assert link.poll() == []
    assert link.state.open_failures >= 1 and not link.state.connected

    dev2 = make_pty('pc_test')            # a new pty appears at the same symlink path
    clock.t += 10.0                        # past any backoff
    assert link.poll() == []
    assert link.state.connected and link.state.reconnects == 1
    dev2.write(b'again\r\n')
    assert poll_until(link, lambda g: g) == [b'again']


def test_repointed_symlink_triggers_reopen(make_pty):
    clock = FakeClock()
    dev = make_pty('gate')
    link = SerialLink(str(dev.link), 9600, clock=clock)
    link.poll()
    assert link.state.connected
    other = make_pty('other')
    dev.link.unlink()
    dev.link.symlink_to(other.slave_path)   # the simulator restarted on a new pty
    link.poll()
    assert not link.state.connected and 'points to' in link.state.last_error
    clock.t += 1.0
    link.poll()
    assert link.state.connected and link.state.reconnects == 1
    other.write(b'x\n')
    assert poll_until(link, lambda g: g) == [b'x']


def test_backoff_doubles_to_five_seconds(tmp_path):
    clock = FakeClock()
    link = SerialLink(str(tmp_path / 'missing'), 115200, clock=clock)
    attempts = []
    for _ in range(4000):
        before = link.state.open_failures
        link.poll()
        if link.state.open_failures > before:
            attempts.append(clock.t)
        clock.t += 0.01
    gaps = [round(b - a, 2) for a, b in zip(attempts, attempts[1:])]
    # polled every 10 ms, so each gap may be one poll period late
    assert gaps[:5] == pytest.approx([0.5, 1.0, 2.0, 4.0, 5.0], abs=0.011)
    assert len(gaps) > 8 and all(abs(g - 5.0) <= 0.011 for g in gaps[4:])
    # one open_failed event for the whole streak, not one per retry
    assert [e.kind for e in link.take_events()] == [LinkEvent.OPEN_FAILED]


def test_silent_device_is_reopened_after_stale_timeout(make_pty):
    clock = FakeClock()
    dev = make_pty('silent')
    link = SerialLink(str(dev.link), 115200, stale_timeout_s=2.0, clock=clock)
    link.poll()
    dev.write(b'one\n')
    assert poll_until(link, lambda g: g) == [b'one']
    clock.t += 1.9
    link.poll()
    assert link.state.connected
    clock.t += 0.2
    link.poll()
    assert not link.state.connected
    assert 'no data' in link.state.last_error
    clock.t += 0.6
    link.poll()
    assert link.state.connected and link.state.reconnects == 1
    dev.write(b'two\n')
    assert poll_until(link, lambda g: g) == [b'two']


def test_stale_without_reconnect_only_reports(make_pty):
    clock = FakeClock()
    dev = make_pty('qr')
    link = SerialLink(str(dev.link), 9600, stale_timeout_s=5.0, reconnect_on_stale=False,
                      clock=clock)
    link.poll()
    clock.t += 6.0
    link.poll()
    assert link.state.connected and link.state.stale
    assert LinkEvent.STALE in [e.kind for e in link.take_events()]
    dev.write(b'WOS1:a\r')
    assert poll_until(link, lambda g: g) == [b'WOS1:a']
    assert not link.state.stale
    assert link.state.reconnects == 0


def test_poll_never_raises_on_read_errors():
    clock = FakeClock()

    class Broken:
        def read(self, n):
            raise OSError(5, 'Input/output error')

        def close(self):
            raise OSError('already gone')

    link = SerialLink('/dev/null', 115200, clock=clock, opener=lambda p, b: Broken())
    for _ in range(10):
        assert link.poll() == []
        clock.t += 6.0
    assert link.state.disconnects == 10
    assert 'Input/output error' in link.state.last_error


def test_over_long_garbage_is_counted_on_state(make_pty):
    dev = make_pty('long')
    link = SerialLink(str(dev.link), 115200, max_line_bytes=100)
    link.poll()
    dev.write(b'A' * 500 + b'\r\nfine\r\n')
    assert poll_until(link, lambda g: g) == [b'fine']
    assert link.state.too_long_lines == 1


@pytest.mark.parametrize('chunks', [[b'ab\r', b'\ncd\r\n'], [b'ab', b'\r\n', b'cd\n']])
def test_crlf_split_across_reads(chunks):
    s = LineSplitter()
    out = []
    for c in chunks:
        out += s.feed(c)
    assert out == [b'ab', b'cd']


def test_removed_port_path_is_a_disconnect_even_if_reads_still_work(make_pty):
    clock = FakeClock()
    dev = make_pty('udev')
    link = SerialLink(str(dev.link), 115200, clock=clock)
    link.poll()
    assert link.state.connected
    dev.link.unlink()                       # udev removed the symlink; the pty itself lives on
    link.poll()
    assert not link.state.connected
    assert link.state.last_error == 'port path is gone'
