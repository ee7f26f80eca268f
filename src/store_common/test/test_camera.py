"""Camera calibration files, the cameras section of the store, and the geometry round trips."""
import copy
import math
import pathlib

import cv2
import numpy as np
import pytest
import yaml

from store_common.camera import (CalibrationError, calibration_from_dict, load_calibration,
                                 look_at, make_model, matrix_to_quat, quat_to_matrix,
                                 R_BODY_OPTICAL, rpy_to_matrix)
from store_common.description import load_store, StoreConfigError

ROOT = pathlib.Path(__file__).resolve().parents[3]
DEMO = ROOT / 'config' / 'stores' / 'demo.yaml'
CATALOG = ROOT / 'config' / 'catalog.yaml'


@pytest.fixture(scope='module')
def store():
    return load_store(DEMO)


def test_demo_store_has_four_angled_ceiling_cameras(store):
    assert [c.id for c in store.cameras] == ['cam1', 'cam2', 'cam3', 'cam4']
    for cam in store.cameras:
        m = cam.model
        assert (cam.width, cam.height) == (m.width, m.height) == (640, 480)
        assert 2.5 <= m.t_store_cam[2] <= 3.5
        axis = m.R_store_cam[:, 2]
        tilt_deg = math.degrees(math.asin(-axis[2]))
        assert 15 <= tilt_deg <= 60, (cam.id, tilt_deg)   # angled, not straight down
        assert cam.frame_id == f'camera_{cam.id}_optical'
        assert 10 <= cam.fps <= 15


def test_most_of_the_free_floor_is_seen_by_two_cameras(store):
    gondolas = [(g.x_m - g.size_m[0] / 2, g.x_m + g.size_m[0] / 2,
                 g.y_m - g.size_m[1] / 2, g.y_m + g.size_m[1] / 2) for g in store.gondolas]
    pts = [(x, y) for x in np.arange(0.25, store.size_m[0], 0.25)
           for y in np.arange(0.25, store.size_m[1], 0.25)
           if not any(a <= x <= b and c <= y <= d for a, b, c, d in gondolas)]
    pts = np.c_[np.array(pts), np.zeros(len(pts))]
    seen = np.zeros(len(pts), int)
    for cam in store.cameras:
        uv, depth = cam.model.project(pts)
        seen += (depth > 0) & cam.model.in_image(uv)
    assert (seen >= 2).mean() >= 0.8
    # both gates and every plate are seen by at least two cameras
    for gate in store.gates:
        z = gate.zone
        p = np.array([[(z.x_min + z.x_max) / 2, (z.y_min + z.y_max) / 2, 1.0]])
        assert sum(bool(c.model.in_image(c.model.project(p)[0])[0])
                   for c in store.cameras) >= 2, gate.id
    plates = np.array([p.center_store for p in store.plates.values()])
    n = sum(c.model.in_image(c.model.project(plates)[0]) for c in store.cameras)
    assert n.min() >= 2


def test_projection_matches_opencv(store):
    m = store.camera('cam2').model
    rng = np.random.default_rng(3)
    pts = np.c_[rng.uniform(3, 9, 200), rng.uniform(0.5, 7.5, 200), rng.uniform(0, 2, 200)]
    uv, depth = m.project(pts)
    rvec, _ = cv2.Rodrigues(m.R_store_cam.T)
    tvec = -m.R_store_cam.T @ m.t_store_cam
    ref, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), rvec, tvec, m.K, m.D)
    ok = depth > 0
    assert ok.sum() > 150
    np.testing.assert_allclose(uv[ok], ref.reshape(-1, 2)[ok], atol=1e-6)
    assert np.all(np.isnan(uv[~ok]))


def test_pixel_to_floor_and_back_round_trip(store):
    for cam in store.cameras:
        m = cam.model
        u, v = np.meshgrid(np.linspace(0, m.width - 1, 17), np.linspace(0, m.height - 1, 13))
        uv = np.stack([u.ravel(), v.ravel()], axis=1)
        for z in (0.0, 1.1):
            pts = m.pixels_to_plane_z(uv, z)
            ok = np.isfinite(pts[:, 0])
            assert ok.mean() > 0.75
            np.testing.assert_allclose(pts[ok, 2], z, atol=1e-9)
            back, depth = m.project(pts[ok])
            assert np.all(depth > 0)
            np.testing.assert_allclose(back, uv[ok], atol=1e-6)


def test_store_point_to_ray_and_back(store):
    m = store.camera('cam3').model
    p = np.array([[6.2, 3.75, 1.2], [5.0, 1.0, 0.0], [8.0, 6.0, 0.4]])
    uv, depth = m.project(p)
    origin, rays = m.pixel_rays(uv)
    dist = np.linalg.norm(p - origin, axis=1)
    np.testing.assert_allclose(origin + rays * dist[:, None], p, atol=1e-7)


def test_undistortion_inverts_distortion_over_the_image(store):
    m = store.camera('cam1').model
    u, v = np.meshgrid(np.arange(0, 640, 7.0), np.arange(0, 480, 7.0))
    uv = np.stack([u.ravel(), v.ravel()], axis=1)
    xy = m.undistort_normalized(m.pixels_to_normalized(uv))
    np.testing.assert_allclose(m.normalized_to_pixels(m.distort_normalized(xy)), uv, atol=1e-7)
    ref = cv2.undistortPoints(uv.reshape(-1, 1, 2), m.K, m.D).reshape(-1, 2)
    np.testing.assert_allclose(xy, ref, atol=1e-4)   # OpenCV iterates only 5 times


def test_ray_grid_points_through_every_pixel(store):
    m = store.camera('cam4').model
    grid = m.ray_grid()
    assert grid.shape == (480, 640, 3)
    for v, u in ((0, 0), (240, 320), (479, 639), (100, 500)):
        p = m.t_store_cam + 2.5 * grid[v, u]
        uv, depth = m.project(p)
        np.testing.assert_allclose(uv[0], (u, v), atol=1e-6)
        assert depth[0] == pytest.approx(2.5)


def test_rotations_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        r = quat_to_matrix(*q)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        q2 = matrix_to_quat(r)
        np.testing.assert_allclose(quat_to_matrix(*q2), r, atol=1e-12)
    r = look_at((1, 4, 3), (5, 2, 0.5))
    body = r @ R_BODY_OPTICAL.T
    assert body[:, 0] @ np.array([4, -2, -2.5]) > 0     # body x looks at the target
    yaw = math.degrees(math.atan2(body[1, 0], body[0, 0]))
    pitch = math.degrees(math.asin(-body[2, 0]))
    np.testing.assert_allclose(rpy_to_matrix(0, math.radians(pitch), math.radians(yaw)), body,
                               atol=1e-12)


def test_quaternion_and_rpy_calibrations_agree():
    doc = yaml.safe_load((ROOT / 'config' / 'cameras' / 'demo' / 'cam1.yaml').read_text())
    a = calibration_from_dict(doc, 'a.yaml')
    doc2 = copy.deepcopy(doc)
    qx, qy, qz, qw = matrix_to_quat(a.R_store_cam)
    doc2['pose_in_store'] = {'position': doc['pose_in_store']['position'],
                             'orientation': {'x': qx, 'y': qy, 'z': qz, 'w': qw}}
    b = calibration_from_dict(doc2, 'b.yaml')
    np.testing.assert_allclose(a.R_store_cam, b.R_store_cam, atol=1e-12)
    written = calibration_from_dict(a.to_yaml_dict(), 'c.yaml')
    np.testing.assert_allclose(written.R_store_cam, a.R_store_cam, atol=1e-8)
    np.testing.assert_allclose(written.K, a.K)
    np.testing.assert_allclose(written.D, a.D)


def test_no_distortion_model_is_plain_pinhole():
    m = make_model('c', 100, 80, 50, 50, 49.5, 39.5, [0] * 5, (0, 0, 2),
                   look_at((0, 0, 2), (1, 0, 0)))
    uv, _ = m.project([[1, 0, 0]])
    np.testing.assert_allclose(uv[0], (49.5, 39.5), atol=1e-9)


@pytest.mark.parametrize('mutate,field,message', [
    (lambda d: d.pop('camera_matrix'), 'camera_matrix', 'missing required field'),
    (lambda d: d['camera_matrix']['data'].__setitem__(2, 'x'), 'camera_matrix.data[2]',
     'expected a finite number'),
    (lambda d: d.__setitem__('distortion_model', 'equidistant'), 'distortion_model',
     'only plumb_bob'),
    (lambda d: d['distortion_coefficients'].__setitem__('cols', 4), 'distortion_coefficients',
     'expected rows: 1, cols: 5'),
    (lambda d: d.__setitem__('image_width', 0), 'image_width', 'expected an integer'),
    (lambda d: d['pose_in_store'].pop('position'), 'pose_in_store.position.x',
     'missing required field'),
    (lambda d: d['pose_in_store'].__setitem__('orientation', {'x': 0, 'y': 0, 'z': 0, 'w': 1}),
     'pose_in_store', 'give exactly one of'),
    (lambda d: d['pose_in_store'].__setitem__(
        'rpy_deg', {'roll': 0, 'pitch': 'down', 'yaw': 0}),
     'pose_in_store.rpy_deg.pitch', 'expected a finite number'),
])
def test_calibration_errors_name_file_and_field(tmp_path, mutate, field, message):
    doc = yaml.safe_load((ROOT / 'config' / 'cameras' / 'demo' / 'cam2.yaml').read_text())
    mutate(doc)
    path = tmp_path / 'bad_cam.yaml'
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(CalibrationError) as err:
        load_calibration(path)
    assert str(err.value).startswith(f'{path}: {field}: {message}'), str(err.value)


def _store_with(tmp_path, mutate):
    doc = yaml.safe_load(DEMO.read_text())
    doc['store']['catalog'] = str(CATALOG)
    for cam in doc['store']['cameras']:
        cam['calibration'] = str((DEMO.parent / cam['calibration']).resolve())
    mutate(doc['store']['cameras'])
    path = tmp_path / 'store.yaml'
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize('mutate,field,message', [
    (lambda c: c[1].__setitem__('id', 'cam1'), 'store.cameras[1].id', "duplicate camera id"),
    (lambda c: c[0].__setitem__('calibration', 'nope.yaml'), 'store.cameras[0].calibration',
     'nope.yaml: file not found'),
    (lambda c: c[2].__setitem__('source', True), 'store.cameras[2].source',
     'expected a device index'),
    (lambda c: c[2].__setitem__('source', -1), 'store.cameras[2].source',
     'expected a device index'),
    (lambda c: c[3].__setitem__('width', 1280), 'store.cameras[3].width',
     '1280x480 differs from the calibration'),
    (lambda c: c[0].__setitem__('fps', 0), 'store.cameras[0].fps', 'must be > 0'),
    (lambda c: c[0].pop('source'), 'store.cameras[0].source', 'missing required field'),
])
def test_store_camera_errors_name_file_and_field(tmp_path, mutate, field, message):
    path = _store_with(tmp_path, mutate)
    with pytest.raises(StoreConfigError) as err:
        load_store(path)
    assert str(err.value).startswith(f'{path}: {field}: '), str(err.value)
    assert message in str(err.value)


def test_calibration_error_inside_the_store_names_both_files(tmp_path):
    doc = yaml.safe_load((ROOT / 'config' / 'cameras' / 'demo' / 'cam2.yaml').read_text())
    doc['camera_matrix']['data'][0] = -5
    calib = tmp_path / 'cam2_bad.yaml'
    calib.write_text(yaml.safe_dump(doc))
    path = _store_with(tmp_path, lambda c: c[1].__setitem__('calibration', str(calib)))
    with pytest.raises(StoreConfigError) as err:
        load_store(path)
    assert str(err.value) == (f'{path}: store.cameras[1].calibration: {calib}: camera_matrix: '
                              'expected [fx, s, cx, 0, fy, cy, 0, 0, 1] with fx, fy > 0')


def test_camera_outside_the_store_is_rejected(tmp_path):
    doc = yaml.safe_load((ROOT / 'config' / 'cameras' / 'demo' / 'cam2.yaml').read_text())
    doc['pose_in_store']['position']['x'] = 40.0
    calib = tmp_path / 'far.yaml'
    calib.write_text(yaml.safe_dump(doc))
    path = _store_with(tmp_path, lambda c: c[1].__setitem__('calibration', str(calib)))
    with pytest.raises(StoreConfigError, match=r'store.cameras\[1\].calibration: .* outside'):
        load_store(path)


def test_store_without_cameras_is_valid(tmp_path):
    path = _store_with(tmp_path, lambda c: c.clear())
    assert load_store(path).cameras == ()
    with pytest.raises(KeyError, match="unknown camera 'cam1'"):
        load_store(path).camera('cam1')
