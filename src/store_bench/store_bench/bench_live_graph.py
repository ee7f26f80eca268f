"""Benchmark: the live camera graph against the offline figure, on the same held-out scenarios.

Each scenario plays in real time through the graph ``run_store --mode sim --cameras`` starts
(the one ``ros2 launch`` runs, same parameters file): rendered camera streams, camera drivers,
the shipped detector, the tracker, the fusion node, the shelf nodes and the cart, one process
per node over DDS on a private ROS domain. The cameras are rendered before each run's clocks
start (``store_sim.render_cache``; render time is reported apart). The same scenarios then go
through ``bench_fusion`` (the offline path: rendered ground-truth boxes -> the
simulated detection model -> the same tracker and fusion code). One table prints exact
receipts, item F1 and review rate per level for: live fused, live weight-only (``--weight-only``
adds those runs), offline fused and offline weight-only, every path scored by one rule
(``store_sim.evaluator.before_review``: revision 1, pending lines billed as guessed, since
neither path has a reviewer), and beside it the live receipts as issued ("issued%": a review
nobody answered leaves its receipt not exact); a second table gives the live
detector's frames per level from each run's ``detector_summary.json`` (the node's run totals at
stop): frames in, processed, the share dropped while a camera was active, latency p95; a third
the issue's measure, the frames where a shopper reaches (the render's truth, as
``bench_live_detector`` counts them) and what the live detector did with each
(``store_bench.live_reach``: each run's ``detector_frames.jsonl``); last, the machine: a fixed
piece of the detector's work timed before each run and the CPU share the host stole during it
(``store_bench.machine``), since a busy host moves the live figures as much as code does.

    . tools/env.sh
    bench_live_graph --seeds 9800:9805 --levels 2,3 --out out/live_bench

Seeds 9800 and up are held out: nothing was tuned on them. Writes ``<out>/live_bench.json``
and, per run, ``<out>/L<level>_s<seed>[_w]/`` (logs, receipts, review requests).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import secrets
import shutil
import subprocess
import sys
import time

from store_common.description import load_store
from store_bench.console_reviewer import add_account, ConsoleReviewer, summary_text
from store_bench.live_reach import reach_points, reach_table, run_reach_outcomes
from store_bench.fusion_offline import seed_ranges
from store_bench.machine import probe_ms, StealMeter
from store_bench.paths import root_or_exit
from store_sim.evaluator import aggregate, before_review, evaluate_run
from store_sim.generator import generate
from store_sim.render_cache import ensure_render
from store_sim.scenario import save_scenario


def run_live(args, env, scenario_path: pathlib.Path, run_dir: pathlib.Path,
             cameras: bool) -> dict:
    cmd = ['run_store', '--store', args.store, '--mode', 'sim', '--scenario', str(scenario_path),
           '--run-dir', str(run_dir), '--record', '--console-port', '0',
           '--timeout', str(args.timeout),
           '--set', f'receipt_recorder.timeout_s={args.timeout - 10:g}']
    for kv in args.set:
        cmd += ['--set', kv]
    reviewer = None
    if args.reviewer_delay_s is not None:
        # a person at the console: the run waits for the cart to apply every answer
        password = secrets.token_urlsafe(12)
        add_account(run_dir, password, env=env)
        reviewer = ConsoleReviewer(run_dir, password, delay_s=args.reviewer_delay_s).start()
        cmd += ['--set', f'receipt_recorder.await_decisions_s={args.reviewer_delay_s + 60:g}']
    if cameras:
        cmd.append('--cameras')
        if args.trace:
            # every tracker step, for store_fusion.trace's exact offline replay
            cmd += ['--set', f'tracker.trace_file={(run_dir / "tracker_trace.jsonl").resolve()}']
    probe = probe_ms()
    steal = StealMeter()
    started = time.monotonic()
    with open(run_dir.parent / f'{run_dir.name}.out', 'w') as log:
        try:
            proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        finally:
            if reviewer is not None:
                reviewer.stop()
    # the machine, not the code: a slow probe or stolen CPU explains a slow run
    machine = {'probe_ms': probe, 'steal_share': steal.share()}
    m = evaluate_run(scenario_path, run_dir)
    # the offline path's rule (no reviewer there): revision 1, pending lines billed as guessed
    m['before_review'] = evaluate_run(scenario_path, run_dir, rule=before_review)
    m['exit_code'] = proc.returncode
    m['wall_s'] = time.monotonic() - started
    m['machine'] = machine
    if reviewer is not None:
        m['reviewer'] = reviewer.summary()
    if cameras:
        m['detector'] = read_detector_summary(run_dir)
        m['reach_frames'] = run_reach_outcomes(run_dir, args.plates_px, 10.0, args.reach_px)
    return m


def machine_text(machine: dict) -> str:
    """'probe 14.2 ms, steal 0.3 %' of one run (store_bench.machine)."""
    probe, steal = machine.get('probe_ms'), machine.get('steal_share')
    return (f'probe {probe:.1f} ms' if probe is not None else 'probe n/a') + ', ' + (
        f'steal {100 * steal:.1f} %' if steal is not None else 'steal n/a')


def machine_line(machines: list[dict]) -> str:
    """The machine over the camera runs: the probe's median and range, the steal share's
    median; a probe well above the idle machine's means the host was busy (RESULTS.md)."""
    probes = sorted(m['probe_ms'] for m in machines if m.get('probe_ms') is not None)
    steals = sorted(m['steal_share'] for m in machines if m.get('steal_share') is not None)
    text = 'machine: '
    text += (f'probe (crop stage, 1 thread) median {probes[len(probes) // 2]:.1f} ms, '
             f'{probes[0]:.1f}-{probes[-1]:.1f} ms' if probes else 'no probe')
    text += (f'; CPU stolen by the host, median run {100 * steals[len(steals) // 2]:.1f} %'
             if steals else '; steal n/a')
    return text


def detector_text(d: dict | None) -> str:
    """'detector dropped 12/3400 active frames, p95 180 ms' of a run's detector summary."""
    if not d:
        return 'no detector summary'
    return (f'detector dropped {d["active_dropped"]}/{d["active_in"]} active frames, '
            f'p95 {d["latency_p95_ms"] or 0:.0f} ms')


def read_detector_summary(run_dir: pathlib.Path) -> dict | None:
    """The detector node's run totals (``<run_dir>/detector_summary.json``, written at its
    stop: ``store_perception.frame_stats.run_summary``), overall; None when missing or not a
    summary (a detector that did not stop cleanly)."""
    try:
        doc = json.loads((run_dir / 'detector_summary.json').read_text())
        overall = doc['overall']
        int(overall['active_in']), int(overall['active_dropped']), int(overall['frames_in'])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return overall


def detector_table(runs_by_level: dict) -> list[str]:
    """Lines: per level and over all, the live detector's frames in, processed (all stages /
    shoppers only), dropped among the frames that came in while their camera was active, and
    latency p95 (the worst run's, and the median run's); runs without a summary are counted."""
    header = (f'{"detector":16} {"level":>5} {"runs":>4} {"in":>6} {"full":>6} {"shop":>6} '
              f'{"act.drop%":>9} {"p95 med":>8} {"p95 max":>8} {"no summary":>10}')
    lines = [header, '-' * len(header)]
    levels = sorted(runs_by_level)
    for lv in [*levels, 'all']:
        runs = ([m for k in levels for m in runs_by_level[k]] if lv == 'all'
                else runs_by_level[lv])
        sums = [m['detector'] for m in runs if m.get('detector')]
        missing = len(runs) - len(sums)
        if not sums:
            lines.append(f'{"live fused":16} {lv!s:>5} {len(runs):4d} {"-":>6} {"-":>6} {"-":>6} '
                         f'{"-":>9} {"-":>8} {"-":>8} {missing:10d}')
            continue
        act_in = sum(s['active_in'] for s in sums)
        share = sum(s['active_dropped'] for s in sums) / act_in if act_in else 0.0
        p95 = sorted(s['latency_p95_ms'] for s in sums if s.get('latency_p95_ms') is not None)
        med = f'{p95[len(p95) // 2]:8.0f}' if p95 else f'{"-":>8}'
        worst = f'{p95[-1]:8.0f}' if p95 else f'{"-":>8}'
        lines.append(f'{"live fused":16} {lv!s:>5} {len(runs):4d} '
                     f'{sum(s["frames_in"] for s in sums):6d} '
                     f'{sum(s["processed_full"] for s in sums):6d} '
                     f'{sum(s["processed_shoppers"] for s in sums):6d} {share:9.1%} {med} {worst} '
                     f'{missing:10d}')
    return lines


def run_offline(args, seeds: str, levels: str, out: pathlib.Path) -> dict:
    doc_path = out / 'offline_bench_fusion.json'
    exe = shutil.which('bench_fusion')
    if exe is None:
        raise SystemExit('error: the bench_fusion console script is not on PATH '
                         '(bash tools/setup.sh, then . tools/env.sh)')
    cmd = [exe, '--seeds', seeds,
           '--levels', levels, '--render-missing', '--gt-cache', str(out / 'gt'),
           '--out', str(doc_path)]
    started = time.monotonic()
    with open(out / 'offline.out', 'w') as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
    doc = json.loads(doc_path.read_text())
    doc['wall_s'] = time.monotonic() - started
    return doc


def row(name: str, level: str, agg: dict | None, issued: dict | None = None) -> str:
    """``agg``: scored before review (revision 1, pending billed as guessed: the offline
    rule); ``issued``: a live path's receipts as issued (latest revision; a pending line, a
    review nobody answered, makes a receipt not exact)."""
    if not agg or not agg.get('runs'):
        return f'{name:16} {level:>5} {"-":>4}'
    as_issued = f'{issued["receipt_exact_match_rate"]:9.1%}' if issued else f'{"-":>9}'
    return (f'{name:16} {level:>5} {agg["runs"]:4d} {agg["shoppers"]:4d} '
            f'{agg["receipt_exact_match_rate"]:7.1%} {as_issued} {agg["f1"]:6.3f} '
            f'{agg["shelf_events"]:6d} {agg["review_rate"]:8.1%}')


def receipts_table(live: dict, offline: dict | None, levels: list[int]) -> tuple[list, dict]:
    """Lines of the receipts table (per level, then over all: each live path that has runs,
    e.g. 'live fused' and 'live weight', then the offline modes) and, per live path and level,
    the aggregate and runs for the JSON document."""
    header = (f'{"path":16} {"level":>5} {"runs":>4} {"shop":>4} {"exact%":>7} {"issued%":>9} '
              f'{"F1":>6} {"events":>6} {"review%":>8}')
    lines = [header, '-' * len(header)]
    doc_live: dict = {}
    for lv in [*levels, 'all']:
        for path, per_level in live.items():
            runs = ([m for ms in per_level.values() for m in ms] if lv == 'all'
                    else per_level.get(lv, []))
            issued = aggregate(runs) if runs else None
            agg = aggregate([m.get('before_review', m) for m in runs]) if runs else None
            doc_live.setdefault(path, {})[str(lv)] = {'aggregate': agg, 'issued': issued,
                                                      'runs': runs}
            if agg:
                lines.append(row(path, str(lv), agg, issued))
        if offline:
            for mode in ('fused', 'weight'):
                lines.append(row(f'offline {mode}', str(lv),
                                 offline['modes'].get(mode, {}).get(str(lv))))
    return lines, doc_live


def main(argv: list[str] | None = None) -> int:
    root = root_or_exit()
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--store', default=str(root / 'config' / 'stores' / 'demo.yaml'))
    ap.add_argument('--seeds', default='9800:9805', help='first:last (inclusive), held out')
    ap.add_argument('--levels', default='2,3')
    ap.add_argument('--out', default=str(root / 'out' / 'live_bench'))
    ap.add_argument('--timeout', type=float, default=420.0, help='per live run [s]')
    ap.add_argument('--weight-only', action='store_true',
                    help='also run each scenario through the live weight-only graph')
    ap.add_argument('--reviewer-delay-s', type=float, default=None, metavar='S',
                    help='a simulated reviewer answers every review and spot check in the '
                    'console over HTTP, S seconds after it appears '
                    '(store_bench.console_reviewer); each run then waits for the cart to apply '
                    'the answers')
    ap.add_argument('--no-offline', action='store_true', help='skip the offline path')
    ap.add_argument('--trace', action='store_true',
                    help="write each camera run's tracker steps to <run>/tracker_trace.jsonl "
                    '(store_fusion.trace: replay a live run\'s tracking offline)')
    ap.add_argument('--reach-px', type=float, default=40.0,
                    help='a truth hand this close to a plate\'s reach point is a reach [px] '
                         '(bench_live_detector\'s rule)')
    ap.add_argument('--render-cache-keep', type=int, default=None, metavar='N',
                    help='renders the cache (store_sim.render_cache) keeps; default: every '
                    'scenario of this run plus the 6 it keeps anyway (with 6, a 12-scenario '
                    'run evicted its own renders and the next run rendered all again, '
                    '~95 s each); about 90 MB each')
    ap.add_argument('--params', default=str(root / 'config' / 'params' / 'store.yaml'),
                    help='the detector section gives the plates\' reach points per camera')
    ap.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                    help="passed to every run_store (a parameter other than the file's, to "
                    "measure an alternative; repeatable)")
    args = ap.parse_args(argv)
    try:
        seeds = seed_ranges(args.seeds)
    except ValueError as exc:
        ap.error(str(exc))
    levels = [int(x) for x in args.levels.split(',')]
    if args.render_cache_keep is not None and args.render_cache_keep < 1:
        ap.error(f'--render-cache-keep must be >= 1, got {args.render_cache_keep}')
    store = load_store(args.store)
    args.plates_px = reach_points(store, args.params)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = env.get('ROS_DOMAIN_ID') or str(random.randint(101, 200))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    live: dict[str, dict[int, list]] = {'live fused': {}, 'live weight': {}}
    render_s = 0.0
    keep = (args.render_cache_keep if args.render_cache_keep is not None
            else len(levels) * len(seeds) + 6)
    t0 = time.monotonic()
    for level in levels:
        for seed in seeds:
            name = f'L{level}_s{seed}'
            scenario_path = out / f'scenario_{name}.yaml'
            save_scenario(generate(store, seed, level), scenario_path)
            started = time.monotonic()
            how = ensure_render(args.store, str(scenario_path), out / name / 'cameras', 10.0,
                                [c.id for c in store.cameras], jobs=2, keep=keep,
                                log=lambda _: None)
            render_s += time.monotonic() - started
            m = run_live(args, env, scenario_path, out / name, cameras=True)
            live['live fused'].setdefault(level, []).append(m)
            det = detector_text(m.get('detector'))
            print(f'{name}: cameras ({how}) exit {m["exit_code"]}, {m["receipts_exact"]}/'
                  f'{m["shoppers"]} exact, {m["review_requests"]} reviews of '
                  f'{m["shelf_events"]} events, {det}, {m["wall_s"]:.0f} s; '
                  f'{machine_text(m["machine"])}'
                  + (f'; {summary_text(m["reviewer"])}' if 'reviewer' in m else ''),
                  flush=True)
            if args.weight_only:
                m = run_live(args, env, scenario_path, out / f'{name}_w', cameras=False)
                live['live weight'].setdefault(level, []).append(m)
                print(f'{name}: weight-only exit {m["exit_code"]}, {m["receipts_exact"]}/'
                      f'{m["shoppers"]} exact, {m["wall_s"]:.0f} s', flush=True)
    live_s = time.monotonic() - t0 - render_s
    offline = None if args.no_offline else run_offline(args, args.seeds, args.levels, out)
    lines, doc_live = receipts_table(live, offline, levels)
    doc = {'seeds': args.seeds, 'levels': levels, 'render_s': render_s, 'live_s': live_s,
           'live': doc_live, 'offline': None}
    if offline:
        doc['offline'] = {'modes': offline['modes'], 'wall_s': offline['wall_s'],
                          'detector_stats': offline.get('detector_stats')}
    lines += [''] + detector_table(live['live fused'])
    lines += [''] + reach_table({lv: [m.get('reach_frames') for m in runs]
                                 for lv, runs in live['live fused'].items()})
    machines = {f'L{lv}_s{seed}': m['machine'] for lv, runs in live['live fused'].items()
                for seed, m in zip(seeds, runs)}
    doc['machine'] = machines
    lines += ['', machine_line(list(machines.values()))]
    print('\n'.join(lines))
    print(f'live runs: {live_s:.0f} s wall (+ {render_s:.0f} s rendering); offline: '
          f'{offline["wall_s"]:.0f} s' if offline else f'live runs: {live_s:.0f} s')
    (out / 'live_bench.json').write_text(json.dumps(doc, indent=2, default=str) + '\n')
    print(f'written {out / "live_bench.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
