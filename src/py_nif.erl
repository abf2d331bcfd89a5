%% @private
%% @doc Stubs of the C++ NIF library (priv/py_nif.so). Use the py and py_context modules.
-module(py_nif).

-export([load/2, runtime_status/0, context_new/2, context_stop/2, context_stop_now/1, namespace_new/1,
         submit_call/8, submit_eval/6, submit_exec/4, submit_reset/3, cancel/2, callback_reply/3,
         fd_ready/2, request_finished/1, poll_reply/1, stop_polling/1, stream_ack/3, python_version/0, is_ref/1,
         object_owner/1, thread_callback_reply/2, callback_names/2, context_interrupt/1, context_stats/1,
         set_request_timings/1, context_backtrace/3, set_map_builder/1, build_map/1,
         shared_dict_new/0, shared_dict_get/3, shared_dict_set/3, shared_dict_del/2, shared_dict_keys/1,
         shared_dict_destroy/1, buffer_new/1, buffer_write/2, buffer_write_dirty/2, buffer_close/1]).
-export([subinterp_supported/0]).
-export([channel_new/2, channel_send/2, channel_close/1, channel_info/1, channel_try_receive/1,
         channel_notify/2, channel_unnotify/2]).
-nifs([channel_new/2, channel_send/2, channel_close/1, channel_info/1, channel_try_receive/1,
       channel_notify/2, channel_unnotify/2]).
-export([dup_fd/1]).
-nifs([dup_fd/1]).
-export([code_name_atom/1]).
-nifs([code_name_atom/1]).
-export([loop_signal/1]).
-nifs([loop_signal/1]).
-export([isolated_ref_new/3, isolated_ref_info/1]).
-nifs([isolated_ref_new/3, isolated_ref_info/1]).

-nifs([object_owner/1, callback_reply/3, submit_reset/3, context_new/2, context_stop/2, context_stop_now/1,
       namespace_new/1,
       submit_call/8, submit_eval/6, submit_exec/4, cancel/2, fd_ready/2, request_finished/1, poll_reply/1, stop_polling/1,
       python_version/0, is_ref/1, runtime_status/0, thread_callback_reply/2, callback_names/2, context_interrupt/1,
       context_stats/1, set_request_timings/1, context_backtrace/3, stream_ack/3, set_map_builder/1, build_map/1,
       shared_dict_new/0, shared_dict_get/3, shared_dict_set/3, shared_dict_del/2, shared_dict_keys/1,
       shared_dict_destroy/1, buffer_new/1, buffer_write/2, buffer_write_dirty/2, buffer_close/1]).

-type context_ref() :: reference().
-type namespace_ref() :: reference().
-type request_ref() :: reference().
%% {stream, Max}: at most Max items collected (0: no bound).
%% {stream_start, Receiver, Window}: Window items at most sent and not acknowledged (0: no bound).
-type result_mode() :: plain | async | stream | {stream, non_neg_integer()} | {stream_start, pid(), non_neg_integer()}.
-export_type([context_ref/0, namespace_ref/0, request_ref/0, result_mode/0]).

%% Loads priv/py_nif.so with the Python home chosen by py_runtime (<<>>: the build's own). The
%% library is loaded on demand by py_runtime:load/0 when the application starts, not by an
%% on_load hook, so that a missing Python is an error of the application, not of the code
%% loader (which would stop a release from booting). ok when it is already loaded.
-spec load(file:filename(), binary()) -> ok | {error, term()}.
load(PrivDir, PythonHome) ->
    case erlang:load_nif(filename:join(PrivDir, "py_nif"), {unicode:characters_to_binary(PrivDir), PythonHome}) of
        ok -> ok;
        {error, {reload, _}} -> ok;
        {error, _} = Error -> Error
    end.

%% Whether this Python has subinterpreters with their own GIL (erlang_python 4.x's code asks this
%% module): plain Erlang, {@link py:subinterp_supported/0}.
-spec subinterp_supported() -> boolean().
subinterp_supported() -> py:subinterp_supported().

%% Whether CPython started when the library loaded.
-spec runtime_status() -> ok | {error, binary()}.
runtime_status() -> erlang:nif_error(nif_not_loaded).

-spec context_new(atom(), normal | auto | batch | low | idle) -> {ok, context_ref()} | {error, term()}.
context_new(_Mode, _Priority) -> erlang:nif_error(nif_not_loaded).

-spec context_stop(context_ref(), reference()) -> ok.
context_stop(_Ctx, _Tag) -> erlang:nif_error(nif_not_loaded).

%% After context_stop/2: every request of the context not answered yet gets
%% {error, context_stopped}, and its running code is interrupted until the thread exits.
-spec context_stop_now(context_ref()) -> ok.
context_stop_now(_Ctx) -> erlang:nif_error(nif_not_loaded).

-spec namespace_new(context_ref()) -> namespace_ref().
namespace_new(_Ctx) -> erlang:nif_error(nif_not_loaded).

-spec submit_call(context_ref(), namespace_ref() | undefined, reference(), term(), term(), list(), map(),
                  result_mode()) ->
    request_ref() | {error, context_stopped}.
submit_call(_Ctx, _Ns, _Tag, _M, _F, _A, _Kw, _Mode) -> erlang:nif_error(nif_not_loaded).

-spec submit_eval(context_ref(), namespace_ref() | undefined, reference(), iodata(), map(), result_mode()) ->
    request_ref() | {error, context_stopped}.
submit_eval(_Ctx, _Ns, _Tag, _Code, _Locals, _Mode) -> erlang:nif_error(nif_not_loaded).

%% The process that builds maps of more than 128 keys for the contexts' threads (py_map_builder).
-spec set_map_builder(pid() | undefined) -> ok.
set_map_builder(_Pid) -> erlang:nif_error(nif_not_loaded).

%% Builds the map of a `{py_map_job, Job}' message (a big one on a dirty CPU scheduler): false
%% when the asking thread gave up waiting.
-spec build_map(reference()) -> boolean().
build_map(_Job) -> erlang:nif_error(nif_not_loaded).

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

%% The receiver of a py:stream_start stream has taken N more items (see py_stream_relay).
-spec stream_ack(context_ref(), request_ref(), pos_integer()) -> ok.
stream_ack(_Ctx, _Request, _N) -> erlang:nif_error(nif_not_loaded).

%% A readiness notification of enif_select ({select, Watch, _, Mode}) for the event loop that
%% registered Watch.
-spec fd_ready(reference(), ready_input | ready_output) -> ok.
fd_ready(_Watch, _Mode) -> erlang:nif_error(nif_not_loaded).

%% OS signal Signal reached erl_signal_server (py_signal_handler): marks it pending in every
%% event loop that asked for it (loop.add_signal_handler); returns how many did. `sigchld'
%% (caught by the library itself while a loop asks for it) is accepted too.
-spec loop_signal(atom()) -> non_neg_integer().
loop_signal(_Signal) -> erlang:nif_error(nif_not_loaded).

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

%% An exception class name as an atom by the in-process rule (an existing atom, a new one while
%% the node's budget of 10,000 lasts), else the binary itself.
-spec code_name_atom(binary()) -> atom() | binary().
code_name_atom(_Name) -> erlang:nif_error(nif_not_loaded).

%% Answers an erlang.call made from a Python thread that is no context's (py_thread_callback).
-spec thread_callback_reply(reference(), term()) -> ok | already_answered.
thread_callback_reply(_Call, _Result) -> erlang:nif_error(nif_not_loaded).

%% Keeps the NIF's copy of the registered callback names (for `hasattr(erlang, Name)').
-spec callback_names(add | remove | clear, binary() | none) -> ok.
callback_names(_Op, _Name) -> erlang:nif_error(nif_not_loaded).

%% Interrupts the Python code context Ctx runs now (py:interrupt/1).
-spec context_interrupt(context_ref()) -> ok | not_running.
context_interrupt(_Ctx) -> erlang:nif_error(nif_not_loaded).

%% A snapshot of a context's counters and histograms (py_observe turns it into percentiles).
-spec context_stats(context_ref()) -> #{atom() => term()}.
context_stats(_Ctx) -> erlang:nif_error(nif_not_loaded).

%% Whether requests are timed from now on (app env `request_timings', py:set_request_timings/1).
-spec set_request_timings(boolean()) -> ok.
set_request_timings(_On) -> erlang:nif_error(nif_not_loaded).

%% Asks for the Python stack of the code a context runs; after ok, {py_backtrace, Tag, Result}
%% follows.
-spec context_backtrace(context_ref(), reference(), request_ref() | undefined) -> ok | {error, context_stopped}.
context_backtrace(_Ctx, _Tag, _Request) -> erlang:nif_error(nif_not_loaded).

%% SharedDict (py:shared_dict_*): badarg for a handle that is not a live dict.
-spec shared_dict_new() -> {ok, reference()}.
shared_dict_new() -> erlang:nif_error(nif_not_loaded).

-spec shared_dict_get(reference(), term(), term()) -> term().
shared_dict_get(_Dict, _Key, _Default) -> erlang:nif_error(nif_not_loaded).

-spec shared_dict_set(reference(), term(), term()) -> ok.
shared_dict_set(_Dict, _Key, _Value) -> erlang:nif_error(nif_not_loaded).

-spec shared_dict_del(reference(), term()) -> ok.
shared_dict_del(_Dict, _Key) -> erlang:nif_error(nif_not_loaded).

-spec shared_dict_keys(reference()) -> [term()].
shared_dict_keys(_Dict) -> erlang:nif_error(nif_not_loaded).

-spec shared_dict_destroy(reference()) -> ok.
shared_dict_destroy(_Dict) -> erlang:nif_error(nif_not_loaded).

%% py_buffer: a byte buffer of the given initial capacity.
-spec buffer_new(non_neg_integer()) -> {ok, reference()}.
buffer_new(_Capacity) -> erlang:nif_error(nif_not_loaded).

-spec buffer_write(reference(), binary()) -> ok | {error, closed | pinned | out_of_memory}.
buffer_write(_Buffer, _Data) -> erlang:nif_error(nif_not_loaded).

%% buffer_write/2 on a dirty CPU scheduler, for large binaries.
-spec buffer_write_dirty(reference(), binary()) -> ok | {error, closed | pinned | out_of_memory}.
buffer_write_dirty(_Buffer, _Data) -> erlang:nif_error(nif_not_loaded).

-spec buffer_close(reference()) -> ok.
buffer_close(_Buffer) -> erlang:nif_error(nif_not_loaded).

%% Channels (py_channel, py_byte_channel).
-spec channel_new(terms | bytes, non_neg_integer()) -> {ok, reference()}.
channel_new(_Kind, _MaxSize) -> erlang:nif_error(nif_not_loaded).

-spec channel_send(reference(), term()) -> ok | busy | {error, closed}.
channel_send(_Channel, _Term) -> erlang:nif_error(nif_not_loaded).

-spec channel_close(reference()) -> ok.
channel_close(_Channel) -> erlang:nif_error(nif_not_loaded).

-spec channel_info(reference()) -> #{size := non_neg_integer(), max_size := non_neg_integer(), closed := boolean()}.
channel_info(_Channel) -> erlang:nif_error(nif_not_loaded).

-spec channel_try_receive(reference()) -> {ok, term()} | {error, empty | closed}.
channel_try_receive(_Channel) -> erlang:nif_error(nif_not_loaded).

%% Msg to the caller at the next send or close (`ready': there is something now).
-spec channel_notify(reference(), term()) -> ok | ready.
channel_notify(_Channel, _Msg) -> erlang:nif_error(nif_not_loaded).

-spec channel_unnotify(reference(), term()) -> ok.
channel_unnotify(_Channel, _Msg) -> erlang:nif_error(nif_not_loaded).

-spec dup_fd(integer()) -> {ok, non_neg_integer()} | {error, term()}.
dup_fd(_Fd) -> erlang:nif_error(nif_not_loaded).

%% A handle for object Id of the child incarnation Serial of isolated context Ctx; when it is
%% garbage collected, Ctx gets `{'$py_isolated_release', Serial, Id}'.
-spec isolated_ref_new(pid(), non_neg_integer(), non_neg_integer()) -> reference().
isolated_ref_new(_Ctx, _Serial, _Id) -> erlang:nif_error(nif_not_loaded).

-spec isolated_ref_info(term()) -> {pid(), non_neg_integer(), non_neg_integer()} | false.
isolated_ref_info(_Term) -> erlang:nif_error(nif_not_loaded).
