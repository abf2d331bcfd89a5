%% -*- coding: utf-8 -*-
%% Tests of how an isolated context's child waits for its next frame (c_src/child/input_wait.cpp):
%% a short spin before it blocks, switched off for a caller that pauses between calls and by
%% `spin => false', and never in the way of input, end of file or an interrupt.
-module(py_isolated_wait_SUITE).

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).

-export([input_ends_the_wait/1, end_of_file_ends_the_wait/1, bad_descriptor/1,
         pausing_caller_turns_the_spin_off/1, spin_false/1, spin_option_checked/1,
         interrupt_while_waiting_for_a_callback/1, calls_correct_with_the_spin/1]).

-define(MAX_SPIN_NS, 60000).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [input_ends_the_wait, end_of_file_ends_the_wait, bad_descriptor,
     pausing_caller_turns_the_spin_off, spin_false, spin_option_checked,
     interrupt_while_waiting_for_a_callback, calls_correct_with_the_spin].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

new(Opts) ->
    {ok, Ctx} = py_context:new(Opts#{mode => isolated}),
    Ctx.

stats(Ctx) ->
    {ok, Stats} = py:eval(Ctx, <<"__import__('_erlang_etf').wait_stats()">>),
    Stats.

budget(Ctx) ->
    maps:get(<<"budget_ns">>, stats(Ctx)).

%% A wait on a pipe that holds a byte returns at once; the budget that wait left (read in the
%% same request: the wait for the next request changes it).
wait_on_ready_pipe(Ctx) ->
    ok = py:exec(Ctx, <<"import os, _erlang_etf\n"
                        "r, w = os.pipe()\n"
                        "os.write(w, b'x')\n"
                        "_erlang_etf.wait_readable(r)\n"
                        "after_ready = _erlang_etf.wait_stats()['budget_ns']\n"
                        "got = os.read(r, 1)\n"
                        "os.close(r); os.close(w)\n">>),
    {ok, {<<"x">>, Budget}} = py:eval(Ctx, <<"(got, after_ready)">>),
    Budget.

%% --- cases -------------------------------------------------------------------------------------

input_ends_the_wait(_Config) ->
    Ctx = new(#{}),
    ?MAX_SPIN_NS = wait_on_ready_pipe(Ctx),
    %% Input that comes while the child waits (a thread writes it once the wait has begun).
    ok = py:exec(Ctx, <<"import os, threading, _erlang_etf\n"
                        "r, w = os.pipe()\n"
                        "threading.Thread(target=os.write, args=(w, b'late')).start()\n"
                        "_erlang_etf.wait_readable(r)\n"
                        "late = os.read(r, 4)\n"
                        "os.close(r); os.close(w)\n">>),
    {ok, <<"late">>} = py:eval(Ctx, <<"late">>),
    ok = py_context:stop(Ctx).

end_of_file_ends_the_wait(_Config) ->
    Ctx = new(#{}),
    ok = py:exec(Ctx, <<"import os, _erlang_etf\n"
                        "r, w = os.pipe()\n"
                        "os.close(w)\n"
                        "_erlang_etf.wait_readable(r)\n"
                        "eof = os.read(r, 1)\n"
                        "os.close(r)\n">>),
    {ok, <<>>} = py:eval(Ctx, <<"eof">>),
    ok = py_context:stop(Ctx).

bad_descriptor(_Config) ->
    Ctx = new(#{}),
    {error, {'ValueError', _}} = py:eval(Ctx, <<"__import__('_erlang_etf').wait_readable(-1)">>),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"__import__('_erlang_etf').wait_readable('0')">>),
    {error, {'OverflowError', _}} = py:eval(Ctx, <<"__import__('_erlang_etf').wait_readable(2 ** 80)">>),
    %% A descriptor that is not open: poll reports it at once (POLLNVAL), no wait.
    {ok, none} = py:eval(Ctx, <<"__import__('_erlang_etf').wait_readable(4000)">>),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_context:stop(Ctx).

%% Each call after a pause waits longer than the spin: the budget halves, to none after some
%% 15 such waits in a row. (A child descheduled for the whole pause on a loaded machine sees a
%% short wait and starts over: hence a loop with a bound rather than an exact count.) A wait that
%% ends within the spin's length turns it back on.
pausing_caller_turns_the_spin_off(_Config) ->
    Ctx = new(#{}),
    ok = until_spin_off(Ctx, 300),
    ?MAX_SPIN_NS = wait_on_ready_pipe(Ctx),
    ok = py_context:stop(Ctx).

until_spin_off(_Ctx, 0) ->
    ct:fail(spin_never_turned_off);
until_spin_off(Ctx, Left) ->
    %% The pause is the behaviour tested (a caller that does not call in a loop); the request
    %% that reads the budget comes after one too, and reads it after that wait.
    timer:sleep(10),
    case budget(Ctx) of
        0 -> ok;
        _ -> until_spin_off(Ctx, Left - 1)
    end.

spin_false(_Config) ->
    Ctx = new(#{spin => false}),
    lists:foreach(fun(K) -> {ok, Sum} = py:call(Ctx, operator, add, [K, 1]), Sum = K + 1 end, lists:seq(1, 200)),
    0 = wait_on_ready_pipe(Ctx),
    #{<<"budget_ns">> := 0, <<"caught">> := 0, <<"missed">> := 0, <<"contended">> := 0,
      <<"blocked">> := Blocked} = stats(Ctx),
    true = Blocked >= 200,
    ok = py_context:stop(Ctx).

spin_option_checked(_Config) ->
    {error, {invalid_option, {spin, yes}}} = py_context:new(#{mode => isolated, spin => yes}),
    Ctx = new(#{spin => true}),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_context:stop(Ctx).

%% A request that times out while its code waits for an Erlang callback (the child waits for the
%% callback's reply, spinning first): the interrupt reaches it, and the child serves on.
interrupt_while_waiting_for_a_callback(_Config) ->
    Ctx = new(#{}),
    Self = self(),
    ok = py:register_function(wait_suite_block, fun([]) -> Self ! {blocked, self()},
                                                          receive release -> ok end end),
    try
        {error, timeout} = py_context:eval(Ctx, <<"__import__('erlang').call('wait_suite_block')">>, #{}, 300),
        receive {blocked, Pid} -> Pid ! release after 60000 -> ct:fail(callback_never_ran) end,
        {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
        {error, interrupted} = interrupt_in_callback(Ctx)
    after
        py:unregister_function(wait_suite_block)
    end,
    ok = py_context:stop(Ctx).

interrupt_in_callback(Ctx) ->
    Self = self(),
    Caller = spawn(fun() -> Self ! {result, py:eval(Ctx, <<"__import__('erlang').call('wait_suite_block')">>)} end),
    Pid = receive {blocked, P} -> P after 60000 -> ct:fail(callback_never_ran) end,
    ok = py:interrupt(Ctx),
    Result = receive {result, R} -> R after 60000 -> ct:fail({no_result, Caller}) end,
    Pid ! release,
    Result.

%% Many sequential calls and some from several callers at once: every reply is the right one,
%% whether the child found each request spinning or blocked.
calls_correct_with_the_spin(_Config) ->
    Ctx = new(#{}),
    lists:foreach(fun(K) -> {ok, Twice} = py:eval(Ctx, <<"k * 2">>, #{k => K}), Twice = 2 * K end,
                  lists:seq(1, 3000)),
    Self = self(),
    Pids = [spawn_link(fun() ->
                               lists:foreach(fun(K) -> {ok, {P, K}} = py:eval(Ctx, <<"(p, k)">>, #{p => P, k => K}) end,
                                             lists:seq(1, 300)),
                               Self ! {done, P}
                       end) || P <- lists:seq(1, 4)],
    [receive {done, P} -> ok after 120000 -> ct:fail({caller_stuck, P}) end || P <- lists:seq(1, length(Pids))],
    #{<<"caught">> := Caught, <<"blocked">> := Blocked} = stats(Ctx),
    ct:log("caught ~p blocked ~p", [Caught, Blocked]),
    true = Caught + Blocked >= 4200,
    ok = py_context:stop(Ctx).
