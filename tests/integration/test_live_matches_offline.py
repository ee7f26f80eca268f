"""One pipeline: the live tracker and fusion nodes over DDS give the fused events the offline
benchmark path gives, on the same detections.

A short rendered scenario (two shoppers, a take each while both are inside) goes through the
benchmark's detection model (``simcam.DetectionModel``, shirt colours on). Its detections become
the DetectionArray messages of the four cameras; the offline path (``offline.run_tracking`` and
``offline.fuse_offline``, as bench_fusion runs them) gets what those messages carry
(``tracker_node.detections_from_msg``), the live nodes get the messages themselves, frame by
frame, with the scenario's gate scans and shelf events. Both run with the tracker: and fusion:
parameters of config/params/store.yaml (``store_fusion.params``); the test checks the same event
ids, the same best shopper, and shopper and product posteriors within 1e-6.
"""
from __future__ import annotations

import pathlib
import signal
import subprocess
import threading
import time

import pytest
import yaml

from store_bringup.graph import NodeSpec
from store_bringup.runner import executable_path
from store_common.description import load_store
from store_common.params import load_params_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO_STORE = ROOT / 'config' / 'stores' / 'demo.yaml'
PARAMS = ROOT / 'config' / 'params' / 'store.yaml'
NS = 1_000_000_000
TOL = 1e-6

SCENARIO = """
scenario:
  store: demo_store
  seed: 7
  duration_s: 21.0
  shoppers:
    - id: alice
      enter_s: 1.0
      exit_s: 16.0
      actions:
        - {t_s: 10.0, kind: take, plate: g1.s1.p1, sku: COLA-330, quantity: 1}
    - id: bob
      enter_s: 3.5
      exit_s: 19.0
      actions:
        - {t_s: 12.5, kind: take, plate: g2.s2.p3, sku: PRETZEL, quantity: 1}
"""

# the live nodes' own settings (no offline counterpart): frame sets and holds never time out
# here, however slowly a loaded machine delivers them
LIVE_ONLY = {'tracker': {'max_wait_s': 10.0, 'dropout_s': 60.0},
             'fusion': {'max_hold_s': 60.0}}

pytestmark = pytest.mark.graph


class Replay:
    """A detection model that returns the given detections, one list per call in order."""

    def __init__(self, per_call):
        self.per_call = list(per_call)

    def detect(self, boxes):
        return self.per_call.pop(0)


def _detection_msgs(store, sc, frames):
    """The DetectionArray messages of every frame (per frame: {camera: msg}), from the
    benchmark's detection model with shirt colours, in the order run_tracking draws them."""
    from store_bench.fusion_offline import T0_NS
    from store_bench.simcam import ASSUMED, DetectionModel, shopper_colors
    from store_interfaces.msg import Detection, DetectionArray
    from store_common.stamps import from_ns
    from builtin_interfaces.msg import Time

    classes = {'shopper': Detection.CLASS_SHOPPER, 'hand': Detection.CLASS_HAND,
               'product': Detection.CLASS_PRODUCT}
    model = DetectionModel(ASSUMED, list(store.catalog.products), seed=7,
                           colors=shopper_colors(store, sc))
    cams = {c.id: c for c in store.cameras}
    out = []
    for fr in frames:
        stamp = T0_NS + int(round(fr['t_s'] * NS))
        per_cam = {}
        for cam, boxes in fr['cams'].items():
            msg = DetectionArray(camera_id=cam, image_width=cams[cam].model.width,
                                 image_height=cams[cam].model.height)
            msg.header.stamp = from_ns(stamp, Time)
            msg.header.frame_id = f'camera_{cam}_optical'
            for i, d in enumerate(model.detect(boxes)):
                det = Detection(id=f'{cam}/{i}', class_id=classes[d.cls], class_name=d.cls,
                                score=float(d.score), center_x=float(d.cx),
                                center_y=float(d.cy), size_x=float(d.w), size_y=float(d.h),
                                sku=d.sku, sku_score=float(d.sku_score))
                if d.color is not None:
                    det.torso_rgb = [float(v) for v in d.color]
                msg.detections.append(det)
            per_cam[cam] = msg
        out.append((stamp, per_cam))
    return out


def _offline(store, sc, frames, msgs, events, pipeline, calibration):
    """The benchmark's path on what the messages carry."""
    from store_fusion.geometry import StoreGeometry
    from store_bench.fusion_offline import fuse_offline, run_tracking
    from store_fusion.tracker_node import detections_from_msg

    per_call = [detections_from_msg(m)[0] for _, per_cam in msgs for m in per_cam.values()]
    history, _ = run_tracking(store, sc, frames, Replay(per_call),
                              tracker_params=pipeline.tracker)
    return history, fuse_offline(
        StoreGeometry(store), events, history, len(store.catalog.products), pipeline.fusion,
        pipeline.joint, calibration=calibration, max_hold_s=LIVE_ONLY['fusion']['max_hold_s'])


def _track_rows(snapshots):
    """What a frame's tracks say, comparable across the paths: (track, account, x, y, hands,
    SKUs in the hands, seen)."""
    return sorted((s.track_id, s.shopper_id, s.xy[0], s.xy[1],
                   tuple((tuple(p), sd, src) for p, sd, src in s.hands), tuple(s.products),
                   s.seen) for s in snapshots)


class Probe:
    """Publishes the cameras' detections, gate scans and shelf events; collects tracks and
    fused events."""

    def __init__(self, rclpy, cameras):
        from store_common.ros import qos_for
        from store_interfaces.msg import (DetectionArray, FusedShelfEvent, GateEvent, ShelfEvent,
                                          ShopperTracks)
        self.rclpy = rclpy
        self.node = rclpy.create_node('live_offline_probe', namespace='/store')
        self.lock = threading.Lock()
        self.tracks: list = []
        self.fused: list = []
        self.node.create_subscription(ShopperTracks, 'shopper_tracks', self._keep(self.tracks),
                                      qos_for('shopper_tracks'))
        self.node.create_subscription(FusedShelfEvent, 'fused_shelf_events',
                                      self._keep(self.fused), qos_for('fused_shelf_events'))
        self.dets = {c: self.node.create_publisher(DetectionArray, f'cameras/{c}/detections',
                                                   qos_for('detections')) for c in cameras}
        self.gates = self.node.create_publisher(GateEvent, 'gate_events', qos_for('gate_events'))
        self.shelf = self.node.create_publisher(ShelfEvent, 'shelf_events',
                                                qos_for('shelf_events'))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _keep(self, into):
        def cb(msg):
            with self.lock:
                into.append(msg)
        return cb

    def _spin(self):
        while not self._stop.is_set():
            self.rclpy.spin_once(self.node, timeout_sec=0.02)

    def wait(self, pred, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if pred():
                    return True
            time.sleep(0.002)
        return False

    def matched(self):
        return (all(p.get_subscription_count() >= 1 for p in self.dets.values())
                and self.gates.get_subscription_count() >= 1
                and self.shelf.get_subscription_count() >= 1
                and self.node.count_publishers('/store/shopper_tracks') >= 1
                and self.node.count_publishers('/store/fused_shelf_events') >= 1)

    def close(self):
        self._stop.set()
        self._thread.join()
        self.node.destroy_node()


def _params_file(tmp_path, store_file):
    """config/params/store.yaml's tracker: and fusion: sections (with the live-only
    settings) for the two nodes in /store."""
    doc = load_params_file(PARAMS)
    out = {}
    for node in ('tracker', 'fusion'):
        p = {**doc[node], **LIVE_ONLY[node], 'store_file': str(store_file)}
        out[f'/store/{node}'] = {'ros__parameters': p}
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump(out))
    return path


def test_live_nodes_give_the_offline_fused_events(tmp_path, ros_env):
    import rclpy
    from store_fusion.calibration import Platt
    from store_fusion.convert import snapshots_from_tracks
    from store_bench.fusion_offline import _gates, shelf_events, truth_of_event
    from store_fusion.params import load_pipeline_params
    from store_bench.simcam import render_truth
    from store_interfaces.msg import Detection, GateEvent
    from store_common.stamps import from_ns
    from builtin_interfaces.msg import Time
    from store_shelf.convert import shelf_event_from_msg, shelf_event_msg
    from store_sim.scenario import load_scenario

    if 'torso_rgb' not in Detection.get_fields_and_field_types():
        pytest.fail('Detection.torso_rgb is not built: run bash tools/setup.sh')
    store = load_store(DEMO_STORE)
    path = tmp_path / 'two.yaml'
    path.write_text(SCENARIO)
    sc = load_scenario(path, store)
    frames = render_truth(store, sc, fps=5.0)
    msgs = _detection_msgs(store, sc, frames)
    # the shelf events as the fusion node receives them
    events = [shelf_event_from_msg(shelf_event_msg(e, 'store')) for e in shelf_events(store, sc)]
    assert len(events) >= 2
    pipeline = load_pipeline_params(PARAMS)
    cal_file = load_params_file(PARAMS)['fusion'].get('calibration_file', '')
    history, offline = _offline(store, sc, frames, msgs, events, pipeline,
                                Platt.load(cal_file) if cal_file else None)
    assert set(offline) == {e.event_id for e in events}
    # the shirt colours ride in Detection.torso_rgb: with them both takes go to who did them
    # (without them, this draw binds the two accounts the wrong way round and swaps both)
    for ev in events:
        who = truth_of_event(sc, ev)[0]
        assert offline[ev.event_id].shoppers[0].shopper_id == who, ev.event_id

    params = _params_file(tmp_path, DEMO_STORE)
    procs = [subprocess.Popen(
        [executable_path(NodeSpec('store_fusion', exe, exe, '/store')), '--ros-args',
         '-r', '__ns:=/store', '-r', f'__node:={exe}', '--params-file', str(params)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ros_env)
        for exe in ('tracker', 'fusion')]
    logs = []
    try:
        with rclpy.init():
            probe = Probe(rclpy, [c.id for c in store.cameras])
            try:
                assert probe.wait(probe.matched, 30.0), 'the nodes did not come up'
                time.sleep(0.5)     # the nodes' own subscriptions to each other
                for g in _gates(store, sc):
                    msg = GateEvent(event_id=g.event_id, gate_id=g.gate_id, kind=g.kind,
                                    shopper_id=g.shopper_id)
                    msg.header.stamp = from_ns(g.stamp_ns, Time)
                    probe.gates.publish(msg)
                time.sleep(0.5)     # held by the tracker until the frames reach their stamps
                pending = sorted(events, key=lambda e: (e.settled_ns, e.event_id))
                for k, (stamp, per_cam) in enumerate(msgs):
                    if pending and pending[0].settled_ns <= stamp:
                        # offline: an event arrives after the tracks before its settled stamp
                        # and before the first at or after it
                        time.sleep(0.3)
                        while pending and pending[0].settled_ns <= stamp:
                            probe.shelf.publish(shelf_event_msg(pending.pop(0), 'store'))
                        time.sleep(0.3)
                    for msg in per_cam.values():
                        probe.dets[msg.camera_id].publish(msg)
                    assert probe.wait(lambda: len(probe.tracks) == k + 1, 20.0), (
                        f'frame {k}: {len(probe.tracks)} track messages')
                assert probe.wait(lambda: len(probe.fused) >= len(events), 30.0), (
                    f'{len(probe.fused)} of {len(events)} fused events')
                tracks, fused = list(probe.tracks), list(probe.fused)
            finally:
                probe.close()
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                logs.append(p.communicate(timeout=15)[0])
            except subprocess.TimeoutExpired:
                p.kill()
                logs.append(p.communicate()[0])
    # one track message per frame, at the frame's stamp: the node stepped on every frame set
    assert [t.header.stamp.sec * NS + t.header.stamp.nanosec for t in tracks] == [
        s for s, _ in msgs], logs
    assert all(sorted(t.camera_ids) == sorted(c.id for c in store.cameras) for t in tracks)
    # the same tracks, accounts, positions and hands in every frame (exactly: same code, same
    # inputs, float64 on the wire)
    by_stamp = {}
    for snap in history.snaps:
        by_stamp.setdefault(snap.stamp_ns, []).append(snap)
    for t in tracks:
        stamp, snaps = snapshots_from_tracks(t)
        assert _track_rows(snaps) == _track_rows(by_stamp.get(stamp, [])), stamp
    live = {m.event.event_id: m for m in fused}
    assert set(live) == set(offline), logs
    for eid, res in offline.items():
        m = live[eid]
        got = {c.shopper_id: c.probability for c in m.shoppers if c.shopper_id}
        want = {c.shopper_id: c.probability for c in res.shoppers if c.shopper_id}
        assert got.keys() == want.keys(), (eid, got, want)
        for sid in want:
            assert abs(got[sid] - want[sid]) < TOL, (eid, sid, got[sid], want[sid])
        best_live = m.shoppers[0].shopper_id if m.shoppers else None
        best_offline = res.shoppers[0].shopper_id if res.shoppers else None
        assert best_live == best_offline, eid
        live_h = [(h.sku, h.action, h.quantity, h.posterior) for h in m.hypotheses]
        off_h = [(h.sku, h.action, h.quantity, h.posterior) for h in res.hypotheses]
        assert [h[:3] for h in live_h] == [h[:3] for h in off_h], eid
        assert all(abs(a[3] - b[3]) < TOL for a, b in zip(live_h, off_h)), (eid, live_h, off_h)
        assert abs(m.confidence - res.confidence) < TOL and m.vision == res.vision, eid
