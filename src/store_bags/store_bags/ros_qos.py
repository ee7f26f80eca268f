"""rclpy QoS profiles for recorded and replayed topics (ROS glue; node modules only)."""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from store_bags.topics import QOS_CLASSES, qos_class
# the store's profiles, from its one table (store_common.topic_qos)
from store_common.ros import profile, qos_for as topic_qos

__all__ = ['from_bag', 'from_publishers', 'profile', 'topic_qos']


def from_bag(topic: str, offered: tuple) -> QoSProfile:
    """Publisher QoS for replaying ``topic``: the recorded offered profile when the bag has one
    (rosbags Qos), else the store's class of the topic."""
    if not offered:
        return topic_qos(topic)
    q = offered[0]
    rel = 'reliable' if q.reliability.name == 'RELIABLE' else 'best_effort'
    dur = 'transient_local' if q.durability.name == 'TRANSIENT_LOCAL' else 'volatile'
    return profile(rel, dur, max(1, int(q.depth) or QOS_CLASSES[qos_class(topic)][2]))


def from_publishers(topic: str, infos) -> QoSProfile:
    """Subscriber QoS compatible with every publisher of a topic the store does not know
    (``Node.get_publishers_info_by_topic``): transient-local / reliable only if all offer it."""
    if qos_class(topic) != 'default' or not infos:
        return topic_qos(topic)
    rel = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    dur = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    return profile('reliable' if rel else 'best_effort',
                   'transient_local' if dur else 'volatile', 100)
