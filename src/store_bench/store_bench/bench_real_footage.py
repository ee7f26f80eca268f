"""People on real footage and on held-out renders: the shipped YOLO against the pose backend.

    bench_real_footage [--backends yolo,pose,pose-stream,people,people-stream,hog]
        [--labels tests/data/real/vtest_labels.json] [--video PATH]
        [--heldout out/perception/heldout] [--skip-rendered] [--fps-frames 150]
        [--pose-threads 2] [--pose-windows-per-frame 2]

Prints one table, a row per backend and domain:

* real: the labelled frames of ``vtest.avi`` (Debian's opencv-doc; people walking in a hall,
  elevated camera, 768x576; labels and how they were made: tests/data/real/README.md):
  person recall and precision at IoU 0.5 at the backend's operating score (people under 40 px
  high are ignore regions, :mod:`store_bench.real_eval`), recall of fully visible people,
  wrist error of matched people (median [px], share within 10 % of the person's height);
* rendered: the held-out rendered split (``make_dataset --test``, seeds 90000-90003, lighting
  501-504; made when missing, as bench_detector does), shopper boxes only;
* speed: frames/s at 640x480 (the clip's first frames resized), one frame at a time as the node
  runs it, after a warm-up: wall clock (depends on the machine's load) and CPU ms per frame of
  this process (all its threads: torch's for YOLO, ``--pose-threads`` LiteRT threads).

Backends: ``yolo`` the shipped full-frame store_yolo.pt (shopper boxes; its crop and hand
stages do not change them), conf 0.3 as config/params/store.yaml; ``pose`` BlazePose on tiles,
every frame on its own (:mod:`store_perception.pose_backend`); ``pose-stream`` the same as the
detector node runs it on a camera stream (people followed from frame to frame,
``--pose-windows-per-frame`` detector windows a frame; run over the whole clip up to each
labelled frame); ``people`` CenterNet people + BlazePose keypoints per person, every frame on
its own (:mod:`store_perception.people_backend`; model made by tools/setup_models.sh);
``people-stream`` the same as the detector node runs it with ``backend: people`` (landmarks of
at most ``landmarks_per_frame`` people a frame, the others' keypoints moved with their boxes;
run over the whole clip up to each labelled frame); ``hog`` OpenCV's HOG people detector (a
floor).
"""
from __future__ import annotations

import argparse
import math
import pathlib
import subprocess
import sys
import time

import cv2
import numpy as np

from store_bench.paths import root_or_exit

FPS_SIZE = (640, 480)


def video_frames(video: str, wanted=None, size=None, limit=None):
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f'cannot open {video}: apt-get install opencv-doc (Debian)')
    i = 0
    while limit is None or i < limit:
        ok, frame = cap.read()
        if not ok:
            break
        if wanted is None or i in wanted:
            if size is not None:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            yield i, frame
        i += 1


# --- backends: each gives a callable image -> [Prediction] and a stream flag ------------------
class Yolo:
    name = 'yolo'
    score_min = 0.3

    def __init__(self):
        from store_perception.detection import Detector
        self.det = Detector(None, imgsz=416, conf=0.01, device='cpu')

    def __call__(self, img, stream=False):
        from store_bench.real_eval import Prediction
        dets, _ = self.det.detect(img)
        return [Prediction((d.x0, d.y0, d.x1, d.y1), d.score) for d in dets
                if d.class_name == 'shopper']


class Pose:
    name = 'pose'
    score_min = 0.3

    def __init__(self, stream: bool, threads: int = 2, windows_per_frame: int = 2):
        from store_perception.pose_backend import PoseDetector, PoseParams
        self.stream = stream
        self.name = 'pose-stream' if stream else 'pose'
        self.det = PoseDetector(PoseParams(threads=threads), conf=0.05,
                                windows_per_frame=windows_per_frame)

    def reset(self):
        self.det.trackers.clear()

    def __call__(self, img, stream=False):
        from store_bench.real_eval import Prediction
        self.det.detect(img, stream='cam' if self.stream else None)
        out = []
        for q in self.det.last_people:
            wr = [q.wrist(s)[0] for s in ('left', 'right')]
            out.append(Prediction(tuple(q.box), q.score, wr))
        return out


class People:
    score_min = 0.3         # the node's conf_threshold (config/params/store.yaml)

    def __init__(self, stream: bool, threads: int = 2):
        from store_perception.people_backend import PeopleDetector, PeopleParams
        self.stream = stream
        self.name = 'people-stream' if stream else 'people'
        self.det = PeopleDetector(PeopleParams(threads=threads), conf=self.score_min)

    def reset(self):
        self.det.trackers.clear()

    def __call__(self, img, stream=False):
        from store_perception.people_backend import has_keypoints
        from store_bench.real_eval import Prediction
        self.det.detect(img, stream='cam' if self.stream else None)
        return [Prediction(tuple(q.box), q.score,
                           [q.wrist(s)[0] for s in ('left', 'right')] if has_keypoints(q)
                           else []) for q in self.det.last_people]


class Hog:
    name = 'hog'
    score_min = 0.3

    def __init__(self):
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, img, stream=False):
        from store_bench.real_eval import Prediction
        rects, weights = self.hog.detectMultiScale(img, winStride=(8, 8), padding=(8, 8),
                                                   scale=1.05)
        out = []
        for (x, y, w, h), s in zip(rects, np.ravel(weights)):
            # the 64x128 window holds the person in about its middle 50x100 (HOG's training)
            out.append(Prediction((x + 0.12 * w, y + 0.1 * h, x + 0.88 * w, y + 0.9 * h),
                                  float(1.0 / (1.0 + math.exp(-float(s))))))
        return out


def make(name: str, threads: int = 2, windows_per_frame: int = 2):
    if name == 'yolo':
        return Yolo()
    if name == 'pose':
        return Pose(False, threads, windows_per_frame)
    if name == 'pose-stream':
        return Pose(True, threads, windows_per_frame)
    if name in ('people', 'people-stream'):
        return People(name == 'people-stream', threads)
    if name == 'hog':
        return Hog()
    raise SystemExit(f'unknown backend {name!r}')


# --- measurements -----------------------------------------------------------------------------
def real(backend, video: str, labels) -> dict:
    from store_bench.real_eval import Counts, match_frame, summary
    by_index = {f.index: f for f in labels}
    total = Counts()
    stream = getattr(backend, 'stream', False)
    if stream:
        backend.reset()
    wanted = None if stream else set(by_index)
    last = max(by_index)
    for i, frame in video_frames(video, wanted, limit=last + 1):
        preds = backend(frame)
        if i in by_index:
            total.add(match_frame(by_index[i].people, preds, backend.score_min))
    return summary(total)


def rendered(backend, heldout: pathlib.Path, store: pathlib.Path) -> dict:
    from store_bench.evaluate import load_truth
    from store_bench.real_eval import Counts, match_frame, summary
    if not (heldout / 'data.yaml').exists():
        print(f'making the held-out rendered set in {heldout} (minutes)', flush=True)
        subprocess.run([sys.executable, '-m', 'store_sim.dataset', '--store', str(store),
                        '--out', str(heldout), '--scenes', '4', '--seed', '90000', '--test',
                        '--lighting-offset', '500', '--frames-per-camera', '3', '--jobs', '2'],
                       check=True)
    total = Counts()
    for rec in load_truth(heldout, 'test'):
        img = cv2.imread(rec['image'])
        if img is None:
            raise SystemExit(f'cannot read {rec["image"]}')
        if getattr(backend, 'stream', False):
            backend.reset()         # stills: no stream to follow
        labels = [{'box': list(b['bbox'])} for b in rec['boxes'] if b['cls'] == 'shopper']
        total.add(match_frame(labels, backend(img), backend.score_min, min_height_px=0.0))
    return summary(total)


def speed(backend, video: str, n: int) -> tuple[float, float]:
    """(frames/s wall, CPU ms per frame) at 640x480 on the clip's first n frames."""
    frames = [f for _, f in video_frames(video, size=FPS_SIZE, limit=n + 5)]
    if getattr(backend, 'stream', False):
        backend.reset()
    for f in frames[:5]:
        backend(f)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for f in frames[5:]:
        backend(f)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    k = max(1, len(frames) - 5)
    return k / wall, cpu * 1000 / k


def fmt(v, spec='.3f') -> str:
    return 'n/a' if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def main(argv=None) -> int:
    root = root_or_exit()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--backends', default='yolo,pose,pose-stream,people,people-stream,hog')
    ap.add_argument('--labels', default=str(root / 'tests' / 'data' / 'real' /
                                            'vtest_labels.json'))
    ap.add_argument('--video', default=None, help='default: the labels file\'s video_path')
    ap.add_argument('--heldout', default=str(root / 'out' / 'perception' / 'heldout'))
    ap.add_argument('--skip-rendered', action='store_true')
    ap.add_argument('--fps-frames', type=int, default=150)
    ap.add_argument('--pose-threads', type=int, default=2,
                    help='threads per model (LiteRT, ONNX Runtime), as the node\'s pose_threads')
    ap.add_argument('--pose-windows-per-frame', type=int, default=2)
    a = ap.parse_args(argv)
    from store_bench.real_eval import load_labels
    header, labels = load_labels(a.labels)
    video = a.video or header['video_path']
    n_people = sum(len(f.people) for f in labels)
    print(f'real: {len(labels)} labelled frames of {video} ({n_people} people labelled); '
          f'rendered: {a.heldout}\n', flush=True)
    print('| backend | score >= | real recall | real precision | real recall (fully visible) '
          '| real people found | wrist median [px] (measured/labelled) | wrists within 10 % '
          'of height | rendered recall | rendered precision | frames/s 640x480 (wall) '
          '| CPU ms/frame |', flush=True)
    print('|---|---|---|---|---|---|---|---|---|---|---|---|', flush=True)
    for name in a.backends.split(','):
        try:
            b = make(name.strip(), a.pose_threads, a.pose_windows_per_frame)
        except AttributeError as exc:       # e.g. OpenCV 5 without HOGDescriptor
            print(f'| {name} | skipped: {exc} |', flush=True)
            continue
        r = real(b, video, labels)
        g = None
        if not a.skip_rendered and name != 'hog':
            g = rendered(b, pathlib.Path(a.heldout), root / 'config' / 'stores' / 'demo.yaml')
        fps, cpu_ms = speed(b, video, a.fps_frames)
        print(f'| {b.name} | {b.score_min} | {fmt(r["recall"])} | {fmt(r["precision"])} | '
              f'{fmt(r["recall_visible"])} | {r["hits"]}/{r["people"]} | '
              f'{fmt(r["wrist_median_px"], ".1f")} ({r["wrists_measured"]}/'
              f'{r["wrists_labelled"]}) | {fmt(r["wrist_within_10pct"])} | '
              f'{fmt(g and g["recall"])} | {fmt(g and g["precision"])} | {fps:.1f} | '
              f'{cpu_ms:.0f} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
