%% -*- coding: utf-8 -*-
%% Python on another node (src/py_dist.erl): calls, evals and execs on a peer's default pool
%% and on a context made there, callbacks (registered per node), a timeout, the failures that
%% come back as values (not started, not loaded, node down), and the round-trip time of a
%% remote call against a local one. The peer is started with OTP's peer module, on loopback.
-module(py_dist_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1]).
-export([caller_exit_interrupts/1, call_eval_exec/1, runs_on_peer/1, errors_are_values/1, badarg_is_raised/1,
         pool_namespace_per_call/1, pool_context_per_caller/1, remote_context/1, remote_context_owner_exit/1,
         context_pid_needs_py_dist/1, callback_registered_per_node/1,
         callback_registered_from_caller/1, callback_chain_across_nodes/1,
         send_to_caller/1, opaque_refs_stay_home/1, timeout_interrupts/1,
         local_node_target/1, not_loaded_not_started/1, round_trip_figures/1,
         node_down/1, node_down_during_call/1, node_never_up/1]).
-export([tenfold/1]).

-define(config(Key, Config), proplists:get_value(Key, Config)).
-define(SPIN, <<"import erlang\n"
                "state = None\n"
                "def spin():\n"
                "    global state\n"
                "    state = 'running'\n"
                "    __import__('builtins')._py_dist_spin = 'running'\n"
                "    try:\n"
                "        while True:\n"
                "            pass\n"
                "    except erlang.Interrupted:\n"
                "        state = 'interrupted'\n"
                "        raise\n">>).

suite() -> [{timetrap, {minutes, 2}}].

all() -> [{group, remote}, {group, faults}, round_trip_figures, {group, down}].

groups() ->
    [{remote, [parallel],
      [call_eval_exec, runs_on_peer, errors_are_values, badarg_is_raised,
       pool_namespace_per_call, pool_context_per_caller, remote_context, remote_context_owner_exit,
       context_pid_needs_py_dist, callback_registered_per_node, callback_registered_from_caller,
       callback_chain_across_nodes, send_to_caller, opaque_refs_stay_home, local_node_target]},
     {faults, [], [timeout_interrupts, caller_exit_interrupts, not_loaded_not_started]},
     %% Stops the peer: last.
     {down, [sequence], [node_down_during_call, node_down, node_never_up]}].

init_per_suite(Config) ->
    case py_test_util:ensure_distributed("py_dist_ct") of
        {ok, Started} ->
            {ok, _} = application:ensure_all_started(erlang_python),
            {Peer, Node} = py_test_util:start_peer("py_dist_peer", code_path()),
            {ok, _} = erpc:call(Node, application, ensure_all_started, [erlang_python]),
            [{peer, Peer}, {node, Node}, {dist_started, Started} | Config];
        {error, Reason} ->
            {skip, Reason}
    end.

end_per_suite(Config) ->
    catch peer:stop(?config(peer, Config)),
    ok = application:stop(erlang_python),
    py_test_util:stop_distributed(?config(dist_started, Config)).

%% A callback the peer runs as {Module, Function}: this module is on its code path.
tenfold([X]) -> {node(), 10 * X}.

%% --- remote calls -------------------------------------------------------------------------------

call_eval_exec(Config) ->
    Node = ?config(node, Config),
    {ok, 4.0} = py_dist:call(Node, math, sqrt, [16]),
    {ok, 255} = py_dist:call(Node, builtins, int, [<<"ff">>], #{kwargs => #{base => 16}}),
    {ok, 255} = py_dist:call(Node, builtins, int, [<<"ff">>], #{kwargs => #{base => 16}, timeout => 5000}),
    {ok, 100} = py_dist:eval(Node, <<"x * y">>, #{x => 10, y => 10}),
    {ok, 45} = py_dist:eval(Node, "sum(range(10))"),
    {ok, [0, 1, 4]} = py_dist:eval(Node, <<"[i * i for i in range(n)]">>, #{n => 3}, #{timeout => 5000}),
    ok = py_dist:exec(Node, <<"import json">>),
    {ok, <<"{\"a\": [1, 2]}">>} = py_dist:call(Node, json, dumps, [#{a => [1, 2]}]),
    %% Terms travel by distribution both ways: bignums, binaries, tuples, maps.
    Big = 1 bsl 200,
    {ok, {Big, <<"é"/utf8>>, #{<<"k">> := [1.5]}}} =
        py_dist:eval(Node, <<"(b, s, {'k': [1.5]})">>, #{b => Big, s => <<"é"/utf8>>}).

runs_on_peer(Config) ->
    Node = ?config(node, Config),
    PeerOsPid = list_to_integer(erpc:call(Node, os, getpid, [])),
    {ok, PeerOsPid} = py_dist:eval(Node, <<"__import__('os').getpid()">>),
    {ok, Local} = py:eval(<<"__import__('os').getpid()">>),
    true = Local =/= PeerOsPid.

errors_are_values(Config) ->
    Node = ?config(node, Config),
    {error, {'ZeroDivisionError', "division by zero"}} = py_dist:eval(Node, <<"1/0">>),
    {error, {'ModuleNotFoundError', _}} = py_dist:call(Node, no_such_module_xyz, f, []),
    {error, {'SyntaxError', _}} = py_dist:exec(Node, <<"def (">>),
    {error, {'ValueError', "bad"}} = py_dist:eval(Node, <<"(_ for _ in ()).throw(ValueError('bad'))">>).

badarg_is_raised(Config) ->
    Node = ?config(node, Config),
    %% Raised by py on the peer, raised again here, as the local call raises it.
    {'EXIT', {badarg, _}} = catch py_dist:call(Node, math, sqrt, not_a_list),
    {'EXIT', {badarg, _}} = catch py_dist:eval(Node, <<"1">>, not_a_map),
    %% Checked here.
    {'EXIT', {badarg, _}} = catch py_dist:call("not a target", math, sqrt, [1]),
    {'EXIT', {badarg, _}} = catch py_dist:call(Node, math, sqrt, [1], #{timeout => -1}),
    {'EXIT', {badarg, _}} = catch py_dist:eval(Node, <<"1">>, #{}, not_a_map),
    {'EXIT', {badarg, _}} = catch py_dist:new_context(Node, not_a_map),
    {error, {invalid_mode, bogus}} = py_dist:new_context(Node, #{mode => bogus}).

%% Each call runs in a fresh process on the peer, so the default pool gives it a fresh
%% namespace: what exec defines there is gone for the next call.
pool_namespace_per_call(Config) ->
    Node = ?config(node, Config),
    ok = py_dist:exec(Node, <<"def per_call(): return 1">>),
    {error, {'NameError', _}} = py_dist:call(Node, '__main__', per_call, []),
    %% One erpc call that makes several py calls keeps one namespace.
    {ok, 1} = erpc:call(Node, fun() ->
                                      ok = py:exec(<<"def per_call(): return 1">>),
                                      py:call('__main__', per_call, [])
                              end).

%% One caller's calls to a node's pool go to one context there (one thread), as a local
%% process sticks to one pool context.
pool_context_per_caller(Config) ->
    Node = ?config(node, Config),
    Ident = <<"__import__('threading').get_ident()">>,
    {ok, Thread} = py_dist:eval(Node, Ident),
    [{ok, Thread} = py_dist:eval(Node, Ident) || _ <- lists:seq(1, 20)],
    %% Other callers are spread over the pool.
    Self = self(),
    Threads = [begin
                   Pid = spawn_link(fun() -> Self ! {self(), py_dist:eval(Node, Ident)} end),
                   receive {Pid, {ok, T}} -> T end
               end || _ <- lists:seq(1, 200)],
    NumContexts = erpc:call(Node, py_context_router, num_contexts, []),
    true = length(lists:usort(Threads)) =:= NumContexts.

remote_context(Config) ->
    Node = ?config(node, Config),
    {ok, Ctx} = py_dist:new_context(Node),
    Node = node(Ctx),
    ok = py_dist:exec(Ctx, <<"counter = 0\n"
                              "def bump(n):\n"
                              "    global counter\n"
                              "    counter += n\n"
                              "    return counter\n">>),
    {ok, 2} = py_dist:call(Ctx, '__main__', bump, [2]),
    {ok, 5} = py_dist:call(Ctx, '__main__', bump, [3], #{timeout => 5000}),
    {ok, 5} = py_dist:eval(Ctx, <<"counter">>),
    {ok, 15} = py_dist:eval(Ctx, <<"counter + x">>, #{x => 10}),
    {ok, 255} = py_dist:call(Ctx, builtins, int, [<<"ff">>], #{kwargs => #{base => 16}}),
    ok = py_context:stop(Ctx),
    {error, context_not_found} = py_dist:eval(Ctx, <<"counter">>).

%% A context made with new_context/1 stops when the process that made it exits.
remote_context_owner_exit(Config) ->
    Node = ?config(node, Config),
    Self = self(),
    {Owner, Mon} = spawn_monitor(fun() ->
                                         {ok, Ctx} = py_dist:new_context(Node),
                                         Self ! {ctx, Ctx},
                                         receive stop -> ok end
                                 end),
    Ctx = receive {ctx, C} -> C after 10000 -> ct:fail(no_context) end,
    {ok, 2} = py_dist:eval(Ctx, <<"1 + 1">>),
    Owner ! stop,
    receive {'DOWN', Mon, process, Owner, normal} -> ok end,
    ok = wait_until(fun() -> not erpc:call(Node, erlang, is_process_alive, [Ctx]) end, 5000),
    {error, context_not_found} = py_dist:eval(Ctx, <<"1 + 1">>).

%% py:call with the pid of a context on another node does not reach it: the context's handle
%% lives in that node's registry. py_dist routes such a pid to its node.
context_pid_needs_py_dist(Config) ->
    Node = ?config(node, Config),
    {ok, Ctx} = py_dist:new_context(Node),
    {error, context_not_found} = py:call(Ctx, math, sqrt, [4]),
    {ok, 2.0} = py_dist:call(Ctx, math, sqrt, [4]),
    ok = py_context:stop(Ctx).

%% --- callbacks ----------------------------------------------------------------------------------

%% erlang.call on the peer runs a function registered on the peer; one registered only on the
%% calling node is not seen there (no such attribute of `erlang' there).
callback_registered_per_node(Config) ->
    Node = ?config(node, Config),
    ok = py:register_function(dist_only_here, fun([X]) -> X end),
    {error, {'AttributeError', _}} = py_dist:eval(Node, <<"__import__('erlang').dist_only_here(1)">>),
    {ok, 1} = py:eval(<<"__import__('erlang').dist_only_here(1)">>),
    ok = py:unregister_function(dist_only_here).

%% Registering on the peer from here (erpc): a fun of this module, or {Module, Function}.
%% The fun runs on the peer, in the process that made the request there.
callback_registered_from_caller(Config) ->
    Node = ?config(node, Config),
    ok = erpc:call(Node, py, register_function, [dist_where, fun([X]) -> {node(), X} end]),
    NodeBin = atom_to_binary(Node),
    {ok, {NodeBin, 7}} = py_dist:eval(Node, <<"__import__('erlang').dist_where(7)">>),
    {ok, Ctx} = py_dist:new_context(Node),
    {ok, {NodeBin, 8}} = py_dist:eval(Ctx, <<"__import__('erlang').call('dist_where', 8)">>),
    ok = py_context:stop(Ctx),
    ok = erpc:call(Node, py, register_function, [dist_tenfold, ?MODULE, tenfold]),
    {ok, {NodeBin, 30}} = py_dist:eval(Node, <<"__import__('erlang').dist_tenfold(3)">>),
    %% An exception in the fun reaches Python on the peer as erlang.ErlangError.
    ok = erpc:call(Node, py, register_function, [dist_fail, fun([]) -> error(on_peer) end]),
    {error, {'ErlangError', "('error', 'on_peer')"}} =
        py_dist:eval(Node, <<"__import__('erlang').dist_fail()">>),
    [ok = erpc:call(Node, py, unregister_function, [N]) || N <- [dist_where, dist_tenfold, dist_fail]].

%% Python on the peer -> a callback on the peer -> erpc back here -> Python here.
callback_chain_across_nodes(Config) ->
    Node = ?config(node, Config),
    Here = node(),
    ok = erpc:call(Node, py, register_function,
                   [dist_ask_caller, fun([X]) ->
                                             {ok, V} = erpc:call(Here, py, call, [operator, mul, [X, 6]]),
                                             V
                                     end]),
    {ok, 43} = py_dist:eval(Node, <<"__import__('erlang').dist_ask_caller(7) + 1">>),
    ok = erpc:call(Node, py, unregister_function, [dist_ask_caller]).

%% A pid of this node reaches Python on the peer as an erlang.Term (a remote pid), which
%% erlang.send does not take; a callback on the peer can send to it.
send_to_caller(Config) ->
    Node = ?config(node, Config),
    {error, {'TypeError', _}} = py_dist:eval(Node, <<"__import__('erlang').send(p, 1)">>, #{p => self()}),
    {ok, <<"Term">>} = py_dist:eval(Node, <<"type(p).__name__">>, #{p => self()}),
    ok = erpc:call(Node, py, register_function, [dist_send, fun([To, Msg]) -> To ! Msg, true end]),
    {ok, true} = py_dist:eval(Node, <<"__import__('erlang').dist_send(p, ('hello', 1))">>, #{p => self()}),
    receive {<<"hello">>, 1} -> ok after 5000 -> ct:fail(no_message) end,
    ok = erpc:call(Node, py, unregister_function, [dist_send]).

%% An opaque reference made on the peer is a plain reference here, and does not bring the
%% object back when sent to the peer again.
opaque_refs_stay_home(Config) ->
    Node = ?config(node, Config),
    {ok, Ref} = py_dist:eval(Node, <<"object()">>),
    true = is_reference(Ref),
    false = py:is_ref(Ref),
    {ok, <<"Term">>} = py_dist:eval(Node, <<"type(o).__name__">>, #{o => Ref}),
    %% Kept in a context's namespace, the object stays usable on the peer.
    {ok, Ctx} = py_dist:new_context(Node),
    ok = py_dist:exec(Ctx, <<"obj = {1, 2, 3}">>),
    {ok, 3} = py_dist:eval(Ctx, <<"len(obj)">>),
    ok = py_context:stop(Ctx).

local_node_target(_Config) ->
    {ok, 4.0} = py_dist:call(node(), math, sqrt, [16]),
    {ok, Ctx} = py_dist:new_context(node()),
    {ok, 2} = py_dist:eval(Ctx, <<"1 + 1">>),
    %% A local context works with py as well.
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_context:stop(Ctx).

%% --- faults -------------------------------------------------------------------------------------

%% The timeout bounds the call on the peer: its Python code is interrupted and the context
%% serves the next call.
timeout_interrupts(Config) ->
    Node = ?config(node, Config),
    {ok, Ctx} = py_dist:new_context(Node),
    ok = py_dist:exec(Ctx, ?SPIN),
    {Micros, {error, timeout}} = timer:tc(fun() -> py_dist:call(Ctx, '__main__', spin, [], #{timeout => 200}) end),
    {ok, <<"interrupted">>} = py_dist:eval(Ctx, <<"state">>),
    {PoolMicros, {error, timeout}} =
        timer:tc(fun() -> py_dist:eval(Node, <<"[0 for _ in iter(int, 1)]">>, #{}, #{timeout => 200}) end),
    {ok, 4.0} = py_dist:call(Node, math, sqrt, [16]),
    ct:pal("remote timeout of 200 ms: {error, timeout} after ~.1f ms (context), ~.1f ms (pool)",
           [Micros / 1000, PoolMicros / 1000]),
    true = Micros < 2000000 andalso PoolMicros < 2000000,
    ok = py_context:stop(Ctx).

%% A caller that exits during a remote call: the call is cancelled on the peer and its Python
%% code interrupted, as for a local caller.
caller_exit_interrupts(Config) ->
    Node = ?config(node, Config),
    {ok, Ctx} = py_dist:new_context(Node),
    ok = py_dist:exec(Ctx, ?SPIN),
    %% timeout_interrupts may have left the flag behind (builtins outlive its context)
    {ok, _} = py_dist:eval(Node, <<"__import__('builtins').__dict__.pop('_py_dist_spin', None)">>),
    Caller = spawn(fun() -> py_dist:call(Ctx, '__main__', spin, [], #{timeout => infinity}) end),
    %% spin() runs: it says so in builtins, which the peer's pool contexts (the same main
    %% interpreter) can read while the context's thread is in the loop
    Running = fun() -> py_dist:eval(Node, <<"__import__('builtins').__dict__.pop('_py_dist_spin', None)">>)
                           =:= {ok, <<"running">>} end,
    true = py_test_util:wait_until(Running, 30000),
    T0 = erlang:monotonic_time(millisecond),
    exit(Caller, kill),
    %% Queued behind spin() on the context's thread: answered once spin() has been interrupted.
    {ok, <<"interrupted">>} = py_dist:eval(Ctx, <<"state">>, #{}, #{timeout => 10000}),
    ct:pal("caller killed: the peer's Python code interrupted, next call answered after ~w ms",
           [erlang:monotonic_time(millisecond) - T0]),
    ok = py_context:stop(Ctx).

%% A node without erlang_python's code, then with it but not started.
not_loaded_not_started(_Config) ->
    {Peer, Node} = py_test_util:start_peer("py_dist_bare", []),
    try
        {error, {not_loaded, Node}} = py_dist:call(Node, math, sqrt, [16]),
        ok = erpc:call(Node, code, add_pathsa, [code_path()]),
        {error, {not_started, Node}} = py_dist:call(Node, math, sqrt, [16]),
        {error, {not_started, Node}} = py_dist:eval(Node, <<"1">>)
    after
        peer:stop(Peer)
    end.

%% --- figures ------------------------------------------------------------------------------------

round_trip_figures(Config) ->
    Node = ?config(node, Config),
    N = 2000,
    {ok, 3} = py:call(operator, add, [1, 2]),
    {ok, 3} = py_dist:call(Node, operator, add, [1, 2]),
    Local = median(N, fun() -> {ok, 3} = py:call(operator, add, [1, 2]) end),
    Fresh = median(N, fun() -> in_fresh_process(fun() -> {ok, 3} = py:call(operator, add, [1, 2]) end) end),
    Erpc = median(N, fun() -> 3 = erpc:call(Node, erlang, '+', [1, 2]) end),
    ErpcPy = median(N, fun() -> {ok, 3} = erpc:call(Node, py, call, [operator, add, [1, 2]]) end),
    Remote = median(N, fun() -> {ok, 3} = py_dist:call(Node, operator, add, [1, 2]) end),
    LocalDist = median(N, fun() -> {ok, 3} = py_dist:call(node(), operator, add, [1, 2]) end),
    {ok, Ctx} = py_dist:new_context(Node),
    RemoteCtx = median(N, fun() -> {ok, 3} = py_dist:call(Ctx, operator, add, [1, 2]) end),
    ok = py_context:stop(Ctx),
    Payload = lists:seq(1, 10000),
    LocalBig = median(200, fun() -> {ok, 10000} = py:call(builtins, len, [Payload]) end),
    RemoteBig = median(200, fun() -> {ok, 10000} = py_dist:call(Node, builtins, len, [Payload]) end),
    {ok, LoadAvg} = file:read_file("/proc/loadavg"),
    ct:pal("round trip, median of ~w sequential calls, loopback peer (load average ~s):~n"
           "  py:call(operator, add, [1, 2]), same process:      ~8w us~n"
           "  py:call(operator, add, [1, 2]), a fresh process:   ~8w us~n"
           "  erpc:call(Peer, erlang, '+', [1, 2]):              ~8w us~n"
           "  erpc:call(Peer, py, call, [operator, add, [1, 2]]): ~7w us~n"
           "  py_dist:call(Peer, operator, add, [1, 2]):         ~8w us~n"
           "  py_dist:call(PeerCtx, operator, add, [1, 2]):      ~8w us~n"
           "  py_dist:call(node(), operator, add, [1, 2]):       ~8w us~n"
           "  len() of a 10,000-integer list, local:             ~8w us~n"
           "  len() of a 10,000-integer list, on the peer:       ~8w us",
           [N, string:trim(LoadAvg), Local, Fresh, Erpc, ErpcPy, Remote, RemoteCtx, LocalDist,
            LocalBig, RemoteBig]),
    %% Loose bound, for a busy 2-core machine.
    true = Remote < 20000.

median(N, Fun) ->
    Times = lists:sort([element(1, timer:tc(Fun)) || _ <- lists:seq(1, N)]),
    lists:nth((N + 1) div 2, Times).

in_fresh_process(Fun) ->
    {Pid, Mon} = spawn_monitor(Fun),
    receive {'DOWN', Mon, process, Pid, normal} -> ok end.

%% --- node down ----------------------------------------------------------------------------------

%% A call in progress when the peer goes away returns {error, {nodedown, Node}}.
node_down_during_call(_Config) ->
    {Peer, Node} = py_test_util:start_peer("py_dist_doomed", code_path()),
    {ok, _} = erpc:call(Node, application, ensure_all_started, [erlang_python]),
    Self = self(),
    Caller = spawn_link(fun() ->
                                Self ! {result, py_dist:eval(Node, <<"(setattr(__import__('builtins'), '_py_dist_nap', 1), "
                                                                     "__import__('time').sleep(20))">>,
                                                             #{}, #{timeout => 60000})}
                        end),
    %% The sleep runs: a context of its own on the peer (the same main interpreter) sees the mark.
    {ok, Watch} = py_dist:new_context(Node),
    Sleeping = fun() -> py_dist:eval(Watch, <<"__import__('builtins').__dict__.pop('_py_dist_nap', 0)">>) =:= {ok, 1} end,
    true = py_test_util:wait_until(Sleeping, 30000),
    T0 = erlang:monotonic_time(millisecond),
    ok = peer:stop(Peer),
    receive
        {result, {error, {nodedown, Node}}} ->
            ct:pal("call in progress: {error, {nodedown, _}} ~w ms after peer:stop/1 was called",
                   [erlang:monotonic_time(millisecond) - T0]);
        {result, Other} -> ct:fail({unexpected, Other})
    after 10000 -> ct:fail({no_result, Caller})
    end.

node_down(Config) ->
    Node = ?config(node, Config),
    {ok, Ctx} = py_dist:new_context(Node),
    {ok, 4.0} = py_dist:call(Node, math, sqrt, [16]),
    ok = peer:stop(?config(peer, Config)),
    {error, {nodedown, Node}} = py_dist:call(Node, math, sqrt, [16]),
    {error, {nodedown, Node}} = py_dist:eval(Node, <<"1">>),
    {error, {nodedown, Node}} = py_dist:exec(Node, <<"x = 1">>),
    {error, {nodedown, Node}} = py_dist:call(Ctx, math, sqrt, [16]),
    {error, {nodedown, Node}} = py_dist:new_context(Node),
    ok = py_context:stop(Ctx).

node_never_up(_Config) ->
    [_, Host] = string:split(atom_to_list(node()), "@"),
    Node = list_to_atom("py_dist_nobody_" ++ os:getpid() ++ "@" ++ Host),
    {error, {nodedown, Node}} = py_dist:call(Node, math, sqrt, [16]).

%% --- helpers ------------------------------------------------------------------------------------

%% erlang_python's ebin and this suite's directory (funs of this module run on the peer).
code_path() ->
    [code:lib_dir(erlang_python, ebin), filename:dirname(code:which(?MODULE))].

wait_until(Pred, Ms) when Ms =< 0 ->
    case Pred() of true -> ok; false -> timeout end;
wait_until(Pred, Ms) ->
    case Pred() of
        true -> ok;
        false -> timer:sleep(20), wait_until(Pred, Ms - 20)
    end.
