"""The shopper tracker (store_fusion.tracker) on real footage: one camera, vtest.avi, real backend.

    track_real_footage [--backend people|pose]
        [--labels tests/data/real/vtest_labels.json] [--person-height-m 1.7] [--hfov-deg 60]

Detections: the detector backend ``--backend`` (default ``people``: CenterNet + BlazePose,
``store_perception.people_backend``; ``pose``: BlazePose on tiles) on the clip as a camera
stream, as the detector node runs it.

Ground-plane calibration (no calibration target is in the clip, so it is inferred and
documented here): a pinhole camera without distortion, no roll, horizontal field of view
``--hfov-deg`` (60: a common CCTV lens; f = 665 px at 768 px), principal point at the image
centre. Its height and pitch come from the labelled people: for a person of height H standing
with feet at image row v, a camera at height Hc sees an image height h ~ (H / Hc) (v - v0), v0
the horizon row; a least-squares line through (v, h) of the fully visible labelled people, with
H = ``--person-height-m``, gives Hc and v0, and the pitch is atan((cy - v0) / f). The floor is
the store frame's z = 0, x along the optical axis's ground track, origin where the camera's
view of the floor starts; the "store" is the floor region the image sees (rows below 100 px).
With one camera and no gates every place is an entrance (the tracker starts tracks only in
the entrance zone or where two cameras agree), and nobody is bound to an account.

Identity check against the labels: two people are labelled by identity on the labelled frames
(IDENTITIES below, by box index in the labels file: the man in the red and navy jacket, R, and
the fair-haired woman in the black coat, B, who walk side by side through most of the clip and
apart later, the hardest case for identities). At each labelled frame each is matched to the
live track whose floor position is nearest their labelled feet (within 1.5 m + 3 x the track's
std); an identity switch is a change of that track between two labelled frames where they are
both matched and no labelled frame between them lacks the person (leaving the view and coming
back is a new track, not counted as a switch); a miss is a labelled frame without a track on
them; "sharing" counts labelled frames where both are on one track (side by side, the tracker
keeps one track: it starts no track within 0.9 m of a live one unless the shirts differ
clearly). Also printed: tracks confirmed over the clip (the clip shows about 25 different
people).
"""
from __future__ import annotations

import argparse
import math
import sys
from types import SimpleNamespace

import numpy as np

from store_bench.paths import root_or_exit

# person -> {labelled frame: index of their box in that frame's labels}
IDENTITIES = {
    'R': {32: 3, 54: 2, 76: 3, 98: 3, 120: 3, 142: 4, 164: 6, 186: 5, 209: 3, 231: 5, 253: 5,
          275: 5, 297: 4, 319: 4, 341: 4, 363: 4, 518: 5, 540: 4, 562: 5, 584: 4, 607: 3,
          629: 4, 651: 4, 673: 4, 717: 3, 739: 2, 761: 1, 784: 3},
    'B': {32: 4, 54: 3, 76: 4, 98: 4, 120: 4, 142: 5, 164: 7, 186: 6, 209: 4, 231: 6, 253: 6,
          275: 6, 297: 5, 319: 5, 341: 5, 363: 5, 518: 6, 540: 5, 562: 4, 584: 5, 607: 6,
          629: 5, 651: 5, 673: 6, 695: 7, 717: 0, 739: 1},
}


def calibrate(labels, width: int, height: int, person_h_m: float, hfov_deg: float):
    """(camera model, camera height [m], pitch [deg], horizon row [px]) from the labels."""
    from store_common.camera import look_at, make_model
    v, h = [], []
    for f in labels:
        for p in f.people:
            b = p['box']
            if p.get('occluded') or p.get('cut_by_border') or b[3] - b[1] < 40:
                continue
            v.append(b[3])
            h.append(b[3] - b[1])
    slope, icpt = np.polyfit(np.array(v, float), np.array(h, float), 1)
    v0 = -icpt / slope                       # h = slope (v - v0)
    cam_h = person_h_m / slope
    fx = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    cx, cy = width / 2, height / 2
    pitch = math.atan((cy - v0) / fx)
    # camera at (0, 0, cam_h) looking along +x, pitched down; shift so the floor it sees is
    # inside x >= 0 and y >= 0
    tmp = make_model('vtest', width, height, fx, fx, cx, cy, [0] * 5, [0, 0, cam_h],
                     look_at([0, 0, cam_h], [cam_h / math.tan(pitch), 0, 0]))
    corners = tmp.pixels_to_plane_z([[0, height - 1], [width - 1, height - 1], [0, 100],
                                     [width - 1, 100]], 0.0)
    x_min, y_min = corners[:, 0].min(), corners[:, 1].min()
    pos = np.array([-x_min, -y_min, cam_h])
    model = make_model('vtest', width, height, fx, fx, cx, cy, [0] * 5, pos,
                       look_at(pos, pos + [cam_h / math.tan(pitch), 0, -cam_h]))
    size = (float(corners[:, 0].max() - x_min), float(corners[:, 1].max() - y_min))
    return model, cam_h, math.degrees(pitch), v0, size


def main(argv=None) -> int:
    root = root_or_exit()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--labels', default=str(root / 'tests' / 'data' / 'real' /
                                            'vtest_labels.json'))
    ap.add_argument('--video', default=None)
    ap.add_argument('--person-height-m', type=float, default=1.7)
    ap.add_argument('--hfov-deg', type=float, default=60.0)
    ap.add_argument('--fps', type=float, default=10.0, help='the clip\'s frame rate')
    ap.add_argument('--backend', choices=('people', 'pose'), default='people')
    a = ap.parse_args(argv)
    from store_fusion.geometry import Detection2D, torso_color
    from store_fusion.tracker import CONFIRMED, COASTING, ShopperTracker
    from store_bench.real_eval import load_labels

    from store_bench.label_frames import read_frames
    header, labels = load_labels(a.labels)
    video = a.video or header['video_path']
    w, h = int(header['image_width']), int(header['image_height'])
    model, cam_h, pitch_deg, v0, size = calibrate(labels, w, h, a.person_height_m, a.hfov_deg)
    print(f'calibration: camera {cam_h:.2f} m above the floor, pitched {pitch_deg:.1f} deg '
          f'down, horizon row {v0:.0f}, f {model.K[0, 0]:.0f} px (hfov {a.hfov_deg:.0f} deg); '
          f'floor seen {size[0]:.1f} x {size[1]:.1f} m')
    zone = SimpleNamespace(x_min=0.0, x_max=size[0], y_min=0.0, y_max=size[1])
    store = SimpleNamespace(cameras=[SimpleNamespace(id='vtest', model=model)], gondolas=[],
                            plates={}, size_m=size,
                            gates=[SimpleNamespace(kind='entrance', zone=zone)])
    tracker = ShopperTracker(store)
    if a.backend == 'people':
        from store_perception.people_backend import PeopleDetector
        det = PeopleDetector()
    else:
        from store_perception.pose_backend import PoseDetector
        det = PoseDetector()
    print(f'detector backend: {a.backend} ({det.model_path})')
    by_index = {f.index: f for f in labels}
    seen: dict[str, dict[int, str]] = {k: {} for k in IDENTITIES}
    born = set()
    n_frames = 0
    for i, frame in read_frames(video):
        n_frames = i + 1
        now_ns = int(i * 1e9 / a.fps)
        dets, _ms = det.detect(frame, stream='vtest')
        d2 = []
        for d in dets:
            cx, cy = d.center
            bw, bh = d.size
            color = torso_color(frame, cx, cy, bw, bh) if d.class_name == 'shopper' else None
            d2.append(Detection2D(d.class_name, d.score, cx, cy, bw, bh, color=color))
        tracks = tracker.step(now_ns, {'vtest': d2})
        born.update(t.track_id for t in tracks if t.state in (CONFIRMED, COASTING))
        if i in by_index:
            for who, boxes in IDENTITIES.items():
                if i not in boxes:
                    continue
                b = by_index[i].people[boxes[i]]['box']
                foot = model.pixels_to_plane_z([[(b[0] + b[2]) / 2, b[3]]], 0.0)[0][:2]
                best, best_d = '', math.inf
                for t in tracks:
                    if t.state not in (CONFIRMED, COASTING):
                        continue
                    dd = float(np.linalg.norm(t.x[:2] - foot))
                    if dd < best_d and dd <= 1.5 + 3 * t.std_m:
                        best, best_d = t.track_id, dd
                seen[who][i] = best
    print(f'{n_frames} frames; confirmed tracks over the clip: {len(born)}')
    print('| person | labelled frames | matched to a track | identity switches (in view) | '
          'tracks on them | frames sharing a track with the other |')
    print('|---|---|---|---|---|---|')
    order = sorted(by_index)
    for who, per in seen.items():
        other = next(o for o in seen if o != who)
        ks = sorted(per)
        got = [k for k in ks if per[k]]
        # a switch: the track changes between two labelled frames with no labelled frame between
        # them where the person is absent (out of view and back is a new track, not a switch)
        switches = sum(1 for x, y in zip(got, got[1:])
                       if per[x] != per[y] and order.index(y) - order.index(x) == 1)
        shared = sum(1 for k in got if seen[other].get(k) == per[k])
        print(f'| {who} | {len(ks)} | {len(got)} | {switches} | {len({per[k] for k in got})} | '
              f'{shared} |')
        print('  ' + ' '.join(f'{k}:{per[k] or "-"}' for k in ks))
    return 0


if __name__ == '__main__':
    sys.exit(main())
