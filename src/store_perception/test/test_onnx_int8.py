"""The int8 export of the full-frame model (``runtime: onnx_int8``, ``export_detector_onnx
--int8``): found by the runtime choice, a clear error when missing, the same shoppers and hands as
the fp32 graphs on rendered demo frames, later stages left fp32, and a quantization that keeps
the detection head's decoding in float."""
import pathlib
import shutil

import numpy as np
import pytest

from store_common.description import load_store
from store_perception.detection import (CROP_WEIGHTS, default_model_path, Detector, iou,
                                        pick_runtime)
from store_perception.export_onnx import float_tail, quantize_int8
from store_perception.hand_sku import HAND_WEIGHTS
from store_perception.onnx_runtime import OnnxClassifier, onnx_path
from store_sim.render import CameraRenderer
from store_sim.scenario import load_scenario

ROOT = pathlib.Path(__file__).resolve().parents[3]
STORE = ROOT / 'config' / 'stores' / 'demo.yaml'
SCENARIO = ROOT / 'config' / 'scenarios' / 'demo.yaml'
TIMES = (12.6, 30.0, 46.9)


@pytest.fixture(scope='module')
def frames():
    store = load_store(STORE)
    sc = load_scenario(SCENARIO, store)
    return [CameraRenderer(store, cam, sc).render(t)[0] for cam in store.cameras
            for t in TIMES], store


def test_runtime_choice_finds_the_int8_full_frame_model(tmp_path):
    kind, path = pick_runtime(pathlib.Path(default_model_path('store_yolo.pt')), 'onnx_int8')
    assert kind == 'onnx' and path.name == 'store_yolo.int8.onnx' and path.is_file()
    fp32 = pick_runtime(pathlib.Path(default_model_path('store_yolo.pt')), 'onnx')[1]
    assert path.stat().st_size < 0.5 * fp32.stat().st_size
    pt = tmp_path / 'w.pt'
    pt.write_bytes(b'')
    (tmp_path / 'w.onnx').write_bytes(b'')
    assert pick_runtime(pt, 'onnx')[1] == tmp_path / 'w.onnx'
    with pytest.raises(FileNotFoundError, match=r'w\.int8\.onnx.*--int8'):
        pick_runtime(pt, 'onnx_int8')
    assert onnx_path(tmp_path / 'w.int8.onnx', 'onnx') == tmp_path / 'w.onnx'
    with pytest.raises(ValueError, match='runtime'):
        onnx_path(pt, 'int4')


def _xyxy(d):
    return (d.x0, d.y0, d.x1, d.y1)


def test_int8_finds_the_fp32_shoppers_and_hands(frames):
    imgs, store = frames
    kw = dict(imgsz=416, conf=0.3, catalog=store.catalog, crop_model_path=CROP_WEIGHTS,
              hand_model_path=HAND_WEIGHTS, threads=1)
    fp32, int8 = Detector(None, runtime='onnx', **kw), Detector(None, runtime='onnx_int8', **kw)
    assert int8.model.path.name == 'store_yolo.int8.onnx' and int8.runtime == 'onnx_int8'
    # the later stages stay fp32 (int8 ones found more false products in hands)
    assert int8.crop_model.path.name == 'store_yolo_crops.onnx'
    assert int8.hand_model.onnx.path.name == 'store_hand_sku.onnx'
    found = total = 0
    for img in imgs:
        a, b = fp32.detect(img)[0], int8.detect(img)[0]
        for cls in ('shopper', 'hand'):
            for d in (d for d in a if d.class_name == cls and d.score >= 0.5):
                total += 1
                found += any(e.class_name == cls and iou(_xyxy(d), _xyxy(e)) > 0.5 for e in b)
    assert total >= 10
    assert found / total >= 0.85, f'int8 found {found} of the {total} fp32 boxes'


def test_float_tail_keeps_the_head_decoding_in_float():
    tail = float_tail(onnx_path(default_model_path('store_yolo.pt'), 'onnx'))
    assert any('Concat' in n for n in tail)            # the output concat of boxes and scores
    assert any('/dfl/' in n for n in tail)             # the box distribution's decoding
    assert not any('/cv2.0/' in n or '/cv3.0/' in n for n in tail)   # the head's convs: int8
    cls_tail = float_tail(onnx_path(default_model_path(HAND_WEIGHTS), 'onnx'))
    assert {n.rsplit('/', 1)[-1] for n in cls_tail} >= {'Softmax'}


def test_quantize_a_classifier_from_recorded_inputs(tmp_path, frames):
    src = onnx_path(default_model_path(HAND_WEIGHTS), 'onnx')
    fp32_file = tmp_path / src.name
    shutil.copy(src, fp32_file)
    rng = np.random.default_rng(3)
    windows = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(8)]
    fp32 = OnnxClassifier(fp32_file, threads=1)
    feeds = [{fp32.input: np.ascontiguousarray(
        np.stack([w])[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255} for w in windows]
    out = quantize_int8(fp32_file, feeds)
    assert out == tmp_path / (src.name[:-len('.onnx')] + '.int8.onnx')
    q = OnnxClassifier(out, threads=1)
    assert q.names == fp32.names                         # class names carried over
    p, pq = fp32.probs(windows, 64), q.probs(windows, 64)
    assert pq.shape == p.shape and np.allclose(pq.sum(1), 1, atol=1e-3)
    with pytest.raises(ValueError, match='no calibration inputs'):
        quantize_int8(fp32_file, [])
