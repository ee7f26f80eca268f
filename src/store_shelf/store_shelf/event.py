"""The shelf event: one plain type from the gondola's merger to the cart and the fusion (no rclpy).

A :class:`ShelfEventData` is a settled weight change on one plate or on adjacent plates that
changed together; the merger (:mod:`store_shelf.merge`) makes it with no hypotheses, the ranker
(:mod:`store_shelf.hypotheses`, run by :class:`store_shelf.pipeline.GondolaPipeline`) adds its
ranked :class:`HypothesisData`, the fusion may replace them with fused ones, the cart decides on
it. Every stage reads and writes this one type; :mod:`store_shelf.convert` maps it to and from
the ``ShelfEvent`` / ``ProductHypothesis`` messages, :meth:`ShelfEventData.to_dict` /
:meth:`ShelfEventData.from_dict` to and from JSON (the cart database, review examples).

The probability of a hypothesis given the evidence is called ``posterior`` everywhere (code,
messages, JSON). Stamps are integer nanoseconds of sensor time.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# keys a posterior had in JSON written before it had one name (cart databases, example files)
_LEGACY_POSTERIOR_KEYS = ('likelihood', 'probability')


@dataclass(frozen=True)
class HypothesisData:
    """One explanation of an event: ``quantity`` units of ``sku`` taken or returned."""

    sku: str                     # "" for the UNKNOWN hypothesis (no product explains the change)
    action: int                  # ProductHypothesis.ACTION_TAKE or ACTION_RETURN
    quantity: int                # >= 1 for a product, 0 for UNKNOWN [units]
    posterior: float             # probability among the event's hypotheses (they sum to 1), 0..1
    expected_grams: float = 0.0  # signed change this hypothesis predicts (negative: take) [g]
    on_home_plate: bool = True   # sku's planogram plate is one of the event's plates

    @property
    def is_unknown(self) -> bool:
        return self.sku == '' or self.quantity < 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HypothesisData:
        """Raises KeyError / TypeError / ValueError on a malformed mapping."""
        d = dict(d)
        if 'posterior' not in d:
            for key in _LEGACY_POSTERIOR_KEYS:
                if key in d:
                    d['posterior'] = d.pop(key)
                    break
        return cls(sku=str(d['sku']), action=int(d['action']), quantity=int(d['quantity']),
                   posterior=float(d['posterior']),
                   expected_grams=float(d.get('expected_grams', 0.0)),
                   on_home_plate=bool(d.get('on_home_plate', True)))


@dataclass(frozen=True)
class ShelfEventData:
    """A settled weight change of one gondola, with its ranked hypotheses (best first)."""

    event_id: str                    # "<first plate id>@<start stamp in ns>"; replays reproduce it
    gondola_id: str
    plate_ids: tuple[str, ...]       # first is the plate with the largest |delta|
    delta_grams: float               # sum over the plates [g]; negative = weight removed
    start_ns: int                    # sensor time the plate left its stable state (hand arrived)
    settled_ns: int                  # sensor time the plate was stable again (the event's stamp)
    hypotheses: tuple[HypothesisData, ...] = ()   # () until ranked
    plate_delta_grams: tuple[float, ...] = ()     # per plate, same order as plate_ids [g]
    noise_grams: float = 0.0         # standard deviation of the total delta estimate [g]
    # the merged store_shelf.steps.WeightStep s (detection only; not compared, not serialised)
    steps: tuple = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {'event_id': self.event_id, 'gondola_id': self.gondola_id,
                'plate_ids': list(self.plate_ids), 'delta_grams': self.delta_grams,
                'start_ns': self.start_ns, 'settled_ns': self.settled_ns,
                'hypotheses': [h.to_dict() for h in self.hypotheses],
                'plate_delta_grams': list(self.plate_delta_grams),
                'noise_grams': self.noise_grams}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShelfEventData:
        """Raises KeyError / TypeError / ValueError on a malformed mapping."""
        return cls(event_id=str(d['event_id']), gondola_id=str(d['gondola_id']),
                   plate_ids=tuple(str(p) for p in d['plate_ids']),
                   delta_grams=float(d['delta_grams']), start_ns=int(d['start_ns']),
                   settled_ns=int(d['settled_ns']),
                   hypotheses=tuple(HypothesisData.from_dict(h)
                                    for h in d.get('hypotheses', ())),
                   plate_delta_grams=tuple(float(x) for x in d.get('plate_delta_grams', ())),
                   noise_grams=float(d.get('noise_grams', 0.0)))
