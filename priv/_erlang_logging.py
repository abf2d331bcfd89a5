"""Python `logging` records forwarded to OTP `logger` (src/py_logger.erl, docs/logging.md).

configure() installs one ErlangHandler on the root logger of this interpreter (replacing the
one installed before). The handler sends each record to the py_logger process with
erlang.send: no reply is waited for, and a py_logger that is gone is not an error.

erlang.send works on every Python thread of erlang_python's interpreters. Should it raise
RuntimeError (an interpreter it does not know), the record is kept (the last 1000 of them) and
sent after the next record that could be sent; its metadata keeps the time it was logged.
"""

import collections
import logging

import erlang

_handler = None
_pending = collections.deque(maxlen=1000)


class ErlangHandler(logging.Handler):
    """Sends records to an Erlang process as
    ('$py_log', levelno, name, message, pathname, lineno, funcName, module, created)."""

    def __init__(self, sink, level=logging.NOTSET, fmt=None):
        super().__init__(level)
        self.sink = sink
        self.setFormatter(logging.Formatter(fmt or "%(message)s"))

    def emit(self, record):
        try:
            event = ("$py_log", int(record.levelno), _text(record.name), _text(self.format(record)),
                     _text(record.pathname), int(record.lineno or 0), _text(record.funcName),
                     _text(record.module), float(record.created))
        except Exception:
            self.handleError(record)
            return
        self._send(event)

    def _send(self, event):
        try:
            erlang.send(self.sink, event)
        except RuntimeError:
            _pending.append(event)  # not sendable from here: sent after the next one that is
            return
        except Exception:
            return  # never let logging break the code that logs
        while _pending:  # what could not be sent before
            try:
                erlang.send(self.sink, _pending.popleft())
            except Exception:
                pass


def _text(value):
    """str that converts to a UTF-8 binary (a lone surrogate would not)."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _remove_handlers(root):
    for h in list(root.handlers):
        if type(h).__name__ == "ErlangHandler" and type(h).__module__ == __name__:
            root.removeHandler(h)


def configure(sink, level, fmt=None, capture_warnings=True):
    """Forward records at `level` and above, from every logger, to the Erlang process `sink`.
    level None: forward nothing (no handler, warnings no longer captured)."""
    global _handler
    root = logging.getLogger()
    _remove_handlers(root)
    _handler = None
    if level is None:
        root.setLevel(logging.WARNING)  # Python's default
        logging.captureWarnings(False)
        return
    _handler = ErlangHandler(sink, level, fmt)
    root.addHandler(_handler)
    root.setLevel(level)
    logging.captureWarnings(bool(capture_warnings))
