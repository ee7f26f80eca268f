"""The shipped YOLO models on ONNX Runtime (CPU serving), with ultralytics' own pre- and
post-processing redone in NumPy so the boxes match ``YOLO.predict`` on the same images.

* Detection (:class:`OnnxYolo`): letterbox exactly as ultralytics' ``LetterBox`` does for a
  batch of same-sized images with a dynamic-shape model (``auto``: the smallest stride-32
  rectangle around the image scaled to ``imgsz``, centred, grey 114 padding, bilinear resize),
  BGR -> RGB, 0..1; the graph's output (B, 4 + classes, anchors: centre x, y, w, h in input
  pixels, class probabilities) is filtered like ``ultralytics.utils.nms.non_max_suppression``
  (best class per anchor above ``conf``, at most 30000 candidates, per-class greedy NMS at
  ``iou``, at most ``max_det``) and mapped back like ``scale_boxes`` (per-axis gain of the
  rounded resized size, rounded padding, clipped to the image).
* Classification (:class:`OnnxClassifier`): the hand windows are already ``size`` x ``size``
  (:func:`store_perception.crops.cut`), where ultralytics' resize and centre crop change
  nothing: RGB, 0..1, and the graph ends in a softmax.

A batch of images of one size runs as one graph call (cameras of one node, crops, hand
windows); images of different sizes run in groups of one size each.

The .onnx files are exported from the shipped .pt weights by ``export_detector_onnx``
(:mod:`store_perception.export_onnx`) and shipped next to them. This module imports neither
torch nor ultralytics: a running install needs onnxruntime, NumPy and OpenCV only.
"""
from __future__ import annotations

import ast
import pathlib

import cv2
import numpy as np

PAD_VALUE = 114            # ultralytics' letterbox grey
STRIDE = 32
MAX_NMS = 30000            # candidates kept before NMS (ultralytics' max_nms)
MAX_WH = 7680              # class offset of the batched NMS (ultralytics' max_wh)
INT8_SUFFIX = '.int8.onnx'  # int8 (static QDQ) sibling of an export (export_detector_onnx --int8)
RUNTIMES = ('auto', 'onnx', 'onnx_int8', 'torch')


def onnx_path(path, runtime: str = 'auto') -> pathlib.Path:
    """The ONNX file a runtime loads for weights ``path``: ``<stem>.onnx`` (auto, onnx) or
    ``<stem>.int8.onnx`` (onnx_int8), whether or not it exists."""
    if runtime not in RUNTIMES:
        raise ValueError(f'runtime must be one of {RUNTIMES}, got {runtime!r}')
    path = pathlib.Path(path)
    stem = path.name
    for suffix in (INT8_SUFFIX, '.onnx', '.pt'):
        if stem.endswith(suffix):
            stem = stem[:-len(suffix)]
            break
    return path.with_name(stem + (INT8_SUFFIX if runtime == 'onnx_int8' else '.onnx'))


def pick_runtime(path, runtime: str = 'auto') -> tuple[str, pathlib.Path]:
    """(runtime, file it loads) for weights ``path``: the .onnx of the same stem for 'onnx'
    (and for 'auto' where it exists), its int8 sibling ``<stem>.int8.onnx`` for 'onnx_int8',
    the .pt for 'torch'."""
    if runtime not in RUNTIMES:
        raise ValueError(f'runtime must be one of {RUNTIMES}, got {runtime!r}')
    path = pathlib.Path(path)
    if runtime == 'torch':
        if path.suffix == '.onnx':
            raise ValueError(f'{path}: runtime torch needs .pt weights')
        return 'torch', path
    onnx = path if path.suffix == '.onnx' and runtime != 'onnx_int8' else onnx_path(path, runtime)
    if onnx.is_file():
        return 'onnx', onnx
    if runtime in ('onnx', 'onnx_int8'):
        how = 'export_detector_onnx --int8' if runtime == 'onnx_int8' else 'export_detector_onnx'
        raise FileNotFoundError(f'ONNX model not found: {onnx} ({how} writes it next to '
                                f'{path.name})')
    return 'torch', path


def letterbox_params(shape: tuple[int, int], imgsz: int, stride: int = STRIDE):
    """(resized (w, h), padded input (h, w), left, top) for an image of ``shape`` (h, w), as
    ultralytics' ``LetterBox(imgsz, auto=True, stride)`` computes them."""
    h, w = shape
    r = min(imgsz / h, imgsz / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = np.mod(imgsz - new_w, stride) / 2, np.mod(imgsz - new_h, stride) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return (new_w, new_h), (new_h + top + bottom, new_w + left + right), left, top


def letterbox(image: np.ndarray, imgsz: int, stride: int = STRIDE) -> np.ndarray:
    """The padded model input (H, W, 3) uint8 of one BGR image."""
    (new_w, new_h), _, left, top = letterbox_params(image.shape[:2], imgsz, stride)
    img = image
    if (image.shape[1], image.shape[0]) != (new_w, new_h):
        img = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dh, dw = np.mod(imgsz - new_h, stride) / 2, np.mod(imgsz - new_w, stride) / 2
    bottom, right = round(dh + 0.1), round(dw + 0.1)
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT,
                              value=(PAD_VALUE,) * 3)


def to_blob(images: list[np.ndarray]) -> np.ndarray:
    """(N, 3, H, W) float32 RGB in 0..1 from same-sized BGR uint8 images."""
    x = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32) / np.float32(255.0)


def nms_per_class(xyxy: np.ndarray, scores: np.ndarray, cls: np.ndarray,
                  iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy NMS within each class (boxes offset by class, as ultralytics'
    batched NMS), best score first."""
    boxes = xyxy + (cls.astype(np.float64) * MAX_WH)[:, None]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-scores, kind='stable')
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(int(i))
        ix = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2])
                     - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3])
                     - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = ix * iy
        union = area[i] + area[rest] - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[overlap <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def postprocess(pred: np.ndarray, conf: float, iou: float, max_det: int):
    """(xyxy (N, 4) in input pixels, scores (N,), classes (N,)) of one image's raw output
    (4 + classes, anchors)."""
    scores_all = pred[4:]
    cls = scores_all.argmax(axis=0)
    score = scores_all[cls, np.arange(pred.shape[1])]
    keep = score > conf
    if not keep.any():
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
    xywh, score, cls = pred[:4, keep].T.astype(np.float64), score[keep], cls[keep]
    if len(score) > MAX_NMS:
        top = np.argsort(-score, kind='stable')[:MAX_NMS]
        xywh, score, cls = xywh[top], score[top], cls[top]
    xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    idx = nms_per_class(xyxy, score, cls, iou)[:max_det]
    return xyxy[idx], score[idx].astype(np.float64), cls[idx]


def scale_to_image(xyxy: np.ndarray, shape: tuple[int, int], imgsz: int) -> np.ndarray:
    """Boxes in model-input pixels -> pixels of the image of ``shape`` (h, w), clipped."""
    (new_w, new_h), (in_h, in_w), _, _ = letterbox_params(shape, imgsz)
    h, w = shape
    gain = min(in_h / h, in_w / w)
    new_h, new_w = max(round(h * gain), 1), max(round(w * gain), 1)
    gy, gx = new_h / h, new_w / w
    px, py = round((in_w - new_w) / 2 - 0.1), round((in_h - new_h) / 2 - 0.1)
    out = (xyxy - np.array([px, py, px, py], float)) / np.array([gx, gy, gx, gy])
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out


def _session(path: pathlib.Path, threads: int):
    import onnxruntime as ort
    if not path.is_file():
        raise FileNotFoundError(f'ONNX model not found: {path} (export_detector_onnx writes it '
                                f'next to the .pt weights; see models/DATA_CARD.md)')
    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    # Idle pool threads sleep instead of spinning: on a machine the whole graph shares (2 cores),
    # a spinning pool burns the CPU the other nodes and the next frame need.
    opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts,
                                providers=['CPUExecutionProvider'])


def _names(session) -> dict[int, str]:
    meta = session.get_modelmeta().custom_metadata_map
    try:
        names = ast.literal_eval(meta.get('names', ''))
        return {int(k): str(v) for k, v in dict(names).items()}
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ValueError(f'ONNX model has no class names in its metadata ({exc})') from exc


class OnnxYolo:
    """A YOLO detection graph (dynamic batch and size) on ONNX Runtime's CPU provider."""

    def __init__(self, path, threads: int = 0):
        self.path = pathlib.Path(path)
        self.session = _session(self.path, threads)
        self.names = _names(self.session)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get('task', 'detect') != 'detect':
            raise ValueError(f'{self.path}: not a detection model (task {meta.get("task")})')
        self.input = self.session.get_inputs()[0].name

    def predict(self, images: list[np.ndarray], imgsz: int, conf: float, iou: float,
                max_det: int = 300) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per BGR image: (xyxy (N, 4) image pixels, scores (N,), class ids (N,))."""
        out: list = [None] * len(images)
        groups: dict[tuple, list[int]] = {}
        for k, img in enumerate(images):
            groups.setdefault(img.shape, []).append(k)
        for shape, ks in groups.items():
            blob = to_blob([letterbox(images[k], imgsz) for k in ks])
            raw = self.session.run(None, {self.input: blob})[0]
            for k, pred in zip(ks, raw):
                xyxy, score, cls = postprocess(pred, conf, iou, max_det)
                out[k] = (scale_to_image(xyxy, shape[:2], imgsz), score, cls)
        return out


class OnnxClassifier:
    """A YOLO classification graph on ONNX Runtime: square BGR windows -> probabilities."""

    def __init__(self, path, threads: int = 0):
        self.path = pathlib.Path(path)
        self.session = _session(self.path, threads)
        self.names = _names(self.session)
        self.input = self.session.get_inputs()[0].name

    def probs(self, crops: list[np.ndarray], size: int) -> np.ndarray:
        """(N, classes) probabilities of BGR crops, each resized to ``size`` if it is not."""
        if not crops:
            return np.zeros((0, len(self.names)), np.float32)
        crops = [c if c.shape[:2] == (size, size) else
                 cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in crops]
        return self.session.run(None, {self.input: to_blob(crops)})[0]
