"""tracker node: camera detections + entrance/exit scans -> shopper tracks in the store frame.

Subscribes ``cameras/<id>/detections`` (DetectionArray) for every camera of the store
description and ``gate_events``; every ``cycle_s`` it steps :class:`ShopperTracker` with the
newest detections of each camera no older than ``slop_s`` (a camera without one has dropped out
for that cycle) and publishes ``shopper_tracks`` (each track with its hands and the product
boxes seen on it, ``convert.track_msg``). No torso colour here (boxes only): the
appearance cue needs the images and is skipped. The algorithm lives in ``tracker.py``.
"""
from __future__ import annotations

from rclpy.node import Node
from store_common.description import load_store
from store_common.ros import declare, EVENT_QOS, ns_stamp, run_node, stamp_ns
from store_interfaces.msg import DetectionArray, GateEvent, ShopperTracks

from store_fusion.convert import track_msg
from store_fusion.geometry import Detection2D
from store_fusion.tracker import ShopperTracker

DETECTION_QOS = 10


def detections_from_msg(msg: DetectionArray) -> list[Detection2D]:
    return [Detection2D(d.class_name, float(d.score), d.center_x, d.center_y, d.size_x,
                        d.size_y, d.sku, float(d.sku_score)) for d in msg.detections]


class TrackerNode(Node):
    def __init__(self):
        super().__init__('tracker')
        store_file = declare(self, 'store_file', '', 'Store description YAML (cameras, gates).')
        self.frame_id = declare(self, 'frame_id', 'store', 'Frame of the published tracks.')
        cycle_s = declare(self, 'cycle_s', 0.2, 'Tracker cycle period [s].', lo=0.02, hi=2.0)
        self.slop_s = declare(self, 'slop_s', 0.15,
                              'Detections older than this at a cycle are not used [s].',
                              lo=0.0, hi=2.0)
        if not store_file:
            raise ValueError('store_file is required')
        store = load_store(store_file)
        if not store.cameras:
            raise ValueError(f'{store_file}: the store has no cameras')
        self.tracker = ShopperTracker(store)
        self.latest: dict[str, tuple[int, list]] = {}
        self.seen_gates: set[str] = set()
        for cam in store.cameras:
            self.create_subscription(DetectionArray, f'cameras/{cam.id}/detections',
                                     self._on_detections, DETECTION_QOS)
        self.create_subscription(GateEvent, 'gate_events', self._on_gate, EVENT_QOS)
        self.pub = self.create_publisher(ShopperTracks, 'shopper_tracks', EVENT_QOS)
        self.create_timer(cycle_s, self._cycle)
        self.get_logger().info(f'tracking with {len(store.cameras)} cameras')

    def _on_detections(self, msg: DetectionArray) -> None:
        self.latest[msg.camera_id] = (stamp_ns(msg.header.stamp), detections_from_msg(msg))

    def _on_gate(self, msg: GateEvent) -> None:
        if msg.event_id in self.seen_gates:
            return
        self.seen_gates.add(msg.event_id)
        kind = 'enter' if msg.kind == GateEvent.KIND_ENTER else 'exit'
        self.tracker.on_gate(stamp_ns(msg.header.stamp), kind, msg.shopper_id)

    def _cycle(self) -> None:
        if not self.latest:
            return
        now = max(s for s, _ in self.latest.values())
        dets = {cam: d for cam, (s, d) in self.latest.items()
                if now - s <= self.slop_s * 1e9}
        last = getattr(self, '_last_ns', 0)
        if now <= last:
            return
        self._last_ns = now
        tracks = self.tracker.step(now, dets)
        out = ShopperTracks()
        out.header.stamp = ns_stamp(now)
        out.header.frame_id = self.frame_id
        out.camera_ids = sorted(dets)
        out.tracks = [track_msg(t, now) for t in tracks]
        self.pub.publish(out)


def main(args=None) -> int:
    return run_node('tracker', TrackerNode, (ValueError, OSError), args=args)


if __name__ == '__main__':
    main()
