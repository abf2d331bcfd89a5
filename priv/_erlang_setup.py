"""Setup steps applied to every interpreter (src/py_setup.erl).

Each step has a key ('venv', 'logging') and a version that only grows. apply() runs a step's
call unless this interpreter already ran that version of the key or a newer one, so a step
that reaches an interpreter twice (a context starting while the step is broadcast), or an
older version arriving after a newer one, changes nothing.

One copy of this module per interpreter: worker contexts share the main interpreter's copy,
each owngil context has its own.
"""

import importlib
import threading

_lock = threading.Lock()  # worker contexts run on several threads of one interpreter
_versions = {}


def apply(key, version, module, function, args):
    """Runs module.function(*args) for step `key` at `version`. True if it ran."""
    with _lock:
        if _versions.get(key, -1) >= version:
            return False
        getattr(importlib.import_module(module), function)(*args)
        _versions[key] = version
        return True


def applied():
    """{key: version} of the steps this interpreter has run."""
    with _lock:
        return dict(_versions)


# --- preload code (src/py_preload.erl) ------------------------------------------------------

# The globals the preload code made: every namespace created afterwards in this interpreter
# starts with a copy of them (c_src/context/namespace.cpp).
preloaded = {}


def set_preload(code):
    """Runs code (None: no preload) in a fresh namespace and keeps the globals it made."""
    global preloaded
    if code is None:
        preloaded = {}
        return
    import builtins
    import erlang
    ns = {"__builtins__": builtins, "__name__": "__main__", "erlang": erlang}
    exec(compile(code, "<preload>", "exec"), ns)
    preloaded = {k: v for k, v in ns.items() if k not in ("__builtins__", "__name__")}


# --- paths and imports (src/py_import.erl) ---------------------------------------------------

_added_paths = []


def set_paths(paths):
    """Puts paths, in order, at the front of sys.path, replacing those this function put there
    before (an entry that was already on sys.path is left where it was)."""
    import sys
    for p in _added_paths:
        if p in sys.path:
            sys.path.remove(p)
    new = []
    for p in paths:
        if p not in sys.path and p not in new:
            new.append(p)
    sys.path[0:0] = new
    _added_paths[:] = new


def import_modules(modules):
    """Imports each module; returns {name: 'Type: message'} for those that failed."""
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a module that cannot be imported is reported, not fatal
            failed[name] = "%s: %s" % (type(exc).__name__, exc)
    return failed
