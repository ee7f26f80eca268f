"""Help label people (boxes, wrists) on frames of a real video; see tests/data/real/README.md.

  propose  pick frames spread over the clip; write each as PNG with proposals drawn (pose
           backend in green, motion blobs from background subtraction in yellow, numbered)
           and a JSON of the proposals: the starting point of the labels, never the labels
  render   draw a labels JSON on its frames (white boxes, red wrists), optionally 3x zoomed
           crops of each box with a 5 px grid, to check and correct every label by eye
  jpeg     write the frames named in a labels JSON as JPEG (for the repository's test)

Labels JSON: {"video": ..., "frames": [{"index": i, "people": [{"box": [x0, y0, x1, y1],
"wrists": [[x, y], ...] or null (not labelled), "note": ...}]}]} in pixels of the video's own
resolution; "wrists": [] means labelled, none visible.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import cv2
import numpy as np

VTEST = '/usr/share/doc/opencv-doc/examples/data/vtest.avi'


def read_frames(video: str, wanted: set[int] | None = None):
    """Yield (index, BGR frame) of the video (only ``wanted`` indices when given)."""
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f'cannot open {video} (Debian: apt-get install opencv-doc)')
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if wanted is None or i in wanted:
            yield i, frame
        i += 1


def motion_boxes(video: str, wanted: set[int], min_area_px: int = 250) -> dict[int, list]:
    """Foreground blobs (MOG2 background subtraction over the clip, shadows removed) of the
    wanted frames: person-shaped motion, independent of any person model."""
    sub = cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=25, detectShadows=True)
    out = {}
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    for i, frame in read_frames(video):
        fg = sub.apply(frame)
        if i not in wanted:
            continue
        mask = (fg == 255).astype(np.uint8) * 255
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
        n, _lab, stats, _c = cv2.connectedComponentsWithStats(mask)
        out[i] = [[int(x), int(y), int(x + w), int(y + h)] for x, y, w, h, a in stats[1:]
                  if a >= min_area_px]
    return out


def propose(args) -> None:
    from store_perception.pose_backend import PoseEstimator
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_total = int(cv2.VideoCapture(args.video).get(cv2.CAP_PROP_FRAME_COUNT))
    idx = [int(v) for v in np.linspace(args.first, n_total - 1 - args.first, args.frames)]
    wanted = set(idx)
    motion = motion_boxes(args.video, wanted)
    est = PoseEstimator()
    frames = []
    for i, frame in read_frames(args.video, wanted):
        people = est.estimate(frame)
        img = frame.copy()
        pose = []
        for k, q in enumerate(people):
            b = [round(v, 1) for v in q.box]
            wr = [[round(float(v), 1) for v in q.wrist(s)[0]] for s in ('left', 'right')
                  if q.wrist(s)[1] >= 0.5]
            pose.append({'box': b, 'wrists': wr, 'score': round(q.score, 3)})
            cv2.rectangle(img, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 255, 0), 1)
            cv2.putText(img, f'p{k}', (int(b[0]), int(b[1]) - 2), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, (0, 255, 0), 1)
        for k, b in enumerate(motion.get(i, [])):
            cv2.rectangle(img, (b[0], b[1]), (b[2], b[3]), (0, 255, 255), 1)
            cv2.putText(img, f'm{k}', (b[0], b[3] + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (0, 255, 255), 1)
        cv2.imwrite(str(out / f'propose_{i:04d}.png'), img)
        frames.append({'index': i, 'pose': pose, 'motion': motion.get(i, [])})
    (out / 'proposals.json').write_text(json.dumps({'video': args.video, 'frames': frames},
                                                   indent=1) + '\n')
    print(f'{len(frames)} frames -> {out}')


def render(args) -> None:
    labels = json.loads(pathlib.Path(args.labels).read_text())
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    by_index = {f['index']: f for f in labels['frames']}
    only = set(args.only) if args.only else None
    for i, frame in read_frames(args.video, set(by_index)):
        if only and i not in only:
            continue
        img = frame.copy()
        for k, p in enumerate(by_index[i]['people']):
            x0, y0, x1, y1 = (int(round(v)) for v in p['box'])
            cv2.rectangle(img, (x0, y0), (x1, y1), (255, 255, 255), 1)
            cv2.putText(img, str(k), (x0, y0 - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (255, 255, 255), 1)
            for x, y in p.get('wrists') or []:
                cv2.circle(img, (int(round(x)), int(round(y))), 2, (0, 0, 255), -1)
            if args.zoom:
                z = 3
                cx0, cy0 = max(0, x0 - 15), max(0, y0 - 15)
                crop = frame[cy0:y1 + 15, cx0:x1 + 15]
                big = cv2.resize(crop, None, fx=z, fy=z, interpolation=cv2.INTER_NEAREST)
                for gx in range(cx0 - cx0 % 5, cx0 + crop.shape[1], 5):
                    c = (0, 0, 255) if gx % 25 == 0 else (90, 90, 90)
                    cv2.line(big, ((gx - cx0) * z, 0), ((gx - cx0) * z, big.shape[0]), c, 1)
                for gy in range(cy0 - cy0 % 5, cy0 + crop.shape[0], 5):
                    c = (0, 0, 255) if gy % 25 == 0 else (90, 90, 90)
                    cv2.line(big, (0, (gy - cy0) * z), (big.shape[1], (gy - cy0) * z), c, 1)
                cv2.rectangle(big, ((x0 - cx0) * z, (y0 - cy0) * z),
                              ((x1 - cx0) * z, (y1 - cy0) * z), (255, 255, 255), 1)
                cv2.putText(big, f'{cx0},{cy0}', (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                            (255, 255, 255), 1)
                cv2.imwrite(str(out / f'zoom_{i:04d}_{k}.png'), big)
        cv2.imwrite(str(out / f'label_{i:04d}.png'), img)


def jpeg(args) -> None:
    labels = json.loads(pathlib.Path(args.labels).read_text())
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only) if args.only else {f['index'] for f in labels['frames']}
    for i, frame in read_frames(args.video, wanted):
        cv2.imwrite(str(out / f'vtest_{i:04d}.jpg'), frame,
                    [cv2.IMWRITE_JPEG_QUALITY, args.quality])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    a = sub.add_parser('propose')
    a.add_argument('--frames', type=int, default=36)
    a.add_argument('--first', type=int, default=10, help='skip this many frames at each end')
    a.add_argument('--out', default='out/label')
    b = sub.add_parser('render')
    b.add_argument('--labels', required=True)
    b.add_argument('--out', default='out/label/check')
    b.add_argument('--zoom', action='store_true')
    b.add_argument('--only', type=int, nargs='*')
    c = sub.add_parser('jpeg')
    c.add_argument('--labels', required=True)
    c.add_argument('--out', required=True)
    c.add_argument('--only', type=int, nargs='*')
    c.add_argument('--quality', type=int, default=85)
    for p in (a, b, c):
        p.add_argument('--video', default=VTEST)
    args = ap.parse_args(argv)
    {'propose': propose, 'render': render, 'jpeg': jpeg}[args.cmd](args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
