"""The evidence-frame format between camera drivers and the review node: the encoder, the
boundary check and the decoder."""
import cv2
import numpy as np

from store_common.evidence_frames import compressed_problem, decode_image, encode_jpeg


def scene():
    """A textured 640x480 frame (noise blurred), as a camera sees a store."""
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur((rng.random((480, 640, 3)) * 255).astype(np.uint8), (9, 9), 3)


def test_evidence_jpeg_is_the_frame_and_small():
    frame = scene()
    data = encode_jpeg(frame, 85)
    assert data[:3] == b'\xff\xd8\xff' and len(data) * 5 < frame.nbytes
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert back.shape == frame.shape and np.abs(back.astype(int) - frame).mean() < 4.0


def test_compressed_evidence_is_checked_at_the_boundary():
    jpeg = cv2.imencode('.jpg', scene())[1].tobytes()
    png = cv2.imencode('.png', scene())[1].tobytes()
    assert compressed_problem('bgr8; jpeg compressed bgr8', jpeg) == ''
    assert compressed_problem('jpeg', jpeg) == ''
    assert compressed_problem('png', png) == ''
    assert 'not JPEG or PNG' in compressed_problem('rgb8; raw', jpeg)
    assert 'not JPEG or PNG' in compressed_problem('', jpeg)
    assert 'do not start as' in compressed_problem('jpeg', b'GIF89a' + bytes(10))
    assert 'do not start as' in compressed_problem('jpeg', b'')
    assert decode_image(b'') is None
    assert decode_image(b'\xff\xd8\xff' + bytes(100)) is None
    assert decode_image(png).shape == scene().shape
