"""The plate controller line codec: round trips, and garbage always ends as ProtocolError."""
import math
import random

import pytest

from store_common import plate_protocol as pp
from store_common.plate_protocol import (ADC_MAX, ADC_MIN, checksum, encode_error, encode_info,
                                         encode_row, ErrorLine, InfoLine, parse_line,
                                         ProtocolError, RowLine)


def test_round_trips():
    row = parse_line(encode_row(4294967295, 123, [0, -1, None, ADC_MAX, ADC_MIN, 8000]))
    assert row == RowLine(seq=4294967295, tick_ms=123,
                          counts=(0, -1, None, ADC_MAX, ADC_MIN, 8000))
    assert parse_line(encode_info('pc_g1', '2.1.0', 9, 80)) == InfoLine('pc_g1', '2.1.0', 9, 80.0)
    assert parse_line(encode_error(1, 2, 3, 'NR')) == ErrorLine(1, 2, 3, 'NR')


def test_values_beyond_24_bits_are_clamped_on_encode_and_refused_on_parse():
    assert parse_line(encode_row(0, 0, [1 << 30])).counts == (ADC_MAX,)
    body = 'PCD,1,1,9000000'
    with pytest.raises(ProtocolError, match='outside 24 bits'):
        parse_line(f'${body}*{checksum(body)}')


def test_seq_and_tick_wrap_at_uint32():
    row = parse_line(encode_row(1 << 32, (1 << 32) + 5, [1]))
    assert (row.seq, row.tick_ms) == (0, 5)


@pytest.mark.parametrize('line,reason', [
    (b'garbage', 'no_start'),
    (b'$PCD,1,2,3', 'no_checksum'),
    (b'$PCD,1,2,3*00', 'bad_checksum'),
    (b'\xff\xfe$PCD', 'not_ascii'),
    (b'$' + b'A' * 3000, 'too_long'),
    (b'$XYZ,1*' + checksum('XYZ,1').encode(), 'unknown_kind'),
])
def test_garbage_reasons(line, reason):
    with pytest.raises(ProtocolError) as err:
        parse_line(line)
    assert err.value.reason == reason


def test_channel_count_is_checked():
    with pytest.raises(ProtocolError, match='3 channels, expected 9'):
        parse_line(encode_row(1, 1, [1, 2, 3]), expect_channels=9)


def test_truncated_row_is_rejected():
    line = encode_row(7, 1000, [100, 200, 300])
    with pytest.raises(ProtocolError):
        parse_line(line[:12])


def test_fuzzed_bytes_only_ever_raise_protocol_error():
    rng = random.Random(1234)
    good = encode_row(5, 1000, [1, 2, 3, None])
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            i = rng.randrange(len(data))
            if op < 0.4:
                data[i] = rng.randrange(256)
            elif op < 0.7:
                del data[i]
            else:
                data.insert(i, rng.randrange(256))
        try:
            parse_line(bytes(data))
        except ProtocolError:
            pass


def test_worst_case_row_of_the_most_channels_fits_a_line():
    row = pp.encode_row(0xFFFFFFFF, 0xFFFFFFFF, [pp.ADC_MIN] * pp.MAX_CHANNELS)
    assert len(row) == pp.max_row_bytes(pp.MAX_CHANNELS) == 1183
    parsed = pp.parse_line(row, expect_channels=pp.MAX_CHANNELS)
    assert parsed.counts == (pp.ADC_MIN,) * pp.MAX_CHANNELS


def test_required_baud_is_row_bytes_times_rate_times_ten_bits_with_headroom():
    assert pp.max_row_bytes(9) == len(b'$PCD,4294967295,4294967295,') + 9 * 8 + 8 + len(b'*HH\r\n')
    assert pp.required_baud(9, 40) == math.ceil(112 * 40 * 10 / 0.9)
    assert pp.required_baud(54, 60) > 115200
