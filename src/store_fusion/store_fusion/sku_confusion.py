"""Which SKU the detector names for a product in a hand, given the product: a measured confusion
model, so that a box saying MILK-1L counts as strong evidence against COLA-330 but as weak
evidence against OJ-1L when the classifier mixes those two up.

``P(seen j | true i) = (n_ij + s q_ij) / (n_i + s)``: the counted product boxes of true SKU
``i`` that the detector named ``j`` (``n_ij``, measured by ``bench_detector --confusion-out`` on
held-out renders), smoothed towards a prior ``q`` by ``s`` pseudo-boxes per SKU: ``q_ii`` = the
pooled accuracy (right boxes / all boxes), the rest of ``q_i`` spread evenly over the other
catalog SKUs. ``s`` is the one that predicts each counted box best from the others (leave one
out; :func:`fit_strength`). With no counts the model is the even-spread one of a single SKU
accuracy, the fusion's ``sku_accuracy`` (what the fusion used before this model).

A file (JSON)::

    {"source": "...", "accuracy": 0.48, "strength": 3.0,
     "counts": {"OJ-1L": {"OJ-1L": 9, "MILK-1L": 6}, ...}}

Never imports rclpy.
"""
from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass, field

STRENGTHS = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 35.0, 60.0, 100.0)


class ConfusionFileError(ValueError):
    """A confusion file that is missing or not one (names the file and what is wrong)."""


@dataclass(frozen=True)
class SkuConfusion:
    accuracy: float                              # pooled P(the named SKU is the true one)
    strength: float = 0.0                        # prior pseudo-boxes per true SKU
    counts: dict = field(default_factory=dict)   # true SKU -> {named SKU: boxes}
    source: str = ''

    def p_seen(self, seen: str, true: str, n_skus: int) -> float:
        """P(a box of a product ``true`` is named ``seen``), ``n_skus`` catalog SKUs."""
        q = self.accuracy if seen == true else (1.0 - self.accuracy) / max(1, n_skus - 1)
        row = self.counts.get(true)
        if not row:
            return q
        n = sum(row.values())
        return (row.get(seen, 0) + self.strength * q) / (n + self.strength)

    def p_seen_unrelated(self, seen: str, n_skus: int) -> float:
        """P(a box is named ``seen``) for a product drawn evenly from the catalog: the mean of
        :meth:`p_seen` over the true SKUs (the ones without counts at the prior)."""
        counted = [self.p_seen(seen, t, n_skus) for t in self.counts]
        rest = max(0, n_skus - len(counted))
        total = sum(counted)
        if rest:
            own = 0 if seen in self.counts else 1     # ``seen`` itself among the uncounted
            total += own * self.accuracy + (rest - own) * (1.0 - self.accuracy) / max(
                1, n_skus - 1)
        return total / max(1, len(counted) + rest)

    def p_seen_wrong(self, seen: str, n_skus: int) -> float:
        """P(a box is named ``seen``) for a product that is not ``seen`` (the mean over the
        other true SKUs): how well a hypothesis with no SKU explains a named box."""
        k = max(1, n_skus)
        return max(1e-9, (k * self.p_seen_unrelated(seen, n_skus)
                          - self.p_seen(seen, seen, n_skus)) / max(1, k - 1))

    def to_dict(self) -> dict:
        return {'source': self.source, 'accuracy': self.accuracy,
                'strength': self.strength,
                'counts': {t: dict(sorted(r.items())) for t, r in sorted(self.counts.items())}}

    def save(self, path) -> None:
        pathlib.Path(path).write_text(json.dumps(self.to_dict(), indent=1) + '\n')

    @classmethod
    def from_counts(cls, counts: dict, source: str = '') -> 'SkuConfusion':
        """The model of counted boxes, with the pooled accuracy and the fitted strength."""
        counts = {str(t): {str(s): int(n) for s, n in r.items() if int(n) > 0}
                  for t, r in counts.items()}
        counts = {t: r for t, r in counts.items() if r}
        total = sum(sum(r.values()) for r in counts.values())
        if not total:
            raise ValueError('no counted product boxes')
        acc = sum(r.get(t, 0) for t, r in counts.items()) / total
        acc = min(0.999, max(0.001, acc))
        return cls(acc, fit_strength(counts, acc), counts, source)

    @classmethod
    def load(cls, path) -> 'SkuConfusion':
        p = pathlib.Path(path)
        try:
            d = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise ConfusionFileError(f'{p}: cannot read the SKU confusion file ({exc})') from None
        try:
            acc, strength = float(d['accuracy']), float(d['strength'])
            counts = {str(t): {str(s): int(n) for s, n in r.items()}
                      for t, r in d['counts'].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfusionFileError(f'{p}: not a SKU confusion file (needs accuracy, strength, '
                                     f'counts: {{true: {{named: boxes}}}}; {exc!r})') from None
        bad = [f'{t}->{s}={n}' for t, r in counts.items() for s, n in r.items() if n < 0]
        if not 0.0 < acc < 1.0 or not 0.0 <= strength <= 1e6 or bad:
            raise ConfusionFileError(f'{p}: accuracy must lie in (0, 1), strength in [0, 1e6] '
                                     f'and counts be >= 0 (accuracy {acc}, strength '
                                     f'{strength}{", negative " + ", ".join(bad) if bad else ""})')
        return cls(acc, strength, counts, str(d.get('source', '')))


def fit_strength(counts: dict, accuracy: float, n_skus: int | None = None,
                 grid=STRENGTHS) -> float:
    """The prior strength whose model predicts each counted box best from all the others
    (leave-one-out log likelihood; ``n_skus``: the SKUs a box can be named, by default every SKU
    in the counts)."""
    k = n_skus or len({t for t in counts} | {s for r in counts.values() for s in r})
    best, best_ll = grid[0], -math.inf
    for s in grid:
        ll = 0.0
        for t, row in counts.items():
            n = sum(row.values())
            for seen, c in row.items():
                q = accuracy if seen == t else (1.0 - accuracy) / max(1, k - 1)
                ll += c * math.log(max(1e-12, (c - 1 + s * q) / (n - 1 + s)))
        if ll > best_ll:
            best, best_ll = s, ll
    return best
