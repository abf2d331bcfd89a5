%% py_reactor_context: sockets accepted by gen_tcp, handed off, served by Python protocols, in
%% worker and owngil contexts. Loopback only.
-module(py_reactor_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_group/2, end_per_group/2]).
-export([echo/1, client_info_and_get_protocol/1, large_write_waits_for_writable/1,
         close_action/1, caller_keeps_its_fd/1, invalid_fd/1, peer_reset_during_write/1, bad_arguments/1,
         protocol_raises/1, unknown_action/1, no_action/1, no_factory/1, too_many_connections/1,
         thousand_connections_no_fd_left/1, contexts_share_one_listener/1,
         stop_closes_connections/1, killed_reactor_leaves_no_fd/1, default_reactor/1,
         reactor_buffer/1, async_pending_from_thread/1, async_pending_signalled_first/1,
         async_pending_signal_by_call/1, driven_by_hand/1, thread_priority/1,
         app_module_and_callable/1, app_module_from_working_dir/1, app_module_errors/1,
         stream_in_growing_reads/1, paused_hangup_does_not_spin/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [{group, worker}, {group, owngil}].

groups() ->
    Cases = [echo, client_info_and_get_protocol, large_write_waits_for_writable, close_action,
             caller_keeps_its_fd, invalid_fd, peer_reset_during_write, bad_arguments, protocol_raises,
             unknown_action, no_action, no_factory, too_many_connections, thousand_connections_no_fd_left,
             contexts_share_one_listener, stop_closes_connections, killed_reactor_leaves_no_fd, default_reactor,
             reactor_buffer, async_pending_from_thread, async_pending_signalled_first,
             async_pending_signal_by_call, driven_by_hand, thread_priority, app_module_and_callable,
             app_module_from_working_dir, app_module_errors, stream_in_growing_reads,
             paused_hangup_does_not_spin],
    [{worker, [], Cases}, {owngil, [], Cases}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_group(owngil, Config) ->
    case py_context:new(#{mode => owngil}) of
        {ok, Ctx} -> ok = py_context:stop(Ctx), [{mode, owngil} | Config];
        {error, _} -> {skip, "owngil contexts need Python 3.13+"}
    end;
init_per_group(Mode, Config) ->
    [{mode, Mode} | Config].

end_per_group(_, _Config) ->
    ok.

%% --- the protocols -------------------------------------------------------------------------------

protocols() -> <<"
import logging, threading
import erlang.reactor as reactor

class Echo(reactor.Protocol):
    def data_received(self, data):
        self.write_buffer.extend(data)
        return 'write_pending'

class Info(reactor.Protocol):
    def data_received(self, data):
        me = reactor.get_protocol(self.fd) is self
        self.write_buffer.extend(repr((self.client_info.get('addr'), self.client_info.get('port'), me)).encode())
        return 'write_pending'

class Big(reactor.Protocol):
    # 4 MiB at once: more than the socket's buffer, so write_ready answers 'continue'
    # until the peer has read enough.
    def data_received(self, data):
        self.write_buffer.extend(b'x' * (4 << 20))
        return 'write_pending'

class Once(reactor.Protocol):
    def data_received(self, data):
        self.write_buffer.extend(b'bye')
        return 'write_pending'
    def write_ready(self):
        self.write_buffer = self.write_buffer[self.write(self.write_buffer):]
        return 'continue' if self.write_buffer else 'close'

class Raises(reactor.Protocol):
    def data_received(self, data):
        if data.startswith(b'boom'):
            raise ValueError('boom')
        self.write_buffer.extend(data)
        return 'write_pending'

class Bogus(reactor.Protocol):
    def data_received(self, data):
        if data.startswith(b'boom'):
            return 'explode'
        self.write_buffer.extend(data)
        return 'write_pending'

class Nothing(reactor.Protocol):
    def data_received(self, data):
        if data.startswith(b'boom'):
            return None
        self.write_buffer.extend(data)
        return 'write_pending'

class Zero(reactor.Protocol):
    # What data is: a ReactorBuffer (bytes the kernel read into it), usable as bytes.
    def data_received(self, data):
        text = bytes(data).decode()
        checks = [isinstance(data, reactor.ReactorBuffer), isinstance(data, bytes),
                  type(data) is not bytes, data.memoryview().readonly, memoryview(data).obj is data,
                  data == text.encode(), hash(data) == hash(text.encode()), data.decode() == text,
                  data.startswith(text[:1].encode()), data[0] == ord(text[0]), len(data) == len(text),
                  data.find(text[-1:].encode()) >= 0]
        self.write_buffer.extend(b'ok' if all(checks) else repr(checks).encode())
        return 'write_pending'

class Deferred(reactor.Protocol):
    # The response is made on another thread; the connection waits without reading.
    def data_received(self, data):
        payload = bytes(data)
        def work():
            self.write_buffer.extend(payload.upper())
            assert reactor.signal_write_ready(self.fd)
        threading.Thread(target=work).start()
        return 'async_pending'

class SignalFirst(reactor.Protocol):
    # signal_write_ready before the 'async_pending' answer: the signal is kept for it.
    def data_received(self, data):
        self.write_buffer.extend(bytes(data) + (b'!' if reactor.signal_write_ready(-5) is False else b'?'))
        reactor.signal_write_ready(self.fd)
        return 'async_pending'

parked = []
class Parked(reactor.Protocol):
    # Never signals by itself: the test closes the peer, then signals from Erlang.
    def data_received(self, data):
        parked.append(self.fd)
        return 'async_pending'
    def write_ready(self):
        self.write_buffer.extend(b'late')
        return super().write_ready()

class Counter(reactor.Protocol):
    # Counts what comes (4 MiB sent at once: many reads, growing from 4 KiB), answers the total
    # and the largest read once the peer has sent it all.
    def connection_made(self, fd, client_info):
        super().connection_made(fd, client_info)
        self.got = 0
        self.largest = 0
    def data_received(self, data):
        self.got += len(data)
        self.largest = max(self.largest, len(data))
        if self.got < (4 << 20):
            return 'continue'
        self.write_buffer.extend(b'%d %d' % (self.got, self.largest))
        return 'write_pending'

lost = []
class Tracked(Echo):
    def connection_lost(self):
        lost.append(self.fd)

seen = []
class _Seen(logging.Handler):
    def __init__(self):
        super().__init__()
        self.thread = threading.get_ident()
    def emit(self, record):
        if record.thread == self.thread:
            seen.append(record.getMessage())
logging.getLogger('erlang.reactor').addHandler(_Seen())
">>.

start(Config, Protocol) ->
    start(Config, Protocol, #{}).

start(Config, Protocol, Opts) ->
    Code = <<(protocols())/binary, "\nreactor.set_protocol_factory(", Protocol/binary, ")\n">>,
    {ok, R} = py_reactor_context:start_link(make_ref(), ?config(mode, Config), Opts#{setup_code => Code}),
    R.

listen() ->
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}, {backlog, 128}]),
    L.

%% A connected pair: the client socket and the accepted one.
pair(L) ->
    {ok, Port} = inet:port(L),
    {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    {ok, S} = gen_tcp:accept(L),
    {C, S}.

%% Accepts one connection, hands it to R and closes Erlang's socket.
connect(R, L) ->
    connect(R, L, #{}).

connect(R, L, Info) ->
    {C, S} = pair(L),
    {ok, Fd} = inet:getfd(S),
    ok = py_reactor_context:handoff(R, Fd, Info),
    ok = gen_tcp:close(S),
    C.

echo_ok(C, Bin) ->
    ok = gen_tcp:send(C, Bin),
    {ok, Bin} = gen_tcp:recv(C, byte_size(Bin), 5000).

wait_stats(R, Key, Value) ->
    true = py_test_util:wait_until(fun() -> maps:get(Key, py_reactor_context:stats(R)) =:= Value end, 10000).

stop(R) ->
    unlink(R),
    ok = py_reactor_context:stop(R).

%% --- cases ---------------------------------------------------------------------------------------

echo(Config) ->
    R = start(Config, <<"Echo">>),
    L = listen(),
    C = connect(R, L),
    [echo_ok(C, <<N:512>>) || N <- lists:seq(1, 100)],
    #{active_connections := 1, total_connections := 1, total_requests := 100, protocol_errors := 0} =
        py_reactor_context:stats(R),
    ok = gen_tcp:close(C),
    wait_stats(R, active_connections, 0),
    stop(R).

client_info_and_get_protocol(Config) ->
    R = start(Config, <<"Info">>),
    L = listen(),
    C = connect(R, L, #{addr => <<"127.0.0.1">>, port => 4242, type => tcp}),
    ok = gen_tcp:send(C, <<"?">>),
    {ok, <<"('127.0.0.1', 4242, True)">>} = gen_tcp:recv(C, 0, 5000),
    ok = gen_tcp:close(C),
    stop(R).

large_write_waits_for_writable(Config) ->
    R = start(Config, <<"Big">>),
    L = listen(),
    C = connect(R, L),
    ok = gen_tcp:send(C, <<"go">>),
    {ok, Data} = gen_tcp:recv(C, 4 bsl 20, 10000),
    4194304 = byte_size(Data),
    echo_after_big(C),
    ok = gen_tcp:close(C),
    stop(R).

%% After 'continue' (write mode) the protocol answered 'read_pending': it reads again.
echo_after_big(C) ->
    ok = gen_tcp:send(C, <<"again">>),
    {ok, Data} = gen_tcp:recv(C, 4 bsl 20, 10000),
    4194304 = byte_size(Data).

close_action(Config) ->
    R = start(Config, <<"Once">>),
    L = listen(),
    C = connect(R, L),
    ok = gen_tcp:send(C, <<"hi">>),
    {ok, <<"bye">>} = gen_tcp:recv(C, 3, 5000),
    {error, closed} = gen_tcp:recv(C, 0, 5000),
    wait_stats(R, active_connections, 0),
    #{protocol_errors := 0} = py_reactor_context:stats(R),
    stop(R).

%% The reactor holds its own dup: the caller may close its socket at once (connect/2 does), or
%% keep using its fd; closing the reactor's side does not close the caller's fd.
caller_keeps_its_fd(Config) ->
    R = start(Config, <<"Once">>),
    L = listen(),
    {C, S} = pair(L),
    {ok, Fd} = inet:getfd(S),
    ok = py_reactor_context:handoff(R, Fd, #{}),
    ok = gen_tcp:send(C, <<"hi">>),
    {ok, <<"bye">>} = gen_tcp:recv(C, 3, 5000),
    wait_stats(R, active_connections, 0),
    %% The reactor closed its dup; the connection is still open through Erlang's socket.
    ok = gen_tcp:send(S, <<"still here">>),
    {ok, <<"still here">>} = gen_tcp:recv(C, 10, 5000),
    ok = gen_tcp:close(S),
    ok = gen_tcp:close(C),
    stop(R).

invalid_fd(Config) ->
    R = start(Config, <<"Echo">>),
    {error, ebadf} = py_reactor_context:handoff(R, -1, #{}),
    {error, ebadf} = py_reactor_context:handoff(R, 1 bsl 30, #{}),
    L = listen(),
    {C, S} = pair(L),
    {ok, Fd} = inet:getfd(S),
    ok = gen_tcp:close(S),
    {error, ebadf} = py_reactor_context:handoff(R, Fd, #{}),
    ok = gen_tcp:close(C),
    #{active_connections := 0, total_connections := 0} = py_reactor_context:stats(R),
    %% still serving
    C2 = connect(R, L),
    echo_ok(C2, <<"ok">>),
    ok = gen_tcp:close(C2),
    stop(R).

%% The peer goes away while 4 MiB wait to be written: the write fails (EPIPE/ECONNRESET), the
%% connection closes instead of waiting for a writability that keeps firing.
peer_reset_during_write(Config) ->
    R = start(Config, <<"Big">>),
    L = listen(),
    C = connect(R, L),
    ok = gen_tcp:send(C, <<"go">>),
    {ok, _} = gen_tcp:recv(C, 1, 5000),  % the reactor is writing
    ok = gen_tcp:close(C),              % unread data: the kernel resets the connection
    wait_stats(R, active_connections, 0),
    #{protocol_errors := 0} = py_reactor_context:stats(R),
    stop(R).

bad_arguments(Config) ->
    R = start(Config, <<"Echo">>),
    {'EXIT', {badarg, _}} = (catch py_reactor_context:handoff(R, not_an_fd, #{})),
    {'EXIT', {badarg, _}} = (catch py_reactor_context:handoff(R, 3, not_a_map)),
    {error, {invalid_option, max_connections}} =
        py_reactor_context:start_link(x, ?config(mode, Config), #{max_connections => 0}),
    {error, {setup_code, {'SyntaxError', _}}} =
        py_reactor_context:start_link(x, ?config(mode, Config), #{setup_code => <<"def (">>}),
    %% A live process that is not a reactor context would never answer: badarg at once.
    NotReactor = spawn_link(fun() -> receive stop -> ok end end),
    [{'EXIT', {badarg, _}} = (catch F()) || F <- [fun() -> py_reactor_context:stats(NotReactor) end,
                                                fun() -> py_reactor_context:context(NotReactor) end,
                                                fun() -> py_reactor_context:handoff(NotReactor, 0, #{}) end,
                                                fun() -> py_reactor_context:stop(NotReactor) end]],
    NotReactor ! stop,
    stop(R).

protocol_raises(Config) ->
    protocol_fault(Config, <<"Raises">>, "raised").

unknown_action(Config) ->
    protocol_fault(Config, <<"Bogus">>, "'explode'").

%% A callback that returns nothing (a forgotten return) is an unknown action too.
no_action(Config) ->
    protocol_fault(Config, <<"Nothing">>, "None").

%% The faulty connection closes, the fault is logged, the others and new ones are served.
protocol_fault(Config, Protocol, Expect) ->
    R = start(Config, Protocol),
    Ctx = py_reactor_context:context(R),
    L = listen(),
    Other = connect(R, L),
    C = connect(R, L),
    echo_ok(C, <<"fine">>),
    ok = gen_tcp:send(C, <<"boom">>),
    {error, closed} = gen_tcp:recv(C, 0, 5000),
    wait_stats(R, active_connections, 1),
    #{protocol_errors := 1} = py_reactor_context:stats(R),
    {ok, [Logged]} = py:eval(Ctx, <<"seen">>),
    true = string:find(Logged, Expect) =/= nomatch,
    echo_ok(Other, <<"other">>),
    C2 = connect(R, L),
    echo_ok(C2, <<"new">>),
    [ok = gen_tcp:close(S) || S <- [Other, C2]],
    stop(R).

no_factory(Config) ->
    {ok, R} = py_reactor_context:start_link(nf, ?config(mode, Config)),
    L = listen(),
    {C, S} = pair(L),
    {ok, Fd} = inet:getfd(S),
    Before = py_test_util:fds(),
    {error, no_protocol_factory} = py_reactor_context:handoff(R, Fd, #{}),
    Before = py_test_util:fds(),
    [ok = gen_tcp:close(X) || X <- [C, S]],
    stop(R).

too_many_connections(Config) ->
    R = start(Config, <<"Echo">>, #{max_connections => 2}),
    L = listen(),
    C1 = connect(R, L),
    C2 = connect(R, L),
    {C3, S3} = pair(L),
    {ok, Fd} = inet:getfd(S3),
    {error, too_many_connections} = py_reactor_context:handoff(R, Fd, #{}),
    #{max_connections := 2, active_connections := 2} = py_reactor_context:stats(R),
    ok = gen_tcp:close(C1),
    wait_stats(R, active_connections, 1),
    ok = py_reactor_context:handoff(R, Fd, #{}),
    echo_ok(C3, <<"third">>),
    [ok = gen_tcp:close(X) || X <- [C2, C3, S3]],
    stop(R).

%% 1,000 connections opened (50 at a time), each echoes once, then dropped by the peer: no
%% descriptor left behind (counted in /proc/self/fd).
thousand_connections_no_fd_left(Config) ->
    R = start(Config, <<"Tracked">>, #{max_connections => 100}),
    Ctx = py_reactor_context:context(R),
    L = listen(),
    Before = py_test_util:fds(),
    lists:foreach(
      fun(_) ->
              Cs = [connect(R, L) || _ <- lists:seq(1, 50)],
              [echo_ok(C, <<"x">>) || C <- Cs],
              [ok = gen_tcp:close(C) || C <- Cs],
              wait_stats(R, active_connections, 0)
      end, lists:seq(1, 20)),
    #{total_connections := 1000, total_requests := 1000, protocol_errors := 0} = py_reactor_context:stats(R),
    {ok, 1000} = py:eval(Ctx, <<"len(lost)">>),
    Before = py_test_util:fds(),
    stop(R).

%% Several reactor contexts serve the connections accepted from one listening socket.
contexts_share_one_listener(Config) ->
    Rs = [start(Config, <<"Echo">>) || _ <- lists:seq(1, 4)],
    L = listen(),
    Cs = [connect(lists:nth(I rem 4 + 1, Rs), L) || I <- lists:seq(0, 39)],
    Parent = self(),
    Pids = [spawn_link(fun() -> [echo_ok(C, <<I:64>>) || I <- lists:seq(1, 20)], Parent ! {done, self()} end)
            || C <- Cs],
    [receive {done, P} -> ok end || P <- Pids],
    [#{total_connections := 10, total_requests := 200} = py_reactor_context:stats(R) || R <- Rs],
    [ok = gen_tcp:close(C) || C <- Cs],
    [stop(R) || R <- Rs].

stop_closes_connections(Config) ->
    R = start(Config, <<"Echo">>),
    L = listen(),
    Before = py_test_util:fds(),
    Cs = [connect(R, L) || _ <- lists:seq(1, 5)],
    [echo_ok(C, <<"x">>) || C <- Cs],
    stop(R),
    [{error, closed} = gen_tcp:recv(C, 0, 5000) || C <- Cs],
    [ok = gen_tcp:close(C) || C <- Cs],
    true = py_test_util:wait_until(fun() -> py_test_util:fds() =< Before end, 5000).

%% The reactor's process is killed (no terminate): its Python context stops with it, and the
%% connections' descriptors are closed all the same.
killed_reactor_leaves_no_fd(Config) ->
    L = listen(),
    Before = py_test_util:fds(),
    R = start(Config, <<"Echo">>),
    Ctx = py_reactor_context:context(R),
    Cs = [connect(R, L) || _ <- lists:seq(1, 5)],
    [echo_ok(C, <<"x">>) || C <- Cs],
    unlink(R),
    MRef = monitor(process, Ctx),
    exit(R, kill),
    receive {'DOWN', MRef, process, Ctx, _} -> ok end,
    [{error, closed} = gen_tcp:recv(C, 0, 5000) || C <- Cs],
    [ok = gen_tcp:close(C) || C <- Cs],
    true = py_test_util:wait_until(fun() -> py_test_util:fds() =< Before end, 5000).

default_reactor(Config) ->
    {error, no_reactor_context} = py_reactor_context:handoff(3, #{}),
    R = start(Config, <<"Echo">>, #{default => true}),
    L = listen(),
    {C, S} = pair(L),
    {ok, Fd} = inet:getfd(S),
    ok = py_reactor_context:handoff(Fd, #{}),
    ok = gen_tcp:close(S),
    echo_ok(C, <<"default">>),
    ok = gen_tcp:close(C),
    stop(R).

%% data_received gets a ReactorBuffer: a bytes subclass read in place, with memoryview().
reactor_buffer(Config) ->
    R = start(Config, <<"Zero">>),
    L = listen(),
    C = connect(R, L),
    [begin
         ok = gen_tcp:send(C, Msg),
         {ok, <<"ok">>} = gen_tcp:recv(C, 2, 5000)
     end || Msg <- [<<"ping">>, <<"x">>, binary:copy(<<"abc">>, 1000)]],
    ok = gen_tcp:close(C),
    stop(R),
    %% erlang.reactor in any context, and ReactorBuffer._test_create to unit-test a protocol
    {ok, Ctx} = py_context:new(#{mode => ?config(mode, Config)}),
    ok = py:exec(Ctx, <<"
import erlang.reactor as reactor
class Up(reactor.Protocol):
    def data_received(self, data):
        self.write_buffer.extend(data.upper())
        return 'write_pending'
p = Up()
buf = reactor.ReactorBuffer._test_create(b'GET / HTTP/1.1')
">>),
    {ok, [<<"write_pending">>, <<"GET / HTTP/1.1">>, true, true]} =
        py:eval(Ctx, <<"[p.data_received(buf), bytes(p.write_buffer), buf.find(b'HTTP') == 6, "
                       "hasattr(erlang, 'reactor')]">>),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"reactor.ReactorBuffer(b'x')">>),
    ok = py_context:stop(Ctx).

%% 'async_pending': the response comes from a thread, which calls signal_write_ready(fd).
async_pending_from_thread(Config) ->
    R = start(Config, <<"Deferred">>),
    L = listen(),
    Cs = [connect(R, L) || _ <- lists:seq(1, 3)],
    [[begin
          ok = gen_tcp:send(C, <<"abc", N>>),
          Up = <<"ABC", (N - 32)>>,  % N is a lowercase letter
          {ok, Up} = gen_tcp:recv(C, 4, 5000)
      end || C <- Cs] || N <- lists:seq($a, $t)],
    #{total_requests := 60, protocol_errors := 0, active_connections := 3} = py_reactor_context:stats(R),
    [ok = gen_tcp:close(C) || C <- Cs],
    wait_stats(R, active_connections, 0),
    stop(R).

%% A signal that comes before the callback answers 'async_pending' is not lost; a signal for
%% a descriptor that is no connection answers False.
async_pending_signalled_first(Config) ->
    R = start(Config, <<"SignalFirst">>),
    L = listen(),
    C = connect(R, L),
    [begin
         ok = gen_tcp:send(C, <<"hey">>),
         {ok, <<"hey!">>} = gen_tcp:recv(C, 4, 5000)
     end || _ <- lists:seq(1, 10)],
    #{total_requests := 10, protocol_errors := 0} = py_reactor_context:stats(R),
    ok = gen_tcp:close(C),
    stop(R).

%% A connection parked in 'async_pending' is served by a signal sent from a py:eval on the
%% reactor's context; a signal once it is closed answers False.
async_pending_signal_by_call(Config) ->
    R = start(Config, <<"Parked">>),
    Ctx = py_reactor_context:context(R),
    L = listen(),
    C = connect(R, L),
    ok = gen_tcp:send(C, <<"wait">>),
    true = py_test_util:wait_until(fun() -> {ok, 1} =:= py:eval(Ctx, <<"len(parked)">>) end, 10000),
    {ok, Fd} = py:eval(Ctx, <<"parked[0]">>),
    #{active_connections := 1} = py_reactor_context:stats(R),
    {ok, true} = py:eval(Ctx, <<"__import__('erlang.reactor').reactor.signal_write_ready(fd)">>, #{fd => Fd}),
    {ok, <<"late">>} = gen_tcp:recv(C, 4, 5000),
    %% served: a second signal finds the connection reading again and changes nothing
    {ok, true} = py:eval(Ctx, <<"__import__('erlang.reactor').reactor.signal_write_ready(fd)">>, #{fd => Fd}),
    ok = gen_tcp:close(C),
    wait_stats(R, active_connections, 0),
    {ok, false} = py:eval(Ctx, <<"__import__('erlang.reactor').reactor.signal_write_ready(fd)">>, #{fd => Fd}),
    stop(R).

%% 4.x's init_connection/on_read_ready/on_write_ready/close_connection drive a protocol without a
%% reactor (a socketpair here): the caller reads the actions; the descriptor stays the caller's.
driven_by_hand(Config) ->
    {ok, Ctx} = py_context:new(#{mode => ?config(mode, Config)}),
    ok = py:exec(Ctx, <<"
import socket
import erlang.reactor as reactor
gone = []
class Echo(reactor.Protocol):
    def data_received(self, data):
        self.write_buffer.extend(data)
        return 'write_pending'
    def connection_lost(self):
        gone.append(self.fd)
a, b = socket.socketpair()
a.setblocking(False)
reactor.set_protocol_factory(Echo)
p = reactor.init_connection(a.fileno(), {'type': 'test'})
b.send(b'hello')
">>),
    {ok, [<<"write_pending">>, <<"hello">>, true, <<"test">>]} =
        py:eval(Ctx, <<"[reactor.on_read_ready(a.fileno()), bytes(p.write_buffer), "
                       "reactor.get_protocol(a.fileno()) is p, p.client_info['type']]">>),
    {ok, [<<"read_pending">>, <<"hello">>]} =
        py:eval(Ctx, <<"[reactor.on_write_ready(a.fileno()), b.recv(16)]">>),
    ok = py:exec(Ctx, <<"reactor.close_connection(a.fileno())">>),
    {ok, [true, true, none, <<"close">>, <<"close">>]} =
        py:eval(Ctx, <<"[gone == [a.fileno()], p.closed, reactor.get_protocol(a.fileno()), "
                       "reactor.on_read_ready(a.fileno()), reactor.on_write_ready(a.fileno())]">>),
    %% the descriptor is still the caller's: open and usable
    {ok, 2} = py:eval(Ctx, <<"a.send(b'ok')">>),
    ok = py:exec(Ctx, <<"a.close(); b.close()">>),
    ok = py_context:stop(Ctx).

%% A reactor's thread runs at normal priority unless its thread_priority option says otherwise
%% (os.sched_getscheduler(0) is the calling thread's policy, the context's own thread here).
thread_priority(Config) ->
    Policy = fun(R) ->
                     {ok, P} = py:eval(py_reactor_context:context(R), <<"__import__('os').sched_getscheduler(0)">>),
                     P
             end,
    {ok, SchedOther} = py:eval(<<"__import__('os').SCHED_OTHER">>),
    {ok, SchedIdle} = py:eval(<<"__import__('os').SCHED_IDLE">>),
    Default = start(Config, <<"Echo">>),
    SchedOther = Policy(Default),
    stop(Default),
    Idle = start(Config, <<"Echo">>, #{thread_priority => idle}),
    SchedIdle = Policy(Idle),
    stop(Idle),
    {error, {invalid_option, thread_priority}} =
        py_reactor_context:start_link(x, ?config(mode, Config), #{thread_priority => urgent}).

%% --- app_module / app_callable -------------------------------------------------------------------

%% A protocol that hands each request to the application imported by app_module/app_callable:
%% it finds it as the global _reactor_app of the namespace setup_code ran in.
app_protocol(Dir) -> <<"
import sys
import erlang.reactor as reactor
sys.path.insert(0, '", Dir/binary, "')

class App(reactor.Protocol):
    def data_received(self, data):
        self.write_buffer.extend(_reactor_app(bytes(data)))
        return 'write_pending'

reactor.set_protocol_factory(App)
">>.

%% A module file `Name'.py in Dir whose `handle' and `application' answer differently.
write_app_module(Dir, Name) ->
    ok = file:write_file(filename:join(Dir, Name ++ ".py"),
                         <<"def handle(data):\n    return b'handled:' + data\n\n"
                           "def application(data):\n    return b'app:' + data\n">>).

%% setup_code puts the application's directory on sys.path (it runs first, as in 4.1), the
%% import binds the callable named by app_callable, the protocol calls it; a second reactor on
%% the other callable of the same module gets that one.
app_module_and_callable(Config) ->
    Dir = list_to_binary(?config(priv_dir, Config)),
    Module = "reactor_app_" ++ atom_to_list(?config(mode, Config)),
    write_app_module(Dir, Module),
    {ok, R} = py_reactor_context:start_link(app, ?config(mode, Config),
                                            #{setup_code => app_protocol(Dir),
                                              app_module => list_to_binary(Module),
                                              app_callable => <<"handle">>}),
    {ok, R2} = py_reactor_context:start_link(app, ?config(mode, Config),
                                             #{setup_code => app_protocol(Dir),
                                               app_module => list_to_atom(Module),
                                               app_callable => "application"}),
    L = listen(),
    C = connect(R, L),
    C2 = connect(R2, L),
    ok = gen_tcp:send(C, <<"req">>),
    {ok, <<"handled:req">>} = gen_tcp:recv(C, 11, 5000),
    ok = gen_tcp:send(C2, <<"req">>),
    {ok, <<"app:req">>} = gen_tcp:recv(C2, 7, 5000),
    {ok, true} = py:eval(py_reactor_context:context(R), <<"_reactor_app.__name__ == 'handle'">>),
    [ok = gen_tcp:close(S) || S <- [C, C2]],
    stop(R),
    stop(R2).

%% As in 4.1, the context's working directory is on sys.path for the import: a module there is
%% found without setup_code.
app_module_from_working_dir(Config) ->
    {ok, Cwd} = file:get_cwd(),
    Module = "reactor_cwd_app_" ++ atom_to_list(?config(mode, Config)),
    write_app_module(Cwd, Module),
    try
        {ok, R} = py_reactor_context:start_link(app, ?config(mode, Config),
                                                #{app_module => list_to_binary(Module),
                                                  app_callable => <<"handle">>}),
        {ok, <<"handled:x">>} = py:eval(py_reactor_context:context(R), <<"_reactor_app(b'x')">>),
        stop(R)
    after
        ok = file:delete(filename:join(Cwd, Module ++ ".py"))
    end.

%% A missing module or callable fails the start with the Python error (the context it made is
%% stopped); one option without the other, or a name that is not a Python name, is refused
%% before anything starts.
app_module_errors(Config) ->
    Mode = ?config(mode, Config),
    Before = py_test_util:context_threads(),
    {error, {app_module, {'ModuleNotFoundError', _}}} =
        py_reactor_context:start_link(x, Mode, #{app_module => <<"no_such_reactor_app">>,
                                                 app_callable => <<"app">>}),
    {error, {app_module, {'ImportError', _}}} =
        py_reactor_context:start_link(x, Mode, #{app_module => <<"json">>, app_callable => <<"no_such_name">>}),
    {error, {missing_option, app_callable}} =
        py_reactor_context:start_link(x, Mode, #{app_module => <<"json">>}),
    {error, {missing_option, app_module}} =
        py_reactor_context:start_link(x, Mode, #{app_callable => <<"dumps">>}),
    {error, {invalid_option, app_module}} =
        py_reactor_context:start_link(x, Mode, #{app_module => <<"os; import sys">>, app_callable => <<"x">>}),
    {error, {invalid_option, app_module}} =
        py_reactor_context:start_link(x, Mode, #{app_module => <<"json.">>, app_callable => <<"x">>}),
    {error, {invalid_option, app_callable}} =
        py_reactor_context:start_link(x, Mode, #{app_module => <<"json">>, app_callable => <<"dumps as y">>}),
    {error, {invalid_option, app_callable}} =
        py_reactor_context:start_link(x, Mode, #{app_module => <<"json">>, app_callable => 42}),
    %% a dotted module path is a module path
    {ok, R} = py_reactor_context:start_link(x, Mode, #{app_module => <<"os.path">>, app_callable => <<"join">>}),
    {ok, <<"a/b">>} = py:eval(py_reactor_context:context(R), <<"_reactor_app('a', 'b')">>),
    stop(R),
    true = py_test_util:wait_until(fun() -> py_test_util:context_threads() =:= Before end, 10000).

%% The connection's registration stays armed (level-triggered) and its reads grow while they come
%% full: 4 MiB sent at once all arrive (none left unread in the socket when a read did not take
%% everything), in reads that reached 64 KiB.
stream_in_growing_reads(Config) ->
    R = start(Config, <<"Counter">>),
    L = listen(),
    C = connect(R, L),
    ok = gen_tcp:send(C, binary:copy(<<"0123456789abcdef">>, 1 bsl 18)),
    {ok, <<"4194304 65536">>} = gen_tcp:recv(C, 13, 30000),
    ok = gen_tcp:close(C),
    stop(R).

%% A connection paused on "async_pending" watches nothing; when its peer resets it meanwhile,
%% epoll reports the hang-up even for no modes: once (a one-shot registration), or the reactor's
%% thread would wake for it at every wait, using a CPU. The thread's CPU time over 2 s after the
%% hang-up stays far below what such a spin takes (a CPU's whole share on a loaded machine).
paused_hangup_does_not_spin(Config) ->
    R = start(Config, <<"Parked">>),
    Ctx = py_reactor_context:context(R),
    {ok, Tid} = py:eval(Ctx, <<"__import__('threading').get_native_id()">>),
    L = listen(),
    C = connect(R, L),
    ok = gen_tcp:send(C, <<"wait">>),
    true = py_test_util:wait_until(fun() -> {ok, 1} =:= py:eval(Ctx, <<"len(parked)">>) end, 10000),
    ok = inet:setopts(C, [{linger, {true, 0}}]),
    ok = gen_tcp:close(C),  % a reset: the reactor's socket has an error and is hung up
    Before = thread_cpu_ms(Tid),
    receive after 2000 -> ok end,  % the window the CPU time is measured over
    Used = thread_cpu_ms(Tid) - Before,
    ct:log("reactor thread CPU over 2 s with a paused, hung-up connection: ~p ms", [Used]),
    true = Used < 200,
    #{active_connections := 1} = py_reactor_context:stats(R),  % still paused, until signalled
    {ok, Fd} = py:eval(Ctx, <<"parked[0]">>),
    {ok, true} = py:eval(Ctx, <<"__import__('erlang.reactor').reactor.signal_write_ready(fd)">>, #{fd => Fd}),
    wait_stats(R, active_connections, 0),  % the write fails or the read sees the end: closed
    stop(R).

%% utime + stime of a thread of this node, in ms (clock ticks of 10 ms).
thread_cpu_ms(Tid) ->
    {ok, Stat} = file:read_file("/proc/self/task/" ++ integer_to_list(Tid) ++ "/stat"),
    [_, AfterName] = binary:split(Stat, <<") ">>),
    Fields = binary:split(AfterName, <<" ">>, [global]),
    10 * (binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields))).
