"""bag_play: replay a bag into the graph, with /clock from bag time.

Publishes every selected topic's serialized messages with the recorded type and the topic's QoS
(the recorded offered profile, else the store's class: events latched), at ``rate`` times real
time, starting ``start_offset_s`` into the bag, optionally looping, and publishes
``/clock`` (rosgraph_msgs/Clock) at ``clock_hz`` so nodes with ``use_sim_time`` follow bag time.
Exits when the bag is done, unless ``loop``; with ``exit_when_done:=false`` it stays up and keeps
the clock running (receipts due a few seconds after the last exit scan are still issued).

A damaged bag stops the replay with an error naming the bag, the storage file, the byte offset
and the message where the damage starts, and the process exits 1 (never "end of bag" and 0 after
replaying part of it). With ``check_messages`` (default) every message is deserialized before it
is published, so a message whose bytes were damaged is not sent into the graph.

    ros2 run store_bags bag_play --ros-args -p bag_path:=out/bag1 -p rate:=2.0
"""
from __future__ import annotations

import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rosgraph_msgs.msg import Clock

from store_bags.bag import BagError, BagReader
from store_bags.play import message_class, parse_topics, PlayClock, start_ns
from store_bags.ros_qos import from_bag, profile
from store_common.ros import declare, ns_stamp


class BagPlay(Node):

    def __init__(self):
        super().__init__('bag_play')
        self.bag_path = declare(self, 'bag_path', '', 'Bag directory to play.')
        self.rate = declare(self, 'rate', 1.0, 'Time scale: bag seconds per wall second.',
                            lo=0.01, hi=100.0)
        self.offset_s = declare(self, 'start_offset_s', 0.0, 'Start this far into the bag [s].',
                                lo=0.0, hi=1e6)
        self.topics = parse_topics(declare(self, 'topics', '', 'Comma-separated topics to '
                                           'play; empty: every topic of the bag.'))
        self.loop = declare(self, 'loop', False, 'Start over at the end of the bag.')
        self.clock_hz = declare(self, 'clock_hz', 100.0, 'Rate of /clock messages [Hz]; 0: no '
                                '/clock.', lo=0.0, hi=1000.0)
        self.delay_s = declare(self, 'start_delay_s', 0.0, 'Wait this long (wall time) before '
                               'the first message so subscribers can connect [s].', lo=0.0,
                               hi=60.0)
        self.exit_when_done = declare(self, 'exit_when_done', True, 'Exit at the end of the '
                                      'bag; false: stay up and keep /clock running.')
        self.check_messages = declare(self, 'check_messages', True, 'Deserialize every message '
                                      'before publishing it; a damaged one stops the replay.')
        if not self.bag_path:
            raise ValueError('parameter bag_path is required')
        self.reader = BagReader(self.bag_path)
        selected = (self.reader.check_topics(self.topics) if self.topics
                    else sorted(self.reader.topics))
        self.pubs = {}
        for topic in selected:
            info = self.reader.topics[topic]
            try:
                cls = message_class(info.msgtype)
            except LookupError as exc:
                raise BagError(self.bag_path, str(exc), topic) from None
            self.pubs[topic] = self.create_publisher(cls, topic, from_bag(topic, info.qos))
        clock_qos = profile('reliable', 'volatile', 10)
        self.clock_pub = (self.create_publisher(Clock, '/clock', clock_qos)
                          if self.clock_hz > 0 else None)
        self.sent = 0
        self.get_logger().info(
            f'playing {self.bag_path}: {len(self.pubs)} topics, {self.reader.message_count} '
            f'messages, {self.reader.duration_s:.1f} s, rate {self.rate}, offset '
            f'{self.offset_s} s{", loop" if self.loop else ""}')

    def _publish_clock(self, bag_ns: int) -> None:
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=ns_stamp(bag_ns)))

    def _wait_until(self, clock: PlayClock, due_wall_s: float, next_clock: list) -> bool:
        """Sleep until ``due_wall_s``, publishing /clock on the way. False on shutdown."""
        period = 1.0 / self.clock_hz if self.clock_hz > 0 else 0.05
        while rclpy.ok(context=self.context):
            now = time.monotonic()
            if now >= next_clock[0]:
                self._publish_clock(max(clock.t0_ns, clock.bag_ns(min(now, due_wall_s))))
                next_clock[0] = now + period
            if now >= due_wall_s:
                return True
            time.sleep(max(0.0, min(due_wall_s, next_clock[0]) - now))
        return False

    def run(self) -> None:
        first_ns = start_ns(self.reader.start_ns, self.offset_s)
        topics = list(self.pubs)
        start_wall = time.monotonic() + self.delay_s
        clock = PlayClock(first_ns, start_wall, self.rate)
        next_clock = [0.0]
        self._wait_until(clock, start_wall, next_clock)
        while rclpy.ok(context=self.context):
            last_ns = first_ns
            for m in self.reader.messages(topics, start_ns=first_ns):
                if self.check_messages:
                    try:
                        self.reader.deserialize(m)
                    except BagError as exc:
                        raise BagError(self.bag_path, f'message {self.sent + 1} of the replay: '
                                                      f'{exc.message}', m.topic) from None
                if not self._wait_until(clock, clock.wall_s(m.stamp_ns), next_clock):
                    return
                self.pubs[m.topic].publish(m.data)
                self.sent += 1
                last_ns = m.stamp_ns
            self.get_logger().info(f'end of bag after {self.sent} messages')
            if not self.loop:
                break
            clock = PlayClock(first_ns, clock.wall_s(last_ns), self.rate)
        if self.exit_when_done:
            # let reliable subscribers take the last messages, with the clock still advancing
            self._wait_until(clock, time.monotonic() + 0.5, next_clock)
            return
        self._wait_until(clock, float('inf'), next_clock)


def main(args=None):
    try:
        with rclpy.init(args=args):
            try:
                node = BagPlay()
            except (BagError, ValueError) as exc:
                rclpy.logging.get_logger('bag_play').error(str(exc))
                return 1
            try:
                node.run()
            except BagError as exc:
                node.get_logger().error(f'replay stopped: {exc}')
                return 1
            finally:
                node.reader.close()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
