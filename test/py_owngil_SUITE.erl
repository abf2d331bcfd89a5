%% @doc OWN_GIL contexts: every API on an isolated subinterpreter, isolation, parallelism,
%% lifecycle and churn. Skipped, with the reason, on Pythons older than 3.13.
-module(py_owngil_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1]).
-export([api_works/1, errors_and_timeouts/1, conversion/1, foreign_reference/1,
         isolation_between_contexts/1, isolation_from_main/1, thread_affinity/1,
         parallel_with_worker/1, sixteen_at_once/1, unsupported_extension/1,
         import_stress/1, stuck_thread_destroy/1, churn_rss/1, owner_exit_stops/1,
         reset_reuses/1, owngil_pool/1]).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [{group, api}, {group, isolation}, {group, lifecycle}].

groups() ->
    [{api, [], [api_works, errors_and_timeouts, conversion, foreign_reference, thread_affinity]},
     {isolation, [], [isolation_between_contexts, isolation_from_main, unsupported_extension]},
     {lifecycle, [], [parallel_with_worker, sixteen_at_once, owner_exit_stops,
                      stuck_thread_destroy, import_stress, churn_rss, reset_reuses, owngil_pool]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    case py_context:new(#{mode => owngil}) of
        {ok, Ctx} ->
            ok = py_context:stop(Ctx),
            Config;
        {error, {owngil_unsupported, Version}} ->
            application:stop(erlang_python),
            {skip, "OWN_GIL contexts need Python 3.13+; this build uses " ++ binary_to_list(Version)}
    end.

end_per_suite(_Config) ->
    application:stop(erlang_python).

new() ->
    {ok, Ctx} = py_context:new(#{mode => owngil}),
    Ctx.

%% --- api ------------------------------------------------------------------------------------

api_works(_Config) ->
    Ctx = new(),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    {ok, <<"{\"a\": 1}">>} = py:call(Ctx, json, dumps, [#{a => 1}]),
    {ok, <<"[1,2]">>} = py:call(Ctx, json, dumps, [[1, 2]], #{kwargs => #{separators => {<<",">>, <<":">>}}}),
    {ok, 45} = py:eval(Ctx, <<"sum(range(10))">>),
    {ok, 100} = py:eval(Ctx, <<"x * y">>, #{x => 10, y => 10}),
    ok = py:exec(Ctx, <<"def double(x): return x * 2">>),
    {ok, 42} = py:call(Ctx, '__main__', double, [21]),
    {ok, <<"a/b">>} = py:call(Ctx, 'os.path', join, [<<"a">>, <<"b">>]),
    ok = py_context:stop(Ctx).

errors_and_timeouts(_Config) ->
    Ctx = new(),
    {error, {'ZeroDivisionError', "division by zero"}} = py:eval(Ctx, <<"1/0">>),
    {error, {'ModuleNotFoundError', _}} = py:call(Ctx, no_such_module_xyz, f, []),
    {error, timeout} = py:call(Ctx, time, sleep, [0.3], #{timeout => 20}),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),  % after the sleep: its late reply would be here first
    {messages, []} = process_info(self(), messages),
    ok = py_context:stop(Ctx).

conversion(_Config) ->
    Ctx = new(),
    ok = py:exec(Ctx, <<"def ident(x): return x">>),
    Big = 1 bsl 200,
    Values = [0, -1, Big, -Big, 1.5, <<"héllo"/utf8>>, <<255, 0>>, [1, [2, {3}]], #{<<"k">> => [none]},
              true, self(), make_ref()],
    [{ok, V} = py:call(Ctx, '__main__', ident, [V]) || V <- Values],
    {ok, [infinity, neg_infinity, nan]} = py:eval(Ctx, <<"[float('inf'), float('-inf'), float('nan')]">>),
    Deep = lists:foldl(fun(_, A) -> [A] end, [], lists:seq(1, 1000000)),
    {error, {'RecursionError', _}} = py:call(Ctx, '__main__', ident, [Deep]),
    ok = py_context:stop(Ctx).

foreign_reference(_Config) ->
    A = new(),
    B = new(),
    {ok, Ref} = py:eval(A, <<"object()">>),
    true = py:is_ref(Ref),
    {ok, <<"object">>} = py:eval(A, <<"type(o).__name__">>, #{o => Ref}),
    {error, {'ValueError', _}} = py:eval(B, <<"o">>, #{o => Ref}),
    {error, {'ValueError', _}} = py:eval(<<"o">>, #{o => Ref}),
    ok = py_context:stop(A),
    %% The object's interpreter is gone: the reference is refused everywhere, never a crash.
    {error, {'ValueError', _}} = py:eval(B, <<"o">>, #{o => Ref}),
    ok = py_context:stop(B).

thread_affinity(_Config) ->
    Ctx = new(),
    Self = self(),
    Pids = [spawn_link(fun() ->
                               Self ! {tid, [py:call(Ctx, threading, get_native_id, []) || _ <- lists:seq(1, 10)]}
                       end) || _ <- lists:seq(1, 10)],
    Ids = lists:usort(lists:append([receive {tid, L} -> L end || _ <- Pids])),
    [{ok, _}] = Ids,
    ok = py_context:stop(Ctx).

%% --- isolation --------------------------------------------------------------------------------

isolation_between_contexts(_Config) ->
    A = new(),
    B = new(),
    ok = py:exec(A, <<"import sys, json\nsecret = 41\nsys.modules['only_in_a'] = json">>),
    {ok, 41} = py:eval(A, <<"secret">>),
    {error, {'NameError', _}} = py:eval(B, <<"secret">>),
    {ok, false} = py:eval(B, <<"__import__('sys').modules.get('only_in_a') is not None">>),
    {ok, true} = py:eval(A, <<"__import__('sys').modules.get('only_in_a') is not None">>),
    {ok, IdA} = py:eval(A, <<"__import__('sys').modules['sys'].__dict__ is not None and id(__import__('sys'))">>),
    {ok, IdB} = py:eval(B, <<"id(__import__('sys'))">>),
    true = IdA =/= IdB,
    ok = py_context:stop(A),
    ok = py_context:stop(B).

isolation_from_main(_Config) ->
    A = new(),
    ok = py:exec(A, <<"import sys\nsys.marker_from_owngil = 1">>),
    {ok, false} = py:eval(<<"hasattr(__import__('sys'), 'marker_from_owngil')">>),
    ok = py:exec(<<"import sys\nsys.marker_from_main = 1">>),
    {ok, false} = py:eval(A, <<"hasattr(__import__('sys'), 'marker_from_main')">>),
    ok = py_context:stop(A).

unsupported_extension(_Config) ->
    Ctx = new(),
    %% _testsinglephase is a single-phase-init test module; the curses module is built
    %% without multi-interpreter support. Either is refused with an ImportError naming it.
    {error, {'ImportError', Msg}} = py:exec(Ctx, <<"import _curses">>),
    true = string:find(Msg, "_curses") =/= nomatch,
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_context:stop(Ctx).

%% --- lifecycle ----------------------------------------------------------------------------------

parallel_with_worker(_Config) ->
    Contexts = [new() || _ <- lists:seq(1, 4)],
    {ok, W} = py_context:new(#{mode => worker}),
    Self = self(),
    Loop = <<"sum(i * i for i in range(300000))">>,
    {ok, Expected} = py:eval(W, Loop),
    Pids = [spawn_link(fun() -> Self ! {done, C, [py:eval(C, Loop) || _ <- lists:seq(1, 5)]} end)
            || C <- [W | Contexts]],
    Results = [receive {done, _, R} -> R end || _ <- Pids],
    [[{ok, Expected}] = lists:usort(R) || R <- Results],
    [ok = py_context:stop(C) || C <- [W | Contexts]],
    ok.

sixteen_at_once(_Config) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                               {ok, C} = py_context:new(#{mode => owngil}),
                               R = py:eval(C, <<"__import__('json').dumps([1])">>),
                               Self ! {done, self(), R, C},
                               receive stop -> ok end
                       end) || _ <- lists:seq(1, 16)],
    Done = [receive {done, P, R, C} -> {P, R, C} end || P <- Pids],
    [{ok, <<"[1]">>}] = lists:usort([R || {_, R, _} <- Done]),
    16 = length(lists:usort([C || {_, _, C} <- Done])),
    [ok = py_context:stop(C) || {_, _, C} <- Done],
    [P ! stop || P <- Pids],
    ok.

owner_exit_stops(_Config) ->
    Self = self(),
    Owner = spawn(fun() -> {ok, C} = py_context:new(#{mode => owngil}), Self ! {ctx, C} end),
    Ctx = receive {ctx, C} -> C end,
    MRef = erlang:monitor(process, Ctx),
    receive {'DOWN', MRef, process, Ctx, _} -> ok after 30000 -> ct:fail({context_alive, Owner}) end,
    {error, _} = py:eval(Ctx, <<"1">>).

stuck_thread_destroy(_Config) ->
    Ctx = new(),
    ok = py:exec(Ctx, <<"import threading\nstop_me = threading.Event()\n"
                        "threading.Thread(target=stop_me.wait).start()">>),
    T0 = erlang:monotonic_time(millisecond),
    {error, Reason} = py_context:stop(Ctx),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    ct:pal("stop with a stuck thread: ~p after ~p ms", [Reason, Elapsed]),
    true = Elapsed < 6000,
    %% The node goes on, and new contexts still start and run.
    C2 = new(),
    {ok, 2} = py:eval(C2, <<"1 + 1">>),
    ok = py_context:stop(C2).

import_stress(Config) ->
    Rounds = proplists:get_value(import_rounds, Config, 50),
    Code = <<"import json, re, decimal, datetime, asyncio, hashlib, socket\n"
             "x = json.dumps([str(decimal.Decimal('1.5')), datetime.date(2020, 1, 1).isoformat(),"
             " hashlib.sha256(b'x').hexdigest(), re.sub('a', 'b', 'aa')])">>,
    Self = self(),
    lists:foreach(
      fun(_) ->
              Pids = [spawn_link(fun() ->
                                         C = new(),
                                         R = py:exec(C, Code),
                                         Self ! {done, self(), R, py_context:stop(C)}
                                 end) || _ <- lists:seq(1, 4)],
              [{ok, ok}] = lists:usort([receive {done, P, R, S} -> {R, S} end || P <- Pids])
      end, lists:seq(1, Rounds)),
    ct:pal("import stress: ~p rounds x 4 parallel interpreters, no failure", [Rounds]).

churn_rss(_Config) ->
    Cycles = 200,
    Cycle = fun() ->
                    C = new(),
                    ok = py:exec(C, <<"import json">>),
                    ok = py_context:stop(C)
            end,
    [Cycle() || _ <- lists:seq(1, 10)],  % warm-up
    Before = rss_kb(),
    [Cycle() || _ <- lists:seq(1, Cycles)],
    After = rss_kb(),
    PerCycle = (After - Before) / Cycles,
    ct:pal("owngil churn: ~p cycles (create, import json, stop): RSS ~p -> ~p KB, ~.1f KB/cycle",
           [Cycles, Before, After, PerCycle]),
    {comment, io_lib:format("~.1f KB/cycle", [PerCycle])}.

reset_reuses(_Config) ->
    Ctx = new(),
    Cycle = fun() ->
                    ok = py:exec(Ctx, <<"import json\nx = json.dumps(list(range(1000)))">>),
                    ok = py_context:reset(Ctx)
            end,
    [Cycle() || _ <- lists:seq(1, 20)],
    Before = rss_kb(),
    [Cycle() || _ <- lists:seq(1, 500)],
    PerCycle = (rss_kb() - Before) / 500,
    {error, {'NameError', _}} = py:eval(Ctx, <<"x">>),
    {ok, true} = py:eval(Ctx, <<"'json' in __import__('sys').modules">>),
    ct:pal("owngil reuse with py_context:reset/1: ~.1f KB/cycle over 500 cycles", [PerCycle]),
    ok = py_context:stop(Ctx),
    {comment, io_lib:format("~.1f KB/cycle", [PerCycle])}.

%% context_mode => owngil makes the default pool owngil: pool contexts do not share modules.
owngil_pool(_Config) ->
    ok = application:stop(erlang_python),
    ok = application:set_env(erlang_python, context_mode, owngil),
    ok = application:set_env(erlang_python, num_contexts, 2),
    try
        {ok, _} = application:ensure_all_started(erlang_python),
        subinterp = py:execution_mode(),
        [C1, C2 | _] = py_context_router:contexts(),
        ok = py:exec(C1, <<"import sys\nsys.pool_marker = 1">>),
        {ok, true} = py:eval(C1, <<"hasattr(__import__('sys'), 'pool_marker')">>),
        {ok, false} = py:eval(C2, <<"hasattr(__import__('sys'), 'pool_marker')">>),
        {ok, 4.0} = py:call(math, sqrt, [16]),
        %% A main-interpreter object (from a worker context) is served by a worker context,
        %% not by the owngil pool.
        {ok, W} = py_context:new(#{mode => worker}),
        {ok, Obj} = py:eval(W, <<"type('K', (), {'v': 5})()">>),
        {ok, 5} = py:getattr(Obj, v),
        ok = py_context:stop(W)
    after
        application:stop(erlang_python),
        application:unset_env(erlang_python, context_mode),
        application:unset_env(erlang_python, num_contexts),
        {ok, _} = application:ensure_all_started(erlang_python)
    end.

rss_kb() ->
    {ok, Status} = file:read_file("/proc/self/status"),
    {match, [Kb]} = re:run(Status, "VmRSS:\\s+(\\d+)", [{capture, all_but_first, list}]),
    list_to_integer(Kb).
