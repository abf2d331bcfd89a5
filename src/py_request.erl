%% @private
%% @doc Running one request on a context: submit it, wait for the reply while answering the
%% Erlang callbacks its Python code makes, cancel it at the deadline, keep the last traceback.
%% Also the per-process namespaces that pool calls run in.
-module(py_request).

-export([run/4, start/3, start_on/2, resolve/1, run_on/3, wait/2, tag/1, cancel/1, finished/1, ack_items/2,
         namespace/2, new_namespace/1, last_namespace_context/0, last_traceback/0, deadline/1, remaining/1,
         callback_deadline/0]).
-export_type([pending/0]).

%% How many times a caller polls for the reply of a request that went to an idle, spinning
%% worker before it waits in `receive' (each poll is one NIF call: ~100 polls cover the
%% microseconds a short call takes; a longer call then costs the caller that much CPU once).
-define(POLLS, 100).
-define(TRACEBACK_KEY, '$py_last_traceback').
-define(NS_KEY(Ctx), {'$py_namespace', Ctx}).
-define(LAST_NS_KEY, '$py_last_namespace').
-define(CALLBACK_DEADLINE_KEY, '$py_callback_deadline').

-type submit() :: fun((py_nif:context_ref(), py_nif:namespace_ref() | undefined, reference()) ->
                          py_nif:request_ref() | {error, term()}).

%% A request on its way: the context, the reply tag, the request's handle.
-opaque pending() :: {py_nif:context_ref(), reference(), py_nif:request_ref()}.

%% Submits a request to context Ref (in namespace Ns, or the context's shared one for
%% `undefined') and waits for its result for at most Timeout ms.
-spec run(py_nif:context_ref(), py_nif:namespace_ref() | undefined, py:timeout_ms(), submit()) -> term().
run(Ref, Ns, Timeout, Submit) ->
    wait_started(start(Ref, Ns, Submit), Timeout).

%% Submits a request without waiting; wait/2 (in the same process) collects its result.
-spec start(py_nif:context_ref(), py_nif:namespace_ref() | undefined, submit()) -> pending() | {error, term()}.
start(Ref, Ns, Submit) ->
    Tag = make_ref(),
    case Submit(Ref, Ns, Tag) of
        {error, _} = Error -> Error;
        Request -> {Ref, Tag, Request}
    end.

%% Starts a request on the default pool (the calling process's context, in its own namespace)
%% or on context Ctx (in its shared namespace, or the caller's own for a pool context).
-spec start_on(pool | {pool, atom()} | pid(), submit()) -> pending() | {error, term()}.
start_on(Target, Submit) ->
    case resolve(Target) of
        {ok, Ref, Ns} -> start(Ref, Ns, Submit);
        {error, _} = Error -> Error
    end.

%% The context handle and namespace a call on Target uses from the calling process.
-spec resolve(pool | {pool, atom()} | pid()) ->
    {ok, py_nif:context_ref(), py_nif:namespace_ref() | undefined}
    | {error, context_not_found | {pool_not_started, atom()}}.
resolve(pool) ->
    {Ctx, Ref} = py_context_router:pick(),
    {ok, Ref, namespace(Ctx, Ref)};
resolve({pool, Pool}) ->
    case py_context_router:pick(Pool) of
        {error, _} = Error -> Error;
        {Ctx, Ref} -> {ok, Ref, namespace(Ctx, Ref)}
    end;
resolve(Ctx) when is_pid(Ctx) ->
    case py_context:lookup(Ctx) of
        {ok, Ref, own} -> {ok, Ref, undefined};
        {ok, Ref, pool} -> {ok, Ref, namespace(Ctx, Ref)};
        error -> {error, context_not_found}
    end.

%% start_on/2, then wait/2.
-spec run_on(pool | {pool, atom()} | pid(), py:timeout_ms(), submit()) -> term().
run_on(Target, Timeout, Submit) ->
    wait_started(start_on(Target, Submit), Timeout).

wait_started({error, _} = Error, _Timeout) -> Error;
wait_started(Pending, Timeout) -> wait(Pending, Timeout).

%% The tag the reply of a started request carries.
-spec tag(pending()) -> reference().
tag({_, Tag, _}) -> Tag.

%% Waits for the result of a started request for at most Timeout ms (then cancels it).
-spec wait(pending(), py:timeout_ms()) -> term().
wait({Ref, Tag, Request}, Timeout) ->
    poll(Ref, Tag, Request, deadline(Timeout), ?POLLS).

%% Polls for a reply the worker stores in the request (no message, no scheduler wake-up) while
%% that is worth it, then falls back to await/5; stop_polling/1 decides atomically which way
%% the reply comes, so it comes exactly once.
poll(Ref, Tag, Request, Deadline, N) ->
    case py_nif:poll_reply(Request) of
        pending when N > 0 -> poll(Ref, Tag, Request, Deadline, N - 1);
        pending ->
            case py_nif:stop_polling(Request) of
                pending -> await(Ref, Tag, Request, Deadline, 0);
                Reply -> unwrap(Tag, Reply)
            end;
        wait ->
            %% Not polled for: the worker sends the reply.
            await(Ref, Tag, Request, Deadline, 0);
        Reply -> unwrap(Tag, Reply)
    end.

%% The result of a final reply message; a traceback it carries is kept for last_traceback/0.
unwrap(Tag, {Tag, Result}) -> Result;
unwrap(Tag, {Tag, Result, Traceback}) ->
    put(?TRACEBACK_KEY, Traceback),
    interrupted(Result).

%% The code stopped by py:interrupt/1 (erlang.Interrupted, uncaught): {error, interrupted}.
interrupted({error, {'Interrupted', _}}) -> {error, interrupted};
interrupted(Result) -> Result.

%% Waits for the reply to Request, running the Erlang callbacks its Python code asks for
%% meanwhile (Answered: the id of the last one). At the deadline the request is cancelled and
%% nothing it sends later reaches the mailbox. With a slow-request threshold set
%% (py:set_slow_request_ms/1), a request that has not replied by then is reported once.
await(Ref, Tag, Request, Deadline, Answered) ->
    await(Ref, Tag, Request, Deadline, Answered, slow_at()).

await(Ref, Tag, Request, Deadline, Answered, Slow) ->
    receive
        {Tag, _} = Reply -> unwrap(Tag, Reply);
        {Tag, _, _} = Reply -> unwrap(Tag, Reply);
        {py_callback, Tag, Id, Name, Args} ->
            _ = py_nif:callback_reply(Ref, Id, run_callback(Name, Args, Deadline)),
            await(Ref, Tag, Request, Deadline, Id, Slow)
    after wait_ms(Deadline, Slow) ->
        case slow_first(Deadline, Slow) of
            {true, Ms} ->
                ok = py_observe:report_slow(Ref, Request, Ms),
                await(Ref, Tag, Request, Deadline, Answered, infinity);
            false ->
                cancel_at_deadline(Ref, Tag, Request, Answered)
        end
    end.

%% Runs a callback with the deadline of the request that asked for it visible to it
%% (callback_deadline/0; the outer one again after it, for nested requests).
run_callback(Name, Args, Deadline) ->
    Outer = put(?CALLBACK_DEADLINE_KEY, Deadline),
    try
        py_callback:run(Name, Args)
    after
        restore_callback_deadline(Outer)
    end.

restore_callback_deadline(undefined) -> erase(?CALLBACK_DEADLINE_KEY);
restore_callback_deadline(Outer) -> put(?CALLBACK_DEADLINE_KEY, Outer).

%% In an Erlang callback that Python code asked for: the deadline of that request (monotonic
%% ms), so a callback that waits can give up in time. `infinity' outside callbacks.
-spec callback_deadline() -> integer() | infinity.
callback_deadline() ->
    case get(?CALLBACK_DEADLINE_KEY) of
        undefined -> infinity;
        Deadline -> Deadline
    end.

%% When a slow request is to be reported: {At, Ms} (monotonic ms), or infinity.
slow_at() ->
    case py_observe:slow_request_ms() of
        infinity -> infinity;
        Ms -> {erlang:monotonic_time(millisecond) + Ms, Ms}
    end.

wait_ms(Deadline, infinity) -> remaining(Deadline);
wait_ms(Deadline, {SlowAt, _}) -> min(remaining(Deadline), remaining(SlowAt)).

%% Whether the wait ended at the slow-request time rather than at the deadline.
slow_first(_Deadline, infinity) -> false;
slow_first(infinity, {_, Ms}) -> {true, Ms};
slow_first(Deadline, {SlowAt, Ms}) when SlowAt < Deadline -> {true, Ms};
slow_first(_Deadline, _Slow) -> false.

cancel_at_deadline(Ref, Tag, Request, Answered) ->
    case py_nif:cancel(Ref, Request) of
        ok -> ok;
        replied ->
            %% The worker won the race: its reply is already on its way; take it out.
            receive
                {Tag, _} -> ok;
                {Tag, _, _} -> ok
            end;
        {in_callback, Answered} ->
            ok;
        {in_callback, Id} ->
            %% Callback Id was sent just before the cancel; take it out.
            receive {py_callback, Tag, Id, _, _} -> ok end
    end,
    {error, timeout}.

%% Cancels a started request that makes no Erlang callbacks (a stream): nothing it sends after
%% this returns reaches a mailbox.
-spec cancel(pending()) -> ok.
cancel({Ref, _, Request}) ->
    _ = py_nif:cancel(Ref, Request),
    ok.

%% Acknowledges N items of a started py:stream_start request (see py_stream_relay).
-spec ack_items(pending(), pos_integer()) -> ok.
ack_items({Ref, _, Request}, N) ->
    py_nif:stream_ack(Ref, Request, N).

%% Whether a started request has replied or been cancelled.
-spec finished(pending()) -> boolean().
finished({_, _, Request}) ->
    py_nif:request_finished(Request).

%% The monotonic time (ms) Timeout from now, and the time left until such a deadline.
-spec deadline(py:timeout_ms()) -> integer() | infinity.
deadline(infinity) -> infinity;
deadline(Timeout) -> erlang:monotonic_time(millisecond) + Timeout.

-spec remaining(integer() | infinity) -> py:timeout_ms().
remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

%% The calling process's own namespace on context Ctx, created at first use; it goes away with
%% the process (the process dictionary holds the only reference).
-spec namespace(pid(), py_nif:context_ref()) -> py_nif:namespace_ref().
namespace(Ctx, Ref) ->
    case get(?NS_KEY(Ctx)) of
        undefined ->
            Ns = new_namespace(Ref),
            put(?NS_KEY(Ctx), Ns),
            put(?LAST_NS_KEY, Ctx),
            Ns;
        Ns ->
            Ns
    end.

%% The pool context where the calling process made its latest namespace, if it made one.
-spec last_namespace_context() -> pid() | undefined.
last_namespace_context() ->
    get(?LAST_NS_KEY).

%% A fresh, empty namespace on context Ref.
-spec new_namespace(py_nif:context_ref()) -> py_nif:namespace_ref().
new_namespace(Ref) ->
    py_nif:namespace_new(Ref).

%% The formatted traceback of the last Python exception this process received, if any.
-spec last_traceback() -> binary() | undefined.
last_traceback() ->
    get(?TRACEBACK_KEY).
