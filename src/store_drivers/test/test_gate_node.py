"""Node-level test: the gate_driver executable turns scans on a pty into GateEvents."""
import os
import pathlib
import random
import signal
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
EXE = REPO / 'install' / 'store_drivers' / 'lib' / 'store_drivers' / 'gate_driver'

pytestmark = [pytest.mark.graph,
              pytest.mark.skipif(not EXE.exists(), reason='store_drivers is not installed')]


def test_gate_driver_publishes_one_event_per_scan(tmp_path, monkeypatch, demo_store_path,
                                                  make_pty):
    import rclpy
    from rclpy.context import Context
    from store_common.ros import EVENT_QOS
    from store_interfaces.msg import GateEvent

    monkeypatch.setenv('ROS_DOMAIN_ID', str(random.randint(1, 100)))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    dev = make_pty('gate_exit')
    cmd = (f'. tools/env.sh && exec {EXE} --ros-args -r __ns:=/store '
           f'-p store_file:={demo_store_path} -p gate_id:=exit -p port:={dev.link} '
           f'-p dedupe_s:=1.0')
    proc = subprocess.Popen(['bash', '-c', cmd], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node('test_gate_listener', context=ctx)
    events = []
    node.create_subscription(GateEvent, '/store/gate_events', events.append, EVENT_QOS)
    executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    out = _Output(proc)
    try:
        deadline = time.monotonic() + 10.0
        sent = False
        while time.monotonic() < deadline and len(events) < 2:
            executor.spin_once(timeout_sec=0.05)
            assert proc.poll() is None, proc.stdout.read()
            if not sent and 'connected to' in out.peek():
                # a double read, a foreign code, then another shopper
                dev.write(b'WOS1:acct-0042\r\nWOS1:acct-0042\r')
                dev.write(b'http://example.com/x\rWOS1:acct-7\r\n')
                sent = True
        time.sleep(0.3)
        executor.spin_once(timeout_sec=0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=5.0)
        out = out.rest()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    assert [e.shopper_id for e in events] == ['acct-0042', 'acct-7'], out
    for e in events:
        assert e.kind == GateEvent.KIND_EXIT and e.gate_id == 'exit'
        assert e.header.frame_id == 'gate_exit'
        assert e.event_id == f'exit@{e.header.stamp.sec * 10**9 + e.header.stamp.nanosec}'
    assert "rejected scan b'http://example.com/x'" in out
    assert rc == 0, out


class _Output:
    """What the driver printed, read without blocking while it runs."""

    def __init__(self, proc):
        self.proc, self.text = proc, ''
        os.set_blocking(proc.stdout.fileno(), False)

    def peek(self) -> str:
        try:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            chunk = b''
        self.text += chunk.decode(errors='replace')
        return self.text

    def rest(self) -> str:
        os.set_blocking(self.proc.stdout.fileno(), True)
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            self.text += chunk.decode(errors='replace')
        return self.text
