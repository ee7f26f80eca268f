"""Write the demo store's camera calibration files (config/cameras/demo/<id>.yaml).

Each camera is placed at a position and aimed at a target point (look-at, no roll); the file
stores the pose as the camera body's roll/pitch/yaw (see store_common/camera.py). Intrinsics are
plausible values for a 640x480 wide-angle (~83 deg horizontal) lens with mild barrel
distortion. Run from the repository root: python tools/make_demo_cameras.py

``--scale 2 --out out/hd/cameras --store-out out/hd/demo_hd.yaml`` writes the same cameras (same
poses, same lenses) with a sensor of twice the pixels per axis (1280x960): intrinsics and size
scaled, distortion kept; and a copy of the demo store description that uses them (everything
else as in config/stores/demo.yaml, derived from it each time, so the two cannot drift).
"""
import argparse
import math
import os
import pathlib
import re

import numpy as np
import yaml

from store_common.camera import look_at, make_model, R_BODY_OPTICAL, rpy_to_matrix

OUT = pathlib.Path('config/cameras/demo')
STORE = pathlib.Path('config/stores/demo.yaml')
W, H = 640, 480
CAMERAS = {   # id: (position [m], target [m], where)
    'cam1': ((1.2, 4.2, 3.0), (5.4, 3.0, 0.5),
             'west wall, looking east along the aisles, exit gate in view'),
    'cam2': ((10.8, 4.2, 3.0), (6.6, 3.0, 0.5),
             'east wall, looking west along the aisles, entrance gate in view'),
    'cam3': ((4.0, 7.6, 3.0), (6.6, 3.6, 0.7),
             'north wall, west of centre, looking south-east across the gondolas'),
    'cam4': ((8.0, 7.6, 3.0), (5.4, 3.6, 0.7),
             'north wall, east of centre, looking south-west across the gondolas'),
}
INTRINSICS = {   # fx, fy, cx, cy [px], plumb_bob k1, k2, p1, p2, k3
    'cam1': (362.0, 361.2, 321.4, 238.1, [-0.081, 0.021, 0.0006, -0.0004, 0.0]),
    'cam2': (358.5, 358.9, 318.2, 241.6, [-0.076, 0.018, -0.0003, 0.0005, 0.0]),
    'cam3': (360.7, 360.1, 320.9, 240.8, [-0.084, 0.024, 0.0002, 0.0003, 0.0]),
    'cam4': (359.3, 359.8, 319.0, 239.3, [-0.079, 0.019, -0.0005, -0.0002, 0.0]),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(OUT), help='directory of the <id>.yaml files')
    ap.add_argument('--scale', type=float, default=1.0,
                    help='pixels per axis relative to 640x480 (2: 1280x960)')
    ap.add_argument('--store-out', default='',
                    help='also write the demo store description using these cameras here')
    ns = ap.parse_args(argv)
    if ns.scale <= 0 or (W * ns.scale) % 1 or (H * ns.scale) % 1:
        ap.error(f'--scale {ns.scale} must make {W}x{H} whole pixels')
    out, k = pathlib.Path(ns.out), ns.scale
    width, height = int(W * k), int(H * k)
    out.mkdir(parents=True, exist_ok=True)
    for cid, (pos, target, where) in CAMERAS.items():
        r_opt = look_at(pos, target)
        body = r_opt @ R_BODY_OPTICAL.T
        angles = (math.atan2(body[2, 1], body[2, 2]), math.asin(-body[2, 0]),
                  math.atan2(body[1, 0], body[0, 0]))
        rpy = [round(math.degrees(a), 4) for a in angles]
        check = rpy_to_matrix(*map(math.radians, rpy)) @ R_BODY_OPTICAL
        assert np.allclose(check, r_opt, atol=1e-4)
        fx, fy, cx, cy, dist = INTRINSICS[cid]
        doc = make_model(cid, width, height, fx * k, fy * k, cx * k, cy * k, dist, pos,
                         r_opt).to_yaml_dict()
        doc['pose_in_store'] = {'position': dict(zip('xyz', pos)),
                                'rpy_deg': dict(zip(('roll', 'pitch', 'yaw'), rpy))}
        text = (f'# Demo store camera {cid}: {where}.\n'
                '# ROS camera_info YAML layout plus pose_in_store (see store_common/camera.py):\n'
                '# the optical centre in the store frame [m] and the camera body orientation\n'
                '# (x forward, y left, z up; positive pitch looks down) [deg].\n'
                f'# Aimed at {target} m in the store frame; written by '
                'tools/make_demo_cameras.py.\n')
        (out / f'{cid}.yaml').write_text(
            text + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
        print(f'{out / cid}.yaml: rpy_deg {rpy}')
    if ns.store_out:
        write_store(pathlib.Path(ns.store_out), out, width, height)


def write_store(dst: pathlib.Path, cameras: pathlib.Path, width: int, height: int) -> None:
    """config/stores/demo.yaml with its cameras' calibration files and sizes replaced (paths
    in the copy are relative to ``dst``, as the store loader reads them)."""
    text = STORE.read_text()
    rel = lambda target: os.path.relpath(target, dst.parent.resolve())   # noqa: E731
    text, n_cat = re.subn(r'catalog: (\S+)',
                          lambda m: f'catalog: {rel((STORE.parent / m[1]).resolve())}', text,
                          count=1)
    text, n_cam = re.subn(
        r'calibration: \.\./cameras/demo/(cam\d+)\.yaml(.*?)width: \d+, height: \d+',
        lambda m: (f'calibration: {rel((cameras / (m[1] + ".yaml")).resolve())}{m[2]}'
                   f'width: {width}, height: {height}'), text, flags=re.S)
    if n_cat != 1 or n_cam != len(CAMERAS):
        raise SystemExit(f'{STORE}: expected a catalog and {len(CAMERAS)} cameras to rewrite, '
                         f'found {n_cat} and {n_cam}')
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(f'# Generated by tools/make_demo_cameras.py from {STORE}: other cameras.\n'
                   + text)
    print(f'{dst}: the demo store with {width}x{height} cameras')


if __name__ == '__main__':
    main()
