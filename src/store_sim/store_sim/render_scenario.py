"""Render a scenario's camera videos and their ground truth.

    render_scenario --store config/stores/demo.yaml --scenario config/scenarios/demo.yaml \
        --out out/render [--fps 10] [--cameras cam1,cam2] [--lighting-variant 0] [--jobs 2]

Writes into ``--out``:

* ``<camera>.avi``: MJPG video (cv2.VideoCapture reads it), frame k at scenario time
  ``t0_s + k / fps``,
* ``<camera>.jsonl``: one line per frame, ``{"frame", "t_s", "boxes": [{"cls", "bbox":
  [x0, y0, x1, y1] px (x1, y1 exclusive), "visible", "pixels", "shopper_id", "side", "sku"}]}``,
* ``truth_3d.jsonl``: one line per frame, ``{"frame", "t_s", "shoppers": [{"id", "xy",
  "heading_rad", "height_m", "head", "hands": {"right", "left"}, "shoulders", "holding":
  {"right", "left"}, "reaching_plate"}]}`` in the store frame [m],
* ``render.json`` (written last: the render is complete): fps, t0_s, frame count, cameras,
  store, scenario, seed, lighting variant, classes.

The files of one camera are written under temporary names and renamed when complete, so a reader
never sees a half-written video. Never imports rclpy.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import cv2

from store_common.description import load_store, StoreConfigError

from store_sim.render import CameraRenderer, CLASSES
from store_sim.render_cache import render_key
from store_sim.scenario import load_scenario, ScenarioError

FOURCC = 'MJPG'


def frame_times(duration_s: float, fps: float, t0_s: float = 0.0) -> list[float]:
    n = int(math.floor((duration_s - t0_s) * fps + 1e-9)) + 1
    return [round(t0_s + k / fps, 6) for k in range(n)]


def render_camera(store_file: str, scenario_file: str, camera_id: str, out_dir: str, fps: float,
                  t0_s: float, t1_s: float, lighting_variant: int = 0, seed: int | None = None,
                  write_3d: bool = False, jpeg_quality: int = 90) -> dict:
    """Render one camera into ``out_dir``; returns a summary."""
    store = load_store(store_file)
    scenario = load_scenario(scenario_file, store)
    cam = store.camera(camera_id)
    out = pathlib.Path(out_dir)
    r = CameraRenderer(store, cam, scenario, seed=seed, lighting_variant=lighting_variant)
    video = out / f'{camera_id}.avi'
    tmp_video = out / f'.{camera_id}.tmp.avi'
    writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*FOURCC), fps,
                             (cam.width, cam.height))
    if not writer.isOpened():
        raise RuntimeError(f'cannot open a {FOURCC} video writer for {tmp_video}')
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, jpeg_quality)
    labels = out / f'{camera_id}.jsonl'
    tmp_labels = out / f'.{camera_id}.tmp.jsonl'
    truth = out / 'truth_3d.jsonl'
    tmp_truth = out / '.truth_3d.tmp.jsonl'
    start = time.monotonic()
    times = frame_times(t1_s, fps, t0_s)
    progress = out / f'.{camera_id}.progress'     # frames done, read by render_cache's progress
    with open(tmp_labels, 'w') as lf, (open(tmp_truth, 'w') if write_3d else _Null()) as tf:
        for k, t in enumerate(times):
            if k % 25 == 0:
                progress.write_text(str(k))
            img, boxes = r.render(t)
            writer.write(img)
            lf.write(json.dumps({'frame': k, 't_s': t, 'boxes': boxes}) + '\n')
            if write_3d:
                tf.write(json.dumps({'frame': k, 't_s': t, 'shoppers': r.truth_3d(t)}) + '\n')
    writer.release()
    os.replace(tmp_video, video)
    os.replace(tmp_labels, labels)
    if write_3d:
        os.replace(tmp_truth, truth)
    progress.unlink(missing_ok=True)
    return {'camera': camera_id, 'frames': len(times), 'seconds': time.monotonic() - start}


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, _text):
        pass


def render_scenario(store_file: str, scenario_file: str, out_dir: str, fps: float = 10.0,
                    cameras: list[str] | None = None, lighting_variant: int = 0,
                    seed: int | None = None, t0_s: float = 0.0, tail_s: float = 1.0,
                    jobs: int = 1, log=None, input_key: str | None = None) -> dict:
    """Render every (or the named) camera of the store; returns the ``render.json`` content.
    ``input_key`` (:func:`store_sim.render_cache.render_key`) is recorded in ``render.json``;
    computed here when not given."""
    store = load_store(store_file)
    scenario = load_scenario(scenario_file, store)
    ids = cameras or [c.id for c in store.cameras]
    for cid in ids:
        store.camera(cid)   # KeyError names an unknown camera
    if not ids:
        raise ValueError(f'store {store.id} has no cameras')
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'render.json').unlink(missing_ok=True)
    t1_s = scenario.duration_s + tail_s
    args = [(str(store_file), str(scenario_file), cid, str(out), fps, t0_s, t1_s,
             lighting_variant, seed, i == 0) for i, cid in enumerate(ids)]
    summaries = []
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for s in pool.map(_render_star, args):
                summaries.append(s)
                if log:
                    log(f'{s["camera"]}: {s["frames"]} frames in {s["seconds"]:.1f} s')
    else:
        for a in args:
            s = render_camera(*a)
            summaries.append(s)
            if log:
                log(f'{s["camera"]}: {s["frames"]} frames in {s["seconds"]:.1f} s')
    meta = {'store': store.id, 'store_file': str(pathlib.Path(store_file).resolve()),
            'scenario_file': str(pathlib.Path(scenario_file).resolve()),
            'seed': scenario.seed if seed is None else seed,
            'lighting_variant': lighting_variant, 'fps': fps, 't0_s': t0_s,
            'frames': summaries[0]['frames'], 'cameras': ids, 'classes': list(CLASSES),
            'video': {cid: f'{cid}.avi' for cid in ids},
            'time_base': 'frame k shows scenario time t0_s + k / fps',
            'input_key': input_key or render_key(store_file, scenario_file, fps, ids,
                                                 lighting_variant, seed, t0_s)}
    tmp = out / '.render.tmp.json'
    tmp.write_text(json.dumps(meta, indent=2) + '\n')
    os.replace(tmp, out / 'render.json')
    return meta


def _render_star(a):
    os.nice(0)
    return render_camera(*a)


def main(args=None) -> int:
    parser = argparse.ArgumentParser(prog='render_scenario', description=__doc__.split('\n')[0])
    parser.add_argument('--store', required=True, help='store description YAML')
    parser.add_argument('--scenario', required=True, help='scenario YAML or JSON')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--fps', type=float, default=10.0, help='frames per second [Hz]')
    parser.add_argument('--cameras', default='', help='comma-separated camera ids (default all)')
    parser.add_argument('--lighting-variant', type=int, default=0,
                        help='0: the store\'s standard lighting; N > 0: a random variant')
    parser.add_argument('--seed', type=int, default=None, help='default: the scenario seed')
    parser.add_argument('--t0', type=float, default=0.0, help='scenario time of frame 0 [s]')
    parser.add_argument('--jobs', type=int, default=1, help='cameras rendered in parallel')
    ns = parser.parse_args(args)
    try:
        meta = render_scenario(ns.store, ns.scenario, ns.out, ns.fps,
                               [c for c in ns.cameras.split(',') if c] or None,
                               ns.lighting_variant, ns.seed, ns.t0, jobs=ns.jobs,
                               log=lambda m: print(m, file=sys.stderr))
    except (StoreConfigError, ScenarioError, KeyError, ValueError) as exc:
        print(f'render_scenario: {exc}', file=sys.stderr)
        return 2
    print(f'{ns.out}: {len(meta["cameras"])} cameras x {meta["frames"]} frames at '
          f'{meta["fps"]:g} fps')
    return 0


if __name__ == '__main__':
    sys.exit(main())
