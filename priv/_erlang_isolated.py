"""The request server of an isolated context (runs in priv/py_child, not in the BEAM).

Frames are {packet, 4} messages in the Erlang external term format (term_to_binary on the
Erlang side, src/py_isolated.erl). The parent sends requests and callback replies:

    ('call', Id, Body)  Body = term_to_binary({Module, Function, Args, Kwargs})
    ('eval', Id, Body)  Body = term_to_binary({Code, Locals})
    ('exec', Id, Body)  Body = term_to_binary({Code})
    ('cb_reply', CbId, Body)  Body = term_to_binary({ok, V} | {error, Reason})

and this server answers with:

    {ready, Version}   {reply, Id, Result}   {callback, CbId, Name, Args}   {send, Dest, Term}

One request runs at a time on the main thread; while it waits for an Erlang callback, requests
the parent sends meanwhile (nested calls from that callback) run on top of it. SIGINT raises
KeyboardInterrupt in the running request only, never while a frame is read or written.

The conversions follow docs/type-conversion.md; the differences are listed in docs/contexts.md.
"""

import math
import os
import select
import signal
import struct
import sys
import types

__all__ = ["serve"]

# --- term format tags (erts/emulator/beam/external.h) --------------------------------------
_VERSION = 131
_NEW_FLOAT = 70
_SMALL_INT = 97
_INT = 98
_ATOM = 100
_PID = 103
_PORT = 102
_SMALL_TUPLE = 104
_LARGE_TUPLE = 105
_NIL = 106
_STRING = 107
_LIST = 108
_BINARY = 109
_SMALL_BIG = 110
_LARGE_BIG = 111
_NEW_FUN = 112
_EXPORT = 113
_NEW_REF = 114
_SMALL_ATOM = 115
_MAP = 116
_ATOM_UTF8 = 118
_SMALL_ATOM_UTF8 = 119
_BIT_BINARY = 77
_NEW_PID = 88
_NEW_PORT = 89
_NEWER_REF = 90
_V4_PORT = 120

# The atom bytes as term_to_binary writes it (OTP 26+, and OTP 25 and older).
_BYTES_TAGS = (bytes((_SMALL_ATOM_UTF8, 5)) + b"bytes", bytes((_ATOM, 0, 5)) + b"bytes")


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


# --- decoding ------------------------------------------------------------------------------
_u16 = struct.Struct(">H").unpack_from
_u32 = struct.Struct(">I").unpack_from
_i32 = struct.Struct(">i").unpack_from
_f64 = struct.Struct(">d").unpack_from
_ATOM_TAGS = (_ATOM, _ATOM_UTF8, _SMALL_ATOM, _SMALL_ATOM_UTF8)
_ATOM_VALUES = {"true": True, "false": False, "none": None, "undefined": None, "nil": None}
_OPAQUE_TAIL = {_PID: 9, _NEW_PID: 12, _PORT: 5, _NEW_PORT: 8, _V4_PORT: 12}


def _take(buf: bytes, pos: int, n: int) -> bytes:
    raw = buf[pos:pos + n]
    if len(raw) != n:
        raise ValueError("truncated term")
    return raw


def _dec(buf: bytes, pos: int):
    """The term at buf[pos:] and the position after it."""
    tag = buf[pos]
    pos += 1
    if tag == _SMALL_INT:
        return buf[pos], pos + 1
    if tag == _BINARY:
        n = _u32(buf, pos)[0]
        raw = _take(buf, pos + 4, n)
        try:
            return raw.decode("utf-8"), pos + 4 + n
        except UnicodeDecodeError:
            return raw, pos + 4 + n
    if tag in _ATOM_TAGS:
        if tag == _ATOM or tag == _ATOM_UTF8:
            n = _u16(buf, pos)[0]
            pos += 2
        else:
            n = buf[pos]
            pos += 1
        text = _take(buf, pos, n).decode("latin-1" if tag in (_ATOM, _SMALL_ATOM) else "utf-8")
        return _ATOM_VALUES.get(text, text), pos + n
    if tag == _SMALL_TUPLE or tag == _LARGE_TUPLE:
        if tag == _SMALL_TUPLE:
            n = buf[pos]
            pos += 1
        else:
            n = _u32(buf, pos)[0]
            pos += 4
        if n == 2 and buf.startswith(_BYTES_TAGS, pos):
            pos += 7 if buf[pos] == _SMALL_ATOM_UTF8 else 8
            if buf[pos] == _BINARY:  # {bytes, Binary}: whatever the binary holds
                size = _u32(buf, pos + 1)[0]
                return _take(buf, pos + 5, size), pos + 5 + size
            value, pos = _dec(buf, pos)
            return ("bytes", value), pos
        items = []
        for _ in range(n):
            value, pos = _dec(buf, pos)
            items.append(value)
        return tuple(items), pos
    if tag == _INT:
        return _i32(buf, pos)[0], pos + 4
    if tag == _NEW_FLOAT:
        return _f64(buf, pos)[0], pos + 8
    if tag == _NIL:
        return [], pos
    if tag == _LIST:
        n = _u32(buf, pos)[0]
        pos += 4
        items = []
        for _ in range(n):
            value, pos = _dec(buf, pos)
            items.append(value)
        if buf[pos] != _NIL:
            raise TypeError("improper list")
        return items, pos + 1
    if tag == _MAP:
        n = _u32(buf, pos)[0]
        pos += 4
        out = {}
        for _ in range(n):
            key, pos = _dec(buf, pos)
            out[key], pos = _dec(buf, pos)
        return out, pos
    if tag == _STRING:
        n = _u16(buf, pos)[0]
        return list(_take(buf, pos + 2, n)), pos + 2 + n
    if tag == _SMALL_BIG or tag == _LARGE_BIG:
        if tag == _SMALL_BIG:
            n = buf[pos]
            pos += 1
        else:
            n = _u32(buf, pos)[0]
            pos += 4
        v = int.from_bytes(_take(buf, pos + 1, n), "little")
        return (-v if buf[pos] else v), pos + 1 + n
    if tag == _BIT_BINARY:
        raise TypeError("bitstring is not whole bytes")
    # Opaque terms: kept as their bytes, sent back unchanged.
    start = pos - 1
    if tag in _OPAQUE_TAIL:
        _, pos = _dec(buf, pos)  # the node name
        pos += _OPAQUE_TAIL[tag]
    elif tag == _NEW_REF or tag == _NEWER_REF:
        n = _u16(buf, pos)[0]
        _, pos = _dec(buf, pos + 2)
        pos += (1 if tag == _NEW_REF else 4) + 4 * n
    elif tag == _NEW_FUN:
        pos = start + 1 + _u32(buf, pos)[0]
    elif tag == _EXPORT:
        for _ in range(3):
            _, pos = _dec(buf, pos)
    else:
        raise TypeError("unsupported term tag %d" % tag)
    raw = _take(buf, start, pos - start)
    return (Pid(raw) if tag in (_PID, _NEW_PID) else Term(raw)), pos


def decode(frame: bytes):
    if not frame or frame[0] != _VERSION:
        raise ValueError("not an external term")
    return _dec(frame, 1)[0]


# --- encoding ------------------------------------------------------------------------------
def _atom(text: str) -> bytes:
    raw = text.encode("utf-8")
    return bytes((_SMALL_ATOM_UTF8, len(raw))) + raw


_TRUE = _atom("true")
_FALSE = _atom("false")
_NONE = _atom("none")
_INF = _atom("infinity")
_NEG_INF = _atom("neg_infinity")
_NAN = _atom("nan")
_pack_int = struct.Struct(">Bi").pack
_pack_float = struct.Struct(">Bd").pack
_pack_len = struct.Struct(">BI").pack


def _encode(value, out: list) -> None:
    t = type(value)
    if t is Atom:
        out.append(_atom(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out.append(_pack_len(_BINARY, len(raw)))
        out.append(raw)
    elif value is None:
        out.append(_NONE)
    elif value is True:
        out.append(_TRUE)
    elif value is False:
        out.append(_FALSE)
    elif isinstance(value, int):
        value = int(value)
        if 0 <= value < 256:
            out.append(bytes((_SMALL_INT, value)))
        elif -2147483648 <= value <= 2147483647:
            out.append(_pack_int(_INT, value))
        else:
            mag = abs(value)
            raw = mag.to_bytes((mag.bit_length() + 7) // 8, "little")
            if len(raw) < 256:
                out.append(bytes((_SMALL_BIG, len(raw), 1 if value < 0 else 0)))
            else:
                out.append(_pack_len(_LARGE_BIG, len(raw)) + bytes((1 if value < 0 else 0,)))
            out.append(raw)
    elif isinstance(value, float):
        if math.isnan(value):
            out.append(_NAN)
        elif math.isinf(value):
            out.append(_INF if value > 0 else _NEG_INF)
        else:
            out.append(_pack_float(_NEW_FLOAT, value))
    elif isinstance(value, (bytes, bytearray)):
        out.append(_pack_len(_BINARY, len(value)))
        out.append(bytes(value))
    elif isinstance(value, Pid):
        out.append(value._ext)
    elif isinstance(value, tuple):
        n = len(value)
        out.append(bytes((_SMALL_TUPLE, n)) if n < 256 else _pack_len(_LARGE_TUPLE, n))
        for item in value:
            _encode(item, out)
    elif isinstance(value, list):
        if value:
            out.append(_pack_len(_LIST, len(value)))
            for item in value:
                _encode(item, out)
        out.append(bytes((_NIL,)))
    elif isinstance(value, dict):
        out.append(_pack_len(_MAP, len(value)))
        for k, v in value.items():
            _encode(k, out)
            _encode(v, out)
    else:
        raise TypeError("isolated contexts cannot return a %s yet (no object references)"
                        % type(value).__name__)


def encode(value) -> bytes:
    out = [bytes((_VERSION,))]
    _encode(value, out)
    return b"".join(out)


# --- the connection ------------------------------------------------------------------------
class _State:
    interruptible = False
    rbuf = b""
    fd_in = -1
    fd_out = -1
    next_callback = 0


_state = _State()


def _on_sigint(signum, frame):
    if _state.interruptible:
        raise KeyboardInterrupt()


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
    if was and not _state.rbuf:
        poller = select.poll()
        poller.register(_state.fd_in, select.POLLIN)
        poller.poll()  # KeyboardInterrupt lands here
    _state.interruptible = False
    try:
        size = struct.unpack(">I", _read_exact(4))[0]
        return decode(_read_exact(size))
    finally:
        _state.interruptible = was


def _send_frame(frame: bytes) -> None:
    was = _state.interruptible
    _state.interruptible = False
    try:
        data = memoryview(struct.pack(">I", len(frame)) + frame)
        while data:
            data = data[os.write(_state.fd_out, data):]
    finally:
        _state.interruptible = was


def _send(term) -> None:
    _send_frame(encode(term))


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
        return (_OK, eval(code, _main, {str(k): v for k, v in local_vars.items()}))
    if kind == "exec":
        exec(body[0], _main)
        return _OK
    raise ValueError("unknown request %r" % (kind,))


_REPLY = Atom("reply")
_OK = Atom("ok")


def _serve_request(request) -> None:
    was = _state.interruptible
    _state.interruptible = True
    try:
        result = _run(request)
    except _ParentGone:
        raise
    except BaseException as exc:  # KeyboardInterrupt and SystemExit too: the request answers
        result = _error(exc)
    finally:
        _state.interruptible = was
    try:
        frame = encode((_REPLY, request[1], result))
    except Exception as exc:  # a value with no Erlang form, a lone surrogate, too deep
        frame = encode((_REPLY, request[1], _error(exc)))
    _send_frame(frame)


def _dispatch(msg) -> bool:
    """Serves a request frame; False for any other frame (a late callback reply)."""
    if type(msg) is tuple and msg and msg[0] in ("call", "eval", "exec"):
        _serve_request(msg)
        return True
    return False


# --- the erlang module of the child --------------------------------------------------------
def call(name, *args):
    """Runs the Erlang function registered as name (py:register_function) with args."""
    if not isinstance(name, str):
        raise TypeError("erlang.call: the name must be a str")
    _state.next_callback += 1
    ident = _state.next_callback
    _send((Atom("callback"), ident, name, list(args)))
    while True:
        msg = _recv()
        if type(msg) is tuple and len(msg) == 3 and msg[0] == "cb_reply":
            if msg[1] != ident:
                continue  # the reply to a callback interrupted earlier
            result = decode(msg[2])
            if type(result) is tuple and result[0] == "ok":
                return result[1]
            if result == "unknown_function":
                raise ErlangError("unknown function: %s" % name)
            raise ErlangError(*result[1])
        _dispatch(msg)


def send(dest, term) -> None:
    """Sends term to the pid dest (asynchronously; a dead pid is not detected)."""
    if not isinstance(dest, Pid) or isinstance(dest, Term):
        raise TypeError("erlang.send: dest must be an erlang.Pid")
    _send((Atom("send"), dest, term))


def _erlang_module() -> types.ModuleType:
    mod = types.ModuleType("erlang", "The erlang module of an isolated context (a child process).")
    for name, value in (("call", call), ("send", send), ("Pid", Pid), ("Term", Term),
                        ("ErlangError", ErlangError), ("ProcessError", ProcessError)):
        setattr(mod, name, value)
    mod.isolated = True
    return mod


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
    _send((Atom("ready"), "%d.%d.%d" % sys.version_info[:3], os.getpid()))
    while True:
        try:
            msg = _recv()
        except _ParentGone:
            return
        _dispatch(msg)
