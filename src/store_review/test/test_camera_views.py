"""Review evidence from calibrated cameras: which plates each camera sees, and where."""
import pathlib

import numpy as np
import pytest

from store_common.description import load_store
from store_review.evidence import camera_views, crop_for_plate

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope='module')
def store():
    s = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')
    if not s.cameras:
        pytest.skip('the demo store has no cameras')
    return s


def test_every_plate_is_seen_by_a_camera_and_boxes_lie_in_the_image(store):
    views = camera_views(store)
    assert [v.camera_id for v in views] == [c.id for c in store.cameras]
    seen = {p for v in views for p in v.plates}
    assert seen == set(store.plates)
    for v, cam in zip(views, store.cameras):
        assert not v.sees_all
        for pid, (x, y, w, h) in v.plates.items():
            assert 0 <= x and 0 <= y and w > 0 and h > 0
            assert x + w <= cam.model.width and y + h <= cam.model.height
            # the plate centre projects inside its box
            (u, vv), = cam.model.project(np.array([store.plate(pid).center_store]))[0]
            assert x - 1 <= u <= x + w + 1 and y - 1 <= vv <= y + h + 1, (cam.id, pid)


def test_a_camera_turned_around_sees_fewer_plates(store):
    import dataclasses
    cam = store.cameras[0]
    # rotate the optical frame 180 degrees about its y axis: the camera now looks backwards
    turned = dataclasses.replace(cam.model,
                                 R_store_cam=cam.model.R_store_cam @ np.diag([-1.0, 1.0, -1.0]))
    fake = type('S', (), {'cameras': (dataclasses.replace(cam, model=turned),),
                          'plates': store.plates})()
    (view,) = camera_views(fake)
    assert len(view.plates) < len(camera_views(store)[0].plates)


def test_evidence_is_cropped_to_the_plate_box(store):
    view = next(v for v in camera_views(store) if v.plates)
    pid, box = min(view.plates.items(), key=lambda kv: kv[1][2] * kv[1][3])
    cam = next(c for c in store.cameras if c.id == view.camera_id)
    image = np.zeros((cam.model.height, cam.model.width, 3), np.uint8)
    crop, inner = crop_for_plate(image, box)
    assert crop.shape[0] * crop.shape[1] < image.shape[0] * image.shape[1]
    x, y, w, h = inner
    assert 0 <= x and 0 <= y and x + w <= crop.shape[1] and y + h <= crop.shape[0]
