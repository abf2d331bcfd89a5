"""erlang.reactor: per-connection protocol objects driven by descriptor readiness.

A reactor context (src/py_reactor_context.erl) hands each socket it receives to handoff() on
its own thread. The connection keeps its own dup() of the descriptor and registers it with the
context's hosted event loop (priv/_erlang_loop.py): readiness comes from the epoll set the
context's thread sleeps on, like any asyncio reader or writer of that loop, and the callbacks
below run on the context's thread between its requests. Nothing here blocks: every read and write is non-blocking.

Importing this module makes it importable as `erlang.reactor` in this interpreter.

Per context thread: the connections, the counters and the factory set on that thread (worker
contexts share one interpreter, so a module global would mix their connections). A factory
set on a thread that is not a reactor's is the interpreter's default.
"""

import logging
import os
import sys
import threading

import _erlang_async
import erlang

__all__ = ["Protocol", "ReactorBuffer", "set_protocol_factory", "get_protocol", "signal_write_ready", "ACTIONS",
           "init_connection", "on_read_ready", "on_write_ready", "close_connection"]

ACTIONS = ("continue", "write_pending", "read_pending", "async_pending", "close")
READ_SIZE = 65536
_FIRST_READ = 4096  # a connection's reads start at this size and grow while they come full

log = logging.getLogger("erlang.reactor")

_READ, _WRITE, _PAUSED = "read", "write", "paused"
_EVENTS = {_READ: 1, _WRITE: 2, _PAUSED: 0}  # selectors.EVENT_READ / EVENT_WRITE
_FAILED = object()  # what run() returns when the callback raised (the connection is closed)
_local = threading.local()
_default_factory = None
# Every open connection of this interpreter by descriptor, for signal_write_ready (any thread).
_live = {}
_live_lock = threading.Lock()
# Protocols driven by hand through init_connection/on_read_ready/... (no reactor, no loop).
_manual = {}

ReactorBuffer = erlang.ReactorBuffer  # what data_received gets: bytes the kernel read into it


class Protocol:
    """Base class of a connection's protocol: override data_received (and write_ready when
    the default, which writes write_buffer out, does not fit)."""

    def __init__(self):
        self.fd = -1
        self.client_info = {}
        self.write_buffer = bytearray()
        self.closed = False
        self.io_error = None  # the OSError read() or write() met: the reactor closes the connection

    def connection_made(self, fd, client_info):
        self.fd = fd
        self.client_info = client_info

    def data_received(self, data):
        raise NotImplementedError("data_received(data) must return an action")

    def write_ready(self):
        """Writes write_buffer out: 'continue' while some is left, then 'read_pending'."""
        if self.write_buffer:
            written = self.write(self.write_buffer)
            del self.write_buffer[:written]
        return "continue" if self.write_buffer else "read_pending"

    def connection_lost(self):
        pass

    def read(self, size=READ_SIZE):
        """Up to size bytes; b'' at end of stream, on an error or when nothing is available."""
        try:
            return os.read(self.fd, size)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            self.io_error = exc
            return b""

    def write(self, data):
        """Bytes written (0 when the socket's buffer is full or on an error)."""
        try:
            return os.write(self.fd, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self.io_error = exc  # e.g. the peer reset: waiting for writability would spin
            return 0


def set_protocol_factory(factory):
    """factory() makes the protocol of each new connection. Set on a reactor context's thread
    (its setup_code) it serves that context only; set elsewhere it is the interpreter's default."""
    global _default_factory
    if not callable(factory):
        raise TypeError("the protocol factory must be callable")
    state = getattr(_local, "reactor", None)
    if state is not None:
        state.factory = factory
    else:
        _default_factory = factory


def signal_write_ready(fd):
    """Tells the reactor that the response of the connection on fd, which answered
    "async_pending", is in its write_buffer: write_ready runs next, on the reactor's thread.
    Callable from any thread and from coroutines. True when fd is an open connection of this
    interpreter's reactors (a signal that comes before the "async_pending" answer is kept for it),
    False otherwise."""
    with _live_lock:
        conn = _live.get(fd)
    if conn is None:
        return False
    conn.signalled = True
    try:
        conn.loop.call_soon_threadsafe(conn.on_signal)
    except RuntimeError:  # the loop is closed: the connection is being closed with it
        return False
    return True


def get_protocol(fd):
    """The protocol of this context's connection on fd (or of one made by init_connection), or None."""
    state = getattr(_local, "reactor", None)
    conn = state.connections.get(fd) if state is not None else None
    return conn.protocol if conn is not None else _manual.get(fd)


# --- driving a protocol by hand (erlang_python 4.x's functions) ------------------------------------
# For tests and for code that runs its own readiness loop: nothing here registers fd anywhere,
# reads or writes happen only when called, and the caller keeps owning fd (never closed here).

def init_connection(fd, client_info):
    """Makes the protocol of fd with the factory in effect and calls connection_made."""
    state = getattr(_local, "reactor", None)
    factory = (state.factory if state is not None else None) or _default_factory
    if factory is None:
        raise RuntimeError("no protocol factory: call set_protocol_factory first")
    protocol = factory()
    protocol.connection_made(fd, dict(client_info))
    _manual[fd] = protocol
    return protocol


def on_read_ready(fd):
    """One read from fd into data_received; its action ("close" at end of stream, or when fd
    has no protocol)."""
    protocol = _manual.get(fd)
    if protocol is None:
        return "close"
    data = protocol.read()
    if not data:
        return "close"
    return protocol.data_received(data)


def on_write_ready(fd):
    """write_ready's action ("close" when fd has no protocol)."""
    protocol = _manual.get(fd)
    return protocol.write_ready() if protocol is not None else "close"


def close_connection(fd):
    """Forgets fd's protocol and calls its connection_lost (fd itself stays open)."""
    protocol = _manual.pop(fd, None)
    if protocol is not None:
        protocol.closed = True
        protocol.connection_lost()


class _State:
    """One reactor context's connections and counters (its thread only)."""

    def __init__(self, max_connections):
        self.max_connections = max_connections
        self.loop = None
        self.factory = None
        self.connections = {}
        self.total_connections = 0
        self.total_requests = 0
        self.protocol_errors = 0


class _Connection:
    """One handed-off descriptor: owns the fd (a dup), its protocol and its loop registration.

    Registered with the loop's selector directly (ErlangSelector.add_direct): the selector calls
    on_event for each readiness, with no asyncio Handle and no re-arming per event; a readiness
    of a mode the connection left (read while writing) is ignored, the level-triggered
    registration reports it again once the mode is back."""

    def __init__(self, state, loop, fd, protocol):
        self.state = state
        self.loop = loop
        self.selector = loop._selector
        self.fd = fd
        self.protocol = protocol
        self.mode = None
        self.closed = False
        self.signalled = False  # signal_write_ready came and no write_ready ran since
        self.read_size = _FIRST_READ

    def start(self):
        self.selector.add_direct(self.fd, _EVENTS[_READ], self.on_event)
        self.mode = _READ
        with _live_lock:
            _live[self.fd] = self

    def on_event(self, mask):
        """The selector's callback: must not raise (it runs inside the loop's select())."""
        try:
            if mask & 1 and self.mode is _READ:
                self.on_readable()
            elif mask & 2 and self.mode is _WRITE:
                self.on_writable()
        except Exception:  # a bug here, not in the protocol (run() catches the protocol's)
            log.exception("reactor: connection on fd %d failed", self.fd)
            self.close()

    def on_readable(self):
        size = self.read_size
        try:
            data = erlang._reactor_read(self.fd, size)  # a ReactorBuffer, read in place
        except OSError:
            self.close()
            return
        if data is None:
            return  # nothing after all (EAGAIN)
        n = len(data)
        if not n:
            self.close()  # end of stream
            return
        if n == size:
            if size < READ_SIZE:
                self.read_size = size * 4  # a stream: larger reads, fewer events
        elif size > _FIRST_READ and n <= size // 16:
            self.read_size = _FIRST_READ
        action = self.run(self.protocol.data_received, data)
        if action is _FAILED:
            return
        if action == "write_pending":
            self.state.total_requests += 1
            # The socket is writable nearly always: try at once, wait for readiness only for
            # what the protocol could not write (it answers 'continue').
            self.after_write(self.run(self.protocol.write_ready))
        elif action == "continue":
            pass
        elif action == "read_pending":
            self.set_mode(_READ)
        else:
            self.after_write(action)  # async_pending, close, or an unknown action (None included)

    def on_writable(self):
        self.signalled = False
        self.after_write(self.run(self.protocol.write_ready))

    def on_signal(self):
        """signal_write_ready's callback, on the reactor's thread: the awaited response is ready."""
        if self.closed or not self.signalled:
            return  # served already
        if self.mode != _PAUSED:
            # The callback that ran meanwhile did not answer "async_pending": nothing waits.
            self.signalled = False
            return
        self.signalled = False
        self.state.total_requests += 1
        self.after_write(self.run(self.protocol.write_ready))

    def after_write(self, action):
        if action is _FAILED:
            return  # the protocol raised: closed already
        if action == "continue" or action == "write_pending":
            self.set_mode(_WRITE)
        elif action == "read_pending":
            self.set_mode(_READ)
        elif action == "async_pending":
            self.set_mode(_PAUSED)  # neither read nor write until signal_write_ready(fd)
            if self.signalled:
                self.loop.call_soon(self.on_signal)  # it came while the callback ran
        elif action == "close":
            self.close()
        else:
            self.state.protocol_errors += 1
            log.error("reactor: protocol %r returned %r, not one of %s: connection on fd %d closed",
                      type(self.protocol).__name__, action, ", ".join(ACTIONS), self.fd)
            self.close()

    def run(self, callback, *args):
        """callback(*args), or _FAILED (connection closed, error logged) if it raised."""
        if self.closed:
            return _FAILED
        try:
            action = callback(*args)
        except Exception:
            self.state.protocol_errors += 1
            log.exception("reactor: protocol %r raised: connection on fd %d closed",
                          type(self.protocol).__name__, self.fd)
            self.close()
            return _FAILED
        if getattr(self.protocol, "io_error", None) is not None:
            self.close()
            return _FAILED
        return action

    def set_mode(self, mode):
        if self.closed or mode == self.mode:
            return
        self.selector.modify_direct(self.fd, _EVENTS[mode])  # the registration stays
        self.mode = mode

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.state.connections.pop(self.fd, None)
        with _live_lock:
            if _live.get(self.fd) is self:
                del _live[self.fd]
        if not self.loop.is_closed():
            self.selector.remove_direct(self.fd)  # before the descriptor is closed
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.protocol.closed = True
        try:
            self.protocol.connection_lost()
        except Exception:
            self.state.protocol_errors += 1
            log.exception("reactor: connection_lost of %r raised", type(self.protocol).__name__)


# --- called by py_reactor_context on the context's thread ----------------------------------------

def _start(max_connections):
    """Makes this context thread a reactor."""
    if getattr(_local, "reactor", None) is None:
        _local.reactor = _State(max_connections)
    _loop_of(_local.reactor)  # its descriptors (self-pipe) are made now, not at the first handoff
    return True


def _loop_of(state):
    """The context's loop; when it shuts down (the context stops, py_event_loop:stop) the
    reactor's connections are closed first, so that no descriptor outlives it."""
    loop = _erlang_async.context_loop()
    if state.loop is not loop:
        loop._erlang_shutdown_hooks.append(_close_all)
        state.loop = loop
    return loop


def _handoff(fd, client_info):
    """Takes a dup() of fd (the caller keeps fd) and starts its protocol.
    Returns ('ok', dup_fd) or ('error', reason)."""
    state = _local.reactor
    if len(state.connections) >= state.max_connections:
        return ("error", "too_many_connections")
    factory = state.factory or _default_factory
    if factory is None:
        return ("error", "no_protocol_factory")
    try:
        fd = os.dup(fd)  # close-on-exec, like every descriptor Python makes
    except OSError as exc:
        return ("error", _errno_name(exc))
    try:
        os.set_blocking(fd, False)
        protocol = factory()
    except Exception as exc:
        os.close(fd)
        log.exception("reactor: the protocol factory raised")
        return ("error", f"protocol_factory: {exc!r}")
    conn = _Connection(state, _loop_of(state), fd, protocol)
    try:
        conn.start()  # refused for a descriptor the poller cannot watch (a regular file)
    except Exception as exc:
        os.close(fd)
        return ("error", _errno_name(exc) if isinstance(exc, OSError) else repr(exc))
    state.connections[fd] = conn
    state.total_connections += 1
    conn.run(protocol.connection_made, fd, dict(client_info))
    if conn.closed:
        return ("error", "connection_made raised")
    return ("ok", fd)


def _errno_name(exc):
    import errno
    return errno.errorcode.get(exc.errno, "oserror").lower() if exc.errno else repr(exc)


def _stats():
    state = _local.reactor
    return (len(state.connections), state.total_connections, state.total_requests,
            state.max_connections, state.protocol_errors)


def _close_all():
    """Closes every connection of this context (connection_lost runs for each)."""
    state = getattr(_local, "reactor", None)
    if state is None:
        return 0
    conns = list(state.connections.values())
    for conn in conns:
        conn.close()
    return len(conns)


sys.modules["erlang.reactor"] = sys.modules[__name__]
erlang.reactor = sys.modules[__name__]
