"""A process exit, with a chosen code, that needs no Python thread to run.

The teardown watchdog of :mod:`store_common.ros` ends a node whose middleware teardown hung
after its data was closed. When the hang is inside a call that keeps the interpreter's lock
(rclpy's ``Service.destroy`` in Fast DDS did), no Python thread can run, and the only exit
left was faulthandler's, which always exits with code 1: the run then reported a failed stop
although the node had stopped cleanly but for the middleware.

:class:`ExitTimer` arms a POSIX timer (``timer_create`` with ``SIGEV_THREAD``) whose expiry
makes the C library start a thread that calls ``_exit(code)`` directly: no interpreter lock,
no Python code, the code chosen when it is armed. Linux (glibc) only; elsewhere the
constructor raises :class:`OSError` and callers fall back to faulthandler.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_SIGEV_THREAD = 2           # <bits/sigevent-consts.h> on Linux
_CLOCK_MONOTONIC = 1


class _Sigval(ctypes.Union):
    _fields_ = [('sival_int', ctypes.c_int), ('sival_ptr', ctypes.c_void_p)]


class _SigevThread(ctypes.Structure):
    _fields_ = [('function', ctypes.c_void_p), ('attribute', ctypes.c_void_p)]


class _Sigevent(ctypes.Structure):
    # glibc: union sigval; int sigev_signo; int sigev_notify; union {int _pad[12];
    # struct {void (*)(sigval_t); pthread_attr_t *}} -- 64 bytes on LP64
    _fields_ = [('value', _Sigval), ('signo', ctypes.c_int), ('notify', ctypes.c_int),
                ('thread', _SigevThread), ('_pad', ctypes.c_byte * 32)]


class _Timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [('interval', _Timespec), ('value', _Timespec)]


def _libc():
    if not sys.platform.startswith('linux') or ctypes.sizeof(ctypes.c_void_p) != 8:
        raise OSError('ExitTimer needs 64-bit Linux')
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, 'timer_create'):           # glibc < 2.34: the timers are in librt
        name = ctypes.util.find_library('rt')
        if name is None:
            raise OSError('no timer_create in the C library')
        libc = ctypes.CDLL(name, use_errno=True)
    return libc


class ExitTimer:
    """``_exit(code)`` after ``delay_s`` seconds unless :meth:`cancel` is called first."""

    def __init__(self, delay_s: float, code: int):
        if delay_s <= 0:
            raise ValueError(f'delay_s must be > 0, got {delay_s}')
        if not 0 <= code <= 255:
            raise ValueError(f'exit code must be 0-255, got {code}')
        libc = _libc()
        exit_fn = ctypes.CDLL(None)._exit
        event = _Sigevent()
        event.value.sival_ptr = code        # whole register: _exit(int) reads its low 32 bits
        event.notify = _SIGEV_THREAD
        event.thread.function = ctypes.cast(exit_fn, ctypes.c_void_p).value
        self._timer = ctypes.c_void_p()
        self._libc = libc
        if libc.timer_create(_CLOCK_MONOTONIC, ctypes.byref(event),
                             ctypes.byref(self._timer)) != 0:
            raise OSError(ctypes.get_errno(), 'timer_create failed')
        spec = _Itimerspec()
        spec.value.tv_sec = int(delay_s)
        spec.value.tv_nsec = int(round((delay_s - int(delay_s)) * 1e9))
        if libc.timer_settime(self._timer, 0, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            libc.timer_delete(self._timer)
            raise OSError(err, 'timer_settime failed')

    def cancel(self) -> None:
        """Disarm; idempotent."""
        if self._timer is not None:
            self._libc.timer_delete(self._timer)
            self._timer = None
