"""Every class of the erlang, erlang.channel and erlang.reactor modules, made without its
constructor (cls.__new__(cls): the C state a type's own code never leaves unset) and, where the
class has one, with its _test_create; every callable attribute of each object called with 0, 1
and 2 arguments drawn from odd values. Any exception is fine; a crash of the process is not.
Returns how many calls were made."""

import itertools
import sys

import erlang

ODD = [None, -1, 0, 1 << 62, 1.5, b"", b"x" * 10, "s", [], {}, object(), -(1 << 70)]
SKIP = {"__del__", "__init_subclass__", "__subclasshook__", "__class_getitem__", "__reduce_ex__",
        "__reduce__", "__class__"}
CALLS_PER_ARITY = 40


def _modules():
    found = [erlang]
    for name in ("erlang.channel", "erlang.reactor"):
        __import__(name)
        found.append(sys.modules[name])
    return found


def _classes():
    for module in _modules():
        for name in dir(module):
            cls = getattr(module, name)
            if isinstance(cls, type) and (cls.__module__ or "").startswith(("erlang", "_erlang")):
                yield cls


def _objects(cls):
    made = []
    try:
        made.append(cls.__new__(cls))
    except Exception:
        pass
    if hasattr(cls, "_test_create"):
        try:
            made.append(cls._test_create(b"abcdef"))
        except Exception:
            pass
    return made


def run():
    calls = 0
    for cls in _classes():
        for obj in _objects(cls):
            for attr in dir(obj):
                if attr in SKIP:
                    continue
                try:
                    method = getattr(obj, attr)
                except Exception:
                    continue
                if not callable(method):
                    continue
                for arity in (0, 1, 2):
                    for args in itertools.islice(itertools.product(ODD, repeat=arity), CALLS_PER_ARITY):
                        try:
                            result = method(*args)
                            close = getattr(result, "close", None)
                            if close is not None and type(result).__name__ == "coroutine":
                                close()
                        except BaseException:
                            pass
                        calls += 1
    return calls
