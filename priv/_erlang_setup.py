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
