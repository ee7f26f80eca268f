"""Benchmark the store detector: throughput, image-stamp-to-detections latency, held-out mAP.

    bench_detector [--model PATH] [--imgsz 416] [--frames 40] [--device cpu]
        [--crop-model store_yolo_crops.pt] [--crop-size 224] [--crop-margin 0.25]
        [--crop-shopper-conf 0.01] [--hand-model store_hand_sku.pt] [--hand-conf 0.05]
        [--heldout out/perception/heldout]
        [--crops-heldout out/perception/crops_heldout] [--skip-map] [--stats-out PATH]
        [--runtime auto|onnx|torch] [--threads 0] [--skip-runtimes]
    bench_detector --confusion-out config/fusion/sku_confusion.json --heldout DIR

The detector is two-stage by default (the shipped crop model for hands and products on crops
around each shopper), and three-stage with the shipped hand SKU classifier (what is in each hand
proposal, :mod:`store_perception.hand_sku`); ``--hand-model ''`` leaves the third stage out,
``--crop-model '' --hand-model ''`` benchmarks the full-frame model alone.

* runtimes: the same frames through ultralytics' ``predict`` on the .pt weights (torch) and
  through ONNX Runtime on the shipped .onnx exports (``store_perception.onnx_runtime``), both
  as the full detector (``Detector.detect``, all stages): frames/s and per-frame latency
  (median, p95) one frame at a time, and ONNX Runtime on batches of one frame per camera
  (``detect_batch``, as the node batches its cameras); a table with the ratio to torch;
* throughput: frames/s of ``Detector.detect`` on rendered 640x480 frames (4 cameras of the demo
  scenario), one frame at a time as the node does, after a warm-up (two-stage: also the
  full-frame stage alone, and the number of crops per frame);
* latency: per frame, the node's code path in-process: the driver's ``cv2_to_imgmsg`` stamps a
  sensor_msgs/Image now, the detector converts it back, detects and builds the DetectionArray;
  latency = the time the array is ready minus the image stamp (median and p95) -- the DDS hop
  of the real graph (about a millisecond on one host) is not included;
* mAP: ultralytics validation of the full-frame model on the held-out test split (scenes with a
  different seed and lighting than training), made with ``make_dataset --test`` when missing:
  per-class mAP50 and mAP50-95;
* end to end (both stages on the full held-out images against the full-image truth,
  ``store_bench.evaluate``): per-class AP50 / AP50-95 (ultralytics' ``ap_per_class``,
  detector run at conf 0.001), and at score >= ``--score-min``: recall (IoU >= 0.5), false
  positives per image, box centre/size errors, SKU accuracy of detected products (the hand
  classifier's SKU, or the colour's for products it did not give);
  ``--stats-out`` writes them as the ``detector_stats.json`` that
  ``store_bench.simcam.measured_stats`` reads;
* ``--confusion-out``: only the end-to-end run on ``--heldout``, and which SKU the detected
  products of each true SKU were named, written as the fusion node's ``sku_confusion_file``
  (:mod:`store_fusion.sku_confusion`) with a table of the confusions, most frequent first;
* the crop model alone: ultralytics validation on the held-out crops (``make_crop_dataset`` of
  the held-out split around its truth shoppers, made when missing).

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

from store_bench.paths import root_or_exit
from store_perception.onnx_runtime import RUNTIMES

ROOT = root_or_exit()      # the checkout: config/ and out/ (store_bench.paths)
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
    p.add_argument('--crop-model', default='store_yolo_crops.pt',
                   help="second-stage weights ('' = single stage; a bare name = shipped)")
    p.add_argument('--crop-size', type=int, default=224)
    p.add_argument('--crop-margin', type=float, default=0.25)
    p.add_argument('--crop-shopper-conf', type=float, default=0.01,
                   help='minimum shopper score for a crop')
    p.add_argument('--hand-model', default='store_hand_sku.pt',
                   help="third-stage hand SKU classifier ('' = none; a bare name = shipped)")
    p.add_argument('--hand-conf', type=float, default=0.05,
                   help='lowest crop-model hand score the classifier looks at')
    p.add_argument('--crops-heldout', default=str(ROOT / 'out' / 'perception' / 'crops_heldout'))
    p.add_argument('--score-min', type=float, default=0.25,
                   help='operating score for recall, false positives and --stats-out')
    p.add_argument('--stats-out', default='', help='write the measured detector stats here '
                   '(JSON, the layout of store_bench.simcam.DetectorStats)')
    p.add_argument('--confusion-out', default='', help='only measure which SKU the detected '
                   'products of each true SKU are named on --heldout, and write it here (the '
                   "fusion node's sku_confusion_file)")
    p.add_argument('--skip-map', action='store_true')
    p.add_argument('--precision-table', action='store_true',
                   help='only the fp32 vs int8 (onnx vs onnx_int8) x imgsz 416/320 table: '
                        'held-out recall per class, SKU accuracy, CPU ms per stage')
    p.add_argument('--runtime', default='auto', choices=RUNTIMES,
                   help='runtime of the detector measured below the runtime table')
    p.add_argument('--threads', type=int, default=0,
                   help='ONNX Runtime intra-op threads (0 = its default)')
    p.add_argument('--skip-runtimes', action='store_true',
                   help='leave out the torch vs ONNX Runtime table')
    a = p.parse_args(argv)

    from builtin_interfaces.msg import Time
    from store_perception.detection import Detector
    from store_perception.detector_node import to_msg
    from store_perception.image_conversion import CvBridge

    stage2 = dict(crop_model_path=a.crop_model or None, crop_size=a.crop_size,
                  crop_margin=a.crop_margin, proposal_conf=a.crop_shopper_conf,
                  hand_model_path=a.hand_model or None, hand_proposal_conf=a.hand_conf)
    if a.confusion_out:
        return confusion(a, stage2)
    imgs, store = frames(a.frames)
    if a.precision_table:
        precision_table(imgs, a, store, stage2)
        return 0
    if not a.skip_runtimes:
        compare_runtimes(imgs, a, store, stage2)
    det = Detector(a.model, imgsz=a.imgsz, conf=a.conf, device=a.device, catalog=store.catalog,
                   runtime=a.runtime, threads=a.threads, **stage2)
    for img in imgs[:3]:
        det.detect(img)
    print(f'model {det.model_path} ({os.path.getsize(det.model_path) / 1e6:.1f} MB), imgsz '
          f'{a.imgsz}, device {a.device}, runtime {det.runtime}, {os.cpu_count()} CPUs, '
          f'torch threads {_threads()}')
    if det.two_stage:
        print(f'second stage {det.crop_model_path} '
              f'({os.path.getsize(det.crop_model_path) / 1e6:.1f} MB), crops {a.crop_size} px, '
              f'margin {a.crop_margin}, shopper score >= {a.crop_shopper_conf}')
        if det.hand_model is not None:
            hm = det.hand_model
            print(f'third stage {hm.model_path} ({os.path.getsize(hm.model_path) / 1e6:.1f} MB),'
                  f' windows {hm.prior.window_scale} x the hand box at {hm.size} px, hand score '
                  f'>= {a.hand_conf}')
        single = Detector(a.model, imgsz=a.imgsz, conf=a.conf, device=a.device,
                          catalog=store.catalog, runtime=a.runtime, threads=a.threads)
        single.detect(imgs[0])
        start = time.perf_counter()
        for img in imgs:
            single.detect(img)
        took = time.perf_counter() - start
        single.conf = min(a.conf, a.crop_shopper_conf)
        crops = sum(sum(d.class_name == 'shopper' and d.score >= a.crop_shopper_conf
                        for d in single.detect(img)[0]) for img in imgs)
        print(f'full-frame stage alone: {len(imgs) / took:.1f} frames/s '
              f'({1000 * took / len(imgs):.0f} ms per frame); {crops / len(imgs):.2f} crops '
              f'per frame')

    start = time.perf_counter()
    for img in imgs:
        det.detect(img)
    took = time.perf_counter() - start
    stages = f' ({_kind(det)})' if det.two_stage else ''
    print(f'throughput{stages}: {len(imgs) / took:.1f} '
          f'frames/s ({1000 * took / len(imgs):.0f} ms per 640x480 frame)')

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
    res = _ultralytics(det.model_path).val(
        data=str(heldout / 'data.yaml'), split='test', imgsz=a.imgsz, device=a.device, batch=8,
        plots=False, verbose=False, project=str(ROOT / 'out' / 'perception' / 'val'),
        exist_ok=True)
    names = det.names
    print(f'held-out mAP ({heldout}): mAP50 {res.box.map50:.3f}, mAP50-95 {res.box.map:.3f}')
    print('class      mAP50  mAP50-95')
    for i, c in enumerate(res.box.ap_class_index):
        print(f'{names[int(c)]:<10} {res.box.ap50[i]:.3f}  {res.box.ap[i]:.3f}')
    sku_accuracy(heldout, det)
    end_to_end(heldout, a, store, stage2)
    if det.two_stage:
        crop_val(det, a)
    return 0


def _ultralytics(path: str):
    """The ultralytics model of .pt weights (validation needs it, whatever the runtime)."""
    from store_perception.detection import TorchYolo
    return TorchYolo(pathlib.Path(path)).yolo


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def compare_runtimes(imgs, a, store, stage2: dict) -> None:
    """ultralytics predict (torch) vs ONNX Runtime, the full detector on the same frames."""
    from store_perception.detection import Detector
    rows = []
    n_cams = len(store.cameras)
    for runtime in ('torch', 'onnx'):
        det = Detector(a.model, imgsz=a.imgsz, conf=a.conf, device=a.device,
                       catalog=store.catalog, runtime=runtime, threads=a.threads, **stage2)
        det.warmup()
        for img in imgs[:2]:
            det.detect(img)
        lat = []
        start = time.perf_counter()
        for img in imgs:
            t0 = time.perf_counter()
            det.detect(img)
            lat.append((time.perf_counter() - t0) * 1000)
        took = time.perf_counter() - start
        rows.append((f'{runtime}, one frame a call', len(imgs) / took, statistics.median(lat),
                     _pct(lat, 0.95)))
        if runtime == 'onnx':
            lat = []
            start = time.perf_counter()
            for k in range(0, len(imgs) - n_cams + 1, n_cams):
                t0 = time.perf_counter()
                det.detect_batch(imgs[k:k + n_cams])
                lat.append((time.perf_counter() - t0) * 1000)
            took = time.perf_counter() - start
            rows.append((f'onnx, batch of {n_cams} (cameras)', len(lat) * n_cams / took,
                         statistics.median(lat), _pct(lat, 0.95)))
    base = rows[0][1]
    print(f'runtimes, {_kind(det)} detector, {len(imgs)} rendered 640x480 frames, '
          f'{os.cpu_count()} CPUs (shared: figures depend on the machine\'s load)')
    print(f'{"runtime":<32} {"frames/s":>8} {"ms p50":>7} {"ms p95":>7} {"x torch":>8}')
    for name, fps, p50, p95 in rows:
        print(f'{name:<32} {fps:8.1f} {p50:7.0f} {p95:7.0f} {fps / base:8.2f}')
    print('(batch rows: latency is per batch call, frames/s counts its frames)')


def precision_table(imgs, a, store, stage2: dict) -> None:
    """fp32 and int8 ONNX graphs at imgsz 416 and 320, in one run: held-out recall per class and
    SKU accuracy (end to end, all stages) and the process CPU time per frame of each stage on
    the demo frames (one ONNX thread per model, as the node runs)."""
    import copy
    from store_perception.detection import Detector
    heldout = pathlib.Path(a.heldout)
    rows = []
    for runtime in ('onnx', 'onnx_int8'):
        for imgsz in (416, 320):
            b = copy.copy(a)
            b.runtime, b.imgsz, b.threads = runtime, imgsz, 1
            ev = end_to_end(heldout, b, store, stage2, quiet=True)
            det = Detector(a.model, imgsz=imgsz, conf=a.conf, catalog=store.catalog,
                           runtime=runtime, threads=1, **stage2)
            full = Detector(a.model, imgsz=imgsz, conf=a.conf, catalog=store.catalog,
                            runtime=runtime, threads=1)
            for d in (det, full):
                d.detect(imgs[0])
            t0 = time.process_time()
            for img in imgs:
                full.detect(img)
            t1 = time.process_time()
            for img in imgs:
                det.detect(img)
            t2 = time.process_time()
            cls = ev['classes']
            rows.append((runtime, imgsz, cls['shopper'], cls['hand'], cls['product'],
                         ev['sku_accuracy'], 1000 * (t1 - t0) / len(imgs),
                         1000 * (t2 - t1) / len(imgs)))
    print(f'fp32 vs int8 ({len(imgs)} demo frames for CPU; held-out {heldout}: recall at score '
          f'>= {a.score_min}, IoU >= 0.5)')
    print('runtime    imgsz  shopper recall  hand recall  product recall  SKU right  '
          'CPU ms full-frame  CPU ms all stages')
    base = rows[0]
    for r in rows:
        rec = [f"{c['hits']}/{c['truth']}" for c in r[2:5]]
        print(f'{r[0]:<10} {r[1]:>5}  {rec[0]:>14}  {rec[1]:>11}  {rec[2]:>14}  {r[5]:>9.2f}  '
              f'{r[6]:>17.1f}  {r[7]:>17.1f}  (x{r[7] / base[7]:.2f} of fp32 416)')


def _kind(det) -> str:
    return ('three-stage' if det.hand_model is not None else
            'two-stage' if det.two_stage else 'single-stage')


def _threads() -> int:
    import torch
    return torch.get_num_threads()


def end_to_end(heldout: pathlib.Path, a, store, stage2: dict, quiet: bool = False):
    """Both stages on the full held-out images against the full-image truth (``quiet``: return
    the evaluation instead of printing it)."""
    import json

    import cv2
    from store_perception.detection import Detector
    from store_bench.evaluate import (evaluate, load_truth, products_by_group, sku_shape,
                                      stats_dict, table)
    records = load_truth(heldout, 'test')
    det = Detector(a.model, imgsz=a.imgsz, conf=0.001, device=a.device, catalog=store.catalog,
                   max_det=300, runtime=a.runtime, threads=a.threads, **stage2)
    dets = [det.detect(cv2.imread(r['image']))[0] for r in records]
    ev = evaluate(records, dets, a.score_min)
    if quiet:
        return ev
    kind = _kind(det)
    print(f'end to end, {kind}, {len(records)} held-out images ({heldout}); AP: ultralytics '
          f'ap_per_class, detector at conf 0.001; recall/FP at score >= {a.score_min}, IoU >= 0.5')
    print(table(ev))
    print(f'SKU right on detected products (score >= {a.score_min}): {ev["sku_hits"]}/'
          f'{ev["classes"]["product"]["hits"]} = {ev["sku_accuracy"]:.2f}')
    print('products in hand by shape: truth boxes, found, named right')
    for shape, c in products_by_group(ev, lambda s: sku_shape(store, s)).items():
        print(f'  {shape:<8} {c["truth"]:>5} {c["found"]:>6} {c["named_right"]:>6}')
    if a.stats_out:
        names = pathlib.Path(det.model_path).name + (
            f' + {pathlib.Path(det.crop_model_path).name} (crops {a.crop_size} px, margin '
            f'{a.crop_margin}, shopper score >= {a.crop_shopper_conf})' if det.two_stage else '')
        if det.hand_model is not None:
            names += (f' + {pathlib.Path(det.hand_model.model_path).name} (hand score >= '
                      f'{a.hand_conf})')
        seeds = sorted({r['scene_seed'] for r in records})
        lights = sorted({r['lighting_variant'] for r in records})
        source = (f'measured: {kind} detector {names} on the held-out split '
                  f'{heldout.name} ({len(records)} images, scenes {seeds[0]}-{seeds[-1]}, '
                  f'lighting {lights[0]}-{lights[-1]}), IoU >= 0.5, score >= {a.score_min}; '
                  f'bench_detector --stats-out')
        out = pathlib.Path(a.stats_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(stats_dict(ev, source), indent=2) + '\n')
        print(f'wrote {out}')


def confusion(a, stage2: dict) -> int:
    """``--confusion-out``: the detector's SKU confusion on the held-out products."""
    from store_common.description import load_store
    from store_fusion.sku_confusion import SkuConfusion
    heldout = pathlib.Path(a.heldout)
    if not (heldout / 'truth').is_dir():
        print(f'bench_detector: {heldout}: no held-out set with truth (make it with '
              f'make_dataset --test --held-share 0.8 ...)', file=sys.stderr)
        return 2
    store = load_store(STORE)
    ev = end_to_end(heldout, a, store, stage2, quiet=True)
    images = ev['images']
    try:
        model = SkuConfusion.from_counts(
            ev['sku_confusion'],
            source=f'measured: bench_detector --confusion-out on {heldout.name} ({images} '
                   f'images), products matched at IoU >= 0.5, score >= {a.score_min}, runtime '
                   f'{a.runtime}')
    except ValueError as exc:
        print(f'bench_detector: {heldout}: {exc}', file=sys.stderr)
        return 2
    k = len(store.catalog.products)
    n = sum(sum(r.values()) for r in model.counts.values())
    print(f'{n} named product boxes of {len(model.counts)} SKUs in {images} images; pooled '
          f'accuracy {model.accuracy:.3f}, prior strength {model.strength} (leave-one-out)')
    print('true         named        boxes  P(named | true)  x unrelated')
    pairs = sorted(((c, t, s) for t, r in model.counts.items() for s, c in r.items()),
                   reverse=True)
    for c, t, s in pairs[:30]:
        p = model.p_seen(s, t, k)
        print(f'{t:<12} {s:<12} {c:>5}  {p:>15.3f}  {p / model.p_seen_unrelated(s, k):>11.1f}')
    out = pathlib.Path(a.confusion_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    print(f'wrote {out}')
    return 0


def crop_val(det, a) -> None:
    """ultralytics validation of the crop model on crops around the held-out truth shoppers."""
    crops = pathlib.Path(a.crops_heldout)
    if not (crops / 'data.yaml').exists():
        from store_perception.datasets import make_crop_dataset
        print(f'making the held-out crops in {crops}')
        make_crop_dataset(a.heldout, str(crops), size=a.crop_size, margin=a.crop_margin,
                          copies=1, splits=('test',))
    res = _ultralytics(det.crop_model_path).val(
        data=str(crops / 'data.yaml'), split='test', imgsz=a.crop_size, device=a.device,
        batch=16, plots=False, verbose=False, project=str(ROOT / 'out' / 'perception' / 'val'),
        exist_ok=True, name='crops')
    print(f'crop model on held-out crops ({crops}, ultralytics val): mAP50 {res.box.map50:.3f}, '
          f'mAP50-95 {res.box.map:.3f}')
    print('class      mAP50  mAP50-95')
    for i, c in enumerate(res.box.ap_class_index):
        print(f'{det.crop_names[int(c)]:<10} {res.box.ap50[i]:.3f}  {res.box.ap[i]:.3f}')


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
