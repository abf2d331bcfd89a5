"""Reactor echo for `make bench` (bench/py_bench.erl, rows 15).

The reactor side: Echo below, an erlang.reactor protocol, served by a py_reactor_context.
The stock side: `python3 bench/reactor_bench.py` serves the same echo with an asyncio.Protocol on
asyncio's stock loop, in a process of its own; it prints its port and stops when stdin closes.
The clients of both sides are the same Erlang processes (gen_tcp, 64 B ping-pong).
"""

import sys


def reactor_setup():
    import erlang.reactor as reactor

    class Echo(reactor.Protocol):
        def data_received(self, data):
            self.write_buffer += data
            return "write_pending"

    reactor.set_protocol_factory(Echo)
    return True


def stock_serve():
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=512)
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = loop.create_future()
        loop.add_reader(sys.stdin.fileno(), lambda: stop.done() or stop.set_result(None))
        await stop
        server.close()

    asyncio.run(main())


if __name__ == "__main__":
    stock_serve()
