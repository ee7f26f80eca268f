"""QoS of every topic of the store graph, by what its data means: one table for the nodes
(``store_common.ros.qos_for``) and for the bag recorder and player (``store_bags.topics``), so a
replayed topic is offered exactly as the live one. Plain data, no rclpy.

Classes: sensor streams (images) best effort with a shallow queue; plate batches reliable
volatile with a queue of a few seconds; detections reliable volatile (each frame set steps the
tracker once); events that change money and the tracks they are fused with reliable and
transient-local with a deep history (a restarted consumer receives what it missed and
de-duplicates by id or stamp); state that late joiners need latched; watermarks latched, depth 1.
"""
from __future__ import annotations

# class -> (reliability, durability, depth)
QOS_CLASSES = {
    'event': ('reliable', 'transient_local', 1000),
    'watermark': ('reliable', 'transient_local', 1),
    'state': ('reliable', 'transient_local', 100),
    'stream': ('reliable', 'volatile', 200),
    'detections': ('reliable', 'volatile', 10),
    'sensor': ('best_effort', 'volatile', 5),
    'clock': ('best_effort', 'volatile', 1),
    'default': ('reliable', 'volatile', 10),
}

# topic name (relative, matched as the name's last segments; '/x': that absolute name) -> class
TOPIC_CLASSES = {
    # sensors: cameras (cameras/<id>/...), load cells (<controller>/...), gates
    'image_raw': 'sensor',
    'image_evidence/compressed': 'sensor',
    'camera_info': 'sensor',
    'detections_image': 'sensor',
    'plate_raw': 'stream',
    'plate_weights': 'stream',
    'detections': 'detections',
    # events
    'gate_events': 'event',
    'shelf_events': 'event',
    'shopper_tracks': 'event',
    'fused_shelf_events': 'event',
    'cart_updates': 'event',
    'review_requests': 'event',
    'review_decisions': 'event',
    'review_decision_acks': 'event',
    'sim/ground_truth': 'event',
    # state
    'carts': 'state',
    'receipts': 'state',
    'markers/layout': 'state',
    # sources' promises of completeness (store_common.watermarks)
    'gate_watermarks': 'watermark',
    'shelf_watermarks': 'watermark',
    'fused_watermarks': 'watermark',
    # monitoring
    'markers/state': 'default',
    '/diagnostics': 'default',
    '/clock': 'clock',
}


def qos_class(topic: str) -> str:
    """QoS class of a topic name (absolute or relative): a key of :data:`QOS_CLASSES`;
    'default' for a topic the table does not know."""
    name = topic.rstrip('/')
    for key, cls in TOPIC_CLASSES.items():
        if key.startswith('/'):
            if name == key:
                return cls
        elif name == key or name.endswith('/' + key):
            return cls
    return 'default'
