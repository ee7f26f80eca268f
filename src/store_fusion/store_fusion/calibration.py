"""Confidence calibration of fused shelf events: Platt scaling and expected calibration error.

The fused joint confidence (P(shopper) x P(product hypothesis)) is a product of model
posteriors that are not calibrated (the hand-distance likelihood and the weight model are both
sharper than the world). Platt scaling maps it through ``sigmoid(a * logit(c) + b)``, with a, b
fitted by maximum likelihood on tuning scenarios ("was the top shopper and the top hypothesis
right?"); ECE is then measured on held-out scenarios. Never imports rclpy.
"""
from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass

EPS = 1e-4


def _logit(c: float) -> float:
    c = min(1.0 - EPS, max(EPS, float(c)))
    return math.log(c / (1.0 - c))


@dataclass(frozen=True)
class Platt:
    """``sigmoid(a * logit(c) + b)``; the identity is a=1, b=0."""
    a: float = 1.0
    b: float = 0.0
    n: int = 0                  # examples it was fitted on (0: not fitted)

    def __call__(self, c: float) -> float:
        z = self.a * _logit(c) + self.b
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def to_dict(self) -> dict:
        return {'method': 'platt', 'a': self.a, 'b': self.b, 'n': self.n}

    @classmethod
    def load(cls, path: str | pathlib.Path | None) -> Platt:
        """The calibration in a JSON file; the identity when path is empty."""
        if not path:
            return cls()
        d = json.loads(pathlib.Path(path).read_text())
        if d.get('method', 'platt') != 'platt':
            raise ValueError(f'{path}: unknown calibration method {d.get("method")!r}')
        return cls(float(d['a']), float(d['b']), int(d.get('n', 0)))

    def save(self, path: str | pathlib.Path) -> None:
        p = pathlib.Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=2) + '\n')


def fit_platt(pairs, l2: float = 1e-3, iters: int = 50, anchor: Platt | None = None,
              weights=None) -> Platt:
    """Maximum-a-posteriori (a, b) from [(confidence, correct)] by Newton's method with step
    halving.

    A ridge of strength ``l2`` pulls (a, b) towards ``anchor`` (the identity when None): a small
    one only keeps the fit finite when the classes separate; a strong one makes a refit on a few
    new labels a correction of the calibration in force rather than a replacement (a store's
    first reviews must not undo a fit on hundreds of events). ``weights`` (one per pair, default
    1) count an example as that many: labels drawn with unequal chances (every review, one audit
    in ten) weighed by the inverse of their chance stand for the events they were drawn from."""
    a0, b0 = (anchor.a, anchor.b) if anchor is not None else (1.0, 0.0)
    pairs = list(pairs)
    ws = [1.0] * len(pairs) if weights is None else [float(w) for w in weights]
    if len(ws) != len(pairs) or any(not (w >= 0.0 and math.isfinite(w)) for w in ws):
        raise ValueError('fit_platt: one finite weight >= 0 per pair')
    xs = [(_logit(c), 1.0 if ok else 0.0, w) for (c, ok), w in zip(pairs, ws) if w > 0.0]
    if len(xs) < 2 or len({y for _, y, _ in xs}) < 2:
        return anchor if anchor is not None else Platt(n=len(xs))

    def loss(a, b):
        out = 0.5 * l2 * ((a - a0) ** 2 + (b - b0) ** 2)
        for x, y, w in xs:
            z = a * x + b
            # log(1 + e^z) - y z, stable
            out += w * ((z if z > 0 else 0.0) + math.log1p(math.exp(-abs(z))) - y * z)
        return out

    a, b = a0, b0
    cur = loss(a, b)
    for _ in range(iters):
        ga = gb = haa = hab = hbb = 0.0
        for x, y, wt in xs:
            z = max(-50.0, min(50.0, a * x + b))
            p = 1.0 / (1.0 + math.exp(-z))
            w = wt * p * (1 - p)
            ga += wt * (p - y) * x
            gb += wt * (p - y)
            haa += w * x * x
            hab += w * x
            hbb += w
        ga += l2 * (a - a0)
        gb += l2 * (b - b0)
        haa += l2
        hbb += l2
        det = haa * hbb - hab * hab
        if det <= 1e-12:
            break
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        step = 1.0
        while step > 1e-6:
            new = loss(a - step * da, b - step * db)
            if new <= cur:
                break
            step /= 2
        else:
            break
        a, b, cur = a - step * da, b - step * db, new
        if step * (abs(da) + abs(db)) < 1e-9:
            break
    return Platt(a, b, len(xs))


def ece(pairs, bins: int = 10) -> float:
    """Expected calibration error over equal-width confidence bins; nan without examples."""
    pairs = list(pairs)
    if not pairs:
        return float('nan')
    total = 0.0
    for k in range(bins):
        lo, hi = k / bins, (k + 1) / bins
        sel = [(c, ok) for c, ok in pairs if lo <= c < hi or (k == bins - 1 and c >= 1.0)]
        if sel:
            conf = sum(c for c, _ in sel) / len(sel)
            acc = sum(1.0 for _, ok in sel if ok) / len(sel)
            total += len(sel) / len(pairs) * abs(conf - acc)
    return total
