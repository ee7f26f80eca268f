"""The tuned review-thresholds file: written by store_review's ``review_learn``, read by the cart
node (parameter ``thresholds_file``) while it runs. One reader and one writer (no rclpy)::

    thresholds:
      min_confidence: 0.93     # the cart's CartParams.min_confidence
      min_margin: 0.2          # the cart's CartParams.min_margin
      ...                      # the tuner's figures (estimated accuracy, counts), for people
    written_at: '2026-12-04T19:40:00'
"""
from __future__ import annotations

import pathlib
import time
from typing import Any, Mapping

import yaml

from store_cart.engine import CartParams

KEYS = ('min_confidence', 'min_margin')


def check_thresholds(values: Mapping[str, Any]) -> dict[str, float]:
    """{min_confidence, min_margin} of ``values`` as floats in the cart's ranges; ValueError
    naming what is missing or out of range (other keys are the tuner's figures, ignored)."""
    missing = [k for k in KEYS if k not in values]
    if missing:
        raise ValueError(f'needs {" and ".join(KEYS)} (missing {", ".join(missing)})')
    try:
        out = {k: float(values[k]) for k in KEYS}
    except (TypeError, ValueError):
        raise ValueError(f'{" and ".join(KEYS)} must be numbers') from None
    CartParams(**out)      # validates the ranges
    return out


def read_thresholds(path: str | pathlib.Path) -> dict[str, float]:
    """{min_confidence, min_margin} from a thresholds file. Raises OSError when it cannot be
    read, ValueError when it is not a usable thresholds file."""
    try:
        doc = yaml.safe_load(pathlib.Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f'not YAML: {exc}') from None
    th = doc.get('thresholds') if isinstance(doc, dict) else None
    if not isinstance(th, dict):
        raise ValueError('expected a "thresholds:" mapping')
    return check_thresholds(th)


def write_thresholds(values: Mapping[str, Any], path: str | pathlib.Path) -> None:
    """Write ``values`` (min_confidence, min_margin, and any figures worth keeping beside them)
    atomically: a cart reading the file meanwhile sees the old one or the new one, whole.
    ValueError, and nothing written, when the thresholds are not usable."""
    check_thresholds(values)
    doc = {'thresholds': dict(values), 'written_at': time.strftime('%Y-%m-%dT%H:%M:%S')}
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.replace(path)
