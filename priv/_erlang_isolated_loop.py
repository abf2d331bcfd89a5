"""The event loop of an isolated context's child (priv/py_child; served by _erlang_isolated).

An 'async' request (py:spawn_call/4,5, py:cast/4,5, py_event_loop:create_task_on/4,5 and
run_on/4,5 on an isolated context) calls its function at once; an awaitable result becomes a
task of this loop, and the request is answered when the task ends. The loop is a plain asyncio
loop, made at first use (or by py_event_loop:start/1) and run by the server whenever it waits
for the next frame: tasks, their timers and the servers they started go on between requests,
and pause while a request runs. A 'cancel' frame (the caller timed out or exited) cancels the
request's task; py_event_loop:stop/1 cancels every task and closes the loop.

Thread: the child's main thread only. asyncio is imported at the first use of the loop, not
when the child starts.
"""

import sys

__all__ = ["context_loop", "stop_context_loop", "start", "cancel", "run_until_readable", "wake",
           "running_task", "start_worker", "stop_worker"]


class _Loop:
    loop = None
    tasks: dict = {}  # request id -> the task that answers it
    ready = None  # the future run_until_readable waits on
    reply = None  # reply(ident, result): sends the answer of a request (set by setup)
    error = None  # error(exc): the result term of an exception
    ok = None  # the atom ok
    loop_stopped = None  # loop_stopped(ctx_pid, serial): tells the context its worker loop ended
    worker = None  # (ctx_pid, serial) while the loop is the context's worker loop


_s = _Loop()


def setup(reply, error, ok, loop_stopped) -> None:
    """The server's way to answer a request, to turn an exception into a result, its ok, and
    to tell the context process that its worker loop was stopped under it."""
    _s.reply = reply
    _s.error = error
    _s.ok = ok
    _s.loop_stopped = loop_stopped


def start_worker(ctx_pid, serial) -> bool:
    """py_context:start_loop/1,2 (src/py_isolated_loop.erl): the loop (made if needed) is the
    context's worker loop number serial."""
    context_loop()
    _s.worker = (ctx_pid, serial)
    return True


def stop_worker(serial, grace: float) -> bool:
    """py_context:stop_loop/1,2: stops worker loop serial (its tasks cancelled, grace seconds
    to finish, the loop closed). False when serial is not the running worker loop."""
    if _s.worker is None or _s.worker[1] != serial:
        return False
    _s.worker = None  # this stop reports the end itself
    stop_context_loop(grace)
    return True


def context_loop() -> None:
    """py_event_loop:start/1: makes the loop unless it exists."""
    import asyncio
    if _s.loop is None or _s.loop.is_closed():
        _s.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_s.loop)


def stop_context_loop(timeout: float = 1.0) -> bool:
    """py_event_loop:stop/1: cancels the tasks (their callers get CancelledError), gives them
    timeout seconds to finish, answers those that did not, and closes the loop."""
    import asyncio
    loop = _s.loop
    if loop is None or loop.is_closed():
        return False
    if loop.is_running():
        raise RuntimeError("the loop cannot be stopped from one of its own tasks")
    if _s.worker is not None:  # py_event_loop:stop/1 under a worker loop: its owner is told
        ctx_pid, serial = _s.worker
        _s.worker = None
        _s.loop_stopped(ctx_pid, serial)
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=timeout))
    loop.run_until_complete(asyncio.sleep(0))  # the done callbacks of the last tasks
    for ident in list(_s.tasks):
        _answer(ident, _s.error(asyncio.CancelledError("the event loop was stopped")))
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
        _s.loop = None
        asyncio.set_event_loop(None)
    return True


def start(ident, target, args, kwargs):
    """Calls target; returns (False, result) when the result is not awaitable, else makes it a
    task answered with ident when it ends and returns (True, None)."""
    result = target(*args, **kwargs)
    if not hasattr(type(result), "__await__"):  # a coroutine, a future or another awaitable
        return False, result
    context_loop()
    task = sys.modules["asyncio"].ensure_future(result, loop=_s.loop)
    _s.tasks[ident] = task
    task.add_done_callback(lambda done: _task_done(ident, done))
    return True, None


def _task_done(ident, task) -> None:
    import asyncio
    if ident not in _s.tasks:
        return
    if task.cancelled():
        result = _s.error(asyncio.CancelledError("the task was cancelled"))
    elif task.exception() is not None:
        result = _s.error(task.exception())
    else:
        result = (_s.ok, task.result())
    _answer(ident, result)


def _answer(ident, result) -> None:
    if _s.tasks.pop(ident, None) is not None:
        _s.reply(ident, result)


def cancel(ident) -> None:
    """A 'cancel' frame: the task of request ident is cancelled (its answer follows)."""
    task = _s.tasks.get(ident)
    if task is not None:
        task.cancel()


def run_until_readable(fd: int) -> None:
    """Runs the loop, if there is one, until fd is readable (the next frame) or wake() is
    called; returns at once when there is no loop."""
    loop = _s.loop
    if loop is None or loop.is_closed():
        return
    ready = _s.ready = loop.create_future()
    loop.add_reader(fd, _set_ready, ready)
    try:
        loop.run_until_complete(ready)
    except (SystemExit, KeyboardInterrupt) as exc:
        # Raised by a task (asyncio lets these leave the loop): that task answers its request
        # with it when the loop runs next; the server goes on.
        print("erlang_python: a task of the isolated context's loop raised %r" % (exc,), file=sys.stderr)
    finally:
        loop.remove_reader(fd)
        _s.ready = None


def _set_ready(ready) -> None:
    if not ready.done():
        ready.set_result(None)


def wake() -> None:
    """A frame was read ahead (by a callback in a task): the server takes it before the loop
    runs on."""
    if _s.ready is not None:
        _set_ready(_s.ready)


def running_task():
    """The task whose step runs now, or None."""
    import asyncio
    loop = _s.loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return asyncio.current_task(loop)
