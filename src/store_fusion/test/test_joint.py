"""Joint shopper assignment over concurrent shelf events (one shopper, one plate at a time):
the pure algorithm, and the same through the fusion node's logic and the offline path."""
import pathlib
from collections import Counter

import pytest

from store_cart.engine import CartParams
from store_common.description import load_store
from store_fusion.event_buffer import EventFuser
from store_fusion.fusion import (Candidate, FusionParams, normalise, product_ratio, Snapshot,
                                 TrackHistory)
from store_fusion.geometry import StoreGeometry
from store_fusion.joint import (concurrent, EventEvidence, group_evidence, groups,
                                joint_posteriors, JointParams, linked, marginals)
from store_shelf.event import HypothesisData, ShelfEventData

ROOT = pathlib.Path(__file__).resolve().parents[3]
NS = 1_000_000_000
CART = CartParams()


def ns(s):
    return int(round(s * NS))


def _ev(event_id, t0, t1, plates, nobody=0.01, **likes):
    cands = [Candidate(sid, f'track-{sid}', 0.0, 0.0, 1.0, like) for sid, like in likes.items()]
    return EventEvidence(event_id, ns(t0), ns(t1), tuple(plates), cands, nobody)


def _probs(cands):
    return {c.shopper_id: c.probability for c in cands}


def _cart_would_decide(cands):
    """The cart's rule for a shopper hint: top >= min_confidence and lead >= min_margin."""
    p = sorted((c.probability for c in cands), reverse=True) + [0.0]
    return p[0] >= CART.min_confidence and p[0] - p[1] >= CART.min_margin


# --- the algorithm ----------------------------------------------------------------------------
def test_a_clear_neighbour_resolves_an_event_that_is_ambiguous_alone():
    # ann's hand is clearly at p1; at p2 both hands are on the ray (depth ambiguity)
    clear = _ev('p1@10', 10.0, 11.0, ['g1.s2.p1'], ann=1.0, bob=0.05)
    ambiguous = _ev('p2@10', 10.2, 11.1, ['g1.s2.p2'], ann=1.0, bob=1.0)
    alone = normalise([Candidate(c.shopper_id, '', 0.0, 0.0, 1.0, c.likelihood)
                       for c in ambiguous.candidates], 0.01)
    assert not _cart_would_decide(alone)          # on its own: a review
    (p_clear, p_amb), group_of = joint_posteriors([clear, ambiguous], JointParams())
    assert group_of == [[0, 1], [0, 1]]
    assert p_amb[0].shopper_id == 'bob' and _probs(p_amb)['bob'] > 0.9
    assert _cart_would_decide(p_amb)
    assert p_clear[0].shopper_id == 'ann' and _probs(p_clear)['ann'] > 0.9
    assert _cart_would_decide(p_clear)
    # marginals of a joint posterior: each event's probabilities still sum to <= 1
    assert sum(_probs(p_amb).values()) <= 1.0 + 1e-9
    assert p_amb[0].likelihood == 1.0             # the evidence itself is passed on


def test_a_single_event_keeps_its_own_posterior_exactly():
    ev = _ev('p1@10', 10.0, 11.0, ['g1.s2.p1'], ann=0.7, bob=0.2)
    far = _ev('p2@20', 20.0, 21.0, ['g1.s2.p2'], ann=1.0, bob=0.0)   # not concurrent
    (p_ev, _), group_of = joint_posteriors([ev, far], JointParams())
    assert group_of == [[0], [1]]
    assert _probs(p_ev) == pytest.approx({'ann': 0.7 / 0.91, 'bob': 0.2 / 0.91}, abs=1e-12)
    (alone,), joint = marginals([ev], JointParams())
    assert not joint and _probs(alone) == _probs(p_ev)
    # the evidence is not modified in place
    assert [c.probability for c in ev.candidates] == [0.0, 0.0]


def test_equally_likely_assignments_stay_ambiguous():
    # both hands at both plates: ann->p1, bob->p2 is as likely as bob->p1, ann->p2
    a = _ev('p1@10', 10.0, 11.0, ['g1.s2.p1'], ann=1.0, bob=1.0)
    b = _ev('p2@10', 10.1, 11.2, ['g1.s2.p2'], ann=1.0, bob=1.0)
    (pa, pb), group_of = joint_posteriors([a, b], JointParams())
    assert group_of == [[0, 1], [0, 1]]
    for p in (pa, pb):
        assert _probs(p)['ann'] == pytest.approx(_probs(p)['bob'])
        assert not _cart_would_decide(p)          # no silent guess: both go to review


def test_only_linked_events_constrain_each_other():
    a = _ev('a', 10.0, 11.0, ['g1.s2.p1'], ann=1.0)
    same_plate = _ev('b', 10.5, 11.5, ['g1.s2.p1'], ann=1.0, bob=0.2)
    after_gap = _ev('c', 11.6, 12.5, ['g1.s2.p3'], ann=1.0, bob=1.0)
    within_gap = _ev('d', 11.4, 12.5, ['g1.s2.p3'], ann=1.0, bob=1.0)
    assert concurrent(a, same_plate, 0.5) and not linked(a, same_plate, 0.5)
    assert not concurrent(a, after_gap, 0.5) and concurrent(a, after_gap, 0.7)
    assert linked(a, within_gap, 0.5)
    # the same shopper may take twice from one plate: nothing changes for 'b'
    (pa, pb), group_of = joint_posteriors([a, same_plate], JointParams())
    assert group_of == [[0], [1]]
    assert _probs(pb) == pytest.approx({'ann': 1.0 / 1.21, 'bob': 0.2 / 1.21})
    # a chain a - d is one group; 'c' (0.6 s after a) stays alone
    assert groups([a, after_gap], 0.5) == [[0], [1]]
    assert groups([within_gap, a, after_gap], 0.5) == [[0, 1], [2]]


def test_groups_larger_than_max_group_fall_back_to_per_event_posteriors():
    evs = [_ev(f'e{k}', 10.0 + 0.1 * k, 11.0, [f'g1.s{k // 3 + 1}.p{k % 3 + 1}'],
               ann=1.0, bob=0.5) for k in range(5)]
    post, group_of = joint_posteriors(evs, JointParams(max_group=4))
    assert group_of == [[k] for k in range(5)]
    for p in post:
        assert _probs(p) == pytest.approx({'ann': 1.0 / 1.51, 'bob': 0.5 / 1.51})
    off, _ = joint_posteriors(evs[:2], JointParams(max_group=1))       # joint off
    assert _probs(off[1]) == pytest.approx({'ann': 1.0 / 1.51, 'bob': 0.5 / 1.51})
    with pytest.raises(ValueError):
        JointParams(same_shopper_factor=1.5)


def test_three_concurrent_events_three_shoppers():
    # cat is clear at p3, ann clear at p1; p2 is ambiguous between all three alone
    evs = [_ev('p1', 10.0, 11.0, ['g1.s2.p1'], ann=1.0, bob=0.01, cat=0.01),
           _ev('p2', 10.1, 11.0, ['g1.s2.p2'], ann=1.0, bob=1.0, cat=1.0),
           _ev('p3', 10.2, 11.0, ['g1.s2.p3'], ann=0.01, bob=0.01, cat=1.0)]
    post, group_of = joint_posteriors(evs, JointParams())
    assert group_of == [[0, 1, 2]] * 3
    assert [p[0].shopper_id for p in post] == ['ann', 'bob', 'cat']
    assert all(_cart_would_decide(p) for p in post)


# --- through the node's logic and the offline path --------------------------------------------
@pytest.fixture(scope='module')
def geom():
    return StoreGeometry(load_store(ROOT / 'config' / 'stores' / 'demo.yaml'))


P1, P2 = 'g1.s2.p1', 'g1.s2.p2'


def _shelf(plate, start_s, settled_s):
    hyps = (HypothesisData('SPARK-500', 1, 1, 0.97, -520.0, True),
            HypothesisData('', 0, 0, 0.03, 0.0, False))
    return ShelfEventData(f'{plate}@{ns(start_s)}', 'g1', (plate,), -520.0, ns(start_s),
                          ns(settled_s), hyps)


def _frames(geom):
    """ann and bob stand side by side at gondola g1 from 9 to 15 s. 10.0-11.0 s: ann's hand at
    P1, and at P2 a hand of each of them (one camera's ray: depth ambiguous). bob is the one
    who took from P2, but P2's evidence alone cannot tell."""
    p1 = tuple(float(v) for v in geom.plate_targets[P1])
    p2 = tuple(float(v) for v in geom.plate_targets[P2])
    out = []
    for k in range(61):
        t = 9.0 + 0.1 * k
        reach = 10.0 <= t <= 11.0
        ann_hands = [(p1, 0.05), (p2, 0.05)] if reach else [((p1[0], p1[1] - 0.45, 0.8), 0.05)]
        bob_hands = [(p2, 0.05)] if reach else [((p2[0], p2[1] - 0.45, 0.8), 0.05)]
        out.append((ns(t), [
            Snapshot(ns(t), 't1', 'ann', (p1[0], p1[1] - 0.6), ann_hands, [], True),
            Snapshot(ns(t), 't2', 'bob', (p2[0], p2[1] - 0.6), bob_hands, [], True)]))
    return out


@pytest.mark.parametrize('one_view_hand_weight', [FusionParams().one_view_hand_weight, 1.0])
def test_a_triangulated_reach_outweighs_one_views_of_the_shelf_below(geom,
                                                                     one_view_hand_weight):
    """ann and bob stand at one column of g1; ann takes from the top shelf, bob from the one
    below, at once. Two cameras see ann's hand at the top plate (triangulated); as she draws
    it back, one camera's ray through it meets the lower plate's height (one view). bob's hand
    is seen by one camera only, at the lower plate, and one of ann's rays fell in bob's person
    box once (one view, at the top plate). With one-view hands counted as fully as triangulated
    ones both assignments explain everything (a coin toss: two reviews, whose pending guesses
    can land both wrong); as weaker evidence, ann's triangulated reach decides the pair."""
    from store_fusion.geometry import (HAND_ONE_VIEW_AT_PLATE as ONE, HAND_ONE_VIEW_AT_REST,
                                       HAND_TRIANGULATED as TRI)
    top, low = 'g1.s3.p3', 'g1.s2.p3'
    t_top, t_low = (tuple(float(v) for v in geom.plate_targets[p]) for p in (top, low))
    params = FusionParams(one_view_hand_weight=one_view_hand_weight)
    history = TrackHistory(keep_s=1e9)
    for k in range(41):
        t = 9.0 + 0.1 * k
        rest = ((t_top[0], t_top[1] - 0.45, 0.8), 0.3, HAND_ONE_VIEW_AT_REST)
        ann = [(t_top, 0.05, TRI)] if 10.0 <= t < 10.6 else \
            [(t_low, 0.12, ONE)] if 10.6 <= t <= 11.0 else [rest]
        bob = [(t_low, 0.12, ONE)] if 10.2 <= t <= 11.0 else [rest]
        if abs(t - 10.8) < 1e-6:
            bob.append((t_top, 0.12, ONE))
        history.add(Snapshot(ns(t), 't1', 'ann', (t_top[0] - 0.2, t_top[1] - 0.6), ann, [],
                             True))
        history.add(Snapshot(ns(t), 't2', 'bob', (t_top[0] + 0.2, t_top[1] - 0.6), bob, [],
                             True))
    stubs = [EventEvidence(f'{top}@10', ns(10.0), ns(11.0), (top,)),
             EventEvidence(f'{low}@10', ns(10.2), ns(11.2), (low,))]
    (p_top, p_low), joint = marginals(group_evidence(geom, stubs, history, params,
                                                     JointParams()), JointParams())
    assert joint
    fused = CartParams(min_confidence=0.5)
    decides = [p[0].probability >= fused.min_confidence
               and p[0].probability - p[1].probability >= fused.min_margin
               for p in (p_top, p_low)]
    if one_view_hand_weight < 1.0:
        assert (p_top[0].shopper_id, p_low[0].shopper_id) == ('ann', 'bob')
        assert decides == [True, True]
    else:
        assert _probs(p_top)['ann'] == pytest.approx(_probs(p_top)['bob'], abs=0.02)
        assert decides == [False, False]


def _run_fuser(geom, joint, order=(0, 1)):
    fuser = EventFuser(geom, 27, FusionParams(), max_hold_s=5.0, joint=joint)
    events = [_shelf(P1, 10.0, 11.0), _shelf(P2, 10.3, 11.6)]
    results, releases = {}, []
    for stamp, snaps in _frames(geom):
        for i in order:
            if events[i].settled_ns == stamp:
                assert fuser.on_shelf_event(events[i], f'msg-{i}', now_ns=stamp)
                assert not fuser.on_shelf_event(events[i], 'again', now_ns=stamp)
        fuser.on_tracks(stamp, snaps)
        out = fuser.poll(stamp)
        if out:
            releases.append((stamp, [o.released.event_id for o in out]))
        results.update((o.released.event_id, o) for o in out)
    return events, results, releases


def test_node_logic_holds_the_group_and_decides_it_jointly(geom):
    events, res, releases = _run_fuser(geom, JointParams())
    p1, p2 = (res[e.event_id] for e in events)
    # P1 (settled 11.0) waits for P2's evidence (settled 11.6 + 2.0 s); out together, in order
    assert releases == [(ns(13.6), [events[0].event_id, events[1].event_id])]
    assert not p1.released.timed_out and p1.released.payload == 'msg-0'
    assert p1.result.hint['ann'] > 0.9 and p2.result.hint['bob'] > 0.9
    assert _cart_would_decide(p2.result.shoppers)
    assert f'jointly with {events[0].event_id}' in p2.result.detail
    # without the joint: P2 is a coin toss (review), P1 goes out as soon as its evidence is in
    events, alone, releases = _run_fuser(geom, JointParams(max_group=1))
    assert releases[0] == (ns(13.0), [events[0].event_id])
    q2 = alone[events[1].event_id].result
    assert abs(q2.hint['ann'] - q2.hint['bob']) < 0.05 and not _cart_would_decide(q2.shoppers)
    assert 'jointly' not in q2.detail


def test_offline_path_gives_what_the_node_gives(geom):
    # the benchmark harness (store_bench) against the node's logic; store_bench sits downstream
    # of store_fusion, so it is imported here rather than declared as a test dependency (a cycle)
    from store_bench.fusion_offline import fuse_offline
    events, res, _ = _run_fuser(geom, JointParams())
    history = TrackHistory(keep_s=1e9)
    for _stamp, snaps in _frames(geom):
        for s in snaps:
            history.add(s)
    off = fuse_offline(geom, events, history, 27, FusionParams(), JointParams())
    assert set(off) == {e.event_id for e in events}
    for e in events:
        assert off[e.event_id].hint == pytest.approx(res[e.event_id].result.hint)
        assert off[e.event_id].detail == res[e.event_id].result.detail


def test_a_released_event_still_informs_a_late_concurrent_one(geom):
    fuser = EventFuser(geom, 27, FusionParams(), max_hold_s=5.0, joint=JointParams())
    first, late = _shelf(P1, 10.0, 11.0), _shelf(P2, 10.3, 11.6)
    frames = _frames(geom)
    got = {}
    for stamp, snaps in frames:
        if stamp == first.settled_ns:
            fuser.on_shelf_event(first, 'a', now_ns=stamp)
        if stamp == ns(13.5):           # P2's shelf event arrives after P1 went out
            fuser.on_shelf_event(late, 'b', now_ns=stamp)
        fuser.on_tracks(stamp, snaps)
        got.update((o.released.event_id, o) for o in fuser.poll(stamp))
    assert got[first.event_id].result.hint['ann'] > 0.9
    assert got[late.event_id].result.hint['bob'] > 0.9
    assert not fuser.on_shelf_event(late, 'b', now_ns=ns(20.0))     # still fused once
    assert fuser.poll(ns(30.0)) == []


def test_a_hand_between_two_linked_plates_counts_for_the_nearer_one_only(geom):
    from store_fusion.fusion import shopper_evidence
    a, b = (tuple(float(v) for v in geom.plate_targets[p]) for p in (P1, P2))
    between = tuple(a[k] + 0.45 * (b[k] - a[k]) for k in range(3))   # in P1's region, 5 cm off P2
    history = TrackHistory(keep_s=1e9)
    for k in range(31):
        t = ns(9.5 + 0.1 * k)
        history.add(Snapshot(t, 't1', 'ann', (b[0], b[1] - 0.6), [(b, 0.05)], [], True))
        history.add(Snapshot(t, 't2', 'bob', (a[0], a[1] - 0.6), [(between, 0.05)], [], True))
    e1, e2 = _shelf(P1, 10.0, 11.0), _shelf(P2, 10.2, 11.2)
    fp = FusionParams()
    alone = {c.shopper_id: c.likelihood for c in shopper_evidence(
        geom, (P2,), e2.start_ns, e2.settled_ns, history, fp)}
    assert alone['ann'] > 1.0 and alone['bob'] > 0.8       # on its own, bob's hand is near P2
    stubs = [EventEvidence(e.event_id, e.start_ns, e.settled_ns, e.plate_ids) for e in (e1, e2)]
    g1, g2 = group_evidence(geom, stubs, history, fp, JointParams())
    got = {c.shopper_id: c.likelihood for c in g2.candidates}
    assert got['ann'] == pytest.approx(alone['ann']) and got['bob'] < 0.05
    assert {c.shopper_id: c.likelihood for c in g1.candidates}['bob'] > 1.0
    assert stubs[0].candidates == []                       # the stubs are not modified


def test_what_each_shopper_is_seen_holding_tells_two_reaches_apart(geom):
    """ann and bob both have a hand at both adjacent plates (one ray each: depth ambiguous) and
    take one item each: a cola from P1 and a lemonade from P2. Which hand took what is settled
    by what each is seen holding afterwards: bob the cola, ann the lemonade."""
    a, b = (tuple(float(v) for v in geom.plate_targets[p]) for p in (P1, P2))
    history = TrackHistory(keep_s=1e9)
    for k in range(50):
        t = 8.5 + 0.1 * k
        reach = 10.0 <= t <= 11.0
        after = t > 11.3
        for tid, sid, xy, held in (('t1', 'ann', a, 'LEMON-330'), ('t2', 'bob', b, 'COLA-330')):
            hands = [(a, 0.05), (b, 0.05)] if reach else [((xy[0], xy[1] - 0.45, 0.8), 0.05)]
            history.add(Snapshot(ns(t), tid, sid, (xy[0], xy[1] - 0.6), hands,
                                 [held] if after and k % 2 else [], True))

    def shelf(plate, sku, start_s, settled_s):
        hyps = (HypothesisData(sku, 1, 1, 0.9, -350.0, True),
                HypothesisData('', 0, 0, 0.1, 0.0, False))
        return EventEvidence(f'{plate}@{ns(start_s)}', ns(start_s), ns(settled_s), (plate,),
                             hypotheses=hyps, n_skus=27)

    events = [shelf(P1, 'COLA-330', 10.0, 11.0), shelf(P2, 'LEMON-330', 10.1, 11.1)]
    for weight, decided in ((1.0, True), (0.0, False)):
        fp = FusionParams(product_shopper_weight=weight)
        (c1, c2), joint = marginals(group_evidence(geom, events, history, fp, JointParams()),
                                    JointParams())
        assert joint
        if decided:
            assert c1[0].shopper_id == 'bob' and c2[0].shopper_id == 'ann'
            assert _cart_would_decide(c1) and _cart_would_decide(c2)
        else:       # the hands alone: a coin toss, both go to review
            assert not _cart_would_decide(c1) and not _cart_would_decide(c2)
    # a shopper seen with nothing new in hand is neither favoured nor penalised
    assert product_ratio(events[0].hypotheses, Counter(), Counter(), 27, FusionParams()) == 1.0
    lemon = Counter({'LEMON-330': 0.5})
    assert product_ratio(events[1].hypotheses, Counter(), lemon, 27, FusionParams()) > 5.0
    assert product_ratio(events[0].hypotheses, Counter(), lemon, 27, FusionParams()) < 0.5
