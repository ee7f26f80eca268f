"""The ONNX Runtime path gives ultralytics' detections: the shipped .onnx exports against the
.pt weights with ultralytics' own predict on rendered demo frames (boxes IoU > 0.9, same
classes, scores within 0.01), the hand classifier's probabilities, and no torch import on the
ONNX path."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from store_common.description import load_store
from store_perception.detection import (CROP_WEIGHTS, default_model_path, Detector, iou,
                                        pick_runtime)
from store_perception.hand_sku import HAND_WEIGHTS
from store_perception.onnx_runtime import letterbox, letterbox_params, scale_to_image
from store_sim.render import CameraRenderer
from store_sim.scenario import load_scenario

ROOT = pathlib.Path(__file__).resolve().parents[3]
STORE = ROOT / 'config' / 'stores' / 'demo.yaml'
SCENARIO = ROOT / 'config' / 'scenarios' / 'demo.yaml'
TIMES = (12.6, 46.9)


@pytest.fixture(scope='module')
def frames():
    store = load_store(STORE)
    sc = load_scenario(SCENARIO, store)
    return [CameraRenderer(store, cam, sc).render(t)[0] for cam in store.cameras
            for t in TIMES], store


@pytest.fixture(scope='module')
def pair(frames):
    _, store = frames
    kw = dict(imgsz=416, conf=0.3, catalog=store.catalog, crop_model_path=CROP_WEIGHTS,
              hand_model_path=HAND_WEIGHTS)
    return Detector(None, runtime='torch', **kw), Detector(None, runtime='onnx', **kw)


def test_shipped_onnx_exports_are_found_and_small():
    for name in ('store_yolo.pt', CROP_WEIGHTS, HAND_WEIGHTS):
        kind, path = pick_runtime(pathlib.Path(default_model_path(name)))
        assert kind == 'onnx' and path.suffix == '.onnx' and path.is_file()
        assert path.stat().st_size < 15e6


def test_torch_runtime_and_missing_onnx(tmp_path):
    pt = tmp_path / 'w.pt'
    pt.write_bytes(b'')
    assert pick_runtime(pt, 'auto') == ('torch', pt)
    assert pick_runtime(pt, 'torch') == ('torch', pt)
    with pytest.raises(FileNotFoundError, match='w.onnx'):
        pick_runtime(pt, 'onnx')
    with pytest.raises(ValueError):
        pick_runtime(pt, 'tensorrt')


def _match(a, b, min_score):
    """Every box of ``a`` scoring >= min_score has a box of the same class in ``b`` at IoU >
    0.9 with a score within 0.01; returns how many were compared."""
    (xa, sa, ca), (xb, sb, cb) = a, b
    n = 0
    for box, s, c in zip(xa, sa, ca):
        if s < min_score:
            continue
        cand = [(iou(box, xb[j]), sb[j]) for j in range(len(xb)) if cb[j] == c]
        assert cand, (box, s, c)
        best = max(cand)
        assert best[0] > 0.9 and abs(best[1] - s) < 0.01, (box, s, c, best)
        n += 1
    return n


def test_each_stage_matches_ultralytics_predict(frames, pair):
    imgs, _ = frames
    torch_det, onnx_det = pair
    compared = 0
    for img in imgs:
        a = torch_det.model.predict([img], 416, 0.05, 0.5)[0]
        b = onnx_det.model.predict([img], 416, 0.05, 0.5)[0]
        compared += _match(a, b, 0.1) + _match(b, a, 0.1)
    crops = [np.ascontiguousarray(img[100:324, 200:424]) for img in imgs]
    for a, b in zip(torch_det.crop_model.predict(crops, 224, 0.05, 0.5),
                    onnx_det.crop_model.predict(crops, 224, 0.05, 0.5)):
        compared += _match(a, b, 0.1) + _match(b, a, 0.1)
    assert compared >= 10
    windows = [np.ascontiguousarray(img[200:264, 300:364]) for img in imgs]
    pa = np.array(torch_det.hand_model._probs(windows))
    pb = np.array(onnx_det.hand_model._probs(windows))
    assert pa.shape == pb.shape and np.abs(pa - pb).max() < 1e-3


def test_three_stage_detections_match(frames, pair):
    imgs, _ = frames
    torch_det, onnx_det = pair
    assert (torch_det.runtime, onnx_det.runtime) == ('torch', 'onnx')
    assert onnx_det.hand_model.runtime == 'onnx'
    found = 0
    batch = onnx_det.detect_batch(imgs)
    for img, (got, _) in zip(imgs, batch):
        want, _ = torch_det.detect(img)
        assert [d.class_name for d in got] == [d.class_name for d in want]
        for g, w in zip(got, want):
            assert iou((g.x0, g.y0, g.x1, g.y1), (w.x0, w.y0, w.x1, w.y1)) > 0.9
            assert abs(g.score - w.score) < 0.01 and g.sku == w.sku
        found += len(want)
    assert found >= 5


@pytest.mark.parametrize('shape', [(480, 640), (224, 224), (300, 100), (97, 413)])
def test_letterbox_round_trip(shape):
    img = np.zeros(shape + (3,), np.uint8)
    out = letterbox(img, 416)
    _, (h, w), left, top = letterbox_params(shape, 416)
    assert out.shape == (h, w, 3) and h % 32 == 0 and w % 32 == 0 and max(h, w) == 416
    full = np.array([[left, top, w - left, h - top]], float)
    back = scale_to_image(full, shape, 416)
    assert np.allclose(back, [[0, 0, shape[1], shape[0]]], atol=1.5)


def test_the_onnx_path_never_imports_torch():
    code = ('import sys, numpy as np\n'
            'from store_perception.detection import Detector\n'
            'd = Detector(None, crop_model_path="store_yolo_crops.pt", '
            'hand_model_path="store_hand_sku.pt", runtime="onnx")\n'
            'd.warmup()\n'
            'd.detect_batch([np.zeros((480, 640, 3), np.uint8)] * 2)\n'
            'bad = [m for m in sys.modules if m.split(".")[0] in ("torch", "ultralytics")]\n'
            'assert not bad, bad\n')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)
