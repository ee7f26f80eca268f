"""ROS glue shared by every node: QoS profiles by what the data means, typed parameters.

Only node modules import this; algorithm modules stay free of rclpy.
"""
from __future__ import annotations

from typing import Any, Callable

from builtin_interfaces.msg import Time
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from store_common.stamps import from_ns, to_ns

# Sensor streams (plate weights, images): best effort, shallow queue; a late sample is worthless.
SENSOR_QOS = qos_profile_sensor_data

# Raw plate batches feed the event detector; losing one batch loses a weight step, so they are
# reliable with a queue deep enough for a few seconds of batches.
RELIABLE_STREAM_QOS = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.VOLATILE,
                                 history=HistoryPolicy.KEEP_LAST)

# Events that change money (shelf events, gate events, decisions): reliable and transient-local
# with a deep history, so a restarted consumer (the cart node) receives what it missed and
# de-duplicates by event id.
EVENT_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL,
                       history=HistoryPolicy.KEEP_LAST)

# State that late joiners need (carts, receipts, store layout markers): latched.
STATE_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL,
                       history=HistoryPolicy.KEEP_LAST)


def declare(node: Node, name: str, default: Any, description: str, *,
            lo: float | None = None, hi: float | None = None,
            choices: tuple[str, ...] = (), read_only: bool = False,
            array_type: str | None = None) -> Any:
    """Declare a parameter with a description and a range or choices, and return its value.

    An empty list default has no type of its own: name it with ``array_type`` ('string',
    'integer', 'double', 'bool') so overrides from YAML or launch files are accepted.
    """
    desc = ParameterDescriptor(description=description + (
        f' Choices: {", ".join(choices)}.' if choices else ''), read_only=read_only)
    if lo is not None and hi is not None and not isinstance(default, bool):
        if isinstance(default, int):
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
        elif isinstance(default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo),
                                                            to_value=float(hi), step=0.0)]
    if array_type is not None and not default:
        ptype = {'string': Parameter.Type.STRING_ARRAY, 'integer': Parameter.Type.INTEGER_ARRAY,
                 'double': Parameter.Type.DOUBLE_ARRAY, 'bool': Parameter.Type.BOOL_ARRAY}
        if array_type not in ptype:
            raise ValueError(f'array_type {array_type!r} is not one of {", ".join(ptype)}')
        value = node.declare_parameter(name, ptype[array_type], desc).value
        return list(value) if value is not None else []
    value = node.declare_parameter(name, default, desc).value
    if choices and value not in choices:
        raise ValueError(f'parameter {name}={value!r} is not one of {", ".join(choices)}')
    return value


def stamp_ns(stamp: Time) -> int:
    return to_ns(stamp)


def ns_stamp(ns: int) -> Time:
    return from_ns(ns, Time)


def run_node(name: str, factory: Callable[[], Node], startup_errors: tuple = (ValueError,), *,
             args: list[str] | None = None, threads: int = 1, startup_exit_code: int = 1) -> int:
    """The ``main()`` of every node, the Kilted way.

    Creates the node with ``factory`` inside ``rclpy.init``; an exception of ``startup_errors``
    (a broken config, a missing file) is logged as fatal by ``name`` and returns
    ``startup_exit_code`` so the runner or launch reports it. Spins (``threads`` > 1: a
    multi-threaded executor, e.g. a service that waits while timers keep running), and on the
    way out calls the node's ``close()`` if it has one, then destroys it. Ctrl-C and external
    shutdown end it quietly with 0.
    """
    try:
        with rclpy.init(args=args):
            try:
                node = factory()
            except startup_errors as exc:
                rclpy.logging.get_logger(name).fatal(f'cannot start: {exc}')
                return startup_exit_code
            try:
                if threads > 1:
                    executor = MultiThreadedExecutor(num_threads=threads)
                    executor.add_node(node)
                    executor.spin()
                else:
                    rclpy.spin(node)
            finally:
                close = getattr(node, 'close', None)
                if callable(close):
                    close()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
