"""What checking a bag costs: the record-by-record storage scan (store_bags.mcap_check, run by
``bag_info --verify``, and by a replay that ends early or starts at an offset) and the per-message
deserialize check of ``bag_play`` (check_messages), against a plain read.

Writes a bag of ``--messages`` PlateWeights (9 plates, like one controller's batch) and
``--images`` 640x480 RGB images with the project's BagWriter, then times (median of
``--repeats``, file in the page cache):

    bench_bag_check --messages 20000 --images 200 --out /tmp/bench_bag
"""
from __future__ import annotations

import argparse
import pathlib
import shutil
import statistics
import time

from store_bags import mcap_check
from store_bags.bag import BagReader, BagWriter
from store_bags.typestore import store_typestore


def build(path: pathlib.Path, messages: int, images: int) -> None:
    shutil.rmtree(path, ignore_errors=True)
    ts = store_typestore()
    PW = ts.types['store_interfaces/msg/PlateWeights']
    P = ts.types['store_interfaces/msg/PlateWeight']
    H, T = ts.types['std_msgs/msg/Header'], ts.types['builtin_interfaces/msg/Time']
    Img = ts.types['sensor_msgs/msg/Image']
    import numpy as np
    pixels = np.random.default_rng(1).integers(0, 255, 640 * 480 * 3, dtype=np.uint8)
    every = max(1, messages // max(1, images)) if images else 0
    with BagWriter(path) as w:
        for i in range(messages):
            ns = 10**9 + i * 25 * 10**6
            t = T(sec=ns // 10**9, nanosec=ns % 10**9)
            w.write_msg('/store/gondolas/g1/pc_g1/plate_weights',
                        'store_interfaces/msg/PlateWeights', ns, PW(
                            header=H(stamp=t, frame_id='store'), controller_id='pc_g1',
                            weights=[P(stamp=t, plate_id=f'g1.s1.p{k}', weight_grams=1.5 * k,
                                       adc_counts=k, valid=True) for k in range(9)]))
            if every and i % every == 0:
                w.write_msg('/store/cameras/cam1/image_raw', 'sensor_msgs/msg/Image', ns, Img(
                    header=H(stamp=t, frame_id='cam1'), height=480, width=640,
                    encoding='rgb8', is_bigendian=0, step=640 * 3, data=pixels))


def timed(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--messages', type=int, default=20000)
    ap.add_argument('--images', type=int, default=200)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--out', default='/tmp/bench_bag')
    args = ap.parse_args(argv)
    path = pathlib.Path(args.out)
    build(path, args.messages, args.images)
    mcap = next(path.glob('*.mcap'))
    size_mb = mcap.stat().st_size / 1e6
    with BagReader(path) as r:
        n = r.message_count
        plain = timed(lambda: sum(1 for _ in r._reader.messages()), args.repeats)
        scan = timed(lambda: mcap_check.check(mcap), args.repeats)
        read = timed(lambda: sum(1 for _ in r.messages()), args.repeats)
        deser = timed(lambda: [r.deserialize(m) for m in r.messages()], args.repeats)
    print(f'bag: {n} messages, {size_mb:.1f} MB ({args.messages} PlateWeights, '
          f'{args.images} 640x480 images)')
    print(f'rosbags read, no checks:        {plain:7.3f} s  {size_mb / plain:7.1f} MB/s')
    print(f'storage scan (mcap_check):      {scan:7.3f} s  {size_mb / scan:7.1f} MB/s  '
          f'{scan / n * 1e6:6.1f} us/message')
    print(f'BagReader.messages (counted):   {read:7.3f} s')
    print(f'messages + deserialize each:    {deser:7.3f} s  {(deser - read) / n * 1e6:6.1f} '
          f'us/message for check_messages')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
