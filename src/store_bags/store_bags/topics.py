"""The store's topics: their types, their QoS class, and the record presets.

The QoS class of a topic comes from the store's one table, ``store_common.topic_qos`` (the
nodes' ``store_common.ros.qos_for`` reads it too): events and state are reliable and
transient-local, plate batches reliable volatile, camera images best effort. The recorder
subscribes, and the player publishes, with the class of each topic, so a replayed EVENT topic is
latched for late joiners exactly as the live one.

No rclpy here.
"""
from __future__ import annotations

from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                QosTime)
from store_common.topic_qos import QOS_CLASSES, qos_class  # noqa: F401 - re-exported

PRESETS = ('sensors', 'all')

T = 'store_interfaces/msg/'


def bag_qos(topic: str) -> Qos:
    """The offered QoS profile of a topic as rosbag2 metadata stores it."""
    rel, dur, depth = QOS_CLASSES[qos_class(topic)]
    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, depth,
               QosReliability.RELIABLE if rel == 'reliable' else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if dur == 'transient_local'
               else QosDurability.VOLATILE,
               zero, zero, QosLiveliness.AUTOMATIC, zero, False)


def _ns(namespace: str) -> str:
    return '/' + namespace.strip('/')


def sensor_topics(store, namespace: str = '/store') -> dict[str, str]:
    """{topic: type} of the raw sensor topics the rest of the graph is rebuilt from: every
    controller's plate_weights and plate_raw, the gate events and the gates' watermarks, and
    the simulator's truth."""
    ns = _ns(namespace)
    out = {}
    for c in store.controllers:
        out[f'{ns}/{c.id}/plate_weights'] = T + 'PlateWeights'
        out[f'{ns}/{c.id}/plate_raw'] = T + 'RawPlateReadings'
    out[f'{ns}/gate_events'] = T + 'GateEvent'
    out[f'{ns}/gate_watermarks'] = T + 'SourceWatermark'
    out[f'{ns}/sim/ground_truth'] = 'std_msgs/msg/String'
    return out


def graph_topics(store, namespace: str = '/store') -> dict[str, str]:
    """{topic: type} of every topic of the store graph (docs/ARCHITECTURE.md)."""
    ns = _ns(namespace)
    out = sensor_topics(store, namespace)
    out.update({
        f'{ns}/shelf_events': T + 'ShelfEvent',
        f'{ns}/cart_updates': T + 'CartUpdate',
        f'{ns}/carts': T + 'CartState',
        f'{ns}/receipts': T + 'Receipt',
        f'{ns}/review_requests': T + 'ReviewRequest',
        f'{ns}/review_decisions': T + 'ReviewDecision',
        f'{ns}/review_decision_acks': T + 'ReviewDecisionAck',
        f'{ns}/shelf_watermarks': T + 'SourceWatermark',
        f'{ns}/fused_watermarks': T + 'SourceWatermark',
        f'{ns}/markers/layout': 'visualization_msgs/msg/MarkerArray',
        f'{ns}/markers/state': 'visualization_msgs/msg/MarkerArray',
        f'{ns}/shopper_tracks': T + 'ShopperTracks',
        f'{ns}/fused_shelf_events': T + 'FusedShelfEvent',
        '/diagnostics': 'diagnostic_msgs/msg/DiagnosticArray',
    })
    for c in getattr(store, 'cameras', ()):
        base = f'{ns}/cameras/{c.id}'
        out[f'{base}/image_raw'] = 'sensor_msgs/msg/Image'
        out[f'{base}/image_evidence/compressed'] = 'sensor_msgs/msg/CompressedImage'
        out[f'{base}/camera_info'] = 'sensor_msgs/msg/CameraInfo'
        out[f'{base}/detections'] = T + 'DetectionArray'
        out[f'{base}/detections_image'] = 'sensor_msgs/msg/Image'
    return out


def resolve_topics(spec: str | list[str], store, namespace: str = '/store') -> dict[str, str]:
    """Topics to record from a spec: a preset ('sensors', 'all') or a list of topic names
    (comma-separated text or a list). Names the graph does not know map to '' (type discovered
    at run time). Relative names are placed in ``namespace``."""
    items = spec.split(',') if isinstance(spec, str) else list(spec)
    items = [i.strip() for i in items if i and i.strip()]
    known = graph_topics(store, namespace)
    out: dict[str, str] = {}
    for item in items:
        if item == 'sensors':
            out.update(sensor_topics(store, namespace))
        elif item == 'all':
            out.update(known)
        else:
            name = item if item.startswith('/') else f'{_ns(namespace)}/{item}'
            out[name] = known.get(name, '')
    if not out:
        raise ValueError(f'no topics in {spec!r}; use a preset ({", ".join(PRESETS)}) '
                         f'or topic names')
    return out
