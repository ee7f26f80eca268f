"""Checking a parameter's value against its declaration, without rclpy.

ROS parameter files and ``--set``/``-p`` overrides are typed by YAML: ``hold_s: 2`` is an
integer, ``hold_s: 2.0`` a double. rclpy refuses an integer for a parameter declared with a
float default and the node dies with a traceback; :func:`check_value` accepts it as the float it
means, and refuses what cannot be meant (a string, a bool, a float for an integer) with a
:class:`ParameterError` that names the parameter, the expected type and what was given.
``store_common.ros.declare`` applies it to every scalar parameter.
"""
from __future__ import annotations

import math
import os
import pathlib
from typing import Any

import yaml

from store_common.description import StoreConfigError


class ParameterError(ValueError):
    """A parameter value that the node cannot use; ``str()`` names the parameter."""


def describe(value: Any) -> str:
    """``value`` as a person would name it in an error message."""
    if isinstance(value, bool):
        return f'the bool {str(value).lower()}'
    if isinstance(value, int):
        return f'the integer {value}'
    if isinstance(value, float):
        return f'the float {value!r}'
    if isinstance(value, str):
        return f'the string {value!r}'
    if value is None:
        return 'no value'
    return f'{type(value).__name__} {value!r}'


def _expected(default: Any) -> str:
    if isinstance(default, bool):
        return 'true or false'
    if isinstance(default, int):
        return 'an integer'
    if isinstance(default, float):
        return 'a number (e.g. 1.5)'
    return 'a string (quote it in YAML if it looks like a number)'


def check_value(name: str, default: Any, value: Any, *, lo: float | None = None,
                hi: float | None = None, choices: tuple[str, ...] = ()) -> Any:
    """``value`` (an override of parameter ``name``) as the type of ``default``, in range.

    An integer for a float parameter becomes that float; anything else of the wrong type, a
    value outside [lo, hi] (when both are given) or not in ``choices`` raises ParameterError.
    """
    if not isinstance(default, (bool, int, float, str)):
        raise TypeError(f'parameter {name}: check_value handles scalar defaults only')
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            if math.isnan(value):
                raise ParameterError(f'parameter {name}: expected a number, got NaN')
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ParameterError(f'parameter {name}: expected {_expected(default)}, got '
                             f'{describe(value)}')
    if (lo is not None and hi is not None and not isinstance(default, (bool, str))
            and not lo <= value <= hi):
        raise ParameterError(f'parameter {name}={value!r} is outside its range [{lo:g}, '
                             f'{hi:g}]')
    if choices and value not in choices:
        raise ParameterError(f'parameter {name}={value!r} is not one of {", ".join(choices)}')
    return value


def load_params_file(path: str | pathlib.Path) -> dict[str, dict[str, Any]]:
    """Read a ``<node>: ros__parameters: {...}`` file into {node: params}.

    A relative path in a ``*_file`` parameter is relative to the parameters file (so the
    installed share and the source tree both find the files shipped beside it)."""
    path = pathlib.Path(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise StoreConfigError(path, '', f'cannot read parameters: {exc}') from None
    if not isinstance(doc, dict):
        raise StoreConfigError(path, '', 'expected a mapping of node names')
    out = {}
    for node, body in doc.items():
        if not isinstance(body, dict) or not isinstance(body.get('ros__parameters'), dict):
            raise StoreConfigError(path, str(node), 'expected "ros__parameters:" with a mapping')
        params = dict(body['ros__parameters'])
        for k, v in params.items():
            if k.endswith('_file') and isinstance(v, str) and v and not os.path.isabs(v):
                params[k] = str((path.parent / v).resolve())
        out[str(node)] = params
    return out
