"""Errors after which a node must stop, whichever thread meets them.

A database that is full, read-only, gone or damaged cannot take the next write, and carrying on
would drop inputs that the sender believes delivered. Such an error is an instance of
:class:`FatalError` (and of the component's own error class, see :func:`fatal_class`).
``store_common.ros.run_node`` logs it as fatal and returns a non-zero exit code, so the
supervisor restarts the node once the cause is fixed; inputs are then redelivered (EVENT_QOS is
transient-local) and de-duplicated by id.

An error met in a thread that is not the executor's (the review console's HTTP server) is
recorded with :func:`report`; ``run_node`` checks :func:`pending` and stops the node.

No rclpy here.
"""
from __future__ import annotations

import threading

EXIT_FATAL = 3   # exit code of a node stopped by a FatalError met while it ran


class FatalError(Exception):
    """The process cannot go on; ``str()`` names what failed and where."""


_classes: dict[type, type] = {}
_pending: list[BaseException] = []
_lock = threading.Lock()


def fatal_class(base: type[Exception]) -> type[Exception]:
    """A subclass of both ``base`` and :class:`FatalError` (cached), with ``base``'s name.

    ``except base`` and ``pytest.raises(base)`` still catch it; ``except FatalError`` too.
    """
    if issubclass(base, FatalError):
        return base
    with _lock:
        cls = _classes.get(base)
        if cls is None:
            cls = type(base.__name__, (base, FatalError),
                       {'__module__': base.__module__, '__doc__': base.__doc__})
            _classes[base] = cls
        return cls


def report(exc: BaseException) -> None:
    """Record a fatal error so the node stops even if the thread that met it swallows it."""
    with _lock:
        if not _pending:
            _pending.append(exc)


def pending() -> BaseException | None:
    """The first fatal error reported in this process, or None."""
    with _lock:
        return _pending[0] if _pending else None


def clear() -> None:
    """Forget reported errors (tests)."""
    with _lock:
        _pending.clear()
