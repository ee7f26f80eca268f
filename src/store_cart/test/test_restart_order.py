"""After a restart, inputs come back in no fixed order: the carts must not depend on it.

DDS redelivers each publisher's history to a restarted cart, in order per publisher but in no
order across them, long after the hold in sensor time has passed. These tests play generated
multi-shopper visits (several shoppers inside at once, takes and put-backs) through the engine
once without interruption, and once with the cart stopped at a random moment, the sources going
on while it is down, and on restart every input redelivered in a random order with ticks
between them; the receipts, carts and reviews must be the same. Without the sources' watermarks
the engine decides a resent shelf event before its shopper's entrance scan arrives, and the
control test shows this test catches it.
"""
from __future__ import annotations

import random

import pytest

from cart_helpers import CATALOG, enter, leave, ns, ret, shelf, STORE_ID, take, unknown
from store_cart.engine import CartEngine

SKUS = ('COLA-330', 'LEMON-330', 'WATER-500', 'CHOC-DARK', 'CHIPS-SALT', 'OJ-1L')
SOURCES = ('gate/entrance', 'gate/exit', 'shelf/g1', 'shelf/g2')
TICK_S = 0.25


def scenario(seed: int, shoppers: int = 4) -> list[tuple[int, str, object]]:
    """(publish time ns, source, event) of overlapping visits, in publish order."""
    rng = random.Random(seed)
    out = []
    for i in range(shoppers):
        who = f'acct-{seed}-{i}'
        t_in = 1.0 + rng.uniform(0, 6)
        t = t_in + rng.uniform(0.5, 2.0)
        held = []
        for k in range(rng.randint(1, 4)):
            sku = rng.choice(SKUS)
            plate = f'{"g1" if SKUS.index(sku) < 3 else "g2"}.s1.p{SKUS.index(sku)}'
            if held and rng.random() < 0.25:
                sku = held.pop()
                plate = f'{"g1" if SKUS.index(sku) < 3 else "g2"}.s1.p{SKUS.index(sku)}'
                hyps = [ret(sku, 0.97), unknown(0.03)]
            elif rng.random() < 0.2:
                hyps = [take(sku, 0.6), unknown(0.4)]           # reviewed
            else:
                hyps = [take(sku, 0.97), unknown(0.03)]
                held.append(sku)
            t += rng.uniform(0.3, 2.5)
            ev = shelf(plate, t + i * 0.001, hyps)
            out.append((ev.settled_ns + ns(0.3), f'shelf/{plate[:2]}', ev))
        t_out = t + rng.uniform(1.0, 3.0)
        out.append((ns(t_in), 'gate/entrance', enter(who, t_in)))
        out.append((ns(t_out), 'gate/exit', leave(who, t_out)))
    out.sort(key=lambda x: (x[0], x[1]))
    return out


class Mono:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def deliver(engine, source, ev):
    return (engine.on_gate_event(ev) if source.startswith('gate') else
            engine.on_shelf_event(ev))


def live(engine, mono, events, t0_ns, t1_ns, last):
    """Run the live graph from t0 to t1: inputs as published, watermarks and ticks."""
    pending = [e for e in events if t0_ns < e[0] <= t1_ns]
    t = t0_ns
    while t < t1_ns:
        t += ns(TICK_S)
        mono.t += ns(TICK_S)
        while pending and pending[0][0] <= t:
            _, source, ev = pending.pop(0)
            deliver(engine, source, ev)
            last[source] = ev.event_id
        for s in SOURCES:
            engine.on_watermark(s, 'run', t, last.get(s, ''))
        engine.tick(t)


def outcome(engine) -> dict:
    st = engine.state()
    return {'receipts': sorted((r.receipt_id, r.revision, r.lines, r.total_cents,
                                r.pending_reviews) for r in engine.receipt_history()),
            'carts': sorted((c.session_id, c.lines, c.pending_reviews) for c in st.carts),
            'reviews': sorted((r.request_id, r.reason, r.shopper_ids, r.candidates)
                              for r in st.open_reviews)}


def run(tmp_path, seed: int, crash: bool, sources=SOURCES) -> dict:
    events = scenario(seed)
    end = events[-1][0] + ns(8.0)
    mono = Mono()
    db = str(tmp_path / f'{seed}-{crash}-{len(sources)}.sqlite')
    engine = CartEngine(db, CATALOG, STORE_ID, sources=sources, monotonic_ns=mono)
    last: dict[str, str] = {}
    if not crash:
        live(engine, mono, events, 0, end, last)
        return outcome(engine)
    rng = random.Random(seed * 7 + 1)
    t_crash = rng.randrange(ns(2.0), events[-1][0])
    t_back = t_crash + ns(rng.uniform(2.0, 12.0))
    live(engine, mono, events, 0, t_crash, last)
    engine.close()                                  # down: the sources go on publishing
    for _, source, ev in (e for e in events if t_crash < e[0] <= t_back):
        last[source] = ev.event_id
    mono.t += t_back - t_crash
    engine = CartEngine(db, CATALOG, STORE_ID, sources=sources, monotonic_ns=mono)
    # every publisher's history comes back, in order per publisher, interleaved at random
    # with the other publishers' and with the latest watermark of each; ticks run meanwhile
    queues = {s: [('event', ev) for t, src, ev in events if src == s and t <= t_back]
              for s in SOURCES}
    for s in SOURCES:
        queues[s + '#wm'] = [('wm', s)]
    while any(queues.values()):
        q = rng.choice([k for k, v in queues.items() if v])
        kind, x = queues[q].pop(0)
        if kind == 'event':
            deliver(engine, q, x)
        else:
            engine.on_watermark(x, 'run', t_back, last.get(x, ''))
        if rng.random() < 0.5:
            engine.tick(t_back)
    live(engine, mono, events, t_back, max(end, t_back + ns(1.0)), last)
    return outcome(engine)


@pytest.mark.parametrize('seed', range(12))
def test_reordered_redelivery_after_a_restart_gives_the_uninterrupted_carts(tmp_path, seed):
    reference = run(tmp_path, seed, crash=False)
    assert reference['receipts'] and reference['reviews']          # the scenario means something
    assert run(tmp_path, seed, crash=True) == reference


def test_without_watermarks_the_reordered_redelivery_spoils_carts(tmp_path):
    """Control: the same test against the hold alone finds wrong carts (as before the fix)."""
    spoiled = [seed for seed in range(12)
               if run(tmp_path, seed, crash=True, sources=()) != run(tmp_path, seed, False, ())]
    assert spoiled, 'the reordered redelivery no longer exercises the restart ordering'


def test_caught_up_once_everything_before_the_restart_is_decided(tmp_path):
    mono = Mono()
    engine = CartEngine(str(tmp_path / 'c.sqlite'), CATALOG, STORE_ID, sources=SOURCES,
                        monotonic_ns=mono)
    ev = shelf('g1.s1.p0', 5.0, [take('COLA-330', 0.97), unknown(0.03)])
    start = ns(20.0)
    engine.on_shelf_event(ev)
    engine.on_gate_event(enter('acct-a', 1.0))
    engine.tick(start)
    assert not engine.caught_up(start, start)                  # no source has spoken
    for s in SOURCES:
        engine.on_watermark(s, 'r', ns(20.0), ev.event_id if s == 'shelf/g1' else '')
    assert not engine.caught_up(start, start)                  # the shelf event still waits
    engine.tick(start)
    assert engine.caught_up(start, ns(20.0) + ns(1.0))
    assert [c.lines[0].sku for c in engine.state().carts] == ['COLA-330']
