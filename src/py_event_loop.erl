%% @doc The event loop of a context: an `ErlangEventLoop' (priv/_erlang_loop.py) that the
%% context runs between its requests, with its I/O readiness and timers driven by the BEAM.
%%
%% Every context has at most one, created at first use (`start/1', or the first task that runs
%% a coroutine there). Coroutines run on it as tasks, many at once; the loop costs no thread and
%% no CPU while it waits. `stop/1' cancels its tasks (their callers get
%% `{error, {'CancelledError', _}}') and closes it; stopping the context does too.
%%
%% The functions without a context (`run/3,4', `create_task/3,4', `spawn_task/3,4', `exec/1',
%% `eval/1') work as in erlang_python 3.x and 4.x: on the calling process's pool context, in
%% its own namespace there (so a coroutine function defined with `exec/1' is found as
%% `'__main__''). `run/3,4' and `create_task/3,4' go to the pool context where the process last
%% made its namespace, so what it defined with `py:exec(py:context(N), Code)' is found too.
%% The `_on' functions take a context first.
%%
%% ```
%% Ctx = py:context(),
%% ok = py_event_loop:start(Ctx),
%% {ok, 3} = py_event_loop:run_on(Ctx, asyncio, sleep, [0.01, 3]),
%% Ref = py_event_loop:create_task_on(Ctx, asyncio, sleep, [0.01, done]),
%% {ok, <<"done">>} = py_event_loop:await(Ref),
%% ok = py_event_loop:stop(Ctx).
%% '''
-module(py_event_loop).

-include("py_timeout.hrl").

-export([start/0, start/1, stop/0, stop/1,
         run/3, run/4, create_task/3, create_task/4, await/1, await/2, spawn_task/3, spawn_task/4,
         exec/1, eval/1,
         run_on/4, run_on/5, create_task_on/4, create_task_on/5, spawn_task_on/4, spawn_task_on/5]).

-define(AWAIT_TIMEOUT, 5000).

-type target() :: py_context:context().
-type run_opts() :: #{kwargs => map(), timeout => py:timeout_ms()}.

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

%% --- without a context: the calling process's pool context -------------------------------------

%% @doc Runs `Module.Function(*Args)' as a task and returns its result (timeout 5 s).
-spec run(py:py_module(), py:py_func(), list()) -> py:py_result().
run(Module, Function, Args) ->
    run(Module, Function, Args, #{}).

%% @doc {@link run/3} with options: `kwargs', `timeout' (ms, default 5000). At the timeout the
%% task is cancelled and `{error, timeout}' returned.
-spec run(py:py_module(), py:py_func(), list(), run_opts()) -> py:py_result().
run(Module, Function, Args, Opts) when is_map(Opts) ->
    await(create_task(Module, Function, Args, maps:get(kwargs, Opts, #{})),
          maps:get(timeout, Opts, ?AWAIT_TIMEOUT));
run(_, _, _, _) ->
    erlang:error(badarg).

%% @doc Starts `Module.Function(*Args)' as a task (a coroutine function's coroutine on the
%% loop; any other function is simply called). Its result arrives as a message
%% `{async_result, Ref, Result}'; {@link await/1} or {@link await/2}, in the same process,
%% receives it. The task is cancelled when the calling process exits.
-spec create_task(py:py_module(), py:py_func(), list()) -> reference().
create_task(Module, Function, Args) ->
    create_task(Module, Function, Args, #{}).

%% @doc {@link create_task/3} with keyword arguments.
-spec create_task(py:py_module(), py:py_func(), list(), map()) -> reference().
create_task(Module, Function, Args, Kwargs) when is_list(Args), is_map(Kwargs) ->
    check_names(Module, Function),
    py_task:start(pool, Module, Function, Args, Kwargs, async);
create_task(_, _, _, _) ->
    erlang:error(badarg).

%% @doc The result of a task (timeout 5 s).
-spec await(reference()) -> py:py_result().
await(Ref) ->
    await(Ref, ?AWAIT_TIMEOUT).

%% @doc The result of a task, waiting at most Timeout ms: after `{error, timeout}' the task is
%% cancelled and its late result never reaches the mailbox. Also takes the references of
%% `py:async_call/3,4' and `py:spawn_call/3,4,5'.
-spec await(reference(), py:timeout_ms()) -> py:py_result().
await(Ref, Timeout) when is_reference(Ref), ?IS_TIMEOUT(Timeout) ->
    case py_async:is_pending(Ref) of
        true -> py:async_await(Ref, Timeout);
        false -> py_task:await(Ref, Timeout)
    end;
await(_, _) ->
    erlang:error(badarg).

%% @doc Starts a task and ignores its result.
-spec spawn_task(py:py_module(), py:py_func(), list()) -> ok.
spawn_task(Module, Function, Args) ->
    spawn_task(Module, Function, Args, #{}).

%% @doc {@link spawn_task/3} with keyword arguments.
-spec spawn_task(py:py_module(), py:py_func(), list(), map()) -> ok.
spawn_task(Module, Function, Args, Kwargs) ->
    py:cast(Module, Function, Args, Kwargs).

%% @doc Runs Python statements in the calling process's namespace on its pool context, where
%% the tasks of create_task/3 run (`py:exec/1').
-spec exec(iodata()) -> ok | {error, term()}.
exec(Code) ->
    py:exec(Code).

%% @doc Evaluates an expression in that namespace (`py:eval/1').
-spec eval(iodata()) -> py:py_result().
eval(Code) ->
    py:eval(Code).

%% --- on a given context ----------------------------------------------------------------------

%% @doc {@link run/3} on context Ctx.
-spec run_on(target(), py:py_module(), py:py_func(), list()) -> py:py_result().
run_on(Ctx, Module, Function, Args) ->
    run_on(Ctx, Module, Function, Args, #{}).

%% @doc {@link run/4} on context Ctx: options `kwargs', `timeout' (ms, default 5000).
-spec run_on(target(), py:py_module(), py:py_func(), list(), run_opts()) -> py:py_result().
run_on(Ctx, Module, Function, Args, Opts) when is_map(Opts) ->
    await(create_task_on(Ctx, Module, Function, Args, Opts), maps:get(timeout, Opts, ?AWAIT_TIMEOUT));
run_on(_, _, _, _, _) ->
    erlang:error(badarg).

%% @doc {@link create_task/3} on context Ctx (in its shared namespace; a pool context runs it
%% in the calling process's namespace).
-spec create_task_on(target(), py:py_module(), py:py_func(), list()) -> reference().
create_task_on(Ctx, Module, Function, Args) ->
    create_task_on(Ctx, Module, Function, Args, #{}).

%% @doc {@link create_task_on/4} with options: `kwargs'.
-spec create_task_on(target(), py:py_module(), py:py_func(), list(), #{kwargs => map(), atom() => term()}) ->
    reference().
create_task_on(Ctx, Module, Function, Args, Opts) when is_pid(Ctx), is_list(Args), is_map(Opts) ->
    Kwargs = maps:get(kwargs, Opts, #{}),
    is_map(Kwargs) orelse erlang:error(badarg),
    check_names(Module, Function),
    py_task:start(Ctx, Module, Function, Args, Kwargs, async);
create_task_on(_, _, _, _, _) ->
    erlang:error(badarg).

%% @doc {@link spawn_task/3} on context Ctx.
-spec spawn_task_on(target(), py:py_module(), py:py_func(), list()) -> ok.
spawn_task_on(Ctx, Module, Function, Args) ->
    spawn_task_on(Ctx, Module, Function, Args, #{}).

%% @doc {@link spawn_task_on/4} with keyword arguments.
-spec spawn_task_on(target(), py:py_module(), py:py_func(), list(), map()) -> ok.
spawn_task_on(Ctx, Module, Function, Args, Kwargs) when is_pid(Ctx) ->
    py:cast(Ctx, Module, Function, Args, Kwargs);
spawn_task_on(_, _, _, _, _) ->
    erlang:error(badarg).

check_names(Module, Function) ->
    (is_name(Module) andalso is_name(Function)) orelse erlang:error(badarg).

is_name(N) -> is_atom(N) orelse is_binary(N) orelse is_list(N).

%% Runs a function of priv/_erlang_async.py that manages the context's loop.
on_loop(Ctx, Function) ->
    %% An isolated context's loop is in its child (priv/_erlang_isolated_loop.py).
    Module = case py_isolated:is_isolated(Ctx) of
                 true -> '_erlang_isolated_loop';
                 false -> '_erlang_async'
             end,
    case py:call(Ctx, Module, Function, []) of
        {ok, _} -> ok;
        {error, _} = Error -> Error
    end.
