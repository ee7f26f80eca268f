"""Run the store's node graph on a machine without launch_ros: one process per node.

The same :func:`store_bringup.graph.build_graph` description feeds ``launch/store.launch.py``.
Each node runs as its own process (its installed console script with ``--ros-args``), its output
prefixed with its label and copied to ``<run_dir>/logs/<label>.log``. Ctrl-C (or SIGTERM) stops
every node with SIGINT, then SIGTERM, then SIGKILL. A node that dies while the graph runs stops
the graph and makes the runner exit non-zero, unless the node is marked ``respawn``. The node
marked ``ends_run`` (the receipt recorder) ends the run with its own exit code. A stop is
reported as clean only if every node exited 0 on SIGINT without printing a traceback; otherwise
the runner names the nodes and exits non-zero (EXIT_UNCLEAN_STOP) even if the run itself ended
well.

Usage::

    run_store --store config/stores/demo.yaml --mode sim --scenario S.yaml --run-dir out/run1 \
        --record
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO

import yaml

from store_bringup.graph import build_graph, GraphOptions, NodeSpec, params_document, ros_args
from store_common.description import load_store, StoreConfigError
from store_common.fatal import EXIT_FATAL

EXIT_NODE_DIED = 1
EXIT_CONFIG = 2
EXIT_UNCLEAN_STOP = 3
EXIT_MISSING_RECEIPTS = 4
TRACEBACK = 'Traceback (most recent call last):'
_VARYING = re.compile(r'0x[0-9a-fA-F]+|\[\s*\d+(?:\.\d+)?\]|@\d+(?:\.\d+)?')


def same_fact(a: str, b: str) -> bool:
    """Whether two output lines say the same thing but for their time stamps (``[<s>]``,
    ``@<s>``) and memory addresses: the screen shows the first and a count, the log keeps
    all."""
    return _VARYING.sub('#', a.strip()) == _VARYING.sub('#', b.strip())


def local_stream_port(spec: NodeSpec) -> int | None:
    """The port of a camera driver's source when it is a stream on this machine (the
    simulator's): the driver is started once that port accepts connections."""
    if spec.executable != 'camera_driver':
        return None
    m = re.match(r'^https?://(?:127\.0\.0\.1|localhost):(\d+)/',
                 str(spec.parameters.get('source', '')))
    return int(m.group(1)) if m else None


def port_listening(port: int, host: str = '127.0.0.1', timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class RunDirError(ValueError):
    """The run directory cannot be created or written; ``str()`` names it."""


def executable_path(spec: NodeSpec) -> str:
    """The installed console script of ``spec`` (``<prefix>/lib/<package>/<executable>``)."""
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError
    try:
        prefix = get_package_prefix(spec.package)
    except PackageNotFoundError:
        raise FileNotFoundError(f'package {spec.package!r} is not installed (run make setup, '
                                f'then source tools/env.sh)') from None
    path = os.path.join(prefix, 'lib', spec.package, spec.executable)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f'executable {spec.executable!r} of package {spec.package!r} '
                                f'not found at {path}')
    return path


class NodeProcess:
    """One running node: its process, and a thread copying its output with a prefix."""

    def __init__(self, spec: NodeSpec, params_file: str, log_dir: pathlib.Path,
                 out: IO[str] | None, env: dict[str, str]):
        self.spec = spec
        self.params_file = params_file
        self.log_path = log_dir / f'{spec.label}.log'
        self.out = out
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.tracebacks = 0          # lines starting a Python traceback, over all starts
        self._pump_thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return self.spec.label

    def start(self) -> None:
        cmd = [executable_path(self.spec)] + ros_args(self.spec, self.params_file)
        log = open(self.log_path, 'a', buffering=1)
        log.write(f'--- start {time.strftime("%H:%M:%S")}: {" ".join(cmd)}\n')
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     start_new_session=True, text=True, bufsize=1)
        self.starts += 1
        self._pump_thread = threading.Thread(target=self._pump, args=(self.proc, log),
                                             daemon=True, name=f'log-{self.label}')
        self._pump_thread.start()

    def _pump(self, proc: subprocess.Popen, log: IO[str]) -> None:
        width = 22
        last, repeats = '', 0

        def say_repeats() -> None:
            if repeats and self.out is not None:
                with self._lock:
                    self.out.write(f'[{self.label:<{width}}] (the line above {repeats} more '
                                   f'time{"s" if repeats > 1 else ""}; all in {self.log_path})\n')
                    self.out.flush()

        for line in proc.stdout:
            if line.lstrip().startswith(TRACEBACK):
                self.tracebacks += 1
            log.write(line)
            if self.out is None:
                continue
            if last and same_fact(line, last):
                repeats += 1        # one line per fact on the screen: repeats are counted
                continue
            say_repeats()
            last, repeats = line, 0
            with self._lock:
                self.out.write(f'[{self.label:<{width}}] {line}')
                self.out.flush()
        say_repeats()
        log.close()

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout_s: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def drain(self, timeout_s: float = 2.0) -> None:
        """Wait until the output of the ended process has been read (its last lines counted)."""
        if self._pump_thread is not None and self.poll() is not None:
            self._pump_thread.join(timeout_s)


class Runner:
    """Starts, watches and stops the processes of a node graph."""

    def __init__(self, specs: list[NodeSpec], run_dir: str | pathlib.Path,
                 out: IO[str] | None = sys.stdout, env: dict[str, str] | None = None,
                 stop_timeout_s: float = 10.0):
        self.specs = specs
        self.run_dir = pathlib.Path(run_dir)
        self.params_file = str(self.run_dir / 'params.yaml')
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / 'logs').mkdir(exist_ok=True)
            pathlib.Path(self.params_file).write_text(
                yaml.safe_dump(params_document(specs), sort_keys=False))
        except OSError as exc:
            raise RunDirError(f'run directory {self.run_dir}: cannot create or write '
                              f'{exc.filename or self.run_dir}: {exc.strerror or exc}; pick a '
                              f'writable --run-dir with free space') from None
        self.out = out
        env = dict(os.environ if env is None else env)
        env.setdefault('PYTHONUNBUFFERED', '1')
        env.setdefault('RCUTILS_COLORIZED_OUTPUT', '0')
        env.setdefault('RCUTILS_CONSOLE_OUTPUT_FORMAT', '[{severity}] [{time}] {message}')
        self.procs = {s.label: NodeProcess(s, self.params_file, self.run_dir / 'logs', out, env)
                      for s in specs}
        self.stop_timeout_s = stop_timeout_s
        self.stream_wait_s = 60.0
        self._stopping = False
        self._expected_exit: set[str] = set()
        self._deferred: dict[str, int] = {}      # label -> local stream port it waits for
        self._deferred_since = 0.0

    def say(self, text: str) -> None:
        if self.out is not None:
            self.out.write(f'[{"runner":<22}] {text}\n')
            self.out.flush()

    def start(self) -> None:
        """Start every node; a camera driver of a stream on this machine (the simulator's)
        waits until that port accepts connections (``check`` starts it, or after
        ``stream_wait_s`` anyway), so no driver fills the screen with refused connections."""
        for label, p in self.procs.items():
            port = local_stream_port(p.spec)
            if port is not None and not port_listening(port):
                self._deferred[label] = port
                continue
            p.start()
        self._deferred_since = time.monotonic()
        started = [lb for lb in self.procs if lb not in self._deferred]
        self.say(f'started {len(started)} nodes: {", ".join(started)}')
        if self._deferred:
            ports = sorted(set(self._deferred.values()))
            self.say(f'{len(self._deferred)} camera drivers start once the camera streams '
                     f'listen (port {", ".join(map(str, ports))})')

    def _start_deferred(self) -> None:
        if not self._deferred or self._stopping:
            return
        late = time.monotonic() - self._deferred_since > self.stream_wait_s
        up = {port for port in set(self._deferred.values()) if port_listening(port)}
        ready = [lb for lb, port in self._deferred.items() if port in up or late]
        for lb in ready:
            del self._deferred[lb]
            self.procs[lb].start()
        if ready:
            self.say(f'started {", ".join(ready)}' + (
                f' (the streams did not listen within {self.stream_wait_s:g} s)' if late
                else ' (camera streams listening)'))

    def node(self, label: str) -> NodeProcess:
        try:
            return self.procs[label]
        except KeyError:
            raise KeyError(f'no node {label!r}; nodes: {", ".join(self.procs)}') from None

    def kill(self, label: str, sig: int = signal.SIGKILL, timeout_s: float = 10.0) -> int | None:
        """Stop one node on purpose (tests: crash the cart node); the graph keeps running."""
        p = self.node(label)
        self._expected_exit.add(label)
        p.signal(sig)
        return p.wait(timeout_s)

    def restart(self, label: str) -> None:
        p = self.node(label)
        if p.poll() is None:
            raise RuntimeError(f'node {label} is still running')
        p.start()
        # only now: a look at the processes in between would take the dead one for a crash
        self._expected_exit.discard(label)
        self.say(f'restarted {label}')

    def check(self) -> int | None:
        """One look at the processes. Returns an exit code when the run is over, else None."""
        self._start_deferred()
        for label, p in self.procs.items():
            code = p.poll()
            if code is None or label in self._expected_exit:
                continue
            if p.spec.ends_run:
                self.say(f'{label} finished with exit code {code}: ending the run')
                return code
            if p.spec.respawn and not self._stopping:
                self.say(f'{label} exited with code {code}: respawning')
                p.start()
                continue
            why = (' (a fatal error: disk full, read-only or damaged database, ...)'
                   if code == EXIT_FATAL else '')
            self.say(f'ERROR: node {label} ({p.spec.package}/{p.spec.executable}) died with '
                     f'exit code {code}{why}; see {p.log_path}')
            return EXIT_NODE_DIED
        return None

    def wait(self, timeout_s: float | None = None, period_s: float = 0.2) -> int | None:
        """Watch the graph until the run ends (exit code) or ``timeout_s`` passes (None)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while deadline is None or time.monotonic() < deadline:
            code = self.check()
            if code is not None:
                return code
            time.sleep(period_s)
        return None

    def stop(self) -> list[str]:
        """Stop every node: SIGINT, then SIGTERM, then SIGKILL for what is left.

        Returns what was not clean (empty if nothing): a node that exited non-zero or by a
        signal, or printed a traceback while stopping; each is also said.
        """
        self._stopping = True
        self._deferred.clear()
        alive = [p for p in self.procs.values() if p.proc is not None and p.poll() is None]
        tracebacks_before = {label: p.tracebacks for label, p in self.procs.items()}
        for sig, name in ((signal.SIGINT, 'SIGINT'), (signal.SIGTERM, 'SIGTERM'),
                          (signal.SIGKILL, 'SIGKILL')):
            if not alive:
                break
            if sig != signal.SIGINT:
                self.say(f'{name} to {", ".join(p.label for p in alive)}')
            if sig == signal.SIGKILL:
                # where they hang: run_node dumps every thread's Python stack on SIGUSR1
                self.say(f'stacks of {", ".join(p.label for p in alive)} (SIGUSR1) in their '
                         'logs')
                for p in alive:
                    p.signal(signal.SIGUSR1)
                time.sleep(0.5)
            for p in reversed(alive):
                p.signal(sig)
            deadline = time.monotonic() + self.stop_timeout_s / 2
            for p in alive:
                p.wait(max(0.0, deadline - time.monotonic()))
            alive = [p for p in alive if p.poll() is None]
        problems = []
        for label, p in self.procs.items():
            if p.proc is None or label in self._expected_exit:
                continue
            p.drain()
            code = p.poll()
            if code is not None and code < 0:
                problems.append(f'{label} was ended by {signal.Signals(-code).name}')
            elif code:
                problems.append(f'{label} exited with code {code}')
            new = p.tracebacks - tracebacks_before[label]
            if new:
                problems.append(f'{label} printed {new} traceback{"s" if new > 1 else ""} '
                                f'while stopping')
        if problems:
            self.say(f'ERROR: the graph did not stop cleanly: {"; ".join(problems)}; see the '
                     f'logs in {self.run_dir / "logs"}')
        else:
            self.say('all nodes stopped cleanly')
        return problems

    def finish(self, code: int | None) -> int:
        """Stop the graph; the exit code of the run: ``code`` (None: 0), or EXIT_UNCLEAN_STOP
        if the run itself went well but the stop did not."""
        problems = self.stop()
        code = 0 if code is None else code
        return EXIT_UNCLEAN_STOP if problems and code == 0 else code

    def __enter__(self) -> 'Runner':
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def parse_set(items: list[str]) -> dict[str, dict]:
    """``node.param=value`` overrides (value parsed as YAML) into {node: {param: value}}."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition('=')
        node, dot, param = key.partition('.')
        if not sep or not dot or not node or not param:
            raise ValueError(f'--set {item!r}: expected NODE.PARAM=VALUE, e.g. cart.hold_s=1.5')
        out.setdefault(node, {})[param] = yaml.safe_load(value)
    return out


def default_params_file() -> str:
    ws = os.environ.get('STORE_WS')
    if ws and os.path.isfile(os.path.join(ws, 'config', 'params', 'store.yaml')):
        return os.path.join(ws, 'config', 'params', 'store.yaml')
    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory('store_bringup'), 'config', 'params',
                        'store.yaml')


def prerender(specs: list, say) -> str | None:
    """sim with cameras: render every camera video before any node starts, so that no clock,
    timeout or watchdog of the run counts render time (the sim node then finds the render
    current; ``store_sim.render_cache`` keeps it for the next run). Progress goes to ``say``."""
    for s in specs:
        p = s.parameters
        if s.package == 'store_sim' and s.executable == 'sim' and p.get('camera_stream_port'):
            from store_sim.render_cache import ensure_render
            store = load_store(p['store_file'])
            return ensure_render(p['store_file'], p['scenario_file'],
                                 os.path.join(p['run_dir'], 'cameras'),
                                 float(p.get('camera_fps', 10.0)),
                                 [c.id for c in store.cameras],
                                 jobs=int(p.get('render_jobs', 2)), log=say)
    return None


def port_problem(port: int, host: str = '127.0.0.1') -> str | None:
    """Why ``port`` cannot be listened on at ``host`` (it is taken, or not allowed), or None."""
    import socket
    sock = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        return f'{host} port {port}: {exc.strerror or exc}'
    finally:
        sock.close()
    return None


def free_port(host: str = '127.0.0.1') -> int:
    """A port nothing listens on now (the OS picks it)."""
    import socket
    with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def missing_receipts(run_dir: str | pathlib.Path, scenario_file: str | None) -> list[str]:
    """Shoppers of the scenario without a receipt in ``<run_dir>/receipts.jsonl`` (the
    recorder's output); empty when the scenario cannot be read (nothing is known missing)."""
    import json
    try:
        doc = yaml.safe_load(pathlib.Path(scenario_file).read_text()) if scenario_file else None
    except (OSError, yaml.YAMLError):
        return []
    doc = doc.get('scenario', doc) if isinstance(doc, dict) else {}
    shoppers = doc.get('shoppers') if isinstance(doc, dict) else None
    expected = {str(s['id']) for s in shoppers or () if isinstance(s, dict) and 'id' in s}
    have = set()
    try:
        with open(pathlib.Path(run_dir) / 'receipts.jsonl') as f:
            for line in f:
                try:
                    have.add(str(json.loads(line).get('shopper_id', '')))
                except (ValueError, AttributeError):
                    continue
    except OSError:
        pass
    return sorted(expected - have)


def _ports(args, specs: list[NodeSpec]) -> str | None:
    """Check (and for 0, pick) the console and camera stream ports before any node starts;
    an error naming the port, or None."""
    for s in specs:
        if s.package == 'store_review' and s.executable == 'review':
            host, port = str(s.parameters.get('host', '127.0.0.1')), s.parameters.get('port')
            if port:      # 0: the node picks a free one and writes it to review_url.txt
                why = port_problem(int(port), host)
                if why:
                    return (f'review console: {why} (set another with --console-port, or 0 '
                            'for a free one)')
        if s.package == 'store_sim' and s.executable == 'sim' and \
                s.parameters.get('camera_stream_port'):
            port = int(s.parameters['camera_stream_port'])
            why = port_problem(port)
            if why:
                return (f'simulated camera streams: {why} (set another with --camera-port, or '
                        '0 for a free one)')
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='run_store', description=__doc__.split('\n\n')[0])
    ap.add_argument('--store', required=True, help='store description YAML')
    ap.add_argument('--mode', choices=('hardware', 'sim', 'replay'), default='hardware')
    ap.add_argument('--scenario', help='sim: scenario file to play')
    ap.add_argument('--run-dir', help='where logs, params, pty links and recordings go')
    ap.add_argument('--params', help='per-node parameters YAML (default config/params/store.yaml)')
    ap.add_argument('--db', help='cart database path (default <run-dir>/carts.sqlite)')
    ap.add_argument('--record', action='store_true',
                    help='add the receipt recorder; the run ends when it has every receipt')
    ap.add_argument('--use-sim-time', action='store_true', help='nodes follow /clock')
    ap.add_argument('--bag', help='replay: bag to play into the graph (its /clock drives the '
                                  'nodes)')
    ap.add_argument('--bag-rate', type=float, default=1.0, help='replay: time scale of the bag')
    ap.add_argument('--bag-topics', help='replay: comma-separated topics to play (default all)')
    ap.add_argument('--record-bag', help='record --record-topics to this new bag')
    ap.add_argument('--record-topics', default='sensors',
                    help='with --record-bag: a preset (sensors: what a replay rebuilds the '
                    'graph from; all) or comma-separated topic names, relative ones in the '
                    'namespace (e.g. sensors,shopper_tracks,fused_shelf_events)')
    ap.add_argument('--render-png', help='write a top-down PNG of the store markers here '
                                         '(every 2 s and at the end)')
    ap.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                    help='override a parameter of every instance of NODE')
    ap.add_argument('--cameras', action='store_true',
                    help='camera drivers, the detector, the shopper tracker and the fusion '
                         'node; the cart takes fused shelf events (sim: the simulator renders '
                         'and streams every camera first)')
    ap.add_argument('--console-port', type=int, default=None, metavar='PORT',
                    help='review console port (default: the parameters file, 8080); 0 picks a '
                         'free one (written to <run-dir>/review_url.txt); a taken port is an '
                         'error')
    ap.add_argument('--camera-port', type=int, default=None, metavar='PORT',
                    help='sim with --cameras: port of the simulated camera streams (default: '
                         'derived from the run dir); 0 picks a free one; a taken port is an '
                         'error')
    ap.add_argument('--timeout', type=float, default=None,
                    help='stop after this many seconds; with --record, exit non-zero '
                         f'({EXIT_MISSING_RECEIPTS}) if a shopper of the scenario has no receipt '
                         'by then')
    args = ap.parse_args(argv)
    for name in ('console_port', 'camera_port'):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 65535:
            print(f'run_store: error: --{name.replace("_", "-")} {value} is not a port '
                  '(0..65535)', file=sys.stderr)
            return EXIT_CONFIG
    try:
        overrides = parse_set(args.set)
    except ValueError as exc:
        print(f'run_store: error: {exc}', file=sys.stderr)
        return EXIT_CONFIG
    if args.console_port is not None:
        overrides.setdefault('review', {})['port'] = args.console_port
    camera_port = args.camera_port
    if camera_port == 0:
        camera_port = free_port()

    run_dir = args.run_dir or os.path.join('out', 'runs', time.strftime('%Y%m%d-%H%M%S'))
    try:
        store = load_store(args.store)
        specs = build_graph(store, GraphOptions(
            mode=args.mode, params_file=args.params or default_params_file(), run_dir=run_dir,
            scenario_file=args.scenario, db_path=args.db, record=args.record,
            use_sim_time=args.use_sim_time, overrides=overrides, bag_file=args.bag,
            bag_rate=args.bag_rate, bag_topics=args.bag_topics, record_bag=args.record_bag,
            record_topics=args.record_topics,
            render_png=args.render_png, cameras=args.cameras, camera_port=camera_port))
        problem = _ports(args, specs)
        if problem:
            raise ValueError(problem)
        runner = Runner(specs, run_dir)
    except (StoreConfigError, ValueError, FileNotFoundError) as exc:
        print(f'run_store: error: {exc}', file=sys.stderr)
        return EXIT_CONFIG

    try:
        prerender(specs, runner.say)
    except KeyboardInterrupt:
        print('run_store: interrupted while rendering', file=sys.stderr)
        return 130
    except (StoreConfigError, ValueError, OSError, RuntimeError) as exc:
        print(f'run_store: error: rendering the cameras: {exc}', file=sys.stderr)
        return EXIT_CONFIG

    stop = threading.Event()

    def on_signal(signum, frame):
        runner.say(f'received {signal.Signals(signum).name}: stopping')
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        runner.start()
    except FileNotFoundError as exc:
        print(f'run_store: error: {exc}', file=sys.stderr)
        runner.stop()
        return EXIT_CONFIG
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    code = None
    while not stop.is_set():
        code = runner.check()
        if code is not None:
            break
        if deadline is not None and time.monotonic() > deadline:
            missing = missing_receipts(run_dir, args.scenario) if args.record else []
            if missing:
                runner.say(f'ERROR: timeout of {args.timeout:g} s reached with '
                           f'{len(missing)} receipt{"s" if len(missing) > 1 else ""} missing '
                           f'({", ".join(missing)}); exit code {EXIT_MISSING_RECEIPTS}')
                code = EXIT_MISSING_RECEIPTS
            else:
                runner.say(f'timeout of {args.timeout:g} s reached')
            break
        stop.wait(0.2)
    return runner.finish(code)


if __name__ == '__main__':
    sys.exit(main())
