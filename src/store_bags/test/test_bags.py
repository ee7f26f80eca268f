"""Bags: every store message round-trips, clear errors for bad bags, scenario export, timing."""
import glob
import json
import math
import pathlib
import shutil

import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.typesys import get_typestore, get_types_from_msg, Stores
import yaml

from store_bags.bag import BagError, BagReader, BagWriter, summary
from store_bags.play import message_class, PlayClock, start_ns
from store_bags.scenario_to_bag import write_scenario_bag
from store_bags.topics import qos_class, resolve_topics, sensor_topics
from store_bags.typestore import interface_types, store_typestore
from store_common.description import load_store
from store_sim.scenario import scenario_from_dict

ROOT = pathlib.Path(__file__).resolve().parents[3]
STORE = ROOT / 'config' / 'stores' / 'demo.yaml'


def sample(cls, depth=0):
    """An instance of a rosidl message class with every field set to a non-default value."""
    msg = cls()
    for name, typ in msg.get_fields_and_field_types().items():
        value = getattr(msg, name)
        if typ == 'string':
            setattr(msg, name, f'{name}-x')
        elif typ == 'boolean':
            setattr(msg, name, True)
        elif typ in ('float', 'double'):
            setattr(msg, name, 1.25)
        elif typ.startswith(('int', 'uint', 'octet')):
            setattr(msg, name, 7)
        elif typ.startswith('sequence<string'):
            setattr(msg, name, ['a', 'b'])
        elif typ.startswith('sequence<double'):
            setattr(msg, name, [1.5, -2.5])
        elif typ.startswith('sequence<') and depth < 3:
            inner = typ[len('sequence<'):-1].replace('/', '.msg.', 1) if '/' in typ else None
            if inner:
                pkg, _, nm = inner.rpartition('.')
                setattr(msg, name, [sample(message_class(f'{pkg.split(".")[0]}/msg/{nm}'),
                                           depth + 1)])
        elif '/' in typ and not typ.startswith('sequence<'):
            setattr(msg, name, sample(type(value), depth + 1))
    return msg


@pytest.fixture(scope='module')
def store():
    return load_store(STORE)


def test_every_interface_message_round_trips_through_a_bag(tmp_path):
    types = interface_types()
    assert len(types) >= 14
    sent = {}
    with BagWriter(tmp_path / 'b') as w:
        for i, t in enumerate(types):
            msg = sample(message_class(t))
            topic = '/rt/' + t.rsplit('/', 1)[1]
            w.write(topic, t, 1_000_000_000 + i, serialize_message(msg))
            sent[topic] = msg
    with BagReader(tmp_path / 'b') as r:
        assert r.storage == 'mcap'
        assert r.verify() == len(types)
        for m in r.messages():
            back = deserialize_message(m.data, message_class(m.msgtype))
            assert back == sent[m.topic], m.topic
            # the rosbags typestore (built from our .msg files) reads the same bytes
            ros_view = r.deserialize(m)
            assert ros_view.__msgtype__ == m.msgtype
    meta = yaml.safe_load((tmp_path / 'b' / 'metadata.yaml').read_text())
    info = meta['rosbag2_bagfile_information']
    assert info['storage_identifier'] == 'mcap'
    assert len(info['topics_with_message_count']) == len(types)
    assert glob.glob(str(tmp_path / 'b' / '*.mcap'))


def test_event_topics_are_recorded_with_latched_qos(tmp_path):
    with BagWriter(tmp_path / 'b') as w:
        for stamp, (topic, t) in enumerate(
                [('/store/shelf_events', 'store_interfaces/msg/ShelfEvent'),
                 ('/store/pc_g1/plate_weights', 'store_interfaces/msg/PlateWeights')]):
            w.write(topic, t, stamp + 1, serialize_message(message_class(t)()))
    with BagReader(tmp_path / 'b') as r:
        ev = r.topics['/store/shelf_events'].qos[0]
        assert ev.durability.name == 'TRANSIENT_LOCAL' and ev.reliability.name == 'RELIABLE'
        pw = r.topics['/store/pc_g1/plate_weights'].qos[0]
        assert pw.durability.name == 'VOLATILE'
        text = summary(r)
    assert 'store_interfaces/msg/ShelfEvent | Count: 1' in text
    assert qos_class('/store/receipts') == 'state'
    assert qos_class('/store/cameras/c1/image_raw') == 'sensor'


def _string_bag(path, n=200):
    ts = store_typestore()
    S = ts.types['std_msgs/msg/String']
    with BagWriter(path) as w:
        for i in range(n):
            w.write_msg('/store/sim/ground_truth', 'std_msgs/msg/String', 10**9 + i * 10**7,
                        S(data='truth %d ' % i + 'x' * 200))


@pytest.mark.parametrize('fraction', [0.1, 0.5, 0.97])
def test_truncated_bag_is_a_bag_error_naming_the_bag(tmp_path, fraction):
    bag = tmp_path / 'cut'
    _string_bag(bag)
    f = glob.glob(str(bag / '*.mcap'))[0]
    data = pathlib.Path(f).read_bytes()
    pathlib.Path(f).write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(BagError) as err:
        with BagReader(bag) as r:
            r.verify()
    assert str(bag) in str(err.value)


def test_corrupt_bytes_and_missing_metadata_are_bag_errors(tmp_path):
    bag = tmp_path / 'bad'
    _string_bag(bag)
    f = pathlib.Path(glob.glob(str(bag / '*.mcap'))[0])
    data = bytearray(f.read_bytes())
    data[len(data) // 3:len(data) // 3 + 64] = b'\xff' * 64
    f.write_bytes(bytes(data))
    with pytest.raises(BagError, match=str(bag)):
        with BagReader(bag) as r:
            r.verify()
    other = tmp_path / 'nometa'
    shutil.copytree(bag, other)
    (other / 'metadata.yaml').unlink()
    with pytest.raises(BagError, match='no metadata.yaml'):
        BagReader(other)
    with pytest.raises(BagError, match='not found'):
        BagReader(tmp_path / 'nope')


def test_unknown_type_is_a_bag_error_naming_the_topic(tmp_path):
    ts = get_typestore(Stores.ROS2_KILTED)
    ts.register(get_types_from_msg('float64 secret_grams', 'other_msgs/msg/Mystery'))
    bag = tmp_path / 'mystery'
    with BagWriter(bag, ts) as w:
        w.write_msg('/store/mystery', 'other_msgs/msg/Mystery', 1,
                    ts.types['other_msgs/msg/Mystery'](secret_grams=1.0))
    with pytest.raises(BagError) as err:
        BagReader(bag)
    assert 'topic /store/mystery' in str(err.value) and str(bag) in str(err.value)
    assert 'other_msgs/msg/Mystery' in str(err.value)


def test_requested_topic_not_in_bag_names_it(tmp_path):
    _string_bag(tmp_path / 'b', 3)
    with BagReader(tmp_path / 'b') as r:
        with pytest.raises(BagError, match='topic /store/gate_events: not in the bag'):
            list(r.messages(['/store/gate_events']))


def test_presets(store):
    s = sensor_topics(store)
    assert '/store/pc_g1/plate_weights' in s and '/store/pc_g3/plate_raw' in s
    assert s['/store/gate_events'] == 'store_interfaces/msg/GateEvent'
    assert '/store/sim/ground_truth' in s and '/store/shelf_events' not in s
    allt = resolve_topics('all', store)
    assert allt['/store/receipts'] == 'store_interfaces/msg/Receipt'
    mixed = resolve_topics('carts,/other/topic', store)
    assert mixed == {'/store/carts': 'store_interfaces/msg/CartState', '/other/topic': ''}
    with pytest.raises(ValueError):
        resolve_topics('', store)


def test_scenario_to_bag_has_driver_topics_and_truth(store, tmp_path):
    scenario = scenario_from_dict({'scenario': {
        'store': 'demo_store', 'seed': 3, 'duration_s': 8.0, 'shoppers': [{
            'id': 'acct-1', 'enter_s': 0.5, 'exit_s': 7.0,
            'actions': [{'t_s': 3.0, 'kind': 'take', 'plate': 'g1.s1.p1',
                         'sku': 'COLA-330'}]}]}})
    counts = write_scenario_bag(store, scenario, tmp_path / 'sc', lead_s=1.0, tail_s=1.0)
    assert counts['/store/gate_events'] == 2
    assert counts['/store/sim/ground_truth'] == 3
    assert counts['/store/pc_g1/plate_weights'] == pytest.approx(100, abs=2)   # 10 s at 10 Hz
    before, after = [], []
    with BagReader(tmp_path / 'sc') as r:
        t0 = r.start_ns + 10**9   # scenario time 0
        gates = []
        for m in r.messages(['/store/pc_g1/plate_weights', '/store/gate_events']):
            msg = deserialize_message(m.data, message_class(m.msgtype))
            if m.topic == '/store/gate_events':
                gates.append((msg.gate_id, msg.kind, msg.shopper_id))
                assert msg.event_id == f'{msg.gate_id}@{m.stamp_ns}'
                continue
            assert msg.header.frame_id == 'store' and msg.controller_id == 'pc_g1'
            assert len({w.plate_id for w in msg.weights}) == 9
            for w in msg.weights:
                t = w.stamp.sec * 10**9 + w.stamp.nanosec - t0
                if w.plate_id == 'g1.s1.p1' and w.valid:
                    (before if 1.0e9 < t < 2.0e9 else after if 4.5e9 < t < 6e9 else []).append(
                        w.weight_grams)
    assert gates == [('entrance', 1, 'acct-1'), ('exit', 2, 'acct-1')]
    unit = store.catalog['COLA-330'].unit_grams
    step = sum(after) / len(after) - sum(before) / len(before)
    assert step == pytest.approx(-unit, abs=0.1 * unit)
    with BagReader(tmp_path / 'sc') as r:
        truth = [json.loads(r.deserialize(m).data)
                 for m in r.messages(['/store/sim/ground_truth'])]
    assert [t['event'] for t in truth] == ['enter', 'action', 'exit']
    assert truth[1]['sku'] == 'COLA-330' and truth[1]['store'] == 'demo_store'


def test_play_clock_rate_and_offset():
    c = PlayClock(t0_ns=start_ns(10 * 10**9, 2.5), wall0_s=100.0, rate=2.0)
    assert c.t0_ns == 12_500_000_000
    assert c.wall_s(14_500_000_000) == pytest.approx(101.0)
    assert c.bag_ns(103.0) == 18_500_000_000
    with pytest.raises(ValueError):
        PlayClock(0, 0.0, 0.0)
    with pytest.raises(ValueError):
        start_ns(0, -1.0)
    assert not math.isnan(c.wall_s(c.t0_ns))
