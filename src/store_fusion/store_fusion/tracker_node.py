"""tracker node: camera detections + entrance/exit scans -> shopper tracks in the store frame.

Subscribes ``cameras/<id>/detections`` (DetectionArray) for every camera of the store
description and ``gate_events``. The cameras' detections are synchronised by stamp
(``frame_sync.FrameSync``: a frame set within ``slop_s`` is stepped once every live camera has
delivered it, or after ``max_wait_s`` without a camera that missed it), and each set steps
:class:`ShopperTracker` once, after the gate scans stamped up to it: the frames and order the
offline benchmark steps on. Publishes ``shopper_tracks`` (each track with its hands and the
product boxes seen on it, ``convert.track_msg``) per step and ``/diagnostics``. Shopper boxes
carry their torso colour (``Detection.torso_rgb``), the tracker's appearance cue; a malformed one
is ignored with a logged reason. The tracker's parameters (``params.TRACKER_SPECS``) are ROS
parameters, read from config/params/store.yaml like the benchmark's. The algorithm lives in
``tracker.py``.
"""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from store_common import diagnostics
from store_common.description import load_store
from store_common.ros import declare, ns_stamp, qos_for, run_node, stamp_ns
from store_common.stamps import to_ns
from store_interfaces.msg import DetectionArray, GateEvent, ShopperTracks

from store_fusion.convert import track_msg
from store_fusion.frame_sync import FrameSync
from store_fusion.geometry import checked_torso_rgb, Detection2D
from store_fusion.params import declared, TRACKER_SPECS
from store_fusion.tracker import ShopperTracker, TrackerParams
from store_fusion.trace import StepTrace


def detections_from_msg(msg: DetectionArray) -> tuple[list[Detection2D], list[str]]:
    """(the detections, reasons a field was refused: a shopper box's torso colour, or a
    ``shoppers_stamp`` after the image's own, which is then taken as the image's). Shopper
    boxes carried over from an earlier image get its age (``Detection2D.age_s``)."""
    out, refused = [], []
    age_s = 0.0
    image_ns, boxes_ns = to_ns(msg.header.stamp), to_ns(msg.shoppers_stamp)
    if boxes_ns > image_ns:
        refused.append(f'{msg.camera_id}: shoppers_stamp {boxes_ns} ns is after the image '
                       f'stamp {image_ns} ns')
    elif boxes_ns > 0:
        age_s = (image_ns - boxes_ns) / 1e9
    for d in msg.detections:
        color = None
        if d.class_name == 'shopper':
            color, why = checked_torso_rgb(d.torso_rgb)
            if why:
                refused.append(f'{msg.camera_id} {d.id}: {why}')
        out.append(Detection2D(d.class_name, float(d.score), d.center_x, d.center_y, d.size_x,
                               d.size_y, d.sku, float(d.sku_score), color,
                               age_s if d.class_name == 'shopper' else 0.0))
    return out, refused


class TrackerNode(Node):
    def __init__(self):
        super().__init__('tracker')
        store_file = declare(self, 'store_file', '', 'Store description YAML (cameras, gates).',
                             read_only=True)
        self.frame_id = declare(self, 'frame_id', 'store', 'Frame of the published tracks.')
        check_period_s = declare(self, 'check_period_s', 0.05, 'How often a frame set a live '
                                 'camera has not completed is checked against max_wait_s [s].',
                                 lo=0.005, hi=2.0, read_only=True)
        slop_s = declare(self, 'slop_s', 0.1, 'Detections of different cameras stamped this '
                         'close are one frame set (one tracker step) [s].', lo=0.0, hi=2.0,
                         read_only=True)
        max_wait_s = declare(self, 'max_wait_s', 0.3, 'A frame set waits at most this long '
                             '(ROS time) for a live camera that has not delivered it [s].',
                             lo=0.0, hi=10.0, read_only=True)
        dropout_s = declare(self, 'dropout_s', 1.0, 'A camera silent this long has dropped out: '
                            'frame sets no longer wait for it [s].', lo=0.05, hi=60.0,
                            read_only=True)
        diagnostics_period_s = declare(self, 'diagnostics_period_s', 1.0,
                                       'Period of /diagnostics [s].', lo=0.1, hi=60.0)
        trace_file = declare(self, 'trace_file', '', 'Write every step (its gate scans, '
                             'detections and resulting tracks) to this JSON-lines file, for an '
                             'exact offline replay (store_fusion.trace); empty: none.',
                             read_only=True)
        params = declared(TrackerParams, TRACKER_SPECS, lambda name, default, text, lo, hi:
                          declare(self, name, default, text, lo=lo, hi=hi, read_only=True))
        if not store_file:
            raise ValueError('store_file is required')
        store = load_store(store_file)
        if not store.cameras:
            raise ValueError(f'{store_file}: the store has no cameras')
        self.tracker = ShopperTracker(store, params)
        self.trace = StepTrace(trace_file) if trace_file else None
        self.sync = FrameSync(tuple(c.id for c in store.cameras), slop_s, max_wait_s,
                              dropout_s)
        self.seen_gates: set[str] = set()
        self.refused_fields = 0
        self._lost_before = (0, 0, 0)
        for cam in store.cameras:
            self.create_subscription(DetectionArray, f'cameras/{cam.id}/detections',
                                     self._on_detections, qos_for('detections'))
        self.create_subscription(GateEvent, 'gate_events', self._on_gate, qos_for('gate_events'))
        self.pub = self.create_publisher(ShopperTracks, 'shopper_tracks',
                                         qos_for('shopper_tracks'))
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics',
                                              qos_for('/diagnostics'))
        self.create_timer(check_period_s, self._step_due)
        self.create_timer(diagnostics_period_s, self._publish_diagnostics)
        self.get_logger().info(f'tracking with {len(store.cameras)} cameras')

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_detections(self, msg: DetectionArray) -> None:
        dets, refused = detections_from_msg(msg)
        if refused:
            self.refused_fields += len(refused)
            self.get_logger().warning(f'detection fields ignored ({len(refused)}), e.g. '
                                      f'{refused[0]}', throttle_duration_sec=5.0)
        if not self.sync.add(msg.camera_id, stamp_ns(msg.header.stamp), dets, self._now_ns()):
            self.get_logger().debug(f'detections of {msg.camera_id!r} not used (unknown camera '
                                    'or stamped before the last step)')
        self._step_due()

    def _on_gate(self, msg: GateEvent) -> None:
        if msg.event_id in self.seen_gates:
            return
        self.seen_gates.add(msg.event_id)
        kind = 'enter' if msg.kind == GateEvent.KIND_ENTER else 'exit'
        self.sync.add_gate(stamp_ns(msg.header.stamp), kind, msg.shopper_id)

    def _step_due(self) -> None:
        for now, dets, gates in self.sync.ready(self._now_ns()):
            for gate in gates:
                self.tracker.on_gate(*gate)
            tracks = self.tracker.step(now, dets)
            if self.trace is not None:
                self.trace.write(now, dets, gates, tracks, self._now_ns())
            out = ShopperTracks()
            out.header.stamp = ns_stamp(now)
            out.header.frame_id = self.frame_id
            out.camera_ids = sorted(dets)
            out.tracks = [track_msg(t, now) for t in tracks]
            self.pub.publish(out)

    def _publish_diagnostics(self) -> None:
        st = self.sync.stats
        lost = (st.incomplete_steps, st.frames_dropped, st.frames_late)
        since = [a - b for a, b in zip(lost, self._lost_before)]
        self._lost_before = lost
        level = 'warn' if any(since) else 'ok'
        values = {'frames_in': st.frames_in, 'frames_used': st.frames_used,
                  'frames_late': st.frames_late, 'frames_dropped': st.frames_dropped,
                  'steps': st.steps, 'incomplete_steps': st.incomplete_steps,
                  'refused_detection_fields': self.refused_fields,
                  'tracks': len([t for t in self.tracker.tracks if not t.closed])}
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status.append(diagnostics.status(
            'store/tracker', 'tracker', level,
            f'since the last report: {since[0]} frame sets without a live camera, '
            f'{since[1] + since[2]} frames not used (queue full or late)' if level == 'warn'
            else 'tracking', values))
        self.pub_diag.publish(msg)


def main(args=None) -> int:
    return run_node('tracker', TrackerNode, (ValueError, OSError), args=args)


if __name__ == '__main__':
    main()
