"""A running install without torch: the detector node's module and its ONNX Runtime path work
with ``torch`` and ``ultralytics`` impossible to import (what requirements/runtime.txt and
docker/Dockerfile.runtime install), and the torch runtime then fails with a clear error."""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from store_common.description import load_store
from store_sim.render import CameraRenderer
from store_sim.scenario import load_scenario

ROOT = pathlib.Path(__file__).resolve().parents[3]
STORE = ROOT / 'config' / 'stores' / 'demo.yaml'
SCENARIO = ROOT / 'config' / 'scenarios' / 'demo.yaml'
PARAMS = ROOT / 'config' / 'params' / 'store.yaml'
# set before anything else is imported: `import torch` then raises ImportError
BLOCK = ('import sys\n'
         'for m in ("torch", "torchvision", "ultralytics"):\n'
         '    sys.modules[m] = None\n')


def _run(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', BLOCK + code], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope='module')
def frame_file(tmp_path_factory):
    """A rendered demo frame with shoppers in view, and its truth boxes."""
    store = load_store(STORE)
    cam = store.cameras[0]
    img, boxes = CameraRenderer(store, cam, load_scenario(SCENARIO, store)).render(12.6)[:2]
    shoppers = [b for b in boxes if b['cls'] == 'shopper']
    assert shoppers, 'the frame should show a shopper'
    path = tmp_path_factory.mktemp('frame') / 'frame.npy'
    np.save(path, img)
    return path, cam.id, shoppers


def test_detector_node_path_runs_with_torch_and_ultralytics_blocked(frame_file):
    path, cam, shoppers = frame_file
    code = f'''
import json, numpy as np
import store_perception.detector_node  # the node's module and everything it imports
from store_common.description import load_store
from store_common.params import load_params_file
from store_perception.serving import DetectionService, make_detector, make_scheduler
p = dict(load_params_file({str(PARAMS)!r})['detector'], runtime='onnx')
store = load_store({str(STORE)!r})
det = make_detector(p, store.catalog)
det.warmup()
service = DetectionService(det, [{cam!r}], make_scheduler(p, [{cam!r}], store))
assert service.offer({cam!r}, 1_000_000_000, None) == 'shoppers'
batch = service.take(timeout_s=0.0)
img = np.load({str(path)!r})
(dets, ms), = service.detect(batch, [img])
bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'ultralytics', 'torchvision')
       and sys.modules[m] is not None]
print(json.dumps(dict(runtime=det.runtime, hand=det.hand_model.runtime, bad=bad,
                      dets=[(d.class_name, d.score, d.x0, d.y0, d.x1, d.y1) for d in dets])))
'''
    res = _run(code)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out['runtime'] == 'onnx' and out['hand'] == 'onnx' and out['bad'] == []
    found = [d for d in out['dets'] if d[0] == 'shopper']
    assert found, out['dets']
    # a real detection: a found shopper box overlaps a truth shopper
    from store_perception.detection import iou
    assert max(iou(d[2:], t['bbox']) for d in found for t in shoppers) > 0.5


def test_torch_runtime_without_torch_is_a_clear_error():
    code = ('from store_perception.detection import Detector\n'
            'try:\n'
            '    Detector(None, runtime="torch")\n'
            'except ValueError as exc:\n'
            '    print("ValueError:", exc)\n')
    res = _run(code, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'ValueError:' in res.stdout and 'requirements/ml.txt' in res.stdout


def test_runtime_requirements_leave_out_the_training_stack():
    text = (ROOT / 'requirements' / 'runtime.txt').read_text()
    names = {line.split('>')[0].split('=')[0].split('<')[0].strip().lower()
             for line in text.splitlines() if line.strip() and not line.startswith('#')}
    assert {'onnxruntime', 'numpy', 'opencv-python-headless'} <= names
    assert not names & {'torch', 'torchvision', 'ultralytics', 'onnx'}
    docker = (ROOT / 'docker' / 'Dockerfile.runtime').read_text()
    assert '-r requirements/runtime.txt' in docker and 'ml.txt' not in docker
