"""Benchmark the store detector: throughput, image-stamp-to-detections latency, held-out mAP.

    python tools/bench_detector.py [--model PATH] [--imgsz 416] [--frames 40] [--device cpu]
        [--heldout out/perception/heldout] [--skip-map]

* throughput: frames/s of ``Detector.detect`` on rendered 640x480 frames (4 cameras of the demo
  scenario), one frame at a time as the node does, after a warm-up;
* latency: per frame, the node's code path in-process: the driver's ``cv2_to_imgmsg`` stamps a
  sensor_msgs/Image now, the detector converts it back, detects and builds the DetectionArray;
  latency = the time the array is ready minus the image stamp (median and p95) -- the DDS hop
  of the real graph (about a millisecond on one host) is not included;
* mAP: ultralytics validation on the held-out test split (scenes with a different seed and
  lighting than training), made with ``make_dataset --test`` when missing: per-class mAP50 and
  mAP50-95.

Runs on the CPU by default; the figures depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
STORE = ROOT / 'config' / 'stores' / 'demo.yaml'
SCENARIO = ROOT / 'config' / 'scenarios' / 'demo.yaml'


def frames(n: int):
    from store_common.description import load_store
    from store_sim.render import CameraRenderer
    from store_sim.scenario import load_scenario
    store = load_store(STORE)
    sc = load_scenario(SCENARIO, store)
    renderers = [CameraRenderer(store, c, sc) for c in store.cameras]
    times = [5.0 + 55.0 * i / max(1, n - 1) for i in range(n)]
    return [renderers[i % len(renderers)].render(t)[0] for i, t in enumerate(times)], store


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default=None, help='weights (default: the shipped ones)')
    p.add_argument('--imgsz', type=int, default=416)
    p.add_argument('--frames', type=int, default=40)
    p.add_argument('--device', default='cpu')
    p.add_argument('--conf', type=float, default=0.3)
    p.add_argument('--heldout', default=str(ROOT / 'out' / 'perception' / 'heldout'))
    p.add_argument('--skip-map', action='store_true')
    a = p.parse_args(argv)

    from builtin_interfaces.msg import Time
    from store_perception.detection import Detector
    from store_perception.detector_node import to_msg
    from store_perception.image_conversion import CvBridge

    imgs, store = frames(a.frames)
    det = Detector(a.model, imgsz=a.imgsz, conf=a.conf, device=a.device, catalog=store.catalog)
    for img in imgs[:3]:
        det.detect(img)
    print(f'model {det.model_path} ({os.path.getsize(det.model_path) / 1e6:.1f} MB), imgsz '
          f'{a.imgsz}, device {a.device}, {os.cpu_count()} CPUs')

    start = time.perf_counter()
    for img in imgs:
        det.detect(img)
    took = time.perf_counter() - start
    print(f'throughput: {len(imgs) / took:.1f} frames/s ({1000 * took / len(imgs):.0f} ms per '
          f'640x480 frame)')

    bridge = CvBridge()
    lat = []
    for img in imgs:
        now_ns = time.time_ns()
        msg = bridge.cv2_to_imgmsg(img, 'bgr8')
        msg.header.stamp = Time(sec=now_ns // 10**9, nanosec=now_ns % 10**9)
        image = bridge.imgmsg_to_cv2(msg, 'bgr8')
        dets, ms = det.detect(image)
        out = to_msg(msg.header, 'cam1', msg.width, msg.height, dets, ms)
        stamp_ns = out.header.stamp.sec * 10**9 + out.header.stamp.nanosec
        lat.append((time.time_ns() - stamp_ns) / 1e6)
    lat.sort()
    print(f'latency image stamp -> detections: median {statistics.median(lat):.0f} ms, p95 '
          f'{lat[int(0.95 * (len(lat) - 1))]:.0f} ms (in-process, node code path)')

    if a.skip_map:
        return 0
    heldout = pathlib.Path(a.heldout)
    if not (heldout / 'data.yaml').exists():
        print(f'making the held-out set in {heldout}')
        subprocess.run([sys.executable, '-m', 'store_sim.dataset', '--store', str(STORE),
                        '--out', str(heldout), '--scenes', '4', '--seed', '90000', '--test',
                        '--lighting-offset', '500', '--frames-per-camera', '3', '--jobs', '2'],
                       check=True)
    res = det.model.val(data=str(heldout / 'data.yaml'), split='test', imgsz=a.imgsz,
                        device=a.device, batch=8, plots=False, verbose=False,
                        project=str(ROOT / 'out' / 'perception' / 'val'), exist_ok=True)
    names = det.names
    print(f'held-out mAP ({heldout}): mAP50 {res.box.map50:.3f}, mAP50-95 {res.box.map:.3f}')
    print('class      mAP50  mAP50-95')
    for i, c in enumerate(res.box.ap_class_index):
        print(f'{names[int(c)]:<10} {res.box.ap50[i]:.3f}  {res.box.ap[i]:.3f}')
    sku_accuracy(heldout, det)
    return 0


def sku_accuracy(heldout: pathlib.Path, det) -> None:
    """SKU-by-colour on the true product boxes of the held-out images."""
    import json

    import cv2
    from store_perception.detection import Det
    right = total = 0
    for truth in sorted((heldout / 'truth').glob('test_*.jsonl')):
        for line in truth.read_text().splitlines():
            rec = json.loads(line)
            boxes = [b for b in rec['boxes'] if b['cls'] == 'product']
            if not boxes:
                continue
            img = cv2.imread(str(heldout / rec['image']))
            for b in boxes:
                got, _ = det.sku.classify(img, Det(2, 'product', 1.0, *b['bbox']))
                right += got == b['sku']
                total += 1
    if total:
        print(f'SKU by colour on true product boxes: {right}/{total} = {right / total:.2f} '
              f'(27 SKUs; chance 0.04)')


if __name__ == '__main__':
    sys.exit(main())
