"""The rosbags typestore of the store: ROS 2 Kilted's standard messages plus store_interfaces.

Every ``.msg`` of ``store_interfaces`` is read (from the installed share, or else from the source
tree next to this package) and registered with its full text, so bags written with this typestore
carry our custom types with complete definitions and play on a real ROS install.

No rclpy here.
"""
from __future__ import annotations

import functools
import os
import pathlib

from rosbags.typesys import get_typestore, get_types_from_msg, Stores

INTERFACES = 'store_interfaces'


def interface_msg_dir() -> pathlib.Path:
    """Directory holding store_interfaces' ``.msg`` files: installed share first, then source."""
    candidates = []
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(pathlib.Path(prefix) / 'share' / INTERFACES / 'msg')
    here = pathlib.Path(__file__).resolve()
    candidates.append(here.parents[2] / INTERFACES / 'msg')   # src/store_bags/store_bags/..
    for c in candidates:
        if c.is_dir() and any(c.glob('*.msg')):
            return c
    raise FileNotFoundError(f'no {INTERFACES} .msg files found in '
                            f'{", ".join(str(c) for c in candidates)}')


def interface_definitions(msg_dir: str | pathlib.Path | None = None) -> dict[str, str]:
    """{'store_interfaces/msg/Name': msg text} for every .msg of store_interfaces."""
    d = pathlib.Path(msg_dir) if msg_dir else interface_msg_dir()
    return {f'{INTERFACES}/msg/{p.stem}': p.read_text() for p in sorted(d.glob('*.msg'))}


@functools.lru_cache(maxsize=1)
def store_typestore():
    """Kilted's standard types (std_msgs, sensor_msgs, visualization_msgs, rosgraph_msgs, ...)
    plus every store_interfaces message. Cached: one per process."""
    ts = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name, text in interface_definitions().items():
        types.update(get_types_from_msg(text, name))
    ts.register(types)
    return ts


def interface_types() -> list[str]:
    """Names of the store_interfaces message types, e.g. 'store_interfaces/msg/ShelfEvent'."""
    return sorted(interface_definitions())
