%% -*- coding: utf-8 -*-
%% Tests of interrupting Python code (c_src/context/interrupter.hpp): a call that times out,
%% or whose caller exits, has erlang.Interrupted raised in its code at the next bytecode, and
%% the context is free for the next call; an interrupt never reaches another request's code.
%% Every case runs on a worker context and on an owngil one (skipped before Python 3.13).
-module(py_interrupt_SUITE).

-export([suite/0, all/0, groups/0,
         init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2,
         init_per_testcase/2, end_per_testcase/2]).

-export([timeout_interrupts_busy_loop/1, caller_exit_interrupts_busy_loop/1,
         except_exception_does_not_swallow/1, caught_interrupt_comes_again/1,
         late_interrupt_does_not_leak/1, blocking_call_finishes_first/1,
         event_loop_wait_interrupted/1, nested_interrupt_hits_inner_only/1,
         interrupts_repeatedly/1, import_finishes_first/1,
         timed_out_task_cancelled/1, exited_callers_task_cancelled/1,
         cancelled_stream_task_cancelled/1]).

-define(config(Key, Config), proplists:get_value(Key, Config)).

-define(BUSY, <<"
import asyncio, erlang, sys, time
state = None
def spin(pid=None):
    global state
    state = 'running'
    if pid is not None:
        erlang.send(pid, 'running')
    try:
        while True:
            pass
    except erlang.Interrupted:
        state = 'interrupted'
        raise

def swallow():
    global state
    state = 'running'
    try:
        while True:
            pass
    except Exception:
        state = 'swallowed'

caught_at = []
def stubborn(times):
    global state
    caught = 0
    state = caught
    caught_at.clear()
    while True:
        try:
            while True:
                pass
        except erlang.Interrupted:
            caught_at.append(time.monotonic())
            caught += 1
            state = caught
            if caught >= times:
                raise

def import_then_spin(name):
    global state
    state = 'importing'
    __import__(name)
    while True:
        pass

def wait_in_loop():
    global state
    state = 'running'
    async def main():
        await asyncio.sleep(30)
    try:
        erlang.run(main())
    except erlang.Interrupted:
        state = 'loop interrupted'
        raise

def count(n):
    return sum(range(n))

def nap(s):
    global state
    t = time.monotonic()
    state = 'napping'
    try:
        time.sleep(s)
    finally:
        state = time.monotonic() - t
">>).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [{group, worker}, {group, owngil}, {group, tasks}].

cases() ->
    [timeout_interrupts_busy_loop, caller_exit_interrupts_busy_loop,
     except_exception_does_not_swallow, caught_interrupt_comes_again,
     late_interrupt_does_not_leak, blocking_call_finishes_first,
     event_loop_wait_interrupted, nested_interrupt_hits_inner_only, interrupts_repeatedly,
     import_finishes_first].

groups() ->
    [{worker, [], cases()}, {owngil, [], cases()},
     {tasks, [], [timed_out_task_cancelled, exited_callers_task_cancelled,
                  cancelled_stream_task_cancelled]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    application:stop(erlang_python).

init_per_group(tasks, Config) ->
    Config;
init_per_group(Mode, Config) ->
    py_test_util:mode_group(Mode, Config).

end_per_group(_Mode, _Config) ->
    ok.

init_per_testcase(_Case, Config) ->
    case ?config(mode, Config) of
        undefined ->
            Config;
        Mode ->
            {ok, Ctx} = py_context:new(#{mode => Mode}),
            ok = py:exec(Ctx, ?BUSY),
            [{ctx, Ctx} | Config]
    end.

end_per_testcase(_Case, Config) ->
    case ?config(ctx, Config) of
        undefined -> ok;
        Ctx -> py_context:stop(Ctx)
    end.

%% How long the context may take to answer once the call has given up (the interrupt waits for
%% the GIL, which running code hands over every 5 ms): milliseconds on a quiet machine. What
%% fails a case is an interrupt that never lands (the code spins for good), so the bound is
%% generous: a machine busy with other work can keep a context thread waiting for the CPU.
-define(RECOVERY_MS, 30000).

%% --- cases ---------------------------------------------------------------------------------

%% The call returns at its deadline (spin never returns by itself) and the code saw
%% erlang.Interrupted.
timeout_interrupts_busy_loop(Config) ->
    Ctx = ?config(ctx, Config),
    {<<"interrupted">>, Recovery, #{timeout := Timeout, waited := Waited}} =
        timeout_after_start(Ctx, fun(T) -> py:call(Ctx, '__main__', spin, [], #{timeout => T}) end, 100),
    true = Waited >= Timeout,
    ct:pal("timed out after ~b ms (timeout ~b); the context answered ~b ms later", [Waited, Timeout, Recovery]).

caller_exit_interrupts_busy_loop(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    Caller = spawn(fun() -> py:call(Ctx, '__main__', spin, [Self]) end),
    receive <<"running">> -> ok after ?RECOVERY_MS -> ct:fail(spin_not_running) end,
    exit(Caller, kill),
    Recovery = next_answer_ms(Ctx),
    {ok, <<"interrupted">>} = py:eval(Ctx, <<"state">>),
    ct:pal("the context answered ~b ms after its caller was killed", [Recovery]).

%% erlang.Interrupted is a BaseException: `except Exception' does not stop it.
except_exception_does_not_swallow(Config) ->
    Ctx = ?config(ctx, Config),
    {<<"running">>, _, _} =
        timeout_after_start(Ctx, fun(T) -> py:call(Ctx, '__main__', swallow, [], #{timeout => T}) end, 50).

%% Code that catches the exception and goes on is interrupted again, every 100 ms: the three
%% catches (Python's clock) span at least one such period. (Each catch comes before the next
%% interrupt is raised, or the two would be one: the third comes at least 100 ms after the second
%% was raised, so at least 100 ms after the first catch, however late the thread got the CPU.)
caught_interrupt_comes_again(Config) ->
    Ctx = ?config(ctx, Config),
    {3, Recovery, _} =
        timeout_after_start(Ctx, fun(T) -> py:call(Ctx, '__main__', stubborn, [3], #{timeout => T}) end, 50),
    {ok, SpanMs} = py:eval(Ctx, <<"(caught_at[-1] - caught_at[0]) * 1000">>),
    ct:pal("interrupted 3 times: the catches span ~.1f ms; the context answered ~b ms after the timeout",
           [SpanMs, Recovery]),
    true = SpanMs >= 99.0.

%% time.sleep called straight from the request returns to no Python code: the interrupt raised
%% meanwhile must not surface in the next request. (Whether the sleep ran is read on Python's
%% clock: a request that timed out while queued never runs; then the timeout doubles.)
late_interrupt_does_not_leak(Config) ->
    late_interrupt_does_not_leak(?config(ctx, Config), 30).

late_interrupt_does_not_leak(Ctx, Timeout) ->
    {ok, T0} = py:eval(Ctx, <<"time.monotonic()">>),
    {error, timeout} = py:call(Ctx, time, sleep, [0.3], #{timeout => Timeout}),
    {ok, 499500} = py:call(Ctx, '__main__', count, [1000]),
    {ok, 4999950000} = py:call(Ctx, '__main__', count, [100000]),
    {ok, none} = py:eval(Ctx, <<"state">>),
    {ok, Gap} = py:eval(Ctx, <<"time.monotonic() - t0">>, #{t0 => T0}),
    case Gap < 0.3 andalso Timeout < 10000 of
        true ->
            ct:log("the sleep did not run (timeout ~b ms): again", [Timeout]),
            late_interrupt_does_not_leak(Ctx, Timeout * 2);
        false ->
            ok
    end.

%% A blocking system call is not interrupted: the sleep lasts its full length, and the next
%% call, answered after it, sees the length it recorded when it returned.
blocking_call_finishes_first(Config) ->
    Ctx = ?config(ctx, Config),
    {Slept, Recovery, _} =
        timeout_after_start(Ctx, fun(T) -> py:call(Ctx, '__main__', nap, [0.4], #{timeout => T}) end, 30),
    true = is_float(Slept) andalso Slept >= 0.399,
    ct:pal("the 400 ms sleep took ~.1f ms; the next call was answered ~b ms after the timeout",
           [Slept * 1000, Recovery]).

%% Code waiting in the context's own event loop (erlang.run) goes back to Python to be
%% interrupted.
event_loop_wait_interrupted(Config) ->
    Ctx = ?config(ctx, Config),
    {<<"loop interrupted">>, Recovery, _} =
        timeout_after_start(Ctx, fun(T) -> py:call(Ctx, '__main__', wait_in_loop, [], #{timeout => T}) end, 100),
    ct:pal("the context answered ~b ms after the timeout", [Recovery]).

%% A call made from an Erlang callback runs nested in the outer call's Python code: its timeout
%% interrupts only its own code, and the outer call goes on to return.
nested_interrupt_hits_inner_only(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(interrupt_nested, fun([]) -> nested_spin(Ctx, 100) end),
    try
        ok = py:exec(Ctx, <<"def outer():\n    r = erlang.call('interrupt_nested')\n    return ('outer done', r, state)\n">>),
        {ok, {<<"outer done">>, {<<"error">>, <<"timeout">>}, <<"interrupted">>}} =
            py:call(Ctx, '__main__', outer, [], #{timeout => 10000})
    after
        py:unregister_function(interrupt_nested)
    end.

%% The inner call, its timeout doubled until its code ran (see timeout_after_start/3).
nested_spin(Ctx, Timeout) ->
    R = py:call(Ctx, '__main__', spin, [], #{timeout => Timeout}),
    case py:eval(Ctx, <<"state">>) of
        {ok, none} when Timeout < 20000 -> nested_spin(Ctx, Timeout * 2);
        _ -> R
    end.

%% Many timeouts in a row: each interrupt lands, none is left over.
interrupts_repeatedly(Config) ->
    Ctx = ?config(ctx, Config),
    Times = [begin
                 {<<"interrupted">>, Recovery, _} =
                     timeout_after_start(Ctx, fun(T) -> py:call(Ctx, '__main__', spin, [], #{timeout => T}) end, 20),
                 Recovery
             end || _ <- lists:seq(1, 30)],
    {ok, 499500} = py:call(Ctx, '__main__', count, [1000]),
    ct:pal("30 interrupts; recovery ms: min ~b, max ~b", [lists:min(Times), lists:max(Times)]).

%% An import is not interrupted half-way (that would leave a package half-initialised in
%% sys.modules): the interrupt lands after it, and the module ran exactly once.
import_finishes_first(Config) ->
    Ctx = ?config(ctx, Config),
    Dir = ?config(priv_dir, Config),
    Name = "slow_import_" ++ integer_to_list(erlang:unique_integer([positive])),
    ok = file:write_file(filename:join(Dir, Name ++ ".py"),
                         <<"import builtins, time\n"
                           "builtins.__dict__.setdefault('_slow_imports', []).append(__name__)\n"
                           "t = time.monotonic()\n"
                           "while time.monotonic() - t < 0.3:\n"
                           "    pass\n">>),
    {ok, _} = py:eval(Ctx, <<"sys.path.insert(0, d)">>, #{d => list_to_binary(Dir)}),
    {_, _, _} = timeout_after_start(
                  Ctx, fun(T) -> py:call(Ctx, '__main__', import_then_spin, [list_to_binary(Name)], #{timeout => T}) end, 50),
    {ok, true} = py:eval(Ctx, <<"n in sys.modules">>, #{n => list_to_binary(Name)}),
    {ok, 1} = py:eval(Ctx, <<"__import__('builtins')._slow_imports.count(n)">>, #{n => list_to_binary(Name)}).

%% --- tasks of the context's event loop (py:async_call, py:stream_start) ----------------------

-define(TASKS, <<"
import asyncio, erlang
task_state = {}
async def wait_long(key):
    task_state[key] = 'waiting'
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        task_state[key] = 'cancelled'
        raise

async def slow_items(key):
    try:
        yield 1
        await asyncio.sleep(30)
        yield 2
    except asyncio.CancelledError:
        task_state[key] = 'cancelled'
        raise
">>).

%% A coroutine's task is cancelled when async_await gives up on it.
timed_out_task_cancelled(_Config) ->
    ok = py:exec(?TASKS),
    {ok, none} = py:async_await(py:async_call(asyncio, sleep, [0])),  % the loop exists
    Ref = py:async_call('__main__', wait_long, [timed_out]),
    %% the wait starts when async_await is called: the task runs before it gives up
    wait_for_task_state(fun py:eval/2, timed_out, <<"waiting">>),
    {error, timeout} = py:async_await(Ref, 100),
    wait_for_task_state(fun py:eval/2, timed_out, <<"cancelled">>).

%% ... and when the process that started it exits (here on a context of its own).
exited_callers_task_cancelled(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py:exec(Ctx, ?TASKS),
    Caller = spawn(fun() ->
                           _ = py_event_loop:create_task_on(Ctx, '__main__', wait_long, [exited]),
                           timer:sleep(infinity)
                   end),
    Eval = fun(Code, Locals) -> py:eval(Ctx, Code, Locals) end,
    wait_for_task_state(Eval, exited, <<"waiting">>),
    exit(Caller, kill),
    wait_for_task_state(Eval, exited, <<"cancelled">>),
    ok = py_context:stop(Ctx).

%% A stream's task is cancelled by stream_cancel while it waits between items.
cancelled_stream_task_cancelled(_Config) ->
    ok = py:exec(?TASKS),
    {ok, Ref} = py:stream_start('__main__', slow_items, [stream]),
    receive {py_stream, Ref, {data, 1}} -> ok after 5000 -> ct:fail(no_first_item) end,
    ok = py:stream_cancel(Ref),
    wait_for_task_state(fun py:eval/2, stream, <<"cancelled">>).

%% Polls Python's task_state[Key] (with Eval: py:eval/2 or on a context) for up to 30 s.
wait_for_task_state(Eval, Key, Expected) ->
    Reached = fun() -> Eval(<<"task_state.get(k)">>, #{k => atom_to_binary(Key)}) =:= {ok, Expected} end,
    case py_test_util:wait_until(Reached, 30000) of
        true -> ok;
        false -> ct:fail({task_state, Key, Eval(<<"task_state">>, #{}), expected, Expected})
    end.

%% --- helpers -------------------------------------------------------------------------------

now_ms() -> erlang:monotonic_time(millisecond).

%% Makes a call time out after its Python code has started. A call that times out while still
%% queued is cancelled before it runs (right, but it tests nothing); on a machine busy with other
%% work that happens at the short timeouts these cases use. So: Call(Timeout) must give
%% {error, timeout}; once the context answers again, Python's `state' (reset to None first, set
%% by the code when it starts) tells whether the code ran; if not, again with twice the timeout.
%% Returns {State, RecoveryMs, #{timeout, waited}} of the try whose code ran.
timeout_after_start(Ctx, Call, Timeout) ->
    ok = py:exec(Ctx, <<"state = None">>),
    T0 = now_ms(),
    {error, timeout} = Call(Timeout),
    Waited = now_ms() - T0,
    Recovery = next_answer_ms(Ctx),
    case py:eval(Ctx, <<"state">>) of
        {ok, none} when Timeout < 20000 ->
            ct:log("timed out before its code ran (timeout ~b ms): again", [Timeout]),
            timeout_after_start(Ctx, Call, Timeout * 2);
        {ok, State} ->
            {State, Recovery, #{timeout => Timeout, waited => Waited}}
    end.

%% Milliseconds until the context answers a trivial call (failing past ?RECOVERY_MS).
next_answer_ms(Ctx) ->
    T0 = now_ms(),
    {ok, 3} = py:call(Ctx, '__main__', count, [3], #{timeout => ?RECOVERY_MS}),
    now_ms() - T0.
