%% -*- coding: utf-8 -*-
%% Tests of contexts (src/py_context.erl) and of how calls reach them: isolation, namespaces,
%% thread affinity, owner lifetime, timeouts, concurrency, stopping and dying callers.
-module(py_context_SUITE).

-export([suite/0, all/0, groups/0,
         init_per_suite/1, end_per_suite/1]).

-export([new_worker/1, new_default_mode/1, new_invalid_mode/1,
         stop_then_call/1, stop_twice/1, stop_pool_context_is_replaced/1,
         isolation_between_contexts/1, exec_defines_callable/1,
         context_namespace_shared_by_processes/1,
         pool_namespace_per_process/1, pool_namespace_per_process_same_context/1,
         pool_namespace_dies_with_process/1,
         thread_affinity/1, thread_differs_between_contexts/1,
         owner_death_stops_context/1, owner_death_other_user_gets_error/1,
         pool_call_timeout/1, context_call_timeout/1, timeout_zero_or_reply/1,
         timeout_races_slow_replies/1, polled_replies/1, sent_replies_busy_context/1,
         polled_error_keeps_traceback/1,
         concurrent_callers_pool/1, concurrent_callers_one_context/1,
         queued_request_on_stop/1, killed_caller/1, killed_callers_repeatedly/1,
         stop_with_stale_callback_reply/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [{group, lifecycle}, {group, namespaces}, {group, threads}, {group, owner},
     {group, timeouts}, {group, reply_paths}, {group, concurrency}, {group, stopping}].

groups() ->
    [{lifecycle, [parallel],
      [new_worker, new_default_mode, new_invalid_mode, stop_then_call, stop_twice]},
     {namespaces, [parallel],
      [isolation_between_contexts, exec_defines_callable,
       context_namespace_shared_by_processes, pool_namespace_per_process,
       pool_namespace_per_process_same_context, pool_namespace_dies_with_process]},
     {threads, [parallel], [thread_affinity, thread_differs_between_contexts]},
     {owner, [parallel], [owner_death_stops_context, owner_death_other_user_gets_error]},
     {timeouts, [], [pool_call_timeout, context_call_timeout, timeout_zero_or_reply,
                     timeout_races_slow_replies]},
     {reply_paths, [], [polled_replies, sent_replies_busy_context, polled_error_keeps_traceback]},
     {concurrency, [], [concurrent_callers_pool, concurrent_callers_one_context]},
     {stopping, [],
      [queued_request_on_stop, killed_caller, killed_callers_repeatedly, stop_with_stale_callback_reply,
       stop_pool_context_is_replaced]}].

%% nap(pid, s): tells pid it runs (<<"napping">>), then sleeps s seconds. Cases that need a
%% request to be running wait for that message rather than for a while.
-define(NAP, <<"import time, erlang\ndef nap(pid, s):\n    erlang.send(pid, 'napping')\n    time.sleep(s)\n">>).

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).


%% --- lifecycle ---------------------------------------------------------------------------

new_worker(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    true = is_pid(Ctx),
    true = is_process_alive(Ctx),
    false = lists:member(Ctx, py_context_router:contexts()),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py:exec(Ctx, <<"a = 5">>),
    {ok, 10} = py:eval(Ctx, <<"a * b">>, #{b => 2}),
    ok = py_context:stop(Ctx).

new_default_mode(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    {ok, 2.0} = py:call(Ctx, math, sqrt, [4]),
    ok = py_context:stop(Ctx).

new_invalid_mode(_Config) ->
    {error, {invalid_mode, bogus}} = py_context:new(#{mode => bogus}),
    {error, {invalid_mode, "worker"}} = py_context:new(#{mode => "worker"}).

stop_then_call(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    {ok, 1} = py:eval(Ctx, <<"1">>),
    ok = py_context:stop(Ctx),
    false = is_process_alive(Ctx),
    {error, _} = py:call(Ctx, math, sqrt, [4]),
    {error, _} = py:call(Ctx, math, sqrt, [4], #{timeout => 1000}),
    {error, _} = py:eval(Ctx, <<"1">>),
    {error, _} = py:exec(Ctx, <<"x = 1">>).

stop_twice(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py_context:stop(Ctx),
    ok = py_context:stop(Ctx).

%% --- namespaces --------------------------------------------------------------------------

isolation_between_contexts(_Config) ->
    {ok, A} = py_context:new(#{mode => worker}),
    {ok, B} = py_context:new(#{mode => worker}),
    ok = py:exec(A, <<"x = 1">>),
    {ok, 1} = py:eval(A, <<"x">>),
    {error, {'NameError', _}} = py:eval(B, <<"x">>),
    ok = py:exec(B, <<"x = 2">>),
    {ok, 1} = py:eval(A, <<"x">>),
    {ok, 2} = py:eval(B, <<"x">>),
    %% Neither leaks into the default pool namespace of this process.
    {error, {'NameError', _}} = py:eval(<<"x">>),
    ok = py_context:stop(A),
    ok = py_context:stop(B).

exec_defines_callable(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py:exec(Ctx, <<"def double(n):\n    return n * 2\n"
                        "def greet(name, greeting='hello'):\n    return greeting + ' ' + name\n">>),
    {ok, 42} = py:call(Ctx, '__main__', double, [21]),
    {ok, <<"hello bob">>} = py:call(Ctx, '__main__', greet, [<<"bob">>]),
    {ok, <<"hi bob">>} = py:call(Ctx, '__main__', greet, [<<"bob">>],
                                 #{kwargs => #{greeting => <<"hi">>}}),
    %% Not defined in the caller's pool namespace.
    {error, {'NameError', _}} = py:call('__main__', double, [21]),
    ok = py_context:stop(Ctx).

context_namespace_shared_by_processes(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py:exec(Ctx, <<"shared = 'from test process'">>),
    Self = self(),
    Pid = spawn(fun() ->
                        R1 = py:eval(Ctx, <<"shared">>),
                        R2 = py:exec(Ctx, <<"shared2 = 7">>),
                        Self ! {self(), R1, R2}
                end),
    receive {Pid, R1, R2} ->
            {ok, <<"from test process">>} = R1,
            ok = R2
    after 5000 -> ct:fail(no_reply)
    end,
    {ok, 7} = py:eval(Ctx, <<"shared2">>),
    ok = py_context:stop(Ctx).

%% Both processes have written their v before either reads it.
pool_namespace_per_process(_Config) ->
    Self = self(),
    Go = make_ref(),
    Pids = [spawn(fun() ->
                          ok = py:exec(iolist_to_binary(["v = ", integer_to_list(V)])),
                          Self ! {ready, self()},
                          receive Go -> ok end,
                          Self ! {self(), py:eval(<<"v">>)}
                  end) || V <- [111, 222]],
    [receive {ready, P} -> ok after 5000 -> ct:fail(not_ready) end || P <- Pids],
    [P ! Go || P <- Pids],
    [receive {P, R} -> {ok, V} = R after 5000 -> ct:fail(no_reply) end
     || {P, V} <- lists:zip(Pids, [111, 222])],
    {error, {'NameError', _}} = py:eval(<<"v">>).

%% Both processes are bound to the same pool context: still separate namespaces.
pool_namespace_per_process_same_context(_Config) ->
    Ctx = py:context(1),
    Self = self(),
    Go = make_ref(),
    Pids = [spawn(fun() ->
                          ok = py_context_router:bind_context(Ctx),
                          ok = py:exec(iolist_to_binary(["v = ", integer_to_list(V)])),
                          Self ! {ready, self()},
                          receive Go -> ok end,
                          Self ! {self(), py:eval(<<"v">>), py:context()}
                  end) || V <- [111, 222]],
    [receive {ready, P} -> ok after 5000 -> ct:fail(not_ready) end || P <- Pids],
    [P ! Go || P <- Pids],
    [receive {P, R, C} -> {ok, V} = R, Ctx = C after 5000 -> ct:fail(no_reply) end
     || {P, V} <- lists:zip(Pids, [111, 222])],
    %% The same context's shared namespace does not see them either.
    {error, {'NameError', _}} = py:eval(Ctx, <<"v">>).

pool_namespace_dies_with_process(_Config) ->
    %% A new process never inherits the namespace of an earlier one.
    Self = self(),
    P1 = spawn(fun() -> Self ! {self(), set_and_read(5)} end),
    receive {P1, {ok, 5}} -> ok after 5000 -> ct:fail(no_reply) end,
    P2 = spawn(fun() -> Self ! {self(), py:eval(<<"v">>)} end),
    receive {P2, {error, {'NameError', _}}} -> ok after 5000 -> ct:fail(no_reply) end.

set_and_read(V) ->
    ok = py:exec(iolist_to_binary(["v = ", integer_to_list(V)])),
    py:eval(<<"v">>).

%% --- threads -----------------------------------------------------------------------------

thread_affinity(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    {ok, Tid} = py:call(Ctx, threading, get_native_id, []),
    true = is_integer(Tid),
    Self = self(),
    Pids = [spawn(fun() ->
                          Ids = [begin {ok, Id} = py:call(Ctx, threading, get_native_id, []), Id end
                                 || _ <- lists:seq(1, 50)],
                          Self ! {self(), lists:usort(Ids)}
                  end) || _ <- lists:seq(1, 20)],
    [receive {P, Ids} -> [Tid] = Ids after 20000 -> ct:fail(no_reply) end || P <- Pids],
    %% The thread is not the one the pool gives this process.
    {ok, PoolTid} = py:call(threading, get_native_id, []),
    true = PoolTid =/= Tid,
    ok = py_context:stop(Ctx).

thread_differs_between_contexts(_Config) ->
    {ok, A} = py_context:new(#{}),
    {ok, B} = py_context:new(#{}),
    {ok, TA} = py:call(A, threading, get_native_id, []),
    {ok, TB} = py:call(B, threading, get_native_id, []),
    true = TA =/= TB,
    {ok, TA} = py:eval(A, <<"__import__('threading').get_native_id()">>),
    {ok, TB} = py:eval(B, <<"__import__('threading').get_native_id()">>),
    ok = py_context:stop(A),
    ok = py_context:stop(B).

%% --- owner -------------------------------------------------------------------------------

owner_death_stops_context(_Config) ->
    Self = self(),
    Owner = spawn(fun() ->
                          {ok, Ctx} = py_context:new(#{mode => worker}),
                          {ok, 1} = py:eval(Ctx, <<"1">>),
                          Self ! {ctx, self(), Ctx}
                  end),
    Ctx = receive {ctx, Owner, C} -> C after 5000 -> ct:fail(no_context) end,
    ok = wait_dead(Ctx, 30000),
    {error, _} = py:call(Ctx, math, sqrt, [4]),
    {error, _} = py:eval(Ctx, <<"1">>).

owner_death_other_user_gets_error(_Config) ->
    %% The test process uses a context owned by a process that then dies abnormally.
    Self = self(),
    Owner = spawn(fun() ->
                          {ok, Ctx} = py_context:new(#{}),
                          Self ! {ctx, self(), Ctx},
                          receive die -> exit(boom) end
                  end),
    Ctx = receive {ctx, Owner, C} -> C after 5000 -> ct:fail(no_context) end,
    {ok, 9.0} = py:call(Ctx, math, sqrt, [81]),
    Owner ! die,
    ok = wait_dead(Ctx, 30000),
    {error, _} = py:call(Ctx, math, sqrt, [81]).

wait_dead(Pid, Ms) ->
    Mon = erlang:monitor(process, Pid),
    receive {'DOWN', Mon, process, Pid, _} -> ok
    after Ms -> ct:fail({still_alive, Pid})
    end.

%% --- timeouts ----------------------------------------------------------------------------

%% The call gives up at its deadline, and the sleep's late reply never comes: the next call on
%% the same context runs after the sleep has ended, and a late reply would come before its own.
%% (The elapsed-time bound only catches a call that waits for the sleep by a wide margin.)
pool_call_timeout(_Config) ->
    flush(),
    T0 = erlang:monotonic_time(millisecond),
    {error, timeout} = py:call(time, sleep, [0.5], #{}, 50),
    true = erlang:monotonic_time(millisecond) - T0 < 1000,
    {messages, []} = process_info(self(), messages),
    {ok, 4.0} = py:call(math, sqrt, [16]),
    {messages, []} = process_info(self(), messages).

context_call_timeout(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    flush(),
    T0 = erlang:monotonic_time(millisecond),
    {error, timeout} = py:call(Ctx, time, sleep, [0.5], #{timeout => 50}),
    true = erlang:monotonic_time(millisecond) - T0 < 1000,
    {messages, []} = process_info(self(), messages),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    {messages, []} = process_info(self(), messages),
    ok = py_context:stop(Ctx).

%% A timeout that races the reply never leaves a stray message.
timeout_zero_or_reply(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    flush(),
    Results = [py:call(Ctx, operator, add, [I, 1], #{timeout => I rem 3}) || I <- lists:seq(1, 300)],
    [ok = case R of
              {ok, V} when V =:= I + 1 -> ok;
              {error, timeout} -> ok;
              Other -> {unexpected, I, Other}
          end || {I, R} <- lists:zip(lists:seq(1, 300), Results)],
    %% served after every earlier request: a stray reply of one would be here before its own
    {ok, 3} = py:call(Ctx, operator, add, [1, 2]),
    {messages, []} = process_info(self(), messages),
    ok = py_context:stop(Ctx).

%% Replies that take 0-3 ms against timeouts of 0-3 ms: each call gets its result or
%% {error, timeout}, never a stray message, whichever way the reply travels (polled or sent).
timeout_races_slow_replies(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py:exec(Ctx, <<"import time\ndef slow(i, s):\n    time.sleep(s)\n    return i">>),
    flush(),
    Outcomes = [case py:call(Ctx, '__main__', slow, [I, (I rem 4) / 1000], #{timeout => I rem 3}) of
                    {ok, I} -> ok;
                    {error, timeout} -> timeout;
                    Other -> ct:fail({unexpected, I, Other})
                end || I <- lists:seq(1, 400)],
    {ok, 7} = py:call(Ctx, '__main__', slow, [7, 0]),  % after every earlier request
    {messages, []} = process_info(self(), messages),
    ct:pal("~w replied, ~w timed out", [length([ok || ok <- Outcomes]), length([t || timeout <- Outcomes])]),
    ok = py_context:stop(Ctx).

flush() ->
    receive _ -> flush() after 0 -> ok end.

%% --- reply paths -------------------------------------------------------------------------
%% A caller whose request reaches an idle, spinning worker polls for the reply (no message);
%% one whose request waits behind others receives it as a message. Both give the same results.

polled_replies(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    flush(),
    [{ok, X} = py:call(Ctx, operator, add, [X, 0]) || X <- lists:seq(1, 5000)],
    [{ok, X} = py:eval(Ctx, <<"x">>, #{x => X}) || X <- lists:seq(1, 1000)],
    {messages, []} = process_info(self(), messages),
    ok = py_context:stop(Ctx).

sent_replies_busy_context(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    Self = self(),
    Busy = spawn_link(fun() -> busy_loop(Ctx, Self) end),
    receive {busy, Busy} -> ok end,
    [{ok, X} = py:call(Ctx, operator, add, [X, 0]) || X <- lists:seq(1, 300)],
    Busy ! stop,
    receive {stopped, Busy} -> ok end,
    {messages, []} = process_info(self(), messages),
    ok = py_context:stop(Ctx).

busy_loop(Ctx, Parent) ->
    {ok, _} = py:call(Ctx, time, sleep, [0.0005]),
    Parent ! {busy, self()},
    busy_loop_until_stop(Ctx, Parent).

busy_loop_until_stop(Ctx, Parent) ->
    receive stop -> Parent ! {stopped, self()}
    after 0 ->
        {ok, _} = py:call(Ctx, time, sleep, [0.0005]),
        busy_loop_until_stop(Ctx, Parent)
    end.

polled_error_keeps_traceback(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    [{error, {'ZeroDivisionError', _}} = py:call(Ctx, operator, truediv, [1, 0]) || _ <- lists:seq(1, 100)],
    Tb = py:last_traceback(),
    true = is_binary(Tb) andalso binary:match(Tb, <<"ZeroDivisionError">>) =/= nomatch,
    {ok, 2.0} = py:call(Ctx, operator, truediv, [4, 2]),
    ok = py_context:stop(Ctx).

%% --- concurrency -------------------------------------------------------------------------

concurrent_callers_pool(_Config) ->
    run_callers(fun(M, F, A) -> py:call(M, F, A) end).

concurrent_callers_one_context(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    run_callers(fun(M, F, A) -> py:call(Ctx, M, F, A) end),
    ok = py_context:stop(Ctx).

%% 100 processes, each making 50 calls with arguments of its own and checking every result.
run_callers(Call) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                               Bad = [{I, J, R} || J <- lists:seq(1, 50),
                                                   R <- [Call(operator, add, [I * 1000000, J])],
                                                   R =/= {ok, I * 1000000 + J}],
                               Echo = Call(builtins, str, [I]),
                               Self ! {done, self(), Bad, Echo, I}
                       end) || I <- lists:seq(1, 100)],
    [receive
         {done, P, Bad, Echo, I} ->
             [] = Bad,
             Expected = integer_to_binary(I),
             {ok, Expected} = Echo
     after 30000 -> ct:fail(no_reply)
     end || P <- Pids],
    ok.

%% --- stopping ----------------------------------------------------------------------------

queued_request_on_stop(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py:exec(Ctx, ?NAP),
    Self = self(),
    Long = spawn(fun() -> Self ! {long, self(), py:call(Ctx, '__main__', nap, [Self, 0.5])} end),
    receive <<"napping">> -> ok after 30000 -> ct:fail(sleep_not_running) end,
    Queued = spawn(fun() -> Self ! {queued, self(), py:call(Ctx, math, sqrt, [4])} end),
    true = py_test_util:wait_until(fun() -> waiting_for_reply(Queued) end, 30000),
    ok = py_context:stop(Ctx),
    receive {queued, Queued, R} ->
            {error, _} = R,
            ct:log("queued request got ~p", [R])
    after 30000 -> ct:fail(queued_request_hangs)
    end,
    receive {long, Long, L} ->
            ct:log("running request got ~p", [L]),
            true = (L =:= {ok, none}) orelse (element(1, L) =:= error)
    after 30000 -> ct:fail(running_request_hangs)
    end,
    false = is_process_alive(Ctx).

killed_caller(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py:exec(Ctx, ?NAP),
    Self = self(),
    Caller = spawn(fun() ->
                           Self ! {unexpected, py:call(Ctx, '__main__', nap, [Self, 0.2])}
                   end),
    receive <<"napping">> -> ok after 30000 -> ct:fail(not_started) end,
    exit(Caller, kill),
    false = is_process_alive(Caller),
    Results = [py:call(Ctx, operator, mul, [I, 3]) || I <- lists:seq(1, 200)],
    Results = [{ok, I * 3} || I <- lists:seq(1, 200)],
    receive {unexpected, R} -> ct:fail({killed_caller_replied, R}) after 0 -> ok end,
    %% The pool works just as well after a pool caller is killed.
    Pooled = spawn(fun() -> ok = py:exec(?NAP), py:call('__main__', nap, [Self, 0.2]) end),
    receive <<"napping">> -> ok after 30000 -> ct:fail(pooled_not_started) end,
    exit(Pooled, kill),
    [{ok, I} = py:call(operator, index, [I]) || I <- lists:seq(1, 200)],
    ok = py_context:stop(Ctx).

%% Callers killed at arbitrary points (queued, running, replying) leave the context working.
killed_callers_repeatedly(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    lists:foreach(
      fun(I) ->
              P = spawn(fun() -> py:call(Ctx, time, sleep, [0.001 * (I rem 4)]) end),
              timer:sleep(I rem 3),
              exit(P, kill),
              {ok, I} = py:call(Ctx, operator, index, [I])
      end, lists:seq(1, 200)),
    ok = py_context:stop(Ctx).

%% A stopped pool context is replaced, the pool keeps its size, and a process whose cached
%% pick was the stopped context is moved to a live one.
stop_pool_context_is_replaced(_Config) ->
    N = py_context_router:num_contexts(),
    Self = self(),
    User = spawn(fun() ->
                         {ok, 1} = py:eval(<<"1">>),
                         Self ! {picked, self(), py:context()},
                         receive go -> Self ! {self(), py:call(math, sqrt, [9]), py:context()} end
                 end),
    Old = receive {picked, User, C} -> C after 5000 -> ct:fail(no_pick) end,
    ok = py_context:stop(Old),
    ok = wait_until(fun() -> not lists:member(Old, py_context_router:contexts()) end, 30000),
    N = py_context_router:num_contexts(),
    true = lists:all(fun erlang:is_process_alive/1, py_context_router:contexts()),
    User ! go,
    receive {User, R, NewCtx} ->
            {ok, 3.0} = R,
            true = NewCtx =/= Old,
            true = lists:member(NewCtx, py_context_router:contexts())
    after 5000 -> ct:fail(no_reply)
    end.

wait_until(F, Ms) ->
    case py_test_util:wait_until(F, Ms) of
        true -> ok;
        false -> ct:fail(condition_not_met)
    end.

%% Whether Pid has submitted its request and waits for the reply in receive.
waiting_for_reply(Pid) ->
    waiting_in_await(process_info(Pid, current_function)).

waiting_in_await({current_function, {py_request, await, Arity}}) -> Arity >= 5;
waiting_in_await(_) -> false.

%% A callback answer nobody waits for any more (its caller died; it has no tag) still queued when
%% the context stops: the stopping context skips it (it took the VM down: size_object, bad tag).
%% The running sleep is answered by the stop itself (docs/contexts.md, Lifetime).
stop_with_stale_callback_reply(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    {ok, Ref, own} = py_context:lookup(Ctx),
    ok = py:exec(Ctx, ?NAP),
    Self = self(),
    spawn(fun() -> Self ! {slept, py:call(Ctx, '__main__', nap, [Self, 3])} end),
    receive <<"napping">> -> ok after 30000 -> ct:fail(sleep_not_running) end,
    %% the context is in the sleep: what comes now is queued
    ok = py_nif:callback_reply(Ref, 424242, {ok, 1}),
    ok = py_context:stop(Ctx),
    receive {slept, R} -> {error, context_stopped} = R after 5000 -> ct:fail(no_reply) end.
