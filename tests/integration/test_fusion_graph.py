"""Weight + vision over DDS: the fusion node and the cart node (use_fused_events) as processes.

Two shoppers are inside and stand at the same shelf; the shopper tracks show B's hand at the
plate when its weight drops. With load cells alone the cart could only ask a reviewer (two
shoppers present); with the fused event it puts the item into B's cart and nothing into A's.
A second event after which no tracks come (cameras down) still reaches the cart after
``max_hold_s``, without shopper evidence: the weight-only presence rule sends it to review.

Vision also decides *what*: B takes a can off the cola plate whose weight lies between a cola
(352 g) and a lemon can (355 g), so the weight hypotheses are too close for the cart. The tracks
show a lemon can in B's hand after the event (``ShopperTrack.product_skus``): the cart confirms
LEMON-330 without review; the same event with nothing seen in the hand goes to review.
"""
from __future__ import annotations

import contextlib
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
CAN_PLATE = 'g1.s1.p1'          # COLA-330's home plate (352 g); LEMON-330 (355 g) is next to it
A, B = 'acct-a', 'acct-b'
REASON_AMBIGUOUS_SHOPPER = 1
REASON_LOW_CONFIDENCE = 2
SOURCE_FUSED = 2
VISION_NONE, VISION_CHANGED = 0, 2
STATUS_CONFIRMED, STATUS_PENDING_REVIEW = 1, 2
MAX_HOLD_S = 3.0

pytestmark = pytest.mark.graph


def _stamp(ns):
    from builtin_interfaces.msg import Time
    return Time(sec=ns // NS, nanosec=ns % NS)


def _shelf_event(event_id, start_ns, settled_ns, plate=PLATE, delta_grams=-528.0,
                 hypotheses=(('SPARK-500', -528.0, 0.99, True),)):
    """A take of ``delta_grams`` on ``plate``; ``hypotheses``: (sku, expected_grams,
    posterior, on_home_plate) of the products, then the unknown one with the rest."""
    from store_interfaces.msg import ProductHypothesis, ShelfEvent
    hyps = [ProductHypothesis(sku=sku, action=1, quantity=1, expected_grams=grams,
                              posterior=p, on_home_plate=home)
            for sku, grams, p, home in hypotheses]
    hyps.append(ProductHypothesis(sku='', action=1, quantity=0,
                                  posterior=1.0 - sum(h.posterior for h in hyps)))
    msg = ShelfEvent(event_id=event_id, gondola_id='g1', plate_ids=[plate],
                     plate_delta_grams=[delta_grams], delta_grams=delta_grams, noise_grams=1.0,
                     start_stamp=_stamp(start_ns), settled_stamp=_stamp(settled_ns),
                     hypotheses=hyps)
    msg.header.stamp = _stamp(settled_ns)
    msg.header.frame_id = 'store'
    return msg


def _tracks(stamp_ns, target, b_reaching, b_holds=()):
    """A and B side by side in front of the plate; B's hand at it when ``b_reaching``;
    ``b_holds``: SKUs of the product boxes seen in B's hands (one per box per camera)."""
    from geometry_msgs.msg import Point
    from store_interfaces.msg import ShopperTrack, ShopperTracks
    tx, ty, tz = (float(v) for v in target)
    msg = ShopperTracks(camera_ids=['cam1', 'cam2'])
    msg.header.stamp = _stamp(stamp_ns)
    msg.header.frame_id = 'store'
    b_hand = Point(x=tx, y=ty, z=tz) if b_reaching else Point(x=tx, y=ty - 0.45, z=0.8)
    for tid, sid, dx, hand, held in (
            ('t1', A, 0.5, Point(x=tx + 0.5, y=ty - 0.45, z=0.8), []),
            ('t2', B, 0.0, b_hand, list(b_holds))):
        msg.tracks.append(ShopperTrack(
            track_id=tid, shopper_id=sid, position=Point(x=tx + dx, y=ty - 0.6, z=0.0),
            position_std_m=0.1, hands=[hand], hand_std_m=[0.05], product_skus=held,
            product_scores=[0.8] * len(held), confidence=0.95,
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


class Graph:
    """The fusion node and the cart node (use_fused_events) as processes, and a probe."""
    probe: Probe
    t0_ns: int            # wall time once the carts of A and B are open
    logs: tuple = ()      # (fusion, cart) output, once the nodes have stopped
    returncodes: tuple = ()


@contextlib.contextmanager
def _graph(tmp_path):
    """Start the graph, enter A (30 s ago) and B (29 s ago), yield a Graph; stop it all."""
    import rclpy
    from store_interfaces.msg import GateEvent

    procs = [
        _start('store_fusion', 'fusion', {'store_file': DEMO_STORE, 'max_hold_s': MAX_HOLD_S}),
        _start('store_cart', 'cart', {'store_file': DEMO_STORE, 'use_fused_events': 'true',
                                      'db_path': tmp_path / 'carts.sqlite', 'hold_s': 0.5,
                                      'receipt_grace_s': 30.0}),
    ]
    g = Graph()
    with rclpy.init():
        g.probe = Probe(rclpy)
        try:
            assert g.probe.wait_matched(15.0), 'the nodes did not come up'
            g.t0_ns = time.time_ns()
            for sid, dt_s in ((A, -30.0), (B, -29.0)):
                stamp = g.t0_ns + int(dt_s * NS)
                msg = GateEvent(event_id=f'entrance@{stamp}', gate_id='entrance',
                                kind=GateEvent.KIND_ENTER, shopper_id=sid)
                msg.header.stamp = _stamp(stamp)
                g.probe.gates.publish(msg)
            assert g.probe.wait(lambda: len(g.probe.msgs('carts')) >= 2, 10.0), (
                'no carts opened')
            yield g
        finally:
            for p in procs:
                p.send_signal(signal.SIGINT)
            g.logs = tuple(p.communicate(timeout=15)[0] for p in procs)
            g.returncodes = tuple(p.returncode for p in procs)
            g.probe.close()


def _latest_carts(probe):
    carts = {}
    for c in probe.msgs('carts'):
        carts[c.shopper_id] = c
    return carts


def test_vision_decides_whose_hand_took_the_item(tmp_path, ros_env):
    target = StoreGeometry(load_store(DEMO_STORE)).plate_targets[PLATE]
    with _graph(tmp_path) as g:
        probe, t0 = g.probe, g.t0_ns
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
        assert probe.wait(lambda: _reviews(probe), MAX_HOLD_S + 8.0), (
            'the event without tracks was lost')
        waited_s = time.monotonic() - sent2
        time.sleep(1.0)
    fusion_log, cart_log = g.logs

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
    carts = _latest_carts(probe)
    assert [(ln.sku, ln.quantity) for ln in carts[B].lines] == [('SPARK-500', 1)]
    assert list(carts[A].lines) == []

    # the event the cameras missed: out after max_hold_s, the presence rule asks a human
    (req,) = _reviews(probe)
    assert req.reason == REASON_AMBIGUOUS_SHOPPER and set(req.shopper_ids) == {A, B}
    assert {c.shopper_id for c in req.candidates} >= {A, B}
    assert MAX_HOLD_S - 0.5 <= waited_s <= MAX_HOLD_S + 6.0
    assert 'without the track evidence' in fusion_log
    assert g.returncodes == (0, 0), (fusion_log, cart_log)


def _reviews(probe) -> list:
    """The review requests, without the cart's random spot checks of its own decisions."""
    from store_interfaces.msg import ReviewRequest
    return [r for r in probe.msgs('review_requests')
            if r.reason != ReviewRequest.REASON_SPOT_CHECK]


CANS = (('COLA-330', -352.0, 0.52, True), ('LEMON-330', -355.0, 0.46, False))   # weight alone


def test_vision_decides_which_of_two_near_equal_cans_was_taken(tmp_path, ros_env):
    target = StoreGeometry(load_store(DEMO_STORE)).plate_targets[CAN_PLATE]
    with _graph(tmp_path) as g:
        probe, t0 = g.probe, g.t0_ns
        # two takes by B off the cola plate, -353.5 g each: a cola or a lemon can left there.
        # After the first, a lemon can is in B's hand (seen by both cameras) until it goes into
        # the basket 2 s later; after the second, nothing is seen in the hand.
        start1, settled1 = t0 - 10 * NS, t0 - 9 * NS
        start2, settled2 = t0 - 5 * NS, t0 - 4 * NS
        events = [_shelf_event(f'{CAN_PLATE}@{s}', s, e, plate=CAN_PLATE, delta_grams=-353.5,
                               hypotheses=CANS) for s, e in ((start1, settled1),
                                                             (start2, settled2))]
        for event in events:
            probe.shelf.publish(event)
        for k in range(106):                                         # -12.0 .. -1.5 s
            stamp = t0 - 12 * NS + k * NS // 10
            reaching = start1 <= stamp <= settled1 or start2 <= stamp <= settled2
            held = ['LEMON-330'] * 2 if settled1 < stamp <= settled1 + 2 * NS else []
            probe.tracks.publish(_tracks(stamp, target, reaching, b_holds=held))
        assert probe.wait(lambda: probe.msgs('cart_updates') and _reviews(probe),
                          10.0), 'no cart update or review request'
        time.sleep(1.0)
    fusion_log, cart_log = g.logs

    fused = {f.event.event_id: f for f in probe.msgs('fused_shelf_events')}
    assert sorted(fused) == sorted(e.event_id for e in events), fusion_log
    seen, blind = fused[events[0].event_id], fused[events[1].event_id]
    for f in (seen, blind):
        assert (f.shoppers[0].shopper_id, f.shoppers[0].track_id) == (B, 't2')
        assert f.shoppers[0].probability > 0.9
    # the lemon can in B's hand after the event turned the weight's order around
    assert (seen.vision, list(seen.skus_seen)) == (VISION_CHANGED, ['LEMON-330'])
    assert seen.hypotheses[0].sku == 'LEMON-330' and seen.hypotheses[0].posterior > 0.99
    # nothing in the hand: the weight hypotheses go out as they came, too close to decide
    assert (blind.vision, list(blind.skus_seen)) == (VISION_NONE, [])
    assert [(h.sku, round(h.posterior, 2)) for h in blind.hypotheses[:2]] == [
        ('COLA-330', 0.52), ('LEMON-330', 0.46)]

    (update,) = probe.msgs('cart_updates')
    assert (update.event_id, update.shopper_id, update.sku, update.quantity_delta,
            update.source) == (events[0].event_id, B, 'LEMON-330', 1, SOURCE_FUSED), cart_log
    assert update.confidence > 0.9
    (req,) = _reviews(probe)
    assert (req.event_id, req.reason) == (events[1].event_id, REASON_LOW_CONFIDENCE), cart_log
    assert [c.sku for c in req.candidates if c.sku][:2] == ['COLA-330', 'LEMON-330']
    carts = _latest_carts(probe)
    # the lemon confirmed; the reviewed event's best guess waits as pending
    assert sorted((ln.sku, ln.quantity, ln.status) for ln in carts[B].lines) == [
        ('COLA-330', 1, STATUS_PENDING_REVIEW), ('LEMON-330', 1, STATUS_CONFIRMED)]
    assert list(carts[A].lines) == []
    assert g.returncodes == (0, 0), (fusion_log, cart_log)


def test_a_broken_sku_confusion_file_stops_the_fusion_node_naming_it(tmp_path, ros_env):
    bad = tmp_path / 'sku_confusion.json'
    bad.write_text('{"accuracy": 0.6, "strength": 8, "counts": {"OJ-1L": {"MILK-1L": -3}}}')
    proc = _start('store_fusion', 'fusion', {'store_file': DEMO_STORE,
                                             'sku_confusion_file': bad})
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode not in (0, None), out
    assert str(bad) in out and 'negative OJ-1L->MILK-1L=-3' in out, out
