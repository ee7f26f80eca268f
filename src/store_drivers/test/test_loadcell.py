"""Load-cell decoding: garbage, time mapping, sequence gaps, calibration, tare."""
import math
import random

import pytest

from store_common import plate_protocol as pp
from store_drivers.loadcell import (Calibration, ClockSync, PlateDecoder, STATUS_NOT_READY,
                                    STATUS_OK, STATUS_SATURATED, TareAverager, TareStore)

MS = 1_000_000
S_NS = 1_000_000_000
HOST0_NS = 1_700_000_000 * 1_000_000_000


@pytest.fixture
def cal(demo_store):
    return Calibration.from_store(demo_store, 'pc_g1')


@pytest.fixture
def decoder(demo_store, cal):
    return PlateDecoder('pc_g1', 9, cal, port='/dev/store/pc_g1', sample_rate_hz=40.0)


def counts_for(cal, channel, grams):
    c = cal.by_channel[channel]
    return c.tare_offset_counts + round(grams / c.grams_per_count)


def test_calibration_from_store(demo_store, cal):
    assert cal.plate_of(0) == 'g1.s1.p1' and cal.plate_of(8) == 'g1.s3.p3'
    assert cal.plate_of(9) == ''
    assert len(cal.plate_ids) == 9
    # g1.s1.p1: tare 24890, 0.004969 g/count
    assert cal.weight_grams(0, 24890) == 0.0
    assert cal.weight_grams(0, 24890 + 100_000) == pytest.approx(496.9)
    assert cal.weight_grams(2, -41012 - 1000) == pytest.approx(-4.893)
    assert math.isnan(cal.weight_grams(42, 0))
    with pytest.raises(KeyError):
        Calibration.from_store(demo_store, 'pc_nope')


def test_decodes_good_rows_between_garbage_and_counts_garbage_by_reason(decoder, cal):
    rng = random.Random(7)
    good = [pp.encode_row(i, 1000 + 25 * i, [counts_for(cal, ch, 100.0 * ch) for ch in range(9)])
            for i in range(4)]
    bad_checksum = bytearray(good[1])
    bad_checksum[-4:-2] = b'00' if bad_checksum[-4:-2] != b'00' else b'11'
    lines = [
        good[0],
        bytes(rng.randrange(256) for _ in range(60)),          # boot noise
        bytes(bad_checksum),                                     # corrupted row
        good[1],
        pp.encode_row(99, 5000, [1, 2, 3])[:20],                 # truncated (no checksum)
        pp.encode_row(100, 5000, [1] * 8),                       # wrong channel count
        b'$' + b'X' * 3000,                                       # over-long
        good[2],
        b'hello',                                                 # no '$'
        good[3],
    ]
    batch = decoder.decode([ln.rstrip(b'\r\n') if i % 2 else ln for i, ln in enumerate(lines)],
                           HOST0_NS)
    g = decoder.counters.garbage
    assert g['bad_checksum'] == 1
    assert g['no_checksum'] == 1
    assert g['channel_count'] == 1
    assert g['too_long'] == 1
    assert g['no_start'] >= 1
    assert decoder.counters.garbage_total == 6
    assert batch.rows == 4 and decoder.counters.rows == 4
    assert len(batch.samples) == 36
    ws = {s.plate_id: s.weight_grams for s in batch.samples}
    for ch in range(9):
        assert ws[cal.plate_of(ch)] == pytest.approx(100.0 * ch, abs=0.01)
    assert all(s.valid and s.status == STATUS_OK for s in batch.samples)
    assert batch.first_sequence == 0 and batch.dropped_frames == 0
    msgs = decoder.take_messages()
    assert len([m for m in msgs if m.key == 'garbage']) == 6


def test_saturated_and_not_ready_give_invalid_nan_weights(decoder):
    counts = [0, pp.ADC_MAX, pp.ADC_MIN, None, 5, 5, 5, 5, 5]
    batch = decoder.decode([pp.encode_row(1, 10, counts)], HOST0_NS)
    by_ch = {s.channel: s for s in batch.samples}
    assert by_ch[0].valid and by_ch[0].status == STATUS_OK
    for ch, status in ((1, STATUS_SATURATED), (2, STATUS_SATURATED), (3, STATUS_NOT_READY)):
        assert by_ch[ch].status == status
        assert not by_ch[ch].valid
        assert math.isnan(by_ch[ch].weight_grams)
    assert by_ch[1].adc_counts == pp.ADC_MAX and by_ch[3].adc_counts == 0
    assert decoder.counters.saturated == 2 and decoder.counters.not_ready == 1


def test_sequence_gaps_are_counted_as_dropped_frames_across_batches_and_wrap(decoder):
    row = [0] * 9
    b1 = decoder.decode([pp.encode_row(s, s * 25, row) for s in (10, 11, 14)], HOST0_NS)
    assert b1.dropped_frames == 2 and b1.first_sequence == 10
    b2 = decoder.decode([pp.encode_row(20, 500, row)], HOST0_NS + 500 * MS)
    assert b2.dropped_frames == 5
    assert decoder.counters.dropped_frames == 7
    # uint32 wrap: 2^32-1 -> 0 is not a gap, -> 1 is one
    d = decoder
    d.decode([pp.encode_row(0xFFFFFFFE, 600, row)], HOST0_NS + 600 * MS)   # 20 -> 2^32-2: back
    assert d.counters.seq_resyncs == 1
    before = d.counters.dropped_frames
    b = d.decode([pp.encode_row(0xFFFFFFFF, 625, row), pp.encode_row(1, 650, row)],
                 HOST0_NS + 650 * MS)
    assert b.dropped_frames == 1 and d.counters.dropped_frames == before + 1
    # a sequence that goes back is a resync, not 4 billion drops
    b = d.decode([pp.encode_row(0, 1000, row)], HOST0_NS + 700 * MS)
    assert b.dropped_frames == 0 and d.counters.seq_resyncs == 2


def test_tick_wrap_keeps_stamps_monotonic_and_spaced():
    cs = ClockSync()
    start = 0xFFFFFFFF - 100                # 100 ms before the wrap
    stamps = []
    for i in range(20):
        tick = (start + 25 * i) & 0xFFFFFFFF
        ext = cs.unwrap(tick)
        cs.observe(ext, HOST0_NS + 25 * i * MS + 3 * MS)
        stamps.append(cs.stamp(ext))
    diffs = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(d == 25 * MS for d in diffs)


def test_decoder_stamps_across_tick_wrap(decoder):
    row = [0] * 9
    start = 0xFFFFFFFF - 60
    all_stamps = []
    for burst in range(5):
        lines, last_tick = [], None
        for k in range(4):
            i = burst * 4 + k
            last_tick = start + 25 * i
            lines.append(pp.encode_row(i, last_tick & 0xFFFFFFFF, row))
        b = decoder.decode(lines, HOST0_NS + (last_tick - start) * MS + 2 * MS)
        all_stamps += sorted({s.stamp_ns for s in b.samples})
    diffs = [b - a for a, b in zip(all_stamps, all_stamps[1:])]
    assert len(all_stamps) == 20
    assert all(d == 25 * MS for d in diffs)


def test_burst_delivery_gives_stamps_spaced_by_sample_period(decoder):
    """40 Hz rows flushed every 100 ms with 5..25 ms random extra latency."""
    rng = random.Random(3)
    row = [0] * 9
    true_ns, stamps = [], []
    period_ms = 25
    for burst in range(40):
        lines = []
        for k in range(4):
            i = burst * 4 + k
            lines.append(pp.encode_row(i, 777 + period_ms * i, row))
            true_ns.append(HOST0_NS + period_ms * i * MS)
        # the flush happens after the burst's last sample; the bytes arrive with latency
        receive_ns = true_ns[-1] + rng.randint(5, 25) * MS
        b = decoder.decode(lines, receive_ns)
        stamps += sorted({s.stamp_ns for s in b.samples})
    assert len(stamps) == 160
    diffs = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(d > 0 for d in diffs)                       # strictly monotonic
    # within the very first burst already: its last row bounds the latency of all four
    assert diffs[:3] == [period_ms * MS] * 3
    # after the first seconds the offset has found the minimum latency: spacing is the
    # sample period (exactly, apart from the rare step when a new minimum is found)
    late = diffs[40:]
    exact = sum(1 for d in late if d == period_ms * MS)
    assert exact >= len(late) - 3
    assert all(abs(d - period_ms * MS) <= 20 * MS for d in late)
    # stamps sit within the minimum latency of the truth, not at the arrival of the burst
    err_ms = [(s - t) / MS for s, t in zip(stamps[40:], true_ns[40:])]
    assert all(4.0 <= e <= 7.0 for e in err_ms), (min(err_ms), max(err_ms))
    # naive receive-time stamping would be off by up to 75 ms + latency within a burst
    assert decoder.clock.offset_ns is not None


def test_clock_sync_restart_of_controller_reanchors_once_the_new_ticks_hold():
    cs = ClockSync(period_ms=25.0)
    for i in range(10):
        ext = cs.accept(1_000_000 + 25 * i, HOST0_NS + 25 * i * MS, seq=i)
    last = cs.stamp(ext)
    stamps = []
    for k in range(60):                         # controller rebooted: tick and seq from 0
        rx = HOST0_NS + 300 * MS + 25 * k * MS
        ext = cs.accept(5 + 25 * k, rx, seq=k)
        if ext is not None:
            stamps.append((k, cs.stamp(ext, rx), rx))
    assert cs.resets == cs.reanchors == 1
    first_k = stamps[0][0]
    assert 25 * first_k * MS >= 1 * S_NS and 25 * first_k * MS <= 1.1 * S_NS
    assert cs.rejected == first_k
    assert all(s == rx and s > last for _, s, rx in stamps)


def test_info_line_mismatch_is_an_error_and_rows_are_rejected(decoder):
    row = [0] * 9
    decoder.decode([pp.encode_info('pc_g1', '1.2.0', 9, 40)], HOST0_NS)
    assert decoder.mismatch == ''
    assert [m.key for m in decoder.take_messages()] == ['info_ok']
    b = decoder.decode([pp.encode_info('pc_g2', '1.2.0', 9, 40), pp.encode_row(1, 25, row)],
                       HOST0_NS)
    assert b is None
    assert decoder.counters.garbage['wrong_controller'] == 1
    errors = [m for m in decoder.take_messages() if m.level == 'error']
    assert len(errors) == 1
    text = errors[0].text
    assert 'pc_g1' in text and 'pc_g2' in text and '/dev/store/pc_g1' in text
    assert 'expected' in text
    decoder.decode([pp.encode_info('pc_g1', '1.2.0', 4, 40)], HOST0_NS)
    assert 'expected 9, got 4' in decoder.mismatch
    decoder.decode([pp.encode_info('pc_g1', '1.2.0', 9, 40)], HOST0_NS)
    assert decoder.mismatch == ''
    assert [m.key for m in decoder.take_messages()] == ['info_mismatch', 'info_ok']
    assert decoder.decode([pp.encode_row(2, 50, row)], HOST0_NS).rows == 1


def test_error_lines_counted_and_bad_channel_is_garbage(decoder):
    assert decoder.decode([pp.encode_error(1, 25, 3, 'NR'), pp.encode_error(1, 25, 30, 'NR')],
                          HOST0_NS) is None
    assert decoder.counters.channel_errors == 1
    assert decoder.counters.garbage['bad_channel'] == 1


def test_tare_averager_and_persistence_across_reload(tmp_path, demo_store, decoder):
    cal = decoder.calibration
    rng = random.Random(1)
    avg = TareAverager(['g1.s1.p1', 'g1.s2.p3'], duration_s=1.0)
    seq, t = 0, 0
    while not avg.done:
        counts = [30_000 + rng.randint(-50, 50)] * 3 + [None] + [-3_000 + rng.randint(-50, 50)] * 5
        b = decoder.decode([pp.encode_row(seq, t, counts)], HOST0_NS + t * MS + MS)
        avg.feed(b.samples)
        seq, t = seq + 1, t + 25
    assert 30 <= avg.count('g1.s1.p1') <= 41
    result = avg.result()
    assert abs(result['g1.s1.p1'] - 30_000) <= 30
    assert abs(result['g1.s2.p3'] - (-3_000)) <= 30
    for plate_id, counts in result.items():
        cal.set_tare(plate_id, counts)
    assert cal.weight_grams(0, result['g1.s1.p1']) == 0.0

    path = tmp_path / 'state' / 'tare.yaml'
    TareStore(path).save('pc_g1', result)
    TareStore(path).save('pc_g2', {'g2.s1.p1': 123})          # a second driver, same file
    assert not list(path.parent.glob('*.tmp'))

    fresh = Calibration.from_store(demo_store, 'pc_g1')       # "restart"
    assert fresh.by_plate['g1.s1.p1'].tare_offset_counts == 24890
    applied, ignored = fresh.apply_overrides(TareStore(path).load())
    assert applied == ['g1.s1.p1', 'g1.s2.p3'] and ignored == ['g2.s1.p1']
    assert fresh.by_plate['g1.s1.p1'].tare_offset_counts == result['g1.s1.p1']
    assert fresh.by_plate['g1.s1.p2'].tare_offset_counts == 43500   # untouched


def test_tare_averager_fails_without_valid_samples(decoder):
    avg = TareAverager(['g1.s1.p1'], duration_s=0.1)
    for i in range(10):
        b = decoder.decode([pp.encode_row(i, i * 25, [None] + [0] * 8)], HOST0_NS + i * 25 * MS)
        avg.feed(b.samples)
    assert avg.done
    with pytest.raises(ValueError, match='g1.s1.p1'):
        avg.result()


def test_tare_store_rejects_corrupt_file(tmp_path):
    p = tmp_path / 't.yaml'
    assert TareStore(p).load() == {}
    p.write_text('tare_overrides: [1, 2]\n')
    with pytest.raises(ValueError, match='tare_overrides'):
        TareStore(p).load()
    p.write_text('tare_overrides:\n  g1.s1.p1: {tare_offset_counts: abc}\n')
    with pytest.raises(ValueError, match='integer'):
        TareStore(p).load()


def test_tare_store_refuses_a_plate_listed_twice_and_bytes_not_utf8(tmp_path):
    p = tmp_path / 't.yaml'
    p.write_text('tare_overrides:\n  g1.s1.p1: {tare_offset_counts: 5}\n'
                 '  g1.s1.p1: {tare_offset_counts: 9}\n')
    with pytest.raises(ValueError,
                       match=r"t\.yaml: line 3, column 3: duplicate key 'g1\.s1\.p1'"):
        TareStore(p).load()
    p.write_bytes(b'tare_overrides: {}\n# \xff\n')
    with pytest.raises(ValueError,
                       match=r't\.yaml: line 2: not UTF-8: byte 0xff at byte offset 21'):
        TareStore(p).load()


def test_clock_sync_follows_host_clock_jumps():
    """ROS time starting late (use_sim_time before /clock) or a replay looping back."""
    cs = ClockSync()
    ext = 0
    for i in range(8):                           # ROS time not started yet: receive time 0
        ext = cs.unwrap(1000 + 25 * i)
        cs.observe(ext, 0)
    cs.stamp(ext)
    for i in range(8, 16):                       # /clock arrives
        ext = cs.unwrap(1000 + 25 * i)
        cs.observe(ext, HOST0_NS + 25 * i * MS + 2 * MS)
        s = cs.stamp(ext)
        assert s == HOST0_NS + 25 * i * MS + 2 * MS
    assert cs.host_jumps == 1
    ext = cs.unwrap(1000 + 25 * 16)              # the replay loops back 60 s
    cs.observe(ext, HOST0_NS - 60 * S_NS)
    assert cs.stamp(ext) == HOST0_NS - 60 * S_NS
    assert cs.host_jumps == 2


# --- clock outliers: one row with a valid checksum and a wrong tick ---------------------------
def stream(decoder, n_rows, tick_of, seq_of=lambda i: i, latency_of=None, seed=5):
    """40 Hz rows flushed in bursts of 4 with 5..25 ms latency; channel 0 carries the row index.

    Returns ({row index: stamp_ns}, {row index: true_ns}) of the rows the decoder delivered."""
    rng = random.Random(seed)
    got, truth = {}, {}
    for burst in range(n_rows // 4):
        lines = []
        for i in range(burst * 4, burst * 4 + 4):
            truth[i] = HOST0_NS + 25 * i * MS
            lines.append(pp.encode_row(seq_of(i) & 0xFFFFFFFF, tick_of(i) & 0xFFFFFFFF,
                                       [i] + [0] * 8))
        extra_ms = latency_of(burst) if latency_of else 0
        b = decoder.decode(lines, truth[burst * 4 + 3] + (rng.randint(5, 25) + extra_ms) * MS)
        for s in (b.samples if b else []):
            if s.channel == 0:
                got[s.adc_counts] = s.stamp_ns
    return got, truth


def errors_ms(got, truth, rows):
    return [(got[i] - truth[i]) / MS for i in rows if i in got]


@pytest.mark.parametrize('jump_ms', [86_400_000, 5000, 900, -900, -86_400_000])
def test_one_row_with_a_jumped_tick_is_refused_and_stamps_stay_true(decoder, jump_ms):
    at = 200                                     # 5 s into the stream
    got, truth = stream(decoder, 1600, lambda i: 777 + 25 * i + (jump_ms if i == at else 0))
    assert at not in got                         # the row itself is refused ...
    assert decoder.counters.clock_rejected == 1  # ... counted ...
    msgs = [m for m in decoder.take_messages() if m.key == 'clock_outlier']
    assert len(msgs) == 1 and f'tick {(777 + 25 * at + jump_ms) & 0xFFFFFFFF}' in msgs[0].text
    # ... and every other row, for the 35 s after it, keeps a stamp within the minimum
    # latency (5 ms) of its true time: no shift for the window's 10 s, no stamp pinned ahead
    err = errors_ms(got, truth, range(at + 1, 1600))
    assert len(err) == 1600 - at - 1
    assert all(4.0 <= e <= 6.0 for e in err), (min(err), max(err))
    assert decoder.clock.reanchors == 0 and decoder.counters.dropped_frames == 1


def test_one_row_jumped_a_day_without_a_known_sample_period(demo_store, cal):
    d = PlateDecoder('pc_g1', 9, cal)             # no rate: the host clock alone judges
    got, truth = stream(d, 800, lambda i: 777 + 25 * i + (86_400_000 if i == 200 else 0),
                        seq_of=lambda i: 0)
    assert 200 not in got and d.counters.clock_rejected == 1
    err = errors_ms(got, truth, range(201, 800))
    assert all(0.0 <= e <= 30.0 for e in err), (min(err), max(err))


def test_controller_reset_is_followed_within_seconds(decoder):
    at = 400                                     # rebooted 10 s in: tick and sequence from 0
    got, truth = stream(decoder, 1600,
                        lambda i: 3_000_000 + 25 * i if i < at else 30 + 25 * (i - at),
                        seq_of=lambda i: 7000 + i if i < at else i - at)
    lost = [i for i in range(at, 1600) if i not in got]
    assert lost == list(range(at, at + len(lost)))
    assert 25 * len(lost) <= 1500                # followed again within 1.5 s
    assert decoder.clock.reanchors == 1 and decoder.clock.resets == 1
    err = errors_ms(got, truth, range(at + len(lost) + 80, 1600))   # 2 s after: settled
    assert len(err) > 1000 and all(0.0 <= e <= 30.0 for e in err), (min(err), max(err))
    assert any(m.key == 'clock_reanchor' for m in decoder.take_messages())


def test_controller_clock_that_really_jumps_ahead_is_followed(decoder):
    at = 400
    got, truth = stream(decoder, 1600, lambda i: 777 + 25 * i + (60_000 if i >= at else 0))
    lost = [i for i in range(at, 1600) if i not in got]
    assert 25 * len(lost) <= 1500 and decoder.clock.reanchors == 1
    err = errors_ms(got, truth, range(at + len(lost), 1600))
    assert all(0.0 <= e <= 30.0 for e in err), (min(err), max(err))


def test_slow_first_delivery_does_not_lose_rows(decoder):
    """The first burst arrived 400 ms late (host busy at start): later rows look 'ahead' of
    that offset, but their ticks follow the sample period, so they are taken and the offset
    drops to the true minimum at once."""
    got, truth = stream(decoder, 400, lambda i: 777 + 25 * i,
                        latency_of=lambda burst: 400 if burst == 0 else 0)
    assert len(got) == 400 and decoder.counters.clock_rejected == 0
    err = errors_ms(got, truth, range(8, 400))
    assert all(0.0 <= e <= 30.0 for e in err), (min(err), max(err))


def test_stamps_are_never_later_than_their_arrival():
    cs = ClockSync()
    ext = cs.accept(1000, HOST0_NS)
    assert cs.stamp(ext, HOST0_NS) == HOST0_NS
    ext = cs.accept(1000, HOST0_NS + 3 * MS)     # a duplicate row: clamped, not pushed ahead
    assert cs.stamp(ext, HOST0_NS + 3 * MS) <= HOST0_NS + 3 * MS


@pytest.mark.parametrize('described_hz,real_hz', [(80.0, 10.0), (10.0, 80.0), (40.0, 50.0)])
def test_a_mis_stated_sample_rate_loses_no_rows(cal, described_hz, real_hz):
    """The description says one rate, the controller samples at another (and says so only in
    its info line, which may come later): every row is still taken."""
    d = PlateDecoder('pc_g1', 9, cal, sample_rate_hz=described_hz)
    rng, period_ms, kept = random.Random(2), 1000.0 / real_hz, 0
    for burst in range(300):
        lines = [pp.encode_row(i, int(5 + period_ms * i), [0] * 9)
                 for i in range(burst * 4, burst * 4 + 4)]
        rx = HOST0_NS + int(period_ms * (burst * 4 + 3) * MS) + rng.randint(5, 65) * MS
        b = d.decode(lines, rx)
        kept += b.rows if b else 0
    assert kept == 1200 and d.counters.clock_rejected == 0


def test_the_info_line_rate_becomes_the_clock_period(decoder):
    decoder.decode([pp.encode_info('pc_g1', 'fw', 9, 80)], HOST0_NS)
    assert decoder.clock.period_ms == pytest.approx(12.5)
