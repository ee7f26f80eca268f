"""What the integrity check at open costs: quick_check vs integrity_check on a large cart db.

Builds a cart database of ``--events`` queued shelf events (about 0.5 KB each, like real ones,
with their index), then times opening it with no check, ``quick_check`` and
``integrity_check`` (median of ``--repeats``, file in the page cache, as at a node restart).

    bench_db_open --events 200000 --out /tmp/bench_carts.sqlite
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from store_cart.db import CartDb


def build(path: str, events: int) -> None:
    for suffix in ('', '-wal', '-shm'):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = CartDb(path)
    batch = 5000
    for start in range(0, events, batch):
        with db.transaction():
            for i in range(start, min(events, start + batch)):
                db.add_event(f'shelf/g1/p{i % 300}/{i}', 'shelf', 1_000_000_000 * i,
                             {'plate': f'p{i % 300}', 'delta_grams': -330.5, 'pad': 'x' * 400,
                              'hypotheses': [{'sku': 'COLA-330', 'count': 1, 'p': 0.97}]},
                             'processed', 'assigned')
    db.close()


def time_open(path: str, check: str, repeats: int) -> float:
    cls = type('BenchDb', (CartDb,), {'INTEGRITY_CHECK': check})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        cls(path).close()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--events', type=int, default=200000)
    ap.add_argument('--out', default='/tmp/bench_carts.sqlite')
    ap.add_argument('--repeats', type=int, default=3)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    build(args.out, args.events)
    size_mb = os.path.getsize(args.out) / 1e6
    print(f'built {args.out}: {args.events} events, {size_mb:.1f} MB in '
          f'{time.perf_counter() - t0:.1f} s')
    for check in ('', 'quick_check', 'integrity_check'):
        s = time_open(args.out, check, args.repeats)
        print(f'open with {check or "no check":<16} {s * 1000:9.1f} ms   '
              f'({s / size_mb * 1000:.2f} ms/MB)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
