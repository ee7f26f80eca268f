"""Train the store detector with ultralytics, from scratch or from our own earlier weights.

    train_detector --data out/dataset/data.yaml --out out/train [--model yolov8n.yaml] \
        [--imgsz 416] [--epochs 30] [--batch 16] [--device cpu] [--workers 2] [--threads 0] \
        [--mosaic 1.0] [--scale 0.4] [--cache] [--warmup-epochs N] \
        [--install src/store_perception/models/store_yolo.pt]

The same command trains the second-stage crop model (hands and products on crops around
shoppers) on the dataset of ``make_crop_dataset`` (:mod:`store_perception.datasets`), e.g.
``--imgsz 224 --scale 0.2 --workers 0 --threads 1 --cache``; see models/DATA_CARD.md.

It also trains the third-stage hand SKU classifier (:mod:`store_perception.hand_sku`) on the
folder dataset of ``make_hand_dataset``: ``--model yolov8n-cls.yaml --imgsz 64 --scale 0.15``
(a ``-cls`` model takes a dataset directory as ``--data``; random erasing stays light there, it
would erase the product that decides the class).

The model is built from an ultralytics model YAML (``yolov8n.yaml``, ``yolo11n.yaml``: the
architecture only), so nothing is downloaded; ``--model`` given as a ``.pt`` (weights trained
here, e.g. the shipped ``store_yolo_crops.pt``) fine-tunes them instead (``--warmup-epochs 0``
then: ultralytics' warm-up starts the biases at learning rate 0.1); ultralytics is kept offline
(:mod:`store_perception.yolo_offline`). CPU by default (``--device 0`` uses a GPU where
present). ``--install`` copies the best weights, stripped of the optimizer state, to the given
path. Run it niced on a shared machine: ``nice -n 10 train_detector ...``.
"""
from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import time


def train(data: str, out: str, model: str = 'yolov8n.yaml', imgsz: int = 416, epochs: int = 30,
          batch: int = 16, device: str = 'cpu', workers: int = 2, seed: int = 0,
          name: str = 'detector', patience: int = 100, fraction: float = 1.0,
          mosaic: float = 1.0, scale: float = 0.4, threads: int = 0,
          cache: bool = False, warmup_epochs: float | None = None) -> pathlib.Path:
    """Train; returns the path of the best weights. ``threads`` > 0 caps torch's CPU threads
    (ultralytics otherwise uses up to 8). A ``model`` ending in .pt is fine-tuned from its
    weights (a .yaml starts from scratch). ``warmup_epochs`` None: min(3, max(0.5, epochs / 10));
    0 (no warm-up) for fine-tuning: the warm-up starts the biases at learning rate 0.1.
    """
    if warmup_epochs is None:
        warmup_epochs = min(3.0, max(0.5, epochs / 10))
    out_dir = pathlib.Path(out).resolve()
    ul = _ultralytics(out_dir)
    if threads > 0:
        _cap_threads(threads)
    yolo = ul.YOLO(model)
    pretrained = str(model).endswith('.pt')
    extra = {'erasing': 0.1} if yolo.task == 'classify' else {}
    yolo.train(data=str(pathlib.Path(data).resolve()), imgsz=imgsz, epochs=epochs, batch=batch,
               device=device, workers=workers, seed=seed, project=str(out_dir), name=name,
               exist_ok=True, pretrained=pretrained, amp=device != 'cpu', plots=False,
               patience=patience, fraction=fraction, verbose=False, deterministic=False,
               warmup_epochs=warmup_epochs, close_mosaic=max(1, epochs // 6),
               hsv_v=0.5, degrees=0.0, fliplr=0.5, mosaic=mosaic, scale=scale,
               cache='ram' if cache else False, **extra)
    best = out_dir / name / 'weights' / 'best.pt'
    if not best.exists():
        best = out_dir / name / 'weights' / 'last.pt'
    return best


def _cap_threads(n: int) -> None:
    """torch threads = n, also after ultralytics' select_device resets them for CPU training."""
    import torch
    import ultralytics.utils.torch_utils as tu
    torch.set_num_threads(n)
    tu.NUM_THREADS = n


def _ultralytics(out_dir: pathlib.Path):
    from store_perception.yolo_offline import ultralytics_offline
    return ultralytics_offline(out_dir / 'ultralytics-config')


def main(args=None) -> int:
    p = argparse.ArgumentParser(prog='train_detector', description=__doc__.split('\n')[0])
    p.add_argument('--data', required=True,
                   help='YOLO data.yaml (make_dataset), or a classifier dataset directory')
    p.add_argument('--out', required=True, help='training runs directory')
    p.add_argument('--model', default='yolov8n.yaml', help='ultralytics model YAML')
    p.add_argument('--imgsz', type=int, default=416, help='training image size [px]')
    p.add_argument('--epochs', type=int, default=30)
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--device', default='cpu', help="'cpu' or a CUDA device index such as 0")
    p.add_argument('--workers', type=int, default=2, help='data loader processes')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=0,
                   help='torch CPU threads (0: ultralytics decides, up to 8)')
    p.add_argument('--mosaic', type=float, default=1.0, help='mosaic augmentation probability')
    p.add_argument('--scale', type=float, default=0.4, help='random scale gain (+/-)')
    p.add_argument('--cache', action='store_true', help='cache decoded images in RAM')
    p.add_argument('--warmup-epochs', type=float, default=None,
                   help='learning-rate warm-up (default min(3, max(0.5, epochs / 10)); 0 to '
                        'fine-tune from trained weights given as --model)')
    p.add_argument('--name', default='detector', help='run name under --out')
    p.add_argument('--install', default='', help='copy the best weights here')
    ns = p.parse_args(args)
    start = time.monotonic()
    best = train(ns.data, ns.out, ns.model, ns.imgsz, ns.epochs, ns.batch, ns.device,
                 ns.workers, ns.seed, ns.name, mosaic=ns.mosaic, scale=ns.scale,
                 threads=ns.threads, cache=ns.cache, warmup_epochs=ns.warmup_epochs)
    print(f'best weights: {best} ({best.stat().st_size / 1e6:.1f} MB) after '
          f'{(time.monotonic() - start) / 60:.1f} min')
    if ns.install:
        dst = pathlib.Path(ns.install)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, dst)
        print(f'installed {dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
