"""Image <-> NumPy conversion: round trips for every encoding, cv_bridge's conversion and error
semantics, padded rows and big-endian messages."""
import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from store_perception.image_conversion import (CvBridge, CvBridgeError, ENCODINGS,
                                               NumpyBridge)


def sample(encoding, h=5, w=7):
    dtype, ch = ENCODINGS[encoding]
    rng = np.random.default_rng(abs(hash(encoding)) % 1000)
    shape = (h, w) if ch == 1 else (h, w, ch)
    if dtype == np.float32:
        return rng.normal(0, 100, shape).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


@pytest.fixture(params=['numpy', 'default'])
def bridge(request):
    return NumpyBridge() if request.param == 'numpy' else CvBridge()


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_round_trip_every_encoding(bridge, encoding):
    img = sample(encoding)
    header = Header(frame_id='camera_cam1_optical')
    header.stamp.sec = 12
    msg = bridge.cv2_to_imgmsg(img, encoding, header=header)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * img.itemsize * (1 if img.ndim == 2 else img.shape[2])
    assert msg.header.frame_id == 'camera_cam1_optical' and msg.header.stamp.sec == 12
    back = bridge.imgmsg_to_cv2(msg)
    assert back.dtype == img.dtype and back.shape == img.shape
    assert np.array_equal(back, img)
    assert np.array_equal(bridge.imgmsg_to_cv2(msg, encoding), img)


@pytest.mark.parametrize('dtype,ch,encoding', [(np.uint8, 1, '8UC1'), (np.uint8, 3, '8UC3'),
                                               (np.uint8, 4, '8UC4'), (np.uint16, 1, '16UC1'),
                                               (np.float32, 1, '32FC1')])
def test_passthrough_names_the_type(bridge, dtype, ch, encoding):
    img = np.zeros((2, 3) if ch == 1 else (2, 3, ch), dtype)
    assert bridge.cv2_to_imgmsg(img).encoding == encoding


def test_colour_conversions_follow_cv_bridge():
    b = NumpyBridge()
    bgr = sample('bgr8')
    msg = b.cv2_to_imgmsg(bgr, 'bgr8')
    assert np.array_equal(b.imgmsg_to_cv2(msg, 'rgb8'), bgr[..., ::-1])
    rgba = b.imgmsg_to_cv2(msg, 'rgba8')
    assert rgba.shape == (5, 7, 4) and np.all(rgba[..., 3] == 255)
    assert np.array_equal(rgba[..., :3], bgr[..., ::-1])
    mono = b.imgmsg_to_cv2(msg, 'mono8')
    expected = np.round(0.114 * bgr[..., 0] + 0.587 * bgr[..., 1] + 0.299 * bgr[..., 2])
    assert np.abs(mono.astype(int) - expected).max() <= 1
    m16 = np.array([[0, 256, 65535]], np.uint16)
    assert b.imgmsg_to_cv2(b.cv2_to_imgmsg(m16, 'mono16'), 'mono8').tolist() == [[0, 1, 255]]
    gray = b.imgmsg_to_cv2(b.cv2_to_imgmsg(np.array([[7]], np.uint8), 'mono8'), 'bgr8')
    assert gray.tolist() == [[[7, 7, 7]]]


def test_padded_rows_and_big_endian_messages():
    b = NumpyBridge()
    img = sample('16UC1', 3, 4)
    msg = Image(height=3, width=4, encoding='16UC1', is_bigendian=1, step=4 * 2 + 6)
    rows = [img[r].astype('>u2').tobytes() + b'\xee' * 6 for r in range(3)]
    msg.data = b''.join(rows)
    assert np.array_equal(b.imgmsg_to_cv2(msg), img)
    rgb = sample('rgb8', 2, 3)
    msg = Image(height=2, width=3, encoding='rgb8', step=16,
                data=b''.join(rgb[r].tobytes() + b'\0' * 7 for r in range(2)))
    assert np.array_equal(b.imgmsg_to_cv2(msg, 'bgr8'), rgb[..., ::-1])


@pytest.mark.parametrize('call,match', [
    (lambda b: b.cv2_to_imgmsg(np.zeros((2, 2, 3), np.uint8), 'mono8'),
     'encoding specified as mono8, but image has incompatible type 8UC3'),
    (lambda b: b.cv2_to_imgmsg(np.zeros((2, 2), np.float64)), 'Unrecognized image type 64FC1'),
    (lambda b: b.cv2_to_imgmsg(np.zeros((2, 2), np.uint8), 'yuv422'),
     r'Unrecognized image encoding \[yuv422\]'),
    (lambda b: b.imgmsg_to_cv2(Image(height=2, width=2, encoding='bgr8', step=6,
                                     data=bytes(12)), 'bayer_rggb8'),
     r'Unrecognized image encoding \[bayer_rggb8\]'),
    (lambda b: b.imgmsg_to_cv2(Image(height=2, width=2, encoding='bgr8', step=6,
                                     data=bytes(5))), 'data has 5 bytes'),
    (lambda b: b.imgmsg_to_cv2(Image(height=2, width=2, encoding='bgr8', step=4,
                                     data=bytes(12))), 'step 4 is smaller'),
    (lambda b: b.imgmsg_to_cv2(Image(height=1, width=1, encoding='32FC1', step=4,
                                     data=bytes(4)), 'mono8'), 'Unsupported conversion'),
])
def test_errors_are_cv_bridge_errors(call, match):
    with pytest.raises(CvBridgeError, match=match):
        call(NumpyBridge())


def test_not_an_array_is_a_type_error():
    with pytest.raises(TypeError):
        NumpyBridge().cv2_to_imgmsg([[1, 2]])
