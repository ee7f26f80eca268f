"""Camera calibration files and camera geometry: store points <-> pixels.

A calibration file (``config/cameras/<store>/<id>.yaml``) is the ROS ``camera_info`` YAML layout
(what ``camera_calibration`` writes and ``camera_info_manager`` reads) plus the camera's pose in
the store frame::

    image_width: 640
    image_height: 480
    camera_name: cam1
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
    projection_matrix: {rows: 3, cols: 4, data: [fx', 0, cx', 0, 0, fy', cy', 0, 0, 0, 1, 0]}
    pose_in_store:
      position: {x: 1.0, y: 4.0, z: 3.0}            # optical centre in the store frame [m]
      orientation: {x: .., y: .., z: .., w: ..}      # the optical frame in the store frame
      # or, instead of orientation, the camera body (REP 103: x forward, y left, z up):
      # rpy_deg: {roll: 0.0, pitch: 40.0, yaw: -20.0}   # [deg]; positive pitch looks down

Frames: the optical frame ``camera_<id>_optical`` has z along the optical axis, x to the right of
the image and y down the image (REP 103 ``_optical``). ``orientation`` is that frame's rotation in
the store frame (``p_store = R @ p_optical + position``). ``rpy_deg`` gives the camera *body*
frame instead (x forward along the optical axis, y left, z up; roll about x, then pitch about y,
then yaw about z, fixed axes as in tf2's ``setRPY``); the optical frame follows by the fixed
body->optical rotation.

Pixels: ``u`` to the right, ``v`` down, the centre of the top-left pixel at (0, 0) (OpenCV and
ROS convention). The plumb_bob model (Brown-Conrady, OpenCV's 5-parameter model) maps
undistorted normalised coordinates to distorted ones; :meth:`CameraModel.project` applies it
exactly, :meth:`CameraModel.undistort_normalized` inverts it iteratively (to < 1e-9 on the
calibrated image). Never imports rclpy.
"""
from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from store_common.errors import FileFieldError

# body (x forward, y left, z up) -> optical (z forward, x right, y down): columns are the optical
# axes written in the body frame
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0],
                           [-1.0, 0.0, 0.0],
                           [0.0, -1.0, 0.0]])


class CalibrationError(FileFieldError):
    """A calibration file is invalid. ``str()`` reads ``file: field.path: what is wrong``."""


# --- rotations --------------------------------------------------------------------------------
def quat_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Rotation matrix of a unit quaternion (x, y, z, w); normalises it first."""
    q = np.array([x, y, z, w], dtype=float)
    n = np.linalg.norm(q)
    if n < 1e-12:
        raise ValueError('zero quaternion')
    x, y, z, w = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def matrix_to_quat(r: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w) of a rotation matrix, w >= 0."""
    r = np.asarray(r, dtype=float)
    t = np.trace(r)
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        w, x = 0.25 * s, (r[2, 1] - r[1, 2]) / s
        y, z = (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        w, x = (r[2, 1] - r[1, 2]) / s, 0.25 * s
        y, z = (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        w, x = (r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s
        y, z = 0.25 * s, (r[1, 2] + r[2, 1]) / s
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        w, x = (r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s
        y, z = (r[1, 2] + r[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q /= np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return tuple(float(v) for v in q)


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) @ Ry(pitch) @ Rx(roll) [rad] (fixed axes x, y, z; tf2 setRPY)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def look_at(position, target) -> np.ndarray:
    """Optical-frame rotation in the store frame for a camera at ``position`` looking at
    ``target`` with the image's top edge up (no roll)."""
    p, t = np.asarray(position, float), np.asarray(target, float)
    z = t - p
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    if np.linalg.norm(x) < 1e-9:
        raise ValueError('look_at: the optical axis is vertical; roll is undefined')
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


# --- the camera model -------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraModel:
    """Intrinsics, plumb_bob distortion and pose of one camera. Arrays are float64."""

    camera_name: str
    width: int
    height: int
    K: np.ndarray              # 3x3 camera matrix [px]
    D: np.ndarray              # (5,) k1, k2, p1, p2, k3
    R: np.ndarray              # 3x3 rectification matrix
    P: np.ndarray              # 3x4 projection matrix [px]
    R_store_cam: np.ndarray    # 3x3 optical frame -> store frame rotation
    t_store_cam: np.ndarray    # (3,) optical centre in the store frame [m]

    # ---- frames ----
    def store_to_camera(self, points) -> np.ndarray:
        """(N,3) store points -> (N,3) optical-frame points [m]."""
        p = np.asarray(points, dtype=float).reshape(-1, 3)
        return (p - self.t_store_cam) @ self.R_store_cam

    def camera_to_store(self, points) -> np.ndarray:
        p = np.asarray(points, dtype=float).reshape(-1, 3)
        return p @ self.R_store_cam.T + self.t_store_cam

    # ---- distortion ----
    def distort_normalized(self, xy) -> np.ndarray:
        """(N,2) undistorted normalised coordinates -> distorted normalised coordinates."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        k1, k2, p1, p2, k3 = self.D
        x, y = xy[:, 0], xy[:, 1]
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], axis=1)

    def undistort_normalized(self, xy_d, iterations: int = 50) -> np.ndarray:
        """(N,2) distorted normalised coordinates -> undistorted ones (fixed-point iteration
        until it stops moving, at most ``iterations``, then two Newton steps; exact to < 1e-9
        inside the calibrated image)."""
        xy_d = np.asarray(xy_d, dtype=float).reshape(-1, 2)
        if not np.any(self.D):
            return xy_d.copy()
        k1, k2, p1, p2, k3 = self.D
        xy = xy_d.copy()
        for _ in range(iterations):
            x, y = xy[:, 0], xy[:, 1]
            r2 = x * x + y * y
            radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
            dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
            dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
            step = np.stack([(xy_d[:, 0] - dx) / radial, (xy_d[:, 1] - dy) / radial], axis=1)
            # converged (typically after 5-15 rounds; the tracker calls this for every box):
            # stop. NaN never compares below, so NaN rows keep iterating as before
            done = np.max(np.abs(step - xy)) < 1e-12 if len(xy) else True
            xy = step
            if done:
                break
        eps = 1e-7
        for _ in range(2):   # Newton polish with a numeric Jacobian
            f = self.distort_normalized(xy) - xy_d
            jx = (self.distort_normalized(xy + [eps, 0]) - self.distort_normalized(xy)) / eps
            jy = (self.distort_normalized(xy + [0, eps]) - self.distort_normalized(xy)) / eps
            det = jx[:, 0] * jy[:, 1] - jy[:, 0] * jx[:, 1]
            det = np.where(np.abs(det) < 1e-12, 1e-12, det)
            xy = xy - np.stack([(jy[:, 1] * f[:, 0] - jy[:, 0] * f[:, 1]) / det,
                                (-jx[:, 1] * f[:, 0] + jx[:, 0] * f[:, 1]) / det], axis=1)
        return xy

    # ---- pixels ----
    def normalized_to_pixels(self, xy_d) -> np.ndarray:
        xy_d = np.asarray(xy_d, dtype=float).reshape(-1, 2)
        k = self.K
        u = k[0, 0] * xy_d[:, 0] + k[0, 1] * xy_d[:, 1] + k[0, 2]
        v = k[1, 1] * xy_d[:, 1] + k[1, 2]
        return np.stack([u, v], axis=1)

    def pixels_to_normalized(self, uv) -> np.ndarray:
        uv = np.asarray(uv, dtype=float).reshape(-1, 2)
        k = self.K
        y = (uv[:, 1] - k[1, 2]) / k[1, 1]
        x = (uv[:, 0] - k[0, 2] - k[0, 1] * y) / k[0, 0]
        return np.stack([x, y], axis=1)

    def project(self, points) -> tuple[np.ndarray, np.ndarray]:
        """(N,3) store points -> ((N,2) pixels with distortion, (N,) depth along the optical
        axis [m]). Points with depth <= 0 are behind the camera: their pixels are NaN."""
        pc = self.store_to_camera(points)
        z = pc[:, 2]
        with np.errstate(divide='ignore', invalid='ignore'):
            xy = pc[:, :2] / z[:, None]
        xy[z <= 0] = np.nan
        return self.normalized_to_pixels(self.distort_normalized(xy)), z

    def in_image(self, uv, margin_px: float = 0.0) -> np.ndarray:
        uv = np.asarray(uv, dtype=float).reshape(-1, 2)
        return ((uv[:, 0] >= -0.5 + margin_px) & (uv[:, 0] <= self.width - 0.5 - margin_px)
                & (uv[:, 1] >= -0.5 + margin_px) & (uv[:, 1] <= self.height - 0.5 - margin_px))

    def pixel_rays(self, uv) -> tuple[np.ndarray, np.ndarray]:
        """(N,2) pixels -> (optical centre (3,), (N,3) unit ray directions) in the store frame."""
        xy = self.undistort_normalized(self.pixels_to_normalized(uv))
        d = np.concatenate([xy, np.ones((len(xy), 1))], axis=1) @ self.R_store_cam.T
        return self.t_store_cam.copy(), d / np.linalg.norm(d, axis=1, keepdims=True)

    def pixels_to_plane_z(self, uv, z_m: float = 0.0) -> np.ndarray:
        """(N,2) pixels -> (N,3) points where their rays meet the horizontal plane z = z_m
        (the floor for 0); NaN where the ray is parallel to it or meets it behind the camera."""
        return rays_to_plane_z(*self.pixel_rays(uv), z_m)

    def ray_grid(self) -> np.ndarray:
        """(H,W,3) store-frame ray directions of every pixel, scaled so that the optical-frame z
        component is 1: ``point = centre + depth * ray`` for ``depth`` along the optical axis."""
        u, v = np.meshgrid(np.arange(self.width, dtype=float),
                           np.arange(self.height, dtype=float))
        xy = self.undistort_normalized(
            self.pixels_to_normalized(np.stack([u.ravel(), v.ravel()], axis=1)))
        d = np.concatenate([xy, np.ones((len(xy), 1))], axis=1) @ self.R_store_cam.T
        return d.reshape(self.height, self.width, 3)

    # ---- camera_info ----
    def camera_info_fields(self) -> dict[str, Any]:
        """The sensor_msgs/CameraInfo fields (without header) as plain Python values."""
        return {'height': self.height, 'width': self.width, 'distortion_model': 'plumb_bob',
                'd': [float(v) for v in self.D], 'k': [float(v) for v in self.K.ravel()],
                'r': [float(v) for v in self.R.ravel()], 'p': [float(v) for v in self.P.ravel()]}

    def to_yaml_dict(self, comment_pose_rpy: bool = False) -> dict[str, Any]:
        """The calibration file document (orientation written as a quaternion)."""
        qx, qy, qz, qw = matrix_to_quat(self.R_store_cam)
        return {
            'image_width': self.width, 'image_height': self.height,
            'camera_name': self.camera_name,
            'camera_matrix': {'rows': 3, 'cols': 3, 'data': _round(self.K.ravel())},
            'distortion_model': 'plumb_bob',
            'distortion_coefficients': {'rows': 1, 'cols': 5, 'data': _round(self.D)},
            'rectification_matrix': {'rows': 3, 'cols': 3, 'data': _round(self.R.ravel())},
            'projection_matrix': {'rows': 3, 'cols': 4, 'data': _round(self.P.ravel())},
            'pose_in_store': {
                'position': dict(zip('xyz', _round(self.t_store_cam))),
                'orientation': dict(zip('xyzw', _round((qx, qy, qz, qw), 9)))},
        }


def _round(values, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in values]


# --- loading ----------------------------------------------------------------------------------
def _matrix(doc: dict, key: str, rows: int, cols: int, file: str) -> np.ndarray:
    node = doc.get(key)
    if not isinstance(node, dict):
        raise CalibrationError(file, key, 'missing required field (a mapping with rows, cols, '
                                          'data)')
    if node.get('rows') != rows or node.get('cols') != cols:
        raise CalibrationError(file, key, f'expected rows: {rows}, cols: {cols}, got rows: '
                                          f'{node.get("rows")!r}, cols: {node.get("cols")!r}')
    data = node.get('data')
    if not isinstance(data, list) or len(data) != rows * cols:
        raise CalibrationError(file, f'{key}.data', f'expected {rows * cols} numbers')
    for i, v in enumerate(data):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise CalibrationError(file, f'{key}.data[{i}]',
                                   f'expected a finite number, got {v!r}')
    return np.array(data, dtype=float).reshape(rows, cols)


def _number(node: dict, key: str, path: str, file: str) -> float:
    if not isinstance(node, dict) or key not in node:
        raise CalibrationError(file, f'{path}.{key}', 'missing required field')
    v = node[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise CalibrationError(file, f'{path}.{key}', f'expected a finite number, got {v!r}')
    return float(v)


def calibration_from_dict(doc: Any, file: str = '') -> CameraModel:
    """Validate a calibration document; raises :class:`CalibrationError`."""
    if not isinstance(doc, dict):
        raise CalibrationError(file, '', 'expected a mapping')
    size = {}
    for key in ('image_width', 'image_height'):
        v = doc.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 16 <= v <= 16384:
            raise CalibrationError(file, key, f'expected an integer 16..16384, got {v!r}')
        size[key] = v
    name = doc.get('camera_name')
    if not isinstance(name, str) or not name:
        raise CalibrationError(file, 'camera_name', f'expected a non-empty string, got {name!r}')
    model = doc.get('distortion_model')
    if model != 'plumb_bob':
        raise CalibrationError(file, 'distortion_model', f'only plumb_bob is supported, got '
                                                         f'{model!r}')
    k = _matrix(doc, 'camera_matrix', 3, 3, file)
    if k[0, 0] <= 0 or k[1, 1] <= 0 or k[1, 0] or k[2, 0] or k[2, 1] or k[2, 2] != 1:
        raise CalibrationError(file, 'camera_matrix', 'expected [fx, s, cx, 0, fy, cy, 0, 0, 1] '
                                                      'with fx, fy > 0')
    d = _matrix(doc, 'distortion_coefficients', 1, 5, file).ravel()
    r = _matrix(doc, 'rectification_matrix', 3, 3, file)
    p = _matrix(doc, 'projection_matrix', 3, 4, file)
    pose = doc.get('pose_in_store')
    if not isinstance(pose, dict):
        raise CalibrationError(file, 'pose_in_store', 'missing required field (position and '
                                                      'orientation or rpy_deg)')
    pos = pose.get('position')
    t = np.array([_number(pos, a, 'pose_in_store.position', file) for a in 'xyz'])
    if ('orientation' in pose) == ('rpy_deg' in pose):
        raise CalibrationError(file, 'pose_in_store', 'give exactly one of orientation '
                                                      '(quaternion) or rpy_deg')
    if 'orientation' in pose:
        o = pose['orientation']
        q = [_number(o, a, 'pose_in_store.orientation', file) for a in 'xyzw']
        if abs(np.linalg.norm(q) - 1.0) > 1e-3:
            raise CalibrationError(file, 'pose_in_store.orientation',
                                   f'not a unit quaternion (norm {np.linalg.norm(q):.6f})')
        rot = quat_to_matrix(*q)
    else:
        o = pose['rpy_deg']
        rpy = [math.radians(_number(o, a, 'pose_in_store.rpy_deg', file))
               for a in ('roll', 'pitch', 'yaw')]
        rot = rpy_to_matrix(*rpy) @ R_BODY_OPTICAL
    return CameraModel(camera_name=name, width=size['image_width'],
                       height=size['image_height'], K=k, D=d, R=r, P=p, R_store_cam=rot,
                       t_store_cam=t)


def load_calibration(path: str | pathlib.Path) -> CameraModel:
    """Load and validate a calibration file; raises :class:`CalibrationError`."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CalibrationError(path, '', 'file not found')
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CalibrationError(path, '', f'invalid YAML: {exc}') from None
    return calibration_from_dict(doc, str(path))


def make_model(camera_name: str, width: int, height: int, fx: float, fy: float, cx: float,
               cy: float, dist, position, rotation) -> CameraModel:
    """A model from plain values (tests, the calibration writer)."""
    k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=float)
    p = np.array([[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0]], dtype=float)
    return CameraModel(camera_name=camera_name, width=int(width), height=int(height), K=k,
                       D=np.asarray(dist, dtype=float).reshape(5), R=np.eye(3), P=p,
                       R_store_cam=np.asarray(rotation, dtype=float),
                       t_store_cam=np.asarray(position, dtype=float))


def rays_to_plane_z(origin, directions, z_m: float = 0.0) -> np.ndarray:
    """(N,3) points where rays from ``origin`` (3,) along ``directions`` (N,3) meet the plane
    z = z_m; NaN where a ray is parallel to it or meets it behind the origin."""
    d = np.asarray(directions, dtype=float).reshape(-1, 3)
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (z_m - origin[2]) / d[:, 2]
    bad = ~np.isfinite(t) | (t <= 0)
    out = origin + t[:, None] * d
    out[bad] = np.nan
    return out
