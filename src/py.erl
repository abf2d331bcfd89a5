%% @doc Calling Python from Erlang.
%%
%% Every function here queues a request to a context's thread and waits in `receive' for the
%% reply, so no scheduler is blocked while Python runs. Calls that name no context go to the
%% default pool (see {@link py_context_router}) and run in a namespace of the calling process's
%% own; calls that name a context made with {@link py_context:new/1} run in that context's
%% shared namespace.
%%
%% Python exceptions come back as `{error, {TypeName, Message}}' with TypeName an atom and
%% Message a string; the traceback of the last one is kept for {@link last_traceback/0}.
-module(py).

-export([call/3, call/4, call/5,
         eval/1, eval/2, eval/3,
         exec/1, exec/2,
         context/0, context/1,
         execution_mode/0, version/0, is_ref/1, last_traceback/0,
         register_function/2, register_function/3, unregister_function/1]).

-export_type([py_module/0, py_func/0, py_result/0, timeout_ms/0]).

-type py_module() :: atom() | binary() | string().
-type py_func() :: atom() | binary() | string().
-type py_result() :: {ok, term()} | {error, term()}.
-type timeout_ms() :: non_neg_integer() | infinity.
-type call_opts() :: #{kwargs => map(), timeout => timeout_ms()}.

-define(DEFAULT_TIMEOUT, 30000).
-define(TRACEBACK_KEY, '$py_last_traceback').
-define(NS_KEY(Ctx), {'$py_namespace', Ctx}).

%% --- call ---------------------------------------------------------------------------------

%% @doc Calls `Module.Function(*Args)' on the default pool (timeout 30 s).
-spec call(py_module(), py_func(), list()) -> py_result().
call(Module, Function, Args) ->
    call(Module, Function, Args, #{}).

%% @doc `call(Ctx, Module, Function, Args)' calls on context Ctx (no timeout);
%% `call(Module, Function, Args, Kwargs)' calls on the default pool with keyword arguments.
-spec call(py_context:context(), py_module(), py_func(), list()) -> py_result();
          (py_module(), py_func(), list(), map()) -> py_result().
call(Ctx, Module, Function, Args) when is_pid(Ctx) ->
    call(Ctx, Module, Function, Args, #{});
call(Module, Function, Args, Kwargs) ->
    call(Module, Function, Args, Kwargs, ?DEFAULT_TIMEOUT).

%% @doc `call(Ctx, Module, Function, Args, #{kwargs => Map, timeout => T})' on context Ctx;
%% `call(Module, Function, Args, Kwargs, Timeout)' on the default pool. A call that times out
%% returns `{error, timeout}' and its late result never reaches the mailbox.
-spec call(py_context:context(), py_module(), py_func(), list(), call_opts()) -> py_result();
          (py_module(), py_func(), list(), map(), timeout_ms()) -> py_result().
call(Ctx, Module, Function, Args, Opts) when is_pid(Ctx), is_map(Opts) ->
    check_call(Module, Function, Args),
    Kwargs = maps:get(kwargs, Opts, #{}),
    Timeout = maps:get(timeout, Opts, infinity),
    check_map(Kwargs),
    check_timeout(Timeout),
    on_context(Ctx, Timeout, fun(Ref, Ns, Tag) ->
                                    py_nif:submit_call(Ref, Ns, Tag, Module, Function, Args, Kwargs)
                            end);
call(Module, Function, Args, Kwargs, Timeout) ->
    check_call(Module, Function, Args),
    check_map(Kwargs),
    check_timeout(Timeout),
    on_pool(Timeout, fun(Ref, Ns, Tag) ->
                             py_nif:submit_call(Ref, Ns, Tag, Module, Function, Args, Kwargs)
                     end).

%% --- eval ---------------------------------------------------------------------------------

%% @doc Evaluates a Python expression on the default pool.
-spec eval(iodata()) -> py_result().
eval(Code) ->
    eval(Code, #{}).

%% @doc `eval(Ctx, Code)' on context Ctx; `eval(Code, Locals)' on the default pool with local
%% variables (a map with atom or binary keys).
-spec eval(py_context:context(), iodata()) -> py_result();
          (iodata(), map()) -> py_result().
eval(Ctx, Code) when is_pid(Ctx) ->
    eval(Ctx, Code, #{});
eval(Code, Locals) ->
    eval(Code, Locals, ?DEFAULT_TIMEOUT).

%% @doc `eval(Ctx, Code, Locals)' on context Ctx; `eval(Code, Locals, Timeout)' on the pool.
-spec eval(py_context:context(), iodata(), map()) -> py_result();
          (iodata(), map(), timeout_ms()) -> py_result().
eval(Ctx, Code, Locals) when is_pid(Ctx) ->
    Src = source(Code),
    check_map(Locals),
    on_context(Ctx, infinity, fun(Ref, Ns, Tag) -> py_nif:submit_eval(Ref, Ns, Tag, Src, Locals) end);
eval(Code, Locals, Timeout) ->
    Src = source(Code),
    check_map(Locals),
    check_timeout(Timeout),
    on_pool(Timeout, fun(Ref, Ns, Tag) -> py_nif:submit_eval(Ref, Ns, Tag, Src, Locals) end).

%% --- exec ---------------------------------------------------------------------------------

%% @doc Runs Python statements on the default pool, in the calling process's namespace.
-spec exec(iodata()) -> ok | {error, term()}.
exec(Code) ->
    Src = source(Code),
    on_pool(infinity, fun(Ref, Ns, Tag) -> py_nif:submit_exec(Ref, Ns, Tag, Src) end).

%% @doc Runs Python statements on context Ctx.
-spec exec(py_context:context(), iodata()) -> ok | {error, term()}.
exec(Ctx, Code) when is_pid(Ctx) ->
    Src = source(Code),
    on_context(Ctx, infinity, fun(Ref, Ns, Tag) -> py_nif:submit_exec(Ref, Ns, Tag, Src) end);
exec(_, _) ->
    erlang:error(badarg).

%% --- information ----------------------------------------------------------------------------

%% @doc The pool context the calling process uses.
-spec context() -> py_context:context().
context() ->
    py_context_router:get_context().

%% @doc Pool context number N (1-based).
-spec context(pos_integer()) -> py_context:context().
context(N) ->
    py_context_router:get_context(N).

%% @doc The mode of the default pool's contexts (app env `context_mode').
-spec execution_mode() -> worker | owngil.
execution_mode() ->
    case application:get_env(erlang_python, context_mode, worker) of
        owngil -> owngil;
        _ -> worker
    end.

%% @doc The version of the embedded Python, e.g. `<<"3.13.0">>'.
-spec version() -> binary().
version() ->
    py_nif:python_version().

%% @doc Whether Term is an opaque reference to a Python object.
-spec is_ref(term()) -> boolean().
is_ref(Term) ->
    py_nif:is_ref(Term).

%% @doc The formatted traceback of the last Python exception this process received, if any.
-spec last_traceback() -> binary() | undefined.
last_traceback() ->
    get(?TRACEBACK_KEY).

%% --- callbacks ------------------------------------------------------------------------------

%% @doc Makes `Fun' callable from Python as `erlang.call(Name, ...)', `erlang.Name(...)' or
%% `from erlang import Name'. Fun receives the Python arguments as a list; its result is
%% converted back. An exception in Fun raises `erlang.ErlangError(Class, Reason)' in Python.
-spec register_function(atom() | binary(), fun((list()) -> term())) -> ok.
register_function(Name, Fun) when (is_atom(Name) orelse is_binary(Name)), is_function(Fun, 1) ->
    py_callback:register(Name, Fun);
register_function(_, _) ->
    erlang:error(badarg).

%% @doc Like register_function/2, calling `Module:Function(Args)'.
-spec register_function(atom() | binary(), module(), atom()) -> ok.
register_function(Name, Module, Function)
  when (is_atom(Name) orelse is_binary(Name)), is_atom(Module), is_atom(Function) ->
    py_callback:register(Name, {Module, Function});
register_function(_, _, _) ->
    erlang:error(badarg).

%% @doc Removes a function registered with register_function/2,3.
-spec unregister_function(atom() | binary()) -> ok.
unregister_function(Name) when is_atom(Name); is_binary(Name) ->
    py_callback:unregister(Name);
unregister_function(_) ->
    erlang:error(badarg).

%% --- internals --------------------------------------------------------------------------------

%% A call on the default pool, in the calling process's namespace on its context. A context
%% that stopped since it was picked is replaced once.
on_pool(Timeout, Submit) ->
    {Ctx, Ref} = py_context_router:pick(),
    case run(Ref, namespace(Ctx, Ref), Timeout, Submit) of
        {error, context_stopped} ->
            py_context_router:forget_pick(),
            {Ctx1, Ref1} = py_context_router:pick(),
            run(Ref1, namespace(Ctx1, Ref1), Timeout, Submit);
        Result ->
            Result
    end.

on_context(Ctx, Timeout, Submit) ->
    case py_context:lookup(Ctx) of
        {ok, Ref, own} -> run(Ref, undefined, Timeout, Submit);
        {ok, Ref, pool} -> run(Ref, namespace(Ctx, Ref), Timeout, Submit);
        error -> {error, context_not_found}
    end.

%% The calling process's own namespace on a context, created at first use; it goes away with
%% the process (the process dictionary holds the only reference).
namespace(Ctx, Ref) ->
    case get(?NS_KEY(Ctx)) of
        undefined ->
            Ns = py_nif:namespace_new(Ref),
            put(?NS_KEY(Ctx), Ns),
            Ns;
        Ns ->
            Ns
    end.

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

source(Code) when is_binary(Code) -> Code;
source(Code) when is_list(Code) ->
    case unicode:characters_to_binary(Code) of
        Bin when is_binary(Bin) -> Bin;
        _ -> erlang:error(badarg)
    end;
source(_) -> erlang:error(badarg).

check_call(M, F, A) ->
    (is_name(M) andalso is_name(F) andalso is_list(A)) orelse erlang:error(badarg).

is_name(N) -> is_atom(N) orelse is_binary(N) orelse is_list(N).

check_map(M) -> is_map(M) orelse erlang:error(badarg).

check_timeout(infinity) -> ok;
check_timeout(T) when is_integer(T), T >= 0 -> ok;
check_timeout(_) -> erlang:error(badarg).
