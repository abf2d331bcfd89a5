%% @doc The task functions of erlang_python 4.x's `py_event_loop_pool', under that name.
%%
%% Here there is no separate pool of event loops: every context of the pool has its own loop,
%% and a task started without a context runs on the calling process's pool context, always the
%% same one for the same process (so the tasks of one process run in the order they were
%% started, as in 4.x). Each function is the one of the same name in {@link py_event_loop};
%% code written for 4.x that calls `py_event_loop_pool:create_task/3' and
%% `py_event_loop_pool:await/1' runs unchanged.
-module(py_event_loop_pool).

-export([create_task/3, create_task/4, run/3, run/4, spawn_task/3, spawn_task/4, await/1,
         await/2]).

%% @doc {@link py_event_loop:create_task/3}: starts a task, returns the reference to await.
-spec create_task(py:py_module(), py:py_func(), list()) -> reference().
create_task(Module, Function, Args) ->
    py_event_loop:create_task(Module, Function, Args).

%% @doc {@link py_event_loop:create_task/4}: with keyword arguments.
-spec create_task(py:py_module(), py:py_func(), list(), map()) -> reference().
create_task(Module, Function, Args, Kwargs) ->
    py_event_loop:create_task(Module, Function, Args, Kwargs).

%% @doc {@link py_event_loop:run/3}: a task's result, waited for at most 5 s.
-spec run(py:py_module(), py:py_func(), list()) -> py:py_result().
run(Module, Function, Args) ->
    py_event_loop:run(Module, Function, Args).

%% @doc {@link py_event_loop:run/4}: options `kwargs' and `timeout' (ms, default 5000).
-spec run(py:py_module(), py:py_func(), list(), map()) -> py:py_result().
run(Module, Function, Args, Opts) ->
    py_event_loop:run(Module, Function, Args, Opts).

%% @doc {@link py_event_loop:spawn_task/3}: starts a task whose result nobody waits for.
-spec spawn_task(py:py_module(), py:py_func(), list()) -> ok.
spawn_task(Module, Function, Args) ->
    py_event_loop:spawn_task(Module, Function, Args).

%% @doc {@link py_event_loop:spawn_task/4}: with keyword arguments.
-spec spawn_task(py:py_module(), py:py_func(), list(), map()) -> ok.
spawn_task(Module, Function, Args, Kwargs) ->
    py_event_loop:spawn_task(Module, Function, Args, Kwargs).

%% @doc {@link py_event_loop:await/1}: a task's result (timeout 5 s).
-spec await(reference()) -> py:py_result().
await(Ref) ->
    py_event_loop:await(Ref).

%% @doc {@link py_event_loop:await/2}: a task's result, waiting at most Timeout ms.
-spec await(reference(), py:timeout_ms()) -> py:py_result().
await(Ref, Timeout) ->
    py_event_loop:await(Ref, Timeout).
