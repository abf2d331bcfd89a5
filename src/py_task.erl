%% @private
%% @doc The tasks of `py_event_loop:create_task/3,4' and `create_task_on/4,5', whose result
%% arrives as a message, as in erlang_python 3.x and 4.x: `{async_result, Ref, Result}' (so a
%% caller may `receive' it itself instead of calling `py_event_loop:await/1,2').
%%
%% The request is made by a small relay process, linked to the caller, which waits for the
%% reply (answering the Erlang callbacks of the task meanwhile) and sends it on. The caller
%% exiting kills the relay, which cancels the task; an await that times out kills the relay
%% too, waits for it to be gone and takes a result it may have sent out of the mailbox, so no
%% late result arrives after `{error, timeout}'.
-module(py_task).

-export([start/6, start_queued/6, await/2]).

-define(RELAY_KEY(Ref), {'$py_task', Ref}).
%% Tasks of one process remembered (for await/2) before those whose relay is gone are forgotten.
-define(PRUNE_AT, 64).

%% Starts Module.Function(*Args, **Kwargs) on Target (`pool': the calling process's pool
%% context, in its namespace; or a context pid) with result mode Mode; returns the reference
%% of the result message.
-spec start(pool | py_context:context(), py:py_module(), py:py_func(), list(), map(), py_nif:result_mode()) ->
    reference().
start(Target, Module, Function, Args, Kwargs, Mode) ->
    Caller = self(),
    Ref = make_ref(),
    prune(),
    Submit = fun(CtxRef, Ns, Tag) -> py_nif:submit_call(CtxRef, Ns, Tag, Module, Function, Args, Kwargs, Mode) end,
    case resolve(Target) of
        {ok, CtxRef, Ns} ->
            Relay = spawn_link(fun() -> relay(Caller, Ref, CtxRef, Ns, Submit) end),
            put(?RELAY_KEY(Ref), Relay);
        {error, _} = Error ->
            Caller ! {async_result, Ref, Error}
    end,
    Ref.

%% A pool context picked earlier that has stopped since is picked again first.
resolve(pool) ->
    {Pid, _} = py_context_router:pick(),
    case py_context:lookup(Pid) of
        {ok, _, _} -> ok;
        error -> py_context_router:forget_pick()
    end,
    py_request:resolve(pool);
resolve(Ctx) ->
    py_request:resolve(Ctx).

%% start/6 on a context, returning once the request is in the context's queue: a request
%% made after this call returns (py_context:stop_loop/2) is served after it.
-spec start_queued(py_context:context(), py:py_module(), py:py_func(), list(), map(), py_nif:result_mode()) ->
    reference().
start_queued(Ctx, Module, Function, Args, Kwargs, Mode) ->
    Caller = self(),
    Ref = make_ref(),
    prune(),
    Submit = fun(CtxRef, Ns, Tag) -> py_nif:submit_call(CtxRef, Ns, Tag, Module, Function, Args, Kwargs, Mode) end,
    case resolve(Ctx) of
        {ok, CtxRef, Ns} ->
            Relay = spawn_link(fun() -> queued_relay(Caller, Ref, CtxRef, Ns, Submit) end),
            Mon = erlang:monitor(process, Relay),
            receive
                {queued, Ref} -> erlang:demonitor(Mon, [flush]);
                {'DOWN', Mon, process, Relay, _} -> ok
            end,
            put(?RELAY_KEY(Ref), Relay);
        {error, _} = Error ->
            Caller ! {async_result, Ref, Error}
    end,
    Ref.

queued_relay(Caller, Ref, CtxRef, Ns, Submit) ->
    Pending = py_request:start(CtxRef, Ns, Submit),
    Caller ! {queued, Ref},
    Result = case Pending of
                 {error, _} = Error -> Error;
                 _ -> py_request:wait(Pending, infinity)
             end,
    Caller ! {async_result, Ref, Result},
    unlink(Caller).

relay(Caller, Ref, CtxRef, Ns, Submit) ->
    Result = py_request:run(CtxRef, Ns, infinity, Submit),
    Caller ! {async_result, Ref, Result},
    unlink(Caller).

%% The result of a task this process started, waiting at most Timeout ms. A reference this
%% process did not get from start/6 (or already awaited) is waited for as a message all the
%% same, as erlang_python does.
-spec await(reference(), py:timeout_ms()) -> py:py_result().
await(Ref, Timeout) ->
    case erase(?RELAY_KEY(Ref)) of
        undefined ->
            receive {async_result, Ref, Result} -> Result
            after Timeout -> {error, timeout}
            end;
        Relay ->
            receive {async_result, Ref, Result} -> Result
            after Timeout ->
                stop_relay(Relay),
                receive {async_result, Ref, _} -> ok after 0 -> ok end,
                {error, timeout}
            end
    end.

%% Kills the relay (which cancels the task) and waits until it is gone: whatever it sent
%% before is in the mailbox then.
stop_relay(Relay) ->
    unlink(Relay),
    Mon = erlang:monitor(process, Relay),
    exit(Relay, kill),
    receive {'DOWN', Mon, process, Relay, _} -> ok end.

%% Forgets the tasks whose relay is gone (their result was received, or is in the mailbox),
%% once a process has many remembered.
prune() ->
    Keys = [K || {?RELAY_KEY(_) = K, _} <- get()],
    case length(Keys) >= ?PRUNE_AT of
        true -> _ = [erase(K) || K <- Keys, not is_process_alive(get(K))], ok;
        false -> ok
    end.
