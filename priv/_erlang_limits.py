"""Bounds set from the application env (src/erlang_python_sup.erl, a py_setup step).

Kept apart from _erlang_async (which imports asyncio) so that setting them costs a new owngil
interpreter nothing but this module.
"""

stream_max_items = 1_000_000  # py:stream / py:stream_eval; None: no bound


def configure(max_items):
    """Sets the most items py:stream collects (None: no bound)."""
    global stream_max_items
    stream_max_items = max_items
