"""Product/count hypotheses for a settled weight change, and the per-plate inventory (no rclpy).

For a weight decrease (a take) the candidates are the SKUs currently on the event's plates (the
planogram SKU and misplaced units the inventory tracks) with quantity 1..max_quantity, never more
than the units present. For an increase (a return) they are the plates' planogram SKUs
(``on_home_plate``, prior ``home_prior``) and every other catalog SKU (a wrong-plate return,
prior ``foreign_prior``). Each is scored with a Gaussian likelihood of the observed delta:

    expected = +-q * unit_grams
    variance = q * unit_grams_sd^2 + noise_grams^2 + (calibration_rel * |delta|)^2

plus an UNKNOWN hypothesis with a flat density ``1 / unknown_range_grams`` and prior
``unknown_prior``. Quantities are weighted by ``quantity_decay ** (q - 1)``. Posteriors are
normalised over every candidate; the top ``top_k`` are returned, renormalised to sum to 1.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from store_interfaces.msg import ProductHypothesis

from store_shelf.event import HypothesisData

ACTION_TAKE = ProductHypothesis.ACTION_TAKE
ACTION_RETURN = ProductHypothesis.ACTION_RETURN
UNKNOWN_SKU = ''


@dataclass(frozen=True)
class HypothesisParams:
    max_quantity: int = 3             # most units one grab can take or return [units]
    top_k: int = 8                    # hypotheses returned per event
    home_prior: float = 1.0           # prior weight of the plate's planogram SKU
    misplaced_prior: float = 0.5      # prior weight of a misplaced SKU present on the plate
    foreign_prior: float = 0.01       # prior weight of each other SKU for a return
    quantity_decay: float = 0.6       # prior factor per extra unit
    unknown_prior: float = 0.05       # prior weight of the UNKNOWN hypothesis
    unknown_range_grams: float = 3000.0  # UNKNOWN density is flat over this range [g]
    calibration_rel: float = 0.004    # relative calibration error of the plates
    min_noise_grams: float = 0.2      # noise used at least in the likelihood [g]

    def validate(self) -> 'HypothesisParams':
        if self.max_quantity < 1 or self.top_k < 1:
            raise ValueError('max_quantity and top_k must be >= 1')
        if min(self.home_prior, self.misplaced_prior, self.foreign_prior,
               self.unknown_prior) <= 0:
            raise ValueError('priors must be > 0')
        if not 0 < self.quantity_decay <= 1:
            raise ValueError('quantity_decay must be in (0, 1]')
        if self.unknown_range_grams <= 0 or self.calibration_rel < 0 or self.min_noise_grams <= 0:
            raise ValueError('unknown_range_grams and min_noise_grams must be > 0, '
                             'calibration_rel >= 0')
        return self


class PlateInventory:
    """Units per SKU per plate, from the planogram's initial units, updated by confident events."""

    def __init__(self, planogram: dict, home_sku: dict[str, str] | None = None):
        """``planogram``: plate id -> entry with ``sku`` and ``initial_units`` (store model)."""
        self.units: dict[str, dict[str, int]] = defaultdict(dict)
        self.home_sku: dict[str, str] = dict(home_sku or {})
        for plate_id, entry in planogram.items():
            self.units[plate_id][entry.sku] = int(entry.initial_units)
            self.home_sku.setdefault(plate_id, entry.sku)

    @classmethod
    def from_store(cls, store) -> 'PlateInventory':
        return cls(store.planogram)

    def on_plates(self, plate_ids: Iterable[str]) -> dict[str, int]:
        """SKU -> units present over the plates (only SKUs with units)."""
        total: dict[str, int] = defaultdict(int)
        for p in plate_ids:
            for sku, n in self.units.get(p, {}).items():
                if n > 0:
                    total[sku] += n
        return dict(total)

    def apply(self, plate_ids: Sequence[str], hypotheses: Sequence[HypothesisData],
              min_posterior: float = 0.8) -> bool:
        """Apply the best hypothesis if it is a product with posterior >= min_posterior.

        A take removes units from the event's plates that hold the SKU, first plate first; a
        return puts them on the first plate (the one with the largest change). Returns whether
        the inventory changed.
        """
        if not hypotheses or not plate_ids:
            return False
        best = hypotheses[0]
        if best.is_unknown or best.posterior < min_posterior:
            return False
        if best.action == ACTION_RETURN:
            plate = self.units[plate_ids[0]]
            plate[best.sku] = plate.get(best.sku, 0) + best.quantity
            return True
        left = best.quantity
        for p in plate_ids:
            have = self.units.get(p, {}).get(best.sku, 0)
            n = min(have, left)
            if n > 0:
                self.units[p][best.sku] = have - n
                left -= n
        return left < best.quantity


class HypothesisRanker:
    """Ranks product/count explanations of a shelf event."""

    def __init__(self, catalog, home_sku: dict[str, str],
                 params: HypothesisParams | None = None):
        """``catalog``: mapping-like sku -> product with unit_grams and unit_grams_sd;
        ``home_sku``: plate id -> planogram SKU."""
        self.products = dict(catalog.products) if hasattr(catalog, 'products') else dict(catalog)
        self.home_sku = dict(home_sku)
        self.params = (params or HypothesisParams()).validate()

    @classmethod
    def from_store(cls, store, params: HypothesisParams | None = None,
                   overlay: dict | None = None) -> 'HypothesisRanker':
        """``overlay``: {sku: {unit_grams, unit_grams_sd}} learned from reviews (see
        :func:`load_weight_overlay`); it replaces the catalog's weights of those SKUs."""
        ranker = cls(store.catalog, {p: e.sku for p, e in store.planogram.items()}, params)
        for sku, model in (overlay or {}).items():
            if sku in ranker.products:
                ranker.products[sku] = replace(
                    ranker.products[sku], unit_grams=float(model['unit_grams']),
                    unit_grams_sd=float(model.get('unit_grams_sd',
                                                  ranker.products[sku].unit_grams_sd)))
        return ranker

    def rank(self, plate_ids: Sequence[str], delta_grams: float, noise_grams: float,
             inventory: PlateInventory | None = None) -> list[HypothesisData]:
        """Top-k hypotheses for a change of ``delta_grams`` on ``plate_ids``, best first."""
        p = self.params
        homes = {self.home_sku[pid] for pid in plate_ids if pid in self.home_sku}
        noise2 = max(noise_grams, p.min_noise_grams) ** 2
        cal2 = (p.calibration_rel * abs(delta_grams)) ** 2
        # (log score, sku, action, q, expected, on_home)
        scored: list[tuple[float, str, int, int, float, bool]] = []

        def add(sku: str, action: int, q: int, prior: float, on_home: bool) -> None:
            prod = self.products[sku]
            sign = -1.0 if action == ACTION_TAKE else 1.0
            expected = sign * q * prod.unit_grams
            var = q * prod.unit_grams_sd ** 2 + noise2 + cal2
            loglik = -0.5 * (delta_grams - expected) ** 2 / var - 0.5 * math.log(2 * math.pi * var)
            logprior = math.log(prior) + (q - 1) * math.log(p.quantity_decay)
            scored.append((loglik + logprior, sku, action, q, expected, on_home))

        if delta_grams < 0:
            if inventory is not None:
                present = inventory.on_plates(plate_ids)
            else:
                present = {sku: p.max_quantity for sku in homes}
            for sku, units in sorted(present.items()):
                if sku not in self.products:
                    continue
                on_home = sku in homes
                prior = p.home_prior if on_home else p.misplaced_prior
                for q in range(1, min(p.max_quantity, units) + 1):
                    add(sku, ACTION_TAKE, q, prior, on_home)
        else:
            for sku in sorted(self.products):
                on_home = sku in homes
                prior = p.home_prior if on_home else p.foreign_prior
                for q in range(1, p.max_quantity + 1):
                    add(sku, ACTION_RETURN, q, prior, on_home)
        action = ACTION_TAKE if delta_grams < 0 else ACTION_RETURN
        scored.append((math.log(p.unknown_prior) - math.log(p.unknown_range_grams),
                       UNKNOWN_SKU, action, 0, 0.0, False))
        top = max(s[0] for s in scored)
        weights = [math.exp(s[0] - top) for s in scored]
        total = sum(weights)
        order = sorted(range(len(scored)),
                       key=lambda i: (-weights[i], scored[i][1], scored[i][3]))[:p.top_k]
        kept = sum(weights[i] for i in order) / total
        return [HypothesisData(sku=scored[i][1], action=scored[i][2], quantity=scored[i][3],
                               posterior=weights[i] / total / kept,
                               expected_grams=scored[i][4], on_home_plate=scored[i][5])
                for i in order]

    def best_of_steps(self, steps, inventory: PlateInventory | None = None) -> HypothesisData:
        """The best hypothesis for ``WeightStep`` s taken together: their plates, summed change
        and combined noise (what one merged event of them would be ranked on)."""
        return self.rank(tuple(s.plate_id for s in steps), sum(s.delta_grams for s in steps),
                         math.sqrt(sum(s.noise_grams ** 2 for s in steps)), inventory)[0]

    def separate_grabs(self, steps, inventory: PlateInventory | None = None,
                       min_posterior: float = 0.9) -> bool:
        """``steps`` (``WeightStep`` s of adjacent plates at about one time) are separate grabs,
        not one unit resting across the plates: each is a take that whole units of a product on
        its own plate explain (best hypothesis of that plate alone, >= ``min_posterior``),
        and their sum is not one unit of a product on these plates. The second test keeps a
        straddled unit whose shares each pass for a light or variable product (a banana across
        a muesli-bar plate) one event.

        Returns the same way, but stricter, since a return can be any product anywhere: each
        plate's best hypothesis must also be its own planogram product (``on_home_plate``),
        and the sum must not be one unit of any product in the catalogue. Two shoppers putting
        back a water and three sparkling waters on neighbouring plates 0.6 s apart stay two
        returns, not one "2 x MILK-1L on the wrong plate" (live level-3 seed 23409)."""
        if len(steps) < 2 or any(s.minor for s in steps):
            return False
        signs = {s.delta_grams > 0 for s in steps}
        if len(signs) != 1:
            return False
        returns = signs == {True}
        for s in steps:
            top = self.best_of_steps([s], inventory)
            if top.is_unknown or top.posterior < min_posterior:
                return False
            if returns and not top.on_home_plate:
                return False
        total = self.best_of_steps(steps, inventory)
        return total.is_unknown or total.quantity != 1

    def split_grabs(self, steps, inventory: PlateInventory | None = None,
                    min_posterior: float = 0.9) -> list[list] | None:
        """Two parts of a merged group of takes (``WeightStep`` s of three or more adjacent
        plates) that are two grabs at about one time, or None. A take merges with the group
        whose plates are adjacent while its partner plate's step has not come yet (a can taken
        from one plate while a neighbour's product straddling two plates is taken 0.7 s later:
        the straddler's first share joins the can). The split is the two-part partition whose
        parts each are a take of one product (best hypothesis of the part's plates and summed
        change, >= ``min_posterior``), most probable first, when the whole group is not
        (unknown, or below ``min_posterior``). Returns are never split: a return can be any
        product anywhere."""
        steps = list(steps)
        if len(steps) < 3 or any(s.minor or s.delta_grams >= 0 for s in steps):
            return None
        whole = self.best_of_steps(steps, inventory)
        if not whole.is_unknown and whole.posterior >= min_posterior:
            return None
        best, best_p = None, 0.0
        rest = steps[1:]
        for mask in range(2 ** len(rest) - 1):      # steps[0] in part a; part b never empty
            a = [steps[0]] + [s for k, s in enumerate(rest) if mask >> k & 1]
            b = [s for k, s in enumerate(rest) if not mask >> k & 1]
            ta, tb = self.best_of_steps(a, inventory), self.best_of_steps(b, inventory)
            if ta.is_unknown or tb.is_unknown:
                continue
            p = ta.posterior * tb.posterior
            if ta.posterior >= min_posterior and tb.posterior >= min_posterior and p > best_p:
                best, best_p = [a, b], p
        return best


def load_weight_overlay(path: str) -> dict:
    """{sku: {unit_grams, unit_grams_sd}} from a weight models file (``weight_models:``
    mapping, written by store_review's ``review_learn``). Raises ValueError when unreadable."""
    import yaml
    try:
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f'{path}: cannot read weight models: {exc}') from None
    models = doc.get('weight_models', {}) if isinstance(doc, dict) else None
    if not isinstance(models, dict):
        raise ValueError(f'{path}: expected a "weight_models:" mapping')
    out = {}
    for sku, m in models.items():
        try:
            grams, sd = float(m['unit_grams']), float(m.get('unit_grams_sd', 0.0))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f'{path}: weight_models.{sku}: needs unit_grams') from None
        if not grams > 0 or sd < 0:
            raise ValueError(f'{path}: weight_models.{sku}: unit_grams must be > 0, sd >= 0')
        out[str(sku)] = {'unit_grams': grams, 'unit_grams_sd': sd}
    return out
