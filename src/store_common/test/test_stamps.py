"""Reading a header stamp from serialized messages without deserializing them."""
import numpy as np
import pytest

from store_common.stamps import cdr_header_stamp_ns, NS_PER_S


def serialized_image(sec: int, nanosec: int) -> bytes:
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image
    msg = Image(height=2, width=3, encoding='bgr8', step=9)
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    msg.data = np.arange(18, dtype=np.uint8).tobytes()
    return serialize_message(msg)


@pytest.mark.parametrize('sec,nanosec', [(0, 0), (1796438682, 999_999_999), (-5, 7)])
def test_stamp_of_a_serialized_image_equals_its_header(sec, nanosec):
    assert cdr_header_stamp_ns(serialized_image(sec, nanosec)) == sec * NS_PER_S + nanosec


def test_big_endian_cdr():
    data = bytes([0, 0, 0, 0]) + (12).to_bytes(4, 'big') + (34).to_bytes(4, 'big')
    assert cdr_header_stamp_ns(data) == 12 * NS_PER_S + 34


@pytest.mark.parametrize('data', [b'', b'\x00\x01\x00\x00\x01\x00',          # too short
                                  b'\x00\x02\x00\x00' + bytes(8),           # PL_CDR: no stamp
                                  b'\x00\x01\x00\x00' + bytes(4)
                                  + NS_PER_S.to_bytes(4, 'little')])      # nanosec >= 1 s
def test_not_a_readable_stamp_gives_none(data):
    assert cdr_header_stamp_ns(data) is None
