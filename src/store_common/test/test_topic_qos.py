"""One QoS table for every topic of the graph: the nodes and the bag tools read the same."""
import pytest

from store_common.topic_qos import QOS_CLASSES, qos_class, TOPIC_CLASSES


@pytest.mark.parametrize('topic,cls', [
    ('/store/cameras/cam1/image_raw', 'sensor'), ('/store/cameras/cam1/camera_info', 'sensor'),
    ('/store/cameras/cam1/detections', 'detections'),
    ('/store/cameras/cam1/detections_image', 'sensor'),
    ('/store/pc_g1/plate_weights', 'stream'), ('/store/shelf_events', 'event'),
    ('/store/fused_shelf_events', 'event'), ('/store/shopper_tracks', 'event'),
    ('/store/gate_events', 'event'), ('/store/receipts', 'state'),
    ('/store/fused_watermarks', 'watermark'), ('/store/shelf_watermarks', 'watermark'),
    ('/diagnostics', 'default'), ('/clock', 'clock'), ('shopper_tracks', 'event'),
    ('/store/something_new', 'default')])
def test_topics_have_their_class(topic, cls):
    assert qos_class(topic) == cls


def test_every_class_is_defined_and_the_node_profiles_follow_the_table():
    assert set(TOPIC_CLASSES.values()) <= set(QOS_CLASSES)
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from store_common.ros import EVENT_QOS, qos_for, SENSOR_QOS
    ev = qos_for('/store/fused_shelf_events')
    assert ev == EVENT_QOS and ev.depth == QOS_CLASSES['event'][2]
    assert ev.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert qos_for('cameras/c1/image_raw') == SENSOR_QOS
    assert SENSOR_QOS.reliability == ReliabilityPolicy.BEST_EFFORT


def test_the_bag_tools_use_the_same_table_for_every_graph_topic():
    import pathlib

    from store_bags.topics import bag_qos, graph_topics
    from store_common.description import load_store
    store = load_store(pathlib.Path(__file__).resolve().parents[3] / 'config' / 'stores' /
                       'demo.yaml')
    topics = graph_topics(store)
    for c in store.cameras:
        assert f'/store/cameras/{c.id}/detections' in topics
    assert '/store/fused_shelf_events' in topics and '/store/shopper_tracks' in topics
    for t in topics:
        rel, dur, depth = QOS_CLASSES[qos_class(t)]
        q = bag_qos(t)
        assert (q.depth, q.reliability.name, q.durability.name) == (
            depth, rel.upper(), dur.upper()), t
