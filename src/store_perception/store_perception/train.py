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

Fine-tuning the hand SKU classifier on reviewed hand windows (``store_review.export``'s
``export_hand_windows``, or any folder dataset of ``empty`` and SKU classes) is
:func:`fine_tune_hand_classifier` (``fine_tune_hand --data DIR --out DIR``, or ``review_learn
--hands DIR --fine-tune DIR``). It does not use ultralytics' trainer: that renumbers the classes
from the dataset's folders, so a dataset of the few SKUs the reviewers saw would replace the
shipped head's 24 classes with those few. Instead a short plain torch loop keeps every shipped
class (and appends SKUs the shipped model never saw, their head rows starting at zero), trains
with the BatchNorm statistics frozen (a few hundred windows must not re-estimate them) at a low
learning rate, and weighs the loss of empty and product windows to the shipped training's
balance (``EMPTY_SHARE``), so the prior's odds correction (``odds_scale``) stays right whatever
the mix of the reviewed windows. It writes
``store_hand_sku.pt`` in ultralytics' checkpoint layout (``HandSkuClassifier`` and
``export_detector_onnx`` load it), the shipped prior next to it, and the ONNX export; never
over the shipped files.
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


# share of empty windows in the shipped classifier's training set (models/DATA_CARD.md: 3383
# empty and 898 x 3 product windows); fine-tuning keeps this balance of the loss, so the
# prior's odds correction (odds_scale) still holds whatever the reviewed windows' mix
EMPTY_SHARE = 3383 / (3383 + 3 * 898)


def _load_windows(folder: pathlib.Path, size: int):
    """(uint8 RGB windows (N, size, size, 3), class names per window) of a class-folder split."""
    import cv2
    import numpy as np
    images, labels = [], []
    for cls in sorted(p for p in folder.glob('*') if p.is_dir()):
        for f in sorted(cls.glob('*.jpg')) + sorted(cls.glob('*.png')):
            img = cv2.imread(str(f))
            if img is None:
                continue
            if img.shape[:2] != (size, size):
                img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
            images.append(img[..., ::-1])
            labels.append(cls.name)
    arr = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return arr, labels


def _augment(batch, rng):
    """Flips, a brightness/contrast gain per window and shifts of up to 1/16 of the side: the
    light augmentation of the shipped training (no erasing: it would erase the product)."""
    import numpy as np
    out = batch.astype(np.float32)
    n, s = out.shape[0], out.shape[1]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    gain = rng.uniform(0.7, 1.3, (n, 1, 1, 1)).astype(np.float32)
    out = np.clip(out * gain, 0, 255)
    m = max(1, s // 16)
    for i in range(n):
        dx, dy = (int(v) for v in rng.integers(-m, m + 1, 2))
        out[i] = np.roll(out[i], (dy, dx), axis=(0, 1))
    return out


def fine_tune_hand_classifier(data: str | pathlib.Path, out: str | pathlib.Path,
                              base: str | pathlib.Path | None = None, epochs: int = 3,
                              batch: int = 32, lr: float = 2e-4, size: int | None = None,
                              seed: int = 0, threads: int = 0, onnx: bool = True,
                              use_val: bool = False, empty_share: float | None = EMPTY_SHARE,
                              head_only: bool = False, log=None) -> pathlib.Path:
    """Fine-tune the hand SKU classifier ``base`` (default: the shipped one) on the class
    folders ``data/train`` (and ``data/val`` with ``use_val``); write ``out/store_hand_sku.pt``,
    the base's prior beside it and, with ``onnx``, its ONNX export. Returns the .pt path
    (module doc: why not ultralytics' trainer)."""
    import copy
    import datetime

    import numpy as np
    import torch

    from store_perception.detection import MODELS_DIR, resolve_model_path
    from store_perception.hand_sku import EMPTY, HAND_PRIOR, HAND_WEIGHTS, HandPrior
    base_path = resolve_model_path(str(base) if base else None, HAND_WEIGHTS)
    out_dir = pathlib.Path(out).resolve()
    dst = out_dir / HAND_WEIGHTS
    shipped = {pathlib.Path(MODELS_DIR).resolve(), base_path.resolve().parent}
    if out_dir in shipped:
        raise ValueError(f'{out_dir}: would overwrite the weights fine-tuned from '
                         f'({base_path}); give another directory')
    _ultralytics(out_dir)                     # offline settings before ultralytics loads
    ckpt = torch.load(base_path, map_location='cpu', weights_only=False)
    model = (ckpt.get('ema') or ckpt['model']).float()
    names = {int(k): str(v) for k, v in model.names.items()}
    if EMPTY not in names.values():
        raise ValueError(f'{base_path}: not a hand SKU classifier (no "{EMPTY}" class)')
    imgsz = int(size or (ckpt.get('train_args') or {}).get('imgsz') or 64)
    root = pathlib.Path(data)
    x, labels = _load_windows(root / 'train', imgsz)
    if use_val and (root / 'val').is_dir():
        xv, lv = _load_windows(root / 'val', imgsz)
        x, labels = np.concatenate([x, xv]), labels + lv
    if not labels:
        raise ValueError(f'{root}: no training windows (class folders under train/)')
    # every shipped class keeps its index; SKUs new to the model get new head rows
    index = {v: k for k, v in names.items()}
    head = model.model[-1].linear
    new = sorted(set(labels) - set(index))
    if new:
        grown = torch.nn.Linear(head.in_features, head.out_features + len(new))
        with torch.no_grad():
            grown.weight.zero_()
            grown.bias.fill_(float(head.bias.min()))
            grown.weight[:head.out_features] = head.weight
            grown.bias[:head.out_features] = head.bias
        model.model[-1].linear = grown
        for name in new:
            index[name] = len(names)
            names[len(names)] = name
        model.names = dict(names)
        if isinstance(getattr(model, 'yaml', None), dict):
            model.yaml['nc'] = len(names)
    y = torch.tensor([index[v] for v in labels], dtype=torch.long)
    prior = HandPrior.load(base_path.with_name(HAND_PRIOR))
    is_empty = y == index[EMPTY]
    n_empty, n_product = int(is_empty.sum()), int((~is_empty).sum())
    if empty_share is not None and n_empty and n_product:
        # the loss mass of empty vs product windows as in the shipped training
        w = torch.where(is_empty, empty_share / n_empty, (1.0 - empty_share) / n_product)
    else:
        w = torch.where(is_empty, 1.0, 1.0 / max(prior.odds_scale, 1e-6))
    sample_w = (w / w.mean()).float()
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.requires_grad_(not head_only)
    for p in model.model[-1].parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(reduction='none')
    model.train()
    for m in model.modules():                 # frozen BatchNorm statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    for epoch in range(epochs):
        order = rng.permutation(len(y))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            xb = torch.from_numpy(_augment(x[idx], rng)).permute(0, 3, 1, 2) / 255.0
            loss = (loss_fn(model(xb.contiguous()), y[idx]) * sample_w[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if log:
            log(f'epoch {epoch + 1}/{epochs}: loss {total / len(y):.4f} on {len(y)} windows')
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = copy.deepcopy(model).half()
    for p in saved.parameters():
        p.requires_grad_(False)
    train_args = dict(ckpt.get('train_args') or {})
    train_args.update({'imgsz': imgsz, 'data': str(root), 'epochs': epochs,
                       'model': str(base_path), 'task': 'classify'})
    torch.save({'date': datetime.datetime.now().isoformat(), 'version': ckpt.get('version'),
                'license': ckpt.get('license'), 'docs': ckpt.get('docs'), 'epoch': -1,
                'best_fitness': None, 'model': saved, 'ema': None, 'updates': None,
                'optimizer': None, 'train_args': train_args,
                'train_metrics': {}, 'train_results': {}}, dst)
    prior.save(dst.with_name(HAND_PRIOR))
    if onnx:
        from store_perception.export_onnx import export
        export(dst, 'classify', imgsz)
    return dst


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
