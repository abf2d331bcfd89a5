"""Threads that Python code starts in a context run at normal priority (src/py_context.erl).

A context thread at `thread_priority` `auto` (or `idle`) runs at SCHED_IDLE, and a thread
inherits its creator's scheduling policy. A thread started by Python code in a context
(`threading`, `concurrent.futures`, asyncio's executor) is not watched by the priority
governor, so on a busy host it would get no CPU at all; while it holds the GIL, every context
of its interpreter (all worker contexts) would wait for it. So such a thread leaves SCHED_IDLE
as it starts: it runs at normal priority, as any thread of the node.

install() is idempotent and runs once in every interpreter a context uses.
"""

import _thread
import os

_IDLE = getattr(os, "SCHED_IDLE", None)


def leave_idle():
    """Moves the calling thread from SCHED_IDLE to normal scheduling (nothing otherwise)."""
    if _IDLE is None:
        return
    try:
        if os.sched_getscheduler(0) == _IDLE:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        pass  # not allowed here: the thread stays as it is


def _starting(function):
    """function, run by a new thread that first leaves SCHED_IDLE (marked as such)."""
    def started(*args, **kwargs):
        leave_idle()
        return function(*args, **kwargs)

    started._erlang_leaves_idle = True
    return started


def install():
    """Makes threads started from now on in this interpreter leave SCHED_IDLE.

    Wraps _thread's start functions; `threading` takes its own reference to them when it is
    imported, so when it is not imported yet it will take the wrapped ones (no import here: an
    owngil interpreter that never starts a thread does not pay for `threading`). When it is
    imported already, its Thread._bootstrap is wrapped instead.
    """
    import sys

    for name in ("start_new_thread", "start_new", "start_joinable_thread"):
        start = getattr(_thread, name, None)
        if start is not None and not getattr(start, "_erlang_leaves_idle", False):
            setattr(_thread, name, _wrapped_start(start))
    if "threading" in sys.modules:
        # Imported already, or being imported by another thread of this interpreter (worker
        # contexts share one): the import statement waits for that import to finish, where
        # sys.modules would give the partially initialized module, without Thread yet.
        import threading
        bootstrap = threading.Thread._bootstrap
        if not getattr(bootstrap, "_erlang_leaves_idle", False):
            threading.Thread._bootstrap = _starting(bootstrap)  # a method again, on the class


def _wrapped_start(start):
    """start_new_thread(function, args, kwargs) or start_joinable_thread(function, ...), the
    new thread first leaving SCHED_IDLE."""
    def start_thread(function, *args, **kwargs):
        return start(_starting(function), *args, **kwargs)

    start_thread._erlang_leaves_idle = True
    return start_thread
