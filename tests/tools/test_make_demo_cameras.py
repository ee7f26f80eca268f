"""tools/make_demo_cameras.py: the demo cameras as shipped, and the same cameras with more pixels
in a copy of the demo store description (--scale, --store-out)."""
import pathlib

import numpy as np
import pytest

from store_common.description import load_store

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def tool(load_tool):
    return load_tool('make_demo_cameras')


def test_the_shipped_calibration_is_what_the_tool_writes(tool, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    tool.main(['--out', str(tmp_path)])
    for f in sorted((ROOT / 'config' / 'cameras' / 'demo').glob('cam*.yaml')):
        assert (tmp_path / f.name).read_text() == f.read_text(), f.name


def test_twice_the_pixels_see_the_same_store_at_twice_the_coordinates(
        tool, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    store_file = tmp_path / 'stores' / 'demo_hd.yaml'
    tool.main(['--scale', '2', '--out', str(tmp_path / 'cams'), '--store-out', str(store_file)])
    sd, hd = load_store(ROOT / 'config' / 'stores' / 'demo.yaml'), load_store(store_file)
    assert sorted(hd.catalog.products) == sorted(sd.catalog.products)
    assert sorted(hd.plates) == sorted(sd.plates)
    points = [[3.0, 2.0, 0.0], [6.0, 3.0, 1.2], [8.5, 4.0, 1.7]]
    for a, b in zip(sd.cameras, hd.cameras):
        assert (b.id, b.width, b.height) == (a.id, 2 * a.width, 2 * a.height)
        uv_sd, _ = a.model.project(points)
        uv_hd, _ = b.model.project(points)
        assert np.allclose(uv_hd, 2 * uv_sd, atol=1e-6), a.id


def test_a_store_description_without_the_expected_cameras_is_refused(
        tool, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    broken = tmp_path / 'demo.yaml'
    broken.write_text((ROOT / 'config' / 'stores' / 'demo.yaml').read_text()
                      .replace('calibration: ../cameras/demo/cam3.yaml', 'calibration: x.yaml'))
    monkeypatch.setattr(tool, 'STORE', broken)
    with pytest.raises(SystemExit, match='expected a catalog and 4 cameras'):
        tool.main(['--scale', '2', '--out', str(tmp_path / 'cams'),
                   '--store-out', str(tmp_path / 'out.yaml')])
