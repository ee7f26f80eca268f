"""The detector's message: shopper boxes carry the torso colour measured from the image."""
import numpy as np

from store_perception.detection import Det
from store_perception.detector_node import to_msg
from builtin_interfaces.msg import Time
from std_msgs.msg import Header


def test_shopper_boxes_carry_the_torso_colour_other_classes_none():
    img = np.zeros((200, 200, 3), np.uint8)
    img[:, :] = (10, 20, 30)                      # background (BGR)
    img[50:115, 75:125] = (200, 100, 50)          # the shirt, BGR -> RGB (50, 100, 200)
    dets = [Det(0, 'shopper', 0.9, 50, 20, 150, 200),     # torso band rows 59.6-110, cols 80-120
            Det(1, 'hand', 0.8, 10, 10, 30, 30),
            Det(0, 'shopper', 0.7, 199.5, 0, 200, 2)]      # band under 2 px inside the image
    msg = to_msg(Header(), 'cam1', 200, 200, dets, 3.0, img)
    shopper, hand, tiny = msg.detections
    assert np.allclose(shopper.torso_rgb, (50, 100, 200), atol=1.0), list(shopper.torso_rgb)
    assert list(hand.torso_rgb) == [] and list(tiny.torso_rgb) == []
    assert list(to_msg(Header(), 'cam1', 200, 200, dets, 3.0).detections[0].torso_rgb) == []
    # boxes carried over from an earlier image: the band under them is not their shirt now
    # boxes carried over from an earlier image: the band under them is not their shirt now,
    # and the message says which image they were found on
    header = Header(stamp=Time(sec=12, nanosec=300_000_000))
    carried = to_msg(header, 'cam1', 200, 200, dets, 3.0, img, shoppers_stamp_ns=11_900_000_000)
    assert list(carried.detections[0].torso_rgb) == []
    assert carried.detections[0].center_x == shopper.center_x     # the boxes themselves stay
    assert (carried.shoppers_stamp.sec, carried.shoppers_stamp.nanosec) == (11, 900_000_000)
    fresh = to_msg(header, 'cam1', 200, 200, dets, 3.0, img)
    assert (fresh.shoppers_stamp.sec, fresh.shoppers_stamp.nanosec) == (12, 300_000_000)


def test_the_tracker_and_the_detector_measure_with_one_function():
    from store_common.appearance import torso_color
    geometry = __import__('pytest').importorskip('store_fusion.geometry')
    assert geometry.torso_color is torso_color
