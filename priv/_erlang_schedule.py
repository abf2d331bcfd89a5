"""ErlangEventLoop's scheduling: asyncio's own rules, in fewer Python frames.

A `call_later(0)` chain spends its time in asyncio's Python, not in waiting: per timer the
stock loop runs call_later -> time -> call_at -> TimerHandle.__init__ -> Handle.__init__ ->
get_debug, and per iteration _run_once calls time() twice and _process_events even when the
poll found nothing. LeanScheduling keeps asyncio's semantics (the same heap of TimerHandles,
the same cancelled-timer cleanup, the same order of callbacks) with one frame per timer and one
clock read per iteration when the poll does not wait. Debug loops use asyncio's code unchanged
(slow-callback warnings, source tracebacks, thread checks).

Used on the loop's own thread only, like the methods it replaces.
"""

import contextvars
import heapq
import time
from asyncio import base_events
from asyncio import events

__all__ = ["LeanScheduling"]

_copy_context = contextvars.copy_context
_heappush = heapq.heappush
_heappop = heapq.heappop
_monotonic = time.monotonic
_base_time = base_events.BaseEventLoop.time
_MAX_TIMEOUT = base_events.MAXIMUM_SELECT_TIMEOUT
_MIN_SCHEDULED = base_events._MIN_SCHEDULED_TIMER_HANDLES
_MIN_CANCELLED_FRACTION = base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION


class _TimerHandle(events.TimerHandle):
    """asyncio's TimerHandle, set up in one frame (never for a debug loop: no source traceback)."""

    __slots__ = ()

    def __init__(self, when, callback, args, loop, context):
        self._context = _copy_context() if context is None else context
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None
        self._when = when
        self._scheduled = False


# The slots _TimerHandle sets; another Python's handles may have more: then asyncio's are used.
_KNOWN_SLOTS = {"_callback", "_args", "_cancelled", "_loop", "_source_traceback", "_repr", "__weakref__",
                "_context", "_scheduled", "_when"}
_HANDLE_SLOTS = set(events.Handle.__slots__) | set(events.TimerHandle.__slots__)
LEAN_HANDLES = _HANDLE_SLOTS == _KNOWN_SLOTS


class LeanScheduling:
    """Mixin for a BaseEventLoop subclass: call_later, call_at and _run_once with asyncio's
    behaviour and fewer frames. A loop whose time() is overridden (by a subclass or on the
    instance) keeps using it."""

    def call_later(self, delay, callback, *args, context=None):
        if self._debug or not LEAN_HANDLES or "call_at" in self.__dict__:
            return super().call_later(delay, callback, *args, context=context)
        if delay is None:
            raise TypeError("delay must not be None")
        clock = self.time  # time.monotonic unless time() was replaced (then the loop's own)
        now = _monotonic() if getattr(clock, "__func__", None) is _base_time else clock()
        return self._lean_call_at(now + delay, callback, args, context)

    def call_at(self, when, callback, *args, context=None):
        if self._debug or not LEAN_HANDLES:
            return super().call_at(when, callback, *args, context=context)
        return self._lean_call_at(when, callback, args, context)

    def _lean_call_at(self, when, callback, args, context):
        if when is None:
            raise TypeError("when cannot be None")
        if self._closed:
            raise RuntimeError("Event loop is closed")
        timer = _TimerHandle(when, callback, args, self, context)
        _heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    def _run_once(self):
        if self._debug:
            return super()._run_once()
        scheduled = self._scheduled
        count = len(scheduled)
        if count > _MIN_SCHEDULED and self._timer_cancelled_count / count > _MIN_CANCELLED_FRACTION:
            kept = []
            for handle in scheduled:
                if handle._cancelled:
                    handle._scheduled = False
                else:
                    kept.append(handle)
            heapq.heapify(kept)
            self._scheduled = scheduled = kept
            self._timer_cancelled_count = 0
        else:
            while scheduled and scheduled[0]._cancelled:
                self._timer_cancelled_count -= 1
                handle = _heappop(scheduled)
                handle._scheduled = False

        ready = self._ready
        clock = self.time
        if getattr(clock, "__func__", None) is _base_time:
            clock = _monotonic
        now = None
        if ready or self._stopping:
            timeout = 0
        elif scheduled:
            now = clock()
            timeout = scheduled[0]._when - now
            if timeout > _MAX_TIMEOUT:
                timeout = _MAX_TIMEOUT
            elif timeout < 0:
                timeout = 0
        else:
            timeout = None

        event_list = self._selector.select(timeout)
        if event_list:
            self._process_events(event_list)
        event_list = None  # no cycle through a raised exception's frames

        # The clock read for the timeout serves again when the poll did not wait: a timer that
        # falls due in between runs on the next iteration, which then does not wait either.
        if now is None or timeout:
            now = clock()
        end_time = now + self._clock_resolution
        while scheduled:
            handle = scheduled[0]
            if handle._when >= end_time:
                break
            handle = _heappop(scheduled)
            handle._scheduled = False
            ready.append(handle)

        # Only the callbacks ready now: those they schedule run after the next poll.
        popleft = ready.popleft
        for _ in range(len(ready)):
            handle = popleft()
            if not handle._cancelled:
                handle._run()
        handle = None
