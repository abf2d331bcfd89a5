"""Worker loops: py_context:start_loop/1,2 and stop_loop/1,2 (src/py_context.erl).

A worker loop is the context's own hosted ErlangEventLoop (_erlang_async.context_loop), which
the context steps between its requests, marked as a worker loop: the context process learns
of its end (and tells the loop's owner with {py_loop_exit, Ctx, Result}). While it runs, the
context keeps serving calls, evals and callbacks.

When a worker loop ends, its listening servers (erlang.server.serve) are closed and every
connection of the loop is aborted, so that the peers see the worker go at once.

Runs on the context's thread only.
"""

import asyncio
import threading

import _erlang_async
import erlang

_local = threading.local()  # the worker loop of this context thread, if any


class _Worker:
    def __init__(self, loop, ctx_pid, serial):
        self.loop = loop
        self.ctx_pid = ctx_pid
        self.serial = serial
        self.stopping = False  # stop() runs: it reports the end itself

    def on_shutdown(self):
        close_everything(self.loop)
        if not self.stopping:  # py_event_loop:stop/1 or the context stopping
            _report(self.ctx_pid, self.serial, (erlang.atom("error"), erlang.atom("loop_stopped")))


def close_everything(loop):
    """Close the servers erlang.server made on loop and abort every connection it has."""
    for server in list(getattr(loop, "_erlang_servers", ())):
        try:
            server.close()
        except Exception:
            pass
    for transport in list(loop._transports.values()):
        try:
            transport.abort()
        except Exception:
            pass


def _report(ctx_pid, serial, result):
    try:
        erlang.send(ctx_pid, (erlang.atom("$py_loop_exit"), serial, result))
    except Exception:
        pass  # the context process is gone: it told the owner itself


def start(ctx_pid, serial):
    """Make this context's loop (created if needed) a worker loop numbered serial."""
    loop = _erlang_async.context_loop()
    current = getattr(_local, "worker", None)
    if current is not None and current.loop is loop and not loop.is_closed():
        current.stopping = True  # replaced: the old one reports nothing more
    worker = _Worker(loop, ctx_pid, serial)
    loop._erlang_shutdown_hooks.append(worker.on_shutdown)
    _local.worker = worker
    return True


def stop(serial, grace, waiter=None):
    """Stop worker loop serial: cancel its tasks, give them grace seconds, close the loop.
    False when it is not the running worker loop. waiter (a pid) is told when the stop starts
    to run: from then on, interrupting the context's running code lands here."""
    if waiter is not None:
        try:
            erlang.send(waiter, erlang.atom("stop_running"))
        except Exception:
            pass  # stop_loop gave up waiting
    worker = getattr(_local, "worker", None)
    if worker is None or worker.serial != serial:
        return False
    _local.worker = None
    worker.stopping = True
    loop = worker.loop
    if loop.is_closed():
        return True
    replies = dict(loop._erlang_replies)
    try:
        _erlang_async.stop_context_loop(grace)
    except BaseException:
        # erlang.Interrupted (stop_loop's interrupt) raised in a task that did not give the
        # thread back: close the loop without waiting any longer (the interrupter may raise
        # once more while it closes).
        for _ in range(3):
            try:
                if not loop.is_closed():
                    loop._erlang_shutdown(0)
                break
            except BaseException:
                continue
    # Tasks that ignored their cancellation for the whole grace period are dropped with the
    # loop: their callers still get their one reply.
    for task, reply in replies.items():
        if not task.done():
            loop._erlang_replies.pop(task, None)
            reply.error(asyncio.CancelledError("the worker loop was stopped"))
    return True
