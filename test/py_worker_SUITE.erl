%% Worker loops (py_context:start_loop/stop_loop/submit/submit_await/loop_ref), py:dup_fd/1
%% and erlang.server (serve/adopt/stop_serving), in worker and owngil contexts; then a pool of
%% 4 workers on one Erlang listener (test/py_echo_pool.erl): rolling reload with no refused
%% connection, a worker killed mid-request, 10,000 connections. Loopback only.
-module(py_worker_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_group/2, end_per_group/2,
         init_per_testcase/2, end_per_testcase/2]).
-export([log/2]).
-export([submit_results/1, calls_while_loop_runs/1, loop_exit_to_owner/1, owner_exit_stops_loop/1,
         stop_loop_ignores_cancellation/1, stop_loop_interrupts_a_hog/1, submit_to_stopped_loop/1, context_stop_ends_loop/1,
         dup_fd/1, serve_gen_tcp_and_socket/1, serve_udp/1, adopt_accepted/1, serve_bad_fd/1,
         protocol_raises/1,
         pool_rolling_reload/1, pool_worker_killed_mid_request/1, pool_10k_connections/1, relays_reused/1]).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [{group, worker}, {group, owngil}].

groups() ->
    Cases = [submit_results, calls_while_loop_runs, loop_exit_to_owner, owner_exit_stops_loop,
             stop_loop_ignores_cancellation, stop_loop_interrupts_a_hog, submit_to_stopped_loop, context_stop_ends_loop, dup_fd,
             serve_gen_tcp_and_socket, serve_udp, adopt_accepted, serve_bad_fd, protocol_raises,
             pool_rolling_reload, pool_worker_killed_mid_request, pool_10k_connections, relays_reused],
    [{worker, [], Cases}, {owngil, [], Cases}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_group(Mode, Config) ->
    py_test_util:mode_group(Mode, Config).

end_per_group(_, _Config) ->
    ok.

%% Every case collects the node's logger events: none may be a poller complaint.
init_per_testcase(_Case, Config) ->
    Collector = spawn(fun() -> collect([]) end),
    ok = logger:add_handler(py_worker_capture, ?MODULE, #{config => #{collector => Collector}}),
    [{collector, Collector} | Config].

end_per_testcase(_Case, Config) ->
    _ = logger:remove_handler(py_worker_capture),
    Collector = ?config(collector, Config),
    Collector ! {events, self()},
    Events = receive {events, E} -> E after 5000 -> [] end,
    Bad = [Text || Text <- Events,
                   string:find(Text, "stealing control") =/= nomatch orelse string:find(Text, "Bad input fd") =/= nomatch],
    case Bad of
        [] -> ok;
        _ -> ct:fail({poller_reports, Bad})
    end.

%% logger handler callback.
-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(#{msg := Msg}, #{config := #{collector := Collector}}) ->
    Collector ! {event, lists:flatten(io_lib:format("~0tp", [Msg]))},
    ok.

collect(Events) ->
    receive
        {event, E} -> collect([E | Events]);
        {events, From} -> From ! {events, Events}
    end.

%% --- helpers -----------------------------------------------------------------------------------

new_ctx(Config) ->
    {ok, Ctx} = py_context:new(#{mode => ?config(mode, Config), preload => code()}),
    Ctx.

code() -> <<"
import asyncio, erlang, time
STARTED = []

async def double(x, delay=0.01):
    await asyncio.sleep(delay)
    return 2 * x

def plain(x):
    return x + 1

async def fails():
    await asyncio.sleep(0)
    raise KeyError('missing')

def call_back(x):
    return erlang.call('py_worker_double', x)

async def stubborn():
    STARTED.append('stubborn')
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass  # ignores its cancellation

async def hog_on_cancel():
    STARTED.append('hog')
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        while True:      # once cancelled, holds the thread
            time.sleep(0.01)

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        if data == b'raise':
            raise RuntimeError('a protocol that raises')
        self.transport.write(data)

class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport
    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)

SERVERS = []
async def serve(fd, udp=False):
    SERVERS.append(await erlang.server.serve(fd, UdpEcho if udp else Echo, udp=udp))
    return 'serving'

async def stop_serving():
    for s in SERVERS:
        await erlang.server.stop_serving(s)
    SERVERS.clear()
    return 'stopped'

def big(n):
    return b'x' * n

async def adopt(fd):
    transport, protocol = await erlang.server.adopt(fd, Echo)
    return 'adopted'
">>.

echo(Port, Data) ->
    echo(Port, Data, byte_size(Data)).

%% The pool's workers answer "vN " ++ Data.
echo_v(Port, Data) ->
    echo(Port, Data, 3 + byte_size(Data)).

echo(Port, Data, Size) ->
    echo(Port, Data, Size, []).

%% linger 0: closed with a reset, so 10,000 connections leave no TIME_WAIT port behind.
echo(Port, Data, Size, Opts) ->
    {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false} | Opts], 10000),
    ok = gen_tcp:send(C, Data),
    Reply = gen_tcp:recv(C, Size, 10000),
    ok = gen_tcp:close(C),
    Reply.

badarg(F) ->
    try F() of
        Result -> ct:fail({no_badarg, Result})
    catch error:badarg -> ok
    end.

listen() ->
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {reuseaddr, true}, {backlog, 1024},
                                 {ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    {L, Port}.

%% --- worker loops --------------------------------------------------------------------------------

submit_results(Config) ->
    Ctx = new_ctx(Config),
    ok = py_context:start_loop(Ctx),
    {ok, Ref} = py_context:submit(Ctx, '__main__', double, [21]),
    {ok, 42} = py_event_loop:await(Ref),
    {ok, Ref2} = py_context:submit(Ctx, '__main__', plain, [1]),
    receive {async_result, Ref2, {ok, 2}} -> ok after 10000 -> ct:fail(no_result) end,
    {ok, 10} = py_context:submit_await(Ctx, '__main__', double, [5]),
    {ok, 8} = py_context:submit_await(Ctx, '__main__', double, [4], #{delay => 0}),
    {ok, 6} = py_context:submit_await(Ctx, '__main__', double, [3], #{delay => 0}, 10000),
    {error, {'KeyError', _}} = py_context:submit_await(Ctx, '__main__', fails, []),
    {error, _} = py_context:submit_await(Ctx, no_such_module_h19, f, []),
    {error, timeout} = py_context:submit_await(Ctx, '__main__', double, [1], #{delay => 5}, 50),
    %% Many at once: they overlap on the loop.
    Refs = [begin {ok, R} = py_context:submit(Ctx, '__main__', double, [N, 0.2]), R end || N <- lists:seq(1, 50)],
    Expected = [{ok, 2 * N} || N <- lists:seq(1, 50)],
    Expected = [py_event_loop:await(R, 20000) || R <- Refs],
    badarg(fun() -> py_context:submit(Ctx, '__main__', plain, not_a_list) end),
    badarg(fun() -> py_context:submit(not_a_pid, '__main__', plain, []) end),
    badarg(fun() -> py_context:start_loop(Ctx, not_a_map) end),
    badarg(fun() -> py_context:stop_loop(Ctx, -1) end),
    ok = py_context:stop_loop(Ctx),
    ok = py_context:stop(Ctx).

%% Our difference from erlang_python 4.1: the context answers calls, evals, execs and Erlang
%% callbacks while its worker loop serves.
calls_while_loop_runs(Config) ->
    Ctx = new_ctx(Config),
    ok = py:register_function(py_worker_double, fun([X]) -> 2 * X end),
    ok = py_context:start_loop(Ctx),
    {L, Port} = listen(),
    {ok, Fd} = py:dup_fd(L),
    {ok, <<"serving">>} = py_context:submit_await(Ctx, '__main__', serve, [Fd]),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py:exec(Ctx, <<"X = 5">>),
    {ok, 5} = py_context:eval(Ctx, <<"X">>),
    {ok, 3} = py_context:call(Ctx, '__main__', plain, [2]),
    {ok, 14} = py_context:call(Ctx, '__main__', call_back, [7]),
    {ok, <<"hi">>} = echo(Port, <<"hi">>),
    ok = py_context:stop_loop(Ctx),
    ok = gen_tcp:close(L),
    ok = py_context:stop(Ctx).

loop_exit_to_owner(Config) ->
    Ctx = new_ctx(Config),
    Self = self(),
    Owner = spawn_link(fun() -> receive M -> Self ! {owner_got, M} end end),
    {error, no_loop} = py_context:loop_ref(Ctx),
    {error, no_loop} = py_context:stop_loop(Ctx),
    ok = py_context:start_loop(Ctx, #{owner => Owner}),
    {error, loop_running} = py_context:start_loop(Ctx),
    {ok, Ref1} = py_context:loop_ref(Ctx),
    ok = py_context:stop_loop(Ctx, 1000),
    receive {owner_got, {py_loop_exit, Ctx, ok}} -> ok after 10000 -> ct:fail(no_loop_exit) end,
    {error, no_loop} = py_context:loop_ref(Ctx),
    ok = py_context:start_loop(Ctx),
    {ok, Ref2} = py_context:loop_ref(Ctx),
    true = Ref1 =/= Ref2,
    {ok, 2} = py_context:submit_await(Ctx, '__main__', plain, [1]),
    %% py_event_loop:stop/1 closes the loop too.
    ok = py_event_loop:stop(Ctx),
    receive {py_loop_exit, Ctx, {error, loop_stopped}} -> ok after 10000 -> ct:fail(no_loop_exit) end,
    {error, loop_stopped} = py_context:submit(Ctx, '__main__', plain, [1]),
    ok = py_context:stop(Ctx).

owner_exit_stops_loop(Config) ->
    Ctx = new_ctx(Config),
    ok = py_test_util:loop_stops_with_owner(Ctx, plain),
    ok = py_context:stop(Ctx).

%% A task that catches its CancelledError and goes on: stop_loop gives it the grace period,
%% then closes the loop; its caller still gets one reply.
stop_loop_ignores_cancellation(Config) ->
    Ctx = new_ctx(Config),
    ok = py_context:start_loop(Ctx),
    {ok, Ref} = py_context:submit(Ctx, '__main__', stubborn, []),
    true = py_test_util:wait_until(fun() -> py:eval(Ctx, <<"len(STARTED)">>) =:= {ok, 1} end, 10000),
    T0 = py_test_util:now_ms(),
    ok = py_context:stop_loop(Ctx, 300),
    Took = py_test_util:now_ms() - T0,
    ct:pal("stop_loop with a task ignoring its cancellation: ~b ms (grace 300 ms)", [Took]),
    true = Took >= 300,
    {error, {'CancelledError', _}} = py_event_loop:await(Ref, 10000),
    receive {py_loop_exit, Ctx, ok} -> ok after 10000 -> ct:fail(no_loop_exit) end,
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py_context:stop(Ctx).

%% A task that holds the thread once cancelled: the stop's own code is interrupted after the
%% grace period (plus a second), the loop closed, the task's caller answered.
stop_loop_interrupts_a_hog(Config) ->
    Ctx = new_ctx(Config),
    ok = py_context:start_loop(Ctx),
    {ok, Ref} = py_context:submit(Ctx, '__main__', hog_on_cancel, []),
    true = py_test_util:wait_until(fun() -> py:eval(Ctx, <<"len(STARTED)">>) =:= {ok, 1} end, 10000),
    T0 = py_test_util:now_ms(),
    ok = py_context:stop_loop(Ctx, 200),
    ct:pal("stop_loop on a task holding the thread once cancelled: ~b ms (grace 200 ms + 1 s)",
           [py_test_util:now_ms() - T0]),
    {error, _} = py_event_loop:await(Ref, 10000),
    receive {py_loop_exit, Ctx, ok} -> ok after 10000 -> ct:fail(no_loop_exit) end,
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    {error, loop_stopped} = py_context:submit(Ctx, '__main__', plain, [1]),
    [] = [M || {stop_running, _} = M <- py_test_util:flush()],
    ok = py_context:stop(Ctx).

submit_to_stopped_loop(Config) ->
    Ctx = new_ctx(Config),
    %% Without a worker loop, submit runs on the context's loop (as in 4.1).
    {ok, 2} = py_context:submit_await(Ctx, '__main__', plain, [1]),
    ok = py_context:start_loop(Ctx),
    ok = py_context:stop_loop(Ctx),
    T0 = py_test_util:now_us(),
    {error, loop_stopped} = py_context:submit(Ctx, '__main__', plain, [1]),
    {error, loop_stopped} = py_context:submit_await(Ctx, '__main__', double, [1]),
    ct:pal("submit to a stopped loop answered in ~b us", [py_test_util:now_us() - T0]),
    ok = py_context:stop(Ctx),
    {error, context_not_found} = py_context:submit(Ctx, '__main__', plain, [1]),
    {error, context_not_found} = py_context:start_loop(Ctx),
    {error, context_not_found} = py_context:stop_loop(Ctx).

context_stop_ends_loop(Config) ->
    Ctx = new_ctx(Config),
    ok = py_context:start_loop(Ctx),
    {ok, Ref} = py_context:submit(Ctx, '__main__', double, [1, 60]),
    ok = py_context:stop(Ctx),
    receive {py_loop_exit, Ctx, {error, context_stopped}} -> ok after 10000 -> ct:fail(no_loop_exit) end,
    {error, _} = py_event_loop:await(Ref, 10000),
    [] = [M || {py_loop_exit, _, _} = M <- py_test_util:flush()].

%% --- py:dup_fd/1 and erlang.server -----------------------------------------------------------------

dup_fd(_Config) ->
    {error, ebadf} = py:dup_fd(-1),
    {error, ebadf} = py:dup_fd(1 bsl 20),
    badarg(fun() -> py:dup_fd(not_an_fd) end),
    {L, _Port} = listen(),
    {ok, LFd} = inet:getfd(L),
    Before = py_test_util:fds(),
    {ok, D1} = py:dup_fd(LFd),
    {ok, D2} = py:dup_fd(L),
    true = D1 =/= LFd andalso D2 =/= D1,
    Before = py_test_util:fds() - 2,
    {ok, S} = socket:open(inet, stream, tcp),
    {ok, D3} = py:dup_fd(S),
    true = is_integer(D3),
    %% Python closes what it is given.
    {ok, _} = py:eval(<<"[__import__('os').close(fd) for fd in FDS]">>, #{'FDS' => [D1, D2, D3]}),
    ok = socket:close(S),
    ok = gen_tcp:close(L),
    {error, _} = py:dup_fd(L).

serve_gen_tcp_and_socket(Config) ->
    Ctx = new_ctx(Config),
    ok = py_context:start_loop(Ctx),
    {L, Port} = listen(),
    {ok, Fd} = py:dup_fd(L),
    {ok, <<"serving">>} = py_context:submit_await(Ctx, '__main__', serve, [Fd]),
    Pings = [<<"ping", (integer_to_binary(N))/binary>> || N <- lists:seq(1, 20)],
    Pings = [begin {ok, P} = echo(Port, Ping), P end || Ping <- Pings],
    %% The socket module's listener.
    {ok, S} = socket:open(inet, stream, tcp),
    ok = socket:bind(S, #{family => inet, addr => {127, 0, 0, 1}, port => 0}),
    ok = socket:listen(S),
    {ok, #{port := SPort}} = socket:sockname(S),
    {ok, SFd} = py:dup_fd(S),
    {ok, <<"serving">>} = py_context:submit_await(Ctx, '__main__', serve, [SFd]),
    {ok, <<"socket">>} = echo(SPort, <<"socket">>),
    %% stop_serving: no more accepts by Python, Erlang's socket stays open (the kernel still
    %% queues connections: no refusal).
    {ok, <<"stopped">>} = py_context:submit_await(Ctx, '__main__', stop_serving, []),
    {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 10000),
    {ok, A} = gen_tcp:accept(L, 10000),
    ok = gen_tcp:send(C, <<"erlang">>),
    {ok, <<"erlang">>} = gen_tcp:recv(A, 6, 10000),
    [ok = gen_tcp:close(X) || X <- [A, C, L]],
    ok = socket:close(S),
    ok = py_context:stop_loop(Ctx),
    ok = py_context:stop(Ctx).

serve_udp(Config) ->
    Ctx = new_ctx(Config),
    ok = py_context:start_loop(Ctx),
    {ok, U} = gen_udp:open(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}]),
    {ok, UPort} = inet:port(U),
    {ok, Fd} = py:dup_fd(U),
    {ok, <<"serving">>} = py_context:submit_await(Ctx, '__main__', serve, [Fd, true]),
    {ok, Client} = gen_udp:open(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}]),
    ok = gen_udp:send(Client, {127, 0, 0, 1}, UPort, <<"datagram">>),
    {ok, {_, UPort, <<"datagram">>}} = gen_udp:recv(Client, 0, 10000),
    ok = gen_udp:close(Client),
    ok = py_context:stop_loop(Ctx),
    ok = gen_udp:close(U),
    ok = py_context:stop(Ctx).

adopt_accepted(Config) ->
    Ctx = new_ctx(Config),
    ok = py_context:start_loop(Ctx),
    {L, Port} = listen(),
    {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 10000),
    {ok, A} = gen_tcp:accept(L, 10000),
    {ok, Fd} = py:dup_fd(A),
    {ok, <<"adopted">>} = py_context:submit_await(Ctx, '__main__', adopt, [Fd]),
    ok = gen_tcp:close(A),   % Python serves its own copy
    ok = gen_tcp:send(C, <<"adopted!">>),
    {ok, <<"adopted!">>} = gen_tcp:recv(C, 8, 10000),
    %% Stopping the loop closes the connection it serves.
    ok = py_context:stop_loop(Ctx),
    {error, closed} = gen_tcp:recv(C, 0, 10000),
    ok = gen_tcp:close(L),
    ok = py_context:stop(Ctx).

serve_bad_fd(Config) ->
    Ctx = new_ctx(Config),
    ok = py_context:start_loop(Ctx),
    {error, {'ValueError', _}} = py_context:submit_await(Ctx, '__main__', serve, [-1]),
    {error, {'OSError', _}} = py_context:submit_await(Ctx, '__main__', serve, [1 bsl 20]),
    %% A datagram socket where a stream one is expected: refused, and closed.
    {ok, U} = gen_udp:open(0, [binary, {ip, {127, 0, 0, 1}}]),
    {ok, Fd} = py:dup_fd(U),
    Before = py_test_util:fds(),
    {error, {'ValueError', _}} = py_context:submit_await(Ctx, '__main__', serve, [Fd]),
    true = py_test_util:wait_until(fun() -> py_test_util:fds() < Before end, 10000),
    {error, {'ValueError', _}} = py_context:submit_await(Ctx, '__main__', adopt, [<<"x">>]),
    ok = gen_udp:close(U),
    {ok, 2} = py_context:submit_await(Ctx, '__main__', plain, [1]),
    ok = py_context:stop(Ctx).

protocol_raises(Config) ->
    Ctx = new_ctx(Config),
    ok = py_context:start_loop(Ctx),
    {L, Port} = listen(),
    {ok, Fd} = py:dup_fd(L),
    {ok, <<"serving">>} = py_context:submit_await(Ctx, '__main__', serve, [Fd]),
    {ok, Other} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 10000),
    {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 10000),
    ok = gen_tcp:send(C, <<"raise">>),
    {error, _} = gen_tcp:recv(C, 0, 10000),   % that connection is closed
    ok = gen_tcp:send(Other, <<"still">>),
    {ok, <<"still">>} = gen_tcp:recv(Other, 5, 10000),
    {ok, <<"next">>} = echo(Port, <<"next">>),
    [ok = gen_tcp:close(X) || X <- [C, Other, L]],
    ok = py_context:stop_loop(Ctx),
    ok = py_context:stop(Ctx).

%% --- a pool of 4 workers on one listener ----------------------------------------------------------

start_pool(Config) ->
    persistent_term:put(py_echo_worker_version, <<"v1">>),
    {L, Port} = listen(),
    process_flag(trap_exit, true),
    {ok, Sup} = py_echo_pool:start_link(L, ?config(mode, Config), 4),
    {L, Port, Sup}.

stop_pool(L, Sup) ->
    unlink(Sup),
    Mon = erlang:monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', Mon, process, Sup, _} -> ok end,
    ok = gen_tcp:close(L).

%% A client that connects, asks and closes until told to stop: counts replies per version,
%% refused connections and other failures.
client(Port, Parent) ->
    client(Port, Parent, #{}).

client(Port, Parent, Counts) ->
    receive
        {stop, Parent} -> Parent ! {client_counts, self(), Counts}
    after 0 ->
        Key = case gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 10000) of
                  {ok, C} ->
                      ok = gen_tcp:send(C, <<"ping">>),
                      R = case gen_tcp:recv(C, 7, 10000) of
                              {ok, <<V:2/binary, " ping">>} -> V;
                              {error, E} -> {failed, E}
                          end,
                      gen_tcp:close(C),
                      R;
                  {error, econnrefused} -> refused;
                  {error, E} -> {connect_failed, E}
              end,
        client(Port, Parent, maps:update_with(Key, fun(N) -> N + 1 end, 1, Counts))
    end.

stop_client(Client) ->
    Client ! {stop, self()},
    receive {client_counts, Client, Counts} -> Counts after 60000 -> ct:fail(client_stuck) end.

pool_rolling_reload(Config) ->
    {L, Port, Sup} = start_pool(Config),
    Self = self(),
    Clients = [spawn_link(fun() -> client(Port, Self) end) || _ <- [1, 2]],
    ok = py_echo_pool:reload(Sup, <<"v2">>),
    {ok, <<"v2 ping">>} = echo_v(Port, <<"ping">>),
    Counts = lists:foldl(fun(C, Acc) -> maps:merge_with(fun(_, A, B) -> A + B end, Acc, stop_client(C)) end,
                         #{}, Clients),
    ct:pal("rolling reload of 4 workers under 2 client loops: ~p", [Counts]),
    0 = maps:get(refused, Counts, 0),
    [] = [K || K <- maps:keys(Counts), K =/= <<"v1">>, K =/= <<"v2">>],
    true = maps:get(<<"v2">>, Counts, 0) > 0,
    stop_pool(L, Sup).

pool_worker_killed_mid_request(Config) ->
    {L, Port, Sup} = start_pool(Config),
    {ok, Held} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 10000),
    ok = gen_tcp:send(Held, <<"hold">>),
    Holder = fun() ->
                     [W || {_, W} <- py_echo_pool:workers(Sup),
                           py:eval(py_echo_worker:context(W), <<"len(HELD)">>) =:= {ok, 1}]
             end,
    true = py_test_util:wait_until(fun() -> length(Holder()) =:= 1 end, 20000),
    [Worker] = Holder(),
    Mon = erlang:monitor(process, Worker),
    exit(Worker, kill),
    receive {'DOWN', Mon, process, Worker, killed} -> ok end,
    {error, closed} = gen_tcp:recv(Held, 0, 20000),   % its connection closes
    [{ok, <<"v1 ping">>} = echo_v(Port, <<"ping">>) || _ <- lists:seq(1, 20)],  % the others serve
    true = py_test_util:wait_until(fun() ->
                                           Ws = py_echo_pool:workers(Sup),
                                           length(Ws) =:= 4 andalso not lists:keymember(Worker, 2, Ws)
                                   end, 30000),
    ok = gen_tcp:close(Held),
    stop_pool(L, Sup).

pool_10k_connections(Config) ->
    {L, Port, Sup} = start_pool(Config),
    {ok, <<"v1 warm">>} = echo_v(Port, <<"warm">>),
    Baseline = py_test_util:fds(),
    Self = self(),
    T0 = py_test_util:now_ms(),
    Pids = [spawn_link(fun() ->
                               Ok = length([ok || _ <- lists:seq(1, 2500),
                                                  echo(Port, <<"ping">>, 7, [{linger, {true, 0}}])
                                                      =:= {ok, <<"v1 ping">>}]),
                               Self ! {done, self(), Ok}
                       end) || _ <- lists:seq(1, 4)],
    Served = lists:sum([receive {done, P, N} -> N after 240000 -> ct:fail(clients_stuck) end || P <- Pids]),
    Ms = py_test_util:now_ms() - T0,
    ct:pal("10,000 connections (open, echo, close) by 4 clients across 4 ~p workers: ~b ms, ~b conn/s",
           [?config(mode, Config), Ms, Served * 1000 div max(Ms, 1)]),
    10000 = Served,
    Settled = py_test_util:wait_until(fun() -> py_test_util:fds() =< Baseline end, 30000),
    ct:pal("fds: baseline ~b, now ~b", [Baseline, py_test_util:fds()]),
    true = Settled,
    stop_pool(L, Sup).

%% --- py_task's relays ----------------------------------------------------------------------------

%% A relay (src/py_task.erl) whose result was awaited serves its process's next task; at most 4
%% wait idle, the others end; a task handed to an idle relay that ended meanwhile goes to a new
%% one; a caller trapping exits gets no 'EXIT' message from its relays, which end with it.
relays_reused(Config) ->
    Ctx = new_ctx(Config),
    ok = py_context:start_loop(Ctx),
    {ok, 2} = py_context:submit_await(Ctx, '__main__', plain, [1]),
    [Relay] = get('$py_task_idle'),
    [{ok, 2} = py_context:submit_await(Ctx, '__main__', plain, [1]) || _ <- lists:seq(1, 20)],
    [Relay] = get('$py_task_idle'),
    %% An idle relay does not keep its last result alive.
    {ok, Big} = py_context:submit_await(Ctx, '__main__', big, [1 bsl 20]),
    1048576 = byte_size(Big),
    [Relay] = get('$py_task_idle'),
    ok = wait_until(fun() -> {binary, Bins} = process_info(Relay, binary),
                             [] =:= [B || {_, Size, _} = B <- Bins, Size >= 1048576] end, 20000),
    %% Ten at once: ten relays; four stay idle, the six others end.
    Refs = [begin {ok, R} = py_context:submit(Ctx, '__main__', double, [N, 0.05]), R end || N <- lists:seq(1, 10)],
    Relays = [get({'$py_task', R}) || R <- Refs],
    10 = length(lists:usort(Relays)),
    Mons = [{P, erlang:monitor(process, P)} || P <- Relays],
    Expected = [{ok, 2 * N} || N <- lists:seq(1, 10)],
    Expected = [py_event_loop:await(R, 20000) || R <- Refs],
    Idle = get('$py_task_idle'),
    4 = length(Idle),
    [receive {'DOWN', M, process, P, normal} -> ok after 20000 -> ct:fail({relay_alive, P}) end
     || {P, M} <- Mons, not lists:member(P, Idle)],
    %% The idle relay picked next has ended: the task runs on a new relay.
    [Gone | _] = Idle,
    {_, GoneMon} = lists:keyfind(Gone, 1, Mons),
    Gone ! '$py_task_stop',
    receive {'DOWN', GoneMon, process, Gone, normal} -> ok after 20000 -> ct:fail(relay_did_not_stop) end,
    {ok, 3} = py_context:submit_await(Ctx, '__main__', plain, [2]),
    false = lists:member(Gone, get('$py_task_idle')),
    %% A caller trapping exits.
    Self = self(),
    Caller = spawn(fun() ->
        process_flag(trap_exit, true),
        {ok, 2} = py_context:submit_await(Ctx, '__main__', plain, [1]),
        [First] = get('$py_task_idle'),
        FirstMon = erlang:monitor(process, First),
        First ! '$py_task_stop',
        receive {'DOWN', FirstMon, process, First, normal} -> ok end,
        {ok, 3} = py_context:submit_await(Ctx, '__main__', plain, [2]),
        Exits = receive {'EXIT', _, _} = E -> [E] after 0 -> [] end,
        Self ! {caller, get('$py_task_idle'), Exits},
        receive stop -> ok end
    end),
    [Last] = receive {caller, I, []} -> I; {caller, _, _} = Other -> ct:fail(Other) after 20000 -> ct:fail(no_caller) end,
    LastMon = erlang:monitor(process, Last),
    Caller ! stop,
    receive {'DOWN', LastMon, process, Last, _} -> ok after 20000 -> ct:fail(idle_relay_outlived_caller) end,
    ok = py_context:stop_loop(Ctx),
    ok = py_context:stop(Ctx).

wait_until(Pred, Ms) when Ms =< 0 ->
    Pred() orelse ct:fail(condition_never_held),
    ok;
wait_until(Pred, Ms) ->
    case Pred() of
        true -> ok;
        false ->
            receive after 20 -> ok end,
            wait_until(Pred, Ms - 20)
    end.
