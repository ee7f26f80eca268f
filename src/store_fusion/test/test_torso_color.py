"""The tracker node's appearance cue at the boundary: Detection.torso_rgb becomes a shopper
box's colour only when it is three finite values in 0..255; anything else is ignored with a
reason (the box still counts, without colour)."""
import math

import pytest

from store_fusion.geometry import appearance_feature, checked_torso_rgb


def test_a_measured_colour_is_taken_as_it_is():
    assert checked_torso_rgb([200.0, 40.5, 0.0]) == ((200.0, 40.5, 0.0), '')
    assert appearance_feature(checked_torso_rgb((255, 255, 255))[0]) is not None


def test_empty_is_not_measured_without_a_complaint():
    assert checked_torso_rgb([]) == (None, '')


@pytest.mark.parametrize('values,why', [([1.0, 2.0], '2 values'), ([1.0] * 4, '4 values'),
                                        ([math.nan, 1.0, 1.0], 'not finite'),
                                        ([math.inf, 1.0, 1.0], 'not finite'),
                                        ([-1.0, 1.0, 1.0], 'outside 0..255'),
                                        ([1.0, 256.0, 1.0], 'outside 0..255'),
                                        (['red', 1, 1], 'not a list of numbers')])
def test_a_malformed_colour_is_refused_with_its_reason(values, why):
    color, reason = checked_torso_rgb(values)
    assert color is None and why in reason


def test_the_node_reads_the_message_field_into_the_shopper_box():
    from store_interfaces.msg import Detection, DetectionArray
    if 'torso_rgb' not in Detection.get_fields_and_field_types():
        pytest.fail('Detection.torso_rgb is not built: run bash tools/setup.sh')
    from store_fusion.tracker_node import detections_from_msg
    msg = DetectionArray(camera_id='cam1', detections=[
        Detection(id='cam1/0', class_name='shopper', score=0.9, center_x=100.0, center_y=200.0,
                  size_x=60.0, size_y=150.0, torso_rgb=[200.0, 40.0, 40.0]),
        Detection(id='cam1/1', class_name='shopper', score=0.8, center_x=300.0, center_y=200.0,
                  size_x=60.0, size_y=150.0, torso_rgb=[200.0, 40.0, 400.0]),
        Detection(id='cam1/2', class_name='shopper', score=0.8, center_x=500.0, center_y=200.0,
                  size_x=60.0, size_y=150.0),
        Detection(id='cam1/3', class_name='hand', score=0.7, center_x=110.0, center_y=210.0,
                  size_x=10.0, size_y=10.0, torso_rgb=[1.0, 2.0, 3.0])])
    dets, refused = detections_from_msg(msg)
    assert [d.color for d in dets] == [(200.0, 40.0, 40.0), None, None, None]
    assert len(refused) == 1 and 'cam1/1' in refused[0] and 'outside 0..255' in refused[0]


def test_the_node_gives_carried_shopper_boxes_their_age():
    """``shoppers_stamp`` before the image's stamp: the shopper boxes were found on that earlier
    image (hands and products were not); after it: refused, the boxes taken as the image's;
    zero (an older publisher): the image's."""
    from builtin_interfaces.msg import Time
    from store_interfaces.msg import Detection, DetectionArray
    from store_fusion.tracker_node import detections_from_msg

    def msg(boxes_stamp):
        m = DetectionArray(camera_id='cam2', detections=[
            Detection(id='cam2/0', class_name='shopper', score=0.9, center_x=100.0,
                      center_y=200.0, size_x=60.0, size_y=150.0),
            Detection(id='cam2/1', class_name='hand', score=0.7, center_x=110.0,
                      center_y=210.0, size_x=10.0, size_y=10.0)])
        m.header.stamp = Time(sec=20, nanosec=500_000_000)
        m.shoppers_stamp = boxes_stamp
        return m

    dets, refused = detections_from_msg(msg(Time(sec=20, nanosec=200_000_000)))
    assert [d.age_s for d in dets] == [pytest.approx(0.3), 0.0] and not refused
    dets, refused = detections_from_msg(msg(Time(sec=20, nanosec=500_000_000)))
    assert [d.age_s for d in dets] == [0.0, 0.0] and not refused
    dets, refused = detections_from_msg(msg(Time(sec=21)))
    assert [d.age_s for d in dets] == [0.0, 0.0]
    assert len(refused) == 1 and 'cam2' in refused[0] and 'after the image' in refused[0]
    dets, refused = detections_from_msg(msg(Time()))
    assert [d.age_s for d in dets] == [0.0, 0.0] and not refused
