"""Spans from Python, collected by the py_tracer process (src/py_tracer.erl, docs/logging.md).

    with erlang.Span('fetch', url=url) as span:
        span.event('got-headers', status=200)

    @erlang.trace()
    def work(): ...

py:enable_tracing() gives every interpreter the tracer's pid (enable/1); until then, and after
py:disable_tracing(), a Span costs one attribute test and sends nothing. Each span is sent as
it starts, gets an event and ends, with erlang.send: Python never waits for Erlang. The parent
of a span is the innermost span open on the same thread.
"""

import functools
import random
import threading
import time

import erlang

_sink = None  # the py_tracer pid while tracing is enabled
_local = threading.local()
_tags = {}


def enable(sink):
    global _sink
    _sink = sink


def disable():
    global _sink
    _sink = None


def _tag(name):
    tag = _tags.get(name)
    if tag is None:
        tag = _tags[name] = erlang.atom(name)
    return tag


def _now_us():
    return time.monotonic_ns() // 1000


def _stack():
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def _send(message):
    sink = _sink
    if sink is None:
        return
    try:
        erlang.send(sink, message)
    except Exception:
        pass  # tracing never breaks the traced code


class Span:
    """A traced operation: a context manager; attributes are keyword arguments."""

    def __init__(self, name, **attributes):
        self.name = str(name)
        self.attributes = attributes
        self.span_id = None
        self.parent_id = None

    def __enter__(self):
        if _sink is None:
            return self
        stack = _stack()
        self.span_id = random.getrandbits(64)
        self.parent_id = stack[-1] if stack else None
        stack.append(self.span_id)
        _send((_tag("span_start"), self.span_id, self.parent_id, self.name, self.attributes, _now_us()))
        return self

    def event(self, name, **attributes):
        """Records a named point in the span, with attributes."""
        if self.span_id is not None:
            _send((_tag("span_event"), self.span_id, str(name), attributes, _now_us()))

    def __exit__(self, exc_type, exc, tb):
        if self.span_id is None:
            return False
        stack = _stack()
        if stack and stack[-1] == self.span_id:
            stack.pop()
        if exc_type is None:
            _send((_tag("span_end"), self.span_id, _tag("ok"), {}, _now_us()))
        else:
            _send((_tag("span_end"), self.span_id, _tag("error"), {"exception": str(exc)}, _now_us()))
        return False


def trace(name=None):
    """Decorator: each call of the function runs in a Span named name (default: its
    qualified name)."""

    def wrap(fn):
        span_name = name or getattr(fn, "__qualname__", getattr(fn, "__name__", "call"))

        @functools.wraps(fn)
        def traced(*args, **kwargs):
            with Span(span_name):
                return fn(*args, **kwargs)

        return traced

    return wrap
