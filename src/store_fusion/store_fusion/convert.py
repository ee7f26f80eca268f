"""Messages <-> the fusion's plain data. Imports messages, never rclpy."""
from __future__ import annotations

import math

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Vector3
from std_msgs.msg import Header
from store_common.stamps import from_ns, to_ns
from store_interfaces.msg import (FusedShelfEvent, ShelfEvent, ShopperCandidate, ShopperTrack,
                                  ShopperTracks)
from store_shelf.convert import hypothesis_msg

from store_fusion.fusion import FusionResult, Snapshot
from store_fusion.geometry import HAND_TRIANGULATED

DEFAULT_HAND_STD_M = 0.1     # a hand without its std in the message
# a hand without its source in the message counts as measured (HAND_TRIANGULATED)


def track_msg(t, now_ns: int) -> ShopperTrack:
    """One ``tracker.Track`` at the cycle ``now_ns`` as published, with the product boxes of its
    last cycle (``Track.products``: (sku, score, camera id)) as ``product_skus`` /
    ``product_scores``."""
    m = ShopperTrack(track_id=t.track_id, shopper_id=t.shopper_id)
    m.position = Point(x=float(t.x[0]), y=float(t.x[1]), z=0.0)
    m.velocity = Vector3(x=float(t.x[2]), y=float(t.x[3]), z=0.0)
    m.position_std_m = float(t.std_m)
    m.hands = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p, _, _ in t.hands]
    m.hand_std_m = [float(s) for _, s, _ in t.hands]
    m.hand_source = [int(src) for _, _, src in t.hands]
    m.product_skus = [str(sku) for sku, _sc, _cam in t.products]
    m.product_scores = [float(sc) for _sku, sc, _cam in t.products]
    m.confidence = float(t.confidence(now_ns))
    m.state = int(t.state)
    m.last_seen = from_ns(t.last_seen_ns, Time)
    return m


def snapshots_from_tracks(msg: ShopperTracks) -> tuple[int, list[Snapshot]]:
    """(sensor stamp of the message [ns], one Snapshot per track). A track counts as seen in
    this message when its last camera frame is the message's own. The Snapshot's products are
    the track's ``product_skus`` (one per box per camera, "" dropped), as ``offline.py`` builds
    them from ``Track.products``."""
    stamp = to_ns(msg.header.stamp)
    out = []
    for t in msg.tracks:
        stds, sources = list(t.hand_std_m), list(t.hand_source)
        hands = [((float(p.x), float(p.y), float(p.z)),
                  float(stds[i]) if i < len(stds) else DEFAULT_HAND_STD_M,
                  int(sources[i]) if i < len(sources) else HAND_TRIANGULATED)
                 for i, p in enumerate(t.hands)]
        out.append(Snapshot(stamp, t.track_id, t.shopper_id,
                            (float(t.position.x), float(t.position.y)), hands,
                            [str(sku) for sku in t.product_skus if sku],
                            to_ns(t.last_seen) >= stamp))
    return stamp, out


def fused_event_msg(event: ShelfEvent, res: FusionResult, frame_id: str) -> FusedShelfEvent:
    """The shelf event as published, with the fusion's shoppers and hypotheses. With shopper
    candidates, the mass no tracked shopper explains is a last "" (nobody tracked) candidate;
    without any, the list is empty (no vision evidence)."""
    shoppers = [ShopperCandidate(shopper_id=c.shopper_id, track_id=c.track_id,
                                 probability=float(c.probability),
                                 hand_distance_m=float(c.hand_distance_m),
                                 visible_share=float(c.visible_share))
                for c in res.shoppers]
    if shoppers:
        rest = max(0.0, 1.0 - sum(c.probability for c in shoppers))
        shoppers.append(ShopperCandidate(shopper_id='', track_id='', probability=rest,
                                         hand_distance_m=math.nan, visible_share=0.0))
    return FusedShelfEvent(
        header=Header(stamp=from_ns(to_ns(event.settled_stamp) or to_ns(event.header.stamp),
                                    Time), frame_id=frame_id),
        event=event, shoppers=shoppers,
        hypotheses=[hypothesis_msg(h) for h in res.hypotheses],
        confidence=float(res.confidence), raw_confidence=float(res.raw_confidence),
        vision=int(res.vision),
        skus_seen=list(res.skus_seen), detail=res.detail)
