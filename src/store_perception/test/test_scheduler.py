"""Detection scheduling: shoppers at the tracking rate, all stages only where a plate the camera
sees shows activity (load-cell step or a reach), decided on image stamps."""
import pathlib

import pytest

from store_common.description import load_store
from store_perception.scheduler import (FULL, plate_pixels, ScheduleParams, Scheduler, SHOPPERS,
                                        SKIP)

ROOT = pathlib.Path(__file__).resolve().parents[3]
NS = 1_000_000_000
PX = {'cam1': {'p1': (100.0, 100.0), 'p2': (500.0, 100.0)}, 'cam2': {'p2': (300.0, 200.0)}}


def frames(s, cam, t0, t1, fps=10.0):
    """Decisions for a camera's frames from t0 to t1 [s] at fps."""
    n = int(round((t1 - t0) * fps))
    return [s.decide(cam, int((t0 + k / fps) * NS)) for k in range(n)]


def test_quiet_store_runs_shoppers_at_the_tracking_rate():
    s = Scheduler(['cam1', 'cam2'], ScheduleParams(shopper_rate_hz=5.0), PX)
    got = frames(s, 'cam1', 10.0, 12.0)
    assert got.count(SHOPPERS) == 10 and got.count(SKIP) == 10 and FULL not in got


def test_a_load_cell_step_makes_the_cameras_that_see_the_plate_active():
    p = ScheduleParams(shopper_rate_hz=5.0, active_rate_hz=10.0, activity_grams=10.0,
                       activity_hold_s=1.0, weight_baseline_s=0.5)
    s = Scheduler(['cam1', 'cam2'], p, PX)
    for k in range(50):                               # 5 s of a steady plate at 10 Hz
        assert s.on_weight('p1', int(k * 0.1 * NS), 500.0 + (k % 2))
    assert not s.camera_active('cam1', 5 * NS)
    s.on_weight('p1', int(5.0 * NS), 150.0)           # a 350 g take
    assert s.camera_active('cam1', int(5.05 * NS))
    assert not s.camera_active('cam2', int(5.05 * NS))   # cam2 does not see p1
    assert frames(s, 'cam1', 5.0, 6.0) == [FULL] * 10
    for k in range(1, 60):                             # the baseline catches up
        s.on_weight('p1', int((5.0 + k * 0.1) * NS), 150.0)
    assert s.camera_active('cam1', int(6.5 * NS))
    assert not s.camera_active('cam1', int(12.0 * NS))


def test_bad_weight_samples_are_ignored():
    s = Scheduler(['cam1'], ScheduleParams(), PX)
    assert s.on_weight('p1', NS, 100.0)
    assert not s.on_weight('nope', NS, 1e9)
    assert not s.on_weight('p1', 2 * NS, float('nan'))
    assert not s.on_weight('p1', 2 * NS, 1e6, valid=False)
    assert not s.on_weight('p1', 0, 1e6)              # older than the previous sample
    assert not s.camera_active('cam1', 2 * NS)


def test_a_reach_activates_the_plate_and_crops_only_near_active_plates():
    p = ScheduleParams(reach_px=20.0, reach_margin=0.1, activity_hold_s=1.0)
    s = Scheduler(['cam1', 'cam2'], p, PX)
    # a shopper standing over both plates reaches nothing; a hand 25 px away neither
    assert s.on_detections('cam1', 3 * NS, [('shopper', 50, 50, 550, 250),
                                            ('hand', 525, 90, 540, 104)]) == []
    assert s.on_detections('cam1', 3 * NS, [('hand', 510, 90, 525, 104)]) == ['p2']
    assert s.camera_active('cam2', int(3.5 * NS))     # cam2 sees p2 too
    assert s.crop_wanted('cam2', int(3.5 * NS), (250, 100, 310, 260))
    assert not s.crop_wanted('cam2', int(3.5 * NS), (400, 100, 460, 260))
    assert not s.crop_wanted('cam1', int(3.5 * NS), (50, 50, 150, 150))   # p1 is quiet
    assert s.on_detections('cam1', 4 * NS, [('product', 60, 0, 95, 92)]) == ['p1']
    assert s.crop_wanted('cam1', int(4.2 * NS), (60, 0, 95, 92))          # grown box
    assert not s.camera_active('cam2', int(4.6 * NS))


def test_cameras_pick_frames_of_the_same_slot():
    s = Scheduler(['cam1', 'cam2'], ScheduleParams(shopper_rate_hz=5.0), PX)
    a = frames(s, 'cam1', 1.0, 2.0)
    b = [s.decide('cam2', int((1.03 + k / 10) * NS)) for k in range(10)]
    assert a == b and a.count(SHOPPERS) == 5


def test_without_plate_geometry_every_camera_is_active():
    s = Scheduler(['cam1'], ScheduleParams(active_rate_hz=10.0), None)
    assert frames(s, 'cam1', 0.0, 1.0) == [FULL] * 10
    assert s.crop_wanted('cam1', 0, (0, 0, 1, 1))
    s = Scheduler(['cam1', 'cam9'], ScheduleParams(), PX)      # cam9: not described
    assert s.camera_active('cam9', NS) and not s.camera_active('cam1', NS)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        ScheduleParams(shopper_rate_hz=0.0)
    with pytest.raises(ValueError):
        ScheduleParams(activity_grams=float('nan'))
    with pytest.raises(ValueError):
        ScheduleParams(active_shopper_rate_hz=-5.0)


def test_active_frames_reuse_shoppers_within_a_slot_of_the_active_shopper_rate():
    s = Scheduler(['cam1'], ScheduleParams(active_shopper_rate_hz=5.0))
    t = 10 * NS
    assert s.shoppers_reusable(t + NS // 10, t)              # 0.1 s later, same 0.2 s slot
    assert not s.shoppers_reusable(t + 2 * NS // 10, t)      # the next slot: a pass of its own
    assert not s.shoppers_reusable(t, t)                     # not earlier than the frame
    assert not s.shoppers_reusable(t - NS // 10, t)          # a later pass (out of order)
    assert not s.shoppers_reusable(t + NS // 10, None)       # no pass yet
    off = Scheduler(['cam1'], ScheduleParams())              # 0: every active frame its own pass
    assert not off.shoppers_reusable(t + NS // 10, t)


def test_demo_cameras_see_the_plates():
    store = load_store(ROOT / 'config' / 'stores' / 'demo.yaml')
    px = plate_pixels(store)
    assert set(px) == {c.id for c in store.cameras}
    for cam in store.cameras:
        assert px[cam.id], cam.id
        for u, v in px[cam.id].values():
            assert 0 <= u < cam.width and 0 <= v < cam.height


def test_cameras_per_plate_keeps_the_nearest_cameras_active():
    px = {'cam1': {'p1': (1.0, 1.0)}, 'cam2': {'p1': (2.0, 2.0)}, 'cam3': {'p1': (3.0, 3.0)}}
    depths = {'cam1': {'p1': 3.0}, 'cam2': {'p1': 1.5}, 'cam3': {'p1': 2.0}}
    s = Scheduler(list(px), ScheduleParams(cameras_per_plate=2, activity_grams=5.0), px,
                  depths)
    s.on_weight('p1', 0, 100.0)
    s.on_weight('p1', NS, 300.0)
    assert [s.camera_active(c, NS) for c in px] == [False, True, True]
    assert not s.crop_wanted('cam1', NS, (0, 0, 10, 10))
    s = Scheduler(list(px), ScheduleParams(activity_grams=5.0), px, depths)   # 0 = all
    s.on_weight('p1', 0, 100.0)
    s.on_weight('p1', NS, 300.0)
    assert all(s.camera_active(c, NS) for c in px)
    with pytest.raises(ValueError):
        ScheduleParams(cameras_per_plate=-1)
