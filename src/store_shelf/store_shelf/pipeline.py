"""One gondola's shelf pipeline (no rclpy): plate weight samples in, ranked shelf events and the
gondola's watermark out.

A :class:`GondolaPipeline` holds a step detector per plate (:mod:`store_shelf.steps`), the merger
of adjacent plates (:mod:`store_shelf.merge`), the hypothesis ranker and the plate inventory
(:mod:`store_shelf.hypotheses`) and the release rule: events are released by the sensor time
every live weight source has reached (a source whose newest stamp lags the newest of all by more
than ``source_timeout_s`` no longer holds release back), so a slower controller's partner step
can still join an event. Each released event is ranked, and the inventory follows a confident
one before the next is ranked.

The shelf event node calls :meth:`GondolaPipeline.on_samples` once per PlateWeights message and
publishes what it returns; the offline paths (store_bench.fusion_offline,
store_bench.review_offline, the benchmarks) call it once per simulated batch through
:func:`on_sample_block`. Both build their :class:`PipelineParams` from the same values:
:data:`PARAMETERS` is the one table of names, descriptions and ranges that the node declares as
ROS parameters and that :func:`load_params` checks the ``shelf_events:`` section of a
parameters file against (config/params/store.yaml by default, the file the launched graph
reads).
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from store_common.params import check_value, load_params_file, ParameterError

from store_shelf.event import ShelfEventData
from store_shelf.hypotheses import HypothesisParams, HypothesisRanker, PlateInventory
from store_shelf.merge import EventMerger, shelf_watermark_ns
from store_shelf.steps import NS_PER_S, PlateStepDetector, StepDetectorParams

NODE_NAME = 'shelf_events'      # the node's section in a parameters file

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
GONDOLA_PARAMS = {
    'source_timeout_s': ('A weight topic whose newest stamp lags the newest of all topics by '
                         'more than this no longer holds back event release (a controller '
                         'went quiet) [s].', 0.1, 600.0),
    'merge_hold_s': ('Sensor time an event is held after its last step was detected, so a '
                     'partner plate\'s step can join [s].', 0.0, 10.0),
    'merge_gap_s': ('Steps on adjacent plates merge when their activity windows overlap or are '
                    'at most this far apart [s].', 0.0, 10.0),
    'adjacent_gap_m': ('Plates whose edges are within this distance are adjacent (a product '
                       'can rest across them) [m].', 0.0, 1.0),
    'inventory_min_posterior': ('The plate inventory follows the best hypothesis when its '
                                'posterior is at least this.', 0.0, 1.0),
    'separate_grabs': ('Steps of adjacent plates at once that are each whole units of their '
                       'own plate\'s product (taken or put back) stay separate events, and '
                       'a merged group of three or more takes that two products explain is '
                       'split in two '
                       '(false: every adjacent simultaneous pair merges).', None, None),
}
# the node's wiring, not the pipeline's: allowed in the section, ignored by load_params
NODE_WIRING_PARAMS = frozenset({'store_file', 'gondola_id', 'weight_topics',
                                'weight_models_file', 'use_sim_time'})


@dataclass(frozen=True)
class PipelineParams:
    """Everything that decides a gondola's events (the node's ROS parameters but its wiring)."""

    detector: StepDetectorParams = field(default_factory=StepDetectorParams)
    hypotheses: HypothesisParams = field(default_factory=HypothesisParams)
    source_timeout_s: float = 2.0
    merge_hold_s: float = 0.6
    merge_gap_s: float = 0.3
    adjacent_gap_m: float = 0.03
    inventory_min_posterior: float = 0.8
    separate_grabs: bool = True

    def validate(self) -> PipelineParams:
        self.detector.validate()
        self.hypotheses.validate()
        for name, (_desc, lo, hi) in GONDOLA_PARAMS.items():
            check_value(name, getattr(PipelineParams, name), getattr(self, name), lo=lo, hi=hi)
        return self

    def values(self) -> dict[str, Any]:
        """Flat {parameter name: value}, the names of :data:`PARAMETERS`."""
        return {**dataclasses.asdict(self.detector), **dataclasses.asdict(self.hypotheses),
                **{name: getattr(self, name) for name in GONDOLA_PARAMS}}

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> PipelineParams:
        """From flat parameter values (the node's declared parameters, a parameters file's
        section); names left out keep their defaults, the node's wiring parameters are ignored.
        Raises :class:`ParameterError` naming an unknown parameter, a wrong type or a value out
        of range, ValueError for inconsistent values."""
        unknown = sorted(set(values) - set(PARAMETERS) - NODE_WIRING_PARAMS)
        if unknown:
            raise ParameterError(f'{", ".join(unknown)}: not {NODE_NAME} parameters (known: '
                                 f'{", ".join(sorted(PARAMETERS))})')
        v = {name: check_value(name, PARAMETERS[name][0], values[name], lo=PARAMETERS[name][2],
                               hi=PARAMETERS[name][3])
             for name in PARAMETERS if name in values}
        return cls(detector=StepDetectorParams(**{k: v[k] for k in DETECTOR_PARAMS if k in v}),
                   hypotheses=HypothesisParams(**{k: v[k] for k in HYPOTHESIS_PARAMS if k in v}),
                   **{k: v[k] for k in GONDOLA_PARAMS if k in v}).validate()


def _table() -> dict[str, tuple[Any, str, float | None, float | None]]:
    defaults = PipelineParams().values()
    return {name: (defaults[name], desc, lo, hi)
            for table in (DETECTOR_PARAMS, HYPOTHESIS_PARAMS, GONDOLA_PARAMS)
            for name, (desc, lo, hi) in table.items()}


# name -> (default, description, lo, hi): the node declares exactly these
PARAMETERS = _table()


def default_params_file() -> pathlib.Path:
    """config/params/store.yaml of the workspace ($STORE_WS, set by tools/env.sh), else the one
    installed with store_bringup: the file the launched graph reads."""
    ws = os.environ.get('STORE_WS')
    if ws and os.path.isfile(os.path.join(ws, 'config', 'params', 'store.yaml')):
        return pathlib.Path(ws, 'config', 'params', 'store.yaml')
    from ament_index_python.packages import get_package_share_directory
    return pathlib.Path(get_package_share_directory('store_bringup'), 'config', 'params',
                        'store.yaml')


def load_params(path: str | pathlib.Path | None = None) -> PipelineParams:
    """The pipeline parameters of a parameters file's ``shelf_events:`` section (the launched
    node's values), defaults for those it leaves out. Raises StoreConfigError when the file is
    unreadable, :class:`ParameterError` / ValueError when a value is not usable."""
    per_node = load_params_file(path if path is not None else default_params_file())
    return PipelineParams.from_values(per_node.get(NODE_NAME, {}))


class GondolaPipeline:
    """Weight samples of one gondola's plates -> ranked :class:`ShelfEventData`."""

    def __init__(self, store, gondola_id: str, params: PipelineParams | None = None,
                 overlay: dict | None = None):
        """``store``: the store description; ``overlay``: learned unit weights (see
        ``hypotheses.load_weight_overlay``). Raises KeyError for an unknown gondola."""
        self.params = p = (params or PipelineParams()).validate()
        self.gondola_id = gondola_id
        self.plate_ids = tuple(pl.id for pl in store.plates_of_gondola(gondola_id))
        self.detectors = {pid: PlateStepDetector(pid, p.detector) for pid in self.plate_ids}
        self.ranker = HypothesisRanker.from_store(store, p.hypotheses, overlay)
        self.inventory = PlateInventory.from_store(store)
        self.merger = EventMerger(
            {pid: store.adjacent_plates(pid, p.adjacent_gap_m) for pid in self.plate_ids},
            hold_s=p.merge_hold_s, gap_s=p.merge_gap_s,
            separate=((lambda s: self.ranker.separate_grabs(s, self.inventory))
                      if p.separate_grabs else None),
            split=((lambda s: self.ranker.split_grabs(s, self.inventory))
                   if p.separate_grabs else None),
            gondola_id=gondola_id)
        self.source_timeout_ns = int(p.source_timeout_s * NS_PER_S)
        self.latest_ns: dict[str, int] = {}     # newest sample stamp per source
        self.released_ns: int | None = None     # sensor time the merger was advanced to
        self.foreign_samples = 0                # samples of plates not on this gondola

    @classmethod
    def for_store(cls, store, params: PipelineParams | None = None,
                  overlay: dict | None = None) -> dict[str, GondolaPipeline]:
        """One pipeline per gondola of the store (what the launched graph runs)."""
        return {g.id: cls(store, g.id, params, overlay) for g in store.gondolas}

    def on_samples(self, source: str,
                   samples: Iterable[tuple[str, int, float, bool]]) -> list[ShelfEventData]:
        """One batch of ``(plate_id, stamp_ns, weight_grams, valid)`` from weight source
        ``source`` (one controller's PlateWeights message). Returns the events this releases,
        ranked, in settled order."""
        newest = None
        for plate_id, stamp_ns, grams, valid in samples:
            newest = stamp_ns if newest is None else max(newest, stamp_ns)
            det = self.detectors.get(plate_id)
            if det is None:
                self.foreign_samples += 1
                continue
            for step in det.add(stamp_ns, grams, valid):
                self.merger.add(step)
        if newest is not None:
            self.latest_ns[source] = max(newest, self.latest_ns.get(source, newest))
        if not self.latest_ns:
            return []
        head = max(self.latest_ns.values())
        self.released_ns = min(t for t in self.latest_ns.values()
                               if t >= head - self.source_timeout_ns)
        return [self._rank(ev) for ev in self.merger.advance(self.released_ns)]

    def flush(self) -> list[ShelfEventData]:
        """Release every held event (the end of a replay)."""
        return [self._rank(ev) for ev in self.merger.flush()]

    def watermark_ns(self) -> int | None:
        """The gondola's promise (``merge.shelf_watermark_ns``): no event released later settles
        at or before it; None before the first sample."""
        if self.released_ns is None:
            return None
        return shelf_watermark_ns(self.released_ns, self.detectors.values(), self.merger)

    def _rank(self, ev: ShelfEventData) -> ShelfEventData:
        hyps = self.ranker.rank(ev.plate_ids, ev.delta_grams, ev.noise_grams, self.inventory)
        self.inventory.apply(ev.plate_ids, hyps, self.params.inventory_min_posterior)
        return replace(ev, hypotheses=tuple(hyps))


def on_sample_block(pipelines: Mapping[str, GondolaPipeline], plate_ids, stamps_ns, grams,
                    valid, source: str = 'sim') -> list[ShelfEventData]:
    """A block of samples of many plates (the offline paths): ``grams[k, i]`` and ``valid[k, i]``
    of plate ``plate_ids[k]`` at ``stamps_ns[i]``, delivered to each gondola's pipeline as one
    batch of its plates (sample by sample, its plates in order) from ``source``. Returns the
    events of all gondolas, in settled order."""
    row = {pid: k for k, pid in enumerate(plate_ids)}
    out: list[ShelfEventData] = []
    for pipe in pipelines.values():
        rows = [(pid, row[pid]) for pid in pipe.plate_ids if pid in row]
        out += pipe.on_samples(source, ((pid, int(t), float(grams[k, i]), bool(valid[k, i]))
                                        for i, t in enumerate(stamps_ns) for pid, k in rows))
    out.sort(key=lambda e: (e.settled_ns, e.event_id))
    return out
