%% @private
%% @doc Running one request on a context: submit it, wait for the reply while answering the
%% Erlang callbacks its Python code makes, cancel it at the deadline, keep the last traceback.
%% Also the per-process namespaces that pool calls run in.
-module(py_request).

-export([run/4, namespace/2, new_namespace/1, last_traceback/0]).

-define(TRACEBACK_KEY, '$py_last_traceback').
-define(NS_KEY(Ctx), {'$py_namespace', Ctx}).

-type submit() :: fun((py_nif:context_ref(), py_nif:namespace_ref() | undefined, reference()) ->
                          py_nif:request_ref() | {error, term()}).

%% Submits a request to context Ref (in namespace Ns, or the context's shared one for
%% `undefined') and waits for its result for at most Timeout ms.
-spec run(py_nif:context_ref(), py_nif:namespace_ref() | undefined, py:timeout_ms(), submit()) -> term().
run(Ref, Ns, Timeout, Submit) ->
    Tag = make_ref(),
    case Submit(Ref, Ns, Tag) of
        {error, _} = Error -> Error;
        Request -> await(Ref, Tag, Request, deadline(Timeout), 0)
    end.

%% Waits for the reply to Request, running the Erlang callbacks its Python code asks for
%% meanwhile (Answered: the id of the last one). At the deadline the request is cancelled and
%% nothing it sends later reaches the mailbox.
await(Ref, Tag, Request, Deadline, Answered) ->
    receive
        {Tag, Result} -> Result;
        {Tag, Result, Traceback} ->
            put(?TRACEBACK_KEY, Traceback),
            Result;
        {py_callback, Tag, Id, Name, Args} ->
            _ = py_nif:callback_reply(Ref, Id, py_callback:run(Name, Args)),
            await(Ref, Tag, Request, Deadline, Id)
    after remaining(Deadline) ->
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
        {error, timeout}
    end.

deadline(infinity) -> infinity;
deadline(Timeout) -> erlang:monotonic_time(millisecond) + Timeout.

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
            Ns;
        Ns ->
            Ns
    end.

%% A fresh, empty namespace on context Ref.
-spec new_namespace(py_nif:context_ref()) -> py_nif:namespace_ref().
new_namespace(Ref) ->
    py_nif:namespace_new(Ref).

%% The formatted traceback of the last Python exception this process received, if any.
-spec last_traceback() -> binary() | undefined.
last_traceback() ->
    get(?TRACEBACK_KEY).
