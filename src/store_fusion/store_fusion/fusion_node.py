"""fusion node: shelf events + shopper tracks -> fused shelf events (who took what).

Subscribes ``shelf_events`` (ShelfEvent) and ``shopper_tracks`` (ShopperTracks), both EVENT_QOS,
and the gondolas' ``shelf_watermarks``; publishes ``fused_shelf_events`` (FusedShelfEvent,
EVENT_QOS), its own watermark on ``fused_watermarks`` (source ``fusion``:
``event_buffer.fused_watermark_ns``) and ``/diagnostics``. Each shelf
event is held until the track stream's sensor time has passed its settled stamp by
max(post_s, vision_window_s), or for at most ``max_hold_s`` of ROS time (cameras down: the event
goes out without vision, and the cart falls back to weight only; ``lagging_hold_s`` while the
track stream is alive but behind). Concurrent events on different
plates are decided jointly (one shopper, one plate at a time; ``joint_*`` parameters). The hold,
the track history and the fusion live in ``event_buffer.py``, ``joint.py`` and ``fusion.py``;
this module only wires them. The fusion's parameters (``params.FUSION_SPECS``, and
``JOINT_SPECS`` as ``joint_*``) are ROS parameters, read from config/params/store.yaml like the
benchmark's.
"""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from store_common import diagnostics
from store_common.description import load_store
from store_common.ros import declare, qos_for, run_node
from store_common.ros_watermarks import WATERMARK_QOS, watermark_from_msg, WatermarkPublisher
from store_common.watermarks import WatermarkTracker
from store_interfaces.msg import FusedShelfEvent, ShelfEvent, ShopperTracks, SourceWatermark
from store_shelf.convert import shelf_event_from_msg

from store_fusion.calibration import Platt
from store_fusion.convert import fused_event_msg, snapshots_from_tracks
from store_fusion.event_buffer import EventFuser, fused_watermark_ns, NS
from store_fusion.fusion import FusionParams
from store_fusion.geometry import StoreGeometry
from store_fusion.joint import JointParams
from store_fusion.params import declared, FUSION_SPECS, JOINT_SPECS, with_confusion

_VISION = {0: 'none', 1: 'confirms', 2: 'changed', 3: 'conflicts'}


class FusionNode(Node):
    def __init__(self):
        super().__init__('fusion')
        store_file = declare(self, 'store_file', '', 'Store description YAML (plates, catalog, '
                             'cameras). Required.', read_only=True)
        calibration_file = declare(self, 'calibration_file', '', 'Platt calibration JSON of the '
                                   'fused confidence (bench_fusion --fit-calibration). "": none.',
                                   read_only=True)
        confusion_file = declare(self, 'sku_confusion_file', '', 'Which SKU the detector names '
                                 'for which product in a hand (JSON, bench_detector '
                                 '--confusion-out). "": every wrong SKU equally likely, at '
                                 'sku_accuracy.', read_only=True)
        max_hold_s = declare(self, 'max_hold_s', 5.0, 'A shelf event waits at most this long '
                             '(ROS time since it arrived) for the track stream to pass it; then '
                             'it is fused with whatever evidence there is [s].', lo=0.0,
                             hi=60.0, read_only=True)
        lagging_hold_s = declare(self, 'lagging_hold_s', 9.0, 'While the track stream is '
                                 'alive (a message in the last second) but behind, a shelf '
                                 'event waits for it up to this long instead of max_hold_s (a '
                                 'loaded detector delivers seconds late); keep it under the '
                                 'cart\'s source_timeout_s [s].', lo=0.0, hi=60.0,
                                 read_only=True)
        keep_s = declare(self, 'history_keep_s', 60.0, 'Track snapshots kept this long (sensor '
                         'time) [s].', lo=5.0, hi=3600.0, read_only=True)
        check_period_s = declare(self, 'check_period_s', 0.1, 'How often held events are '
                                 'checked against the hold timeout [s].', lo=0.01, hi=5.0,
                                 read_only=True)
        diagnostics_period_s = declare(self, 'diagnostics_period_s', 1.0,
                                       'Period of /diagnostics [s].', lo=0.1, hi=60.0)
        shelf_sources = declare(self, 'shelf_sources', [], 'Shelf event sources ("shelf/'
                                '<gondola>") whose watermarks make the fusion node\'s own '
                                '(fused_watermarks), which the cart waits for. Empty: no '
                                'watermark is published.', read_only=True, array_type='string')
        source_timeout_s = declare(self, 'source_timeout_s', 10.0, 'A shelf source silent '
                                   'this long is no longer waited for [s].', lo=0.5, hi=600.0,
                                   read_only=True)

        def one(name, default, text, lo, hi):
            return declare(self, name, default, text, lo=lo, hi=hi, read_only=True)
        params = with_confusion(declared(FusionParams, FUSION_SPECS, one), confusion_file)
        joint = declared(JointParams, JOINT_SPECS, one)   # joint_* parameters
        if not store_file:
            raise ValueError('parameter store_file is required (the store description YAML)')
        store = load_store(store_file)
        self.frame_id = store.frame_id
        self.max_hold_s = max_hold_s
        calibration = Platt.load(calibration_file) if calibration_file else None
        self.fuser = EventFuser(StoreGeometry(store), len(store.catalog.products), params,
                                max_hold_s=max_hold_s, keep_s=keep_s, calibration=calibration,
                                joint=joint, lagging_hold_s=lagging_hold_s)
        self._last_tracks_ns: int | None = None      # ROS time of the last track message
        self._fused = 0

        self.pub = self.create_publisher(FusedShelfEvent, 'fused_shelf_events',
                                         qos_for('fused_shelf_events'))
        self.shelf_marks = WatermarkTracker(shelf_sources, source_timeout_s,
                                            self.fuser.buffer.seen)
        self.watermark = WatermarkPublisher(self, 'fused_watermarks', 'fusion')
        self.create_subscription(SourceWatermark, 'shelf_watermarks', self._on_watermark,
                                 WATERMARK_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics',
                                              qos_for('/diagnostics'))
        self.create_subscription(ShopperTracks, 'shopper_tracks', self._on_tracks,
                                 qos_for('shopper_tracks'))
        self.create_subscription(ShelfEvent, 'shelf_events', self._on_shelf,
                                 qos_for('shelf_events'))
        self.create_timer(check_period_s, self._release)
        self.create_timer(diagnostics_period_s, self._publish_diagnostics)
        self.get_logger().info(
            f'store {store.id}: shelf events wait for tracks {self.fuser.after_s:.1f} s past '
            f'their settled stamp, at most {max_hold_s:.1f} s ({lagging_hold_s:.1f} s while '
            f'the tracks lag); calibration '
            f'{calibration_file or "none"}; SKU confusion {confusion_file or "none"}')

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_tracks(self, msg: ShopperTracks) -> None:
        stamp, snaps = snapshots_from_tracks(msg)
        if self.fuser.on_tracks(stamp, snaps, self._now_ns()):
            self._last_tracks_ns = self._now_ns()
            self._release()

    def _on_watermark(self, msg: SourceWatermark) -> None:
        warning = self.shelf_marks.update(*watermark_from_msg(msg))
        if warning:
            self.get_logger().warning(warning, throttle_duration_sec=5.0)
        self._release()

    def _on_shelf(self, msg: ShelfEvent) -> None:
        ev = shelf_event_from_msg(msg)
        if not self.fuser.on_shelf_event(ev, msg, self._now_ns()):
            self.get_logger().debug(f'shelf event {ev.event_id} redelivered; fused already')
            return
        self._release()

    def _release(self) -> None:
        log = self.get_logger()
        for out in self.fuser.poll(self._now_ns()):
            r, res = out.released, out.result
            self.pub.publish(fused_event_msg(r.payload, res, self.frame_id))
            self.watermark.event_published(r.event_id)
            self._fused += 1
            text = (f'{r.event_id}: {res.detail}; confidence {res.confidence:.2f}, vision '
                    f'{_VISION.get(res.vision, res.vision)}')
            if r.timed_out:
                lag = ('no shopper tracks yet' if r.watermark_ns is None else
                       f'tracks {(r.settled_ns - r.watermark_ns) / NS:+.1f} s from its settled '
                       'stamp')
                log.warning(f'{text} (released after {r.waited_s:.1f} s without the track '
                            f'evidence: {lag})')
            else:
                log.info(text)
        for line in self.shelf_marks.changes():
            log.warning(line)
        mark = fused_watermark_ns(self.shelf_marks.frontier_ns(), self.fuser.buffer)
        if mark is not None:
            self.watermark.publish(mark)

    def _publish_diagnostics(self) -> None:
        now = self._now_ns()
        st = self.fuser.buffer.stats
        tracks_age_s = (now - self._last_tracks_ns) / NS if self._last_tracks_ns else None
        if tracks_age_s is None or tracks_age_s > self.max_hold_s:
            level = 'warn'
            message = ('no shopper tracks' if tracks_age_s is None else
                       f'no shopper tracks for {tracks_age_s:.1f} s') + \
                ': shelf events go out after max_hold_s without vision'
        else:
            level, message = 'ok', 'fusing'
        values = {'pending_events': len(self.fuser.buffer), 'received': st.received,
                  'fused': self._fused, 'released_by_timeout': st.timed_out,
                  'duplicates': st.duplicates, 'track_messages': self.fuser.track_messages,
                  'last_tracks_age_s': '' if tracks_age_s is None else f'{tracks_age_s:.3f}',
                  'oldest_pending_wait_s': f'{self.fuser.buffer.oldest_wait_s(now):.3f}'}
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status.append(diagnostics.status('store/fusion', 'fusion', level, message, values))
        self.pub_diag.publish(msg)


def main(args=None) -> int:
    return run_node('fusion', FusionNode, (ValueError, KeyError, OSError), args=args)


if __name__ == '__main__':
    raise SystemExit(main())
