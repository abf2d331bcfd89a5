"""ErlangEventLoop: asyncio's own selector event loop, with the context's thread as its poller.

The loop is asyncio's SelectorEventLoop (transports, servers, sock_*, subprocesses, executors
are asyncio's code); only the selector differs. ErlangSelector registers descriptors in the
context thread's own epoll set (c_src/aio/fd_waiter.hpp), which that thread sleeps on with its
request queue: while the loop waits the context's thread sleeps, or serves the context's other
requests. So an idle loop costs no thread of its own and no CPU.

A loop runs in one of two ways:
  * owned: erlang.run(main()), asyncio.Runner(loop_factory=erlang.new_event_loop) or
    loop.run_until_complete() inside a request; select() waits for the next event;
  * hosted: the context's own loop (py:async_call, py_event_loop); the context steps it
    between requests whenever a descriptor is ready, a timer is due or work was scheduled.

Used only on the thread of the context that created the loop (like any asyncio loop, whose
thread-safe entry point is call_soon_threadsafe).
"""

import asyncio
import selectors
import signal
import sys
import threading
import time
import warnings
from asyncio import coroutines
from asyncio import events
from asyncio import selector_events

import erlang
from _erlang_schedule import LeanScheduling

__all__ = ["ErlangEventLoop", "ErlangEventLoopPolicy", "EventLoopPolicy", "new_event_loop", "run", "install",
           "sleep"]

# The running Python's version, read by install(); a module attribute so that tests can check
# the behaviour of other versions.
_VERSION = sys.version_info[:2]

_ENTRY_POINTS = "erlang.run(main()) or asyncio.Runner(loop_factory=erlang.new_event_loop)"


class ErlangSelector(selectors._BaseSelectorImpl):
    """A selectors.BaseSelector whose readiness comes from the context's thread (erlang._Poller)."""

    def __init__(self):
        super().__init__()
        self._poller = erlang._Poller()
        self._hosted = False
        self._on_signal = None  # the loop's signal dispatcher
        self._direct = {}  # fd -> callback(mask) of the direct registrations (add_direct)

    def register(self, fileobj, events, data=None):
        key = super().register(fileobj, events, data)
        try:
            self._poller.register(key.fd, events)
        except BaseException:
            super().unregister(fileobj)
            raise
        return key

    def unregister(self, fileobj):
        key = super().unregister(fileobj)
        try:
            self._poller.unregister(key.fd)
        except (KeyError, ValueError, RuntimeError):
            pass  # closed already, or an unclosed loop collected on another thread: close() stops it
        return key

    def modify(self, fileobj, events, data=None):
        try:
            key = self._fd_to_key[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if events != key.events:
            if not events or events & ~(selectors.EVENT_READ | selectors.EVENT_WRITE):
                raise ValueError(f"Invalid events: {events!r}")
            self._poller.modify(key.fd, events)
            key = key._replace(events=events, data=data)
            self._fd_to_key[key.fd] = key
        elif data != key.data:
            key = key._replace(data=data)
            self._fd_to_key[key.fd] = key
        return key

    # --- direct registrations: the reactor's connections (priv/_erlang_reactor.py) ----------
    # Not asyncio's: select() itself calls callback(mask) for each ready descriptor, with no
    # Handle, no ready queue and no per-event re-arming (the modes are level-triggered and stay
    # armed: the callback reads or writes until EAGAIN, and ignores a mode it no longer wants).
    # A callback must not raise (an exception would end the loop's iteration).

    def add_direct(self, fd, events, callback):
        if fd in self._direct:
            raise KeyError(f"{fd} is already registered")
        self._poller.register(fd, events, True)
        self._direct[fd] = callback

    def modify_direct(self, fd, events):
        """events 0: nothing watched until the next modify_direct."""
        self._poller.modify(fd, events)

    def remove_direct(self, fd):
        if self._direct.pop(fd, None) is not None:
            try:
                self._poller.unregister(fd)
            except (KeyError, ValueError, RuntimeError):
                pass  # closed already

    def select(self, timeout=None):
        if self._hosted:
            ready = self._poller.poll()
        elif timeout is not None and timeout <= 0:
            ready = self._poller.wait(0)
        else:
            ready = self._wait(timeout)
        fd_to_key = self._fd_to_key
        direct = self._direct
        out = []
        for fd, mask in ready:
            key = fd_to_key.get(fd)
            if key is not None:
                out.append((key, mask & key.events))
            elif fd in direct:
                direct[fd](mask)
            elif fd < 0 and self._on_signal is not None:
                self._on_signal(-fd)  # an OS signal routed by OTP (see ErlangEventLoop.add_signal_handler)
        return out

    def _wait(self, timeout):
        # The context serves its other requests while this loop waits; they must not see this
        # loop as the thread's running loop (their own asyncio.run() would refuse to start).
        running = events._get_running_loop()
        hooks = sys.get_asyncgen_hooks()
        events._set_running_loop(None)
        sys.set_asyncgen_hooks(None, None)
        try:
            return self._poller.wait(timeout)
        finally:
            events._set_running_loop(running)
            sys.set_asyncgen_hooks(*hooks)

    def close(self):
        super().close()
        self._direct.clear()
        self._poller.close()


class _ErlangSocketTransport(selector_events._SelectorSocketTransport):
    """asyncio's socket transport, reading into its loop's reusable buffer: the stock one asks
    recv() for a new max_size (256 KiB) bytes object per read, which a context thread's malloc
    arena maps and unmaps again and again; the data handed to the protocol is the same."""

    def _read_ready__data_received(self):
        if self._conn_lost:
            return
        buffer = self._loop._erlang_read_buffer
        if self.max_size != len(buffer):
            return super()._read_ready__data_received()  # a size set by the user: asyncio's path
        try:
            nbytes = self._sock.recv_into(buffer)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not nbytes:
            self._read_ready__on_eof()
            return
        try:
            self._protocol.data_received(bytes(buffer[:nbytes]))
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")


# The signals OTP routes to Erlang (os:set_signal/2) that a loop may handle, by number.
_ROUTABLE_SIGNALS = {int(getattr(signal, name.upper())): name
                     for name in ("sighup", "sigquit", "sigabrt", "sigalrm", "sigterm", "sigusr1", "sigusr2",
                                  "sigtstp")}


# SIGCHLD: OTP leaves it to the BEAM, so the library catches it itself while a loop asks for it
# (c_src/aio/child_signal.hpp); asyncio's child watchers add a handler for it.
_CHILD_SIGNAL = int(signal.SIGCHLD)


_is_coroutine_function = getattr(coroutines, "_iscoroutinefunction", coroutines.iscoroutinefunction)


def _route_signal(name):
    """Has OTP route the signal to erl_signal_server: at once inside a request, else through
    erl_signal_server's py_signal handler (a message; py_signal:routed() shows it done)."""
    try:
        erlang.call("_py_signal_route", erlang.atom(name))
    except RuntimeError:
        erlang.send(erlang.atom("erl_signal_server"), (erlang.atom("py_signal_route"), erlang.atom(name)))


class ErlangEventLoop(LeanScheduling, asyncio.SelectorEventLoop):
    """An asyncio event loop whose descriptor readiness and waiting are driven by its context
    (its timers and iterations: asyncio's rules in fewer frames, see _erlang_schedule.py)."""

    def __init__(self):
        # Closed until the base class has set the loop up: when ErlangSelector() refuses (not
        # a context thread), BaseEventLoop.__del__ finds a closed loop, not a missing attribute.
        self._closed = True
        super().__init__(ErlangSelector())
        self._erlang_hosted = False
        self._erlang_in_step = False
        self._erlang_replies = {}  # task -> the erlang._Reply its result goes to
        self._erlang_shutdown_hooks = []  # called first by _erlang_shutdown (the reactor's)
        self._erlang_signal_handlers = {}  # signal number -> events.Handle
        self._selector._on_signal = self._erlang_handle_signal
        # What socket transports read into (one at a time: the loop runs on one thread).
        self._erlang_read_buffer = memoryview(bytearray(selector_events._SelectorSocketTransport.max_size))

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        if _VERSION >= (3, 12):
            self._ensure_fd_no_transport(sock)  # as the base class does since 3.12
        return _ErlangSocketTransport(self, sock, protocol, waiter, extra, server)

    # --- hosted mode: the context steps the loop between requests --------------------------

    def _erlang_host(self):
        """Hand the loop to the context of this thread, which steps it from now on."""
        self._erlang_hosted = True
        self._call_soon = self._erlang_hosted_call_soon
        self.call_at = self._erlang_hosted_call_at
        self._selector._hosted = True
        self._thread_id = threading.get_ident()
        self._selector._poller.host(self)

    def _erlang_step(self):
        """One iteration; returns when the next one is due: None (on I/O or new work only),
        0.0 (at once) or a loop.time() value."""
        previous = events._get_running_loop()
        hooks = sys.get_asyncgen_hooks()
        events._set_running_loop(self)
        sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook, finalizer=self._asyncgen_finalizer_hook)
        self._erlang_in_step = True
        try:
            self._run_once()
        finally:
            self._erlang_in_step = False
            events._set_running_loop(previous)
            sys.set_asyncgen_hooks(*hooks)
            if self._selector is not None:  # None once the loop is closed
                self._selector._poller.arm()
        if self._ready:
            return 0.0
        if self._scheduled:
            return self._scheduled[0]._when
        return None

    def _erlang_cancel_abandoned(self):
        """Cancel the tasks whose callers gave up (timed out, exited, cancelled the stream)."""
        for task, reply in list(self._erlang_replies.items()):
            if reply.cancelled:
                task.cancel()

    def _erlang_shutdown(self, timeout=1.0):
        """Cancel every task (their callers get an error reply), give them timeout seconds to
        finish, and close the loop."""
        for hook in self._erlang_shutdown_hooks:
            try:
                hook()
            except Exception:
                pass  # a hook's failure must not keep the loop open
        self._erlang_shutdown_hooks = []
        tasks = [t for t in asyncio.all_tasks(self) if not t.done()]
        for task in tasks:
            task.cancel()
        deadline = time.monotonic() + timeout
        while (self._ready or any(not t.done() for t in tasks)) and time.monotonic() < deadline:
            self._erlang_step()  # until the tasks' done callbacks (their replies) have run
        self._selector._poller.host(None)
        self._erlang_hosted = False
        del self._call_soon, self.call_at
        self._selector._hosted = False
        self._thread_id = None
        self.close()

    # A hosted loop's scheduling asks its context for a step (instance attributes set by
    # _erlang_host: an owned loop schedules through asyncio's methods at their own cost).
    def _erlang_hosted_call_soon(self, callback, args, context):
        handle = asyncio.SelectorEventLoop._call_soon(self, callback, args, context)
        self._erlang_request_step()
        return handle

    def _erlang_hosted_call_at(self, when, callback, *args, context=None):
        handle = LeanScheduling.call_at(self, when, callback, *args, context=context)
        self._erlang_request_step()
        return handle

    def _erlang_request_step(self):
        """Work scheduled outside a step, on the context's thread: ask the context for a step
        (other threads go through call_soon_threadsafe's self-pipe, a ready descriptor)."""
        if self._erlang_hosted and not self._erlang_in_step and threading.get_ident() == self._thread_id:
            self._selector._poller.request_step()

    # --- OS signals, routed by OTP (see src/py_signal.erl) ---------------------------------

    def add_signal_handler(self, sig, callback, *args):
        """Run callback(*args) on this loop when the node receives signal sig. Only the signals
        OTP routes (SIGHUP, SIGQUIT, SIGABRT, SIGALRM, SIGTERM, SIGUSR1, SIGUSR2, SIGTSTP) and
        SIGCHLD; others raise RuntimeError, as signals that cannot be caught do on asyncio's loop."""
        if coroutines.iscoroutine(callback) or _is_coroutine_function(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._erlang_check_signal(sig)
        self._check_closed()
        name = _ROUTABLE_SIGNALS.get(sig)
        if name is None and sig != _CHILD_SIGNAL:
            raise RuntimeError(f"sig {sig:d} cannot be caught: OTP routes only "
                               + ", ".join(sorted(n.upper() for n in _ROUTABLE_SIGNALS.values()))
                               + " to Erlang (os:set_signal/2); SIGCHLD is caught by erlang_python")
        handle = events.Handle(callback, args, self, None)
        self._selector._poller.subscribe_signal(sig)  # OSError if SIGCHLD's handler cannot be set
        self._erlang_signal_handlers[sig] = handle
        if name is not None:
            _route_signal(name)

    def remove_signal_handler(self, sig):
        """Remove the handler of signal sig; True if there was one."""
        self._erlang_check_signal(sig)
        if self._erlang_signal_handlers.pop(sig, None) is None:
            return False
        if self._selector is not None:
            self._selector._poller.unsubscribe_signal(sig)
        return True

    @staticmethod
    def _erlang_check_signal(sig):
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"invalid signal number {sig}")

    def _erlang_handle_signal(self, sig):
        handle = self._erlang_signal_handlers.get(sig)
        if handle is None:
            return  # removed since it was sent
        if handle._cancelled:
            self.remove_signal_handler(sig)
        else:
            self._add_callback(handle)

    def close(self):
        for sig in list(getattr(self, "_erlang_signal_handlers", ())):
            self.remove_signal_handler(sig)
        super().close()

    def run_forever(self):
        if self._erlang_hosted:
            raise RuntimeError("this loop is driven by its context: add tasks with create_task()")
        return super().run_forever()


class ErlangEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """Creates ErlangEventLoops on context threads (stock loops on other threads)."""

    def new_event_loop(self):
        try:
            return ErlangEventLoop()
        except RuntimeError:
            return super().new_event_loop()


# erlang_python 3.x and 4.x's (and uvloop's) name for the policy.
EventLoopPolicy = ErlangEventLoopPolicy


def new_event_loop():
    """A new ErlangEventLoop (only on a context's thread)."""
    return ErlangEventLoop()


def run(main, *, debug=None):
    """Run the coroutine main on a new ErlangEventLoop and return its result."""
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


def install(silent=False):
    """Legacy: set asyncio's global policy so that asyncio.run() uses ErlangEventLoop.

    Python 3.12 and 3.13 deprecate global policies: a DeprecationWarning is emitted unless
    silent is true. Python 3.14+ refuses: use the entry points that work everywhere.
    """
    if _VERSION >= (3, 14):
        raise RuntimeError(f"erlang.install() is not available on Python 3.14+: use {_ENTRY_POINTS}")
    if _VERSION >= (3, 12) and not silent:
        warnings.warn(f"erlang.install() sets asyncio's global event loop policy, which Python "
                      f"{_VERSION[0]}.{_VERSION[1]} deprecates: use {_ENTRY_POINTS}",
                      DeprecationWarning, stacklevel=3)
    asyncio.set_event_loop_policy(ErlangEventLoopPolicy())


def sleep(seconds):
    """An awaitable that suspends only the current task when an event loop runs on this
    thread; otherwise sleeps this thread (a context thread: no BEAM scheduler waits)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        time.sleep(seconds)
        return None
    return asyncio.sleep(seconds)
