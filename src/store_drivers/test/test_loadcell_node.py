"""Node-level test: the loadcell_driver executable against a pseudo-terminal fed with rows.

Starts the installed driver as a subprocess (isolated by a random ROS_DOMAIN_ID on localhost),
feeds encoded rows mixed with garbage, subscribes with rclpy here and checks calibrated weights,
diagnostics, the tare service, survival of a device that disappears and comes back, and a clean
exit on SIGINT.
"""
import math
import os
import pathlib
import random
import signal
import subprocess
import threading
import time

import pytest

from store_common import plate_protocol as pp

REPO = pathlib.Path(__file__).resolve().parents[3]
EXE = REPO / 'install' / 'store_drivers' / 'lib' / 'store_drivers' / 'loadcell_driver'
NS = '/store/pc_g1'
GRAMS_P1 = 500.0          # load on g1.s1.p1 (channel 0); every other plate is empty

pytestmark = [pytest.mark.graph,
              pytest.mark.skipif(not EXE.exists(), reason='store_drivers is not installed')]


class Feeder(threading.Thread):
    """A 40 Hz controller flushing 4 rows every 100 ms, with garbage between them."""

    def __init__(self, pty, tares, gpc0):
        super().__init__(daemon=True)
        self.pty, self.tares = pty, tares
        self.counts0 = tares[0] + round(GRAMS_P1 / gpc0)
        self.stop = threading.Event()
        self.seq = 0
        self.rng = random.Random(5)
        self.jump_seq = -1           # this row's tick is a day ahead (valid checksum)

    def run(self):
        garbage = [b'\x00\xff boot noise \xfe\r\n', b'$PCD,1,2,3*00\r\n',
                   pp.encode_row(1, 2, [1] * 9)[:15] + b'\r\n', pp.encode_row(1, 2, [1] * 4)]
        buf = pp.encode_info('pc_g1', 'test-1.0', 9, 40)
        while not self.stop.is_set():
            for _ in range(4):
                counts = [self.counts0 + self.rng.randint(-3, 3)] + \
                    [t + self.rng.randint(-3, 3) for t in self.tares[1:]]
                tick = 1000 + 25 * self.seq + (86_400_000 if self.seq == self.jump_seq else 0)
                buf += pp.encode_row(self.seq, tick, counts)
                self.seq += 1
            buf += self.rng.choice(garbage)
            try:
                self.pty.write(buf)
            except OSError:
                pass
            buf = b''
            time.sleep(0.1)


@pytest.fixture
def ros_env(monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', str(random.randint(1, 100)))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return dict(os.environ)


def test_driver_publishes_calibrated_weights_and_survives(tmp_path, ros_env, demo_store,
                                                          demo_store_path, make_pty):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from store_common.ros import RELIABLE_STREAM_QOS
    from store_interfaces.msg import PlateWeights
    from store_interfaces.srv import TarePlate

    plates = demo_store.plates_of_controller('pc_g1')
    tares = [p.load_cell.tare_offset_counts for p in plates]
    link = tmp_path / 'pc_g1'
    dev = make_pty('pc_g1')
    feeder = Feeder(dev, tares, plates[0].load_cell.grams_per_count)
    state_file = tmp_path / 'tare.yaml'
    cmd = (f'. tools/env.sh && exec {EXE} --ros-args -r __ns:={NS} '
           f'-p store_file:={demo_store_path} -p controller_id:=pc_g1 -p port:={link} '
           f'-p calibration_state_file:={state_file} -p stale_timeout_s:=1.0')
    proc = subprocess.Popen(['bash', '-c', cmd], cwd=REPO, env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node('test_listener', context=ctx)
    weights, diags = [], []
    node.create_subscription(PlateWeights, f'{NS}/plate_weights', weights.append,
                             RELIABLE_STREAM_QOS)
    node.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda m: diags.extend(s for s in m.status if s.name == 'store/loadcell/pc_g1'), 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
    executor.add_node(node)

    def spin_until(pred, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not pred():
            executor.spin_once(timeout_sec=0.05)
            assert proc.poll() is None, 'driver died:\n' + proc.stdout.read()
        return pred()

    def p1_weights(msgs):
        return [w for m in msgs for w in m.weights if w.plate_id == 'g1.s1.p1']

    try:
        feeder.start()
        assert spin_until(lambda: len(weights) >= 10 and diags, 12.0), \
            f'{len(weights)} weight messages, {len(diags)} diagnostics'
        w1 = p1_weights(weights[-5:])
        assert w1 and all(w.valid for w in w1)
        assert all(abs(w.weight_grams - GRAMS_P1) < 0.1 for w in w1), [w.weight_grams for w in w1]
        others = [w for m in weights[-5:] for w in m.weights if w.plate_id != 'g1.s1.p1']
        assert others and all(abs(w.weight_grams) < 0.1 for w in others)
        assert weights[-1].header.frame_id == 'store'
        assert weights[-1].controller_id == 'pc_g1'
        stamps = [w.stamp.sec * 10**9 + w.stamp.nanosec for w in p1_weights(weights)]
        assert all(b > a for a, b in zip(stamps, stamps[1:]))

        # garbage reaches diagnostics, counted by reason
        assert spin_until(lambda: any(
            int(dict((kv.key, kv.value) for kv in d.values).get('garbage_lines', 0)) >= 2
            for d in diags), 4.0)
        kv = {k.key: k.value for k in diags[-1].values}
        assert kv['connected'] == 'true' and kv['port'] == str(link)
        assert diags[-1].hardware_id == str(link)
        assert any(k.startswith('garbage_lines.') for k in kv)

        # the row whose tick jumped a day ahead was refused, reported, and pinned nothing
        feeder.jump_seq = feeder.seq + 8
        assert spin_until(lambda: feeder.seq > feeder.jump_seq + 40 and any(
            dict((kv.key, kv.value) for kv in d.values).get('clock_rejected_rows') == '1'
            for d in diags), 6.0)
        kv = {k.key: k.value for k in diags[-1].values}
        assert kv['clock_reanchors'] == '0' and abs(float(kv['clock_offset_s'])) > 1e6
        n = len(weights)
        assert spin_until(lambda: len(weights) > n + 3, 3.0)
        now_ns = time.time_ns()
        last = [w.stamp.sec * 10**9 + w.stamp.nanosec for w in p1_weights(weights[n:])]
        assert last and all(now_ns - 3 * 10**9 < t <= now_ns for t in last)

        # tare g1.s1.p1: its weight becomes ~0 and the offset is persisted
        client = node.create_client(TarePlate, f'{NS}/tare')
        assert client.wait_for_service(timeout_sec=5.0)
        fut = client.call_async(TarePlate.Request(plate_id='g1.s1.p1', averaging_s=0.5))
        assert spin_until(fut.done, 6.0)
        res = fut.result()
        assert res.success, res.message
        assert res.plate_ids == ['g1.s1.p1']
        assert abs(res.tare_offset_counts[0] - feeder.counts0) <= 3
        assert str(res.tare_offset_counts[0]) in state_file.read_text()
        n = len(weights)
        assert spin_until(lambda: len(weights) >= n + 3, 3.0)
        assert all(abs(w.weight_grams) < 0.1 for w in p1_weights(weights[-2:]))

        # the device disappears and comes back at the same path
        dev.close(remove_link=True)
        time.sleep(0.3)
        dev2 = make_pty('pc_g1')
        feeder.pty = dev2
        n = len(weights)
        assert spin_until(lambda: len(weights) >= n + 5, 8.0), 'no data after reconnect'
        assert spin_until(lambda: int({k.key: k.value for k in diags[-1].values}
                                      ['reconnects']) >= 1, 3.0)
        assert all(not math.isnan(w.weight_grams) for w in p1_weights(weights[-3:]))
    finally:
        feeder.stop.set()
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = 'hung'
        out = proc.stdout.read()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        dev.close()
    assert rc == 0, out
    assert 'reconnected' in out and 'garbage line' in out
