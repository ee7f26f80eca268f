"""The node graph built from the store description."""
import pathlib

import pytest
import yaml

from store_bringup.graph import build_graph, GraphOptions, load_params_file, ros_args
from store_common.description import load_store, StoreConfigError

ROOT = pathlib.Path(__file__).resolve().parents[3]
STORE = ROOT / 'config' / 'stores' / 'demo.yaml'
PARAMS = ROOT / 'config' / 'params' / 'store.yaml'


@pytest.fixture(scope='module')
def store():
    return load_store(STORE)


def test_hardware_graph_has_one_driver_per_controller_and_gate(store):
    specs = build_graph(store, GraphOptions(mode='hardware', params_file=str(PARAMS)))
    by_exe = {}
    for s in specs:
        by_exe.setdefault(s.executable, []).append(s)
    assert len(by_exe['loadcell_driver']) == len(store.controllers)
    assert len(by_exe['gate_driver']) == len(store.gates)
    assert len(by_exe['shelf_events']) == len(store.gondolas)
    assert len(by_exe['cart']) == 1
    assert 'sim' not in by_exe
    drv = {s.parameters['controller_id']: s for s in by_exe['loadcell_driver']}
    assert drv['pc_g2'].namespace == '/store/pc_g2'
    assert drv['pc_g2'].parameters['port'] == store.controller('pc_g2').port
    # per-node YAML parameters are merged into every instance
    assert drv['pc_g2'].parameters['stale_timeout_s'] == 2.0
    shelf = {s.parameters['gondola_id']: s for s in by_exe['shelf_events']}
    assert shelf['g3'].parameters['weight_topics'] == ['/store/pc_g3/plate_weights']
    assert ('shelf_events', '/store/shelf_events') in shelf['g3'].remappings
    assert len({s.fqn for s in specs}) == len(specs)


def test_sim_graph_points_drivers_at_the_simulated_devices(store, tmp_path):
    specs = build_graph(store, GraphOptions(mode='sim', run_dir=str(tmp_path),
                                            scenario_file=str(tmp_path / 's.yaml'),
                                            record=True))
    assert specs[0].executable == 'sim'
    ports = {s.parameters['port'] for s in specs if s.package == 'store_drivers'}
    assert ports == {str(tmp_path / c.id) for c in store.controllers} | {
        str(tmp_path / f'gate_{g.id}') for g in store.gates}
    assert [s.executable for s in specs if s.ends_run] == ['receipt_recorder']
    cart = next(s for s in specs if s.executable == 'cart')
    assert cart.parameters['db_path'] == str(tmp_path / 'carts.sqlite')
    review = next(s for s in specs if s.executable == 'review')
    assert review.parameters['db_path'] == str(tmp_path / 'review.sqlite')
    assert review.parameters['url_file'] == str(tmp_path / 'review_url.txt')


def test_replay_graph_has_no_drivers(store):
    specs = build_graph(store, GraphOptions(mode='replay', use_sim_time=True,
                                            db_path='/tmp/x.sqlite'))
    assert {s.package for s in specs} == {'store_shelf', 'store_cart', 'store_review',
                                          'store_viz'}
    assert all(s.parameters['use_sim_time'] is True for s in specs)


def test_overrides_win_over_the_params_file(store):
    specs = build_graph(store, GraphOptions(params_file=str(PARAMS),
                                            overrides={'cart': {'hold_s': 2.5}}))
    cart = next(s for s in specs if s.executable == 'cart')
    assert cart.parameters['hold_s'] == 2.5
    assert cart.parameters['receipt_grace_s'] == 3.0


def test_bad_mode_and_missing_sim_inputs_are_refused(store):
    with pytest.raises(ValueError, match='mode'):
        build_graph(store, GraphOptions(mode='dream'))
    with pytest.raises(ValueError, match='scenario_file'):
        build_graph(store, GraphOptions(mode='sim'))


def test_broken_params_file_names_file_and_node(tmp_path):
    bad = tmp_path / 'p.yaml'
    bad.write_text(yaml.safe_dump({'cart': {'hold_s': 1.0}}))
    with pytest.raises(StoreConfigError, match=r'p\.yaml: cart: expected "ros__parameters:"'):
        load_params_file(bad)


def test_ros_args_name_namespace_remap_and_params(store):
    spec = next(s for s in build_graph(store, GraphOptions()) if s.executable == 'shelf_events')
    args = ros_args(spec, '/tmp/p.yaml')
    assert args[:1] == ['--ros-args']
    assert f'__node:={spec.name}' in args and f'__ns:={spec.namespace}' in args
    assert 'shelf_events:=/store/shelf_events' in args
    assert args[-2:] == ['--params-file', '/tmp/p.yaml']


def test_cameras_add_a_driver_per_camera_and_one_detector(store, tmp_path):
    plain = build_graph(store, GraphOptions(mode='sim', params_file=str(PARAMS),
                                            run_dir=str(tmp_path), scenario_file='s.yaml'))
    assert not [s for s in plain if s.package in ('store_perception', 'store_fusion')]
    assert 'use_fused_events' not in next(s for s in plain if s.name == 'cart').parameters
    assert 'camera_stream_port' not in next(s for s in plain if s.name == 'sim').parameters
    specs = build_graph(store, GraphOptions(mode='sim', params_file=str(PARAMS),
                                            run_dir=str(tmp_path), scenario_file='s.yaml',
                                            cameras=True, camera_port=23456))
    drivers = {s.parameters['camera_id']: s for s in specs if s.executable == 'camera_driver'}
    assert sorted(drivers) == [c.id for c in store.cameras]
    assert drivers['cam2'].namespace == '/store/cameras/cam2'
    assert drivers['cam2'].parameters['source'] == 'http://127.0.0.1:23456/cam2.mjpg'
    assert drivers['cam2'].parameters['reopen_max_s'] == 5.0
    sim = next(s for s in specs if s.name == 'sim')
    assert sim.parameters['camera_stream_port'] == 23456
    (det,) = [s for s in specs if s.executable == 'detector']
    assert det.namespace == '/store' and det.parameters['camera_ids'] == [
        c.id for c in store.cameras]
    assert det.parameters['imgsz'] == 416 and det.parameters['device'] == 'cpu'
    # the tracker and the fusion node after the detector; the cart takes the fused events
    exes = [s.executable for s in specs]
    assert exes.index('detector') < exes.index('tracker') < exes.index('fusion') < exes.index(
        'cart')
    tracker, fusion = (next(s for s in specs if s.executable == e) for e in ('tracker', 'fusion'))
    assert (tracker.package, tracker.namespace, fusion.package, fusion.namespace) == (
        'store_fusion', '/store', 'store_fusion', '/store')
    assert tracker.parameters['store_file'] == fusion.parameters['store_file'] == str(
        STORE.resolve())
    assert tracker.parameters['max_wait_s'] == 0.3 and tracker.parameters['color_weight'] == 1.0
    assert fusion.parameters['max_hold_s'] == 5.0
    # a relative *_file in the parameters file is relative to that file, and the file exists
    cal = pathlib.Path(fusion.parameters['calibration_file'])
    assert cal.is_absolute() and cal == (PARAMS.parent / '../fusion/calibration.json').resolve()
    assert cal.is_file()
    confusion = pathlib.Path(fusion.parameters['sku_confusion_file'])
    assert confusion == (PARAMS.parent / '../fusion/sku_confusion.json').resolve()
    assert confusion.is_file()
    detector = next(s for s in specs if s.executable == 'detector')
    assert detector.parameters['crop_model_path'] == 'store_yolo_crops.pt'
    cart = next(s for s in specs if s.executable == 'cart')
    assert cart.parameters['use_fused_events'] is True
    assert cart.parameters['hold_s'] == 1.0
    hw = build_graph(store, GraphOptions(mode='hardware', params_file=str(PARAMS), cameras=True))
    sources = {s.parameters['camera_id']: s.parameters['source'] for s in hw
               if s.executable == 'camera_driver'}
    assert sources == {c.id: c.source for c in store.cameras}
    assert {'tracker', 'fusion'} <= {s.executable for s in hw}
    # replay has no cameras: weight-only, whatever the option says
    replay = build_graph(store, GraphOptions(mode='replay', cameras=True, db_path='/tmp/x.db'))
    assert not [s for s in replay if s.package == 'store_fusion']
    assert 'use_fused_events' not in next(s for s in replay if s.name == 'cart').parameters
    # a port derived from the run directory when none is given
    derived = build_graph(store, GraphOptions(mode='sim', run_dir=str(tmp_path),
                                              scenario_file='s.yaml', cameras=True))
    port = next(s for s in derived if s.name == 'sim').parameters['camera_stream_port']
    assert 20000 <= port < 40000


def _resolve(spec, topic: str) -> str:
    """The name a relative topic of a node resolves to (its remappings, then its namespace)."""
    for src, dst in spec.remappings:
        if src == topic:
            return dst
    return f'{spec.namespace.rstrip("/")}/{topic}'


@pytest.mark.parametrize('cameras', [False, True])
def test_the_cart_hears_the_watermark_of_every_source_it_waits_for(store, tmp_path, cameras):
    specs = build_graph(store, GraphOptions(mode='sim', run_dir=str(tmp_path),
                                            scenario_file=str(tmp_path / 's.yaml'),
                                            cameras=cameras))
    (cart,) = [s for s in specs if s.executable == 'cart']
    publishers = {'gate_driver': 'gate_watermarks', 'shelf_events': 'shelf_watermarks',
                  'fusion': 'fused_watermarks'}
    heard = {'gate_watermarks', 'fused_watermarks' if cameras else 'shelf_watermarks'}
    sources = set(cart.parameters['event_sources'])
    expected = {f'gate/{g.id}' for g in store.gates}
    expected |= {'fusion'} if cameras else {f'shelf/{g.id}' for g in store.gondolas}
    assert sources == expected
    for s in specs:
        topic = publishers.get(s.executable)
        if topic is None:
            continue
        if topic in heard:
            assert _resolve(s, topic) == _resolve(cart, topic), s.fqn
        if s.executable == 'fusion':
            assert _resolve(s, 'shelf_watermarks') == '/store/shelf_watermarks'
            assert set(s.parameters['shelf_sources']) == {f'shelf/{g.id}' for g in store.gondolas}
    shelf = [s for s in specs if s.executable == 'shelf_events']
    assert {_resolve(s, 'shelf_watermarks') for s in shelf} == {'/store/shelf_watermarks'}
