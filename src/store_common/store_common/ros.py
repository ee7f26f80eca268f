"""ROS glue shared by every node: QoS profiles by what the data means, typed parameters,
and ``run_node``, the ``main()`` of every node (orderly shutdown, fatal errors as exit codes).

Only node modules import this; algorithm modules stay free of rclpy.
"""
from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from builtin_interfaces.msg import Time
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import (ExternalShutdownException, MultiThreadedExecutor,
                             SingleThreadedExecutor)
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from store_common import fatal
from store_common.exit_timer import ExitTimer
from store_common.params import check_value, ParameterError
from store_common.stamps import from_ns, to_ns
from store_common.topic_qos import QOS_CLASSES, qos_class


def profile(reliability: str, durability: str, depth: int) -> QoSProfile:
    """A keep-last QoS profile from the names ``store_common.topic_qos`` uses."""
    return QoSProfile(
        depth=int(depth), history=HistoryPolicy.KEEP_LAST,
        reliability=(ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                     else ReliabilityPolicy.BEST_EFFORT),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if durability == 'transient_local'
                    else DurabilityPolicy.VOLATILE))


def qos_for(topic: str) -> QoSProfile:
    """The QoS of ``topic`` from the store's one table (``store_common.topic_qos``), which the
    bag recorder and player use too."""
    return profile(*QOS_CLASSES[qos_class(topic)])


# The classes by name, for nodes that name them (store_common.topic_qos says which topic is
# which). Sensor streams (images): best effort, shallow queue; a late sample is worthless.
SENSOR_QOS = profile(*QOS_CLASSES['sensor'])

# Raw plate batches feed the event detector; losing one batch loses a weight step, so they are
# reliable with a queue deep enough for a few seconds of batches.
RELIABLE_STREAM_QOS = profile(*QOS_CLASSES['stream'])

# Events that change money (shelf events, gate events, decisions): reliable and transient-local
# with a deep history, so a restarted consumer (the cart node) receives what it missed and
# de-duplicates by event id.
EVENT_QOS = profile(*QOS_CLASSES['event'])

# State that late joiners need (carts, receipts, store layout markers): latched.
STATE_QOS = profile(*QOS_CLASSES['state'])


def declare(node: Node, name: str, default: Any, description: str, *,
            lo: float | None = None, hi: float | None = None,
            choices: tuple[str, ...] = (), read_only: bool = False,
            array_type: str | None = None) -> Any:
    """Declare a parameter with a description and a range or choices, and return its value.

    An empty list default has no type of its own: name it with ``array_type`` ('string',
    'integer', 'double', 'bool') so overrides from YAML or launch files are accepted.
    An integer override of a float parameter (``hold_s: 2``) is taken as that float; an override
    of another type or out of range raises :class:`ParameterError` naming the parameter, which
    ``run_node`` reports as a start-up error.
    """
    desc = ParameterDescriptor(description=description + (
        f' Choices: {", ".join(choices)}.' if choices else ''), read_only=read_only)
    if lo is not None and hi is not None and not isinstance(default, bool):
        if isinstance(default, int):
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
        elif isinstance(default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo),
                                                            to_value=float(hi), step=0.0)]
    try:
        if array_type is not None and not default:
            ptype = {'string': Parameter.Type.STRING_ARRAY,
                     'integer': Parameter.Type.INTEGER_ARRAY,
                     'double': Parameter.Type.DOUBLE_ARRAY, 'bool': Parameter.Type.BOOL_ARRAY}
            if array_type not in ptype:
                raise ValueError(f'array_type {array_type!r} is not one of {", ".join(ptype)}')
            value = node.declare_parameter(name, ptype[array_type], desc).value
            return list(value) if value is not None else []
        if not isinstance(default, (bool, int, float, str)):
            value = node.declare_parameter(name, default, desc).value
            if choices and value not in choices:
                raise ParameterError(f'parameter {name}={value!r} is not one of '
                                     f'{", ".join(choices)}')
            return value
        # Read the override with any type, check (and coerce an integer for a float) here with a
        # clear message, then declare it for good with its type, range and read_only flag.
        given = node.declare_parameter(name, default,
                                       ParameterDescriptor(dynamic_typing=True)).value
        node.undeclare_parameter(name)
        value = check_value(name, default, given, lo=lo, hi=hi, choices=choices)
        return node.declare_parameter(name, value, desc, ignore_override=True).value
    except ParameterException as exc:
        raise ParameterError(f'parameter {name}: {exc}') from None


def stamp_ns(stamp: Time) -> int:
    return to_ns(stamp)


def ns_stamp(ns: int) -> Time:
    return from_ns(ns, Time)


class _StopRequest:
    """SIGINT/SIGTERM while the node spins ask for an orderly stop instead of rclpy's handler
    shutting the context down under running callbacks (publishers' "context is invalid",
    RCLError tracebacks from take). Before spinning, and on a second signal, they interrupt."""

    def __init__(self):
        self.requested = False
        self.armed = False          # the node exists: a signal asks for an orderly stop
        self.signal_name = ''
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)
        # SIGUSR1: every thread's Python stack to stderr (the node's log), even while the main
        # thread is blocked in C; the runner sends it to a node that ignores the stop
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._previous:
            faulthandler.unregister(signal.SIGUSR1)
        self._previous.clear()

    def _on_signal(self, signum, frame) -> None:
        first = not self.requested
        # recorded even when it interrupts: a KeyboardInterrupt swallowed by code it lands in
        # (seen once in 8 SIGINTs at the end of a driver's start-up) must still end the spin
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        if not self.armed or not first:
            raise KeyboardInterrupt


def _drain(executor, timeout_s: float, logger) -> bool:
    """Wait for the callbacks a MultiThreadedExecutor already handed to its threads, before it
    is shut down. rclpy's ``Executor.shutdown`` skips its own wait (its ``if not
    self._is_shutdown`` follows setting the flag) and destroys the guard condition those
    callbacks trigger when they end, so each one still running printed "The following exception
    was never retrieved: cannot use Destroyable because destruction was requested". An error a
    callback raised is logged here instead of being lost. True when all ended in time."""
    futures = list(getattr(executor, '_futures', ()))
    deadline = time.monotonic() + timeout_s
    while any(not f.done() for f in futures) and time.monotonic() < deadline:
        time.sleep(0.005)
    for f in futures:
        if f.done() and f.exception() is not None:
            logger.error(f'a callback failed while the node stopped: {f.exception()!r}')
    return all(f.done() for f in futures)


class _TeardownWatchdog:
    """Bounds the middleware's teardown after a node's data is closed.

    Fast DDS can block for good while it destroys a writer or a service (seen about once in 24
    live runs: ``rclpy Publisher.destroy`` or ``Service.destroy`` from ``Node.destroy_node``,
    after the node's ``close()``), and the runner or ``ros2 launch`` then kills the process
    after its own timeouts, reporting a failed stop. Nothing of the node's data is at stake by
    then, so after ``timeout_s`` this thread writes a warning naming the node and every
    thread's stack (where it hung) to stderr and ends the process with the exit code the stop
    would have returned. A hang inside a call that keeps the interpreter's lock (rclpy's
    ``Service.destroy`` did, so no Python thread ran) is ended one second later without it:
    faulthandler's own thread writes every thread's stack, and a C timer
    (:class:`store_common.exit_timer.ExitTimer`) ends the process with the same exit code, fixed
    when the watchdog is armed. Where that timer is not available (not Linux), faulthandler
    exits itself, with code 1."""

    BACKSTOP_S = 1.0    # after timeout_s: the stacks and exit for a hang that holds the GIL
    EXIT_AFTER_DUMP_S = 0.5     # the C timer's exit, after faulthandler's dump

    def __init__(self, name: str, timeout_s: float, logger, code: Callable[[], int],
                 after: str = 'the node closed its data'):
        self._finished = threading.Event()
        self._name, self._timeout_s, self._logger, self._code = name, timeout_s, logger, code
        self._after = after
        self._backstop = False
        self._exit_timer = None
        if timeout_s > 0:
            threading.Thread(target=self._watch, name='teardown-watchdog', daemon=True).start()
            try:
                self._exit_timer = ExitTimer(
                    timeout_s + self.BACKSTOP_S + self.EXIT_AFTER_DUMP_S, code())
            except (OSError, ValueError, AttributeError):   # not Linux: faulthandler exits
                self._exit_timer = None
            try:
                faulthandler.dump_traceback_later(timeout_s + self.BACKSTOP_S,
                                                  exit=self._exit_timer is None)
                self._backstop = True
            except (RuntimeError, ValueError, OSError):    # no usable stderr
                pass

    def done(self) -> None:
        self._finished.set()
        if self._exit_timer is not None:
            self._exit_timer.cancel()
            self._exit_timer = None
        if self._backstop:
            faulthandler.cancel_dump_traceback_later()
            self._backstop = False

    def _watch(self) -> None:
        if self._finished.wait(self._timeout_s):
            return
        try:
            self._logger.warning(
                f'{self._name}: the middleware\'s teardown hung for {self._timeout_s:g} s after '
                f'{self._after}; exiting without it (stacks follow)')
            faulthandler.dump_traceback(all_threads=True)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(self._code())


def spin_until(node: Node, done: Callable[[], bool], period_s: float = 0.1) -> None:
    """Spin ``node`` on the global executor until ``done()`` or the context shuts down: the
    loop of the nodes that run their own (a duration, an exit code) instead of
    :func:`run_node`. A stop that lands while a message is taken (the default signal handler
    shuts the context down; the take then fails, "Unable to convert call argument") ends the
    loop quietly, as :func:`run_node` treats an error raised because the context went away;
    an error while the context is up propagates."""
    while rclpy.ok() and not done():
        try:
            rclpy.spin_once(node, timeout_sec=period_s)
        except Exception:  # noqa: BLE001 - re-raised unless the context went away
            if rclpy.ok():
                raise
            return


def _spin(node: Node, executor, stop: _StopRequest, period_s: float = 0.1) -> None:
    """Spin until a stop is requested, the context shuts down, or a fatal error is reported."""
    while not stop.requested and executor.context.ok():
        executor.spin_once(timeout_sec=period_s)
        pending = fatal.pending()
        if pending is not None:
            raise pending


def run_node(name: str, factory: Callable[[], Node], startup_errors: tuple = (ValueError,), *,
             args: list[str] | None = None, threads: int = 1, startup_exit_code: int = 1,
             stop_timeout_s: float = 5.0, teardown_timeout_s: float = 3.0) -> int:
    """The ``main()`` of every node.

    Creates the node with ``factory`` inside ``rclpy.init``; an exception of ``startup_errors``
    or a :class:`ParameterError` or :class:`store_common.fatal.FatalError` (a broken config, a
    missing file, a damaged database) is logged as fatal by ``name`` and returns
    ``startup_exit_code`` so the runner or launch reports it. Spins (``threads`` > 1: a
    multi-threaded executor, e.g. a service that waits while timers keep running).

    A FatalError raised by a callback, or reported from another thread (``fatal.report``: a
    full disk under the review console's server), is logged as fatal and returns
    ``fatal.EXIT_FATAL`` so the supervisor restarts the node once the cause is fixed.

    Ctrl-C or SIGTERM stop it in order and return 0: no new callbacks start, running ones
    finish (up to ``stop_timeout_s``), the node's ``close()`` runs if it has one, the node is
    destroyed, and only then the ROS context shuts down. Once ``close()`` has run, the
    middleware's teardown (destroying the node, shutting the context down) gets
    ``teardown_timeout_s``; past it the process logs where it hung and exits with the code it
    would have returned (:class:`_TeardownWatchdog`). The same limit holds when it stops before
    ``close()`` could run (a signal or an error during start-up): the context's shutdown then
    destroys what the factory created. An error raised because the context
    is going away (another process shut it down) is a quiet stop too. Any other exception
    propagates (traceback, non-zero exit). A second Ctrl-C interrupts the orderly stop.
    """
    logger = rclpy.logging.get_logger(name)
    stop = _StopRequest()
    stop.install()
    code = 0
    watchdog = None

    def stop_code() -> int:
        # a fatal error another thread reported while the node stopped makes it a fatal stop
        return fatal.EXIT_FATAL if code == 0 and fatal.pending() is not None else code
    try:
        with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
            try:
                try:
                    node = factory()
                except (ParameterError, fatal.FatalError) + tuple(startup_errors) as exc:
                    logger.fatal(f'cannot start: {exc}')
                    code = startup_exit_code
                    return code
                stop.armed = True
                if threads > 1:
                    executor = MultiThreadedExecutor(num_threads=threads)
                else:
                    executor = SingleThreadedExecutor()
                executor.add_node(node)
                try:
                    _spin(node, executor, stop)
                except fatal.FatalError as exc:
                    logger.fatal(f'stopping: {exc}')
                    code = fatal.EXIT_FATAL
                except (KeyboardInterrupt, ExternalShutdownException):
                    pass
                except Exception as exc:  # noqa: BLE001 - re-raised unless the context went away
                    if executor.context.ok() and not stop.requested:
                        raise
                    logger.debug(f'error while the context shut down, ignored: {exc!r}')
                finally:
                    stop.requested = True      # a second signal from here on interrupts
                    drained = _drain(executor, stop_timeout_s, logger)
                    if not executor.shutdown(timeout_sec=stop_timeout_s) or not drained:
                        logger.warning(f'callbacks still running {stop_timeout_s:g} s after the '
                                       'stop; destroying the node anyway')
                    try:
                        close = getattr(node, 'close', None)
                        if callable(close):
                            close()
                    finally:
                        # the node's data is closed: from here on only the middleware's teardown
                        # is left, and it must not hold the process (see _TeardownWatchdog)
                        watchdog = _TeardownWatchdog(name, teardown_timeout_s, logger, stop_code)
                        node.destroy_node()
                if stop_code() != code:
                    logger.fatal(f'stopping: {fatal.pending()}')
                    code = fatal.EXIT_FATAL
            finally:
                if watchdog is None:
                    # left before the node's close() ran: a stop or a failure during start-up.
                    # The context's shutdown destroys what the factory created; bound it too
                    watchdog = _TeardownWatchdog(name, teardown_timeout_s, logger, stop_code,
                                                 after='a stop during start-up')
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if watchdog is not None:
            watchdog.done()
        stop.restore()
    return code
