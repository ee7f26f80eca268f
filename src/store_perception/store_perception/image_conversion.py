"""sensor_msgs/Image <-> NumPy with cv_bridge's API and semantics.

``CvBridge`` here is the ROS install's ``cv_bridge.CvBridge`` when that imports and works (it
converts a test image), and otherwise :class:`NumpyBridge`, this module's own implementation of
the same API: ``imgmsg_to_cv2(msg, desired_encoding='passthrough')``,
``cv2_to_imgmsg(array, encoding='passthrough', header=None)``, errors raised as
:class:`CvBridgeError`. (No cv_bridge build works with NumPy 2 on these machines; on a ROS
install with a working one, the real one is used.)

Encodings: bgr8, rgb8, bgra8, rgba8, mono8, mono16, 8UC1, 8UC3, 8UC4, 16UC1, 32FC1. Conversions
between the 8-bit colour/mono encodings follow cv_bridge (``cv2.cvtColor``); mono16 -> mono8 and
16UC1 -> mono8 scale by 1/256 as cv_bridge's ``cvtColor`` does for bit depth changes. The
message's ``step`` may exceed ``width * channels * bytes`` (row padding) and ``is_bigendian``
may differ from this machine: both are handled on the way in; messages written here are
little-endian with no padding (``is_bigendian`` = 0 on x86).
"""
from __future__ import annotations

import sys

import cv2
import numpy as np

# encoding -> (numpy dtype, channels)
ENCODINGS = {
    'bgr8': (np.uint8, 3), 'rgb8': (np.uint8, 3), 'bgra8': (np.uint8, 4), 'rgba8': (np.uint8, 4),
    'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1),
    '8UC1': (np.uint8, 1), '8UC3': (np.uint8, 3), '8UC4': (np.uint8, 4),
    '16UC1': (np.uint16, 1), '32FC1': (np.float32, 1),
}
# colour layout of the 8-bit encodings that cvtColor converts between
_LAYOUT = {'bgr8': 'BGR', 'rgb8': 'RGB', 'bgra8': 'BGRA', 'rgba8': 'RGBA', 'mono8': 'GRAY',
           'mono16': 'GRAY', '8UC1': 'GRAY', '8UC3': 'BGR', '8UC4': 'BGRA', '16UC1': 'GRAY'}


class CvBridgeError(TypeError):
    """What cv_bridge raises for unsupported encodings and inconsistent messages."""


def _conversion_code(src: str, dst: str):
    a, b = _LAYOUT.get(src), _LAYOUT.get(dst)
    if a is None or b is None:
        raise CvBridgeError(f'Unsupported conversion from [{src}] to [{dst}]')
    if a == b:
        return None
    name = f'COLOR_{a}2{b}'
    if not hasattr(cv2, name):
        raise CvBridgeError(f'Unsupported conversion from [{src}] to [{dst}]')
    return getattr(cv2, name)


class NumpyBridge:
    """cv_bridge.CvBridge's image API in NumPy and OpenCV only."""

    def encoding_to_dtype_with_channels(self, encoding: str):
        if encoding not in ENCODINGS:
            raise CvBridgeError(f'Unrecognized image encoding [{encoding}]')
        dtype, ch = ENCODINGS[encoding]
        return np.dtype(dtype), ch

    def imgmsg_to_cv2(self, img_msg, desired_encoding: str = 'passthrough') -> np.ndarray:
        enc = img_msg.encoding
        dtype, ch = self.encoding_to_dtype_with_channels(enc)
        dtype = dtype.newbyteorder('>' if img_msg.is_bigendian else '<')
        h, w = int(img_msg.height), int(img_msg.width)
        row_bytes = w * ch * dtype.itemsize
        step = int(img_msg.step)
        data = bytes(img_msg.data) if not isinstance(img_msg.data, (bytes, bytearray)) \
            else img_msg.data
        if step < row_bytes:
            raise CvBridgeError(f'step {step} is smaller than width * channels * bytes '
                                f'({row_bytes})')
        if len(data) < step * h:
            raise CvBridgeError(f'data has {len(data)} bytes, expected step * height = '
                                f'{step * h}')
        buf = np.frombuffer(data, dtype=np.uint8, count=step * h).reshape(h, step)
        buf = buf[:, :row_bytes]
        arr = np.ascontiguousarray(buf).view(dtype).reshape((h, w, ch) if ch > 1 else (h, w))
        if dtype.byteorder not in ('=', '|') and dtype.byteorder != _native():
            arr = arr.byteswap().view(arr.dtype.newbyteorder())
        arr = arr.astype(arr.dtype.newbyteorder('='), copy=False)
        if desired_encoding == 'passthrough' or desired_encoding == enc:
            return arr.copy() if not arr.flags.writeable else arr
        return self._convert(arr, enc, desired_encoding)

    def _convert(self, arr: np.ndarray, src: str, dst: str) -> np.ndarray:
        self.encoding_to_dtype_with_channels(dst)
        if src == '32FC1' or dst == '32FC1':
            raise CvBridgeError(f'Unsupported conversion from [{src}] to [{dst}]')
        dst_dtype = ENCODINGS[dst][0]
        if arr.dtype == np.uint16 and dst_dtype == np.uint8:
            arr = (arr / 256).astype(np.uint8)        # cv_bridge scales bit depth changes
        elif arr.dtype == np.uint8 and dst_dtype == np.uint16:
            arr = arr.astype(np.uint16) * 256
        code = _conversion_code(src, dst)
        return cv2.cvtColor(arr, code) if code is not None else arr

    def cv2_to_imgmsg(self, cvim: np.ndarray, encoding: str = 'passthrough', header=None):
        from sensor_msgs.msg import Image
        if not isinstance(cvim, np.ndarray):
            raise TypeError('Your input type is not a numpy array')
        if cvim.ndim not in (2, 3):
            raise CvBridgeError(f'expected a 2-D or 3-D array, got {cvim.ndim} dimensions')
        ch = 1 if cvim.ndim == 2 else cvim.shape[2]
        if encoding == 'passthrough':
            encoding = _passthrough_encoding(cvim.dtype, ch)
        dtype, want_ch = self.encoding_to_dtype_with_channels(encoding)
        if cvim.dtype != dtype or ch != want_ch:
            raise CvBridgeError(f'encoding specified as {encoding}, but image has incompatible '
                                f'type {_cv_type(cvim.dtype, ch)}')
        msg = Image()
        if header is not None:
            msg.header = header
        msg.height, msg.width = int(cvim.shape[0]), int(cvim.shape[1])
        msg.encoding = encoding
        msg.is_bigendian = int(sys.byteorder == 'big')
        arr = np.ascontiguousarray(cvim)
        msg.step = int(arr.strides[0])
        msg.data = arr.tobytes()
        return msg


def _native() -> str:
    return '<' if sys.byteorder == 'little' else '>'


def _passthrough_encoding(dtype, ch: int) -> str:
    name = {np.dtype(np.uint8): '8U', np.dtype(np.uint16): '16U',
            np.dtype(np.float32): '32F'}.get(np.dtype(dtype))
    enc = f'{name}C{ch}' if name else None
    if enc not in ENCODINGS:
        raise CvBridgeError(f'Unrecognized image type {_cv_type(dtype, ch)} for passthrough')
    return enc


def _cv_type(dtype, ch: int) -> str:
    name = {np.dtype(np.uint8): '8U', np.dtype(np.int8): '8S', np.dtype(np.uint16): '16U',
            np.dtype(np.int16): '16S', np.dtype(np.int32): '32S', np.dtype(np.float32): '32F',
            np.dtype(np.float64): '64F'}.get(np.dtype(dtype), str(dtype))
    return f'{name}C{ch}'


def _ros_bridge():
    """The ROS install's CvBridge, if it imports and round-trips an image; else None."""
    try:
        from cv_bridge import CvBridge as RosBridge, CvBridgeError as RosError  # noqa: F401
        bridge = RosBridge()
        img = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
        back = bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(img, 'bgr8'), 'rgb8')
        if not np.array_equal(back, img[..., ::-1]):
            return None
        return bridge
    except Exception:   # noqa: BLE001 - a broken build (e.g. NumPy 1 ABI) fails in many ways
        return None


def CvBridge():   # noqa: N802 - named like the class it stands for
    """A cv_bridge-compatible bridge: the ROS one when it works, else :class:`NumpyBridge`."""
    return _ros_bridge() or NumpyBridge()


def backend_name() -> str:
    return 'cv_bridge' if _ros_bridge() is not None else 'numpy'
