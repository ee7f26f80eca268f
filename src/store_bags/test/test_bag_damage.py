"""Damaged bags: a bag made by our own writer, then damaged in the middle, must never replay in
part and end as if complete; the error names the bag, the storage file and where."""
import glob
import os
import pathlib
import random
import subprocess

import pytest

from store_bags import info, mcap_check
from store_bags.bag import BagError, BagReader, BagWriter
from store_bags.typestore import store_typestore

REPO = pathlib.Path(__file__).resolve().parents[3]
N = 1200
TOPICS = ('/store/gondolas/g1/pc_g1/plate_weights', '/store/sim/ground_truth')


def make_bag(path):
    """N messages, two topics and types, 10 ms apart, with the project's BagWriter."""
    ts = store_typestore()
    S = ts.types['std_msgs/msg/String']
    PW = ts.types['store_interfaces/msg/PlateWeights']
    P = ts.types['store_interfaces/msg/PlateWeight']
    H = ts.types['std_msgs/msg/Header']
    T = ts.types['builtin_interfaces/msg/Time']
    with BagWriter(path) as w:
        for i in range(N):
            stamp_ns = 10**9 + i * 10**7
            if i % 2:
                w.write_msg(TOPICS[1], 'std_msgs/msg/String', stamp_ns,
                            S(data=f'truth {i} ' + 'x' * 150))
            else:
                t = T(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
                w.write_msg(TOPICS[0], 'store_interfaces/msg/PlateWeights', stamp_ns, PW(
                    header=H(stamp=t, frame_id='store'), controller_id='pc_g1',
                    weights=[P(stamp=t, plate_id=f'g1.s1.p{k}', weight_grams=100.0 * k,
                               adc_counts=1000 * k, valid=True) for k in range(1, 4)]))
    return pathlib.Path(glob.glob(str(path / '*.mcap'))[0])


@pytest.fixture(scope='module')
def good_bag(tmp_path_factory):
    bag = tmp_path_factory.mktemp('bags') / 'good'
    make_bag(bag)
    return bag


def damaged(tmp_path, good_bag, how, fraction=0.5):
    bag = tmp_path / f'{how}_{fraction}'
    bag.mkdir()
    for f in good_bag.iterdir():
        (bag / f.name).write_bytes(f.read_bytes())
    mcap = next(bag.glob('*.mcap'))
    data = bytearray(mcap.read_bytes())
    at = int(len(data) * fraction)
    if how == 'zeros':                  # a block of zeros (a lost disk sector, a bad copy)
        data[at:at + 4096] = bytes(4096)
    elif how == 'random':
        rng = random.Random(3)
        data[at:at + 256] = bytes(rng.randrange(256) for _ in range(256))
    elif how == 'flip':                 # one byte inside a message payload
        data[at] ^= 0x5A
    mcap.write_bytes(bytes(data))
    return bag, mcap, at


def test_our_bags_are_intact_and_carry_chunk_crcs(good_bag):
    res = mcap_check.check(next(good_bag.glob('*.mcap')))
    assert res.messages == N and res.chunks >= 1 and res.crc_checked_chunks == res.chunks
    with BagReader(good_bag) as r:
        assert r.scan() == {TOPICS[0]: N // 2, TOPICS[1]: N // 2}
        assert r.verify() == N
        assert len(list(r.messages([TOPICS[0]]))) == N // 2


@pytest.mark.parametrize('how', ['zeros', 'random'])
@pytest.mark.parametrize('fraction', [0.3, 0.5, 0.8])
def test_garbage_in_the_middle_stops_the_read_with_where(tmp_path, good_bag, how, fraction):
    bag, mcap, at = damaged(tmp_path, good_bag, how, fraction)
    got = []
    with BagReader(bag) as r:
        with pytest.raises(BagError) as err:
            for m in r.messages():
                got.append(m)
    text = str(err.value)
    assert text.startswith(f'bag {bag}')
    assert f'damaged storage file {mcap.name} at byte offset ' in text
    offset = int(text.split('at byte offset ')[1].split(',')[0])
    assert abs(offset - at) <= 600             # at the record where the damage starts
    good = int(text.split('after ')[2].split(' good messages')[0])
    assert 0 < good < N and len(got) <= good
    assert f'replay stopped after message {len(got)}' in text


def test_a_changed_payload_byte_is_found_by_the_chunk_crc(tmp_path, good_bag):
    bag, mcap, _ = damaged(tmp_path, good_bag, 'flip', 0.5)
    with BagReader(bag) as r:
        with pytest.raises(BagError, match=f'damaged storage file {mcap.name} at byte offset '
                                           r'\d+.*chunk CRC mismatch'):
            list(r.messages())


def test_partial_reads_from_an_offset_also_find_the_damage(tmp_path, good_bag):
    bag, _, _ = damaged(tmp_path, good_bag, 'zeros', 0.8)
    with BagReader(bag) as r:
        with pytest.raises(BagError, match='at byte offset'):
            list(r.messages([TOPICS[1]], start_ns=r.start_ns + 2 * 10**9))


def test_bag_info_verify_reports_the_damage(tmp_path, good_bag, capsys):
    bag, mcap, _ = damaged(tmp_path, good_bag, 'zeros', 0.5)
    assert info.main([str(bag), '--verify']) == 1
    err = capsys.readouterr().err
    assert f'bag_info: error: bag {bag}' in err and f'{mcap.name} at byte offset' in err
    assert info.main([str(good_bag), '--verify']) == 0
    assert f'Verified:          {N} messages' in capsys.readouterr().out


BAG_PLAY = REPO / 'install' / 'store_bags' / 'lib' / 'store_bags' / 'bag_play'


@pytest.mark.graph
@pytest.mark.skipif(not BAG_PLAY.exists(), reason='store_bags is not installed')
@pytest.mark.parametrize('how', ['zeros', 'flip'])
def test_bag_play_stops_with_an_error_and_exits_non_zero(tmp_path, good_bag, how):
    bag, mcap, _ = damaged(tmp_path, good_bag, how, 0.5)
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(1, 100)),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    proc = subprocess.run([str(BAG_PLAY), '--ros-args', '-p', f'bag_path:={bag}',
                           '-p', 'rate:=50.0', '-p', 'clock_hz:=20.0'],
                          env=env, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert 'end of bag' not in out
    assert f'replay stopped: bag {bag}' in out and f'{mcap.name} at byte offset' in out
