%% @doc Contexts: each one is an OS thread that runs all Python code sent to it.
%%
%% A context is named by the pid of a small process that owns it (and is supervised under
%% `py_context_sup'). Calls do not pass through that process: `py' finds the context's
%% handle in a registry table and queues the request straight to the context's thread, which
%% replies straight to the caller. The owning process only ties the context's lifetime to the
%% process that asked for it: when the owner exits, or `stop/1' is called, the context stops.
%%
%% A context made with `new/1' has one namespace shared by every process that uses it.
-module(py_context).
-behaviour(gen_server).

-export([new/1, stop/1, reset/1, create_local_env/1, call/7, eval/5, exec/3]).
-export([start_link/1, lookup/1, any_worker/0, owngil_refs/0, init_registry/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([context/0, mode/0]).

-type context() :: pid().
-type mode() :: worker | owngil.

-define(REGISTRY, py_context_registry).
-define(STOP_DEADLINE, 5000).

-record(state, {ref :: py_nif:context_ref(),
                owner_mon :: reference() | undefined,
                stopped = false :: boolean()}).

%% @doc Starts a new context owned by the calling process.
%%
%% Options: `mode': `worker' (the default: a thread on the main interpreter, sharing its GIL)
%% or `owngil' (a subinterpreter with its own GIL, Python 3.13+; older Pythons give
%% `{error, {owngil_unsupported, Version}}'). An unknown mode gives
%% `{error, {invalid_mode, Mode}}'. The context stops when the calling process exits.
-spec new(#{mode => term()}) -> {ok, context()} | {error, term()}.
new(Opts) when is_map(Opts) ->
    case maps:get(mode, Opts, worker) of
        Mode when Mode =:= worker; Mode =:= owngil ->
            py_context_sup:start_context(#{mode => Mode, owner => self(), kind => own});
        Mode ->
            {error, {invalid_mode, Mode}}
    end;
new(_) ->
    erlang:error(badarg).

%% @doc Stops a context. Requests still queued get `{error, context_stopped}'. Waits up to
%% 5 seconds for the context's thread to finish the Python code it is running and release
%% its interpreter: `{error, timeout}' when it is still running then (it exits once that code
%% returns), `{error, Reason}' when an owngil interpreter could not be ended (a Python thread
%% it started never finished), `ok' otherwise, and also for a context that is already gone.
-spec stop(context()) -> ok | {error, term()}.
stop(Ctx) when is_pid(Ctx) ->
    try gen_server:call(Ctx, stop, infinity)
    catch exit:_ -> ok
    end;
stop(_) ->
    erlang:error(badarg).

%% @doc Gives a context a fresh, empty shared namespace and runs Python's garbage collector.
%% The interpreter, its thread and its imported modules are kept: a long-running node reuses
%% contexts this way instead of creating and destroying them (each owngil create/destroy leaks
%% about 2 MB inside CPython; see docs/owngil.md). Per-process namespaces of pool contexts are
%% not affected.
-spec reset(context()) -> ok | {error, term()}.
reset(Ctx) ->
    on_ref(Ctx, fun(Ref) -> py_request:run(Ref, undefined, infinity, fun py_nif:submit_reset/3) end).

%% @doc A new, empty namespace on context Ctx, for the `call/7', `eval/5' and `exec/3'
%% variants: it lets one process keep several independent sets of globals on one context, owngil
%% contexts included. It is freed when the last copy of the returned term is garbage collected.
-spec create_local_env(context()) -> {ok, reference()} | {error, term()}.
create_local_env(Ctx) ->
    on_ref(Ctx, fun(Ref) -> {ok, py_request:new_namespace(Ref)} end).

%% @doc `py:call' on context Ctx in the namespace Env made by create_local_env/1.
-spec call(context(), py:py_module(), py:py_func(), list(), map(), py:timeout_ms(), reference()) ->
    py:py_result().
call(Ctx, Module, Function, Args, Kwargs, Timeout, Env) when is_list(Args), is_map(Kwargs) ->
    with_env(Ctx, Env, Timeout, fun(Ref, Ns, Tag) ->
                                        py_nif:submit_call(Ref, Ns, Tag, Module, Function, Args, Kwargs, plain)
                                end);
call(_, _, _, _, _, _, _) ->
    erlang:error(badarg).

%% @doc `py:eval' on context Ctx in the namespace Env.
-spec eval(context(), iodata(), map(), py:timeout_ms(), reference()) -> py:py_result().
eval(Ctx, Code, Locals, Timeout, Env) when is_map(Locals) ->
    with_env(Ctx, Env, Timeout, fun(Ref, Ns, Tag) -> py_nif:submit_eval(Ref, Ns, Tag, Code, Locals, plain) end);
eval(_, _, _, _, _) ->
    erlang:error(badarg).

%% @doc `py:exec' on context Ctx in the namespace Env.
-spec exec(context(), iodata(), reference()) -> ok | {error, term()}.
exec(Ctx, Code, Env) ->
    with_env(Ctx, Env, infinity, fun(Ref, Ns, Tag) -> py_nif:submit_exec(Ref, Ns, Tag, Code) end).

with_env(Ctx, Env, Timeout, Submit) when is_reference(Env) ->
    on_ref(Ctx, fun(Ref) -> py_request:run(Ref, Env, Timeout, Submit) end);
with_env(_, _, _, _) ->
    erlang:error(badarg).

%% Fun(Ref) with the NIF handle of context Ctx; {error, context_not_found} when it is gone.
on_ref(Ctx, Fun) when is_pid(Ctx) ->
    case lookup(Ctx) of
        {ok, Ref, _Kind} -> Fun(Ref);
        error -> {error, context_not_found}
    end;
on_ref(_, _) ->
    erlang:error(badarg).

%% @private
-spec start_link(map()) -> {ok, pid()} | {error, term()}.
start_link(Opts) ->
    gen_server:start_link(?MODULE, Opts, []).

%% @private
%% Finds the NIF handle of a context and whether it belongs to the default pool.
-spec lookup(pid()) -> {ok, py_nif:context_ref(), pool | own} | error.
lookup(Ctx) ->
    try ets:lookup_element(?REGISTRY, Ctx, 2) of
        {Ref, Kind, _Mode} -> {ok, Ref, Kind}
    catch error:badarg -> error
    end.

%% @private
%% The NIF handle of some running worker-mode context (they all share the main interpreter).
-spec any_worker() -> {ok, py_nif:context_ref()} | error.
any_worker() ->
    case ets:select(?REGISTRY, [{{'_', {'$1', '_', worker}}, [], ['$1']}], 1) of
        {[Ref], _} -> {ok, Ref};
        '$end_of_table' -> error
    end.

%% @private
%% The NIF handles of every running owngil context (one subinterpreter each).
-spec owngil_refs() -> [py_nif:context_ref()].
owngil_refs() ->
    ets:select(?REGISTRY, [{{'_', {'$1', '_', owngil}}, [], ['$1']}]).

%% @private
%% Creates the registry table; called by erlang_python_sup, which owns it.
-spec init_registry() -> ok.
init_registry() ->
    _ = ets:new(?REGISTRY, [named_table, public, set, {read_concurrency, true}]),
    ok.

%% @private
-spec init(#{mode := mode(), owner := pid() | undefined, kind := pool | own}) ->
          {ok, #state{}} | {stop, term()}.
init(#{mode := Mode, owner := Owner, kind := Kind}) ->
    process_flag(trap_exit, true),
    Priority = application:get_env(erlang_python, thread_priority, auto),
    case py_nif:context_new(Mode, Priority) of
        {ok, Ref} ->
            case started(Ref) of
                ok ->
                    true = ets:insert(?REGISTRY, {self(), {Ref, Kind, Mode}}),
                    %% After registering, so that a step set meanwhile reaches this context
                    %% one way or the other (running it twice changes nothing: py_setup).
                    ok = py_setup:sync(Ref),
                    Mon = case Owner of
                              undefined -> undefined;
                              _ -> erlang:monitor(process, Owner)
                          end,
                    {ok, #state{ref = Ref, owner_mon = Mon}};
                {error, Reason} ->
                    {stop, Reason}
            end;
        {error, Reason} ->
            {stop, Reason}
    end.

%% Waits for the context's thread to be ready (an owngil interpreter takes a few ms to
%% create), so that a context that cannot start is reported by new/1.
started(Ref) ->
    Tag = make_ref(),
    Request = py_nif:submit_eval(Ref, undefined, Tag, <<"None">>, #{}, plain),
    receive
        {Tag, {ok, none}} -> ok;
        {Tag, _Failed} ->
            case stop_thread(Ref) of
                {error, Reason} -> {error, Reason};
                ok -> {error, context_start_failed}
            end
    after ?STOP_DEADLINE ->
        _ = py_nif:cancel(Ref, Request),
        _ = stop_thread(Ref),
        {error, context_start_timeout}
    end.

stop_thread(Ref) ->
    Tag = make_ref(),
    ok = py_nif:context_stop(Ref, Tag),
    receive {py_context_exited, Tag, Status} -> Status
    after ?STOP_DEADLINE -> {error, timeout}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) ->
          {stop, normal, ok | {error, term()}, #state{}} | {reply, {error, unknown_call}, #state{}}.
handle_call(stop, _From, #state{ref = Ref} = State) ->
    ets:delete(?REGISTRY, self()),
    Status = stop_thread(Ref),
    {stop, normal, Status, State#state{stopped = true}};
handle_call(_Msg, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({select, Watch, _, Mode}, State) ->
    %% Readiness of a descriptor an event loop on this context waits for (enif_select).
    _ = py_nif:fd_ready(Watch, Mode),
    {noreply, State};
handle_info({'DOWN', Mon, process, _, _}, #state{owner_mon = Mon} = State) ->
    {stop, normal, State};
handle_info({'EXIT', _, Reason}, State) ->
    {stop, Reason, State};
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{stopped = true}) ->
    ok;
terminate(_Reason, #state{ref = Ref}) ->
    ets:delete(?REGISTRY, self()),
    _ = stop_thread(Ref),
    ok.
