"""Emulators on real pseudo-terminals: lines parse, values decode to the physics, faults."""
import os
import pathlib
import random
import time

import numpy as np
import pytest

from store_common import plate_protocol as pp
from store_common.description import load_store
from store_sim.emulators import (garbage_line, gate_scans, GateReaderEmulator,
                                 PlateControllerEmulator)
from store_sim.physics import StorePhysics
from store_sim.scenario import load_scenario

ROOT = pathlib.Path(__file__).resolve().parents[3]
STORE = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')
DEMO = load_scenario(ROOT / 'config' / 'scenarios' / 'demo.yaml', STORE)
CTRL = STORE.controller('pc_g1')


class FakeClock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def open_reader(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    return fd


def drain(fd) -> bytes:
    out = b''
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


def make_emulator(tmp_path, clock, **kw):
    ph = StorePhysics(STORE, DEMO)
    emu = PlateControllerEmulator(CTRL.id, CTRL.n_channels, CTRL.sample_rate_hz,
                                  lambda t: ph.controller_rows(CTRL.id, t),
                                  tmp_path / CTRL.id, scenario_start=clock.t - 4.0,
                                  clock=clock, seed=3, **kw)
    return ph, emu


def run_for(emu, clock, fd, seconds, step_s=0.05) -> bytes:
    data = b''
    for _ in range(int(round(seconds / step_s))):
        clock.t += step_s
        emu.poll()
        data += drain(fd)
    return data


def test_rows_over_a_real_pty_parse_and_decode_to_the_physics(tmp_path):
    clock = FakeClock()
    ph, emu = make_emulator(tmp_path, clock)
    slave = emu.start()
    link = tmp_path / CTRL.id
    assert link.is_symlink() and os.readlink(link) == slave and slave.startswith('/dev/pts/')
    fd = open_reader(link)
    try:
        data = run_for(emu, clock, fd, 12.0)    # scenario time -4 .. 8 s: COLA taken at 7 s
    finally:
        os.close(fd)
        emu.close()
    assert not link.exists()
    assert data.endswith(b'\r\n')
    lines = data.split(b'\r\n')[:-1]
    parsed = [pp.parse_line(line, expect_channels=CTRL.n_channels) for line in lines]
    infos = [p for p in parsed if isinstance(p, pp.InfoLine)]
    rows = [p for p in parsed if isinstance(p, pp.RowLine)]
    assert len(infos) == 2 and infos[0] == pp.InfoLine('pc_g1', 'sim-1.0', 9, 40.0)
    assert abs(len(rows) - 12.0 * 40) <= 5
    # seq and tick: consecutive, 25 ms apart, wrap-safe arithmetic
    for a, b in zip(rows, rows[1:]):
        assert (b.seq - a.seq) & 0xFFFFFFFF == 1
        assert (b.tick_ms - a.tick_ms) & 0xFFFFFFFF == 25
    # values decode, with the plate calibration, to the physics' load at that sample's time
    plates = STORE.plates_of_controller(CTRL.id)
    t_scen = np.array([((r.seq - emu.seq0) & 0xFFFFFFFF) / 40.0 for r in rows]) \
        + emu.t0 - emu.scenario_start
    truth = ph.load_grams(t_scen) + ph.drift_grams(t_scen)
    checked = 0
    for i, r in enumerate(rows):
        for plate in plates:
            c = r.counts[plate.load_cell.channel]
            if c is None:
                continue
            grams = (c - plate.load_cell.tare_offset_counts) * plate.load_cell.grams_per_count
            assert grams == pytest.approx(truth[ph.index[plate.id], i], abs=3.0)
            checked += 1
    assert checked > 0.99 * len(rows) * len(plates)
    # the take is in the stream: g1.s1.p1 is ~352 g lighter after 7 s than before
    k = plates[0].load_cell.channel
    g = np.array([np.nan if r.counts[k] is None else r.counts[k] for r in rows], float)
    g = (g - plates[0].load_cell.tare_offset_counts) * plates[0].load_cell.grams_per_count
    after = np.nanmean(g[(t_scen > 7.6) & (t_scen < 8.0)])
    step = after - np.nanmean(g[(t_scen > 4) & (t_scen < 5.5)])
    assert step == pytest.approx(-352.0, abs=12.0)


def test_rows_come_in_bursts_of_about_100_ms(tmp_path):
    clock = FakeClock()
    _, emu = make_emulator(tmp_path, clock)
    emu.start()
    fd = open_reader(tmp_path / CTRL.id)
    try:
        bursts = []
        for _ in range(100):
            clock.t += 0.01
            emu.poll()
            chunk = drain(fd)
            if chunk:
                bursts.append(chunk.count(b'$PCD'))
    finally:
        os.close(fd)
        emu.close()
    assert 8 <= len(bursts) <= 11
    assert all(2 <= n <= 6 for n in bursts[1:])


def test_tick_wraps(tmp_path):
    clock = FakeClock()
    _, emu = make_emulator(tmp_path, clock)
    emu.tick0_ms = 0xFFFFFFFF - 300
    emu.start()
    fd = open_reader(tmp_path / CTRL.id)
    try:
        data = run_for(emu, clock, fd, 1.0)
    finally:
        os.close(fd)
        emu.close()
    rows = [pp.parse_line(x) for x in data.split(b'\r\n')[:-1]]
    ticks = [r.tick_ms for r in rows if isinstance(r, pp.RowLine)]
    assert max(ticks) > 0xFFFFFF00 and min(ticks) < 1000
    assert all((b - a) & 0xFFFFFFFF == 25 for a, b in zip(ticks, ticks[1:]))


def test_garbage_lines_are_rejected_by_the_parser(tmp_path):
    clock = FakeClock()
    _, emu = make_emulator(tmp_path, clock, garbage_line_rate=0.2)
    emu.start()
    fd = open_reader(tmp_path / CTRL.id)
    try:
        data = run_for(emu, clock, fd, 5.0)
    finally:
        os.close(fd)
        emu.close()
    bad = good = 0
    reasons = set()
    for line in data.split(b'\r\n')[:-1]:
        try:
            pp.parse_line(line)
            good += 1
        except pp.ProtocolError as exc:   # never any other exception
            bad += 1
            reasons.add(exc.reason)
    assert bad == emu.garbage_sent > 10
    assert good > 100
    assert {'bad_checksum', 'no_checksum'} <= reasons


def test_garbage_line_kinds_all_fail_parse():
    rng = random.Random(0)
    row = pp.encode_row(5, 1234, [1, -2, None, 300000])
    for _ in range(300):
        g = garbage_line(rng, row)
        assert g.endswith(b'\r\n')
        parts = g.split(b'\r\n')[:-1]
        with pytest.raises(pp.ProtocolError):
            pp.parse_line(parts[0])
        if len(parts) == 2:               # boot noise followed by the intact row
            assert parts[1] + b'\r\n' == row


def test_disconnect_and_reconnect_at_the_same_path(tmp_path):
    clock = FakeClock()
    _, emu = make_emulator(tmp_path, clock, disconnect_after_s=1.0, disconnect_for_s=0.5)
    emu.start()
    link = tmp_path / CTRL.id
    fd = open_reader(link)
    first = run_for(emu, clock, fd, 1.2)
    assert first.count(b'$PCD') > 30
    assert not link.exists()
    try:
        hung_up = os.read(fd, 100) == b''     # hang-up: end of file (or EIO)
    except OSError:
        hung_up = True
    os.close(fd)
    assert hung_up
    clock.t += 0.5
    emu.poll()
    assert link.is_symlink()
    fd = open_reader(link)
    try:
        again = run_for(emu, clock, fd, 0.5)
    finally:
        os.close(fd)
        emu.close()
    lines = again.split(b'\r\n')[:-1]
    assert lines and isinstance(pp.parse_line(lines[0]), pp.InfoLine)
    assert all(pp.parse_line(x) for x in lines)


def test_unread_pty_never_blocks_and_drops(tmp_path):
    clock = FakeClock()
    _, emu = make_emulator(tmp_path, clock)
    emu.start()
    t0 = time.perf_counter()
    for _ in range(600):               # 60 s of rows, nobody reading
        clock.t += 0.1
        emu.poll()
    assert time.perf_counter() - t0 < 5.0
    fd = open_reader(tmp_path / CTRL.id)
    try:
        data = drain(fd)
    finally:
        os.close(fd)
        emu.close()
    assert emu.rows_sent > 2300
    assert 0 < data.count(b'$PCD') < emu.rows_sent    # old rows fell on the floor


def test_gate_reader_sends_scans_on_time(tmp_path):
    clock = FakeClock()
    scans = gate_scans(DEMO, STORE)
    assert scans['entrance'] == [(2.0, 'acct-0001'), (29.0, 'acct-0002'), (44.0, 'acct-0003')]
    assert [a for _, a in scans['exit']] == ['acct-0001', 'acct-0002', 'acct-0003']
    emu = GateReaderEmulator('entrance', scans['entrance'], tmp_path / 'gate_entrance',
                             scenario_start=clock.t, clock=clock)
    emu.start()
    fd = open_reader(tmp_path / 'gate_entrance')
    try:
        clock.t += 1.9
        emu.poll()
        assert drain(fd) == b''
        clock.t += 0.2
        emu.poll()
        assert drain(fd) == b'WOS1:acct-0001\r'
        clock.t += 50.0
        emu.poll()
        assert drain(fd) == b'WOS1:acct-0002\rWOS1:acct-0003\r'
    finally:
        os.close(fd)
        emu.close()
