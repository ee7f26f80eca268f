"""Login flood against the reviewer console: is the rest of the console still responsive?

Serves the console in a child process (real uvicorn server, default scrypt cost unless
--n-log2) with one account, fires --logins concurrent wrong-password logins from --threads
threads (all from 127.0.0.1), and meanwhile polls the health check and a logged-in user's queue
API. Prints the status codes of the logins, the latency of the health check and the queue API
during the flood (p50/p95), the flood's wall time, and the console process's resident memory
before and at its peak (VmHWM).

    bench_review_login                       # with throttling and the hash gate
    bench_review_login --no-throttle         # the hash gate alone
    bench_review_login --no-guard --n-log2 14   # as before (no throttle, no bound); at
                                                # N=2^17 it would need 128 MiB per login
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx

from store_review.auth import PasswordHasher
from store_review.console import ConsoleServer, create_app
from store_review.login_guard import HashGate, LoginThrottle, ThrottlePolicy
from store_review.service import ReviewService
from store_review.store import ReviewStore


def mem_kib(field: str, pid: int) -> int:
    for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    return 0


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float('nan')


def serve(args) -> None:
    """The console in this (child) process; prints its URL, serves until stdin closes."""
    free = ThrottlePolicy(free_failures=10 ** 6, lockout_failures=10 ** 6 + 1)
    throttle = LoginThrottle(free, free) if (args.no_guard or args.no_throttle) else None
    gate = HashGate(running=10 ** 4, waiting=0) if args.no_guard else None
    tmp = tempfile.TemporaryDirectory()
    store = ReviewStore(pathlib.Path(tmp.name) / 'review.sqlite')
    service = ReviewService(store, lambda d: None, time.time_ns,
                            hasher=PasswordHasher(n=2 ** args.n_log2), throttle=throttle,
                            gate=gate)
    service.auth.add_user('alice', 'reviewer', 'alice-password', 0)
    server = ConsoleServer(create_app(service), port=0)
    server.start()
    print(server.url, flush=True)
    sys.stdin.read()
    server.stop()
    store.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--logins', type=int, default=256)
    ap.add_argument('--threads', type=int, default=256)
    ap.add_argument('--n-log2', type=int, default=17, help='scrypt N = 2^this (default 17)')
    ap.add_argument('--no-guard', action='store_true',
                    help='no throttle and no bound on hashes in flight (the old behaviour)')
    ap.add_argument('--no-throttle', action='store_true',
                    help='no throttle, but the hash gate (every login reaches the gate)')
    ap.add_argument('--serve', action='store_true', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args)
        return 0

    child = subprocess.Popen([sys.executable, '-m', 'store_bench.bench_review_login', '--serve',
                              '--n-log2', str(args.n_log2)]
                             + (['--no-guard'] if args.no_guard else [])
                             + (['--no-throttle'] if args.no_throttle else []),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = child.stdout.readline().strip()
    user = httpx.Client(base_url=url, timeout=60)
    assert user.post('/login', data={'username': 'alice', 'password': 'alice-password'}
                     ).status_code in (200, 303)
    rss_before = mem_kib('VmRSS', child.pid)

    stop = threading.Event()
    lat: dict[str, list[float]] = {'/healthz': [], '/api/queue': []}

    def poll(path: str, client: httpx.Client) -> None:
        while not stop.is_set():
            t = time.perf_counter()
            r = client.get(path)
            if r.status_code == 200:
                lat[path].append(time.perf_counter() - t)
            time.sleep(0.05)

    pollers = [threading.Thread(target=poll, args=('/healthz', httpx.Client(base_url=url,
                                                                            timeout=60))),
               threading.Thread(target=poll, args=('/api/queue', user))]
    for p in pollers:
        p.start()
    time.sleep(1.0)
    idle = {k: list(v) for k, v in lat.items()}
    for v in lat.values():
        v.clear()
    codes: collections.Counter = collections.Counter()
    go = threading.Barrier(args.threads)

    def attempt(k: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as c:
            if k < args.threads:
                go.wait()
            codes[c.post('/login', data={'username': f'user{k % 7}' if k % 2 else 'alice',
                                         'password': f'guess-{k}'}).status_code] += 1

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.threads) as ex:
        list(ex.map(attempt, range(args.logins)))
    wall = time.perf_counter() - t0
    stop.set()
    for p in pollers:
        p.join()
    peak = mem_kib('VmHWM', child.pid)
    child.stdin.close()
    child.wait(30)

    mode = 'no guard (old)' if args.no_guard else ('gate only' if args.no_throttle
                                                   else 'throttle + gate')
    print(f'{mode}: {args.logins} concurrent wrong-password logins, scrypt N=2^{args.n_log2}')
    print(f'  login answers: {dict(sorted(codes.items()))}; flood wall time {wall:.1f} s')
    for path in lat:
        xs, before = lat[path], idle[path]
        print(f'  {path:11s} idle p50 {1000 * statistics.median(before):.0f} ms; during flood '
              f'p50 {1000 * pct(xs, 0.5):.0f} ms, p95 {1000 * pct(xs, 0.95):.0f} ms '
              f'({len(xs)} answers)' if before else f'  {path}: no answers')
    print(f'  console process memory: RSS before {rss_before / 1024:.0f} MiB, peak (VmHWM) '
          f'{peak / 1024:.0f} MiB')
    return 0


if __name__ == '__main__':
    sys.exit(main())
