"""Rendered cameras: determinism, label sanity against the geometry, motion consistent with the
scenario, video files, the YOLO dataset writer and the live stream."""
import json
import os
import pathlib
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import yaml

from store_common.description import load_store
from store_sim.camera_stream import CameraStreamServer, open_jpeg_packets, render_is_current
from store_sim.dataset import held_times, make_dataset, sample_times, yolo_lines
from store_sim.render import CameraRenderer, plate_contents, ShopperMotion
from store_sim.render_cache import ensure_render
from store_sim.render_scenario import frame_times, render_scenario
from store_sim.scenario import load_scenario
from store_sim.walkways import standing_spot

ROOT = pathlib.Path(__file__).resolve().parents[3]
DEMO = ROOT / 'config' / 'stores' / 'demo.yaml'
SCENARIO = ROOT / 'config' / 'scenarios' / 'demo.yaml'


@pytest.fixture(scope='module')
def store():
    return load_store(DEMO)


@pytest.fixture(scope='module')
def scenario(store):
    return load_scenario(SCENARIO, store)


def short_scenario(tmp_path, duration_s=3.0):
    doc = {'scenario': {'store': 'demo_store', 'seed': 3, 'duration_s': duration_s,
                        'shoppers': [{'id': 'a1', 'enter_s': 0.2, 'exit_s': duration_s - 0.1,
                                      'actions': []}]}}
    path = tmp_path / 'short.yaml'
    path.write_text(yaml.safe_dump(doc))
    return path


def test_rendering_is_deterministic(store, scenario):
    cam = store.camera('cam3')
    a = CameraRenderer(store, cam, scenario)
    b = CameraRenderer(store, cam, scenario)
    for t in (6.5, 30.0):
        ia, ba = a.render(t)
        ib, bb = b.render(t)
        assert np.array_equal(ia, ib)
        assert ba == bb
    other, _ = CameraRenderer(store, cam, scenario, lighting_variant=3).render(30.0)
    assert not np.array_equal(other, ia)


def test_empty_store_has_no_boxes_and_a_full_shelf(store, scenario):
    for cam in store.cameras:
        img, boxes = CameraRenderer(store, cam, scenario).render(0.5)
        assert boxes == []
        assert img.shape == (480, 640, 3) and img.std() > 20
    contents = plate_contents(store, scenario, 0.0)
    assert contents['g1.s1.p1'] == [('COLA-330', 24)]
    assert plate_contents(store, scenario, 7.0)['g1.s1.p1'] == [('COLA-330', 23)]
    # the wrong-plate return lands on the water plate as a foreign unit
    assert ('CHOC-MILK', 1) in plate_contents(store, scenario, 39.5)['g1.s2.p1']


def test_boxes_lie_where_the_geometry_projects_the_truth(store, scenario):
    n_hands = n_shoppers = n_products = 0
    for cam in store.cameras:
        r = CameraRenderer(store, cam, scenario)
        for t in (6.8, 12.5, 34.5, 46.8):
            _, boxes = r.render(t)
            truth = {s['id']: s for s in r.truth_3d(t)}
            for b in boxes:
                x0, y0, x1, y1 = b['bbox']
                assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
                assert 0.3 <= b['visible'] <= 1.0
                st = truth[b['shopper_id']]
                if b['cls'] == 'hand':
                    uv, _ = cam.model.project([st['hands'][b['side']]])
                    assert x0 - 3 <= uv[0, 0] <= x1 + 3 and y0 - 3 <= uv[0, 1] <= y1 + 3
                    n_hands += 1
                elif b['cls'] == 'shopper':
                    if b['visible'] < 0.97:
                        continue      # the box is the visible part; occluders may hide feet
                    # the foot point on the floor and the head project into the person box
                    for p in ([*st['xy'], 0.0], st['head']):
                        uv, _ = cam.model.project([p])
                        assert x0 - 6 <= uv[0, 0] <= x1 + 6 and y0 - 6 <= uv[0, 1] <= y1 + 6
                    n_shoppers += 1
                else:
                    assert b['sku'] == st['holding'][b['side']]
                    uv, _ = cam.model.project([st['hands'][b['side']]])
                    assert x0 - 12 <= uv[0, 0] <= x1 + 12 and y0 - 12 <= uv[0, 1] <= y1 + 12
                    n_products += 1
    counts = (n_shoppers, n_hands, n_products)
    assert n_shoppers >= 6 and n_hands >= 8 and n_products >= 2, counts


def test_a_held_can_bottle_or_apple_is_seen_beside_the_hand(store, tmp_path):
    """A unit in a hand stands beside the palm, not inside the hand's capsule: a held can, apple
    or small bottle gets product boxes (centred on the hand, cans and apples never did)."""
    takes = (('COLA-330', 'g1.s1.p1'), ('WATER-500', 'g1.s2.p1'), ('APPLE', 'g3.s3.p1'))
    shoppers = [{'id': f'a{i}', 'enter_s': 1.0 + 14 * i, 'exit_s': 14.0 + 14 * i,
                 'actions': [{'t_s': 6.0 + 14 * i, 'kind': 'take', 'plate': plate, 'sku': sku,
                              'quantity': 1}]}
                for i, (sku, plate) in enumerate(takes)]
    path = tmp_path / 'held.yaml'
    path.write_text(yaml.safe_dump({'scenario': {'store': 'demo_store', 'seed': 7,
                                                 'duration_s': 44.0, 'shoppers': shoppers}}))
    scen = load_scenario(path, store)
    seen = {sku: 0 for sku, _ in takes}
    for cam in store.cameras:
        r = CameraRenderer(store, cam, scen)
        for i, (sku, _) in enumerate(takes):
            for dt in (0.6, 1.6, 2.6, 3.6):
                _, boxes = r.render(6.0 + 14 * i + dt)
                seen[sku] += sum(b['cls'] == 'product' and b['sku'] == sku for b in boxes)
    assert all(n >= 2 for n in seen.values()), seen


def test_shopper_motion_follows_the_scenario(store, scenario):
    from store_sim.render import reach_starts
    reach = reach_starts(store, scenario)
    s = scenario.shopper('acct-0001')
    m = ShopperMotion(store, s, 0, reach, scenario.seed)
    ent = next(g for g in store.gates if g.kind == 'entrance').zone
    ex = next(g for g in store.gates if g.kind == 'exit').zone
    assert ent.contains(*m.pose(s.enter_s)[0])
    assert ex.contains(*m.pose(s.exit_s)[0])
    for j, a in enumerate(s.actions):
        spot, _ = standing_spot(store, a.plate)
        for t in np.linspace(reach[(s.id, j)], a.t_s, 5):
            st = m.state(float(t))
            assert np.linalg.norm(np.array(st['xy']) - spot) < 0.05
            assert st['reaching_plate'] == a.plate
            plate = store.plate(a.plate)
            hand = np.array(st['hands']['right'])
            assert abs(hand[2] - plate.center_store[2]) < 0.15
            assert abs(hand[0] - plate.center_store[0]) < plate.size_x_m / 2
        assert m.state(a.t_s + 1.0)['reaching_plate'] is None
    # takes are carried; the returned gum goes back
    assert m.holding(7.5)[0] == 'COLA-330'
    assert m.holding(12.5)[:2] == ('GUM-MINT', 'GUM-MINT')     # two gums taken at once
    held = [v for v in m.holding(17.5)[:2] if v]
    assert sorted(held) == ['COLA-330', 'GUM-MINT']
    # never inside a gondola footprint while walking
    for t in np.arange(s.enter_s, s.exit_s, 0.1):
        x, y = m.pose(float(t))[0]
        for g in store.gondolas:
            assert not (abs(x - g.x_m) < g.size_m[0] / 2 and abs(y - g.y_m) < g.size_m[1] / 2)


def test_render_scenario_writes_videos_that_opencv_reads(store, tmp_path):
    sc = short_scenario(tmp_path)
    out = tmp_path / 'render'
    meta = render_scenario(str(DEMO), str(sc), str(out), fps=5.0, cameras=['cam2'])
    n = len(frame_times(3.0 + 1.0, 5.0))
    assert meta['frames'] == n == 21
    cap = cv2.VideoCapture(str(out / 'cam2.avi'))
    assert cap.isOpened()
    frames = 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        assert f.shape == (480, 640, 3)
        frames += 1
    assert frames == n
    labels = [json.loads(x) for x in (out / 'cam2.jsonl').read_text().splitlines()]
    truth = [json.loads(x) for x in (out / 'truth_3d.jsonl').read_text().splitlines()]
    assert [x['frame'] for x in labels] == list(range(n))
    assert truth[0]['shoppers'] == [] and truth[5]['shoppers'][0]['id'] == 'a1'
    assert set(truth[5]['shoppers'][0]['hands']) == {'left', 'right'}
    assert render_is_current(out, str(DEMO), str(sc), 5.0, ['cam2'])
    assert not render_is_current(out, str(DEMO), str(sc), 10.0, ['cam2'])


def test_render_cache_renders_once_then_links_and_notices_a_changed_input(tmp_path):
    sc = short_scenario(tmp_path)
    cache, lines = tmp_path / 'cache', []
    first = ensure_render(str(DEMO), str(sc), tmp_path / 'run1' / 'cameras', 5.0, ['cam2'],
                          jobs=1, cache_dir=cache, log=lines.append)
    assert first == 'rendered'
    assert any(line.startswith('rendering 1 camera videos (21 frames') for line in lines)
    assert not list((tmp_path / 'run1' / 'cameras').glob('.*progress'))
    # a second run dir gets the same bytes from the cache; the same dir is already current
    assert ensure_render(str(DEMO), str(sc), tmp_path / 'run2' / 'cameras', 5.0, ['cam2'],
                         jobs=1, cache_dir=cache, log=lines.append) == 'cache'
    for name in ('cam2.avi', 'cam2.jsonl'):
        assert (tmp_path / 'run2' / 'cameras' / name).read_bytes() == \
            (tmp_path / 'run1' / 'cameras' / name).read_bytes()
    assert render_is_current(tmp_path / 'run2' / 'cameras', str(DEMO), str(sc), 5.0, ['cam2'])
    assert ensure_render(str(DEMO), str(sc), tmp_path / 'run2' / 'cameras', 5.0, ['cam2'],
                         jobs=1, cache_dir=cache, log=lines.append) == 'current'
    # the same files named by another path are the same render
    rel = pathlib.Path(os.path.relpath(DEMO))
    assert render_is_current(tmp_path / 'run2' / 'cameras', str(rel), str(sc), 5.0, ['cam2'])
    # touching the scenario changes nothing; changing what it says renders again
    sc.write_text(sc.read_text())
    assert render_is_current(tmp_path / 'run2' / 'cameras', str(DEMO), str(sc), 5.0, ['cam2'])
    doc = yaml.safe_load(sc.read_text())
    doc['scenario']['shoppers'][0]['enter_s'] = 0.4
    sc.write_text(yaml.safe_dump(doc))
    assert not render_is_current(tmp_path / 'run2' / 'cameras', str(DEMO), str(sc), 5.0,
                                 ['cam2'])
    assert ensure_render(str(DEMO), str(sc), tmp_path / 'run2' / 'cameras', 5.0, ['cam2'],
                         jobs=1, cache_dir=cache, log=lines.append) == 'rendered'
    # a render cut off before render.json was written is not complete
    (tmp_path / 'run2' / 'cameras' / 'render.json').unlink()
    assert not render_is_current(tmp_path / 'run2' / 'cameras', str(DEMO), str(sc), 5.0,
                                 ['cam2'])


def test_yolo_dataset_layout(tmp_path):
    assert yolo_lines([{'cls': 'hand', 'bbox': [10, 20, 30, 60]}], 640, 480) == [
        '1 0.031250 0.083333 0.031250 0.083333']
    counts = make_dataset(str(DEMO), str(tmp_path / 'ds'), scenes=1, seed=77,
                          frames_per_camera=1, val_scenes=0)
    data = yaml.safe_load((tmp_path / 'ds' / 'data.yaml').read_text())
    assert data['names'] == {0: 'shopper', 1: 'hand', 2: 'product'}
    images = sorted((tmp_path / 'ds' / 'images' / 'train').glob('*.jpg'))
    assert len(images) == counts['train']['images'] == 4
    for img in images:
        lab = tmp_path / 'ds' / 'labels' / 'train' / (img.stem + '.txt')
        for line in lab.read_text().splitlines():
            c, *xywh = line.split()
            assert int(c) in (0, 1, 2)
            assert all(0 <= float(v) <= 1 for v in xywh)


def test_held_share_draws_frames_with_a_product_in_hand(tmp_path):
    class Motion:
        def __init__(self, held_from):
            self.held_from = held_from

        def present(self, t):
            return t >= 1.0

        def holding(self, t):
            return ('sku-a' if t >= self.held_from else None), None, -1

    assert held_times([Motion(2.0)], 3.0, step_s=0.5) == [2.0, 2.5]
    assert held_times([Motion(0.0)], 1.0, step_s=0.5) == []        # not inside yet
    scenario = type('S', (), {'shoppers': [], 'duration_s': 10.0})()
    rng = np.random.default_rng(0)
    times = sample_times(scenario, rng, 20, held=[7.0, 8.0], held_share=1.0)
    assert all(min(abs(t - 7.0), abs(t - 8.0)) <= 0.05 for t in times)
    with pytest.raises(ValueError):
        make_dataset(str(DEMO), str(tmp_path / 'bad'), scenes=1, seed=77, held_share=1.5)
    make_dataset(str(DEMO), str(tmp_path / 'ds'), scenes=1, seed=77, frames_per_camera=1,
                 val_scenes=0, held_share=1.0)
    records = [json.loads(line) for line in
               (tmp_path / 'ds' / 'truth' / 'train_77.jsonl').read_text().splitlines()]
    assert len(records) == 4
    for rec in records:
        assert any(v for s in rec['shoppers'] for v in s['holding'].values())


CLIENT = """
import sys, time, cv2
cap = cv2.VideoCapture(sys.argv[1])
print('opened', int(cap.isOpened()), flush=True)
for _ in range(8):
    ok, f = cap.read()
    print(int(ok), f.shape[1] if ok else 0, time.monotonic(), flush=True)
"""


def test_stream_plays_the_video_on_the_scenario_clock(tmp_path):
    sc = short_scenario(tmp_path, duration_s=1.0)
    out = tmp_path / 'render'
    render_scenario(str(DEMO), str(sc), str(out), fps=5.0, cameras=['cam1'], tail_s=0.0)
    start = time.monotonic() + 0.6
    server = CameraStreamServer(out, lambda: time.monotonic() - start).start()
    try:
        # the client is another process, as the camera driver is (cv2 holds the GIL)
        proc = subprocess.run([sys.executable, '-c', CLIENT, server.url('cam1')],
                              capture_output=True, text=True, timeout=60)
        missing = subprocess.run([sys.executable, '-c', CLIENT, server.url('cam9')],
                                 capture_output=True, text=True, timeout=60)
    finally:
        server.close()
    lines = proc.stdout.split('\n')
    assert lines[0] == 'opened 1', proc.stdout + proc.stderr
    got = [(int(ok), int(w), float(t) - start) for ok, w, t in
           (x.split() for x in lines[1:] if x)]
    assert all(ok and w == 640 for ok, w, _ in got)
    # before the scenario the first frame repeats; then frames arrive at 5 fps
    later = [t for _, _, t in got if t > 0.05]
    assert len(later) >= 3
    steps = np.diff(later)
    assert np.all(steps > 0.12) and np.all(steps < 0.35), steps
    assert missing.stdout.startswith('opened 0')


def test_stream_packets_are_the_renders_own_jpegs_in_frame_order(tmp_path):
    # the stream sends what the render's MJPEG encoder stored (no decode and re-encode); each
    # packet decodes to its own frame, also after a seek
    sc = short_scenario(tmp_path, duration_s=1.0)
    out = tmp_path / 'render'
    render_scenario(str(DEMO), str(sc), str(out), fps=5.0, cameras=['cam1'], tail_s=0.0)
    cap, raw = open_jpeg_packets(out / 'cam1.avi')
    assert raw
    ref = cv2.VideoCapture(str(out / 'cam1.avi'))
    frames = []
    while True:
        ok, f = ref.read()
        if not ok:
            break
        frames.append(f.astype(int))
    assert len(frames) >= 5
    for k in (0, 1, len(frames) - 1, 2):
        if k != 1:                       # 1 follows 0: read on; the others seek
            cap.set(cv2.CAP_PROP_POS_FRAMES, k)
        ok, pkt = cap.read()
        assert ok and pkt.ravel()[:2].tobytes() == b'\xff\xd8'
        img = cv2.imdecode(pkt.ravel(), cv2.IMREAD_COLOR).astype(int)
        # another JPEG decoder: about 1 level apart on average, against its neighbours' many
        errs = [np.abs(img - f).mean() for f in frames]
        assert int(np.argmin(errs)) == k and errs[k] < 2.0, errs
