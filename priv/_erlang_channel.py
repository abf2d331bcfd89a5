"""Channels from Erlang (src/py_channel.erl, src/py_byte_channel.erl), read in Python.

A py_channel or py_byte_channel passed to Python as a call or eval argument arrives as an
erlang.ChannelRef; wrap it in Channel (or ByteChannel) to read it. The queue lives in the NIF,
outside every interpreter, so any context (worker or owngil) and any Python thread may read it.

What a blocking receive() blocks: the calling thread only, with the GIL released while it waits.
A context runs one request at a time on its thread, so a receive() in a request's own code holds
that context until a message comes; call it from a threading.Thread (the context keeps serving
other requests meanwhile) or await async_receive() in a coroutine. The wait is made of short
slices, so an interrupted call (timeout, caller exit, py:interrupt) ends within one slice.

Names also reachable as erlang.channel.*, erlang.byte_channel.* and erlang.Channel, ...
"""

import time

import erlang

__all__ = ['Channel', 'ChannelClosed', 'ChannelBusy', 'ByteChannel', 'ByteChannelClosed', 'reply']

_SLICE = 0.05  # seconds of one wait; an interrupt surfaces between slices


class ChannelClosed(Exception):
    """Raised by a receive on a channel that is closed and has nothing left to read."""


class ByteChannelClosed(ChannelClosed):
    """ChannelClosed of a ByteChannel."""


class ChannelBusy(RuntimeError):
    """Raised by ByteChannel.send_bytes when the channel holds max_size bytes already (what
    py_byte_channel:send/2 answers with `busy`): nothing was queued, try again later. A
    RuntimeError, as erlang_python 4.1 raised for a full channel."""


class _NoChannel:
    """What Channel(None) reads: every use raises TypeError (erlang_python 4.1 accepted
    Channel(None) as a wrapper to be given no channel; so does this one)."""

    __slots__ = ()

    def __getattr__(self, name):
        raise TypeError("this Channel was made with Channel(None): it has no channel to use")

    def __repr__(self):
        return "None"


_NO_CHANNEL = _NoChannel()


def _ref_of(channel_ref):
    if channel_ref is None:
        return _NO_CHANNEL
    if isinstance(channel_ref, Channel):
        return channel_ref._ref
    if isinstance(channel_ref, erlang.ChannelRef):
        return channel_ref
    raise TypeError("expected a channel from py_channel:new/0,1 or py_byte_channel:new/0,1, got %r"
                    % (channel_ref,))


class Channel:
    """The reading end of a py_channel (or py_byte_channel) in Python."""

    __slots__ = ('_ref', '_waiters', '_reading')
    _closed = ChannelClosed

    def __init__(self, channel_ref):
        self._ref = _ref_of(channel_ref)
        self._waiters = []
        self._reading = False

    # --- blocking and polling ------------------------------------------------------------

    def receive(self, timeout=None):
        """The next message, waiting for it (GIL released). ChannelClosed once the channel is
        closed and drained; TimeoutError after timeout seconds (None: no limit)."""
        pop = self._ref._pop
        got = pop(0.0)
        if got is None:
            deadline = None if timeout is None else time.monotonic() + timeout
            while got is None:
                wait = _SLICE
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        raise TimeoutError("no message within %s s" % timeout)
                got = pop(wait)
        if got is False:
            raise self._closed("the channel is closed")
        return got[0]

    def try_receive(self):
        """The next message, or None when none is queued. ChannelClosed once closed and drained."""
        got = self._ref._pop(0.0)
        if got is False:
            raise self._closed("the channel is closed")
        return None if got is None else got[0]

    def __iter__(self):
        """Each message until the channel is closed and drained (receive() in a loop)."""
        pop = self._ref._pop
        while True:
            got = pop(0.0)
            while got is None:
                got = pop(_SLICE)
            if got is False:
                return
            yield got[0]

    # --- asyncio -------------------------------------------------------------------------

    def _on_wake(self, loop):
        loop.remove_reader(self._ref._wake_fd())
        self._ref._drain()
        self._reading = False
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def _readable(self):
        import asyncio
        ref = self._ref
        fd = ref._wake_fd()
        if ref._arm():
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.append(fut)
        if not self._reading:
            loop.add_reader(fd, self._on_wake, loop)
            self._reading = True
        try:
            await fut
        finally:
            if fut in self._waiters:  # cancelled before a wake-up
                self._waiters.remove(fut)
                if not self._waiters and self._reading:
                    loop.remove_reader(fd)
                    self._reading = False
                    ref._disarm()

    async def async_receive(self):
        """The next message; other coroutines run while none is queued. ChannelClosed once
        closed and drained. Works on any asyncio loop with add_reader (ErlangEventLoop, a
        context's own loop, the stock selector loop)."""
        pop = self._ref._pop
        got = pop(0.0)
        while got is None:
            await self._readable()
            got = pop(0.0)
        if got is False:
            raise self._closed("the channel is closed")
        return got[0]

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.async_receive()
        except self._closed:
            raise StopAsyncIteration from None

    # --- the rest ------------------------------------------------------------------------

    def close(self):
        """Closes the channel (as py_channel:close/1): Erlang's next send gets {error, closed}."""
        self._ref._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def info(self):
        """{'size': bytes queued, 'max_size': limit (0: none), 'length': messages, 'closed': bool}."""
        return self._ref._info()

    def _is_closed(self):
        return self._ref._info()['closed']

    def __repr__(self):
        return "<%s %r>" % (type(self).__name__, self._ref)


class ByteChannel(Channel):
    """The reading end of a py_byte_channel: every message is bytes."""

    __slots__ = ()
    _closed = ByteChannelClosed

    def receive_bytes(self, timeout_ms=-1):
        """The next bytes, waiting up to timeout_ms milliseconds (-1: no limit)."""
        return self.receive(None if timeout_ms is None or timeout_ms < 0 else timeout_ms / 1000.0)

    def try_receive_bytes(self):
        """The next bytes, or None when none are queued."""
        return self.try_receive()

    async def async_receive_bytes(self):
        """The next bytes; other coroutines run while none are queued."""
        return await self.async_receive()

    def send_bytes(self, data):
        """Queues a copy of data (bytes, bytearray, memoryview, any bytes-like object) on the
        channel, as py_byte_channel:send/2 does: Erlang reads it with py_byte_channel:recv/1,2
        or try_receive/1, Python with receive_bytes(). True; ChannelBusy when the channel is
        full (max_size), ByteChannelClosed after close. Never waits for a reader."""
        if isinstance(data, str):
            raise TypeError("send_bytes needs bytes-like data, not str (encode it first)")
        result = self._ref._send_bytes(data)
        if result == 'ok':
            return True
        if result == 'busy':
            raise ChannelBusy("the byte channel is full (max_size reached)")
        raise ByteChannelClosed("the byte channel is closed")


def reply(pid, term):
    """Sends term to the Erlang process pid (erlang.send); True."""
    erlang.send(pid, term)
    return True
