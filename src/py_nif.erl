%% @private
%% @doc Stubs of the C++ NIF library (priv/py_nif.so). Use the py and py_context modules.
-module(py_nif).

-export([context_new/2, context_stop/2, namespace_new/1,
         submit_call/8, submit_eval/6, submit_exec/4, submit_reset/3, cancel/2, callback_reply/3,
         fd_ready/2, request_finished/1, poll_reply/1, stop_polling/1, python_version/0, is_ref/1, object_owner/1]).

-nifs([object_owner/1, callback_reply/3, submit_reset/3, context_new/2, context_stop/2, namespace_new/1,
       submit_call/8, submit_eval/6, submit_exec/4, cancel/2, fd_ready/2, request_finished/1, poll_reply/1, stop_polling/1,
       python_version/0, is_ref/1]).

-on_load(load/0).

-type context_ref() :: reference().
-type namespace_ref() :: reference().
-type request_ref() :: reference().
-type result_mode() :: plain | async | stream | {stream_start, pid()}.
-export_type([context_ref/0, namespace_ref/0, request_ref/0, result_mode/0]).

-spec load() -> ok | {error, term()}.
load() ->
    Priv = priv_dir(),
    erlang:load_nif(filename:join(Priv, "py_nif"), unicode:characters_to_binary(Priv)).

priv_dir() ->
    case code:priv_dir(erlang_python) of
        {error, bad_name} ->
            filename:join(filename:dirname(filename:dirname(code:which(?MODULE))), "priv");
        Dir ->
            Dir
    end.

-spec context_new(atom(), normal | auto | batch | low | idle) -> {ok, context_ref()} | {error, term()}.
context_new(_Mode, _Priority) -> erlang:nif_error(nif_not_loaded).

-spec context_stop(context_ref(), reference()) -> ok.
context_stop(_Ctx, _Tag) -> erlang:nif_error(nif_not_loaded).

-spec namespace_new(context_ref()) -> namespace_ref().
namespace_new(_Ctx) -> erlang:nif_error(nif_not_loaded).

-spec submit_call(context_ref(), namespace_ref() | undefined, reference(), term(), term(), list(), map(),
                  result_mode()) ->
    request_ref() | {error, context_stopped}.
submit_call(_Ctx, _Ns, _Tag, _M, _F, _A, _Kw, _Mode) -> erlang:nif_error(nif_not_loaded).

-spec submit_eval(context_ref(), namespace_ref() | undefined, reference(), iodata(), map(), result_mode()) ->
    request_ref() | {error, context_stopped}.
submit_eval(_Ctx, _Ns, _Tag, _Code, _Locals, _Mode) -> erlang:nif_error(nif_not_loaded).

%% Whether a request has replied or was cancelled.
-spec request_finished(request_ref()) -> boolean().
request_finished(_Request) -> erlang:nif_error(nif_not_loaded).

%% The final reply of a request if its worker stored it for the polling caller, else `pending';
%% `wait' when polling is not worth it (the request did not go to an idle, spinning worker: its
%% reply comes as a message). After a `pending' the reply is stored instead of sent, until
%% stop_polling/1.
-spec poll_reply(request_ref()) -> tuple() | pending | wait.
poll_reply(_Request) -> erlang:nif_error(nif_not_loaded).

%% Ends polling: the stored reply, or `pending' when it will come as a message.
-spec stop_polling(request_ref()) -> tuple() | pending.
stop_polling(_Request) -> erlang:nif_error(nif_not_loaded).

%% A readiness notification of enif_select ({select, Watch, _, Mode}) for the event loop that
%% registered Watch.
-spec fd_ready(reference(), ready_input | ready_output) -> ok.
fd_ready(_Watch, _Mode) -> erlang:nif_error(nif_not_loaded).

-spec submit_exec(context_ref(), namespace_ref() | undefined, reference(), iodata()) ->
    request_ref() | {error, context_stopped}.
submit_exec(_Ctx, _Ns, _Tag, _Code) -> erlang:nif_error(nif_not_loaded).

-spec submit_reset(context_ref(), undefined, reference()) -> request_ref() | {error, context_stopped}.
submit_reset(_Ctx, _Ns, _Tag) -> erlang:nif_error(nif_not_loaded).

-spec cancel(context_ref(), request_ref()) -> ok | replied | {in_callback, non_neg_integer()}.
cancel(_Ctx, _Req) -> erlang:nif_error(nif_not_loaded).

-spec callback_reply(context_ref(), non_neg_integer(), term()) -> ok | {error, context_stopped}.
callback_reply(_Ctx, _Id, _Result) -> erlang:nif_error(nif_not_loaded).

-spec python_version() -> binary().
python_version() -> erlang:nif_error(nif_not_loaded).

-spec object_owner(reference()) -> main | {context, context_ref()} | gone.
object_owner(_Ref) -> erlang:nif_error(nif_not_loaded).

-spec is_ref(term()) -> boolean().
is_ref(_Term) -> erlang:nif_error(nif_not_loaded).
