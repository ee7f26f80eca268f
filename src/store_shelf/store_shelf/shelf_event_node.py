"""Shelf event node of one gondola: plate weights in, shelf events with product hypotheses out.

All logic lives in :class:`store_shelf.pipeline.GondolaPipeline` (step detectors, merger, ranker,
inventory, release rule and watermark), the object every offline path runs too; this module
declares its parameters (:data:`store_shelf.pipeline.PARAMETERS`, the same table the offline
paths check config/params/store.yaml against), wires topics and logs.

Subscribes to each of ``weight_topics`` (PlateWeights, RELIABLE_STREAM_QOS) and publishes
``shelf_events`` (ShelfEvent, EVENT_QOS; relative, remapped to ``/store/shelf_events``) and the
gondola's watermark on ``shelf_watermarks`` (source ``shelf/<gondola_id>``; see
``merge.shelf_watermark_ns``), so a restarted cart decides events in stamp order. Only the
samples' sensor stamps drive decisions, never a clock, so a bag replay gives the same events.
"""
from __future__ import annotations

import os

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.parameter import Parameter
from store_common.description import load_store, StoreConfigError
from store_common.ros import declare, EVENT_QOS, RELIABLE_STREAM_QOS, run_node, stamp_ns
from store_common.ros_watermarks import WatermarkPublisher
from store_interfaces.msg import PlateWeights, ProductHypothesis, ShelfEvent

from store_shelf.convert import shelf_event_msg
from store_shelf.event import ShelfEventData
from store_shelf.hypotheses import load_weight_overlay
from store_shelf.pipeline import GondolaPipeline, PARAMETERS, PipelineParams


class StartupError(RuntimeError):
    """The node cannot start (bad store file, unknown gondola): logged, exit code 1."""


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
        weight_models_file = declare(
            self, 'weight_models_file', '',
            'YAML overlay of per-SKU unit weights learned from reviews (store_review '
            'review_learn); "" or a missing file: the catalog weights.')
        values = {name: declare(self, name, default, desc, lo=lo, hi=hi)
                  for name, (default, desc, lo, hi) in PARAMETERS.items()}
        try:
            params = PipelineParams.from_values(values)
            store = load_store(store_file)
            if not gondola_id:
                if len(store.gondolas) != 1:
                    raise StartupError(
                        f'parameter gondola_id is required: {store_file} has gondolas '
                        f'{", ".join(g.id for g in store.gondolas)}')
                gondola_id = store.gondolas[0].id
            store.gondola(gondola_id)
            if not topics:
                topics = [f'/store/{c.id}/plate_weights'
                          for c in store.controllers_of_gondola(gondola_id)]
            overlay = None
            if weight_models_file and os.path.isfile(weight_models_file):
                overlay = load_weight_overlay(weight_models_file)
                self.get_logger().info(f'weight models of {len(overlay)} SKUs from '
                                       f'{weight_models_file}')
            self.pipeline = GondolaPipeline(store, gondola_id, params, overlay)
        except (StoreConfigError, KeyError, ValueError) as exc:
            raise StartupError(str(exc)) from None

        self.gondola_id = gondola_id
        self.frame_id = store.frame_id
        self.pub = self.create_publisher(ShelfEvent, 'shelf_events', EVENT_QOS)
        self.watermark = WatermarkPublisher(self, 'shelf_watermarks', f'shelf/{gondola_id}')
        self.subs = [self.create_subscription(PlateWeights, t,
                                              lambda msg, t=t: self._on_weights(t, msg),
                                              RELIABLE_STREAM_QOS)
                     for t in topics]
        self.get_logger().info(
            f'gondola {gondola_id}: plates {", ".join(self.pipeline.plate_ids)} from '
            f'{", ".join(topics)}; min step {params.detector.min_step_grams:g} g, settle window '
            f'{params.detector.settle_window_s:g} s')

    # --- input ---------------------------------------------------------------------------------
    def _on_weights(self, topic: str, msg: PlateWeights) -> None:
        events = self.pipeline.on_samples(topic, ((w.plate_id, stamp_ns(w.stamp),
                                                   w.weight_grams, w.valid)
                                                  for w in msg.weights))
        for event in events:
            self._publish(event)
        watermark = self.pipeline.watermark_ns()
        if watermark is not None:
            self.watermark.publish(watermark)

    # --- output --------------------------------------------------------------------------------
    def _publish(self, event: ShelfEventData) -> None:
        self.pub.publish(shelf_event_msg(event, self.frame_id))
        self.watermark.event_published(event.event_id)
        best = event.hypotheses[0]
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
