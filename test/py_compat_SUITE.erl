%% -*- coding: utf-8 -*-
%% erlang_python 4.1's public API for contexts, pools, max_concurrent and the event loop,
%% called in the shapes its documentation shows (docs/migration.md lists what differs).
-module(py_compat_SUITE).

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2]).

-export([context_interrupt/1, context_start_link/1]).
-export([context_call/1, context_eval/1, context_exec/1, context_call_method/1,
         context_destroy/1, context_call_timeout/1, context_new_options/1,
         cast_on_context/1, spawn_call_on_context/1, subinterp_supported/1,
         default_pool_stop_start/1, default_pool_resize/1, router_start_options/1,
         named_pool_lifecycle/1, named_pool_calls/1, named_pool_context_replaced/1,
         pool_registration/1, registration_routes_calls/1, registration_normalized/1,
         router_restart_keeps_policy/1,
         semaphore_api/1, semaphore_call_waits/1, semaphore_call_overloaded/1,
         semaphore_dead_holder/1, semaphore_waiter_cancelled/1, semaphore_bounds_running_calls/1,
         semaphore_killed_callers/1,
         event_loop_run/1, event_loop_create_task/1, event_loop_spawn_task/1,
         event_loop_exec_eval/1, event_loop_on_context/1, event_loop_result_message/1,
         event_loop_pool_module/1, event_loop_task_after_exec_on_context/1,
         app_env_checked/1]).

suite() -> [{timetrap, {seconds, 120}}].

all() ->
    [{group, worker}, {group, owngil}, {group, pools}, {group, semaphore}, {group, event_loop},
     app_env_checked].

groups() ->
    Context = [context_call, context_eval, context_exec, context_call_method, context_destroy, context_interrupt,
               context_call_timeout, cast_on_context, spawn_call_on_context, context_start_link],
    [{worker, [], Context ++ [context_new_options, subinterp_supported]},
     {owngil, [], Context},
     {pools, [], [default_pool_stop_start, default_pool_resize, router_start_options,
                  named_pool_lifecycle, named_pool_calls, named_pool_context_replaced,
                  pool_registration, registration_routes_calls, registration_normalized,
                  router_restart_keeps_policy]},
     {semaphore, [], [semaphore_api, semaphore_call_waits, semaphore_call_overloaded,
                      semaphore_dead_holder, semaphore_waiter_cancelled, semaphore_bounds_running_calls,
                      semaphore_killed_callers]},
     {event_loop, [], [event_loop_run, event_loop_create_task, event_loop_spawn_task,
                       event_loop_exec_eval, event_loop_on_context, event_loop_result_message,
                       event_loop_pool_module, event_loop_task_after_exec_on_context]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

init_per_group(owngil, Config) ->
    case py:subinterp_supported() of
        true -> [{mode, owngil} | Config];
        false -> {skip, "owngil contexts need Python 3.13+"}
    end;
init_per_group(_, Config) ->
    [{mode, worker} | Config].

end_per_group(_, _Config) ->
    ok.

new_context(Config) ->
    {ok, Ctx} = py_context:new(#{mode => proplists:get_value(mode, Config)}),
    Ctx.

%% --- py_context -------------------------------------------------------------------------------

context_call(Config) ->
    Ctx = new_context(Config),
    {ok, 4.0} = py_context:call(Ctx, math, sqrt, [16]),
    {ok, 8.0} = py_context:call(Ctx, math, pow, [2, 3], #{}),
    {ok, 255} = py_context:call(Ctx, builtins, int, [<<"ff">>], #{base => 16}),
    {ok, 255} = py_context:call(Ctx, builtins, int, [<<"ff">>], #{base => 16}, 5000),
    {ok, 2.0} = py_context:call(Ctx, <<"math">>, <<"sqrt">>, [4]),
    {error, {'ZeroDivisionError', _}} = py_context:call(Ctx, operator, truediv, [1, 0]),
    ok = py_context:stop(Ctx).

context_eval(Config) ->
    Ctx = new_context(Config),
    {ok, 6} = py_context:eval(Ctx, <<"2 + 4">>),
    {ok, 6} = py_context:eval(Ctx, "2 + 4"),
    {ok, 10} = py_context:eval(Ctx, <<"a * b">>, #{a => 2, b => 5}),
    {ok, 10} = py_context:eval(Ctx, <<"a * b">>, #{a => 2, b => 5}, 5000),
    {error, {'NameError', _}} = py_context:eval(Ctx, <<"undefined_name">>),
    ok = py_context:stop(Ctx).

context_exec(Config) ->
    Ctx = new_context(Config),
    ok = py_context:exec(Ctx, <<"compat_var = 42\ndef twice(x):\n    return 2 * x\n">>),
    {ok, 42} = py_context:eval(Ctx, <<"compat_var">>),
    {ok, 42} = py_context:eval(Ctx, <<"compat_var">>, #{}),
    {ok, 84} = py_context:call(Ctx, '__main__', twice, [42]),
    {error, {'SyntaxError', _}} = py_context:exec(Ctx, <<"def (">>),
    %% A pool context runs each process in a namespace of its own, with py_context as with py.
    Pool = py_context_router:get_context(),
    ok = py_context:exec(Pool, <<"router_test_var = 42">>),
    {ok, 42} = py_context:eval(Pool, <<"router_test_var">>, #{}),
    {ok, 42} = py:eval(Pool, <<"router_test_var">>),
    ok = py_context:stop(Ctx).

context_call_method(Config) ->
    Ctx = new_context(Config),
    {ok, Obj} = py_context:eval(Ctx, <<"__import__('fractions').Fraction(1, 3)">>),
    true = py:is_ref(Obj),
    {ok, {1, 3}} = py_context:call_method(Ctx, Obj, as_integer_ratio, []),
    {ok, 3} = py_context:call_method(Ctx, Obj, '__getattribute__', [<<"denominator">>]),
    ok = py_context:stop(Ctx),
    {error, context_not_found} = py_context:call_method(Ctx, Obj, as_integer_ratio, []),
    ok.

context_destroy(Config) ->
    Ctx = new_context(Config),
    {ok, 1} = py_context:eval(Ctx, <<"1">>),
    ok = py_context:destroy(Ctx),
    false = is_process_alive(Ctx),
    {error, _} = py_context:call(Ctx, math, sqrt, [4]),
    {error, _} = py_context:eval(Ctx, <<"1">>),
    ok = py_context:destroy(Ctx).

%% py_context:interrupt/1 ends the code the context runs now; its caller gets
%% {error, interrupted}; before and after, there is nothing to interrupt.
context_interrupt(Config) ->
    Ctx = new_context(Config),
    not_running = py_context:interrupt(Ctx),
    Self = self(),
    Caller = spawn_link(fun() -> Self ! {spun, py_context:eval(Ctx, <<"[0 for _ in iter(int, 1)]">>, #{}, infinity)} end),
    ok = interrupt_when_running(Ctx, 10000),
    receive {spun, Result} -> {error, interrupted} = Result after 10000 -> ct:fail(no_reply) end,
    unlink(Caller),
    {ok, 2} = py_context:eval(Ctx, <<"1 + 1">>),
    not_running = py_context:interrupt(Ctx).

%% The caller's request may not have started yet: ask again until it runs.
interrupt_when_running(_Ctx, 0) -> {error, never_running};
interrupt_when_running(Ctx, N) ->
    case py_context:interrupt(Ctx) of
        ok -> ok;
        not_running -> erlang:yield(), timer:sleep(1), interrupt_when_running(Ctx, N - 1)
    end.

context_call_timeout(Config) ->
    Ctx = new_context(Config),
    {error, timeout} = py_context:call(Ctx, time, sleep, [5], #{}, 100),
    {error, timeout} = py_context:eval(Ctx, <<"__import__('time').sleep(5)">>, #{}, 100),
    %% The context goes on serving (the timed-out code was interrupted).
    {ok, 3} = py_context:eval(Ctx, <<"1 + 2">>, #{}, 5000),
    ok = py_context:stop(Ctx).

cast_on_context(Config) ->
    Ctx = new_context(Config),
    ok = py_context:exec(Ctx, <<"import erlang\ndef tell(pid, msg, suffix=''):\n"
                                "    erlang.send(pid, msg + suffix)\n">>),
    ok = py:cast(Ctx, '__main__', tell, [self(), <<"cast4">>]),
    receive <<"cast4">> -> ok after 5000 -> ct:fail(no_cast4) end,
    ok = py:cast(Ctx, '__main__', tell, [self(), <<"cast">>], #{suffix => <<"5">>}),
    receive <<"cast5">> -> ok after 5000 -> ct:fail(no_cast5) end,
    ok = py_context:stop(Ctx),
    ok = py:cast(Ctx, math, sqrt, [4]).

spawn_call_on_context(Config) ->
    Ctx = new_context(Config),
    {ok, 4.0} = py:await(py:spawn_call(Ctx, math, sqrt, [16])),
    {ok, 255} = py:await(py:spawn_call(Ctx, builtins, int, [<<"ff">>], #{base => 16}), 5000),
    {ok, 7} = py:await(py:spawn_call(Ctx, asyncio, sleep, [0.01, 7])),
    ok = py_context:stop(Ctx),
    {error, _} = py:await(py:spawn_call(Ctx, math, sqrt, [16])),
    ok.

context_new_options(_Config) ->
    {error, {unknown_option, colour}} = py_context:new(#{colour => red}),
    {error, {unknown_option, colour}} = py_context:new(#{mode => worker, colour => red}),
    {error, {unsupported_option, memory_limit}} = py_context:new(#{memory_limit => 1 bsl 26}),
    {error, {invalid_mode, bogus}} = py_context:new(#{mode => bogus}),
    {ok, Default} = py_context:new(#{}),
    ok = py_context:stop(Default),
    {ok, Auto} = py_context:new(#{mode => auto}),
    {ok, 1} = py_context:eval(Auto, <<"1">>),
    ok = py_context:stop(Auto),
    %% 4.x's subinterp mode: an interpreter of its own (an owngil context here).
    case py:subinterp_supported() of
        true ->
            {ok, Sub} = py_context:new(#{mode => subinterp}),
            ok = py:exec(<<"h16_only_in_main = 1">>),
            ok = py_context:exec(Sub, <<"import sys\nh16_sub = 2">>),
            {ok, 2} = py_context:eval(Sub, <<"h16_sub">>),
            {error, {'NameError', _}} = py_context:eval(Sub, <<"h16_only_in_main">>),
            {ok, false} = py_context:eval(Sub, <<"__import__('_interpreters').get_current()[0] == 0">>),
            ok = py_context:stop(Sub);
        false ->
            {error, {owngil_unsupported, _}} = py_context:new(#{mode => subinterp})
    end.

subinterp_supported(_Config) ->
    Expected = case py_context:new(#{mode => owngil}) of
                   {ok, Ctx} -> ok = py_context:stop(Ctx), true;
                   {error, {owngil_unsupported, _}} -> false
               end,
    Expected = py:subinterp_supported().

%% --- the default pool -----------------------------------------------------------------------

default_pool_stop_start(_Config) ->
    true = py:contexts_started(),
    true = py_context_router:is_started(),
    Before = py_context_router:contexts(),
    {ok, Before} = py:start_contexts(),   % running already: its contexts as they are
    try
        ok = py:stop_contexts(),
        false = py:contexts_started(),
        0 = py_context_router:num_contexts(),
        [] = py_context_router:contexts(),
        [false = is_process_alive(C) || C <- Before],
        ok = py_context_router:stop(),    % stopping twice is fine
        {ok, After} = py:start_contexts(),
        true = py:contexts_started(),
        true = length(After) > 0,
        After = py_context_router:contexts(),
        {ok, 4.0} = py:call(math, sqrt, [16]),
        {ok, 3} = py:eval(<<"1 + 2">>)
    after
        _ = py:start_contexts()
    end.

default_pool_resize(_Config) ->
    Size = py_context_router:num_contexts(),
    try
        ok = py_context_router:stop(),
        0 = py:num_executors(),
        {ok, Two} = py_context_router:start(#{contexts => 2}),
        2 = length(Two),
        2 = py_context_router:num_contexts(),
        2 = py:num_executors(),
        Two = [py_context_router:get_context(N) || N <- [1, 2]],
        {ok, 4.0} = py_context:call(py_context_router:get_context(), math, sqrt, [16], #{}),
        Old = py_context_router:get_context(),
        ok = py_context_router:stop(),
        {ok, Five} = py_context_router:start(#{contexts => 5, mode => worker}),
        %% This process's context was stopped: it gets one of the new pool's.
        true = lists:member(py_context_router:get_context(), Five),
        false = lists:member(Old, Five),
        {ok, 4.0} = py_context:call(py_context_router:get_context(), math, sqrt, [16], #{}),
        5 = length(Five),
        5 = py_context_router:num_contexts(),
        %% Calls spread over the pool and each works.
        Parent = self(),
        Pids = [spawn(fun() -> Parent ! {self(), py:call(math, sqrt, [N * N])} end) || N <- lists:seq(1, 20)],
        [receive {P, {ok, _}} -> ok after 10000 -> ct:fail(no_reply) end || P <- Pids]
    after
        ok = py_context_router:stop(),
        {ok, _} = py_context_router:start(#{contexts => Size})
    end.

router_start_options(_Config) ->
    {error, {unknown_option, size}} = py_context_router:start(#{size => 2}),
    {error, {invalid_size, 0}} = py_context_router:start_pool(bad, 0, worker),
    %% A size that would start threads until the node falls over is refused at once.
    {error, {invalid_size, 1025}} = py_context_router:start_pool(bad, 1025, worker),
    Huge = 1 bsl 70,
    {error, {invalid_size, Huge}} = py_context_router:start_pool(bad, Huge),
    {error, {invalid_size, Huge}} = py_context_router:start(#{contexts => Huge}),
    {error, {invalid_mode, bogus}} = py_context_router:start_pool(bad, 1, bogus),
    false = py_context_router:pool_started(bad).

%% --- named pools --------------------------------------------------------------------------

named_pool_lifecycle(_Config) ->
    false = py_context_router:pool_started(io),
    0 = py_context_router:num_contexts(io),
    [] = py_context_router:contexts(io),
    {ok, Io} = py_context_router:start_pool(io, 3, worker),
    3 = length(Io),
    true = py_context_router:pool_started(io),
    3 = py_context_router:num_contexts(io),
    Io = py_context_router:contexts(io),
    {ok, Io} = py_context_router:start_pool(io, 3, worker),   % running: the same contexts
    false = lists:member(py_context_router:get_context(io), py_context_router:contexts(default)),
    true = lists:member(py_context_router:get_context(io), Io),
    ok = py_context_router:stop_pool(io),
    false = py_context_router:pool_started(io),
    [false = is_process_alive(C) || C <- Io],
    ok = py_context_router:stop_pool(io),
    {ok, Two} = py_context_router:start_pool(io, 2),
    2 = length(Two),
    ok = py_context_router:stop_pool(io).

named_pool_calls(_Config) ->
    {ok, _} = py_context_router:start_pool(io, 2, worker),
    {ok, 4.0} = py:call(io, math, sqrt, [16]),
    {ok, <<"[1, 2]">>} = py:call(io, json, dumps, [[1, 2]], #{}),
    {ok, <<"[\n  1\n]">>} = py:call(io, json, dumps, [[1]], #{indent => 2}),
    {ok, 4.0} = py:call(default, math, sqrt, [16]),
    %% A named pool keeps a namespace per process, like the default pool.
    IoCtx = py_context_router:get_context(io),
    ok = py:exec(IoCtx, <<"io_var = 1">>),
    {ok, 1} = py:eval(IoCtx, <<"io_var">>),
    {error, {'NameError', _}} = py:eval(<<"io_var">>),
    %% A slow call on io leaves the default pool free.
    Self = self(),
    Slow = spawn(fun() -> Self ! {slow, py:call(io, time, sleep, [0.5])} end),
    {ok, 2.0} = py:call(default, math, sqrt, [4]),
    receive {slow, {ok, none}} -> ok after 5000 -> ct:fail({no_slow_reply, Slow}) end,
    ok = py_context_router:bind_context(io, lists:last(py_context_router:contexts(io))),
    true = lists:last(py_context_router:contexts(io)) =:= py_context_router:get_context(io),
    ok = py_context_router:unbind_context(io),
    ok = py_context_router:stop_pool(io),
    {error, {pool_not_started, io}} = py:call(io, math, sqrt, [16]),
    {error, {pool_not_started, nopool}} = py:call(nopool, math, sqrt, [16], #{}),
    ok.

named_pool_context_replaced(_Config) ->
    {ok, [Ctx]} = py_context_router:start_pool(solo, 1, worker),
    {ok, 1.0} = py:call(solo, math, sqrt, [1]),
    Mon = erlang:monitor(process, Ctx),
    exit(Ctx, kill),
    receive {'DOWN', Mon, process, Ctx, _} -> ok end,
    wait_until(fun() -> [C] = py_context_router:contexts(solo), C =/= Ctx end),
    {ok, 2.0} = py:call(solo, math, sqrt, [4]),
    ok = py_context_router:stop_pool(solo).

pool_registration(_Config) ->
    [] = py_context_router:list_pool_registrations(),
    default = py_context_router:lookup_pool(json, dumps),
    ok = py:register_pool(io, json),
    ok = py:register_pool(default, {json, dumps}),
    ok = py_context_router:register_pool(io, os, getcwd),
    io = py_context_router:lookup_pool(json, loads),
    default = py_context_router:lookup_pool(json, dumps),
    io = py_context_router:lookup_pool(os, getcwd),
    default = py_context_router:lookup_pool(os, getpid),
    [{{json, '_'}, io}, {{json, dumps}, default}, {{os, getcwd}, io}] =
        py_context_router:list_pool_registrations(),
    ok = py:unregister_pool(json),
    default = py_context_router:lookup_pool(json, loads),
    ok = py:unregister_pool({json, dumps}),
    ok = py_context_router:unregister_pool(os, getcwd),
    ok = py_context_router:unregister_pool(never_registered),
    [] = py_context_router:list_pool_registrations(),
    {'EXIT', {badarg, _}} = (catch py_context_router:register_pool("io", json)),
    ok.

registration_routes_calls(_Config) ->
    {ok, Io} = py_context_router:start_pool(io, 1, worker),
    ok = py:register_pool(io, {os, getpid}),
    try
        %% A plain call of os.getpid runs on the io pool's context: its thread differs from
        %% that of the default pool's context this process uses.
        {ok, IoThread} = py:eval(hd(Io), <<"__import__('threading').get_ident()">>),
        {ok, DefThread0} = py:call(threading, get_ident, []),
        true = DefThread0 =/= IoThread,
        ok = py:register_pool(io, threading),
        {ok, IoThread} = py:call(threading, get_ident, []),
        {ok, IoThread} = py:call(threading, get_ident, [], #{}),
        {ok, IoThread} = py:call(threading, get_ident, [], #{}, 5000),
        ok = py:unregister_pool(threading),
        {ok, DefThread} = py:call(threading, get_ident, []),
        true = DefThread =/= IoThread,
        %% A registered pool that is not running: the call says so.
        ok = py_context_router:stop_pool(io),
        {error, {pool_not_started, io}} = py:call(os, getpid, [])
    after
        ok = py:unregister_pool({os, getpid}),
        ok = py_context_router:stop_pool(io)
    end.

registration_normalized(_Config) ->
    {ok, [IoCtx]} = py_context_router:start_pool(io, 1, worker),
    ok = py:register_pool(io, <<"threading">>),
    try
        io = py_context_router:lookup_pool(threading, get_ident),
        io = py_context_router:lookup_pool("threading", "get_ident"),
        {ok, Thread} = py:eval(IoCtx, <<"__import__('threading').get_ident()">>),
        {ok, Thread} = py:call(<<"threading">>, <<"get_ident">>, []),
        ok = py:register_pool(default, threading),   % the same module: replaces it
        [{{threading, '_'}, default}] = py_context_router:list_pool_registrations()
    after
        ok = py:unregister_pool(threading),
        ok = py_context_router:stop_pool(io)
    end.

%% The router restarting (it crashed) keeps the registrations and the limit; its pools come
%% back as the application configures them (named pools are started again by their users).
router_restart_keeps_policy(_Config) ->
    ok = py:register_pool(io, json),
    ok = py_semaphore:set_max_concurrent(7),
    try
        Router = whereis(py_context_router),
        Mon = erlang:monitor(process, Router),
        exit(Router, kill),
        receive {'DOWN', Mon, process, Router, killed} -> ok end,
        wait_until(fun() -> is_pid(whereis(py_context_router)) andalso whereis(py_context_router) =/= Router
                                andalso py_context_router:is_started() end),
        [{{json, '_'}, io}] = py_context_router:list_pool_registrations(),
        7 = py_semaphore:max_concurrent(),
        wait_until(fun() -> is_pid(whereis(py_semaphore)) end),
        {ok, 4.0} = py:call(math, sqrt, [16]),
        {error, {pool_not_started, io}} = py:call(json, dumps, [1])
    after
        ok = py:unregister_pool(json),
        ok = py_semaphore:set_max_concurrent(infinity)
    end.

%% --- max_concurrent -----------------------------------------------------------------------

semaphore_api(_Config) ->
    infinity = py_semaphore:max_concurrent(),
    0 = py_semaphore:current(),
    ok = py_semaphore:acquire(1000),
    1 = py_semaphore:current(),
    ok = py_semaphore:release(),
    0 = py_semaphore:current(),
    ok = py_semaphore:release(),              % holds none: nothing happens
    0 = py_semaphore:current(),
    ok = py_semaphore:set_max_concurrent(2),
    2 = py_semaphore:max_concurrent(),
    try
        ok = py_semaphore:acquire(1000),
        ok = py_semaphore:acquire(infinity),
        2 = py_semaphore:current(),
        {error, max_concurrent} = py_semaphore:acquire(50),
        {error, max_concurrent} = py_semaphore:acquire(0),
        ok = py_semaphore:release(),
        ok = py_semaphore:acquire(1000),
        ok = py_semaphore:release(),
        ok = py_semaphore:release(),
        0 = py_semaphore:current(),
        {'EXIT', {badarg, _}} = (catch py_semaphore:set_max_concurrent(0)),
        {'EXIT', {badarg, _}} = (catch py_semaphore:acquire(-1))
    after
        ok = py_semaphore:set_max_concurrent(infinity)
    end,
    infinity = py_semaphore:max_concurrent().

%% A call over the limit waits for a slot (within its own timeout), then runs.
semaphore_call_waits(_Config) ->
    ok = py_semaphore:set_max_concurrent(1),
    try
        ok = py_semaphore:acquire(1000),      % the only slot
        Self = self(),
        Caller = spawn(fun() -> Self ! {done, py:call(math, sqrt, [16], #{}, 10000)} end),
        wait_until(fun() -> waiting(1) end),
        {messages, []} = process_info(self(), messages),
        ok = py_semaphore:release(),
        receive {done, Result} -> {ok, 4.0} = Result after 10000 -> ct:fail({no_reply, Caller}) end,
        0 = py_semaphore:current(),
        %% Many callers through one slot all get their result.
        Pids = [spawn(fun() -> Self ! {self(), py:call(math, sqrt, [N * N])} end) || N <- lists:seq(1, 20)],
        [receive {P, {ok, _}} -> ok after 20000 -> ct:fail(no_reply) end || P <- Pids],
        0 = py_semaphore:current()
    after
        ok = py_semaphore:set_max_concurrent(infinity)
    end.

semaphore_call_overloaded(_Config) ->
    ok = py_semaphore:set_max_concurrent(1),
    try
        ok = py_semaphore:acquire(1000),
        {error, {overloaded, 1, 1}} = py:call(math, sqrt, [16], #{}, 100),
        0 = waiting(),
        %% A call naming a context takes no slot.
        {ok, 4.0} = py:call(py:context(), math, sqrt, [16]),
        ok = py_semaphore:release(),
        {ok, 4.0} = py:call(math, sqrt, [16], #{}, 100)
    after
        ok = py_semaphore:set_max_concurrent(infinity)
    end.

%% The slot of a process that died holding it is taken back when someone waits.
semaphore_dead_holder(_Config) ->
    ok = py_semaphore:set_max_concurrent(1),
    try
        {Holder, Mon} = spawn_monitor(fun() -> ok = py_semaphore:acquire(1000), receive stop -> ok end end),
        wait_until(fun() -> py_semaphore:current() =:= 1 end),
        exit(Holder, kill),
        receive {'DOWN', Mon, process, Holder, killed} -> ok end,
        ok = py_semaphore:acquire(5000),
        ok = py_semaphore:release()
    after
        ok = py_semaphore:set_max_concurrent(infinity)
    end.

%% A waiter that gives up, or dies, leaves the queue; raising the limit wakes waiters.
semaphore_waiter_cancelled(_Config) ->
    ok = py_semaphore:set_max_concurrent(1),
    try
        ok = py_semaphore:acquire(1000),
        {Waiter, Mon} = spawn_monitor(fun() -> py_semaphore:acquire(infinity) end),
        wait_until(fun() -> waiting(1) end),
        exit(Waiter, kill),
        receive {'DOWN', Mon, process, Waiter, killed} -> ok end,
        wait_until(fun() -> waiting(0) end),
        Self = self(),
        Late = spawn(fun() -> Self ! {late, py_semaphore:acquire(infinity), py_semaphore:release()} end),
        wait_until(fun() -> waiting(1) end),
        ok = py_semaphore:set_max_concurrent(2),
        receive {late, ok, ok} -> ok after 5000 -> ct:fail({not_woken, Late}) end,
        ok = py_semaphore:release(),
        0 = py_semaphore:current()
    after
        ok = py_semaphore:set_max_concurrent(infinity)
    end.

%% With a limit of 2, 12 concurrent pool calls never run more than 2 at once (Python counts).
semaphore_bounds_running_calls(_Config) ->
    Code = <<"import threading, time\n"
             "_lock = threading.Lock()\n"
             "state = {'now': 0, 'max': 0}\n"
             "def busy():\n"
             "    with _lock:\n"
             "        state['now'] += 1\n"
             "        state['max'] = max(state['max'], state['now'])\n"
             "    time.sleep(0.02)\n"
             "    with _lock:\n"
             "        state['now'] -= 1\n"
             "    return state['max']\n">>,
    {ok, _} = py_context_router:start_pool(bounded, 4, worker),
    %% A module, shared by every worker context (one interpreter).
    {ok, none} = py:eval(<<"exec(code, __import__('sys').modules.setdefault('bounded_probe', "
                           "__import__('types').ModuleType('bounded_probe')).__dict__)">>, #{code => Code}),
    ok = py_semaphore:set_max_concurrent(2),
    try
        Self = self(),
        Pids = [spawn(fun() -> Self ! {self(), py:call(bounded, bounded_probe, busy, [], #{})} end)
                || _ <- lists:seq(1, 12)],
        Maxes = [receive {P, {ok, M}} -> M after 20000 -> ct:fail(no_reply) end || P <- Pids],
        ct:pal("most calls running at once: ~p", [lists:max(Maxes)]),
        true = lists:max(Maxes) =< 2,
        0 = py_semaphore:current()
    after
        ok = py_semaphore:set_max_concurrent(infinity),
        ok = py_context_router:stop_pool(bounded)
    end.

%% Callers killed while they wait or while they hold a slot leave no capacity behind.
semaphore_killed_callers(_Config) ->
    ok = py_semaphore:set_max_concurrent(3),
    try
        Callers = [spawn(fun() -> [py:call(time, sleep, [0.01]) || _ <- lists:seq(1, 50)] end)
                   || _ <- lists:seq(1, 20)],
        Mons = [erlang:monitor(process, P) || P <- Callers],
        wait_until(fun() -> py_semaphore:current() > 0 end),
        [exit(P, kill) || P <- Callers],
        [receive {'DOWN', M, process, _, _} -> ok end || M <- Mons],
        wait_until(fun() -> waiting(0) end),
        %% All three slots can be taken again (those of dead holders are taken back).
        ok = py_semaphore:acquire(5000),
        ok = py_semaphore:acquire(5000),
        ok = py_semaphore:acquire(5000),
        {error, max_concurrent} = py_semaphore:acquire(0),
        [ok = py_semaphore:release() || _ <- [1, 2, 3]],
        {ok, 2.0} = py:call(math, sqrt, [4])
    after
        ok = py_semaphore:set_max_concurrent(infinity)
    end.

waiting() ->
    queue:len(sys:get_state(py_semaphore)).

waiting(N) ->
    waiting() =:= N.

%% --- the event loop ---------------------------------------------------------------------

event_loop_run(_Config) ->
    {ok, 3} = py_event_loop:run(math, floor, [3.7]),
    {ok, 3} = py_event_loop:run(math, floor, [3.7], #{timeout => 1000}),
    {ok, 5} = py_event_loop:run(asyncio, sleep, [0.01], #{kwargs => #{result => 5}}),
    {error, timeout} = py_event_loop:run(asyncio, sleep, [5], #{timeout => 100}),
    {messages, []} = process_info(self(), messages).

event_loop_create_task(_Config) ->
    Ref = py_event_loop:create_task(math, pow, [2.0, 10.0]),
    {ok, 1024.0} = py_event_loop:await(Ref, 1000),
    {ok, 2.0} = py_event_loop:await(py_event_loop:create_task(math, sqrt, [4.0])),
    {ok, 6} = py_event_loop:await(py_event_loop:create_task(asyncio, sleep, [0.01], #{result => 6})),
    %% Several at once overlap on the loop: one after the other would take at least 3 s (the
    %% bound leaves 1.8 s for a loaded machine).
    T0 = erlang:monotonic_time(millisecond),
    Refs = [py_event_loop:create_task(asyncio, sleep, [1.0, N]) || N <- [1, 2, 3]],
    [{ok, 1}, {ok, 2}, {ok, 3}] = [py_event_loop:await(R, 10000) || R <- Refs],
    true = erlang:monotonic_time(millisecond) - T0 < 2800,
    {error, timeout} = py_event_loop:await(py_event_loop:create_task(asyncio, sleep, [5]), 50),
    ok.

event_loop_spawn_task(_Config) ->
    ok = py:exec(<<"import erlang\nasync def tell_later(pid, msg, suffix=''):\n"
                   "    erlang.send(pid, msg + suffix)\n">>),
    ok = py_event_loop:spawn_task('__main__', tell_later, [self(), <<"three">>]),
    receive <<"three">> -> ok after 5000 -> ct:fail(no_spawned_task) end,
    ok = py_event_loop:spawn_task('__main__', tell_later, [self(), <<"four">>], #{suffix => <<"!">>}),
    receive <<"four!">> -> ok after 5000 -> ct:fail(no_spawned_task_kwargs) end,
    ok = py_event_loop:spawn_task(math, ceil, [2.3]).

event_loop_exec_eval(_Config) ->
    ok = py_event_loop:exec(<<"async def my_async_func(x):\n    return x * 2\nloop_x = 42\n">>),
    {ok, 42} = py_event_loop:await(py_event_loop:create_task('__main__', my_async_func, [21])),
    {ok, 42} = py_event_loop:eval(<<"loop_x">>),
    {ok, 84} = py_event_loop:eval(<<"loop_x * 2">>),
    {error, {'NameError', _}} = py_event_loop:eval(<<"not_defined_here">>).

event_loop_on_context(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py_event_loop:start(Ctx),
    {ok, 3} = py_event_loop:run_on(Ctx, asyncio, sleep, [0.01, 3]),
    {ok, 4} = py_event_loop:run_on(Ctx, asyncio, sleep, [0.01], #{kwargs => #{result => 4}, timeout => 5000}),
    {ok, <<"done">>} = py_event_loop:await(py_event_loop:create_task_on(Ctx, asyncio, sleep, [0.01, done])),
    {ok, 7} = py_event_loop:await(py_event_loop:create_task_on(Ctx, asyncio, sleep, [0.01], #{kwargs => #{result => 7}})),
    ok = py_event_loop:spawn_task_on(Ctx, asyncio, sleep, [0.01]),
    ok = py_event_loop:spawn_task_on(Ctx, asyncio, sleep, [0.01], #{result => 1}),
    {'EXIT', {badarg, _}} = (catch py_event_loop:create_task_on(not_a_pid, asyncio, sleep, [0])),
    ok = py_event_loop:stop(Ctx),
    ok = py_context:stop(Ctx).

%% A task's result is the message {async_result, Ref, Result}, which may be received directly;
%% await/2 timing out cancels the task and leaves nothing in the mailbox; a caller that traps
%% exits gets no 'EXIT' message from the task.
event_loop_result_message(_Config) ->
    Ref = py_event_loop:create_task(math, sqrt, [16.0]),
    receive {async_result, Ref, {ok, 4.0}} -> ok after 5000 -> ct:fail(no_result_message) end,
    Ref2 = py_event_loop:create_task(asyncio, sleep, [0.01], #{result => 2}),
    receive {async_result, Ref2, {ok, 2}} -> ok after 5000 -> ct:fail(no_result_message) end,
    {error, timeout} = py_event_loop:await(py_event_loop:create_task(asyncio, sleep, [5]), 50),
    {error, timeout} = py_event_loop:await(make_ref(), 10),
    {ok, Ctx} = py_context:new(#{}),
    Ref3 = py_event_loop:create_task_on(Ctx, asyncio, sleep, [0.01, 3]),
    receive {async_result, Ref3, {ok, 3}} -> ok after 5000 -> ct:fail(no_result_message) end,
    ok = py_context:stop(Ctx),
    {error, _} = py_event_loop:await(py_event_loop:create_task_on(Ctx, math, sqrt, [4])),
    Self = self(),
    Trapping = spawn(fun() ->
                             process_flag(trap_exit, true),
                             R = py_event_loop:await(py_event_loop:create_task(math, sqrt, [9.0])),
                             receive {async_result, _, _} = M -> Self ! {left, M} after 0 -> ok end,
                             Self ! {trapping, R, process_info(self(), messages)}
                     end),
    receive {trapping, {ok, 3.0}, {messages, Left}} -> [] = [M || {'EXIT', _, _} = M <- Left]
    after 5000 -> ct:fail({no_reply, Trapping})
    end,
    {messages, []} = process_info(self(), messages),
    ok.

%% --- application environment --------------------------------------------------------------

app_env_checked(_Config) ->
    ok = application:stop(erlang_python),
    try
        [begin
             ok = application:set_env(erlang_python, Key, Bad),
             {error, {{invalid_env, Key, Bad}, _}} = application:start(erlang_python),
             ok = application:unset_env(erlang_python, Key)
         end || {Key, Bad} <- [{num_contexts, 0}, {num_contexts, two}, {num_contexts, 1025}, {context_mode, subinterp},
                               {thread_priority, high}, {max_concurrent, 0}]],
        ok = application:set_env(erlang_python, num_contexts, 2),
        ok = application:set_env(erlang_python, max_concurrent, 3),
        ok = application:start(erlang_python),
        2 = py_context_router:num_contexts(),
        3 = py_semaphore:max_concurrent(),
        {ok, 4.0} = py:call(math, sqrt, [16])
    after
        application:unset_env(erlang_python, num_contexts),
        application:unset_env(erlang_python, max_concurrent),
        _ = application:stop(erlang_python),
        {ok, _} = application:ensure_all_started(erlang_python)
    end,
    infinity = py_semaphore:max_concurrent().

%% --- helpers -------------------------------------------------------------------------------

wait_until(Fun) ->
    wait_until(Fun, 500).

wait_until(_Fun, 0) ->
    ct:fail(condition_not_reached);
wait_until(Fun, N) ->
    case catch Fun() of
        true -> ok;
        _ -> timer:sleep(10), wait_until(Fun, N - 1)
    end.

%% py_event_loop_pool (4.x's name for the task functions without a context): the same tasks,
%% results and options as py_event_loop, on the calling process's pool context.
event_loop_pool_module(_Config) ->
    {ok, 3.0} = py_event_loop_pool:await(py_event_loop_pool:create_task(math, sqrt, [9.0])),
    Slow = py_event_loop_pool:create_task(asyncio, sleep, [0.01], #{result => slow}),
    {ok, <<"slow">>} = py_event_loop_pool:await(Slow, 5000),
    {ok, 4} = py_event_loop_pool:run(math, floor, [4.5]),
    {ok, 8} = py_event_loop_pool:run(asyncio, sleep, [0.01], #{kwargs => #{result => 8}}),
    {error, timeout} = py_event_loop_pool:run(asyncio, sleep, [5], #{timeout => 50}),
    ok = py:exec(<<"import erlang\nasync def pool_tell(pid, msg, tail=''):\n"
                   "    erlang.send(pid, msg + tail)\n">>),
    ok = py_event_loop_pool:spawn_task('__main__', pool_tell, [self(), <<"five">>]),
    receive <<"five">> -> ok after 5000 -> ct:fail(no_pool_spawned_task) end,
    ok = py_event_loop_pool:spawn_task('__main__', pool_tell, [self(), <<"six">>], #{tail => <<"!">>}),
    receive <<"six!">> -> ok after 5000 -> ct:fail(no_pool_spawned_task_kwargs) end,
    {'EXIT', {badarg, _}} = (catch py_event_loop_pool:create_task(math, sqrt, not_a_list)),
    ok.

%% As in erlang_python 4.x, a coroutine function that a process defined with
%% py:exec(py:context(N), Code) is found as '__main__' by that process's create_task/3 and
%% run/3 (tasks go where it last made its namespace), whichever pool context it would pick.
event_loop_task_after_exec_on_context(_Config) ->
    N = py_context_router:num_contexts(),
    InProcess = fun(F) ->
                    {Pid, Mon} = spawn_monitor(fun() -> exit({done, F()}) end),
                    receive {'DOWN', Mon, process, Pid, {done, R}} -> R
                    after 30000 -> ct:fail(no_result)
                    end
                end,
    Define = fun(I) ->
                 ok = py:exec(py:context(I), iolist_to_binary(
                          ["async def on_context(x):\n    return (x, ", integer_to_list(I), ")\n"]))
             end,
    [{ok, {1, I}} = InProcess(fun() ->
                                  Define(I),
                                  py_event_loop:await(py_event_loop:create_task('__main__', on_context, [1]))
                              end) || I <- lists:seq(1, N)],
    [{ok, {2, I}} = InProcess(fun() -> Define(I), py_event_loop:run('__main__', on_context, [2]) end)
     || I <- lists:seq(1, N)],
    %% the latest namespace wins
    {ok, {3, 1}} = InProcess(fun() ->
                                 [Define(I) || I <- lists:seq(N, 1, -1)],
                                 py_event_loop:run('__main__', on_context, [3])
                             end),
    %% a context that has stopped since: tasks go to the process's pool context again
    {ok, 3.0} = InProcess(fun() ->
                              {ok, [Gone]} = py_context_router:start_pool(gone_soon, 1, worker),
                              ok = py:exec(Gone, <<"async def on_context(x):\n    return 'gone'\n">>),
                              {ok, <<"gone">>} = py_event_loop:run('__main__', on_context, [0]),
                              ok = py_context_router:stop_pool(gone_soon),
                              false = is_process_alive(Gone),
                              py_event_loop:run(math, sqrt, [9.0])
                          end).

%% py_context:start_link/2 as in erlang_python 4.x: a context of the caller's, linked to it (4.x's
%% mode names: subinterp is an owngil context); stopped, it leaves the caller running; it
%% stops, normally, when its caller exits; a bad mode is an error, a bad Id badarg.
context_start_link(Config) ->
    Mode = case proplists:get_value(mode, Config) of
               owngil -> subinterp;
               worker -> worker
           end,
    {ok, Ctx} = py_context:start_link(erlang:unique_integer([positive]), Mode),
    {links, Links} = process_info(self(), links),
    true = lists:member(Ctx, Links),
    {ok, 3} = py_context:eval(Ctx, <<"1 + 2">>),
    ok = py_context:stop(Ctx),
    false = is_process_alive(Ctx),
    {ok, 4.0} = py:call(math, sqrt, [16]),
    Self = self(),
    Owner = spawn(fun() ->
                      {ok, C} = py_context:start_link(1, Mode),
                      Self ! {ctx, C},
                      receive never -> ok end
                  end),
    Owned = receive {ctx, C} -> C after 30000 -> ct:fail(no_context) end,
    Mon = monitor(process, Owned),
    exit(Owner, kill),
    receive {'DOWN', Mon, process, Owned, normal} -> ok after 30000 -> ct:fail(context_kept) end,
    {error, {invalid_mode, colour}} = py_context:start_link(2, colour),
    {'EXIT', {badarg, _}} = (catch py_context:start_link(0, worker)),
    {'EXIT', {badarg, _}} = (catch py_context:start_link(1, "worker")),
    ok.

