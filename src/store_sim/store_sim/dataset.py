"""A labelled YOLO dataset of rendered store frames.

    make_dataset --store config/stores/demo.yaml --out out/dataset --scenes 30 --seed 5000 \
        [--frames-per-camera 3] [--val-scenes 6] [--test] [--lighting-offset 0] [--jobs 2] \
        [--held-share 0.0]

Each scene is a generated scenario (``store_sim.generator``, levels 2-3, up to three shoppers at
once) rendered with its own lighting variant. Frames are drawn at random times, mostly while
shoppers are inside (a few of an empty store, as negatives), from every camera;
``--held-share`` draws that share of the frames instead at times when some shopper has a product
in hand (taking it, carrying it, putting it back), for more in-hand examples. Whole scenes go
to one split, so validation frames never share a scene with training frames. ``--test`` writes
only a ``test`` split: used with a different ``--seed`` and ``--lighting-offset`` it is the
held-out set of the data card.

Layout (ultralytics' YOLO format)::

    DIR/images/{train,val,test}/<scene>_<camera>_<k>.jpg
    DIR/labels/{train,val,test}/<scene>_<camera>_<k>.txt   # "class cx cy w h", normalised
    DIR/truth/<split>_<seed>.jsonl                          # full per-image truth (boxes + SKU)
    DIR/data.yaml                                           # path, splits, class names

Classes: 0 shopper (the whole person, hands included), 1 hand, 2 product (a product unit in a
shopper's hand; the SKU is in ``truth/*.jsonl``). Never imports rclpy.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np
import yaml

from store_common.description import load_store, StoreConfigError

from store_sim.generator import generate
from store_sim.render import CameraRenderer, CLASSES


def yolo_lines(boxes: list[dict], width: int, height: int) -> list[str]:
    out = []
    for b in boxes:
        x0, y0, x1, y1 = b['bbox']
        out.append(f'{CLASSES.index(b["cls"])} {(x0 + x1) / 2 / width:.6f} '
                   f'{(y0 + y1) / 2 / height:.6f} {(x1 - x0) / width:.6f} '
                   f'{(y1 - y0) / height:.6f}')
    return out


def held_times(motions, duration_s: float, step_s: float = 0.1) -> list[float]:
    """Times (on a step_s grid) when some present shopper has a product in a hand."""
    out = []
    for t in np.arange(0.0, duration_s, step_s):
        t = float(t)
        if any(m.present(t) and any(m.holding(t)[:2]) for m in motions):
            out.append(round(t, 3))
    return out


def sample_times(scenario, rng: np.random.Generator, n: int, empty_share: float = 0.08,
                 held: list[float] | None = None, held_share: float = 0.0):
    """Scenario times to render: mostly with shoppers inside (half of those around reaches).

    With ``held`` times (see ``held_times``) and ``held_share`` > 0, that share of the frames is
    drawn from them instead (jittered by up to 0.05 s)."""
    inside = [(s.enter_s, s.exit_s) for s in scenario.shoppers]
    reaches = [a.t_s for s in scenario.shoppers for a in s.actions]
    out = []
    for _ in range(n):
        if held and held_share > 0 and rng.random() < held_share:
            out.append(float(held[int(rng.integers(len(held)))] + rng.uniform(-0.05, 0.05)))
            continue
        r = rng.random()
        if r < empty_share or not inside:
            first = min((a for a, _ in inside), default=scenario.duration_s)
            out.append(float(rng.uniform(0, max(first, 0.2))))
        elif r < 0.55 and reaches:
            out.append(float(reaches[int(rng.integers(len(reaches)))] - rng.uniform(0, 1.4)))
        else:
            a, b = inside[int(rng.integers(len(inside)))]
            out.append(float(rng.uniform(a, b)))
    return sorted(out)


def render_scene(store_file: str, out_dir: str, split: str, scene_seed: int,
                 lighting_variant: int, frames_per_camera: int,
                 held_share: float = 0.0) -> list[dict]:
    store = load_store(store_file)
    level = 2 + scene_seed % 2
    scenario = generate(store, scene_seed, level, max_concurrent=3)
    rng = np.random.default_rng([scene_seed, 0xDA7A])
    out = pathlib.Path(out_dir)
    records = []
    held = None
    for cam in store.cameras:
        r = CameraRenderer(store, cam, scenario, seed=scene_seed,
                           lighting_variant=lighting_variant)
        if held_share > 0 and held is None:     # the same for every camera
            held = held_times(r.shoppers, scenario.duration_s)
        for k, t in enumerate(sample_times(scenario, rng, frames_per_camera,
                                           held=held, held_share=held_share)):
            img, boxes = r.render(t)
            name = f's{scene_seed}_{cam.id}_{k}'
            quality = int(rng.integers(70, 96))
            cv2.imwrite(str(out / 'images' / split / f'{name}.jpg'), img,
                        [cv2.IMWRITE_JPEG_QUALITY, quality])
            (out / 'labels' / split / f'{name}.txt').write_text(
                '\n'.join(yolo_lines(boxes, cam.width, cam.height)) + ('\n' if boxes else ''))
            records.append({'image': f'images/{split}/{name}.jpg', 'camera': cam.id,
                            'scene_seed': scene_seed, 'lighting_variant': lighting_variant,
                            't_s': round(t, 3), 'boxes': boxes,
                            'shoppers': r.truth_3d(t)})
    return records


def make_dataset(store_file: str, out_dir: str, scenes: int, seed: int,
                 frames_per_camera: int = 3, val_scenes: int = 0, test: bool = False,
                 lighting_offset: int = 0, jobs: int = 1, log=None,
                 held_share: float = 0.0) -> dict:
    if not 0.0 <= held_share <= 1.0:
        raise ValueError(f'held_share must be in [0, 1], not {held_share}')
    out = pathlib.Path(out_dir)
    splits = ['test'] if test else ['train', 'val']
    for sp in splits:
        (out / 'images' / sp).mkdir(parents=True, exist_ok=True)
        (out / 'labels' / sp).mkdir(parents=True, exist_ok=True)
    (out / 'truth').mkdir(parents=True, exist_ok=True)
    jobs_args = []
    for i in range(scenes):
        split = 'test' if test else ('val' if i >= scenes - val_scenes else 'train')
        jobs_args.append((str(store_file), str(out), split, seed + i,
                          lighting_offset + i + 1, frames_per_camera, held_share))
    by_split: dict[str, list[dict]] = {sp: [] for sp in splits}
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for args, records in zip(jobs_args, pool.map(_scene_star, jobs_args)):
            by_split[args[2]].extend(records)
            if log:
                log(f'scene {args[3]} ({args[2]}, lighting {args[4]}): {len(records)} images')
    counts = {}
    for sp, records in by_split.items():
        with open(out / 'truth' / f'{sp}_{seed}.jsonl', 'w') as f:
            for rec in records:
                f.write(json.dumps(rec) + '\n')
        counts[sp] = {'images': len(records),
                      **{c: sum(1 for r in records for b in r['boxes'] if b['cls'] == c)
                         for c in CLASSES}}
    data = {'path': str(out.resolve()), 'names': dict(enumerate(CLASSES))}
    data_file = out / 'data.yaml'
    if data_file.exists():
        old = yaml.safe_load(data_file.read_text()) or {}
        data.update({k: v for k, v in old.items() if k in ('train', 'val', 'test')})
    for sp in splits:
        data[sp] = f'images/{sp}'
    for sp in ('train', 'val'):        # ultralytics wants both keys, even in a test-only set
        data.setdefault(sp, f'images/{splits[0]}')
    data_file.write_text(yaml.safe_dump(data, sort_keys=False))
    return counts


def _scene_star(args):
    return render_scene(*args)


def main(args=None) -> int:
    parser = argparse.ArgumentParser(prog='make_dataset', description=__doc__.split('\n')[0])
    parser.add_argument('--store', required=True, help='store description YAML')
    parser.add_argument('--out', required=True, help='dataset directory')
    parser.add_argument('--scenes', type=int, default=30, help='generated scenarios')
    parser.add_argument('--seed', type=int, default=5000, help='seed of the first scene')
    parser.add_argument('--frames-per-camera', type=int, default=3,
                        help='frames drawn from each camera of each scene')
    parser.add_argument('--val-scenes', type=int, default=6,
                        help='the last N scenes form the val split')
    parser.add_argument('--test', action='store_true', help='write only a held-out test split')
    parser.add_argument('--lighting-offset', type=int, default=0,
                        help='lighting variant of scene i is offset + i + 1')
    parser.add_argument('--jobs', type=int, default=1, help='scenes rendered in parallel')
    parser.add_argument('--held-share', type=float, default=0.0,
                        help='share of the frames drawn while a shopper holds a product')
    ns = parser.parse_args(args)
    try:
        counts = make_dataset(ns.store, ns.out, ns.scenes, ns.seed, ns.frames_per_camera,
                              ns.val_scenes, ns.test, ns.lighting_offset, ns.jobs,
                              log=lambda m: print(m, file=sys.stderr),
                              held_share=ns.held_share)
    except (StoreConfigError, ValueError) as exc:
        print(f'make_dataset: {exc}', file=sys.stderr)
        return 2
    for sp, c in counts.items():
        print(f'{sp}: ' + ', '.join(f'{k} {v}' for k, v in c.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
