%% @doc The Erlang side of asyncio and streams: py:async_call/await/gather, spawn_call/await,
%% cast, stream/stream_eval/stream_start/stream_cancel, and py_event_loop, in worker and owngil
%% contexts; timeouts and cancellations leave no message behind.
-module(py_async_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2]).
-export([async_call_coroutine/1, async_call_plain/1, async_errors/1, async_await_timeout/1,
         async_await_misuse/1, gather_concurrent/1, gather_error/1, thousand_async_calls/1,
         spawn_call_await/1, cast_fire_and_forget/1,
         stream_generator/1, stream_async_generator/1, stream_eval/1, stream_errors/1,
         stream_start_sync/1, stream_start_async_incremental/1, stream_start_error/1,
         stream_start_owner/1, stream_cancel_async/1, stream_cancel_sync/1,
         stream_start_no_callbacks/1,
         event_loop_lifecycle/1, event_loop_default_context/1, event_loop_stop_cancels/1, context_stop_answers_tasks/1,
         owngil_async/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [{group, async}, {group, streams}, {group, event_loop}].

groups() ->
    [{async, [], [async_call_coroutine, async_call_plain, async_errors, async_await_timeout,
                  async_await_misuse, gather_concurrent, gather_error, thousand_async_calls,
                  spawn_call_await, cast_fire_and_forget]},
     {streams, [], [stream_generator, stream_async_generator, stream_eval, stream_errors,
                    stream_start_sync, stream_start_async_incremental, stream_start_error,
                    stream_start_owner, stream_cancel_async, stream_cancel_sync,
                    stream_start_no_callbacks]},
     {event_loop, [], [event_loop_lifecycle, event_loop_default_context, event_loop_stop_cancels, context_stop_answers_tasks,
                       owngil_async]}].

-define(DEFS, <<"
import asyncio, itertools, time, erlang
async def slow(x, delay=0.1):
    await asyncio.sleep(delay)
    return x
async def fail(msg):
    await asyncio.sleep(0.01)
    raise ValueError(msg)
def plain(x):
    return x * 2
def squares(n):
    for i in range(n):
        yield i * i
async def ticks(n, delay):
    for i in range(n):
        await asyncio.sleep(delay)
        yield i
def broken(n):
    for i in range(n):
        yield i
    raise RuntimeError('generator broke')
async def forever_async():
    for i in itertools.count():
        await asyncio.sleep(0.001)
        yield i
def forever_sync():
    for i in itertools.count():
        time.sleep(0.001)
        yield i
def tell(pid, x):
    erlang.send(pid, x)
def calls_back():
    yield erlang.call('anything')
async def slow_tell(x, delay, pid):
    erlang.send(pid, ('started', x))
    try:
        await asyncio.sleep(delay)
        return x
    finally:
        erlang.send(pid, ('ended', x))
arrived = {}
async def meet(x, n, key):
    # returns once n calls of meet(_, n, key) run at the same time (10 s at most)
    arrived[key] = arrived.get(key, 0) + 1
    deadline = time.monotonic() + 10
    while arrived[key] < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f'{arrived[key]} of {n} calls ran at once')
        await asyncio.sleep(0.002)
    return x
released = set()
def release(key):
    released.add(key)
async def ticks_gated(key):
    # item 0, then the rest once release(key) was called (30 s at most)
    yield 0
    deadline = time.monotonic() + 30
    while key not in released and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
    for i in range(1, 5):
        yield i
ended = set()
async def forever_async_noted(key):
    try:
        for i in itertools.count():
            await asyncio.sleep(0.001)
            yield i
    finally:
        ended.add(key)
">>).

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    application:stop(erlang_python).

%% Every case defines the helpers in its own process's namespace.
init_per_testcase(_Case, Config) ->
    ok = py:exec(?DEFS),
    Config.

mailbox_empty() ->
    receive Msg -> ct:fail({unexpected_message, Msg}) after 0 -> ok end.

%% After a call of slow_tell(Tag, ...) was given up: once the coroutine has ended (if it ever
%% started: a request that times out while queued never runs) and a later task of the same
%% pool context has run after its done callback, a late reply would be in the mailbox: there
%% is none. No sleep: the order of the context's loop decides.
no_late_reply(Tag) ->
    {ok, 1} = py:async_await(py:async_call(asyncio, sleep, [0, 1])),  % after the task's first step
    receive
        {<<"started">>, Tag} ->
            receive {<<"ended">>, Tag} -> ok after 30000 -> ct:fail({coroutine_not_ended, Tag}) end
    after 0 ->
        ok
    end,
    {ok, 2} = py:async_await(py:async_call(asyncio, sleep, [0, 2])),  % after its done callback
    mailbox_empty().

elapsed(Fun) ->
    T0 = erlang:monotonic_time(millisecond),
    Result = Fun(),
    {erlang:monotonic_time(millisecond) - T0, Result}.

%% --- async ----------------------------------------------------------------------------------

async_call_coroutine(_Config) ->
    Ref = py:async_call('__main__', slow, [<<"done">>]),
    true = is_reference(Ref),
    {ok, <<"done">>} = py:async_await(Ref),
    Ref2 = py:async_call('__main__', slow, [7], #{delay => 0.01}),
    {ok, 7} = py:async_await(Ref2, 5000),
    {ok, 3} = py:async_await(py:async_call(asyncio, sleep, [0.01, 3])),
    mailbox_empty().

async_call_plain(_Config) ->
    {ok, 42} = py:async_await(py:async_call('__main__', plain, [21])),
    {ok, 4.0} = py:async_await(py:async_call(math, sqrt, [16])),
    ok.

async_errors(_Config) ->
    {error, {'ValueError', "no luck"}} = py:async_await(py:async_call('__main__', fail, [<<"no luck">>])),
    {error, {'ModuleNotFoundError', _}} = py:async_await(py:async_call(no_such_module_xyz, f, [])),
    {error, {'TypeError', _}} = py:async_await(py:async_call('__main__', plain, [])),
    {ok, 2} = py:async_await(py:async_call('__main__', plain, [1])),
    ok.

%% A timeout returns {error, timeout} and the late result never reaches the mailbox.
async_await_timeout(_Config) ->
    Ref = py:async_call('__main__', slow_tell, [<<"late">>, 5, self()]),
    {error, timeout} = py:async_await(Ref, 20),
    no_late_reply(<<"late">>),
    {ok, 1} = py:async_await(py:async_call('__main__', slow, [1, 0.01])).

async_await_misuse(_Config) ->
    {'EXIT', {badarg, _}} = (catch py:async_await(make_ref())),
    {'EXIT', {badarg, _}} = (catch py:async_await(not_a_ref)),
    Ref = py:async_call('__main__', plain, [1]),
    {ok, 2} = py:async_await(Ref),
    {'EXIT', {badarg, _}} = (catch py:async_await(Ref)),
    {'EXIT', {badarg, _}} = (catch py:async_call(1, 2, 3)),
    {'EXIT', {badarg, _}} = (catch py:stream_start(builtins, iter, [[1]], #{owner => not_a_pid})),
    {'EXIT', {badarg, _}} = (catch py_event_loop:create_task_on(not_a_pid, asyncio, sleep, [0])),
    {'EXIT', {badarg, _}} = (catch py:async_gather([not_a_call])),
    30000 = py:default_timeout(),
    {ok, 2} = py:async_await(py:async_call('__main__', plain, [1])).

%% Gathered coroutines run at the same time: each of the three returns only once all three have
%% started (meet/3), so gathering them one after the other fails. Three coroutines that each
%% sleep 100 ms take at least 100 ms (the time is a figure: other load only adds to it).
gather_concurrent(_Config) ->
    Key = <<"gather">>,
    {ok, [1, 2, 3]} = py:async_gather([{'__main__', meet, [N, 3, Key]} || N <- [1, 2, 3]]),
    Calls = [{'__main__', slow, [N]} || N <- [1, 2, 3]],
    {Ms, {ok, [1, 2, 3]}} = elapsed(fun() -> py:async_gather(Calls) end),
    ct:pal("3 x 100 ms coroutines gathered in ~p ms", [Ms]),
    true = Ms >= 95,
    {ok, []} = py:async_gather([]),
    mailbox_empty().

gather_error(_Config) ->
    {error, {'ValueError', "second"}} =
        py:async_gather([{'__main__', slow, [1, 0.01]}, {'__main__', fail, [<<"second">>]}, {math, sqrt, [4]}]),
    {error, timeout} = py:async_gather([{'__main__', slow_tell, [<<"gathered">>, 5, self()]}], 20),
    no_late_reply(<<"gathered">>).

thousand_async_calls(_Config) ->
    Refs = [py:async_call('__main__', slow, [N, 0.05]) || N <- lists:seq(1, 1000)],
    {Ms, Results} = elapsed(fun() -> [py:async_await(R) || R <- Refs] end),
    ct:pal("1,000 concurrent coroutines (50 ms each) collected in ~p ms", [Ms]),
    Results = [{ok, N} || N <- lists:seq(1, 1000)],
    ok.

spawn_call_await(_Config) ->
    Ref = py:spawn_call('__main__', plain, [5]),
    {ok, 10} = py:await(Ref),
    {ok, 6} = py:await(py:spawn_call('__main__', plain, [], #{x => 3}), 5000),
    {ok, <<"x">>} = py:await(py:spawn_call('__main__', slow, [x, 0.01])),
    ok.

%% A cast's result (a value, a coroutine's, an error) reaches nobody: once the processes the
%% casts started have ended (each ends when its call has replied), the mailbox is empty.
cast_fire_and_forget(_Config) ->
    ok = py:cast('__main__', tell, [self(), <<"plain cast">>]),
    receive <<"plain cast">> -> ok after 5000 -> ct:fail(no_cast) end,
    Before = processes(),
    ok = py:cast(asyncio, sleep, [0.01]),
    ok = py:cast('__main__', slow, [1, 0.01]),
    ok = py:cast(no_such_module_xyz, f, []),
    Casters = [P || P <- processes() -- Before,
                    erlang:process_info(P, initial_call) =:= {initial_call, {erlang, apply, 2}}],
    3 = length(Casters),
    [receive {'DOWN', M, process, _, _} -> ok after 30000 -> ct:fail(cast_hangs) end
     || M <- [erlang:monitor(process, P) || P <- Casters]],
    mailbox_empty().

%% --- streams ----------------------------------------------------------------------------------

stream_generator(_Config) ->
    {ok, [0, 1, 4, 9, 16]} = py:stream('__main__', squares, [5]),
    {ok, [0, 1]} = py:stream('__main__', squares, [], #{n => 2}),
    {ok, [1, 2, 3]} = py:stream(builtins, iter, [[1, 2, 3]]),
    {ok, []} = py:stream('__main__', squares, [0]).

stream_async_generator(_Config) ->
    {ok, [0, 1, 2]} = py:stream('__main__', ticks, [3, 0.01]).

stream_eval(_Config) ->
    {ok, [0, 1, 4, 9, 16]} = py:stream_eval(<<"(x**2 for x in range(5))">>),
    {ok, [3, 4]} = py:stream_eval(<<"map(lambda x, n=n: x + n, range(2))">>, #{n => 3}),
    {ok, [<<"a">>, <<"b">>]} = py:stream_eval(<<"iter(['a', 'b'])">>).

stream_errors(_Config) ->
    {error, {'TypeError', _}} = py:stream(math, sqrt, [4]),
    {error, {'RuntimeError', "generator broke"}} = py:stream('__main__', broken, [3]),
    {error, {'SyntaxError', _}} = py:stream_eval(<<"(x for">>),
    {'EXIT', {badarg, _}} = (catch py:stream_eval(42)),
    ok.

stream_start_sync(_Config) ->
    {ok, Ref} = py:stream_start('__main__', squares, [4]),
    [{data, 0}, {data, 1}, {data, 4}, {data, 9}, done] = collect(Ref),
    mailbox_empty().

%% Items of an async generator arrive while it is still producing: the generator yields the
%% rest only after this process has seen the first one and released it (with a call the context
%% serves while the stream's task waits).
stream_start_async_incremental(_Config) ->
    Key = <<"incremental">>,
    {ok, Ref} = py:stream_start('__main__', ticks_gated, [Key]),
    receive {py_stream, Ref, {data, 0}} -> ok after 20000 -> ct:fail(no_first_item) end,
    receive {py_stream, Ref, Early} -> ct:fail({item_before_release, Early}) after 0 -> ok end,
    {ok, none} = py:call('__main__', release, [Key]),
    [{data, 1}, {data, 2}, {data, 3}, {data, 4}, done] = collect(Ref),
    mailbox_empty().

stream_start_error(_Config) ->
    {ok, Ref} = py:stream_start('__main__', broken, [2]),
    [{data, 0}, {data, 1}, {error, {'RuntimeError', "generator broke"}}] = collect(Ref),
    {ok, Ref2} = py:stream_start(no_such_module_xyz, f, []),
    [{error, {'ModuleNotFoundError', _}}] = collect(Ref2),
    mailbox_empty().

stream_start_owner(_Config) ->
    Self = self(),
    Owner = spawn_link(fun() -> receive {go, Ref} -> Self ! {got, collect(Ref)} end end),
    {ok, Ref} = py:stream_start('__main__', squares, [3], #{owner => Owner}),
    Owner ! {go, Ref},
    receive {got, Items} -> [{data, 0}, {data, 1}, {data, 4}, done] = Items after 5000 -> ct:fail(owner) end,
    mailbox_empty().

%% After stream_cancel/1 returns no item of the stream arrives, and the context is usable.
%% (The generator's task ends after the cancel; whatever it sent before it ended would be in the
%% mailbox by then.)
stream_cancel_async(_Config) ->
    Key = <<"cancelled">>,
    {ok, Ref} = py:stream_start('__main__', forever_async_noted, [Key]),
    receive {py_stream, Ref, {data, _}} -> ok after 5000 -> ct:fail(no_item) end,
    ok = py:stream_cancel(Ref),
    true = py_test_util:wait_until(fun() -> py:eval(<<"k in ended">>, #{k => Key}) =:= {ok, true} end, 30000),
    mailbox_empty(),
    {ok, 2} = py:call('__main__', plain, [1]).

stream_cancel_sync(_Config) ->
    {ok, Ref} = py:stream_start('__main__', forever_sync, []),
    receive {py_stream, Ref, {data, 3}} -> ok after 5000 -> ct:fail(no_item) end,
    ok = py:stream_cancel(Ref),
    %% A synchronous generator runs in its request: the context serves this call after it.
    {ok, 2} = py:call('__main__', plain, [1]),
    mailbox_empty(),
    ok = py:stream_cancel(Ref).

stream_start_no_callbacks(_Config) ->
    {ok, Ref} = py:stream_start('__main__', calls_back, []),
    [{error, {'RuntimeError', Msg}}] = collect(Ref),
    true = string:find(Msg, "stream_start") =/= nomatch,
    ok.

collect(Ref) ->
    receive
        {py_stream, Ref, done} -> [done];
        {py_stream, Ref, {error, _} = E} -> [E];
        {py_stream, Ref, Item} -> [Item | collect(Ref)]
    after 5000 ->
        [timeout]
    end.

%% --- py_event_loop -------------------------------------------------------------------------------

event_loop_lifecycle(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py_event_loop:start(Ctx),
    ok = py_event_loop:start(Ctx),
    {ok, 3} = py_event_loop:run_on(Ctx, asyncio, sleep, [0.01, 3]),
    {ok, 4} = py_event_loop:run_on(Ctx, asyncio, sleep, [0.01], #{kwargs => #{result => 4}, timeout => 5000}),
    Ref = py_event_loop:create_task_on(Ctx, asyncio, sleep, [0.01, done]),
    {ok, <<"done">>} = py_event_loop:await(Ref),
    ok = py_event_loop:spawn_task_on(Ctx, asyncio, sleep, [0.01]),
    ok = py_event_loop:stop(Ctx),
    %% a later task starts a new loop
    {ok, 5} = py_event_loop:run_on(Ctx, asyncio, sleep, [0, 5]),
    ok = py_context:stop(Ctx),
    mailbox_empty().

%% The forms without a context use the calling process's pool context.
event_loop_default_context(_Config) ->
    ok = py_event_loop:start(),
    {ok, 1} = py_event_loop:run(asyncio, sleep, [0.01, 1]),
    {ok, 2} = py_event_loop:await(py_event_loop:create_task(asyncio, sleep, [0.01, 2]), 5000),
    ok = py_event_loop:spawn_task('__main__', tell, [self(), <<"spawned">>]),
    receive <<"spawned">> -> ok after 5000 -> ct:fail(no_spawned_task) end,
    ok = py_event_loop:stop(),
    mailbox_empty().

event_loop_stop_cancels(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py:exec(Ctx, ?DEFS),
    Ref = py_event_loop:create_task_on(Ctx, '__main__', slow_tell, [<<"t">>, 10, self()]),
    receive {<<"started">>, <<"t">>} -> ok after 20000 -> ct:fail(task_not_started) end,
    ok = py_event_loop:stop(Ctx),
    {error, {'CancelledError', _}} = py_event_loop:await(Ref, 5000),
    receive {<<"ended">>, <<"t">>} -> ok after 5000 -> ct:fail(task_not_ended) end,
    ok = py_context:stop(Ctx).

%% Stopping a context answers the callers of its pending tasks.
context_stop_answers_tasks(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py:exec(Ctx, ?DEFS),
    Tags = [integer_to_binary(N) || N <- lists:seq(1, 5)],
    Refs = [py_event_loop:create_task_on(Ctx, '__main__', slow_tell, [T, 10, self()]) || T <- Tags],
    [receive {<<"started">>, T} -> ok after 20000 -> ct:fail({task_not_started, T}) end || T <- Tags],
    ok = py_context:stop(Ctx),
    [{error, _} = py_event_loop:await(R, 5000) || R <- Refs],
    [receive {<<"ended">>, T} -> ok after 5000 -> ct:fail({task_not_ended, T}) end || T <- Tags],
    mailbox_empty().

owngil_async(_Config) ->
    case py_context:new(#{mode => owngil}) of
        {error, {owngil_unsupported, Version}} ->
            {skip, "OWN_GIL contexts need Python 3.13+; this build uses " ++ binary_to_list(Version)};
        {ok, Ctx} ->
            %% Warm up first (the first task imports asyncio in the new interpreter, which
            %% takes most of the time budget under ASan), then 3 x 100 ms must overlap.
            {ok, 0} = py_event_loop:await(py_event_loop:create_task_on(Ctx, asyncio, sleep, [0, 0])),
            %% The tasks run at the same time: each returns only once all three have started.
            ok = py:exec(Ctx, ?DEFS),
            Met = [py_event_loop:create_task_on(Ctx, '__main__', meet, [N, 3, <<"owngil">>]) || N <- lists:seq(1, 3)],
            [{ok, 1}, {ok, 2}, {ok, 3}] = [py_event_loop:await(R, 20000) || R <- Met],
            Refs = [py_event_loop:create_task_on(Ctx, asyncio, sleep, [0.1, N]) || N <- lists:seq(1, 3)],
            {Ms, Results} = elapsed(fun() -> [py_event_loop:await(R) || R <- Refs] end),
            [{ok, 1}, {ok, 2}, {ok, 3}] = Results,
            ct:pal("3 x 100 ms tasks on an owngil context's loop: ~w ms", [Ms]),
            ok = py_context:stop(Ctx)
    end.
