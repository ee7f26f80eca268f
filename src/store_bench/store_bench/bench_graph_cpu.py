"""Benchmark: where the live graph's CPU goes, per node process.

Starts ``run_store`` (the graph ``ros2 launch`` runs, same parameters file) with the arguments
after ``--``, waits until the scenario has started (the simulator's first ``truth t=`` line), then
reads every node process's CPU time from ``/proc`` at the start and the end of a window and prints
the cores each node used (CPU seconds / wall seconds), sorted, with the total. The run is then
stopped with SIGINT (``--finish`` lets it end by itself). Linux only.

    . tools/env.sh
    bench_graph_cpu --window 20 -- --store config/stores/demo.yaml --mode sim \
        --scenario config/scenarios/demo.yaml --run-dir out/cpu --cameras

The figures are per process: a node's Python, its DDS threads and its middleware included.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

_NODE = re.compile(r'^__node:=(.+)$')
_NS = re.compile(r'^__ns:=(.*)$')


def _stat_fields(pid: int, proc_root: str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 on), or None once the
    process is gone. The name (field 2) may hold spaces and parentheses: split after its last
    ')'."""
    try:
        with open(f'{proc_root}/{pid}/stat') as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(')') + 2:].split()


def read_cpu_s(pid: int, proc_root: str = '/proc') -> float | None:
    """User + system CPU seconds of ``pid`` (threads included), or None once it is gone."""
    fields = _stat_fields(pid, proc_root)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')  # utime, stime


def parent_pid(pid: int, proc_root: str = '/proc') -> int | None:
    fields = _stat_fields(pid, proc_root)
    return None if fields is None else int(fields[1])


def node_label(argv: list[str]) -> str:
    """``ns/node`` from a node process's ``--ros-args -r __node:=... -r __ns:=...``; else the
    program's file name."""
    name = ns = None
    for a in argv:
        m = _NODE.match(a)
        if m:
            name = m.group(1)
        m = _NS.match(a)
        if m:
            ns = m.group(1)
    if name is None:
        prog = next((a for a in argv if not a.startswith('-') and 'python' not in
                     os.path.basename(a)), argv[0] if argv else '?')
        return os.path.basename(prog)
    ns = (ns or '').strip('/')
    return f'{ns}/{name}' if ns else name


def read_argv(pid: int, proc_root: str = '/proc') -> list[str]:
    try:
        with open(f'{proc_root}/{pid}/cmdline', 'rb') as f:
            return [a.decode(errors='replace') for a in f.read().split(b'\0') if a]
    except OSError:
        return []


def descendants(root: int, proc_root: str = '/proc') -> list[int]:
    """Every live process below ``root`` (children, their children, ...)."""
    parents: dict[int, int] = {}
    for entry in os.listdir(proc_root):
        if entry.isdigit():
            ppid = parent_pid(int(entry), proc_root)
            if ppid is not None:
                parents[int(entry)] = ppid
    found, frontier = [], {root}
    while frontier:
        kids = {p for p, pp in parents.items() if pp in frontier}
        found += sorted(kids)
        frontier = kids
    return found


def cores_per_label(before: dict[int, float], after: dict[int, float],
                    labels: dict[int, str], wall_s: float) -> dict[str, float]:
    """Cores per label over a window: CPU seconds spent by the processes alive at both ends,
    divided by the window. Several processes with one label add up."""
    out: dict[str, float] = {}
    for pid, t1 in after.items():
        t0 = before.get(pid)
        if t0 is None:
            continue
        label = labels.get(pid, str(pid))
        out[label] = out.get(label, 0.0) + (t1 - t0) / wall_s
    return out


def table(cores: dict[str, float]) -> str:
    rows = sorted(cores.items(), key=lambda kv: -kv[1])
    lines = ['| process | cores |', '|---|---|']
    lines += [f'| {label} | {c:.3f} |' for label, c in rows]
    lines.append(f'| **total** | **{sum(cores.values()):.3f}** |')
    return '\n'.join(lines)


def thread_group(comm: str) -> str:
    """A thread's name with its numbers dropped (``dds.udp.7411`` -> ``dds.udp.#``)."""
    return re.sub(r'\d+', '#', comm.strip())


def thread_times(pid: int, proc_root: str = '/proc') -> dict[tuple[int, str], float]:
    """CPU seconds per thread of ``pid``, keyed by (thread id, thread group name)."""
    out = {}
    try:
        tids = os.listdir(f'{proc_root}/{pid}/task')
    except OSError:
        return out
    for tid in tids:
        cpu = read_cpu_s(int(tid), f'{proc_root}/{pid}/task')
        try:
            with open(f'{proc_root}/{pid}/task/{tid}/comm') as f:
                comm = f.read()
        except OSError:
            continue
        if cpu is not None:
            out[(int(tid), thread_group(comm))] = cpu
    return out


def sample(root: int, window_s: float) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Cores per node label, and per label the cores per thread group, over ``window_s``."""
    pids = descendants(root)
    labels = {p: node_label(read_argv(p)) for p in pids}
    t0 = time.monotonic()
    before = {p: c for p in pids if (c := read_cpu_s(p)) is not None}
    threads0 = {p: thread_times(p) for p in pids}
    time.sleep(window_s)
    after = {p: c for p in pids if (c := read_cpu_s(p)) is not None}
    threads1 = {p: thread_times(p) for p in pids}
    wall_s = time.monotonic() - t0
    per_thread: dict[str, dict[str, float]] = {}
    for p, t1 in threads1.items():
        groups = per_thread.setdefault(labels[p], {})
        for key, c in t1.items():
            c0 = threads0.get(p, {}).get(key)
            if c0 is not None:
                groups[key[1]] = groups.get(key[1], 0.0) + (c - c0) / wall_s
    return cores_per_label(before, after, labels, wall_s), per_thread


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if '--' not in argv:
        print('bench_graph_cpu: give run_store arguments after --', file=sys.stderr)
        return 2
    cut = argv.index('--')
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--window', type=float, default=20.0, help='sampling window [s]')
    ap.add_argument('--delay', type=float, default=2.0,
                    help='start sampling this long after the scenario starts [s]')
    ap.add_argument('--start-timeout', type=float, default=300.0,
                    help='give up if the scenario has not started after this long [s]')
    ap.add_argument('--finish', action='store_true', help='let the run end by itself')
    ap.add_argument('--threads', type=int, default=0,
                    help='also break the N busiest processes down by thread name')
    ap.add_argument('--json', help='write {label: cores} here')
    args = ap.parse_args(argv[:cut])
    cmd = ['run_store'] + argv[cut + 1:]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1)
    started = threading.Event()
    run_log: list[str] = []

    def pump():
        for line in proc.stdout:
            run_log.append(line)
            if 'truth t=' in line:
                started.set()

    threading.Thread(target=pump, daemon=True).start()
    if not started.wait(args.start_timeout):
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        sys.stdout.write(''.join(run_log[-30:]))
        print(f'bench_graph_cpu: the scenario did not start within {args.start_timeout:g} s',
              file=sys.stderr)
        return 1
    time.sleep(args.delay)
    cores, per_thread = sample(proc.pid, args.window)
    print(f'CPU per process over {args.window:g} s, from {args.delay:g} s after the scenario '
          f'started ({os.cpu_count()} CPUs): {" ".join(cmd)}')
    print(table(cores))
    for label, _ in sorted(cores.items(), key=lambda kv: -kv[1])[:args.threads]:
        groups = sorted(per_thread.get(label, {}).items(), key=lambda kv: -kv[1])
        busy = [f'{g} {c:.3f}' for g, c in groups if c >= 0.001]
        print(f'{label} by thread: ' + ', '.join(busy))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(cores, indent=1, sort_keys=True))
    if not args.finish:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
