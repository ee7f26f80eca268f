"""bag_record: record store topics to a rosbag2 bag (MCAP) byte-exactly.

Subscribes with ``raw=True`` (serialized CDR, whatever the type) to the topics of a preset
(``sensors``: plate batches, gate events, ground truth; ``all``: every topic of the graph plus any
other discovered at run time) or an explicit list, each with the QoS of its publisher (events and
state reliable + transient-local), and writes them with their receive time. The bag is closed
(metadata.yaml written) on shutdown.

    ros2 run store_bags bag_record --ros-args -p bag_path:=out/bag1 -p topics:=sensors \
        -p store_file:=config/stores/demo.yaml
"""
from __future__ import annotations

from rclpy.node import Node

from store_bags.bag import BagError, BagWriter
from store_bags.play import message_class
from store_bags.ros_qos import from_publishers
from store_bags.topics import resolve_topics
from store_common.description import load_store
from store_common.ros import declare, run_node

IGNORED = ('/rosout', '/parameter_events')


class BagRecord(Node):

    def __init__(self):
        super().__init__('bag_record')
        self.bag_path = declare(self, 'bag_path', '', 'Bag directory to create (must not exist).')
        spec = declare(self, 'topics', 'sensors', 'Topics to record: a preset (sensors, all) '
                       'or comma-separated topic names; relative names are in namespace.')
        store_file = declare(self, 'store_file', '', 'Store description YAML (for the presets).')
        self.namespace = declare(self, 'namespace', '/store', 'Store namespace of the topics.')
        period_s = declare(self, 'discover_period_s', 1.0, 'How often to look for topics whose '
                           'type is not known yet.', lo=0.1, hi=60.0)
        if not self.bag_path:
            raise ValueError('parameter bag_path is required')
        store = load_store(store_file)
        self.wanted = resolve_topics(spec, store, self.namespace)
        self.discover_all = 'all' in [s.strip() for s in spec.split(',')]
        self.writer = BagWriter(self.bag_path)
        self.subs = {}
        for topic, msgtype in self.wanted.items():
            if msgtype:
                self._subscribe(topic, msgtype)
        self.timer = self.create_timer(period_s, self._discover)
        self.get_logger().info(f'recording {len(self.wanted)} topics to {self.bag_path}')

    def _subscribe(self, topic: str, msgtype: str) -> None:
        try:
            cls = message_class(msgtype)
        except LookupError as exc:
            self.get_logger().error(f'cannot record {topic}: {exc}')
            self.subs[topic] = None
            return
        try:
            self.writer.add_topic(topic, msgtype)
        except BagError as exc:
            self.get_logger().error(str(exc))
            self.subs[topic] = None
            return
        qos = from_publishers(topic, self.get_publishers_info_by_topic(topic))
        self.subs[topic] = self.create_subscription(
            cls, topic, lambda data, t=topic, m=msgtype: self._on_msg(t, m, data), qos, raw=True)

    def _on_msg(self, topic: str, msgtype: str, data: bytes) -> None:
        self.writer.write(topic, msgtype, self.get_clock().now().nanoseconds, data)

    def _discover(self) -> None:
        pending = [t for t, m in self.wanted.items() if t not in self.subs]
        if not pending and not self.discover_all:
            return
        for topic, types in self.get_topic_names_and_types():
            if topic in self.subs or topic in IGNORED or not types:
                continue
            if topic in self.wanted or self.discover_all:
                self.wanted.setdefault(topic, types[0])
                self._subscribe(topic, types[0])

    def close(self) -> None:
        self.writer.close()
        counts = ', '.join(f'{t}: {n}' for t, n in sorted(self.writer.counts.items()))
        self.get_logger().info(f'closed {self.bag_path} ({counts})')


def main(args=None):
    return run_node('bag_record', BagRecord, (BagError, ValueError, OSError), args=args)
