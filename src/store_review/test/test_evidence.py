"""Weight traces from the ring buffer, camera views, face blurring, image conversion."""
import cv2
import numpy as np

from store_review.evidence import (anonymize, cameras_from_description, FrameBuffer,
                                   image_from_msg_fields, ImageCollector, start_ns_of,
                                   TraceBuffer, TraceCollector, trace_svg)

S = 1_000_000_000


def test_trace_waits_for_the_window_then_cuts_it():
    buf = TraceBuffer(keep_s=30)
    col = TraceCollector(buf, pad_s=2.0, give_up_s=10.0)
    for k in range(0, 200):                      # 0..4.975 s at 40 Hz
        buf.add('p1', k * S // 40, 1000.0 - (352.0 if k > 120 else 0.0))
    col.request('review/p1@2000000000', 'p1@2000000000', ['p1'], settled_ns=3 * S)
    assert col.ready() == []                     # needs samples up to 5 s
    buf.add('p1', 5 * S, 648.0)
    [tr] = col.ready()
    assert tr.t0_ns == 0 and tr.t1_ns == 5 * S
    assert tr.stamps_ns[0] == 0 and tr.stamps_ns[-1] == 5 * S
    p = tr.payload()
    assert p['grams'][0] == 1000.0 and p['grams'][-1] == 648.0 and p['t_ms'][-1] == 5000
    assert col.jobs == {}
    svg = trace_svg([{'name': 'p1', 'payload': p}], marks_ns=[(2 * S, 'hand in')])
    assert svg.startswith('<svg') and 'polyline' in svg and 'hand in' in svg


def test_ring_buffer_forgets_and_give_up_saves_what_there_is():
    buf = TraceBuffer(keep_s=1)
    for k in range(100):
        buf.add('p1', k * S // 10, float(k))
    t, _ = buf.cut('p1', 0, 100 * S)
    assert t[0] >= 8 * S
    col = TraceCollector(buf, pad_s=2, give_up_s=5)
    col.request('r', 'p9@1', ['p9'], settled_ns=20 * S)
    assert col.expire() == []
    buf.add('p1', 30 * S, 1.0)
    [tr] = col.expire()
    assert tr.plate_id == 'p9' and tr.grams == []
    assert start_ns_of('g1.s1.p1@123', 5) == 123 and start_ns_of('x', 5) == 5


def gray_var(region):
    return cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_BGR2GRAY).astype(float).var()


def face_scene():
    """A shopper in front of a shelf: a drawn face with eyes and mouth, and a product."""
    img = np.full((240, 320, 3), 200, np.uint8)
    rng = np.random.default_rng(1)
    img[:] = rng.integers(120, 220, img.shape, dtype=np.uint8)
    cv2.rectangle(img, (100, 20), (220, 235), (60, 60, 160), -1)        # body
    cv2.ellipse(img, (160, 45), (22, 26), 0, 0, 360, (170, 190, 230), -1)  # face
    cv2.circle(img, (151, 38), 4, (20, 20, 20), -1)
    cv2.circle(img, (169, 38), 4, (20, 20, 20), -1)
    cv2.line(img, (150, 58), (170, 58), (30, 30, 120), 2)
    cv2.rectangle(img, (40, 170), (80, 230), (0, 0, 255), -1)            # product on plate
    return img


def test_face_in_shopper_box_is_blurred_and_product_is_kept():
    img = face_scene()
    face = (slice(19, 71), slice(138, 182))
    before = gray_var(img[face])
    out, meta = anonymize(img, shopper_boxes=[(100, 15, 120, 220)], detect_faces=False)
    after = gray_var(out[face])
    assert after < 0.25 * before, (before, after)
    assert meta['shopper_boxes'] == 1 and not meta['fallback_above_shelf']
    np.testing.assert_array_equal(out[170:230, 40:80], img[170:230, 40:80])   # product
    np.testing.assert_array_equal(out[200:, 100:220], img[200:, 100:220])     # lower body


def test_without_detections_everything_above_the_shelf_is_blurred_but_the_plate():
    img = face_scene()
    plate = (30, 60, 60, 40)
    out, meta = anonymize(img, plate_box=plate, shelf_top_y=120, detect_faces=False)
    assert meta['fallback_above_shelf']
    face = (slice(19, 71), slice(138, 182))
    assert gray_var(out[face]) < 0.25 * gray_var(img[face])
    np.testing.assert_array_equal(out[60:100, 30:90], img[60:100, 30:90])
    np.testing.assert_array_equal(out[120:], img[120:])


def test_haar_detector_runs_on_frames():
    out, meta = anonymize(face_scene())
    assert out.shape == (240, 320, 3) and meta['faces'] >= 0


def test_cameras_and_collector_write_blurred_jpegs(tmp_path):
    cams = cameras_from_description({'cameras': [
        {'id': 'cam1', 'plates': {'g1.s1.p1': [40, 170, 40, 60]}, 'shelf_top_y': 120},
        {'id': 'cam2', 'plates': ['g2.s1.p1']}, {'bad': 1},
        {'id': 'cam3', 'calibration': 'cam3.yaml'}]})
    assert [c.camera_id for c in cams] == ['cam1', 'cam2', 'cam3']
    assert cams[2].sees(['g9.s9.p9']) and not cams[0].sees_all
    cams = cams[:2]
    assert cams[0].sees(['g1.s1.p1']) and not cams[1].sees(['g1.s1.p1'])
    frames = FrameBuffer(keep_s=10, max_fps=4)
    col = ImageCollector(frames, cams, tmp_path, pad_s=1.0)
    col.request('review/g1.s1.p1@1000000000', 'g1.s1.p1@1000000000', ['g1.s1.p1'], 2 * S)
    col.request('review/g3.s1.p1@1', 'g3.s1.p1@1', ['g3.s1.p1'], 2 * S)   # no camera
    assert list(col.jobs) == ['review/g1.s1.p1@1000000000']
    for k in range(0, 17):
        assert frames.add('cam1', k * S // 4, face_scene()) is True
    assert frames.add('cam1', 4 * S + 1, face_scene()) is False          # decimated
    out = col.ready()
    assert 1 <= len(out) <= 4
    rid, name, stamp, path, meta = out[0]
    img = cv2.imread(path)
    assert img is not None and meta['plate_box_in_crop'] is not None
    assert col.jobs == {}


def test_image_message_fields_to_bgr():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 255
    bgr = image_from_msg_fields('rgb8', 2, 3, 9, rgb.tobytes())
    assert bgr[0, 0].tolist() == [0, 0, 255]
    assert image_from_msg_fields('mono8', 2, 3, 3, bytes(6)).shape == (2, 3, 3)
    assert image_from_msg_fields('yuv422', 2, 3, 6, bytes(12)) is None
    assert image_from_msg_fields('bgr8', 2, 3, 9, bytes(5)) is None


def test_a_tracked_shoppers_head_below_the_shelf_line_is_blurred_too():
    # the camera looks down steeply: the head is below the highest shelf row, where the
    # fallback does not blur; the tracker's box of the shopper covers it
    img = face_scene()
    face = (slice(19, 71), slice(138, 182))
    out, meta = anonymize(img, shelf_top_y=10, detect_faces=False)
    assert gray_var(out[face]) > 0.5 * gray_var(img[face])         # not blurred by the line
    out, meta = anonymize(img, shelf_top_y=10, detect_faces=False,
                          track_boxes=[(110, 15, 100, 150)])
    assert gray_var(out[face]) < 0.25 * gray_var(img[face])
    assert meta['fallback_above_shelf']                            # the line still applies
    np.testing.assert_array_equal(out[170:230, 40:80], img[170:230, 40:80])   # product


def test_jpeg_frames_are_kept_compressed_and_decoded_for_a_request():
    scene = face_scene()
    jpeg = cv2.imencode('.jpg', scene, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    frames = FrameBuffer(keep_s=10, max_fps=8)
    assert frames.add('cam1', 1 * S, jpeg)
    assert frames.add('cam1', 1 * S + S // 4, jpeg[:200] + bytes(len(jpeg) - 200))  # corrupt
    assert frames.add('cam1', 1 * S + S // 2, jpeg)
    assert isinstance(frames.frames['cam1'][0][1], bytes)  # not decoded on arrival
    got = frames.around('cam1', 0, 2 * S)
    assert [t for t, _ in got] == [1 * S, 1 * S + S // 2]  # the corrupt one left out
    assert frames.undecodable == 1
    assert got[0][1].shape == scene.shape
    assert np.array_equal(got[0][1], cv2.imdecode(np.frombuffer(jpeg, np.uint8), 1))
