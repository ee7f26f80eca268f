"""The camera evidence frames between the camera drivers and the review node: one format, its
encoder, its boundary check and its decoder.

A driver publishes a few of its frames a second as ``sensor_msgs/CompressedImage`` on
``cameras/<id>/image_evidence/compressed`` (:data:`EVIDENCE_FORMAT`, :func:`encode_jpeg`); the
review node refuses what :func:`compressed_problem` names, keeps the rest compressed and
decodes a frame (:func:`decode_image`) only when a review request needs it. The review node
also writes its evidence crops with :func:`encode_jpeg`.

Plain Python + OpenCV (imported when first used); no rclpy.
"""
from __future__ import annotations

import numpy as np

# as image_transport's compressed plugin writes it for a bgr8 image
EVIDENCE_FORMAT = 'bgr8; jpeg compressed bgr8'
COMPRESSED_MAGIC = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n')   # JPEG, PNG


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """A BGR image as JPEG bytes; ValueError when OpenCV cannot encode it."""
    import cv2
    ok, buf = cv2.imencode('.jpg', image, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError(f'JPEG encoding of a {getattr(image, "shape", "?")} image failed')
    return buf.tobytes()


def compressed_problem(fmt: str, data: bytes) -> str:
    """Why a sensor_msgs/CompressedImage cannot be evidence ('' when it can): JPEG or PNG
    only, by its format string and by its first bytes."""
    kind = fmt.split(';')[-1].strip().split(' ')[0].lower() if fmt else ''
    if kind not in ('jpeg', 'jpg', 'png'):
        return f'format {fmt!r} is not JPEG or PNG'
    if not data.startswith(COMPRESSED_MAGIC):
        return f'{len(data)} bytes that do not start as a JPEG or PNG file'
    return ''


def decode_image(data: bytes) -> np.ndarray | None:
    """A BGR uint8 array from JPEG or PNG bytes; None when they do not decode."""
    import cv2
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if buf.size == 0:
        return None
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    return img if img is not None and img.ndim == 3 and img.size else None
