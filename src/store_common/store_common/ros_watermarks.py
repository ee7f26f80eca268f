"""ROS side of source watermarks (``store_common.watermarks``): publish a source's, take others'.

Topics: ``gate_watermarks`` (gate drivers, and bag replay of their recordings),
``shelf_watermarks`` (shelf event nodes), ``fused_watermarks`` (the fusion node). Each is
reliable and transient-local with depth 1 per publisher, so a (re)started consumer hears the
latest promise of every source at once.
"""
from __future__ import annotations

import os
import time

from rclpy.node import Node
from store_interfaces.msg import SourceWatermark

from store_common.ros import profile
from store_common.stamps import from_ns, to_ns
from store_common.topic_qos import QOS_CLASSES

WATERMARK_QOS = profile(*QOS_CLASSES['watermark'])     # store_common.topic_qos


class WatermarkPublisher:
    """Publishes one source's watermark at most every ``period_s`` (monotonic clock), never
    backwards. Call :meth:`event_published` right after publishing each event."""

    def __init__(self, node: Node, topic: str, source_id: str, period_s: float = 0.2):
        self.source_id = source_id
        self.run_id = f'{os.getpid()}@{time.time_ns()}'
        self.last_event_id = ''
        self.stamp_ns: int | None = None
        self._period_ns = int(period_s * 1e9)
        self._sent_mono: int | None = None
        self._pub = node.create_publisher(SourceWatermark, topic, WATERMARK_QOS)

    def event_published(self, event_id: str) -> None:
        self.last_event_id = event_id

    def publish(self, stamp_ns: int) -> bool:
        """Promise that every event stamped at or before ``stamp_ns`` is published."""
        self.stamp_ns = stamp_ns if self.stamp_ns is None else max(self.stamp_ns, stamp_ns)
        now = time.monotonic_ns()
        if self._sent_mono is not None and now - self._sent_mono < self._period_ns:
            return False
        self._sent_mono = now
        msg = SourceWatermark(source_id=self.source_id, run_id=self.run_id,
                              last_event_id=self.last_event_id)
        msg.header.stamp = from_ns(self.stamp_ns, type(msg.header.stamp))
        self._pub.publish(msg)
        return True


def watermark_from_msg(msg: SourceWatermark) -> tuple[str, str, int, str]:
    """(source_id, run_id, stamp_ns, last_event_id) for ``WatermarkTracker.update``, which
    refuses an empty source or a negative stamp with its reason."""
    return msg.source_id, msg.run_id, to_ns(msg.header.stamp), msg.last_event_id
