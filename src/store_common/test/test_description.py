"""Store description: the demo store loads; every broken variant names file, field and problem."""
import copy
import math
import pathlib
import re

import pytest
import yaml

from store_common.description import load_catalog, load_store, StoreConfigError

ROOT = pathlib.Path(__file__).resolve().parents[3]
DEMO = ROOT / 'config' / 'stores' / 'demo.yaml'
CATALOG = ROOT / 'config' / 'catalog.yaml'


@pytest.fixture(scope='module')
def demo_doc():
    return yaml.safe_load(DEMO.read_text())


def write(tmp_path, doc, name='store.yaml'):
    path = tmp_path / name
    doc = copy.deepcopy(doc)
    if 'store' in doc and 'catalog' in doc['store']:
        doc['store']['catalog'] = str(CATALOG)
    for cam in doc.get('store', {}).get('cameras', []) or []:
        if isinstance(cam, dict) and isinstance(cam.get('calibration'), str):
            cam['calibration'] = str((DEMO.parent / cam['calibration']).resolve())
    path.write_text(yaml.safe_dump(doc))
    return path


def test_demo_store_meets_the_brief():
    store = load_store(DEMO)
    assert len(store.gondolas) >= 3
    assert len(store.plates) >= 24
    assert len(store.catalog.products) >= 20
    assert set(store.planogram) == set(store.plates)
    weights = sorted(p.unit_grams for p in store.catalog.products.values())
    near_equal = [(a, b) for a, b in zip(weights, weights[1:]) if (b - a) / a < 0.02]
    assert len(near_equal) >= 4
    assert min(weights) <= 26.0


def test_plate_geometry_and_lookups():
    store = load_store(DEMO)
    p = store.plate('g2.s3.p1')
    g = store.gondola('g2')
    assert p.center_store[2] == pytest.approx(1.35)
    assert p.center_store[0] == pytest.approx(g.x_m - g.size_m[0] / 2 + p.x_m)
    assert sorted(store.adjacent_plates('g1.s1.p2')) == ['g1.s1.p1', 'g1.s1.p3']
    assert store.adjacent_plates('g1.s1.p1') == ['g1.s1.p2']
    assert [pl.load_cell.channel for pl in store.plates_of_controller('pc_g1')] == list(range(9))
    assert store.sku_of_plate('g1.s1.p1') == 'COLA-330'
    assert [c.id for c in store.controllers_of_gondola('g3')] == ['pc_g3']
    with pytest.raises(KeyError, match="unknown plate 'nope'"):
        store.plate('nope')


def test_rotated_gondola_places_plates_in_the_store_frame(tmp_path, demo_doc):
    doc = copy.deepcopy(demo_doc)
    doc['store']['gondolas'][0]['pose']['yaw_deg'] = 90.0
    store = load_store(write(tmp_path, doc))
    g, p = store.gondola('g1'), store.plate('g1.s1.p1')
    assert p.center_store[0] == pytest.approx(g.x_m)
    assert p.center_store[1] == pytest.approx(g.y_m + (p.x_m - g.size_m[0] / 2))
    assert p.yaw_store == pytest.approx(math.pi / 2)


def mutate(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value


G0P0 = ['store', 'gondolas', 0, 'shelves', 0, 'plates', 0]


@pytest.mark.parametrize('path,value,field,message', [
    (['store', 'id'], KeyError, 'store.id', 'missing required field'),
    (['store', 'size_m', 'x'], 'wide', 'store.size_m.x', 'expected a number'),
    (['store', 'size_m', 'x'], -1, 'store.size_m.x', 'must be >'),
    (G0P0 + ['load_cell', 'channel'], 1, 'store.gondolas[0].shelves[0].plates[1].load_cell'
     '.channel', 'already used by plate g1.s1.p1'),
    (G0P0 + ['load_cell', 'channel'], 99, 'store.gondolas[0].shelves[0].plates[0].load_cell'
     '.channel', 'must be <= 8'),
    (G0P0 + ['load_cell', 'controller'], 'pc_x', 'store.gondolas[0].shelves[0].plates[0]'
     '.load_cell.controller', "unknown controller 'pc_x'"),
    (G0P0 + ['load_cell', 'grams_per_count'], 0, 'store.gondolas[0].shelves[0].plates[0]'
     '.load_cell.grams_per_count', 'must be >'),
    (G0P0 + ['x_m'], 1.2, 'store.gondolas[0].shelves[0].plates[1]', 'overlaps plate'),
    (G0P0 + ['x_m'], 2.3, 'store.gondolas[0].shelves[0].plates[0].x_m', 'gondola is 2.4 m'),
    (['store', 'planogram', 0, 'sku'], 'NOPE', 'store.planogram[0].sku', "sku 'NOPE' is not"),
    (['store', 'planogram', 0, 'plate'], 'g1.s1.p9', 'store.planogram[0].plate',
     "unknown plate 'g1.s1.p9'"),
    (['store', 'planogram', 1, 'plate'], 'g1.s1.p1', 'store.planogram[1].plate',
     'already has sku'),
    (['store', 'planogram', 0, 'capacity_units'], 500, 'store.planogram[0].capacity_units',
     'exceeds the load cell capacity'),
    (['store', 'gates', 1, 'kind'], 'entrance', 'store.gates', 'at least one exit gate'),
    (['store', 'gates', 0, 'zone', 'x_max'], 0.1, 'store.gates[0].zone', 'x_min must be <'),
    (['store', 'gondolas', 1, 'pose', 'x'], 40.0, 'store.gondolas[1].pose', 'outside the store'),
    (['store', 'gondolas'], {}, 'store.gondolas', 'expected a list'),
    (['store', 'controllers', 0, 'sample_rate_hz'], 500, 'store.controllers[0].sample_rate_hz',
     'must be <= 80'),
])
def test_invalid_store_names_file_field_and_problem(tmp_path, demo_doc, path, value, field,
                                                    message):
    doc = copy.deepcopy(demo_doc)
    mutate(doc, path, value)
    bad = write(tmp_path, doc)
    with pytest.raises(StoreConfigError) as err:
        load_store(bad)
    assert err.value.file == str(bad)
    assert err.value.field_path == field
    assert message in err.value.message
    assert str(err.value).startswith(f'{bad}: {field}: ')


def test_yaml_syntax_error_gives_line_and_column(tmp_path):
    bad = tmp_path / 'store.yaml'
    bad.write_text('store:\n  id: x\n  size_m: {x: 1, y: 2\n')
    with pytest.raises(StoreConfigError, match=r'store\.yaml: invalid YAML at line \d+, column'):
        load_store(bad)


def test_missing_files_are_named(tmp_path, demo_doc):
    with pytest.raises(StoreConfigError, match='nothere.yaml: file not found'):
        load_store(tmp_path / 'nothere.yaml')
    doc = copy.deepcopy(demo_doc)
    doc['store']['catalog'] = 'no_catalog.yaml'
    path = tmp_path / 's.yaml'
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(StoreConfigError, match='no_catalog.yaml: file not found'):
        load_store(path)


def test_catalog_errors(tmp_path):
    doc = yaml.safe_load(CATALOG.read_text())
    doc['catalog']['products'][3]['sku'] = doc['catalog']['products'][0]['sku']
    bad = tmp_path / 'c.yaml'
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(StoreConfigError, match=r'catalog\.products\[3\]\.sku: duplicate sku'):
        load_catalog(bad)
    doc = yaml.safe_load(CATALOG.read_text())
    doc['catalog']['products'][2]['unit_grams'] = 0
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(StoreConfigError, match=r'products\[2\]\.unit_grams: must be > 0'):
        load_catalog(bad)
    doc['catalog']['currency'] = 'euro'
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(StoreConfigError, match=r'catalog\.currency'):
        load_catalog(bad)


# --- strict reading: duplicate keys, unknown keys, deep nesting, bytes that are not UTF-8 ------
def demo_text_with(tmp_path, old, new, name='store.yaml'):
    """The demo store file's own text (so line numbers are real) with one edit."""
    text = DEMO.read_text().replace('catalog: ../catalog.yaml', f'catalog: {CATALOG}')
    text = text.replace('calibration: ../cameras/', f'calibration: {DEMO.parent.parent}/cameras/')
    assert text.count(old) >= 1
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path, text.replace(old, new, 1)


def line_of(text, needle):
    return text[:text.index(needle)].count('\n') + 1


def test_duplicate_key_names_file_line_and_key(tmp_path):
    bad, text = demo_text_with(tmp_path, '    sample_rate_hz: 40\n',
                               '    sample_rate_hz: 40\n    sample_rate_hz: 80\n')
    second = line_of(text, 'sample_rate_hz: 80')
    with pytest.raises(StoreConfigError) as err:
        load_store(bad)
    assert str(err.value).startswith(f'{bad}: line {second}, column 5: ')
    assert "duplicate key 'sample_rate_hz' (first at line " + str(second - 1) in str(err.value)


def test_duplicate_key_in_a_flow_mapping_and_in_the_catalog(tmp_path):
    bad, _ = demo_text_with(tmp_path, "fps: 10,", 'fps: 10, fps: 5,')
    with pytest.raises(StoreConfigError, match=r"line \d+, column \d+: duplicate key 'fps'"):
        load_store(bad)
    cat = tmp_path / 'c.yaml'
    cat.write_text(CATALOG.read_text().replace('currency: EUR', 'currency: EUR\n  currency: USD'))
    with pytest.raises(StoreConfigError, match=r"c\.yaml: line 6, column 3: duplicate key "
                                               r"'currency' \(first at line 5\)"):
        load_catalog(cat)


def test_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text('catalog:\n  currency: EUR\n  products:\n'
                    '  - &cola {sku: A, name: a, price_cents: 1, unit_grams: 5.0,'
                    ' unit_grams_sd: 0.1}\n'
                    '  - {<<: *cola, sku: B}\n')
    cat = load_catalog(path)
    assert cat['B'].unit_grams == 5.0


@pytest.mark.parametrize('old,new,field,hint', [
    ('    sample_rate_hz: 40\n', '    sample_rate: 60\n', 'store.controllers[0].sample_rate',
     "did you mean 'sample_rate_hz'?"),
    ('          capacity_grams: 20000.0\n', '          capacity_gram: 5000.0\n',
     'store.gondolas[0].shelves[0].plates[0].load_cell.capacity_gram',
     "did you mean 'capacity_grams'?"),
    ('  frame_id: store\n', '  frame_id: store\n  frameid: map\n', 'store.frameid',
     "did you mean 'frame_id'?"),
    ('      yaw_deg: 0.0\n', '      yaw: 0.0\n', 'store.gondolas[0].pose.yaw', ''),
    ('store:\n', 'stores: 1\nstore:\n', 'stores', "did you mean 'store'?"),
])
def test_unknown_key_names_file_line_and_key(tmp_path, old, new, field, hint):
    bad, text = demo_text_with(tmp_path, old, new)
    key = field.rsplit('.', 1)[-1]
    with pytest.raises(StoreConfigError) as err:
        load_store(bad)
    assert err.value.file == str(bad)
    assert err.value.field_path == field
    assert f"unknown key '{key}' at line {line_of(text, key + ':')} (" in err.value.message
    assert hint in err.value.message


def test_unknown_product_key_in_the_catalog(tmp_path):
    cat = tmp_path / 'c.yaml'
    cat.write_text(CATALOG.read_text().replace('unit_grams_sd: 2.5,', 'unit_gram_sd: 2.5,', 1))
    with pytest.raises(StoreConfigError) as err:
        load_catalog(cat)
    assert err.value.field_path == 'catalog.products[0].unit_gram_sd'
    assert "unknown key 'unit_gram_sd' at line 7" in err.value.message


@pytest.mark.parametrize('text', [
    'store: ' + '[' * 5000 + ']' * 5000 + '\n',
    'store: ' + '{a: ' * 5000 + '1' + '}' * 5000 + '\n',
    'store:\n' + ''.join('  ' * i + f'k{i}:\n' for i in range(1, 3000)) + '  ' * 3000 + 'v\n',
])
def test_deep_nesting_is_a_clear_error_not_a_recursion_error(tmp_path, text):
    bad = tmp_path / 'deep.yaml'
    bad.write_text(text)
    with pytest.raises(StoreConfigError) as err:
        load_store(bad)
    assert err.value.file == str(bad)
    assert 'nested deeper than 64 levels' in str(err.value)
    assert re.search(r'line \d+, column \d+', str(err.value))


def test_invalid_utf8_names_file_and_byte_offset(tmp_path):
    data = DEMO.read_bytes()
    at = data.index(b'Walk-out demo store')
    bad = tmp_path / 'latin1.yaml'
    bad.write_bytes(data[:at] + b'Caf\xe9 ' + data[at:])
    with pytest.raises(StoreConfigError) as err:
        load_store(bad)
    line = data[:at].count(b'\n') + 1
    assert str(err.value).startswith(f'{bad}: line {line}: not UTF-8: '
                                     f'byte 0xe9 at byte offset {at + 3}')


def test_every_shipped_store_file_loads():
    files = sorted((ROOT / 'config' / 'stores').glob('*.yaml'))
    assert files
    for f in files:
        assert load_store(f).plates


# --- one layout tolerance (float32 metres), messages that show the difference ------------------
def imperial_gondola(doc, plate_end_m):
    """Gondola g1 made 0.9144 m (3 ft) long, its first shelf one plate ending at plate_end_m."""
    doc = copy.deepcopy(doc)
    g = doc['store']['gondolas'][0]
    g['size_m']['x'] = 0.9144
    for shelf in g['shelves']:
        shelf['plates'] = shelf['plates'][:1]          # 0.01..0.79 m
    plate = g['shelves'][0]['plates'][0]
    plate['size_m']['x'] = 0.4572
    plate['x_m'] = plate_end_m - 0.4572 / 2
    doc['store']['planogram'] = [e for e in doc['store']['planogram']
                                 if not e['plate'].startswith('g1.') or e['plate'].endswith('.p1')]
    return doc


def test_plate_a_few_nanometres_past_its_gondola_fits(tmp_path, demo_doc):
    store = load_store(write(tmp_path, imperial_gondola(demo_doc, 0.9144 + 7.5e-9)))
    assert store.gondola('g1').size_m[0] == 0.9144


def test_float32_layout_loads(tmp_path, demo_doc):
    import numpy as np
    doc = imperial_gondola(demo_doc, 0.9144)
    f32 = lambda v: float(np.float32(v))   # noqa: E731
    g = doc['store']['gondolas'][0]
    g['size_m']['x'] = f32(0.9144)
    plate = g['shelves'][0]['plates'][0]
    plate['size_m']['x'] = f32(0.4572)
    plate['x_m'] = f32(0.9144 - 0.4572 / 2)
    g['shelves'][-1]['z_m'] = f32(g['size_m']['z']) + 5e-8
    doc['store']['gondolas'][1]['pose']['x'] = doc['store']['size_m']['x'] + 4e-7
    load_store(write(tmp_path, doc))


@pytest.mark.parametrize('end_m,shown', [
    (0.9144 + 1e-5, '0.91441 m > 0.9144 m by 1e-05 m'),
    (0.9144 + 2e-6, '0.914402 m > 0.9144 m by 2e-06 m'),
])
def test_plate_past_its_gondola_shows_by_how_much(tmp_path, demo_doc, end_m, shown):
    bad = write(tmp_path, imperial_gondola(demo_doc, end_m))
    with pytest.raises(StoreConfigError) as err:
        load_store(bad)
    assert err.value.field_path == 'store.gondolas[0].shelves[0].plates[0].x_m'
    assert err.value.message.endswith(shown)


def test_outside_the_store_and_too_high_shelf_show_by_how_much(tmp_path, demo_doc):
    doc = copy.deepcopy(demo_doc)
    doc['store']['gondolas'][1]['pose']['x'] = 12.00002
    with pytest.raises(StoreConfigError, match=r'x 12\.00002 m > 12 m by 2e-05 m'):
        load_store(write(tmp_path, doc))
    doc = copy.deepcopy(demo_doc)
    doc['store']['gondolas'][0]['shelves'][2]['z_m'] = 1.80001
    with pytest.raises(StoreConfigError, match=r'shelves\[2\]\.z_m: shelf height 1\.80001 m > '
                                               r'1\.8 m by 1e-05 m'):
        load_store(write(tmp_path, doc))


# --- controllers of real layouts: up to 128 channels, rows that fit the line's baud rate -------
def test_a_72_channel_controller_loads(tmp_path, demo_doc):
    doc = copy.deepcopy(demo_doc)
    ctrl = doc['store']['controllers'][0]
    ctrl.update(n_channels=72, baud=460800)
    doc['store']['gondolas'][0]['shelves'][0]['plates'][0]['load_cell']['channel'] = 71
    store = load_store(write(tmp_path, doc))
    assert store.controller('pc_g1').n_channels == 72
    assert store.plate('g1.s1.p1').load_cell.channel == 71


def test_more_than_128_channels_is_refused(tmp_path, demo_doc):
    doc = copy.deepcopy(demo_doc)
    doc['store']['controllers'][0].update(n_channels=129, baud=4000000, sample_rate_hz=10)
    with pytest.raises(StoreConfigError, match=r'controllers\[0\]\.n_channels: must be <= 128'):
        load_store(write(tmp_path, doc))


@pytest.mark.parametrize('n_channels,rate_hz,baud,needed,hint', [
    (54, 60, 115200, 344667, 'next standard rate: 460800'),     # the overflow seen in a store
    (72, 40, 115200, 301778, 'next standard rate: 460800'),
    (128, 80, 921600, 1051556, 'next standard rate: 1500000'),
])
def test_rows_that_overflow_the_line_are_refused(tmp_path, demo_doc, n_channels, rate_hz, baud,
                                                 needed, hint):
    doc = copy.deepcopy(demo_doc)
    doc['store']['controllers'][1].update(n_channels=n_channels, sample_rate_hz=rate_hz,
                                          baud=baud)
    bad = write(tmp_path, doc)
    with pytest.raises(StoreConfigError) as err:
        load_store(bad)
    assert err.value.field_path == 'store.controllers[1].baud'
    msg = err.value.message
    assert msg.startswith(f'controller pc_g2: {n_channels} channels at {rate_hz} Hz need '
                          f'{needed} baud (')
    assert f'but baud is {baud}' in msg and hint in msg
    doc['store']['controllers'][1]['baud'] = needed       # exactly enough is enough
    load_store(write(tmp_path, doc))


def test_shipped_controllers_fit_their_line():
    from store_common import plate_protocol as pp
    for f in sorted((ROOT / 'config' / 'stores').glob('*.yaml')):
        for c in load_store(f).controllers:
            assert pp.required_baud(c.n_channels, c.sample_rate_hz) <= c.baud
