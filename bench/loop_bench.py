"""Event loop throughput for `make bench`: the same asyncio code on ErlangEventLoop and on
asyncio's stock loop, in one run (bench/py_bench.erl, rows 14)."""

import asyncio
import time

import erlang


def _on(loop_name, coro_fn, *args):
    factory = erlang.new_event_loop if loop_name == "erlang" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro_fn(*args))


async def _timer_chain(n):
    """n timers in a chain: each callback schedules the next with call_later(0)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = [n]

    def tick():
        left[0] -= 1
        if left[0]:
            loop.call_later(0, tick)
        else:
            done.set_result(None)

    t0 = time.perf_counter()
    loop.call_later(0, tick)
    await done
    return n / (time.perf_counter() - t0)


async def _echo(n, size):
    """n ping-pongs of size bytes over one loopback TCP connection (server and client on the loop)."""
    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = b"x" * size
    t0 = time.perf_counter()
    for _ in range(n):
        writer.write(payload)
        await reader.readexactly(size)
    rate = n / (time.perf_counter() - t0)
    writer.close()
    server.close()
    await server.wait_closed()
    return rate


def timers(loop_name, n):
    return _on(loop_name, _timer_chain, n)


def echo(loop_name, n, size):
    return _on(loop_name, _echo, n, size)


async def _echo_many(conns, n, size):
    """conns loopback TCP connections to one echo server on the loop, each doing n ping-pongs of
    size bytes at the same time; the rate counts every connection's round trips."""
    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=conns)
    port = server.sockets[0].getsockname()[1]
    pairs = [await asyncio.open_connection("127.0.0.1", port) for _ in range(conns)]
    payload = b"x" * size

    async def client(reader, writer):
        for _ in range(n):
            writer.write(payload)
            await reader.readexactly(size)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(r, w) for r, w in pairs))
    rate = conns * n / (time.perf_counter() - t0)
    for _, writer in pairs:
        writer.close()
    server.close()
    await server.wait_closed()
    return rate


def echo_many(loop_name, conns, n, size):
    return _on(loop_name, _echo_many, conns, n, size)


async def _idle_cpu(seconds):
    """CPU time of the loop's thread while the loop waits, idle, for seconds with a server and
    one connected client open (descriptors armed, nothing ready), in ms per second."""
    async def handle(reader, writer):
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(0.05)  # the connection accepted: nothing left to do
    t0 = time.thread_time()
    await asyncio.sleep(seconds)
    cpu = time.thread_time() - t0
    writer.close()
    server.close()
    await server.wait_closed()
    return cpu * 1000 / seconds


def idle_cpu(loop_name, seconds):
    return _on(loop_name, _idle_cpu, seconds)
