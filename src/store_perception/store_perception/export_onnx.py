"""``export_detector_onnx``: the shipped (or given) .pt weights -> .onnx next to them.

Training-side tool (imports torch and ultralytics, needs the ``onnx`` package): run it after
training new weights, then ship the .onnx files with the .pt ones. Dynamic batch and image
size, no graph simplification, ultralytics' own exporter; the detector's ONNX path
(:mod:`store_perception.onnx_runtime`) reads the class names from the file's metadata.

``--int8 --calib-images DIR``: also an int8 sibling ``<stem>.int8.onnx`` of the full-frame
model's .onnx (the detector's ``runtime: onnx_int8``; ``INT8`` says why only that one), by ONNX
Runtime's static quantization (QDQ, weights int8 per channel, activations uint8, MinMax
calibration). The calibration inputs are what the stage really receives: the fp32 detector runs
on the images of DIR (training-side renders, never held-out ones: ``make_dataset --seed 5000
...``, DATA_CARD.md) and every graph input is recorded. Needs only onnxruntime and onnx.
"""
from __future__ import annotations

import argparse
import pathlib

from store_perception.detection import CROP_WEIGHTS, DEFAULT_WEIGHTS, MODELS_DIR
from store_perception.hand_sku import HAND_WEIGHTS

SHIPPED = ((DEFAULT_WEIGHTS, 'detect', 416), (CROP_WEIGHTS, 'detect', 224),
           (HAND_WEIGHTS, 'classify', 64))
# quantized by --int8: the full-frame model only. Int8 crop and hand stages (MinMax, Percentile
# or Entropy calibration) found 1.3-2.4x the false products in hands of fp32 on held-out frames
# for 4.5 ms a crop (models/DATA_CARD.md)
INT8 = (DEFAULT_WEIGHTS,)


def export(path: pathlib.Path, task: str, imgsz: int) -> pathlib.Path:
    """Export one .pt file; returns the .onnx path (same folder, same stem)."""
    from store_perception.yolo_offline import ultralytics_offline
    model = ultralytics_offline().YOLO(str(path), task=task)
    out = model.export(format='onnx', dynamic=True, simplify=False, imgsz=imgsz, device='cpu')
    return pathlib.Path(out)


def record_stage_inputs(images, models_dir: pathlib.Path) -> dict[str, list]:
    """{.onnx file name: [input feeds]} of the fp32 detector's three stages run on ``images``
    (BGR arrays), every shopper crop and hand window included."""
    from store_perception.detection import Detector
    det = Detector(str(models_dir / DEFAULT_WEIGHTS),
                   crop_model_path=str(models_dir / CROP_WEIGHTS),
                   hand_model_path=str(models_dir / HAND_WEIGHTS), runtime='onnx', threads=1,
                   conf=0.3)
    feeds: dict[str, list] = {}
    sessions = [det.model, det.crop_model, det.hand_model.onnx]
    for model in sessions:
        real = model.session.run
        name = model.path.name

        def run(outputs, feed, _real=real, _name=name):
            feeds.setdefault(_name, []).append({k: v.copy() for k, v in feed.items()})
            return _real(outputs, feed)
        model.session = _Recording(model.session, run)
    for img in images:
        det.detect_batch([img])
    return feeds


class _Recording:
    """An InferenceSession whose ``run`` records its feeds (everything else passes through)."""

    def __init__(self, session, run):
        self._session, self.run = session, run

    def __getattr__(self, name):
        return getattr(self._session, name)


def quantize_int8(onnx_file: pathlib.Path, feeds: list[dict]) -> pathlib.Path:
    """Static QDQ quantization of one .onnx with ``feeds`` as calibration data; returns
    ``<stem>.int8.onnx``."""
    import tempfile
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from store_perception.onnx_runtime import onnx_path

    if not feeds:
        raise ValueError(f'{onnx_file.name}: no calibration inputs (no image reached this stage)')

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    out = onnx_path(onnx_file, 'onnx_int8')
    exclude = float_tail(onnx_file)
    with tempfile.TemporaryDirectory() as tmp:
        pre = pathlib.Path(tmp) / 'pre.onnx'
        quant_pre_process(str(onnx_file), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
    _copy_metadata(onnx_file, out)
    return out


def float_tail(onnx_file: pathlib.Path) -> list[str]:
    """Nodes left in float: the detection head's decoding (everything of the last module
    outside its cv2/cv3 conv branches: box distribution, anchors, the output concat of pixel
    coordinates with 0..1 class scores, which one int8 scale cannot carry) and a classifier's
    final Gemm and Softmax."""
    import re
    import onnx
    graph = onnx.load(str(onnx_file), load_external_data=False).graph
    mods = [int(m.group(1)) for n in graph.node if (m := re.match(r'/model\.(\d+)/', n.name))]
    if not mods:
        return []
    head = f'/model.{max(mods)}/'
    tail = []
    for n in graph.node:
        if not n.name.startswith(head):
            continue
        branch = re.match(re.escape(head) + r'cv[23]\.\d+/', n.name)
        if n.op_type in ('Gemm', 'Softmax') or not branch:
            tail.append(n.name)
    return tail


def _copy_metadata(src: pathlib.Path, dst: pathlib.Path) -> None:
    """The class names and task (ultralytics' metadata) of ``src`` into ``dst``."""
    import onnx
    meta = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    model = onnx.load(str(dst))
    have = {p.key for p in model.metadata_props}
    for k, v in meta.items():
        if k not in have:
            model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(dst))


def read_images(folder: pathlib.Path, limit: int = 0) -> list:
    import cv2
    files = sorted(p for p in folder.rglob('*') if p.suffix.lower() in ('.jpg', '.jpeg', '.png'))
    if limit:
        files = files[:limit]
    images = [cv2.imread(str(p)) for p in files]
    bad = [str(p) for p, im in zip(files, images) if im is None]
    if bad:
        raise ValueError(f'unreadable calibration images: {bad[:3]}')
    if not images:
        raise ValueError(f'no calibration images (.jpg/.png) under {folder}')
    return images


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--models-dir', type=pathlib.Path, default=MODELS_DIR,
                    help='folder with the .pt weights (default: the package\'s models/)')
    ap.add_argument('--int8', action='store_true', help='also write <stem>.int8.onnx '
                    '(static quantization calibrated on --calib-images)')
    ap.add_argument('--calib-images', type=pathlib.Path, default=None,
                    help='training-side rendered frames (make_dataset output) for --int8')
    ap.add_argument('--calib-limit', type=int, default=0, help='use at most this many images')
    ap.add_argument('--skip-fp32', action='store_true', help='--int8 from the existing .onnx '
                    'files, without re-exporting them (no torch needed)')
    ap.add_argument('--only', nargs='+', metavar='PT', default=None,
                    choices=[name for name, _, _ in SHIPPED],
                    help='export only these shipped .pt files (default: all three), so a '
                    'retrained stage leaves the other stages\' .onnx files untouched')
    args = ap.parse_args(argv)
    if args.int8 and args.calib_images is None:
        ap.error('--int8 needs --calib-images')
    if not args.skip_fp32:
        _export_all(args.models_dir, args.only)
    if args.int8:
        feeds = record_stage_inputs(read_images(args.calib_images, args.calib_limit),
                                    args.models_dir)
        for name in INT8:
            onnx_file = (args.models_dir / name).with_suffix('.onnx')
            got = feeds.get(onnx_file.name, [])
            print(f'{onnx_file.name}: {len(got)} calibration inputs -> '
                  f'{quantize_int8(onnx_file, got)}')
    return 0


def _export_all(models_dir: pathlib.Path, only: list[str] | None = None) -> None:
    for name, task, imgsz in SHIPPED:
        if only is not None and name not in only:
            continue
        pt = models_dir / name
        if not pt.is_file():
            print(f'{pt}: missing, skipped')
            continue
        print(f'{pt} -> {export(pt, task, imgsz)}')


if __name__ == '__main__':
    raise SystemExit(main())
