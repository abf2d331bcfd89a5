"""What a request does with its result when it is not a plain call (c_src/context/executor.cpp).

dispatch(mode, result, reply) returns the value to reply with now, or `reply` itself when the
reply comes later, through reply.ok(value) / reply.error(exc) / reply.chunk(item):
  ASYNC        py:async_call, py:spawn_call, py_event_loop:create_task: an awaitable runs as a
               task on the context's own event loop; any other value is the result.
  STREAM       py:stream, py:stream_eval: a generator (or any iterable) is collected into a
               list, one item at a time by a Python loop (so a timeout's interrupt lands between
               items even for a C iterator such as itertools.count()), at most
               reply.max_items items (app env stream_max_items); an async generator is
               collected by a task.
  STREAM_START py:stream_start: each item is sent to the owner as it is produced.

The context's event loop is an ErlangEventLoop hosted by the context (one per context thread),
created at first use and stepped by the context between requests.
"""

import asyncio
import functools
import inspect
import threading

import _erlang_loop

PLAIN, ASYNC, STREAM, STREAM_START = 0, 1, 2, 3

_local = threading.local()  # one hosted loop per context thread


def context_loop():
    """The event loop of the context running this thread, created at first use."""
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _erlang_loop.ErlangEventLoop()
        loop._erlang_host()
        _local.loop = loop
    return loop


def stop_context_loop(timeout=1.0):
    """Cancel the tasks of this context's loop (their callers get an error), give them
    timeout seconds to finish, and close it."""
    loop = getattr(_local, "loop", None)
    _local.loop = None
    if loop is not None and not loop.is_closed():
        loop._erlang_shutdown(timeout)
        return True
    return False


def dispatch(mode, result, reply):
    if mode == ASYNC:
        if inspect.isawaitable(result):
            _start(result, reply)
            return reply
        return result
    if mode == STREAM:
        if hasattr(result, "__aiter__"):
            _start(_collect(result, reply.max_items), reply)
            return reply
        return _collect_sync(result, reply.max_items)
    if mode == STREAM_START:
        if hasattr(result, "__aiter__"):
            _start(_stream(result, reply), reply)
            return reply
        _stream_sync(result, reply)
        return None
    raise ValueError(f"unknown result mode {mode!r}")


def _start(awaitable, reply):
    loop = context_loop()
    task = asyncio.ensure_future(awaitable, loop=loop)
    loop._erlang_replies[task] = reply  # cancelled when its caller gives up
    task.add_done_callback(functools.partial(_task_done, reply))


def _task_done(reply, task):
    task.get_loop()._erlang_replies.pop(task, None)
    if task.cancelled():
        reply.error(asyncio.CancelledError("the task was cancelled"))
    elif task.exception() is not None:
        reply.error(task.exception())
    else:
        reply.ok(task.result())


def _too_many(limit):
    return OverflowError(f"the stream gave more than {limit} items (erlang_python app env stream_max_items)")


def _collect_sync(iterable, limit):
    # Not list(iterable): that loops in C, where no interrupt lands and memory has no bound.
    items = []
    append = items.append
    if limit is None:
        for item in iterable:
            append(item)
        return items
    for item in iterable:
        if len(items) >= limit:
            raise _too_many(limit)
        append(item)
    return items


async def _collect(agen, limit):
    items = []
    async for item in agen:
        if limit is not None and len(items) >= limit:
            raise _too_many(limit)
        items.append(item)
    return items


async def _stream(agen, reply):
    try:
        async for item in agen:
            if not reply.chunk(item):
                break  # py:stream_cancel
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            await aclose()


def _stream_sync(iterable, reply):
    it = iter(iterable)
    try:
        for item in it:
            if not reply.chunk(item):
                break  # py:stream_cancel
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()

