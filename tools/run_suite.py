#!/usr/bin/env python3
"""Benchmark: run a suite of generated scenarios through the real node graph, then evaluate.

Each scenario plays in real time through the simulator, the drivers (serial line protocol on
pseudo-terminals), the shelf event nodes and the cart node, one process per node over DDS on a
private ROS domain; the receipt recorder ends each run. Prints the evaluator's suite table and
writes ``<out>/suite_metrics.json``.

    . tools/env.sh
    python tools/run_suite.py --count 20 --seed 1000 --levels 0,1,2,3 --out out/suite
"""
from __future__ import annotations

import argparse
import os
import pathlib
import random
import subprocess
import sys
import time

from store_common.description import load_store
from store_sim.generator import generate
from store_sim.scenario import save_scenario

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--store', default=str(ROOT / 'config' / 'stores' / 'demo.yaml'))
    ap.add_argument('--count', type=int, default=20)
    ap.add_argument('--seed', type=int, default=1000, help='first scenario seed (held out: '
                    'tests and tuning use seeds below 100)')
    ap.add_argument('--levels', default='0,1,2,3', help='difficulty levels, used in turn')
    ap.add_argument('--max-concurrent', type=int, default=None)
    ap.add_argument('--out', default=str(ROOT / 'out' / 'suite'))
    ap.add_argument('--timeout', type=float, default=300.0, help='per scenario [s]')
    args = ap.parse_args(argv)

    store = load_store(args.store)
    levels = [int(x) for x in args.levels.split(',')]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = env.get('ROS_DOMAIN_ID') or str(random.randint(101, 200))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    failures = 0
    t0 = time.monotonic()
    for i in range(args.count):
        seed, level = args.seed + i, levels[i % len(levels)]
        run_dir = out / f'L{level}_s{seed}'
        scenario_path = out / f'scenario_L{level}_s{seed}.yaml'
        save_scenario(generate(store, seed, level, max_concurrent=args.max_concurrent),
                      scenario_path)
        started = time.monotonic()
        proc = subprocess.run(
            ['run_store', '--store', args.store, '--mode', 'sim', '--scenario',
             str(scenario_path), '--run-dir', str(run_dir), '--record', '--console-port', '0',
             '--timeout', str(args.timeout)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        failures += proc.returncode != 0
        print(f'[{i + 1}/{args.count}] level {level} seed {seed}: exit {proc.returncode} in '
              f'{time.monotonic() - started:.0f} s', flush=True)
    print(f'suite ran in {time.monotonic() - t0:.0f} s, {failures} failed runs', flush=True)
    ev = subprocess.run(['evaluate', '--suite', str(out)], env=env)
    return 1 if failures or ev.returncode else 0


if __name__ == '__main__':
    sys.exit(main())
