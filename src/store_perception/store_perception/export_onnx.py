"""``export_detector_onnx``: the shipped (or given) .pt weights -> .onnx next to them.

Training-side tool (imports torch and ultralytics, needs the ``onnx`` package): run it after
training new weights, then ship the .onnx files with the .pt ones. Dynamic batch and image
size, no graph simplification, ultralytics' own exporter; the detector's ONNX path
(:mod:`store_perception.onnx_runtime`) reads the class names from the file's metadata.
"""
from __future__ import annotations

import argparse
import pathlib

from store_perception.detection import CROP_WEIGHTS, DEFAULT_WEIGHTS, MODELS_DIR
from store_perception.hand_sku import HAND_WEIGHTS

SHIPPED = ((DEFAULT_WEIGHTS, 'detect', 416), (CROP_WEIGHTS, 'detect', 224),
           (HAND_WEIGHTS, 'classify', 64))


def export(path: pathlib.Path, task: str, imgsz: int) -> pathlib.Path:
    """Export one .pt file; returns the .onnx path (same folder, same stem)."""
    from store_perception.yolo_offline import ultralytics_offline
    model = ultralytics_offline().YOLO(str(path), task=task)
    out = model.export(format='onnx', dynamic=True, simplify=False, imgsz=imgsz, device='cpu')
    return pathlib.Path(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--models-dir', type=pathlib.Path, default=MODELS_DIR,
                    help='folder with the .pt weights (default: the package\'s models/)')
    args = ap.parse_args(argv)
    for name, task, imgsz in SHIPPED:
        pt = args.models_dir / name
        if not pt.is_file():
            print(f'{pt}: missing, skipped')
            continue
        print(f'{pt} -> {export(pt, task, imgsz)}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
