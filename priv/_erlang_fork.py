"""Refusing os.fork() in contexts (app env `allow_fork`; src/py_context.erl, fork_policy).

A process forked from the BEAM is a copy of the whole node: its schedulers are gone, it holds
every descriptor of the node (sockets, ports, files), and it goes on running Python code that
expects an Erlang side which is not there. So os.fork() and os.forkpty() raise RuntimeError
unless the application env `allow_fork` is true. subprocess and os.posix_spawn are not
concerned: they start a new program.

Used in the main interpreter (worker contexts): every worker context that starts calls
configure() with the current app env. owngil subinterpreters refuse fork() in CPython itself,
whatever `allow_fork` says.
"""

import os
import posix

_allowed = False
_NAMES = ("fork", "forkpty")


def configure(allow):
    """Allow (True) or refuse (False) fork() in this interpreter from now on."""
    global _allowed
    _allowed = bool(allow)
    for module in (os, posix):
        for name in _NAMES:
            original = getattr(module, name, None)
            if original is not None and not getattr(original, "_erlang_guarded", False):
                setattr(module, name, _guard(name, original))


def allowed():
    return _allowed


def other_interpreters():
    """How many interpreters besides this one live in the process (owngil contexts)."""
    for name in ("_interpreters", "_xxsubinterpreters"):  # 3.13, then 3.12 and 3.11
        try:
            module = __import__(name)
        except ImportError:
            continue
        return max(0, len(module.list_all()) - 1)
    return 0


def _guard(name, original):
    def guarded(*args, **kwargs):
        if not _allowed:
            raise RuntimeError(
                f"os.{name}() is refused in an erlang_python context: the child would be a broken "
                "copy of the Erlang node holding its descriptors (use subprocess, or set the "
                "erlang_python application env allow_fork to true)")
        others = other_interpreters()
        if others:
            # The child would abort: CPython's PyOS_AfterFork_Child clears the other
            # interpreters without a thread state (Fatal Python error: PyThreadState_Get;
            # seen on 3.13.0).
            raise RuntimeError(
                f"os.{name}() is refused while {others} other interpreter(s) (owngil contexts) "
                "live: CPython aborts the child when it clears them after the fork")
        return original(*args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = name
    guarded.__doc__ = original.__doc__
    guarded.__wrapped__ = original
    guarded._erlang_guarded = True
    return guarded
