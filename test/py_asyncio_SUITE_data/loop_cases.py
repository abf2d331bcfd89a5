"""Plain asyncio programs run on ErlangEventLoop by py_asyncio_SUITE (each returns data the
suite checks). Nothing here knows about Erlang except where a case says so."""

import asyncio
import os
import socket
import sys
import tempfile
import threading
import time
import warnings

import erlang


def run(name, *args):
    """Runs case `name` on a new ErlangEventLoop with erlang.run()."""
    return erlang.run(globals()[name](*args))


def loop_type():
    async def main():
        return type(asyncio.get_running_loop()).__name__
    with asyncio.Runner(loop_factory=erlang.new_event_loop) as runner:
        return [runner.run(main()), runner.run(main())]


async def tcp_echo(rounds):
    async def handle(reader, writer):
        while data := await reader.readline():
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = []
    for i in range(rounds):
        writer.write(b"line %d\n" % i)
        await writer.drain()
        replies.append(await reader.readline())
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return [len(replies), replies[0], replies[-1]]


async def tcp_large_payload(size):
    """A payload much larger than socket buffers: the writer is paused and resumed."""
    received = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        data = await reader.readexactly(size)
        received.set_result(data)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = os.urandom(size)
    writer.write(payload)
    await writer.drain()
    data = await received
    writer.close()
    server.close()
    await server.wait_closed()
    return data == payload


async def udp_round_trip(count):
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data.upper(), addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self):
            self.replies = asyncio.Queue()

        def datagram_received(self, data, addr):
            self.replies.put_nowait(data)

    server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    port = server.get_extra_info("sockname")[1]
    client, proto = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    replies = []
    for i in range(count):
        client.sendto(b"ping %d" % i)
        replies.append(await asyncio.wait_for(proto.replies.get(), 5))
    client.close()
    server.close()
    return replies


async def unix_server():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "echo.sock")

        async def handle(reader, writer):
            data = await reader.read(100)
            writer.write(b"unix:" + data)
            await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(handle, path)
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"hello")
        await writer.drain()
        reply = await reader.read(100)
        writer.close()
        server.close()
        await server.wait_closed()
        return reply


async def many_tasks(n):
    async def one(i):
        await asyncio.sleep((i % 10) / 1000)
        return i
    results = await asyncio.gather(*(one(i) for i in range(n)))
    return [len(results), sum(results)]


async def timers_in_order():
    """call_later at shuffled delays: fired order and the worst lateness in ms."""
    loop = asyncio.get_running_loop()
    delays = [0.05, 0.01, 0.03, 0.02, 0.04, 0.015, 0.005]
    fired = []
    done = loop.create_future()
    start = loop.time()

    def fire(delay):
        fired.append((delay, (loop.time() - (start + delay)) * 1000))
        if len(fired) == len(delays):
            done.set_result(None)

    for d in delays:
        loop.call_later(d, fire, d)
    await done
    return [[d for d, _ in fired], max(late for _, late in fired), min(late for _, late in fired)]


async def cancellation():
    async def forever():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "saw cancel"

    task = asyncio.create_task(forever())
    await asyncio.sleep(0.01)
    task.cancel()
    inner = await task
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.sleep(10), 0.02)
        timed_out = False
    except asyncio.TimeoutError:
        timed_out = True
    task2 = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    task2.cancel()
    try:
        await task2
        cancelled = False
    except asyncio.CancelledError:
        cancelled = True
    return [inner, timed_out, cancelled, time.monotonic() - t0 < 1.0]


async def _boom():
    await asyncio.sleep(0.001)
    raise ValueError("boom in task")


async def gathered_exception():
    results = await asyncio.gather(_boom(), asyncio.sleep(0, "fine"), return_exceptions=True)
    return [type(r).__name__ if isinstance(r, BaseException) else r for r in results]


async def task_exception():
    task = asyncio.create_task(_boom())
    await task  # propagates out of erlang.run


async def threadsafe_and_executor():
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    threading.Thread(target=lambda: (time.sleep(0.01), loop.call_soon_threadsafe(fut.set_result, "from thread"))).start()
    from_thread = await fut
    total = await loop.run_in_executor(None, sum, [1, 2, 3])
    return [from_thread, total]


async def subprocess_echo():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate(b"through a pipe")
    return [out, proc.returncode]


async def resolve():
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    return len(infos) > 0


async def sock_api():
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    client = socket.socket()
    client.setblocking(False)
    accept = asyncio.ensure_future(loop.sock_accept(listener))
    await loop.sock_connect(client, listener.getsockname())
    conn, _ = await accept
    await loop.sock_sendall(client, b"sock_* works")
    data = await loop.sock_recv(conn, 100)
    for s in (client, conn, listener):
        s.close()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    await loop.sock_sendall(a, b"pair")
    pair = await loop.sock_recv(b, 10)
    a.close()
    b.close()
    return [data, pair]


async def readers_and_writers():
    """add_reader / add_writer / remove_* directly."""
    loop = asyncio.get_running_loop()
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    got = loop.create_future()
    writable = loop.create_future()
    loop.add_reader(r, lambda: got.set_result(r.recv(10)))
    loop.add_writer(w, lambda: (loop.remove_writer(w), writable.set_result(True)))
    await writable
    w.send(b"ready")
    data = await got
    removed = loop.remove_reader(r)
    r.close()
    w.close()
    return [data, removed]


async def erlang_sleep_concurrent():
    """Total ms, the order of starts and ends, and the shortest single sleep in ms."""
    log, took = [], []

    async def one():
        log.append("start")
        t = time.monotonic()
        await erlang.sleep(0.05)
        took.append((time.monotonic() - t) * 1000)
        log.append("end")

    t0 = time.monotonic()
    await asyncio.gather(one(), one(), one())
    return [(time.monotonic() - t0) * 1000, log, min(took)]


def erlang_sleep_sync(seconds):
    t0 = time.monotonic()
    result = erlang.sleep(seconds)
    return [result, (time.monotonic() - t0) * 1000]


def install_gating():
    """What erlang.install() does on this Python and, by setting _erlang_loop._VERSION, on
    3.11, 3.12 and 3.14."""
    import _erlang_loop
    real = _erlang_loop._VERSION
    out = {}
    try:
        for version in [(3, 11), (3, 12), (3, 13), (3, 14)]:
            _erlang_loop._VERSION = version
            key = "%d.%d" % version
            for silent in (False, True):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        erlang.install(silent=silent)
                        policy = type(asyncio.get_event_loop_policy()).__name__
                        outcome = [policy, [w.category.__name__ for w in caught]]
                    except RuntimeError as e:
                        outcome = ["RuntimeError", "erlang.run" in str(e)]
                    finally:
                        asyncio.set_event_loop_policy(None)
                out["%s%s" % (key, " silent" if silent else "")] = outcome
    finally:
        _erlang_loop._VERSION = real
    return out


def installed_policy_runs():
    """After install(silent=True), asyncio.run() uses ErlangEventLoop on a context thread."""
    erlang.install(silent=True)
    try:
        async def main():
            return type(asyncio.get_running_loop()).__name__
        return asyncio.run(main())
    finally:
        asyncio.set_event_loop_policy(None)


def no_policy_by_default():
    return type(asyncio.get_event_loop_policy()).__name__


def thread_count():
    return threading.active_count(), len(os.listdir("/proc/self/task"))


def sleep_in_loop(seconds):
    async def main():
        await asyncio.sleep(seconds)
        return "slept"
    return erlang.run(main())


_loop_released = False


def wait_in_loop(pid, seconds):
    """erlang.run of a coroutine that tells pid it waits, then waits until release_loop() is
    called (by another request on this context) or seconds have passed."""
    global _loop_released
    _loop_released = False

    async def main():
        erlang.send(pid, "waiting")
        deadline = time.monotonic() + seconds
        while not _loop_released:
            if time.monotonic() > deadline:
                return "not released"
            await asyncio.sleep(0.005)
        return "released"
    return erlang.run(main())


def release_loop():
    global _loop_released
    _loop_released = True


async def start_echo_server():
    """Runs on the context's hosted loop (py_event_loop): a server that stays up; returns its port."""
    async def handle(reader, writer):
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()
    global _hosted_server
    _hosted_server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return _hosted_server.sockets[0].getsockname()[1]


async def stop_echo_server():
    _hosted_server.close()
    await _hosted_server.wait_closed()
    return True


def _schedule_order(loop_factory):
    """The order a mix of call_soon, call_later and call_at callbacks (equal times, cancelled
    ones, many cancelled so that the heap is rebuilt) runs in on a new loop: the same whatever
    the machine's load (no callback schedules another)."""
    order = []

    async def main():
        loop = asyncio.get_running_loop()
        base = loop.time()
        done = loop.create_future()
        handles = [loop.call_at(base + 0.002 + (i % 7) * 0.001, order.append, ("at", i)) for i in range(300)]
        for handle in handles[::3] + handles[1::3]:
            handle.cancel()  # 200 of 300: more than half, so the next iteration rebuilds the heap
        loop.call_soon(order.append, ("soon", 1))
        loop.call_later(0, order.append, ("later0", 1))
        loop.call_soon(order.append, ("soon", 2))
        loop.call_at(base + 0.02, done.set_result, None)
        await done
        return len(loop._scheduled)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        left = runner.run(main())
    return order, left


def lean_scheduling():
    """ErlangEventLoop's own call_later/call_at/_run_once (priv/_erlang_schedule.py) against
    asyncio's: the same order, the same handle types and errors, a replaced time() honoured,
    a debug loop on asyncio's own code."""
    from asyncio import events
    checks = {}
    erlang_order, erlang_left = _schedule_order(erlang.new_event_loop)
    stock_order, stock_left = _schedule_order(asyncio.new_event_loop)
    checks["same_order"] = erlang_order == stock_order and len(erlang_order) == 103
    checks["heap_emptied"] = erlang_left == stock_left == 0

    loop = erlang.new_event_loop()
    try:
        handle = loop.call_later(10, print)
        checks["timer_handle"] = isinstance(handle, events.TimerHandle) and handle._source_traceback is None
        handle.cancel()
        try:
            loop.call_later(None, print)
            checks["delay_none"] = False
        except TypeError:
            checks["delay_none"] = True
        try:
            loop.call_at(None, print)
            checks["when_none"] = False
        except TypeError:
            checks["when_none"] = True
        loop.time = lambda: 1000.0  # a replaced clock is the loop's clock
        checks["replaced_time"] = loop.call_later(5, print).when() == 1005.0
        del loop.time
        loop.set_debug(True)
        debug_handle = loop.call_later(10, print)
        checks["debug_stock"] = type(debug_handle) is events.TimerHandle and bool(debug_handle._source_traceback)
        loop.set_debug(False)
    finally:
        loop.close()
    try:
        loop.call_later(0, print)
        checks["closed"] = False
    except RuntimeError:
        checks["closed"] = True
    return sorted(name for name, ok in checks.items() if not ok)
