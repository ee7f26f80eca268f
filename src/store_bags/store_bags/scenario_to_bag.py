"""scenario_to_bag: write a simulated scenario straight to a bag, without running the drivers.

The bag holds what the drivers would publish from the simulator's devices, plus the truth:

* ``<ns>/<controller>/plate_raw`` (RawPlateReadings) and ``<ns>/<controller>/plate_weights``
  (PlateWeights): one batch per ``batch_s`` (the controller's ~100 ms flush) of every sample row
  of the store_sim physics/ADC model, calibrated with the store description
  (``weight_grams = (adc_counts - tare_offset_counts) * grams_per_count``); not-ready and
  saturated samples are invalid (NaN weight), as the load-cell driver reports them;
* ``<ns>/gate_events`` (GateEvent): the entrance and exit scans;
* ``<ns>/gate_watermarks`` (SourceWatermark): each gate's promise every ``watermark_s``, as
  its driver makes it live (the cart waits for it before deciding);
* ``<ns>/sim/ground_truth`` (std_msgs/String): one JSON truth event each, as the sim node sends.

Sample ``k`` of a controller is stamped ``start_stamp + k / rate``; scenario time 0 is
``start_stamp + lead_s``, so the shelf nodes see ``lead_s`` of idle shelves first. A regression
suite is a folder of such bags: replay them with ``bag_play`` into a new build.

    scenario_to_bag --store config/stores/demo.yaml --scenario config/scenarios/demo.yaml \
        --out out/bags/demo
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from store_bags.bag import BagError, BagWriter
from store_bags.typestore import store_typestore
from store_common.description import load_store, StoreConfigError
from store_sim.emulators import gate_scans
from store_sim.physics import ADC_MAX, ADC_MIN, StorePhysics
from store_sim.scenario import load_scenario, ScenarioError, truth_events

NS_PER_S = 1_000_000_000
DEFAULT_START_NS = 1_750_000_000 * NS_PER_S    # fixed, so a bag is reproducible byte for byte
T = 'store_interfaces/msg/'
# the messages' own constants (the typestore is built from the installed .msg files)
_RAW = store_typestore().types[T + 'RawPlateSample']
_GATE = store_typestore().types[T + 'GateEvent']
STATUS_OK, STATUS_SATURATED, STATUS_NOT_READY = (_RAW.STATUS_OK, _RAW.STATUS_SATURATED,
                                                 _RAW.STATUS_NOT_READY)
KIND = {'entrance': _GATE.KIND_ENTER, 'exit': _GATE.KIND_EXIT}


def _time(ts, ns: int):
    return ts.types['builtin_interfaces/msg/Time'](sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def _header(ts, ns: int, frame_id: str):
    return ts.types['std_msgs/msg/Header'](stamp=_time(ts, ns), frame_id=frame_id)


def write_scenario_bag(store, scenario, out, *, namespace: str = '/store',
                       start_ns: int = DEFAULT_START_NS, lead_s: float = 2.0,
                       tail_s: float = 5.0, batch_s: float = 0.1, seed: int | None = None,
                       raw: bool = True, watermark_s: float = 0.2) -> dict[str, int]:
    """Write the bag; returns {topic: message count}."""
    ts = store_typestore()
    ns = '/' + namespace.strip('/')
    physics = StorePhysics(store, scenario, seed=seed)
    t0_ns = start_ns + int(round(lead_s * NS_PER_S))   # scenario time 0
    end_s = scenario.duration_s + tail_s
    msgs: list[tuple[int, int, str, str, object]] = []   # (stamp, order, topic, type, msg)

    PW, PWs = ts.types[T + 'PlateWeight'], ts.types[T + 'PlateWeights']
    RS, RR = ts.types[T + 'RawPlateSample'], ts.types[T + 'RawPlateReadings']
    for ci, c in enumerate(store.controllers):
        n = int(math.floor((lead_s + end_s) * c.sample_rate_hz)) + 1
        k = np.arange(n)
        stamps = start_ns + np.rint(k * NS_PER_S / c.sample_rate_hz).astype(np.int64)
        t_scen = (stamps - t0_ns) / NS_PER_S
        counts, nr = physics.controller_rows(c.id, t_scen)
        plate_of = {p.load_cell.channel: p for p in store.plates_of_controller(c.id)}
        batch_of = ((stamps - start_ns) // int(batch_s * NS_PER_S)).astype(np.int64)
        for b in np.unique(batch_of):
            rows = np.nonzero(batch_of == b)[0]
            newest = int(stamps[rows[-1]])
            raw_samples, weights = [], []
            for r in rows.tolist():
                st = _time(ts, int(stamps[r]))
                for ch in range(c.n_channels):
                    v = int(counts[r, ch])
                    if nr[r, ch]:
                        status, v = STATUS_NOT_READY, 0
                    elif v <= ADC_MIN or v >= ADC_MAX:
                        status = STATUS_SATURATED
                    else:
                        status = STATUS_OK
                    plate = plate_of.get(ch)
                    raw_samples.append(RS(stamp=st, channel=ch,
                                          plate_id=plate.id if plate else '', adc_counts=v,
                                          status=status))
                    if plate is not None:
                        valid = status == STATUS_OK
                        lc = plate.load_cell
                        grams = (v - lc.tare_offset_counts) * lc.grams_per_count if valid \
                            else math.nan
                        weights.append(PW(stamp=st, plate_id=plate.id, weight_grams=grams,
                                          adc_counts=v, valid=valid))
            if raw:
                msgs.append((newest, ci * 2, f'{ns}/{c.id}/plate_raw', T + 'RawPlateReadings',
                             RR(header=_header(ts, newest, c.id), controller_id=c.id,
                                first_sequence=int(rows[0]), dropped_frames=0,
                                samples=raw_samples)))
            msgs.append((newest, ci * 2 + 1, f'{ns}/{c.id}/plate_weights', T + 'PlateWeights',
                         PWs(header=_header(ts, newest, store.frame_id), controller_id=c.id,
                             weights=weights)))

    GE = ts.types[T + 'GateEvent']
    SW = ts.types[T + 'SourceWatermark']
    scans_of = gate_scans(scenario, store)
    for gate in store.gates:
        stamps = []
        for t_s, account in scans_of.get(gate.id, ()):
            stamp = t0_ns + int(round(t_s * NS_PER_S))
            stamps.append(stamp)
            msgs.append((stamp, 1000, f'{ns}/gate_events', T + 'GateEvent', GE(
                header=_header(ts, stamp, gate.frame_id), event_id=f'{gate.id}@{stamp}',
                gate_id=gate.id, kind=KIND[gate.kind], shopper_id=account)))
        # the gate driver's promise, as it would have made it live (every watermark_s)
        stamps.sort()
        k = 0
        for stamp in range(start_ns, t0_ns + int(end_s * NS_PER_S) + 1,
                           int(watermark_s * NS_PER_S)):
            while k < len(stamps) and stamps[k] <= stamp:
                k += 1
            msgs.append((stamp, 1001, f'{ns}/gate_watermarks', T + 'SourceWatermark', SW(
                header=_header(ts, stamp, ''), source_id=f'gate/{gate.id}', run_id='bag',
                last_event_id=f'{gate.id}@{stamps[k - 1]}' if k else '')))

    S = ts.types['std_msgs/msg/String']
    for i, ev in enumerate(truth_events(scenario, store)):
        stamp = t0_ns + int(round(ev['t_s'] * NS_PER_S))
        ev = dict(ev, store=store.id, stamp_ns=stamp)
        msgs.append((stamp, 2000 + i, f'{ns}/sim/ground_truth', 'std_msgs/msg/String',
                     S(data=json.dumps(ev, sort_keys=True))))

    msgs.sort(key=lambda m: (m[0], m[1]))
    with BagWriter(out, ts) as w:
        for stamp, _, topic, msgtype, msg in msgs:
            w.write_msg(topic, msgtype, stamp, msg)
        return dict(w.counts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='scenario_to_bag', description=__doc__.split('\n\n')[0])
    ap.add_argument('--store', required=True, help='store description YAML')
    ap.add_argument('--scenario', required=True, help='scenario YAML or JSON')
    ap.add_argument('--out', required=True, help='bag directory to create')
    ap.add_argument('--namespace', default='/store', help='store namespace of the topics')
    ap.add_argument('--start-stamp', type=float, default=DEFAULT_START_NS / NS_PER_S,
                    help='bag time of the first sample [s since the epoch]')
    ap.add_argument('--lead', type=float, default=2.0,
                    help='idle shelf samples before scenario time 0 [s]')
    ap.add_argument('--tail', type=float, default=5.0,
                    help='idle shelf samples after the scenario end [s]')
    ap.add_argument('--seed', type=int, default=None, help='physics seed (default: scenario)')
    ap.add_argument('--no-raw', action='store_true', help='leave out plate_raw')
    args = ap.parse_args(argv)
    try:
        store = load_store(args.store)
        scenario = load_scenario(args.scenario, store)
        counts = write_scenario_bag(store, scenario, args.out, namespace=args.namespace,
                                    start_ns=int(round(args.start_stamp * NS_PER_S)),
                                    lead_s=args.lead, tail_s=args.tail, seed=args.seed,
                                    raw=not args.no_raw)
    except (StoreConfigError, ScenarioError, BagError) as exc:
        print(f'scenario_to_bag: error: {exc}', file=sys.stderr)
        return 1
    for topic, n in sorted(counts.items()):
        print(f'{topic}: {n}')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
