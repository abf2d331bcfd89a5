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
    def started(*args, **kwargs):
        leave_idle()
        return function(*args, **kwargs)

    return started


def install():
    """Makes threads started from now on in this interpreter leave SCHED_IDLE."""
    import threading

    bootstrap = threading.Thread._bootstrap
    if not getattr(bootstrap, "_erlang_leaves_idle", False):
        def _bootstrap(self):
            leave_idle()
            bootstrap(self)

        _bootstrap._erlang_leaves_idle = True
        threading.Thread._bootstrap = _bootstrap
    # Code that starts threads with _thread itself (threading does not: it took its own
    # reference when it was imported, and its threads are covered above).
    start = _thread.start_new_thread
    if not getattr(start, "_erlang_leaves_idle", False):
        def start_new_thread(function, args, kwargs=None):
            return start(_starting(function), args, {} if kwargs is None else kwargs)

        start_new_thread._erlang_leaves_idle = True
        _thread.start_new_thread = start_new_thread
        if hasattr(_thread, "start_new"):  # the old alias (gone in 3.13)
            _thread.start_new = start_new_thread
