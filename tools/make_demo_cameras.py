"""Write the demo store's camera calibration files (config/cameras/demo/<id>.yaml).

Each camera is placed at a position and aimed at a target point (look-at, no roll); the file
stores the pose as the camera body's roll/pitch/yaw (see store_common/camera.py). Intrinsics are
plausible values for a 640x480 wide-angle (~83 deg horizontal) lens with mild barrel
distortion. Run from the repository root: python tools/make_demo_cameras.py
"""
import math
import pathlib

import numpy as np
import yaml

from store_common.camera import look_at, make_model, R_BODY_OPTICAL, rpy_to_matrix

OUT = pathlib.Path('config/cameras/demo')
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


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for cid, (pos, target, where) in CAMERAS.items():
        r_opt = look_at(pos, target)
        body = r_opt @ R_BODY_OPTICAL.T
        angles = (math.atan2(body[2, 1], body[2, 2]), math.asin(-body[2, 0]),
                  math.atan2(body[1, 0], body[0, 0]))
        rpy = [round(math.degrees(a), 4) for a in angles]
        check = rpy_to_matrix(*map(math.radians, rpy)) @ R_BODY_OPTICAL
        assert np.allclose(check, r_opt, atol=1e-4)
        fx, fy, cx, cy, dist = INTRINSICS[cid]
        doc = make_model(cid, W, H, fx, fy, cx, cy, dist, pos, r_opt).to_yaml_dict()
        doc['pose_in_store'] = {'position': dict(zip('xyz', pos)),
                                'rpy_deg': dict(zip(('roll', 'pitch', 'yaw'), rpy))}
        text = (f'# Demo store camera {cid}: {where}.\n'
                '# ROS camera_info YAML layout plus pose_in_store (see store_common/camera.py):\n'
                '# the optical centre in the store frame [m] and the camera body orientation\n'
                '# (x forward, y left, z up; positive pitch looks down) [deg].\n'
                f'# Aimed at {target} m in the store frame; written by '
                'tools/make_demo_cameras.py.\n')
        (OUT / f'{cid}.yaml').write_text(
            text + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
        print(f'{OUT / cid}.yaml: rpy_deg {rpy}')


if __name__ == '__main__':
    main()
