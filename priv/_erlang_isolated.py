"""The request server of an isolated context (runs in priv/py_child, not in the BEAM).

Frames are {packet, 4} messages in the Erlang external term format (term_to_binary on the
Erlang side, src/py_isolated.erl). The parent sends requests and callback replies:

    ('call', Id, Body)  Body = term_to_binary({Module, Function, Args, Kwargs})
    ('eval', Id, Body)  Body = term_to_binary({Code, Locals})
    ('exec', Id, Body)  Body = term_to_binary({Code})
    ('async', Id, Body) Body as for 'call'; an awaitable result runs as a task of the child's
                        loop (_erlang_isolated_loop) and is answered when it ends
    ('cancel', Id)      cancels the task of 'async' request Id
    ('cb_reply', CbId, Body)  Body = term_to_binary({ok, V} | {error, Reason})

and this server answers with:

    {ready, Version}   {reply, Id, Result}   {callback, CbId, Name, Args}   {send, Dest, Term}

One request runs at a time on the main thread; while it waits for an Erlang callback, requests
the parent sends meanwhile (nested calls from that callback) run on top of it. SIGINT raises
KeyboardInterrupt in the running request only, never while a frame is read or written.
While it waits for the next frame, the server runs the context's event loop, if it has one
(_erlang_isolated_loop): the tasks of 'async' requests run then.

The conversions follow docs/type-conversion.md; the differences are listed in docs/contexts.md.
"""

import os
import signal
import struct
import sys
import types

import _erlang_etf
import _erlang_isolated_loop as _loop

__all__ = ["serve"]

class Atom(str):
    """An atom in a frame this server sends (atoms from Erlang become plain str)."""


class Pid:
    """An Erlang pid: hashable, comparable, converts back to the same pid."""

    __slots__ = ("_ext",)

    def __init__(self, ext: bytes) -> None:
        self._ext = ext

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._ext == self._ext

    def __hash__(self) -> int:
        return hash(self._ext)

    def __repr__(self) -> str:
        return "<erlang.Pid>"


class Term(Pid):
    """A reference, port or fun: opaque, converts back to the same term."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<erlang.Term>"


class ErlangError(RuntimeError):
    """The Erlang function erlang.call ran raised (class, reason)."""


class ProcessError(Exception):
    """erlang.send to a process that is not alive."""


class _ParentGone(BaseException):
    """The parent closed the pipe: the server returns."""


# --- object references ---------------------------------------------------------------------
class _Objects:
    """Objects with no Erlang form, sent to Erlang as {'$py_isolated_object', Id}: kept here
    until the parent reports that its last handle was garbage collected (a 'release' frame)."""

    table: dict = {}
    next_id = 0
    made = None  # the ids made while the frame being encoded is encoded


_objects = _Objects()


def _wrap(obj) -> int:
    _objects.next_id += 1
    ident = _objects.next_id
    _objects.table[ident] = obj
    if _objects.made is not None:
        _objects.made.append(ident)
    return ident


def _resolve(ident):
    try:
        return _objects.table[ident]
    except (KeyError, TypeError):
        raise ValueError("a Python object reference this isolated context no longer holds") from None


def _call_method(obj, name, *args, **kwargs):
    """py:call_method/3,4 on an object of this context."""
    return getattr(obj, name)(*args, **kwargs)


def _to_term(obj):
    """py:to_term/1 on an object of this context: a mapping as a dict, an iterable as a list."""
    import collections.abc
    return dict(obj) if isinstance(obj, collections.abc.Mapping) else list(obj)


class _Env:
    """A namespace made by py_context:create_local_env/1 (its globals)."""

    __slots__ = ("globals",)

    def __init__(self) -> None:
        self.globals = {"__builtins__": __builtins__, "__name__": "__main__"}
        self.globals.update(_preloaded())


def _new_env() -> _Env:
    return _Env()


def _env_of(env) -> dict:
    if type(env) is not _Env:
        raise TypeError("not a namespace made by py_context:create_local_env/1")
    return env.globals


def _env_call(env, module, function, args, kwargs):
    """py_context:call/7: __main__'s names are looked up in the namespace."""
    ns = _env_of(env)
    if module == "__main__":
        parts = function.split(".")
        if parts[0] not in ns:
            raise NameError("name '%s' is not defined" % parts[0])
        target = ns[parts[0]]
        parts = parts[1:]
    else:
        target = _module(module)
        parts = function.split(".")
    for part in parts:
        target = getattr(target, part)
    return target(*args, **{str(k): v for k, v in kwargs.items()})


def _env_eval(env, code, local_vars):
    return eval(compile(code, "<eval>", "eval"), _env_of(env), {str(k): v for k, v in local_vars.items()})


def _env_exec(env, code) -> None:
    exec(compile(code, "<exec>", "exec"), _env_of(env))


# --- the codec (c_src/child/etf_*.cpp, built into priv/py_child) ------------------------------
_erlang_etf.setup(Atom, Pid, Term, _wrap, _resolve)
decode = _erlang_etf.decode
encode = _erlang_etf.encode


def _frame(term) -> bytes:
    """The frame for term; {with_objects, Frame} when it holds object references (the parent
    turns them into handles). Objects kept for a frame that fails to encode are dropped."""
    made = _objects.made = []
    try:
        frame = _erlang_etf.frame(term)
    except BaseException:
        for ident in made:
            _objects.table.pop(ident, None)
        raise
    finally:
        _objects.made = None
    if made:
        frame = _erlang_etf.frame((_WITH_OBJECTS, frame[4:]))
    return frame


# --- the connection ------------------------------------------------------------------------
class _State:
    interruptible = False
    sending = False  # a frame is being written: a backtrace waits for the end of it
    backtrace = None  # the stack a backtrace signal took while a frame was being written
    depth = 0  # requests being served (nested ones included)
    in_backtrace = False  # the SIGUSR2 handler runs
    sigint_deferred = False  # a SIGINT came while a frame was written: raised once it is
    rbuf = b""
    fd_in = -1
    fd_out = -1
    next_callback = 0


_state = _State()


# The message of the KeyboardInterrupt that py:interrupt/1's SIGINT raises: the context answers
# {error, interrupted} for it, and {'KeyboardInterrupt', Message} for one the code raised itself.
_INTERRUPTED = "erlang_python: interrupted"


def _on_sigint(signum, frame):
    if _state.sending or _state.in_backtrace:
        _state.sigint_deferred = True  # a frame is being written: raised after it (_take_sigint)
    elif _state.interruptible:
        raise KeyboardInterrupt(_INTERRUPTED)


def _take_sigint() -> None:
    """A SIGINT deferred while a frame was written: raised now if a request runs, else dropped
    (it was meant for a request that has ended)."""
    if _state.sigint_deferred and not _state.in_backtrace:
        _state.sigint_deferred = False
        if _state.interruptible:
            raise KeyboardInterrupt(_INTERRUPTED)


def _read_exact(n: int) -> bytes:
    """n bytes from the pipe; what a read brings beyond them stays in _state.rbuf."""
    have = _state.rbuf
    if len(have) >= n:
        _state.rbuf = have[n:]
        return have[:n]
    chunks = [have]
    got = len(have)
    while got < n:
        chunk = os.read(_state.fd_in, max(n - got, 65536))
        if not chunk:
            raise _ParentGone()
        chunks.append(chunk)
        got += len(chunk)
    data = b"".join(chunks)
    _state.rbuf = data[n:]
    return data[:n]


def _recv():
    """The next frame. Interruptible (when a request runs) only until the frame starts."""
    was = _state.interruptible
    if not _state.rbuf:
        _erlang_etf.wait_readable(_state.fd_in)  # KeyboardInterrupt lands here (when was)
    _state.interruptible = False
    try:
        size = struct.unpack(">I", _read_exact(4))[0]
        return decode(_read_exact(size))
    finally:
        _state.interruptible = was


def _send_frame(frame: bytes) -> None:
    """Writes a whole frame (_frame(term): its length, then the term)."""
    was = _state.interruptible
    _state.interruptible = False
    _state.sending = True
    try:
        written = os.write(_state.fd_out, frame)
        if written < len(frame):
            data = memoryview(frame)[written:]
            while data:
                data = data[os.write(_state.fd_out, data):]
    finally:
        _state.sending = False
        _state.interruptible = was
    if _state.backtrace is not None:
        _send_backtrace()
    _take_sigint()


def _send(term) -> None:
    _send_frame(_frame(term))


# --- requests ------------------------------------------------------------------------------
_main = sys.modules["__main__"].__dict__


def _error(exc: BaseException):
    return (Atom("error"), (type(exc).__name__, str(exc)))


def _module(name: str):
    module = sys.modules.get(name)
    return module if module is not None else __import__(name, fromlist=["_"])


def _run(request):
    # The body is a binary of its own: a term Python cannot take (an improper list) fails this
    # request, not the frame.
    kind = request[0]
    body = decode(request[2])
    if kind == "call":
        module, function, args, kwargs = body
        target = _module(module)
        for part in function.split("."):
            target = getattr(target, part)
        return (_OK, target(*args, **{str(k): v for k, v in kwargs.items()}) if kwargs else target(*args))
    if kind == "eval":
        code, local_vars = body
        return (_OK, eval(compile(code, "<eval>", "eval"), _main, {str(k): v for k, v in local_vars.items()}))
    if kind == "exec":
        exec(compile(body[0], "<exec>", "exec"), _main)  # the file names of the in-process modes
        return _OK
    if kind == "async":
        module, function, args, kwargs = body
        target = _module(module)
        for part in function.split("."):
            target = getattr(target, part)
        started, value = _loop.start(request[1], target, args, {str(k): v for k, v in kwargs.items()})
        return _ANSWERED_LATER if started else (_OK, value)
    raise ValueError("unknown request %r" % (kind,))


_REPLY = Atom("reply")
_WITH_OBJECTS = Atom("with_objects")
_OK = Atom("ok")
_ANSWERED_LATER = object()  # an 'async' request whose task answers it when it ends


def _serve_request(request) -> None:
    was = _state.interruptible
    _state.interruptible = True
    _state.depth += 1
    try:
        result = _run(request)
    except _ParentGone:
        raise
    except BaseException as exc:  # KeyboardInterrupt and SystemExit too: the request answers
        result = _error(exc)
    finally:
        _state.depth -= 1
        _state.interruptible = was
    if result is not _ANSWERED_LATER:
        _reply(request[1], result)


def _reply(ident, result) -> None:
    try:
        frame = _frame((_REPLY, ident, result))
    except Exception as exc:  # a value with no Erlang form, a lone surrogate, too deep
        frame = _frame((_REPLY, ident, _error(exc)))
    _send_frame(frame)


def _dispatch(msg) -> bool:
    """Serves a request frame; False for any other frame (a late callback reply)."""
    if type(msg) is tuple and msg and msg[0] in ("call", "eval", "exec", "async"):
        _serve_request(msg)
        return True
    if type(msg) is tuple and len(msg) == 2 and msg[0] == "cancel":
        _loop.cancel(msg[1])
        return True
    if type(msg) is tuple and len(msg) == 2 and msg[0] == "release":
        _objects.table.pop(msg[1], None)
        return True
    return False


# --- the erlang module of the child --------------------------------------------------------
def call(name, *args):
    """Runs the Erlang function registered as name (py:register_function) with args."""
    if not isinstance(name, str):
        raise TypeError("erlang.call: the name must be a str")
    return _callback(name, args)


def _callback(name, args):
    _state.next_callback += 1
    ident = _state.next_callback
    _send((Atom("callback"), ident, name, list(args)))
    while True:
        msg = _recv()
        if type(msg) is tuple and len(msg) == 3 and msg[0] == "cb_reply":
            if msg[1] != ident:
                continue  # the reply to a callback interrupted earlier
            if _state.rbuf:
                _loop.wake()  # a frame read ahead: served before a task's loop runs on
            result = decode(msg[2])
            if type(result) is tuple and result[0] == "ok":
                return result[1]
            if result == "unknown_function":
                raise ErlangError("unknown function: %s" % name)
            raise ErlangError(*result[1])
        _dispatch(msg)


class NotRegistered(ProcessError, TypeError):
    """erlang.send to a name no process is registered as."""


def send(dest, term) -> None:
    """Sends term to the pid dest (asynchronously; a dead pid is not detected) or to the process
    registered as dest (a str or bytes; the parent looks the name up: one round trip)."""
    if isinstance(dest, Pid) and not isinstance(dest, Term):
        _send((Atom("send"), dest, term))
        return
    if isinstance(dest, (bytes, bytearray)):
        dest = bytes(dest).decode("utf-8")
    if not isinstance(dest, str):
        raise TypeError("erlang.send: dest must be an erlang.Pid or a registered name")
    try:
        _callback(_SEND_TO_NAME, (str(dest), term))
    except ErlangError as exc:
        if exc.args and exc.args[0] == "NotRegistered":
            raise NotRegistered("no process is registered as %r" % (dest,)) from None
        raise


_SEND_TO_NAME = "$py_send_to_name"  # handled by the context process itself (py_isolated.erl)


def _loop_stopped(ctx_pid, serial) -> None:
    """The worker loop serial was stopped (py_event_loop:stop/1): the context process tells
    its owner (src/py_isolated.erl, '$py_loop_exit')."""
    send(ctx_pid, (Atom("$py_loop_exit"), serial, (Atom("error"), Atom("loop_stopped"))))


def _erlang_module() -> types.ModuleType:
    mod = types.ModuleType("erlang", "The erlang module of an isolated context (a child process).")
    for name, value in (("call", call), ("send", send), ("Pid", Pid), ("Term", Term),
                        ("ErlangError", ErlangError), ("ProcessError", ProcessError),
                        ("NotRegistered", NotRegistered)):
        setattr(mod, name, value)
    mod.isolated = True
    return mod


# --- py_context:reset/1 and backtrace/1 ----------------------------------------------------
_main_initial: dict = {}  # __main__'s names before the first request (serve)


def _reset() -> None:
    """py_context:reset/1: a fresh __main__ namespace and a garbage collection."""
    import gc
    _main.clear()
    _main.update(_main_initial)
    _main.update(_preloaded())
    gc.collect()


def _preloaded() -> dict:
    """The globals of the node's preload code (py_preload), as the setup step left them in this
    process (priv/_erlang_setup.py): every namespace made here starts with a copy."""
    setup = sys.modules.get("_erlang_setup")
    return dict(setup.preloaded) if setup is not None else {}


def _adopt_preload() -> None:
    """Run by the context once the child took its setup steps: __main__, made before them,
    starts with the node's preload globals."""
    _main.update(_preloaded())


_BACKTRACE = Atom("backtrace")
_IDLE = Atom("idle")
_SERVER_FILES = frozenset((__file__, _loop.__file__))


def _stack(frame):
    """The stack of the code running under frame, innermost first, as (file, line, function):
    the server's own frames are left out, and so is the loop's machinery below a task's step;
    idle when no request and no task runs."""
    loop_task = _loop.running_task()
    if _state.depth == 0 and loop_task is None:
        return _IDLE
    stack = []
    while frame is not None:
        code = frame.f_code
        if loop_task is not None and code is sys.modules["asyncio"].events.Handle._run.__code__:
            break  # a task's step: what is below is the loop
        if code.co_filename not in _SERVER_FILES:
            stack.append((code.co_filename, frame.f_lineno or 0, code.co_qualname))
        frame = frame.f_back
    return stack or _IDLE


def _on_backtrace(signum, frame) -> None:
    """SIGUSR2 (py_context:backtrace/1): the stack goes to the parent at once, or after the frame
    being written."""
    _state.in_backtrace = True
    try:
        _state.backtrace = _stack(frame)  # the frame the signal interrupted
        if not _state.sending:
            _send_backtrace()
    except Exception:  # never into the code that runs
        _state.backtrace = None
    finally:
        _state.in_backtrace = False
    _take_sigint()


def _send_backtrace() -> None:
    stack, _state.backtrace = _state.backtrace, None
    _send_frame(_erlang_etf.frame((_BACKTRACE, stack)))


def _close_pipes() -> None:
    for fd in (_state.fd_in, _state.fd_out):
        try:
            os.close(fd)
        except OSError:
            pass
    _state.fd_in = _state.fd_out = -1


def serve(fd_in: int, fd_out: int) -> None:
    """Serves the parent until it closes the pipe."""
    _state.fd_in = fd_in
    _state.fd_out = fd_out
    sys.modules["erlang"] = _erlang_module()
    # A process forked by Python code must not hold the pipes: the parent sees the child die
    # when the pipes close.
    os.register_at_fork(after_in_child=_close_pipes)
    signal.signal(signal.SIGINT, _on_sigint)
    signal.signal(signal.SIGUSR2, _on_backtrace)
    _main_initial.update(_main)
    _loop.setup(_reply, _error, _OK, _loop_stopped)
    _send((Atom("ready"), "%d.%d.%d" % sys.version_info[:3], os.getpid()))
    while True:
        try:
            if not _state.rbuf:
                _loop.run_until_readable(_state.fd_in)  # the context's tasks run meanwhile
            msg = _recv()
        except _ParentGone:
            return
        _dispatch(msg)
