"""Nodes run through store_common.ros.run_node for test_run_node.py: ``MODE [ARG] [--ros-args]``.

disk_full DB      a timer writes rows to DB whose size is capped (PRAGMA max_page_count): the
                  write fails for real with SQLITE_FULL inside the executor's callback
disk_full_thread DB  the same from a plain thread that swallows the error (like an HTTP handler)
param             declares hold_s (float, 0..30) and logs its value, then spins
load              threads=2, a 1 ms timer publishes and a subscription takes, until stopped
slow              threads=2, a timer whose callback takes 0.3 s: one is always running
hang_teardown DB  writes a row to DB, closes it in close(), then destroy_node blocks for good
                  (as Fast DDS once did destroying a writer)
hang_teardown_gil DB  as hang_teardown, but destroy_node blocks inside a C call that keeps the
                  interpreter's lock (no Python thread runs meanwhile)
hang_startup      logs 'starting' from its constructor and stays in it up to 60 s (a slow
                  start-up: a signal lands there), and destroy_node blocks for good
"""
import sys
import threading
import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile
from std_msgs.msg import String

from store_common.ros import declare, run_node
from toy_db import ToyDb as _ToyDb, ToyError


class ToyDb(_ToyDb):
    """ToyDb that fills its capped file: the write fails with SQLITE_FULL."""

    def fill(self) -> None:
        pages = self._conn.execute('PRAGMA page_count').fetchone()[0]
        self._conn.execute(f'PRAGMA max_page_count = {pages + 3}')
        for _ in range(1000):
            with self.transaction():
                self._w('INSERT INTO rows (body) VALUES (?)', ('z' * 1000,))


class DiskFull(Node):
    def __init__(self, path, in_thread=False):
        super().__init__('disk_full')
        self.db = ToyDb(path, thread_safe=True)
        if in_thread:
            threading.Thread(target=self._swallowing, daemon=True).start()
        else:
            self.create_timer(0.05, self.db.fill)

    def _swallowing(self):
        try:
            self.db.fill()
        except ToyError as exc:
            print(f'handler answered 500: {exc}', flush=True)

    def close(self):
        self.db.close()


class Param(Node):
    def __init__(self):
        super().__init__('param')
        hold_s = declare(self, 'hold_s', 1.0, 'Hold [s].', lo=0.0, hi=30.0, read_only=True)
        self.get_logger().info(f'hold_s={hold_s!r} ready')


class Load(Node):
    def __init__(self):
        super().__init__('load')
        self.pub = self.create_publisher(String, 'load', QoSProfile(depth=50))
        self.create_subscription(String, 'load', self._on_msg, QoSProfile(depth=50),
                                 callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(0.001, self._poll, callback_group=MutuallyExclusiveCallbackGroup())
        self.n = 0

    def _poll(self):
        try:
            self.pub.publish(String(data='x' * 1024))
        except Exception as exc:  # noqa: BLE001 - as the load cell driver does
            self.get_logger().error(f'poll failed: {exc!r}')

    def _on_msg(self, msg):
        self.n += 1
        if self.n == 50:
            self.get_logger().info('under load')


class Slow(Node):
    def __init__(self):
        super().__init__('slow')
        self.n = 0
        self.create_timer(0.02, self._work)

    def _work(self):
        time.sleep(0.3)
        self.n += 1
        if self.n == 2:
            self.get_logger().info('busy')


class HangTeardown(Node):
    def __init__(self, path):
        super().__init__('hang_teardown')
        self.db = _ToyDb(path)
        self.get_logger().info('ready')

    def close(self):
        with self.db.transaction():
            self.db._w('INSERT INTO rows (body) VALUES (?)', ('closed',))
        self.db.close()
        print('data closed', flush=True)

    def destroy_node(self):
        threading.Event().wait()        # never returns


class HangTeardownGil(HangTeardown):
    def destroy_node(self):
        import ctypes
        ctypes.PyDLL(None).sleep(60)    # libc sleep with the GIL held (PyDLL keeps it)


class HangStartup(Node):
    def __init__(self):
        super().__init__('hang_startup')
        self.pub = self.create_publisher(String, 'hang_startup', QoSProfile(depth=1))
        self.get_logger().info('starting')
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            time.sleep(0.05)

    def destroy_node(self):
        threading.Event().wait()        # never returns


def main(argv):
    mode = argv[1]
    if mode == 'disk_full':
        return run_node('disk_full', lambda: DiskFull(argv[2]), (ToyError,), args=argv[3:])
    if mode == 'disk_full_thread':
        return run_node('disk_full', lambda: DiskFull(argv[2], True), (ToyError,),
                        args=argv[3:], threads=2)
    if mode == 'param':
        return run_node('param', Param, (), args=argv[2:])
    if mode == 'slow':
        return run_node('slow', Slow, (), args=argv[2:], threads=2)
    if mode == 'load':
        return run_node('load', Load, (), args=argv[2:], threads=2)
    if mode == 'hang_teardown':
        return run_node('hang_teardown', lambda: HangTeardown(argv[2]), (), args=argv[3:],
                        teardown_timeout_s=1.0)
    if mode == 'hang_teardown_gil':
        return run_node('hang_teardown', lambda: HangTeardownGil(argv[2]), (), args=argv[3:],
                        teardown_timeout_s=1.0)
    if mode == 'hang_startup':
        return run_node('hang_startup', HangStartup, (), args=argv[2:], teardown_timeout_s=1.0)
    raise SystemExit(f'unknown mode {mode}')


if __name__ == '__main__':
    sys.exit(main(sys.argv))
