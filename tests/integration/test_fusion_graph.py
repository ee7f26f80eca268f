"""Weight + vision over DDS: the fusion node and the cart node (use_fused_events) as processes.

Two shoppers are inside and stand at the same shelf; the shopper tracks show B's hand at the
plate when its weight drops. With load cells alone the cart could only ask a reviewer (two
shoppers present); with the fused event it puts the item into B's cart and nothing into A's.
A second event after which no tracks come (cameras down) still reaches the cart after
``max_hold_s``, without shopper evidence: the weight-only presence rule sends it to review.
"""
from __future__ import annotations

import pathlib
import signal
import subprocess
import threading
import time

import pytest

from store_bringup.graph import NodeSpec
from store_bringup.runner import executable_path
from store_common.description import load_store
from store_fusion.geometry import StoreGeometry

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO_STORE = ROOT / 'config' / 'stores' / 'demo.yaml'
NS = 1_000_000_000
PLATE = 'g1.s2.p2'              # SPARK-500's home plate
A, B = 'acct-a', 'acct-b'
REASON_AMBIGUOUS_SHOPPER = 1
SOURCE_FUSED = 2
MAX_HOLD_S = 3.0

pytestmark = pytest.mark.graph


def _stamp(ns):
    from builtin_interfaces.msg import Time
    return Time(sec=ns // NS, nanosec=ns % NS)


def _shelf_event(event_id, start_ns, settled_ns, plate=PLATE):
    from store_interfaces.msg import ProductHypothesis, ShelfEvent
    msg = ShelfEvent(event_id=event_id, gondola_id='g1', plate_ids=[plate],
                     plate_delta_grams=[-528.0], delta_grams=-528.0, noise_grams=1.0,
                     start_stamp=_stamp(start_ns), settled_stamp=_stamp(settled_ns),
                     hypotheses=[ProductHypothesis(sku='SPARK-500', action=1, quantity=1,
                                                   expected_grams=-528.0, likelihood=0.99,
                                                   on_home_plate=True),
                                 ProductHypothesis(sku='', action=1, quantity=0,
                                                   likelihood=0.01)])
    msg.header.stamp = _stamp(settled_ns)
    msg.header.frame_id = 'store'
    return msg


def _tracks(stamp_ns, target, b_reaching):
    """A and B side by side in front of the plate; B's hand at it when ``b_reaching``."""
    from geometry_msgs.msg import Point
    from store_interfaces.msg import ShopperTrack, ShopperTracks
    tx, ty, tz = (float(v) for v in target)
    msg = ShopperTracks(camera_ids=['cam1', 'cam2'])
    msg.header.stamp = _stamp(stamp_ns)
    msg.header.frame_id = 'store'
    b_hand = Point(x=tx, y=ty, z=tz) if b_reaching else Point(x=tx, y=ty - 0.45, z=0.8)
    for tid, sid, dx, hand in (('t1', A, 0.5, Point(x=tx + 0.5, y=ty - 0.45, z=0.8)),
                               ('t2', B, 0.0, b_hand)):
        msg.tracks.append(ShopperTrack(
            track_id=tid, shopper_id=sid, position=Point(x=tx + dx, y=ty - 0.6, z=0.0),
            position_std_m=0.1, hands=[hand], hand_std_m=[0.05], confidence=0.95,
            state=ShopperTrack.STATE_CONFIRMED, last_seen=_stamp(stamp_ns)))
    return msg


class Probe:
    def __init__(self, rclpy):
        from store_common.ros import EVENT_QOS, STATE_QOS
        from store_interfaces.msg import (CartState, CartUpdate, FusedShelfEvent, GateEvent,
                                          ReviewRequest, ShelfEvent, ShopperTracks)
        self.rclpy = rclpy
        self.node = rclpy.create_node('fusion_probe', namespace='/store')
        self.got = {'fused_shelf_events': [], 'cart_updates': [], 'carts': [],
                    'review_requests': []}
        self.lock = threading.Lock()
        for msg_type, topic, qos in ((FusedShelfEvent, 'fused_shelf_events', EVENT_QOS),
                                     (CartUpdate, 'cart_updates', EVENT_QOS),
                                     (CartState, 'carts', STATE_QOS),
                                     (ReviewRequest, 'review_requests', EVENT_QOS)):
            self.node.create_subscription(msg_type, topic, self._keep(topic), qos)
        self.gates = self.node.create_publisher(GateEvent, 'gate_events', EVENT_QOS)
        self.shelf = self.node.create_publisher(ShelfEvent, 'shelf_events', EVENT_QOS)
        self.tracks = self.node.create_publisher(ShopperTracks, 'shopper_tracks', EVENT_QOS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _keep(self, topic):
        def cb(msg):
            with self.lock:
                self.got[topic].append((time.monotonic(), msg))
        return cb

    def _spin(self):
        while not self._stop.is_set():
            self.rclpy.spin_once(self.node, timeout_sec=0.05)

    def msgs(self, topic):
        with self.lock:
            return [m for _, m in self.got[topic]]

    def wait(self, pred, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.05)
        return False

    def wait_matched(self, timeout_s=10.0):
        """Until the two nodes' subscriptions have matched this probe's publishers."""
        return self.wait(lambda: self.shelf.get_subscription_count() >= 1
                         and self.tracks.get_subscription_count() >= 1
                         and self.gates.get_subscription_count() >= 1, timeout_s)

    def close(self):
        self._stop.set()
        self._thread.join()
        self.node.destroy_node()


def _start(package, executable, params):
    cmd = [executable_path(NodeSpec(package, executable, executable, '/store')), '--ros-args',
           '-r', '__ns:=/store']
    for k, v in params.items():
        cmd += ['-p', f'{k}:={v}']
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_vision_decides_whose_hand_took_the_item(tmp_path, ros_env):
    import rclpy
    from store_interfaces.msg import GateEvent

    target = StoreGeometry(load_store(DEMO_STORE)).plate_targets[PLATE]
    procs = [
        _start('store_fusion', 'fusion', {'store_file': DEMO_STORE, 'max_hold_s': MAX_HOLD_S}),
        _start('store_cart', 'cart', {'store_file': DEMO_STORE, 'use_fused_events': 'true',
                                      'db_path': tmp_path / 'carts.sqlite', 'hold_s': 0.5,
                                      'receipt_grace_s': 30.0}),
    ]
    outs = []
    with rclpy.init():
        probe = Probe(rclpy)
        try:
            assert probe.wait_matched(15.0), 'the nodes did not come up'
            t0 = time.time_ns()
            for k, (sid, dt_s) in enumerate(((A, -30.0), (B, -29.0))):
                stamp = t0 + int(dt_s * NS)
                msg = GateEvent(event_id=f'entrance@{stamp}', gate_id='entrance',
                                kind=GateEvent.KIND_ENTER, shopper_id=sid)
                msg.header.stamp = _stamp(stamp)
                probe.gates.publish(msg)
            assert probe.wait(lambda: len(probe.msgs('carts')) >= 2, 10.0), 'no carts opened'

            # B's hand at the plate from 5 s to 4 s before now; the weight settles at -4 s
            start, settled = t0 - 5 * NS, t0 - 4 * NS
            event = _shelf_event(f'{PLATE}@{start}', start, settled)
            probe.shelf.publish(event)
            frames = [t0 - 7 * NS + k * NS // 10 for k in range(51)]    # -7.0 .. -2.0 s
            for stamp in frames[:40]:                                    # up to -3.1 s
                probe.tracks.publish(_tracks(stamp, target, start <= stamp <= settled))
            # the tracks have not passed settled + 2 s yet: the event is held
            time.sleep(1.0)
            assert probe.msgs('fused_shelf_events') == []
            for stamp in frames[40:]:
                probe.tracks.publish(_tracks(stamp, target, False))
            probe.shelf.publish(event)                                   # a re-delivery
            assert probe.wait(lambda: probe.msgs('cart_updates'), 10.0), 'no cart update'

            # cameras down: an event after which (and around which) no tracks come
            start2, settled2 = t0 - int(0.8 * NS), t0 - int(0.3 * NS)
            sent2 = time.monotonic()
            probe.shelf.publish(_shelf_event(f'g1.s2.p3@{start2}', start2, settled2,
                                             plate='g1.s2.p3'))
            assert probe.wait(lambda: probe.msgs('review_requests'), MAX_HOLD_S + 8.0), (
                'the event without tracks was lost')
            waited_s = time.monotonic() - sent2
            time.sleep(1.0)
        finally:
            for p in procs:
                p.send_signal(signal.SIGINT)
            for p in procs:
                outs.append(p.communicate(timeout=15)[0])
            probe.close()
    fusion_log, cart_log = outs

    fused = probe.msgs('fused_shelf_events')
    assert [f.event.event_id for f in fused] == [event.event_id, f'g1.s2.p3@{start2}'], (
        fusion_log)
    top = fused[0].shoppers[0]
    assert (top.shopper_id, top.track_id) == (B, 't2') and top.probability > 0.9
    assert {c.shopper_id for c in fused[0].shoppers} == {A, B, ''}
    assert list(fused[1].shoppers) == []         # no vision evidence

    (update,) = probe.msgs('cart_updates')
    assert (update.shopper_id, update.sku, update.quantity_delta, update.source) == (
        B, 'SPARK-500', 1, SOURCE_FUSED), cart_log
    carts = {}
    for c in probe.msgs('carts'):
        carts[c.shopper_id] = c
    assert [(ln.sku, ln.quantity) for ln in carts[B].lines] == [('SPARK-500', 1)]
    assert list(carts[A].lines) == []

    # the event the cameras missed: out after max_hold_s, the presence rule asks a human
    (req,) = probe.msgs('review_requests')
    assert req.reason == REASON_AMBIGUOUS_SHOPPER and set(req.shopper_ids) == {A, B}
    assert {c.shopper_id for c in req.candidates} >= {A, B}
    assert MAX_HOLD_S - 0.5 <= waited_s <= MAX_HOLD_S + 6.0
    assert 'without the track evidence' in fusion_log
    assert all(p.returncode == 0 for p in procs), (fusion_log, cart_log)
