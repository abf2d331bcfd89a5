"""erlang.server: asyncio protocols on sockets that Erlang bound or accepted (docs/servers.md).

Erlang owns the listening socket (gen_tcp, gen_udp or socket) and hands each worker a copy of
its descriptor (py:dup_fd/1); serve() accepts on that copy with asyncio's own server code, so
every worker accepts from the one kernel queue and the port stays open while workers come
and go. adopt() takes one connection that Erlang accepted. The descriptor passed in becomes
the property of the socket object made here, which closes it.
"""

import asyncio
import socket

__all__ = ["serve", "adopt", "stop_serving"]


def _socket_of(fd, kind):
    if isinstance(fd, bool) or not isinstance(fd, int) or fd < 0:
        raise ValueError(f"not a file descriptor: {fd!r}")
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise OSError(exc.errno, f"fd {fd}: {exc.strerror}") from None
    if sock.type != kind:
        sock.close()  # handed over all the same: closed like any other
        wanted = "datagram" if kind == socket.SOCK_DGRAM else "stream"
        raise ValueError(f"fd {fd} is not a {wanted} socket")
    sock.setblocking(False)
    return sock


def _remember(loop, server):
    # Closed when the loop shuts down (its context or worker loop stops), see _erlang_worker.
    servers = getattr(loop, "_erlang_servers", None)
    if servers is None:
        servers = loop._erlang_servers = set()
        hooks = getattr(loop, "_erlang_shutdown_hooks", None)
        if hooks is not None:
            hooks.append(lambda: [s.close() for s in list(servers)])
    servers.add(server)


async def serve(listen_fd, protocol_factory, udp=False, *, backlog=100):
    """Serve protocol_factory's protocols on listen_fd: a listening stream socket (an
    asyncio.Server is returned, already accepting) or, with udp=True, a bound datagram
    socket (its DatagramTransport is returned)."""
    loop = asyncio.get_running_loop()
    sock = _socket_of(listen_fd, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    try:
        if udp:
            transport, _protocol = await loop.create_datagram_endpoint(protocol_factory, sock=sock)
            _remember(loop, transport)
            return transport
        server = await loop.create_server(protocol_factory, sock=sock, backlog=backlog)
    except BaseException:
        sock.close()
        raise
    _remember(loop, server)
    return server


async def adopt(fd, protocol_factory):
    """Serve one connected stream socket that Erlang accepted: (transport, protocol)."""
    loop = asyncio.get_running_loop()
    sock = _socket_of(fd, socket.SOCK_STREAM)
    try:
        return await loop.connect_accepted_socket(protocol_factory, sock)
    except BaseException:
        sock.close()
        raise


async def stop_serving(server):
    """Stop accepting (a Server: its connections stay open and end on their own) or close a
    datagram transport. Erlang's own socket is not touched: other workers keep serving it."""
    server.close()
    servers = getattr(asyncio.get_running_loop(), "_erlang_servers", None)
    if servers is not None:
        servers.discard(server)
    if isinstance(server, asyncio.AbstractServer):
        # Connections accepted just before are still being set up by asyncio's
        # _accept_connection2 tasks: once those are done, every accepted connection has its
        # protocol (connection_made called), so a caller that then waits for its connections
        # to end misses none. Not wait_closed(): on 3.12+ that waits for every connection.
        setting_up = [t for t in asyncio.all_tasks()
                      if getattr(t.get_coro(), "__name__", "") == "_accept_connection2"]
        if setting_up:
            await asyncio.wait(setting_up, timeout=5)
    return None
