"""The one shelf event type: message and JSON round trips (messages only, no rclpy)."""
import pytest
from store_interfaces.msg import ProductHypothesis, ShelfEvent

from store_shelf.convert import hypothesis_msg, shelf_event_from_msg, shelf_event_msg
from store_shelf.event import HypothesisData, ShelfEventData
from store_shelf.merge import event_from_steps
from store_shelf.steps import WeightStep

NS = 1_000_000_000


def event() -> ShelfEventData:
    return ShelfEventData(
        event_id='g1.s1.p2@5000000001', gondola_id='g1', plate_ids=('g1.s1.p2', 'g1.s1.p3'),
        delta_grams=-352.5, start_ns=5 * NS + 1, settled_ns=6 * NS + 250_000_000,
        hypotheses=(HypothesisData('COLA-330', ProductHypothesis.ACTION_TAKE, 1, 0.93, -352.0),
                    HypothesisData('', ProductHypothesis.ACTION_TAKE, 0, 0.07, 0.0, False)),
        plate_delta_grams=(-300.25, -52.25), noise_grams=1.5)


def test_message_round_trip_keeps_every_field():
    ev = event()
    msg = shelf_event_msg(ev, 'store')
    assert isinstance(msg, ShelfEvent) and msg.header.frame_id == 'store'
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (6, 250_000_000)
    assert [h.posterior for h in msg.hypotheses] == [0.93, 0.07]
    assert shelf_event_from_msg(msg) == ev
    assert hypothesis_msg(ev.hypotheses[1]).on_home_plate is False


def test_message_without_start_or_settled_stamp_falls_back_to_the_header():
    msg = shelf_event_msg(event(), 'store')
    msg.settled_stamp.sec = msg.settled_stamp.nanosec = 0
    msg.start_stamp.sec = msg.start_stamp.nanosec = 0
    ev = shelf_event_from_msg(msg)
    assert ev.start_ns == ev.settled_ns == 6 * NS + 250_000_000


def test_json_round_trip_and_legacy_posterior_keys():
    ev = event()
    d = ev.to_dict()
    assert 'steps' not in d and d['hypotheses'][0]['posterior'] == 0.93
    assert ShelfEventData.from_dict(d) == ev
    # payloads written before the posterior had one name (cart database, review examples)
    for old in ('likelihood', 'probability'):
        legacy = {**d, 'hypotheses': [{**h, old: h['posterior']} for h in d['hypotheses']]}
        for h in legacy['hypotheses']:
            del h['posterior']
        assert ShelfEventData.from_dict(legacy) == ev
    with pytest.raises(KeyError):
        HypothesisData.from_dict({'sku': 'A', 'action': 1, 'quantity': 1})


def test_merged_steps_make_the_same_type_unranked_with_the_gondola():
    steps = [WeightStep('g1.s1.p3', 10 * NS, 11 * NS, 0.0, -52.0, -52.0, 0.3, 11 * NS),
             WeightStep('g1.s1.p2', 10 * NS + 5, 11 * NS + 9, 0.0, -300.0, -300.0, 0.4, 11 * NS)]
    ev = event_from_steps(steps, 'g1')
    assert isinstance(ev, ShelfEventData) and ev.hypotheses == ()
    assert (ev.gondola_id, ev.plate_ids, ev.event_id) == ('g1', ('g1.s1.p2', 'g1.s1.p3'),
                                                          f'g1.s1.p2@{10 * NS}')
    assert ev.noise_grams == pytest.approx(0.5) and len(ev.steps) == 2
    assert ShelfEventData.from_dict(ev.to_dict()) == ev      # steps are not compared
