%% @doc The event loop of a context: an `ErlangEventLoop' (priv/_erlang_loop.py) that the
%% context runs between its requests, with its I/O readiness and timers driven by the BEAM.
%%
%% Every context has at most one, created at first use (`start/1', or the first
%% {@link py:async_call/3} that runs a coroutine there). Coroutines run on it as tasks, many at
%% once; the loop costs no thread and no CPU while it waits. `stop/1' cancels its tasks (their
%% callers get `{error, {'CancelledError', _}}') and closes it; stopping the context does too.
%%
%% ```
%% Ctx = py:context(),
%% ok = py_event_loop:start(Ctx),
%% {ok, 3} = py_event_loop:run(Ctx, asyncio, sleep, [0.01, 3]),
%% Ref = py_event_loop:create_task(Ctx, asyncio, sleep, [0.01, done]),
%% {ok, <<"done">>} = py_event_loop:await(Ref),
%% ok = py_event_loop:stop(Ctx).
%% '''
-module(py_event_loop).

-export([start/0, start/1, stop/0, stop/1,
         run/3, run/4, run/5, create_task/3, create_task/4, create_task/5,
         await/1, await/2, spawn_task/3, spawn_task/4]).

-type target() :: py_context:context().

%% @doc Starts the event loop of the calling process's pool context.
-spec start() -> ok | {error, term()}.
start() ->
    start(py:context()).

%% @doc Starts the event loop of context Ctx (nothing to do when it runs already).
-spec start(target()) -> ok | {error, term()}.
start(Ctx) when is_pid(Ctx) ->
    on_loop(Ctx, context_loop);
start(_) ->
    erlang:error(badarg).

%% @doc Stops the event loop of the calling process's pool context.
-spec stop() -> ok | {error, term()}.
stop() ->
    stop(py:context()).

%% @doc Cancels the tasks of context Ctx's event loop and closes it (a later task starts a
%% new one).
-spec stop(target()) -> ok | {error, term()}.
stop(Ctx) when is_pid(Ctx) ->
    on_loop(Ctx, stop_context_loop);
stop(_) ->
    erlang:error(badarg).

%% @doc Runs `Module.Function(*Args)' as a task of the calling process's pool context's loop
%% and returns its result (timeout 30 s).
-spec run(py:py_module(), py:py_func(), list()) -> py:py_result().
run(Module, Function, Args) ->
    await(create_task(Module, Function, Args)).

%% @doc {@link run/3} on context Ctx.
-spec run(target(), py:py_module(), py:py_func(), list()) -> py:py_result().
run(Ctx, Module, Function, Args) ->
    await(create_task(Ctx, Module, Function, Args)).

%% @doc {@link run/4} with options: `kwargs', `timeout' (ms, default 30000).
-spec run(target(), py:py_module(), py:py_func(), list(), #{kwargs => map(), timeout => py:timeout_ms()}) ->
    py:py_result().
run(Ctx, Module, Function, Args, Opts) when is_map(Opts) ->
    await(create_task(Ctx, Module, Function, Args, Opts), maps:get(timeout, Opts, py:default_timeout())).

%% @doc Starts `Module.Function(*Args)' as a task of the calling process's pool context's loop;
%% {@link await/1} collects the result.
-spec create_task(py:py_module(), py:py_func(), list()) -> reference().
create_task(Module, Function, Args) ->
    py:async_call(Module, Function, Args).

%% @doc {@link create_task/3} on context Ctx.
-spec create_task(target(), py:py_module(), py:py_func(), list()) -> reference().
create_task(Ctx, Module, Function, Args) ->
    create_task(Ctx, Module, Function, Args, #{}).

%% @doc {@link create_task/4} with options: `kwargs'.
-spec create_task(target(), py:py_module(), py:py_func(), list(), #{kwargs => map()}) -> reference().
create_task(Ctx, Module, Function, Args, Opts) when is_pid(Ctx), is_list(Args), is_map(Opts) ->
    Kwargs = maps:get(kwargs, Opts, #{}),
    is_map(Kwargs) orelse erlang:error(badarg),
    py_async:start(Ctx, Module, Function, Args, Kwargs, async);
create_task(_, _, _, _, _) ->
    erlang:error(badarg).

%% @doc The result of a task (timeout 30 s).
-spec await(reference()) -> py:py_result().
await(Ref) ->
    py:async_await(Ref).

%% @doc The result of a task, waiting at most Timeout ms.
-spec await(reference(), py:timeout_ms()) -> py:py_result().
await(Ref, Timeout) ->
    py:async_await(Ref, Timeout).

%% @doc Starts a task on context Ctx and ignores its result.
-spec spawn_task(target(), py:py_module(), py:py_func(), list()) -> ok.
spawn_task(Ctx, Module, Function, Args) ->
    spawn_task(Ctx, Module, Function, Args, #{}).

%% @doc Starts a task on the calling process's pool context and ignores its result.
-spec spawn_task(py:py_module(), py:py_func(), list()) -> ok.
spawn_task(Module, Function, Args) ->
    py:cast(Module, Function, Args).

spawn_task(Ctx, Module, Function, Args, Kwargs) when is_pid(Ctx), is_list(Args), is_map(Kwargs) ->
    py_async:cast(Ctx, Module, Function, Args, Kwargs);
spawn_task(_, _, _, _, _) ->
    erlang:error(badarg).

%% Runs a function of priv/_erlang_async.py that manages the context's loop.
on_loop(Ctx, Function) ->
    case py:call(Ctx, '_erlang_async', Function, []) of
        {ok, _} -> ok;
        {error, _} = Error -> Error
    end.
