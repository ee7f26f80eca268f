"""Store markers and the top-down renderer."""
import pathlib

import cv2
import numpy as np
import pytest
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker

from store_common.description import load_store
from store_interfaces.msg import CartLine, CartState, ProductHypothesis, ReviewRequest, ShelfEvent
from store_viz.markers import (frame_of_plate, layout_markers, LEGEND, merge, state_markers,
                               tf_frames)
from store_viz.render import MarkerScene, render, render_layout, save_png, world_to_pixel
from store_viz.render_markers_node import title_of

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope='module')
def store():
    return load_store(ROOT / 'config' / 'stores' / 'demo.yaml')


def marker(mtype, x, y, sx, sy, rgb, mid=0, ns='t', text='', z=0.0):
    return Marker(header=Header(frame_id='store'), ns=ns, id=mid, type=mtype, action=Marker.ADD,
                  pose=Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(w=1.0)),
                  scale=Vector3(x=sx, y=sy, z=0.3), text=text,
                  color=ColorRGBA(r=rgb[0], g=rgb[1], b=rgb[2], a=1.0))


def test_renderer_draws_known_markers_where_they_are(tmp_path):
    ms = [marker(Marker.CUBE, 0.0, 0.0, 4.0, 3.0, (1.0, 1.0, 1.0), ns='floor'),
          marker(Marker.CUBE, 1.0, 1.0, 0.5, 0.5, (1.0, 0.0, 0.0), mid=1),
          marker(Marker.CYLINDER, -1.0, -0.5, 0.6, 0.6, (0.0, 0.0, 1.0), mid=2),
          marker(Marker.TEXT_VIEW_FACING, 1.0, -1.0, 0, 0, (0.0, 0.0, 0.0), mid=3, text='HELLO')]
    img = render(ms, px_per_m=100)
    red = world_to_pixel(ms, 1.0, 1.0, px_per_m=100)
    blue = world_to_pixel(ms, -1.0, -0.5, px_per_m=100)
    assert tuple(img[red[1], red[0]]) == (0, 0, 255)         # BGR
    assert tuple(img[blue[1], blue[0]]) == (255, 0, 0)
    # the cube's edge: 0.2 m inside red, 0.35 m away not
    inside = world_to_pixel(ms, 1.2, 1.2, px_per_m=100)
    outside = world_to_pixel(ms, 1.35, 1.0, px_per_m=100)
    assert tuple(img[inside[1], inside[0]]) == (0, 0, 255)
    assert tuple(img[outside[1], outside[0]]) != (0, 0, 255)
    # y up: the red cube (y=1) is above the blue disc (y=-0.5) in the image
    assert red[1] < blue[1]
    tx, ty = world_to_pixel(ms, 1.0, -1.0, px_per_m=100)
    patch = img[ty - 15:ty + 15, tx - 40:tx + 40]
    assert (patch.max(axis=2) < 80).sum() > 30               # dark text pixels
    save_png(tmp_path / 'known.png', img)
    assert cv2.imread(str(tmp_path / 'known.png')).shape == img.shape


def test_scene_applies_delete_and_deleteall():
    scene = MarkerScene()
    a = marker(Marker.CUBE, 0, 0, 1, 1, (1, 0, 0))
    b = marker(Marker.CUBE, 2, 0, 1, 1, (0, 1, 0), mid=1)
    scene.update('s', [a, b])
    assert len(scene.markers()) == 2
    scene.update('s', [Marker(ns='t', id=1, action=Marker.DELETE)])
    assert len(scene.markers()) == 1
    scene.update('l', [b])
    scene.update('s', [Marker(action=Marker.DELETEALL), b])
    assert len(scene.markers()) == 2


def test_layout_has_every_plate_gondola_and_gate_in_the_store_frame(store):
    arr = layout_markers(store)
    assert {m.header.frame_id for m in arr.markers} == {'store'}
    by_ns = {}
    for m in arr.markers:
        by_ns.setdefault(m.ns, []).append(m)
    assert len(by_ns['plates']) == len(store.plates)
    assert len(by_ns['gondolas']) == len(store.gondolas)
    assert len(by_ns['gates']) == len(store.gates)
    assert len({(m.ns, m.id) for m in arr.markers}) == len(arr.markers)
    frames = {f[0]: f[1] for f in tf_frames(store)}
    assert frames[frame_of_plate('g1.s2.p3')] == 'gondola_g1'
    assert frames['gondola_g1'] == 'store' and frames['gate_exit'] == 'store'


def test_state_highlights_reviews_and_renders_legibly(store, tmp_path):
    ev = ShelfEvent(plate_ids=['g1.s1.p1'], delta_grams=-345.0,
                    hypotheses=[ProductHypothesis(sku='COLA-330', quantity=1)])
    cart = CartState(shopper_id='acct-0001', state=1, total_cents=349,
                     lines=[CartLine(sku='COLA-330', quantity=1, status=1)])
    review = ReviewRequest(request_id='review/x', plate_ids=['g2.s1.p2'], delta_grams=-120.0,
                           shopper_ids=['acct-0001', 'acct-0002'])
    st = state_markers(store, weights={'g1.s1.p1': 4000.0, 'g3.s2.p1': float('nan')},
                       carts=[cart], events=[(ev, 9.0), (ev, 0.0)], reviews=[review],
                       now_s=10.0)
    assert st.markers[0].action == Marker.DELETEALL
    ns = [m.ns for m in st.markers]
    assert ns.count('shelf_events') == 1              # the 10 s old event has expired
    assert ns.count('review_requests') == 1
    rev = next(m for m in st.markers if m.ns == 'review_requests')
    assert rev.color.r > 0.9 and rev.color.g < 0.1 and rev.scale.x >= 0.03
    assert rev.type == Marker.LINE_STRIP and len(rev.points) == 5     # a closed frame
    texts = ' '.join(m.text for m in st.markers)
    assert 'acct-0001' in texts and 's2 n/a' in texts and 'REVIEW' in texts
    markers = merge(layout_markers(store), st)
    img = render(markers, legend=LEGEND, title='test')
    x, y = world_to_pixel(markers, *_review_xy(rev))
    b, g, r = (int(v) for v in img[y, x])
    assert r > 200 and g < 80 and b < 80                  # the review frame is red
    ex, ey = world_to_pixel(markers, 10.2, 0.15)          # inside the exit gate zone: orange
    assert int(img[ey, ex][2]) > int(img[ey, ex][0]) + 40
    save_png(tmp_path / 'store.png', img)
    assert img.shape[1] > img.shape[0] > 500
    assert np.count_nonzero(img.max(axis=2) < 60) > 1000  # text and walls


def _review_xy(m):
    """The middle of the frame's first side."""
    a, b = m.points[0], m.points[1]
    return m.pose.position.x + (a.x + b.x) / 2, m.pose.position.y + (a.y + b.y) / 2


def _busy_state(store):
    """Every plate weighed, three carts (long lines), a review, a track, an event."""
    weights = {pid: 3000.0 + 517 * (i % 7) for i, pid in enumerate(sorted(store.plates))}
    carts = [CartState(shopper_id=f'acct-000{i}', state=s, total_cents=t, pending_reviews=pr,
                       lines=[CartLine(sku=sku, quantity=1, status=st) for sku, st in ln])
             for i, (s, t, pr, ln) in enumerate((
                 (2, 297, 0, [('COLA-330', 1), ('GUM-MINT', 1), ('YOGURT', 1)]),
                 (2, 349, 1, [('SANDW-HAM', 1)]),
                 (1, 204, 1, [('APPLE', 1), ('ENERGY-250', 2)])), start=1)]
    events = [(ShelfEvent(plate_ids=[pid], delta_grams=d,
                          hypotheses=[ProductHypothesis(sku=sku, quantity=1)]), 9.0)
              for pid, d, sku in (('g2.s2.p3', -345.0, 'COLA-330'),
                                  ('g1.s3.p1', 182.0, 'APPLE'),
                                  ('g3.s1.p2', -29.0, 'BAR-MUESLI'))]
    reviews = [ReviewRequest(request_id='review/x', plate_ids=['g1.s1.p2'], delta_grams=-354.0,
                             shopper_ids=['acct-0002', 'acct-0003']),
               ReviewRequest(request_id='review/y', plate_ids=['g2.s2.p3'], delta_grams=-345.0,
                             shopper_ids=['acct-0001', 'acct-0003'])]
    return merge(layout_markers(store), state_markers(
        store, weights=weights, carts=carts, events=events, reviews=reviews,
        tracks={'acct-0003': [(2.0, 1.0), (3.0, 2.0)]}, now_s=10.0))


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_no_text_overlaps_another_or_the_walls(store, tmp_path):
    markers = _busy_state(store)
    img, layout = render_layout(markers, legend=LEGEND, title=title_of(True))
    boxes = layout.texts
    assert len(boxes) > 40                       # weights, plate ids, carts, labels
    clashes = [(a.text, b.text) for i, a in enumerate(boxes) for b in boxes[i + 1:]
               if _overlap(a.box, b.box)]
    assert not clashes, clashes
    # no text crosses the walls (a rectangle at the store's size)
    sx, sy = store.size_m
    corners = [world_to_pixel(markers, x, y) for x, y in ((0, 0), (sx, sy))]
    (x0, y1), (x1, y0) = corners
    for t in boxes:
        bx0, by0, bx1, by1 = t.box
        crosses_v = any(bx0 < x < bx1 for x in (x0, x1)) and by1 > y0 and by0 < y1
        crosses_h = any(by0 < y < by1 for y in (y0, y1)) and bx1 > x0 and bx0 < x1
        assert not (crosses_v or crosses_h), f'{t.text!r} crosses a wall'
    # no text lies under a disc (shelf events, track heads) or a review frame: top-down, rviz
    # would hide it there, and the PNG would make it hard to read
    covers = [s for s in layout.shapes
              if s.ns in ('shelf_events', 'review_requests', 'track_heads')]
    assert {s.ns for s in covers} == {'shelf_events', 'review_requests', 'track_heads'}
    hidden = [(t.text, s.ns) for t in boxes for s in covers if _overlap(t.box, s.box)]
    assert not hidden, hidden
    # every text lies inside the picture (nothing cut off by the crop)
    h, w = img.shape[:2]
    assert all(0 <= t.box[0] and t.box[2] <= w and 0 <= t.box[1] and t.box[3] <= h
               for t in boxes)
    save_png(tmp_path / 'busy.png', img)


def test_the_png_is_cropped_and_says_after_the_run(store):
    markers = _busy_state(store)
    img = render(markers, legend=LEGEND, title=title_of(True))
    ink = np.any(img != 255, axis=2)
    # at most a 40 px white border on every side
    rows, cols = np.nonzero(ink)
    assert rows.min() <= 40 and cols.min() <= 40
    assert img.shape[0] - rows.max() <= 40 and img.shape[1] - cols.max() <= 40
    assert title_of(True).startswith('store after the run') and title_of(False) == 'store (live)'
    names = [name for name, _ in LEGEND]
    assert 'fill bar: plate full' in names and 'fill bar: plate empty' in names
    bars = [m for m in markers if m.ns == 'weight_bars']
    assert bars and all(m.color.g >= 0.3 for m in bars)


def _spin_that_fails(shutdown_first: bool):
    import rclpy

    def spin_once(node, timeout_sec=None):
        if shutdown_first:
            rclpy.shutdown()      # a SIGINT's handler, landing while a message is taken
        raise RuntimeError('Unable to convert call argument')
    return spin_once


def test_render_markers_stops_quietly_when_a_stop_fails_a_take(monkeypatch, tmp_path):
    rclpy = pytest.importorskip('rclpy')
    from store_viz import render_markers_node
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    monkeypatch.setattr(rclpy, 'spin_once', _spin_that_fails(shutdown_first=True))
    assert render_markers_node.run_node(['render_markers'], str(tmp_path / 's.png'), 0.0,
                                        0.0) == 0


def test_render_markers_still_fails_on_a_take_error_while_running(monkeypatch, tmp_path):
    rclpy = pytest.importorskip('rclpy')
    from store_viz import render_markers_node
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    monkeypatch.setattr(rclpy, 'spin_once', _spin_that_fails(shutdown_first=False))
    with pytest.raises(RuntimeError, match='Unable to convert'):
        render_markers_node.run_node(['render_markers'], str(tmp_path / 's.png'), 0.0, 0.0)
