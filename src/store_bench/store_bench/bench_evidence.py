"""What one review request's camera evidence costs the review node: the CPU of
``ImageCollector.ready`` (decode each kept JPEG frame, blur faces, crop to the plate, encode,
write) for a request on a plate seen by every camera, on a run's rendered frames.

The review node builds it in one timer callback, on the same 2 cores as the detector: in the
live graph a request made while shoppers reach shows up as a second of dropped detector frames
when the build is slow. The baseline, run in the same process on the same frames, is the
previous blur (the region's pixelation scaled back up, then a Gaussian kernel a third of the
region's size at full resolution); the shipped one blurs the 12 px cells before scaling up.

    . tools/env.sh
    bench_evidence --render-dir out/demo/cameras --t 20 --repeats 5

Frames are taken from each camera's ``.avi`` at the camera drivers' evidence rate
(``evidence_rate_hz`` of config/params/store.yaml) and JPEG quality, as they reach the node.
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time

import cv2

from store_common.description import load_store
from store_common.evidence_frames import encode_jpeg
from store_common.params import load_params_file
from store_review import evidence

ROOT = pathlib.Path(__file__).resolve().parents[3]
NS = 1_000_000_000


def blur_full_resolution(roi) -> None:
    """The baseline: the blur of the review node before this benchmark (the pixelation scaled
    back up, then a Gaussian at full resolution with a kernel a third of the region)."""
    h, w = roi.shape[:2]
    k = max(3, (max(w, h) // 3) | 1)
    small = cv2.resize(roi, (max(1, w // 12), max(1, h // 12)), interpolation=cv2.INTER_AREA)
    roi[:] = cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR),
                              (k, k), 0)


def load_frames(render_dir: pathlib.Path, cameras, t_s: float, span_s: float, rate_hz: float,
                quality: int) -> dict[str, list[tuple[int, bytes]]]:
    """{camera: [(stamp_ns, JPEG)]} at ``rate_hz`` within t_s +- span_s of each camera's video."""
    out = {}
    for cid in cameras:
        path = render_dir / f'{cid}.avi'
        cap = cv2.VideoCapture(str(path))
        fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
        frames, k, step = [], 0, max(1, round(fps / rate_hz))
        while True:
            ok, img = cap.read()
            if not ok:
                break
            t = k / fps
            if abs(t - t_s) <= span_s and k % step == 0:
                frames.append((int(t * NS), encode_jpeg(img, quality)))
            k += 1
        cap.release()
        if not frames:
            raise SystemExit(f'{path}: no frames within {t_s - span_s:g}-{t_s + span_s:g} s')
        out[cid] = frames
    return out


def build_once(views, frames, plate_id: str, t_ns: int, out_dir: str) -> tuple[float, int]:
    """(CPU ms, images written) of one request's evidence on a fresh buffer."""
    buf = evidence.FrameBuffer(max_fps=8.0)
    for cid, fr in frames.items():
        for stamp, jpeg in fr:
            buf.add(cid, stamp, jpeg)
    col = evidence.ImageCollector(buf, views, out_dir)
    col.request(f'review/{plate_id}@{t_ns}', f'{plate_id}@{t_ns - NS}', [plate_id], t_ns)
    c0 = time.process_time()
    written = col.ready(sensor_now_ns=t_ns + 60 * NS)
    return (time.process_time() - c0) * 1000, len(written)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--store', type=pathlib.Path, default=ROOT / 'config/stores/demo.yaml')
    ap.add_argument('--params', type=pathlib.Path, default=ROOT / 'config/params/store.yaml')
    ap.add_argument('--render-dir', type=pathlib.Path, default=ROOT / 'out/demo/cameras',
                    help="a run's rendered cameras (cam<id>.avi), e.g. out/demo/cameras")
    ap.add_argument('--t', type=float, default=20.0, help='request time [video s]')
    ap.add_argument('--repeats', type=int, default=5)
    a = ap.parse_args(argv)
    store = load_store(a.store)
    views = evidence.camera_views(store)
    plate = max(store.plates, key=lambda p: (sum(v.sees([p]) for v in views), p))
    seen = [v.camera_id for v in views if v.sees([plate])]
    drv = load_params_file(a.params).get('camera_driver', {})
    frames = load_frames(a.render_dir, seen, a.t, 3.0, float(drv.get('evidence_rate_hz', 4.0)),
                         int(drv.get('evidence_jpeg_quality', 85)))
    t_ns = int(a.t * NS)
    shipped = evidence.blur_roi
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, blur in (('baseline: full-resolution blur', blur_full_resolution),
                           ('shipped: blur on the 12 px cells', shipped)):
            evidence.blur_roi = blur
            try:
                runs = [build_once(views, frames, plate, t_ns, tmp) for _ in range(a.repeats)]
            finally:
                evidence.blur_roi = shipped
            rows[name] = (statistics.median(ms for ms, _ in runs), runs[0][1])
    print(f'one review request on plate {plate} (seen by {", ".join(seen)}), '
          f'{a.render_dir}, t={a.t:g} s, median of {a.repeats}:')
    base = next(iter(rows.values()))[0]
    for name, (ms, n) in rows.items():
        print(f'  {name:36s} {ms:8.1f} ms CPU for {n} images ({ms / max(n, 1):.1f} ms each), '
              f'x{ms / base:.3f} of the baseline')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
