"""Shelf event node of one gondola: plate weights in, shelf events with product hypotheses out.

All logic lives in :mod:`store_shelf.steps` (settled steps per plate), :mod:`store_shelf.merge`
(adjacent plates that changed together) and :mod:`store_shelf.hypotheses` (product/count
explanations, inventory); this module wires parameters, topics and logging.

Subscribes to each of ``weight_topics`` (PlateWeights, RELIABLE_STREAM_QOS) and publishes
``shelf_events`` (ShelfEvent, EVENT_QOS; relative, remapped to ``/store/shelf_events``) and the
gondola's watermark on ``shelf_watermarks`` (source ``shelf/<gondola_id>``; see
``merge.shelf_watermark_ns``), so a restarted cart decides events in stamp order. Only the
samples' sensor stamps drive decisions, never a clock, so a bag replay gives the same events.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import replace

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.parameter import Parameter
from store_common.description import load_store, StoreConfigError
from store_common.ros import declare, EVENT_QOS, RELIABLE_STREAM_QOS, run_node, stamp_ns
from store_common.ros_watermarks import WatermarkPublisher
from store_interfaces.msg import PlateWeights, ProductHypothesis, ShelfEvent

from store_shelf.convert import shelf_event_msg
from store_shelf.event import ShelfEventData

from store_shelf.hypotheses import (HypothesisParams, HypothesisRanker, load_weight_overlay,
                                    PlateInventory)
from store_shelf.merge import EventMerger, shelf_watermark_ns
from store_shelf.steps import NS_PER_S, PlateStepDetector, StepDetectorParams

# parameter name -> (description, lo, hi); defaults come from the dataclasses
DETECTOR_PARAMS = {
    'settle_window_s': ('Window that must be stable to declare a plate settled [s].', 0.1, 5.0),
    'min_settle_samples': ('Samples the stable window must hold at least.', 2, 1000),
    'band_sigma': ('Half-width of the baseline band in noise standard deviations; a sample '
                   'outside it starts activity.', 1.0, 100.0),
    'band_min_grams': ('Half-width of the baseline band at least [g].', 0.0, 1000.0),
    'settle_std_sigma': ('Stable window: standard deviation under this many noise standard '
                         'deviations.', 0.5, 100.0),
    'settle_range_sigma': ('Stable window: max - min under this many noise standard '
                           'deviations.', 1.0, 200.0),
    'settle_min_range_grams': ('Stable window: range threshold at least [g].', 0.0, 1000.0),
    'settle_relax_after_s': ('Settle thresholds grow linearly once a plate has been active '
                             'this long (a plate that never settles still reports) [s].',
                             0.5, 3600.0),
    'min_step_grams': ('Settled changes smaller than this are not events [g].', 0.5, 10000.0),
    'min_partner_step_grams': ('Smaller settled changes count only as the partner of an '
                               'adjacent plate\'s step (straddled product) [g].', 0.0, 10000.0),
    'initial_noise_grams': ('Plate noise standard deviation assumed until estimated [g].',
                            0.01, 100.0),
    'noise_floor_grams': ('Noise estimate lower bound [g].', 0.01, 100.0),
    'noise_ceiling_grams': ('Noise estimate upper bound [g].', 0.01, 1000.0),
    'noise_tau_s': ('Time constant of the noise estimate [s].', 0.1, 36000.0),
    'baseline_tau_s': ('Time constant of the baseline tracker while stable (absorbs drift) '
                       '[s].', 0.1, 3600.0),
    'max_gap_s': ('A gap in valid samples longer than this restarts the stable window [s].',
                  0.05, 60.0),
}
HYPOTHESIS_PARAMS = {
    'max_quantity': ('Most units one grab can take or return.', 1, 50),
    'top_k': ('Hypotheses published per event.', 1, 100),
    'home_prior': ('Prior weight of a plate\'s planogram SKU.', 1e-9, 1e9),
    'misplaced_prior': ('Prior weight of a misplaced SKU the inventory has on the plate.',
                        1e-9, 1e9),
    'foreign_prior': ('Prior weight of each other catalog SKU for a return (wrong plate).',
                      1e-9, 1e9),
    'quantity_decay': ('Prior factor per extra unit (smaller grabs slightly preferred).',
                       1e-6, 1.0),
    'unknown_prior': ('Prior weight of the UNKNOWN hypothesis.', 1e-12, 1e9),
    'unknown_range_grams': ('The UNKNOWN hypothesis has a flat density over this range [g].',
                            1.0, 1e6),
    'calibration_rel': ('Relative calibration error of the plates (0.004 = 0.4 %).', 0.0, 0.5),
    'min_noise_grams': ('Weight noise used at least in the likelihood [g].', 1e-3, 100.0),
}


class StartupError(RuntimeError):
    """The node cannot start (bad store file, unknown gondola): logged, exit code 1."""


def _declare_dataclass(node: Node, cls, table: dict) -> dict:
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    return {name: declare(node, name, defaults[name], desc, lo=lo, hi=hi)
            for name, (desc, lo, hi) in table.items()}


class ShelfEventNode(Node):

    def __init__(self):
        super().__init__('shelf_events')
        store_file = declare(self, 'store_file', '',
                             'Store description YAML (config/stores/<store>.yaml).')
        gondola_id = declare(self, 'gondola_id', '',
                             'Gondola id from the store description; "" is allowed when the '
                             'store has exactly one gondola.')
        topics = self.declare_parameter(
            'weight_topics', Parameter.Type.STRING_ARRAY, ParameterDescriptor(
                type=ParameterType.PARAMETER_STRING_ARRAY,
                description='Absolute PlateWeights topics to read; unset or empty reads '
                            '/store/<controller_id>/plate_weights of each controller of the '
                            'gondola.')).value
        source_timeout_s = declare(
            self, 'source_timeout_s', 2.0,
            'A weight topic whose newest stamp lags the newest of all topics by more than this '
            'no longer holds back event release (a controller went quiet) [s].', lo=0.1,
            hi=600.0)
        merge_hold_s = declare(self, 'merge_hold_s', 0.6,
                               'Sensor time an event is held after its last step was detected, '
                               'so a partner plate\'s step can join [s].', lo=0.0, hi=10.0)
        merge_gap_s = declare(self, 'merge_gap_s', 0.3,
                              'Steps on adjacent plates merge when their activity windows '
                              'overlap or are at most this far apart [s].', lo=0.0, hi=10.0)
        adjacent_gap_m = declare(self, 'adjacent_gap_m', 0.03,
                                 'Plates whose edges are within this distance are adjacent '
                                 '(a product can rest across them) [m].', lo=0.0, hi=1.0)
        self.inventory_min_probability = declare(
            self, 'inventory_min_probability', 0.8,
            'The plate inventory follows the best hypothesis when its posterior is at least '
            'this.', lo=0.0, hi=1.0)
        weight_models_file = declare(
            self, 'weight_models_file', '',
            'YAML overlay of per-SKU unit weights learned from reviews (store_review '
            'review_learn); "" or a missing file: the catalog weights.')
        det_params = StepDetectorParams(**_declare_dataclass(
            self, StepDetectorParams, DETECTOR_PARAMS))
        hyp_params = HypothesisParams(**_declare_dataclass(
            self, HypothesisParams, HYPOTHESIS_PARAMS))
        try:
            det_params.validate()
            hyp_params.validate()
            store = load_store(store_file)
            if not gondola_id:
                if len(store.gondolas) != 1:
                    raise StartupError(
                        f'parameter gondola_id is required: {store_file} has gondolas '
                        f'{", ".join(g.id for g in store.gondolas)}')
                gondola_id = store.gondolas[0].id
            plates = store.plates_of_gondola(gondola_id)
            if not topics:
                topics = [f'/store/{c.id}/plate_weights'
                          for c in store.controllers_of_gondola(gondola_id)]
        except (StoreConfigError, KeyError, ValueError) as exc:
            raise StartupError(str(exc)) from None

        self.gondola_id = gondola_id
        self.frame_id = store.frame_id
        self.detectors = {p.id: PlateStepDetector(p.id, det_params) for p in plates}
        adjacency = {p.id: store.adjacent_plates(p.id, adjacent_gap_m) for p in plates}
        overlay = None
        if weight_models_file and os.path.isfile(weight_models_file):
            try:
                overlay = load_weight_overlay(weight_models_file)
            except ValueError as exc:
                raise StartupError(str(exc)) from None
            self.get_logger().info(f'weight models of {len(overlay)} SKUs from '
                                   f'{weight_models_file}')
        self.ranker = HypothesisRanker.from_store(store, hyp_params, overlay)
        self.inventory = PlateInventory.from_store(store)
        self.merger = EventMerger(adjacency, hold_s=merge_hold_s, gap_s=merge_gap_s,
                                  separate=lambda s: self.ranker.separate_grabs(
                                      s, self.inventory), gondola_id=gondola_id)
        self.source_timeout_ns = int(source_timeout_s * NS_PER_S)
        self.latest_ns: dict[str, int] = {}
        self.foreign_samples = 0

        self.pub = self.create_publisher(ShelfEvent, 'shelf_events', EVENT_QOS)
        self.watermark = WatermarkPublisher(self, 'shelf_watermarks', f'shelf/{gondola_id}')
        self.subs = [self.create_subscription(PlateWeights, t,
                                              lambda msg, t=t: self._on_weights(t, msg),
                                              RELIABLE_STREAM_QOS)
                     for t in topics]
        self.get_logger().info(
            f'gondola {gondola_id}: plates {", ".join(self.detectors)} from '
            f'{", ".join(topics)}; min step {det_params.min_step_grams:g} g, settle window '
            f'{det_params.settle_window_s:g} s')

    # --- input ---------------------------------------------------------------------------------
    def _on_weights(self, topic: str, msg: PlateWeights) -> None:
        newest = None
        for w in msg.weights:
            det = self.detectors.get(w.plate_id)
            t_ns = stamp_ns(w.stamp)
            newest = t_ns if newest is None else max(newest, t_ns)
            if det is None:
                self.foreign_samples += 1
                continue
            for step in det.add(t_ns, w.weight_grams, w.valid):
                self.merger.add(step)
        if newest is not None:
            self.latest_ns[topic] = max(newest, self.latest_ns.get(topic, newest))
        if not self.latest_ns:
            return
        # release by the sensor time every live source has reached (a watermark), so an event
        # is never released before a slower controller's partner step could arrive
        head = max(self.latest_ns.values())
        watermark = min(t for t in self.latest_ns.values() if t >= head - self.source_timeout_ns)
        for event in self.merger.advance(watermark):
            self._publish(event)
        self.watermark.publish(shelf_watermark_ns(watermark, self.detectors.values(),
                                                  self.merger))

    # --- output --------------------------------------------------------------------------------
    def _publish(self, event: ShelfEventData) -> None:
        hyps = self.ranker.rank(event.plate_ids, event.delta_grams, event.noise_grams,
                                self.inventory)
        event = replace(event, hypotheses=tuple(hyps))
        self.pub.publish(shelf_event_msg(event, self.frame_id))
        self.watermark.event_published(event.event_id)
        self.inventory.apply(event.plate_ids, hyps, self.inventory_min_probability)
        best = hyps[0]
        what = ('UNKNOWN' if best.is_unknown else
                f'{"take" if best.action == ProductHypothesis.ACTION_TAKE else "return"} '
                f'{best.quantity} x {best.sku}{"" if best.on_home_plate else " (wrong plate)"}')
        plates = ', '.join(f'{p} {d:+.1f} g' for p, d in zip(event.plate_ids,
                                                             event.plate_delta_grams))
        self.get_logger().info(
            f'event {event.event_id}: {plates}; delta {event.delta_grams:+.1f} g '
            f'(noise {event.noise_grams:.2f} g) -> {what} p={best.posterior:.2f}')


def main(args=None):
    return run_node('shelf_events', ShelfEventNode, (StartupError,), args=args)


if __name__ == '__main__':
    raise SystemExit(main())
