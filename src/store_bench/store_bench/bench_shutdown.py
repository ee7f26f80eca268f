"""How often Ctrl-C on a loaded multi-threaded node ends untidily: count, over repeated runs.

Each run starts one node process through ``run_node(threads=2)`` (as the load cell driver does)
that publishes 1 KB messages from a 1 ms timer in one callback group and takes them back in
another, the publishing callback logging ``poll failed: ...`` on any exception like the driver;
after a random 0.3-1.3 s of load it gets SIGINT (as the runner sends it). A run is untidy if the
process prints a traceback, logs ``poll failed``/``context is invalid``, exits non-zero or has to
be killed. Prints the counts.

Measured (2 shared cores, --runs 40, 2 outside publishers): run_node before the orderly stop
(bc3fcbf^) 8/40 untidy (7 "poll failed", 5 "context is invalid", 1 traceback), after 0/40.

    bench_shutdown --runs 20                                 # run_node of HEAD
    git show <rev>:src/store_common/store_common/ros.py > /tmp/ros_old.py
    bench_shutdown --runs 20 --ros-module /tmp/ros_old.py    # another run_node
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import random
import signal
import subprocess
import sys
import time

SELF = 'store_bench.bench_shutdown'   # run again as a module for the child processes


def child(ros_module: str | None) -> int:
    if ros_module:
        spec = importlib.util.spec_from_file_location('ros_under_test', ros_module)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        run_node = mod.run_node
    else:
        from store_common.ros import run_node
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from std_msgs.msg import String

    class Loaded(Node):
        def __init__(self):
            super().__init__('shutdown_bench')
            self.pub = self.create_publisher(String, 'load', QoSProfile(depth=50))
            self.create_subscription(String, 'load', self._on_msg, QoSProfile(depth=50),
                                     callback_group=MutuallyExclusiveCallbackGroup())
            self.create_timer(0.001, self._poll,
                              callback_group=MutuallyExclusiveCallbackGroup())
            self.msg = String(data='x' * 1024)
            self.received = 0

        def _poll(self):
            try:
                self.pub.publish(self.msg)
            except Exception as exc:  # noqa: BLE001 - as the load cell driver does
                self.get_logger().error(f'poll failed: {exc!r}')

        def _on_msg(self, msg):
            self.received += 1
            sum(range(2000))          # some work per message, as a real callback does
            if self.received == 50:
                self.get_logger().info('under load')

    return run_node('shutdown_bench', Loaded, threads=2)


def publisher() -> int:
    """Outside load: another process publishing on the node's topic as fast as a 1 ms timer."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile
    from std_msgs.msg import String
    try:
        with rclpy.init():
            node = rclpy.create_node('shutdown_bench_load')
            pub = node.create_publisher(String, 'load', QoSProfile(depth=50))
            msg = String(data='y' * 1024)
            node.create_timer(0.001, lambda: pub.publish(msg))
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


def one_run(args, env) -> dict:
    cmd = [sys.executable, '-m', SELF, '--child']
    if args.ros_module:
        cmd += ['--ros-module', args.ros_module]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    lines = []
    t0 = time.monotonic()
    for line in proc.stdout:           # until the node is under load
        lines.append(line)
        if 'under load' in line or time.monotonic() - t0 > 30:
            break
    time.sleep(random.uniform(0.3, 1.3))
    os.killpg(proc.pid, signal.SIGINT)
    killed = False
    try:
        out, _ = proc.communicate(timeout=args.stop_timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        killed = True
    text = ''.join(lines) + out
    return {'code': proc.returncode, 'killed': killed, 'traceback': 'Traceback' in text,
            'poll_failed': 'poll failed' in text, 'context_invalid': 'context is invalid' in text,
            'convert': 'Unable to convert call argument' in text, 'text': text}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--runs', type=int, default=20)
    ap.add_argument('--ros-module', help='a ros.py file whose run_node to use (default: the '
                                         'installed store_common.ros)')
    ap.add_argument('--stop-timeout-s', type=float, default=10.0)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--show', action='store_true', help='print the output of untidy runs')
    ap.add_argument('--load-procs', type=int, default=2,
                    help='other processes publishing on the topic the whole time')
    ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--publisher', action='store_true', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.ros_module)
    if args.publisher:
        return publisher()
    random.seed(args.seed)
    env = dict(os.environ, PYTHONUNBUFFERED='1', RCUTILS_COLORIZED_OUTPUT='0',
               ROS_DOMAIN_ID=str(random.randint(1, 100)),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    counts = dict.fromkeys(('untidy', 'traceback', 'poll_failed', 'context_invalid', 'convert',
                            'nonzero_exit', 'killed'), 0)
    loaders = [subprocess.Popen([sys.executable, '-m', SELF, '--publisher'], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True) for _ in range(args.load_procs)]
    try:
        results = [one_run(args, env) for _ in range(args.runs)]
    finally:
        for p in loaders:
            os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    for i, r in enumerate(results):
        untidy = (r['traceback'] or r['poll_failed'] or r['context_invalid'] or r['code'] != 0
                  or r['killed'])
        counts['untidy'] += untidy
        for k in ('traceback', 'poll_failed', 'context_invalid', 'convert', 'killed'):
            counts[k] += r[k]
        counts['nonzero_exit'] += r['code'] != 0
        if untidy and args.show:
            print(f'--- run {i}: exit {r["code"]}\n{r["text"][-3000:]}')
    print(f'run_node from {args.ros_module or "store_common.ros"}: {args.runs} runs, SIGINT '
          f'under load (threads=2, {args.load_procs} outside publishers)')
    for k, v in counts.items():
        print(f'  {k:<16} {v:3d} / {args.runs}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
