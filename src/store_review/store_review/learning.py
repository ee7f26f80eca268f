"""Learning from reviews: labelled examples, per-SKU weight models, threshold re-tuning (no rclpy).

Labelled example
    Every decision becomes one JSON record: the event's plates and deltas, the shelf node's
    hypotheses with their posteriors, the candidates offered, the reviewer's answer, and two
    labels derived from them: ``product`` (sku, action, quantity; None for "no change") and
    ``best_correct`` (was the machine's best product hypothesis the answer?).

Weight models (per SKU)
    A normal-inverse-gamma posterior over a SKU's unit weight (mean and variance), starting
    from the catalog (``unit_grams``, ``unit_grams_sd``) with ``prior_strength`` pseudo-units,
    updated with ``|delta_grams| / quantity`` of every example in which the reviewer confirmed
    that SKU. Observations further than ``gate_sd`` prior standard deviations (plus
    ``gate_grams``) from the prior mean are ignored (a wrong answer must not drag the model).
    Written as a YAML overlay that ``HypothesisRanker.from_store(..., overlay=...)`` and the
    shelf event node's ``weight_models_file`` read.

Thresholds
    The cart applies the best hypothesis unasked when its posterior >= ``min_confidence`` and
    leads the second by >= ``min_margin``. The tuner calibrates the posteriors on the labelled
    examples (per posterior bin, a log-odds shift with a prior that trusts the posterior itself,
    or a given prior such as a Platt scaling of all labels, with ``prior_strength``
    pseudo-examples), then picks, on a grid, the thresholds that keep
    the estimated accuracy of the auto-decided events >= ``target_accuracy`` with the fewest
    events sent to review. With a ``credibility`` (``CREDIBILITY`` in the learning commands),
    "estimated" is a lower bound rather than the mean: each bin's accuracy is a Beta posterior
    (its labels plus the prior's pseudo-examples), and the bars must reach the target in that
    share of draws from it, so a bin known from a dozen labels cannot carry the bar down on
    its mean alone. Written as YAML for the cart node's ``thresholds_file``.
"""
from __future__ import annotations

import math
import pathlib
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from store_interfaces.msg import ProductHypothesis
from store_cart import thresholds as thresholds_file
from store_cart.engine import decision_features
from store_fusion.calibration import fit_platt, Platt
from store_shelf.event import HypothesisData
import yaml

ACTION_TAKE = ProductHypothesis.ACTION_TAKE
ACTION_RETURN = ProductHypothesis.ACTION_RETURN


# --- labelled examples ------------------------------------------------------------------------
def _hyps_of(request, shelf_event: Mapping | None) -> list[dict]:
    if shelf_event and shelf_event.get('hypotheses'):
        hyps = [{'sku': h['sku'], 'action': int(h['action']), 'quantity': int(h['quantity']),
                 'posterior': _posterior(h)} for h in shelf_event['hypotheses']]
    else:   # from the candidates: marginal over shoppers
        acc: dict[tuple, float] = {}
        for c in request.candidates:
            key = (c.sku, int(c.action), int(c.quantity))
            acc[key] = acc.get(key, 0.0) + float(c.confidence)
        hyps = [{'sku': k[0], 'action': k[1], 'quantity': k[2], 'posterior': v}
                for k, v in acc.items()]
    hyps.sort(key=lambda h: -h['posterior'])
    return hyps


def _posterior(h: Mapping) -> float:
    """A hypothesis' posterior from its JSON (shelf events stored before the field had one name
    call it ``likelihood``)."""
    return HypothesisData.from_dict(h).posterior


def make_example(request, shelf_event: Mapping | None, decision) -> dict:
    """A labelled example from a request (ReviewRequestData), its shelf event, the decision."""
    hyps = _hyps_of(request, shelf_event)
    products = [h for h in hyps if h['sku'] and h['quantity'] > 0]
    best = products[0] if products else None
    p_best = best['posterior'] if best else 0.0
    second = next((h['posterior'] for h in hyps if h is not best), 0.0)
    product = None
    if decision.sku and decision.quantity > 0:
        product = {'sku': decision.sku, 'action': int(decision.action),
                   'quantity': int(decision.quantity)}
    if product is None:
        best_correct = best is None
    else:
        best_correct = best is not None and (best['sku'], best['action'], best['quantity']) == (
            product['sku'], product['action'], product['quantity'])
    ev = shelf_event or {}
    return {
        'request_id': request.request_id, 'event_id': request.event_id,
        'reason': int(request.reason), 'gondola_id': request.gondola_id,
        'plate_ids': list(request.plate_ids), 'delta_grams': float(request.delta_grams),
        'plate_delta_grams': list(ev.get('plate_delta_grams', ())),
        'noise_grams': float(ev.get('noise_grams', 0.0)),
        'shopper_ids': list(request.shopper_ids),
        'hypotheses': hyps, 'hypotheses_from_event': bool(shelf_event),
        'candidates': [c.to_dict() for c in request.candidates],
        'answer': {'shopper_id': decision.shopper_id, 'sku': decision.sku,
                   'action': int(decision.action), 'quantity': int(decision.quantity)},
        'product': product, 'reviewer': decision.reviewer_id, 'decided_ns': decision.stamp_ns,
        'p_best': float(p_best), 'margin': float(p_best - second), 'best_correct': best_correct,
        # 1 for a review the machine needed, the cart's fraction for a spot check
        'label_chance': float(getattr(request, 'label_chance', 1.0)),
    }


# --- per-SKU weight models --------------------------------------------------------------------
@dataclass
class WeightModel:
    """Normal-inverse-gamma posterior over one SKU's unit weight."""

    sku: str
    mu: float          # posterior mean of the unit weight [g]
    kappa: float       # pseudo-observations behind mu
    alpha: float
    beta: float
    prior_mu: float
    prior_sd: float
    n: int = 0

    @classmethod
    def prior(cls, sku: str, unit_grams: float, unit_grams_sd: float,
              strength: float = 3.0) -> 'WeightModel':
        sd = max(float(unit_grams_sd), 0.05)
        alpha = max(2.0, strength / 2.0 + 1.0)
        return cls(sku, float(unit_grams), float(strength), alpha, sd * sd * (alpha - 1.0),
                   float(unit_grams), sd)

    @property
    def sd(self) -> float:
        """Posterior mean of the unit weight's standard deviation (via E[variance])."""
        return math.sqrt(self.beta / (self.alpha - 1.0))

    def update(self, xs: Sequence[float]) -> None:
        xs = [float(x) for x in xs]
        if not xs:
            return
        n = len(xs)
        mean = sum(xs) / n
        ss = sum((x - mean) ** 2 for x in xs)
        k0, m0 = self.kappa, self.mu
        self.kappa = k0 + n
        self.mu = (k0 * m0 + n * mean) / self.kappa
        self.alpha += n / 2.0
        self.beta += 0.5 * ss + k0 * n * (mean - m0) ** 2 / (2.0 * self.kappa)
        self.n += n


def unit_observations(examples: Iterable[Mapping]) -> dict[str, list[float]]:
    """{sku: [|delta| / quantity]} from examples whose answer confirmed a product."""
    out: dict[str, list[float]] = {}
    for ex in examples:
        prod = ex.get('product')
        if not prod or prod['quantity'] < 1 or not math.isfinite(ex.get('delta_grams', math.nan)):
            continue
        delta = float(ex['delta_grams'])
        sign_ok = (delta < 0) == (prod['action'] == ACTION_TAKE)
        if not sign_ok:
            continue
        out.setdefault(prod['sku'], []).append(abs(delta) / prod['quantity'])
    return out


def fit_weight_models(catalog, examples: Iterable[Mapping], prior_strength: float = 3.0,
                      gate_sd: float = 6.0, gate_grams: float = 4.0) -> dict[str, WeightModel]:
    """Weight models of the SKUs with observations (catalog: sku -> product-like)."""
    products = catalog.products if hasattr(catalog, 'products') else catalog
    models = {}
    for sku, xs in sorted(unit_observations(examples).items()):
        prod = products.get(sku)
        if prod is None:
            continue
        m = WeightModel.prior(sku, prod.unit_grams, prod.unit_grams_sd, prior_strength)
        limit = gate_sd * m.prior_sd + gate_grams
        m.update([x for x in xs if abs(x - m.prior_mu) <= limit])
        if m.n:
            models[sku] = m
    return models


def write_weight_models(models: Mapping[str, WeightModel], path: str | pathlib.Path) -> None:
    doc = {'weight_models': {sku: {
        'unit_grams': round(m.mu, 3), 'unit_grams_sd': round(m.sd, 3), 'n': m.n,
        'catalog_unit_grams': m.prior_mu, 'catalog_unit_grams_sd': m.prior_sd}
        for sku, m in sorted(models.items())},
        'written_at': time.strftime('%Y-%m-%dT%H:%M:%S')}
    _atomic_write(path, yaml.safe_dump(doc, sort_keys=False))


def _atomic_write(path: str | pathlib.Path, text: str) -> None:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(text)
    tmp.replace(path)


# --- threshold tuning -------------------------------------------------------------------------
CONF_GRID = tuple(sorted({round(0.5 + 0.01 * i, 3) for i in range(50)}
                         | {0.995, 0.998, 0.999, 0.9995}))
MARGIN_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
BIN_EDGES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0000001)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _logits(ps: np.ndarray, eps: float) -> np.ndarray:
    """:func:`_logit` of an array, clipped to [eps, 1 - eps]."""
    q = np.clip(ps, eps, 1 - eps)
    return np.log(q / (1 - q))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class Calibration:
    """P(best hypothesis right | posterior p), from labelled (p, right) pairs.

    ``prior``: what a bin's accuracy is believed to be before its own labels (a callable
    p -> P(right), e.g. a Platt scaling fitted on every label at once); default the posterior
    itself. Bins without labels then read the prior too."""

    def __init__(self, labelled: Iterable[tuple[float, bool]], prior_strength: float = 20.0,
                 prior: Callable[[float], float] | None = None):
        bins: dict[int, list[tuple[float, bool]]] = {}
        for p, ok in labelled:
            bins.setdefault(self._bin(p), []).append((float(p), bool(ok)))
        self.prior = prior
        self.prior_strength = float(prior_strength)
        self.shift: dict[int, float] = {}
        # per labelled bin: (mean posterior, Beta a, Beta b) of its accuracy
        self.evidence: dict[int, tuple[float, float, float]] = {}
        for b, items in bins.items():
            p_mean = sum(p for p, _ in items) / len(items)
            hits = sum(1 for _, ok in items if ok)
            centre = float(prior(p_mean)) if prior is not None else p_mean
            cal = (hits + prior_strength * centre) / (len(items) + prior_strength)
            self.shift[b] = _logit(cal) - _logit(p_mean)
            self.evidence[b] = (p_mean, hits + prior_strength * centre,
                                len(items) - hits + prior_strength * (1.0 - centre))

    @staticmethod
    def _bin(p: float) -> int:
        for i in range(len(BIN_EDGES) - 1):
            if BIN_EDGES[i] <= p < BIN_EDGES[i + 1]:
                return i
        return len(BIN_EDGES) - 2

    def __call__(self, p: float) -> float:
        b = self._bin(p)
        if b not in self.shift and self.prior is not None:
            return float(self.prior(p))
        return _sigmoid(_logit(p) + self.shift.get(b, 0.0))

    def draws(self, ps: Sequence[float], n: int, seed: int = 0) -> np.ndarray:
        """``n`` x len(ps) draws of P(right | p) for each of ``ps``: one Beta draw of each
        bin's accuracy (its labels plus the prior's pseudo-examples; a bin without labels,
        the pseudo-examples alone at the prior's value for the bin's mean ``p``), applied to
        every ``p`` of the bin as a log-odds shift, as :meth:`__call__` applies the mean.
        Seeded: the same labels give the same draws."""
        rng = np.random.default_rng(seed)
        ps = np.asarray(ps, dtype=float)
        bins = np.array([self._bin(p) for p in ps], dtype=int)
        lg = _logits(ps, 1e-6)
        out = np.empty((n, len(ps)))
        for b in np.unique(bins):
            cols = bins == b
            if b in self.evidence:
                p_mean, a, beta = self.evidence[b]
            else:
                p_mean = float(ps[cols].mean())
                centre = float(self.prior(p_mean)) if self.prior is not None else p_mean
                a = self.prior_strength * centre
                beta = self.prior_strength * (1.0 - centre)
            theta = rng.beta(max(a, 1e-6), max(beta, 1e-6), size=n)
            shift = _logits(theta, 1e-9) - _logit(p_mean)
            out[:, cols] = 1.0 / (1.0 + np.exp(-(lg[cols][None, :] + shift[:, None])))
        return out


CREDIBILITY = 0.9       # the learning commands' share of draws that must reach the target
MIN_LABELLED = 20       # fewer labels than this leave the bars in force
CREDIBILITY_DRAWS = 500


@dataclass(frozen=True)
class Thresholds:
    min_confidence: float
    min_margin: float
    estimated_accuracy: float      # of the auto-decided events (the calibration's mean)
    estimated_review_rate: float   # share of the population sent to review
    n_labelled: int
    n_population: int
    target_accuracy: float
    # with a credibility: the accuracy reached in that share of the calibration's draws
    # (what was held to the target); None: the mean was
    credibility: float | None = None
    accuracy_bound: float | None = None
    # why these bars (tune_thresholds with hold_in_force): 'too few labels', 'lowered: proven',
    # 'kept: not refuted', 'raised: refuted'; None: the least-reviewing proven bars
    rule: str | None = None

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v)
                for k, v in self.__dict__.items() if v is not None}


def refuted(labelled: Sequence[tuple[float, float, bool]], conf: float, margin: float,
            target_accuracy: float, credibility: float,
            weights: Sequence[float] | None = None, draws: int = 4000) -> bool:
    """Do the labels of the events these bars decide unasked show, on their own (no prior),
    that the bars miss the target: accuracy under it with probability above ``credibility``?

    ``weights``: each label's inverse chance of being drawn (1 for a review, 1 / fraction for a
    spot check), so that the reviews, which crowd where the bars were, do not stand for the
    events above them that only spot checks reach. The weighted right and wrong shares count as
    the labels' effective sample size (Kish) in a Beta posterior from a uniform prior, read off
    ``draws`` seeded draws."""
    w = [1.0] * len(labelled) if weights is None else [float(x) for x in weights]
    sel = [(wi, ok) for (p, m, ok), wi in zip(labelled, w) if p >= conf and m >= margin]
    if not sel:
        return False
    total = sum(wi for wi, _ in sel)
    ess = total ** 2 / sum(wi * wi for wi, _ in sel)
    right = sum(wi for wi, ok in sel if ok) / total * ess
    theta = np.random.default_rng(0).beta(1.0 + right, 1.0 + ess - right, size=draws)
    return float((theta < target_accuracy).mean()) > credibility


def evaluate_thresholds(population: Sequence[tuple[float, float]], calib, conf: float,
                        margin: float) -> tuple[float, float]:
    """(estimated accuracy of auto-decided events, review rate) over (p, margin) pairs."""
    auto = [calib(p) for p, m in population if p >= conf and m >= margin]
    acc = sum(auto) / len(auto) if auto else 1.0
    return acc, 1.0 - len(auto) / len(population) if population else 0.0


def tune_thresholds(labelled: Sequence[tuple[float, float, bool]],
                    population: Sequence[tuple[float, float]] | None = None,
                    target_accuracy: float = 0.995, prior_strength: float = 20.0,
                    conf_grid: Sequence[float] = CONF_GRID,
                    margin_grid: Sequence[float] = MARGIN_GRID,
                    fallback: tuple[float, float] = (0.9, 0.2),
                    min_labelled: int = MIN_LABELLED,
                    prior: Callable[[float], float] | None = None,
                    credibility: float | None = None,
                    draws: int = CREDIBILITY_DRAWS,
                    hold_in_force: bool = False,
                    label_weights: Sequence[float] | None = None) -> Thresholds:
    """The (min_confidence, min_margin) with the fewest reviews reaching the target.

    ``labelled``: (p_best, margin, best was right); ``population``: (p_best, margin) of every
    event the thresholds will apply to (default: the labelled ones). With fewer than
    ``min_labelled`` examples the ``fallback`` stays; with nothing feasible the strictest grid
    point is returned. ``prior``: the per-bin calibration's prior (:class:`Calibration`).
    ``credibility`` (0-1): the auto-decided events' accuracy must reach the target in that
    share of ``draws`` draws from the calibration's posterior (:meth:`Calibration.draws`),
    not only on its mean.

    ``hold_in_force`` (with a credibility): ``fallback`` is the bars in force, and they move
    down only on proof and up only on evidence. Looser bars are taken when they reach the
    target at the credibility (as above); the bars in force stay while the labels of the
    events they decide unasked do not refute them (:func:`refuted`: the labels alone, no
    prior, put their accuracy under the target at the credibility; ``label_weights``: each
    label's inverse chance of being drawn); refuted, the least
    reviewing bars that are proven, or else not refuted and at least as strict, replace them.
    Without it a target the labels cannot prove yet sends the bars to wherever the prior
    alone reaches it, which a few dozen labels and a prior fitted on the uncertain events can
    put at the top of the grid (the live graph's learning days: two thirds of the events sent
    to review while every unreviewed decision was right).
    """
    if credibility is not None and not 0.0 < credibility < 1.0:
        raise ValueError(f'credibility must be in (0, 1), got {credibility}')
    calib = Calibration([(p, ok) for p, _, ok in labelled], prior_strength, prior)
    pop = list(population) if population is not None else [(p, m) for p, m, _ in labelled]
    ps = np.array([p for p, _ in pop], dtype=float)
    ms = np.array([m for _, m in pop], dtype=float)
    sampled = (calib.draws(ps, draws) if credibility is not None and pop
               and len(labelled) >= min_labelled else None)

    def figures(conf: float, margin: float) -> tuple[float, float, float | None]:
        acc, rate = evaluate_thresholds(pop, calib, conf, margin) if pop else (1.0, 0.0)
        if sampled is None:
            return acc, rate, None
        auto = (ps >= conf) & (ms >= margin)
        if not auto.any():
            return acc, rate, 1.0
        return acc, rate, float(np.quantile(sampled[:, auto].mean(axis=1), 1.0 - credibility))

    holding = hold_in_force and credibility is not None

    def result(conf: float, margin: float, rule: str | None = None) -> Thresholds:
        acc, rate, bound = figures(conf, margin)
        return Thresholds(conf, margin, acc, rate, len(labelled), len(pop), target_accuracy,
                          credibility if sampled is not None else None, bound,
                          rule if holding else None)

    if not pop or len(labelled) < min_labelled:
        # too little evidence to move away from the configured thresholds
        return result(*fallback, rule='too few labels')
    best = None
    for conf in conf_grid:
        for margin in margin_grid:
            acc, rate, bound = figures(conf, margin)
            if (bound if bound is not None else acc) < target_accuracy:
                continue
            key = (rate, -conf, -margin)
            if best is None or key < best[0]:
                best = (key, conf, margin)
    if holding:
        if not refuted(labelled, *fallback, target_accuracy, credibility, label_weights):
            if best is not None and best[0][0] < figures(*fallback)[1]:
                return result(best[1], best[2], 'lowered: proven')
            return result(*fallback, rule='kept: not refuted')
        if best is None:
            stricter = [(figures(c, m)[1], -c, -m) for c in conf_grid for m in margin_grid
                        if c >= fallback[0] and m >= fallback[1]
                        and not refuted(labelled, c, m, target_accuracy, credibility,
                                        label_weights)]
            if stricter:
                key = min(stricter)
                return result(-key[1], -key[2], 'raised: refuted')
            return result(max(conf_grid), max(margin_grid), 'raised: refuted')
        return result(best[1], best[2], 'raised: refuted')
    if best is None:
        return result(max(conf_grid), max(margin_grid))
    return result(best[1], best[2])


# --- the bars of a camera store's cart --------------------------------------------------------
# the fused cart's bar may sit below the weight cart's 0.5 floor of the default grid
FUSED_CONF_GRID = tuple(sorted({round(0.3 + 0.01 * i, 3) for i in range(20)} | set(CONF_GRID)))


def answer_matches(top_shopper: str, best: Mapping | None, answer: Mapping) -> bool:
    """Was the cart's top shopper with its best hypothesis the reviewer's answer?"""
    key = ((best['sku'], int(best['action']), int(best['quantity'])) if best is not None
           else ('', 0, 0))
    return bool(top_shopper == answer['shopper_id'] and key == (
        answer['sku'], int(answer['action']), int(answer['quantity'])))


def fused_rows(cart_db, cannot_tell: Iterable[str] = ()) -> list[dict]:
    """One row per decided shelf event of a cart database (``store_cart.db.CartDb``): the
    features the cart compared with its bars (``store_cart.engine.decision_features``: the
    fusion's shopper hint and the presence of the stored visits, the event's hypotheses), and
    for a reviewed or spot-checked event the label: was the cart's top answer the reviewer's.
    ``fused``: the event came with a shopper hint (a camera store). ``cannot_tell``: event ids
    a reviewer answered "cannot tell" (``ReviewStore.cannot_tell_events``): unlabelled, since
    the cart holds that answer as "no change", which would read as "the machine was wrong"."""
    skip = set(cannot_tell)
    decided = {r['event_id']: r for r in cart_db.decided_reviews() if r['event_id'] not in skip}
    rows = []
    for event_id, ev in cart_db.processed_shelf_events():
        # the visits the cart took as present (CartEngine._decide)
        present = sorted({s['shopper_id'] for s in cart_db.sessions_at(int(ev['start_ns']))})
        hyps = sorted(ev.get('hypotheses', ()), key=lambda h: -_posterior(h))
        hint = ev.get('shopper_hint')
        p, margin, top = decision_features(hint, present, [_posterior(h) for h in hyps])
        row = {'event_id': event_id, 'p': p, 'margin': margin, 'fused': hint is not None,
               # what the cart would do unasked: its top shopper and best hypothesis (JSON)
               'top_shopper': top, 'best': hyps[0] if hyps else None,
               # the fusion's confidence before calibration (None: a weight-only event)
               'raw_confidence': ev.get('raw_confidence'),
               'labelled': event_id in decided,
               # 1 for a review, the fraction for a spot check, 0 for no label
               'label_chance': (float(decided[event_id]['request'].get('label_chance', 1.0))
                                if event_id in decided else 0.0)}
        if event_id in decided:
            row['label_right'] = answer_matches(top, hyps[0] if hyps else None,
                                                decided[event_id]['decision'])
        rows.append(row)
    return rows


def tune_fused_bars(rows: Sequence[Mapping], target_accuracy: float,
                    fallback: tuple[float, float], credibility: float | None = CREDIBILITY
                    ) -> tuple[Thresholds, Platt]:
    """The camera cart's (min_confidence, min_margin) from event rows (:func:`fused_rows`, or
    the simulator's in ``learning_days``): every row is the population, the labelled ones the
    evidence. Each posterior bin's accuracy is shrunk towards a Platt scaling of the feature
    fitted on every label at once (not towards the posterior itself, which would need
    hundreds of labels in a bin before the bar could fall). ``fallback``: the bars in force,
    which move down on proof and up on evidence (:func:`tune_thresholds`' ``hold_in_force``).
    Returns the thresholds and that prior."""
    labelled = [r for r in rows if r.get('labelled')]
    pairs = [(float(r['p']), float(r['margin']), bool(r['label_right'])) for r in labelled]
    # a label's weight: the inverse of its chance of being drawn (rows written before spot
    # checks had one count as reviews)
    weights = [1.0 / max(float(r.get('label_chance', 1.0)) or 1.0, 1e-3) for r in labelled]
    prior = fit_platt([(p, ok) for p, _, ok in pairs])
    th = tune_thresholds(pairs, [(float(r['p']), float(r['margin'])) for r in rows],
                         target_accuracy=target_accuracy, conf_grid=FUSED_CONF_GRID,
                         fallback=fallback, prior=prior, credibility=credibility,
                         hold_in_force=True, label_weights=weights)
    return th, prior


def hindsight_bars(rows: Sequence[Mapping], target_accuracy: float,
                   conf_grid: Sequence[float] = FUSED_CONF_GRID,
                   margin_grid: Sequence[float] = MARGIN_GRID) -> dict:
    """The bars the tuner could have chosen had it known every answer: on its grid, the
    (min_confidence, min_margin) with the fewest events below them for which the events at or
    above them have their top answer right (``top_right``: the truth, which a benchmark has and
    a store does not) in at least ``target_accuracy`` of cases. A benchmark figure, not a
    learning step: it says how far the bars alone can bring the review rate with the features
    they compare, so a learner that is slow is told apart from features that cannot separate
    the wrong answers from the right. Rows: ``p``, ``margin``, ``top_right``.
    Returns {min_confidence, min_margin, review_rate, accuracy, events}."""
    ps = np.array([float(r['p']) for r in rows], dtype=float)
    ms = np.array([float(r['margin']) for r in rows], dtype=float)
    ok = np.array([bool(r['top_right']) for r in rows], dtype=bool)
    best = {'min_confidence': max(conf_grid), 'min_margin': max(margin_grid),
            'review_rate': 1.0, 'accuracy': 1.0, 'events': len(rows)}
    if not len(rows):
        best['review_rate'] = 0.0
        return best
    for conf in conf_grid:
        for margin in margin_grid:
            auto = (ps >= conf) & (ms >= margin)
            acc = float(ok[auto].mean()) if auto.any() else 1.0
            rate = 1.0 - float(auto.mean())
            if acc >= target_accuracy and (rate, -conf, -margin) < (
                    best['review_rate'], -best['min_confidence'], -best['min_margin']):
                best.update(min_confidence=conf, min_margin=margin, review_rate=rate,
                            accuracy=acc)
    return best


def refit_fusion_calibration(rows: Sequence[Mapping], anchor: Platt) -> Platt:
    """The fusion node's ``calibration_file`` from event rows (:func:`fused_rows`, or the
    simulator's in ``learning_days``): Platt scaling of the fused confidence before calibration
    (``raw_confidence``) on "the cart's top shopper and top hypothesis were the answer"
    (``label_right``). Anchored at ``anchor``, the calibration in force, with the strength of its
    own sample (a few dozen labels correct it, never replace it), and each label weighed by the
    inverse of its chance of being drawn (``label_chance``: 1 for a review, the fraction for a
    spot check), so the reviews, which are the uncertain events, do not stand for all of them.
    Rows without a raw confidence (weight-only events) are left out."""
    labelled = [r for r in rows if r.get('labelled') and r.get('raw_confidence') is not None
                and float(r.get('label_chance', 0.0)) > 0.0]
    return fit_platt([(float(r['raw_confidence']), bool(r['label_right'])) for r in labelled],
                     l2=float(max(anchor.n, 1)), anchor=anchor,
                     weights=[1.0 / float(r['label_chance']) for r in labelled])


def labelled_pairs(examples: Iterable[Mapping]) -> list[tuple[float, float, bool]]:
    """(p_best, margin, best_correct) of examples whose posteriors came from the shelf event."""
    return [(float(e['p_best']), float(e['margin']), bool(e['best_correct']))
            for e in examples if e.get('hypotheses_from_event', True)]


def population_pairs(shelf_events: Iterable[Mapping]) -> list[tuple[float, float]]:
    """(p_best, margin) of the best product hypothesis of each shelf event."""
    out = []
    for ev in shelf_events:
        hyps = sorted(ev.get('hypotheses', ()), key=lambda h: -_posterior(h))
        if not hyps:
            continue
        best = next((h for h in hyps if h['sku'] and int(h['quantity']) > 0), None)
        if best is None:
            continue
        second = next((_posterior(h) for h in hyps if h is not best), 0.0)
        out.append((_posterior(best), _posterior(best) - second))
    return out


def write_thresholds(th: Thresholds, path: str | pathlib.Path) -> None:
    """The cart's thresholds file (:mod:`store_cart.thresholds`, its one reader and writer),
    with the tuner's figures beside the two thresholds."""
    thresholds_file.write_thresholds(th.to_dict(), path)
