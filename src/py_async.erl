%% @private
%% @doc Requests whose result comes later: the asynchronous calls (`py:async_call/3',
%% `py:spawn_call/3', `py_event_loop:create_task/3'), gather, cast and the streams.
%%
%% A started call is remembered in the calling process's dictionary under the reference it
%% returned, until it is awaited; its result is the reply of the request (the Python side
%% replies when the coroutine's task finishes, see priv/_erlang_async.py), so a timeout cancels
%% the request and no late reply reaches the mailbox.
-module(py_async).

-export([start/6, await/2, is_pending/1, gather/3, cast/5, stream/5, stream_eval/3, stream_start/5,
         stream_cancel/1]).

-define(CALL_KEY(Tag), {'$py_async', Tag}).
-define(STREAM_KEY(Tag), {'$py_stream', Tag}).
%% Streams started by one process that are remembered (for stream_cancel/1) before finished
%% ones are forgotten.
-define(STREAM_PRUNE_AT, 64).

-type target() :: pool | py_context:context().

%% Starts Module.Function(*Args, **Kwargs) with result mode Mode on Target; returns the
%% reference await/2 takes. A failure to start is kept and returned by await/2.
-spec start(target(), py:py_module(), py:py_func(), list(), map(), py_nif:result_mode()) -> reference().
start(Target, Module, Function, Args, Kwargs, Mode) ->
    Submit = fun(Ref, Ns, Tag) -> py_nif:submit_call(Ref, Ns, Tag, Module, Function, Args, Kwargs, Mode) end,
    case start_with_retry(Target, Submit) of
        {error, context_not_found} when is_pid(Target), Mode =:= async ->
            start_isolated(Target, {async, Module, Function, Args, Kwargs});
        {error, _} = Error ->
            Tag = make_ref(),
            put(?CALL_KEY(Tag), {failed, Error}),
            Tag;
        Pending ->
            Tag = py_request:tag(Pending),
            put(?CALL_KEY(Tag), Pending),
            Tag
    end.

%% A pid that is not an in-process context may be an isolated one (py_isolated): the call runs
%% in its child, a coroutine as a task of the child's loop.
start_isolated(Ctx, Request) ->
    case py_isolated:start_async(Ctx, Request) of
        {ok, {_, Tag} = Pending} ->
            put(?CALL_KEY(Tag), {isolated, Pending}),
            Tag;
        {error, _} = Error ->
            Tag = make_ref(),
            put(?CALL_KEY(Tag), {failed, Error}),
            Tag
    end.

%% A pool context that stopped is replaced: try once more.
start_with_retry(pool, Submit) ->
    case py_request:start_on(pool, Submit) of
        {error, context_stopped} ->
            py_context_router:forget_pick(),
            py_request:start_on(pool, Submit);
        Pending ->
            Pending
    end;
start_with_retry(Ctx, Submit) ->
    py_request:start_on(Ctx, Submit).

%% The result of a call started by this process. badarg for a reference this process did not
%% get from start/6 (or already awaited).
-spec await(reference(), py:timeout_ms()) -> py:py_result().
await(Tag, Timeout) ->
    case erase(?CALL_KEY(Tag)) of
        undefined -> erlang:error(badarg);
        {failed, Error} -> Error;
        {isolated, {Ctx, Alias}} -> py_isolated:wait_async(Ctx, Alias, Timeout);
        Pending -> py_request:wait(Pending, Timeout)
    end.

%% Whether Tag is a call this process started with start/6 and has not awaited yet.
-spec is_pending(reference()) -> boolean().
is_pending(Tag) ->
    get(?CALL_KEY(Tag)) =/= undefined.

%% Starts every call, then waits for all of them (within one Timeout): `{ok, Results}' in the
%% order of Calls, or the first error.
-spec gather(target(), [{py:py_module(), py:py_func(), list()}], py:timeout_ms()) -> py:py_result().
gather(Target, Calls, Timeout) ->
    Tags = [start(Target, M, F, A, #{}, async) || {M, F, A} <- Calls],
    Deadline = py_request:deadline(Timeout),
    Results = [await(Tag, py_request:remaining(Deadline)) || Tag <- Tags],
    case [E || {error, _} = E <- Results] of
        [] -> {ok, [V || {ok, V} <- Results]};
        [Error | _] -> Error
    end.

%% Runs the call, in the calling process's namespace, from a new process that waits for the
%% result and drops it (so no reply reaches the caller).
-spec cast(target(), py:py_module(), py:py_func(), list(), map()) -> ok.
cast(Target, Module, Function, Args, Kwargs) ->
    Submit = fun(Ref, Ns, Tag) -> py_nif:submit_call(Ref, Ns, Tag, Module, Function, Args, Kwargs, async) end,
    case py_request:resolve(Target) of
        {ok, Ref, Ns} ->
            _ = spawn(fun() -> py_request:run(Ref, Ns, infinity, Submit) end),
            ok;
        {error, context_not_found} when is_pid(Target) ->
            %% An isolated context (or none): a coroutine runs to its end as a task of its loop.
            _ = spawn(fun() -> py_isolated:request(Target, {async, Module, Function, Args, Kwargs}, infinity) end),
            ok;
        {error, _} ->
            ok
    end.

%% Collects a generator or async generator: `{ok, Items}'.
-spec stream(target(), py:py_module(), py:py_func(), list(), map()) -> py:py_result().
stream(Target, Module, Function, Args, Kwargs) ->
    await(start(Target, Module, Function, Args, Kwargs, {stream, stream_max_items()}), py:default_timeout()).

%% Evaluates Code and collects the generator it gives: `{ok, Items}'.
-spec stream_eval(target(), binary(), map()) -> py:py_result().
stream_eval(Target, Code, Locals) ->
    py_request:run_on(Target, py:default_timeout(),
                      fun(Ref, Ns, Tag) -> py_nif:submit_eval(Ref, Ns, Tag, Code, Locals, {stream, stream_max_items()}) end).

%% The most items a collected stream may have (app env `stream_max_items', default 1000000;
%% `infinity' for no bound, given to the NIF as 0).
stream_max_items() ->
    case application:get_env(erlang_python, stream_max_items, 1000000) of
        infinity -> 0;
        N when is_integer(N), N > 0, N < 1 bsl 64 -> N;
        Other -> erlang:error({invalid_app_env, stream_max_items, Other})
    end.

%% Starts sending the items of a generator (or async generator) to Owner as
%% `{py_stream, Ref, {data, Item}}', then `{py_stream, Ref, done}' or
%% `{py_stream, Ref, {error, Reason}}', through a relay that keeps at most about two windows
%% (app env `stream_window') of them in Owner's mailbox (py_stream_relay).
-spec stream_start(target(), py:py_module(), py:py_func(), list(), #{owner => pid(), kwargs => map()}) ->
    {ok, reference()} | {error, term()}.
stream_start(Target, Module, Function, Args, Opts) ->
    Owner = maps:get(owner, Opts, self()),
    Kwargs = maps:get(kwargs, Opts, #{}),
    is_pid(Owner) andalso node(Owner) =:= node() andalso is_map(Kwargs) orelse erlang:error(badarg),
    prune_streams(),
    Window = stream_window(),
    Relay = py_stream_relay:start(Owner, Window),
    Submit = fun(Ref, Ns, Tag) ->
                     py_nif:submit_call(Ref, Ns, Tag, Module, Function, Args, Kwargs, {stream_start, Relay, Window})
             end,
    case start_with_retry(Target, Submit) of
        {error, _} = Error ->
            py_stream_relay:run(Relay, failed, undefined),
            Error;
        Pending ->
            Tag = py_request:tag(Pending),
            py_stream_relay:run(Relay, Pending, Tag),
            put(?STREAM_KEY(Tag), {Pending, Relay}),
            {ok, Tag}
    end.

%% Items a stream may have sent and not had acknowledged (app env `stream_window', default 64).
stream_window() ->
    case application:get_env(erlang_python, stream_window, 64) of
        N when is_integer(N), N > 0, N < 1 bsl 32 -> N;
        Other -> erlang:error({invalid_app_env, stream_window, Other})
    end.

%% Stops a stream this process started: no message of it arrives after this returns (those
%% already sent are taken out of the mailbox when this process is the owner).
-spec stream_cancel(reference()) -> ok.
stream_cancel(Tag) ->
    case erase(?STREAM_KEY(Tag)) of
        undefined ->
            ok;
        {_Pending, Relay} ->
            ok = py_stream_relay:cancel(Relay),
            flush_stream(Tag)
    end.

flush_stream(Tag) ->
    receive
        {py_stream, Tag, _} -> flush_stream(Tag)
    after 0 ->
        ok
    end.

%% Forgets the streams that have finished, once a process has many remembered.
prune_streams() ->
    Keys = [K || {?STREAM_KEY(_) = K, _} <- get()],
    case length(Keys) >= ?STREAM_PRUNE_AT of
        true -> _ = [erase(K) || K <- Keys, py_request:finished(element(1, get(K)))], ok;
        false -> ok
    end,
    ok.
