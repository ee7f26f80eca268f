"""The fusion node's logic without ROS: shelf events held until the track stream has passed
them (or a timeout), fused once each, and the messages in and out."""
import math
import pathlib

import pytest

from store_common.description import load_store
from store_fusion.event_buffer import EventBuffer, EventFuser
from store_fusion.fusion import FusionParams, Snapshot
from store_fusion.geometry import (HAND_ONE_VIEW_AT_PLATE, HAND_ONE_VIEW_AT_REST,
                                   HAND_TRIANGULATED, StoreGeometry)
from store_shelf.event import HypothesisData, ShelfEventData

ROOT = pathlib.Path(__file__).resolve().parents[3]
NS = 1_000_000_000
PLATE = 'g1.s2.p2'


@pytest.fixture(scope='module')
def geom():
    return StoreGeometry(load_store(ROOT / 'config' / 'stores' / 'demo.yaml'))


def ns(s):
    return int(round(s * NS))


# --- the hold ---------------------------------------------------------------------------------
def test_event_waits_until_the_watermark_passes_settled_plus_after():
    buf = EventBuffer(after_s=2.0, max_hold_s=5.0)
    assert buf.add('e1', ns(11.0), 'payload-1', now_ns=ns(11.1))
    buf.advance_watermark(ns(12.9))
    assert buf.release(ns(11.5)) == [] and len(buf) == 1
    buf.advance_watermark(ns(12.5))          # an older stamp never moves the watermark back
    assert buf.watermark_ns == ns(12.9)
    buf.advance_watermark(ns(13.0))          # settled + 2.0 s: the evidence after it is in
    (r,) = buf.release(ns(11.6))
    assert (r.event_id, r.payload, r.timed_out) == ('e1', 'payload-1', False)
    assert r.waited_s == pytest.approx(0.5) and r.watermark_ns == ns(13.0)
    assert len(buf) == 0 and buf.release(ns(20.0)) == []


def test_without_tracks_the_event_goes_out_after_max_hold():
    buf = EventBuffer(after_s=2.0, max_hold_s=5.0)
    buf.add('e1', ns(11.0), 'p', now_ns=ns(100.0))     # caller's clock, not sensor time
    assert buf.release(ns(104.9)) == []
    (r,) = buf.release(ns(105.0))
    assert r.timed_out and r.watermark_ns is None and r.waited_s == pytest.approx(5.0)
    assert (buf.stats.released, buf.stats.timed_out) == (1, 1)


def test_released_in_settled_order_a_timeout_takes_the_earlier_events_along():
    buf = EventBuffer(after_s=1.0, max_hold_s=3.0)
    buf.add('late-arrival', ns(10.0), 'a', now_ns=ns(14.0))
    buf.add('b', ns(12.0), 'b', now_ns=ns(12.5))
    buf.add('c', ns(11.0), 'c', now_ns=ns(13.9))
    # 'b' times out at 15.5; 'late-arrival' and 'c' settled before it: out with it, in order
    assert [r.event_id for r in buf.release(ns(15.5))] == ['late-arrival', 'c', 'b']


def test_duplicate_ids_are_held_and_released_once():
    buf = EventBuffer(after_s=1.0, max_hold_s=3.0)
    assert buf.add('e1', ns(5.0), 'first', now_ns=ns(5.0))
    assert not buf.add('e1', ns(5.0), 'again', now_ns=ns(5.1))
    buf.advance_watermark(ns(6.0))
    assert [r.payload for r in buf.release(ns(5.2))] == ['first']
    assert not buf.add('e1', ns(5.0), 'after release', now_ns=ns(9.0))
    assert buf.release(ns(20.0)) == [] and buf.stats.duplicates == 2


# --- fusion of held events --------------------------------------------------------------------
def _event(event_id='g1.s2.p2@10000000000', start_s=10.0, settled_s=11.0, plates=(PLATE,)):
    hyps = (HypothesisData('SPARK-500', 1, 1, 0.97, -520.0, True),
            HypothesisData('', 0, 0, 0.03, 0.0, False))
    return ShelfEventData(event_id, 'g1', plates, -520.0, ns(start_s), ns(settled_s), hyps)


def _two_at_the_shelf(geom, reacher, other):
    """Both shoppers bound, both standing at the gondola in front of PLATE from 9 to 14 s;
    ``reacher``'s hand at the plate from 10 to 11 s, ``other``'s hands hang at the side."""
    tx, ty, _ = geom.plate_targets[PLATE]
    frames = []
    for k in range(51):
        t = 9.0 + 0.1 * k
        reach = (float(tx), float(ty), float(geom.plate_targets[PLATE][2]))
        rest = (float(tx), float(ty) - 0.45, 0.8)
        snaps = [
            Snapshot(ns(t), 't1', reacher, (float(tx), float(ty) - 0.6),
                     [(reach if 10.0 <= t <= 11.0 else rest, 0.05)], [], True),
            Snapshot(ns(t), 't2', other, (float(tx) + 0.5, float(ty) - 0.6),
                     [((float(tx) + 0.5, float(ty) - 0.45, 0.8), 0.05)], [], True),
        ]
        frames.append((ns(t), snaps))
    return frames


def test_two_bound_shoppers_at_one_shelf_the_hand_at_the_plate_decides(geom):
    fuser = EventFuser(geom, 27, FusionParams(), max_hold_s=5.0)
    frames = _two_at_the_shelf(geom, reacher='acct-b', other='acct-a')
    # tracks up to the event, then the shelf event, then the rest of the tracks
    for stamp, snaps in frames[:25]:
        assert fuser.on_tracks(stamp, snaps)
    assert fuser.on_shelf_event(_event(), 'msg', now_ns=ns(11.5))
    out = []
    for stamp, snaps in frames[25:]:
        fuser.on_tracks(stamp, snaps)
        got = fuser.poll(now_ns=stamp + ns(0.3))
        if got:
            out.append((stamp, got))
    # released at the first track message at settled + max(post_s, vision_window_s)
    ((stamp, (fused,)),) = out
    assert stamp == ns(13.0) and not fused.released.timed_out
    assert fused.released.payload == 'msg'
    top, second = fused.result.shoppers[:2]
    assert top.shopper_id == 'acct-b' and top.probability > 0.9
    assert second.shopper_id == 'acct-a' and second.probability < 0.05
    assert top.hand_distance_m < 0.05
    assert fused.result.hint['acct-b'] > 0.9
    # the hypotheses pass through unchanged (no product boxes in the tracks)
    assert fused.result.hypotheses[0].sku == 'SPARK-500'


def test_cameras_down_the_event_goes_out_without_shoppers(geom):
    fuser = EventFuser(geom, 27, FusionParams(), max_hold_s=4.0)
    fuser.on_shelf_event(_event(), 'msg', now_ns=ns(50.0))
    assert fuser.poll(ns(53.9)) == []
    (fused,) = fuser.poll(ns(54.0))
    assert fused.released.timed_out and fused.result.shoppers == []
    assert fused.result.hint == {}
    # redelivered after release: not fused again
    assert not fuser.on_shelf_event(_event(), 'msg', now_ns=ns(55.0))
    assert fuser.poll(ns(100.0)) == []


def test_stale_track_messages_are_ignored_and_unknown_plates_fuse_without_vision(geom):
    fuser = EventFuser(geom, 27, FusionParams(), max_hold_s=4.0)
    frames = _two_at_the_shelf(geom, reacher='acct-b', other='acct-a')
    assert fuser.on_tracks(*frames[10])
    assert not fuser.on_tracks(*frames[10]) and not fuser.on_tracks(*frames[5])
    assert fuser.track_messages == 1
    fuser.on_shelf_event(_event('x@1', plates=('nowhere',)), 'msg', now_ns=ns(10.0))
    (fused,) = fuser.poll(ns(14.0))
    assert fused.result.shoppers == [] and fused.result.detail == 'no known plate'


# --- messages ---------------------------------------------------------------------------------
def test_tracks_in_and_fused_event_out_through_messages(geom):
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import Point
    from store_cart.convert import fused_event_from_msg
    from store_shelf.convert import shelf_event_from_msg
    from store_interfaces.msg import ProductHypothesis, ShelfEvent, ShopperTrack, ShopperTracks
    from store_fusion.convert import fused_event_msg, snapshots_from_tracks

    def t(s):
        return Time(sec=int(s), nanosec=int(round((s - int(s)) * NS)))

    msg = ShopperTracks()
    msg.header.stamp = t(10.5)
    msg.tracks = [ShopperTrack(track_id='t1', shopper_id='acct-b', position=Point(x=1.0, y=2.0),
                               hands=[Point(x=1.0, y=2.3, z=1.1), Point(x=0.8, y=2.0, z=0.8)],
                               hand_std_m=[0.04],
                               hand_source=[ShopperTrack.HAND_ONE_VIEW_AT_PLATE],
                               last_seen=t(10.5)),
                  ShopperTrack(track_id='t2', shopper_id='', last_seen=t(10.1))]
    stamp, (s1, s2) = snapshots_from_tracks(msg)
    assert stamp == ns(10.5) and s1.stamp_ns == stamp
    assert (HAND_TRIANGULATED, HAND_ONE_VIEW_AT_PLATE, HAND_ONE_VIEW_AT_REST) == (
        ShopperTrack.HAND_TRIANGULATED, ShopperTrack.HAND_ONE_VIEW_AT_PLATE,
        ShopperTrack.HAND_ONE_VIEW_AT_REST)
    # std and source missing for the second hand: the documented defaults
    assert s1.hands == [((1.0, 2.3, 1.1), 0.04, HAND_ONE_VIEW_AT_PLATE),
                        ((0.8, 2.0, 0.8), 0.1, HAND_TRIANGULATED)]
    assert (s1.xy, s1.seen, s2.seen, s2.shopper_id) == ((1.0, 2.0), True, False, '')

    shelf = ShelfEvent(event_id='g1.s2.p2@10000000000', gondola_id='g1', plate_ids=[PLATE],
                       plate_delta_grams=[-520.0], delta_grams=-520.0, start_stamp=t(10.0),
                       settled_stamp=t(11.0),
                       hypotheses=[ProductHypothesis(sku='SPARK-500', action=1, quantity=1,
                                                     expected_grams=-520.0, posterior=1.0)])
    shelf.header.stamp = t(11.0)
    fuser = EventFuser(geom, 27, FusionParams(), max_hold_s=5.0)
    for stamp, snaps in _two_at_the_shelf(geom, reacher='acct-b', other='acct-a'):
        fuser.on_tracks(stamp, snaps)
    fuser.on_shelf_event(shelf_event_from_msg(shelf), shelf, now_ns=ns(11.2))
    (fused,) = fuser.poll(ns(11.3))
    out = fused_event_msg(fused.released.payload, fused.result, 'store')
    assert out.header.stamp == t(11.0) and out.header.frame_id == 'store'
    assert out.event.event_id == shelf.event_id
    assert [c.shopper_id for c in out.shoppers] == ['acct-b', 'acct-a', '']
    assert sum(c.probability for c in out.shoppers) == pytest.approx(1.0)
    assert math.isnan(out.shoppers[-1].hand_distance_m)
    assert out.hypotheses[0].sku == 'SPARK-500' and out.detail.startswith('acct-b')
    # the confidence before calibration travels beside it (review_learn refits on it)
    assert out.raw_confidence == pytest.approx(
        out.shoppers[0].probability * out.hypotheses[0].posterior)
    # what the cart makes of it: the fused event and a hint without the nobody candidate
    ev, hint = fused_event_from_msg(out)
    assert ev.event_id == shelf.event_id and ev.settled_ns == ns(11.0)
    assert set(hint) == {'acct-b', 'acct-a'} and hint['acct-b'] > 0.9
    # no vision evidence: an empty list, and the cart gets no hint
    fuser.on_shelf_event(_event('y@1', plates=('nowhere',)), shelf, now_ns=ns(11.2))
    (none,) = fuser.poll(ns(20.0))
    empty = fused_event_msg(shelf, none.result, 'store')
    assert list(empty.shoppers) == [] and fused_event_from_msg(empty)[1] is None


# --- held products over the topics -----------------------------------------------------------
CAN_PLATE = 'g1.s1.p1'          # COLA-330's home plate; LEMON-330 (355 g vs 352 g) next to it


def _stamp(s):
    from builtin_interfaces.msg import Time
    return Time(sec=int(s), nanosec=int(round((s - int(s)) * NS)))


def test_track_products_reach_the_snapshot_as_offline_builds_them():
    import numpy as np
    from store_interfaces.msg import ShopperTrack, ShopperTracks
    from store_fusion.convert import snapshots_from_tracks, track_msg
    from store_fusion.tracker import CONFIRMED, Track

    # one item seen by two cameras (two entries) plus a weaker box of another SKU
    products = [('LEMON-330', 0.82, 'cam1'), ('LEMON-330', 0.77, 'cam2'),
                ('COLA-330', 0.41, 'cam2')]
    t = Track('t3', np.array([1.0, 2.0, 0.3, -0.1]), np.diag([0.01, 0.0025, 1.0, 1.0]),
              born_ns=ns(1.0), last_ns=ns(10.5), last_seen_ns=ns(10.5), shopper_id='acct-a',
              state=CONFIRMED, hands=[(np.array([1.0, 2.3, 1.1]), 0.04, HAND_TRIANGULATED)],
              products=products)
    m = track_msg(t, ns(10.5))
    assert list(m.product_skus) == ['LEMON-330', 'LEMON-330', 'COLA-330']
    assert list(m.product_scores) == pytest.approx([0.82, 0.77, 0.41], abs=1e-6)   # float32
    assert (m.track_id, m.shopper_id, m.state) == ('t3', 'acct-a', ShopperTrack.STATE_CONFIRMED)
    assert (m.position.x, m.position.y, m.position.z) == (1.0, 2.0, 0.0)
    assert (m.velocity.x, m.velocity.y, m.velocity.z) == (0.3, -0.1, 0.0)
    assert m.position_std_m == pytest.approx(0.1)
    assert [(p.x, p.y, p.z) for p in m.hands] == [(1.0, 2.3, 1.1)]
    assert list(m.hand_std_m) == [0.04] and list(m.hand_source) == [HAND_TRIANGULATED]
    assert m.confidence == pytest.approx(t.confidence(ns(10.5)))
    assert m.last_seen == _stamp(10.5)
    # a track without product boxes (default), and a message with a "" SKU (not one)
    bare = Track('t4', np.zeros(4), np.eye(4), born_ns=ns(1.0), last_ns=ns(10.5),
                 last_seen_ns=ns(10.1))
    odd = ShopperTrack(track_id='t5', product_skus=['', 'COLA-330'], product_scores=[0.0, 0.3],
                       last_seen=_stamp(10.5))
    bare_msg = track_msg(bare, ns(10.5))
    assert list(bare_msg.product_skus) == [] and list(bare_msg.product_scores) == []

    msg = ShopperTracks(tracks=[m, bare_msg, odd])
    msg.header.stamp = _stamp(10.5)
    stamp, (s1, s2, s3) = snapshots_from_tracks(msg)
    assert stamp == ns(10.5)
    # exactly offline.run_tracking's Snapshot products: one SKU per box per camera
    assert s1.products == [sku for sku, _sc, _cam in t.products]
    assert s1.hands == [((1.0, 2.3, 1.1), 0.04, HAND_TRIANGULATED)] and s1.seen
    assert (s2.products, s2.seen) == ([], False)
    assert s3.products == ['COLA-330']


def _can_event(event_id):
    """-353.5 g on COLA-330's plate: between a cola (352 g) and a lemon can (355 g) left there.
    Weight alone: best 0.52, lead 0.06 -- below the cart's min_confidence and min_margin."""
    hyps = (HypothesisData('COLA-330', 1, 1, 0.52, -352.0, True),
            HypothesisData('LEMON-330', 1, 1, 0.46, -355.0, False),
            HypothesisData('', 1, 0, 0.02, 0.0, False))
    return ShelfEventData(event_id, 'g1', (CAN_PLATE,), -353.5, ns(10.0), ns(11.0), hyps)


def _can_track_messages(geom, held_after):
    """acct-a reaches CAN_PLATE from 10 to 11 s and holds ``held_after`` (seen by two cameras)
    from 11.1 s on; acct-b stands next to them, hands at the side. 8.0 .. 13.5 s."""
    from geometry_msgs.msg import Point
    from store_interfaces.msg import ShopperTrack, ShopperTracks
    tx, ty, tz = (float(v) for v in geom.plate_targets[CAN_PLATE])
    out = []
    for k in range(56):
        s = 8.0 + 0.1 * k
        reach = 10.0 <= s <= 11.0
        held = [held_after] * 2 if held_after and s > 11.05 else []
        a_hand = Point(x=tx, y=ty, z=tz) if reach else Point(x=tx, y=ty - 0.45, z=0.8)
        msg = ShopperTracks(camera_ids=['cam1', 'cam2'], tracks=[
            ShopperTrack(track_id='t1', shopper_id='acct-a', position=Point(x=tx, y=ty - 0.6),
                         hands=[a_hand], hand_std_m=[0.05], product_skus=held,
                         product_scores=[0.8] * len(held), state=2, last_seen=_stamp(s)),
            ShopperTrack(track_id='t2', shopper_id='acct-b',
                         position=Point(x=tx + 0.5, y=ty - 0.6),
                         hands=[Point(x=tx + 0.5, y=ty - 0.45, z=0.8)], hand_std_m=[0.05],
                         state=2, last_seen=_stamp(s))])
        msg.header.stamp = _stamp(s)
        out.append(msg)
    return out


def test_a_can_seen_in_the_hand_after_the_event_decides_between_near_equal_weights(geom):
    from store_cart.convert import fused_event_from_msg
    from store_interfaces.msg import FusedShelfEvent, ShelfEvent
    from store_fusion.convert import fused_event_msg, snapshots_from_tracks
    from store_fusion.fusion import VISION_CHANGED, VISION_NONE

    def fuse(held_after):
        fuser = EventFuser(geom, 27, FusionParams(), max_hold_s=5.0)
        fuser.on_shelf_event(_can_event(f'{CAN_PLATE}@10000000000'), ShelfEvent(),
                             now_ns=ns(11.2))
        for msg in _can_track_messages(geom, held_after):
            assert fuser.on_tracks(*snapshots_from_tracks(msg))
        (fused,) = fuser.poll(ns(13.5))
        assert not fused.released.timed_out
        return fused.result

    res = fuse('LEMON-330')
    assert res.shoppers[0].shopper_id == 'acct-a' and res.shoppers[0].probability > 0.9
    top, second = res.hypotheses[:2]
    assert top.sku == 'LEMON-330' and top.posterior > 0.99 and second.posterior < 0.01
    assert (res.vision, res.skus_seen) == (VISION_CHANGED, ['LEMON-330'])
    out = fused_event_msg(ShelfEvent(), res, 'store')
    assert out.vision == FusedShelfEvent.VISION_CHANGED and list(out.skus_seen) == ['LEMON-330']
    ev, hint = fused_event_from_msg(out)
    assert ev.hypotheses[0].sku == 'LEMON-330' and hint['acct-a'] > 0.9
    # the same tracks without a product box: the weight hypotheses pass through, still close
    blind = fuse('')
    assert blind.shoppers[0].shopper_id == 'acct-a'
    assert (blind.vision, blind.skus_seen) == (VISION_NONE, [])
    assert [(h.sku, h.posterior) for h in blind.hypotheses[:2]] == [('COLA-330', 0.52),
                                                                    ('LEMON-330', 0.46)]


def test_the_fusion_watermark_stays_below_every_held_event():
    from store_fusion.event_buffer import EventBuffer, fused_watermark_ns
    buf = EventBuffer(after_s=2.0, max_hold_s=5.0)
    assert fused_watermark_ns(None, buf) is None           # no shelf source promises anything
    assert fused_watermark_ns(-1, buf) is None             # a shelf source has not spoken yet
    assert fused_watermark_ns(ns(10.0), buf) == ns(10.0)   # nothing held: the shelves' promise
    buf.add('e1', ns(8.0), None, ns(8.5))
    buf.add('e2', ns(9.0), None, ns(9.5))
    assert buf.seen('e1') and not buf.seen('e3')
    assert fused_watermark_ns(ns(10.0), buf) == ns(8.0) - 1
    buf.advance_watermark(ns(10.5))                        # tracks passed e1's settled + 2 s
    assert [r.event_id for r in buf.release(ns(11.0))] == ['e1']
    assert fused_watermark_ns(ns(10.0), buf) == ns(9.0) - 1


def test_an_event_waits_for_a_lagging_but_alive_track_stream_up_to_lagging_hold():
    """The detector under load delivers 4-7 s late: track messages keep coming, their stamps
    behind. The event used to go out at max_hold_s without the tracks after it ("no tracked
    shopper"); it waits while the stream advances, up to lagging_hold_s."""
    buf = EventBuffer(after_s=2.0, max_hold_s=5.0, lagging_hold_s=9.0)
    buf.add('e1', ns(10.0), 'p', now_ns=ns(10.2))
    for k in range(1, 60):                   # tracks arrive 6 s behind sensor time, at 5 Hz
        now = 10.2 + 0.2 * k
        buf.advance_watermark(ns(now - 6.0), now_ns=ns(now))
        out = buf.release(ns(now))
        if out:
            break
    (r,) = out
    assert not r.timed_out and r.waited_s > 5.0 and r.watermark_ns >= ns(12.0)


def test_a_stream_that_stops_or_never_catches_up_releases_the_event():
    # stopped: nothing new for over a second -> max_hold_s as before
    buf = EventBuffer(after_s=2.0, max_hold_s=5.0, lagging_hold_s=9.0)
    buf.add('e1', ns(10.0), 'p', now_ns=ns(10.0))
    buf.advance_watermark(ns(8.0), now_ns=ns(13.0))
    assert buf.release(ns(14.9)) == []
    (r,) = buf.release(ns(15.0))
    assert r.timed_out
    # alive but far behind: out at lagging_hold_s, never later
    buf = EventBuffer(after_s=2.0, max_hold_s=5.0, lagging_hold_s=9.0)
    buf.add('e1', ns(10.0), 'p', now_ns=ns(10.0))
    for k in range(1, 60):
        now = 10.0 + 0.2 * k
        buf.advance_watermark(ns(now - 20.0), now_ns=ns(now))
        out = buf.release(ns(now))
        if out:
            break
    assert out[0].timed_out and out[0].waited_s == pytest.approx(9.0)
    # without the caller's clock on the watermark (offline), max_hold_s as before
    buf = EventBuffer(after_s=2.0, max_hold_s=5.0, lagging_hold_s=9.0)
    buf.add('e1', ns(10.0), 'p', now_ns=ns(10.0))
    buf.advance_watermark(ns(9.0))
    (r,) = buf.release(ns(15.0))
    assert r.timed_out


def test_a_track_bound_after_its_first_snapshots_is_the_account_in_all_of_them():
    """The newcomer reached the plate before the tracker bound the scan to their track (late,
    sparse frames): the snapshots at the take carry no account yet. The binding known at fusion
    time applies to the whole track (the live demo's take went to nobody, p=0.00 each)."""
    from store_fusion.fusion import TrackHistory
    h = TrackHistory()
    h.add(Snapshot(ns(1.0), 't4', '', (4.0, 2.0), [], [], True))
    h.add(Snapshot(ns(1.0), 't2', 'acct-0002', (9.0, 2.0), [], [], True))
    h.add(Snapshot(ns(2.0), 't4', 'acct-0003', (4.1, 2.0), [], [], True))
    h.add(Snapshot(ns(2.0), 't9', '', (6.0, 2.0), [], [], True))
    got = {(s.stamp_ns, s.track_id): s.shopper_id for s in h.window(ns(0.5), ns(2.5))}
    assert got == {(ns(1.0), 't4'): 'acct-0003', (ns(1.0), 't2'): 'acct-0002',
                   (ns(2.0), 't4'): 'acct-0003', (ns(2.0), 't9'): ''}
