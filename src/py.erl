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
         register_function/2, register_function/3, unregister_function/1,
         state_store/2, state_fetch/1, state_remove/1, state_keys/0, state_clear/0,
         state_incr/1, state_incr/2, state_decr/1, state_decr/2,
         getattr/2, call_method/3, call_method/4, to_term/1,
         async_call/3, async_call/4, async_await/1, async_await/2, async_gather/1, async_gather/2,
         spawn_call/3, spawn_call/4, await/1, await/2, cast/3, cast/4,
         stream/3, stream/4, stream_eval/1, stream_eval/2, stream_start/3, stream_start/4, stream_cancel/1,
         default_timeout/0,
         activate_venv/1, deactivate_venv/0, venv_info/0,
         configure_logging/0, configure_logging/1,
         stats/0, set_slow_request_ms/1]).

-export_type([py_module/0, py_func/0, py_result/0, timeout_ms/0]).

-type py_module() :: atom() | binary() | string().
-type py_func() :: atom() | binary() | string().
-type py_result() :: {ok, term()} | {error, term()}.
-type timeout_ms() :: non_neg_integer() | infinity.
-type call_opts() :: #{kwargs => map(), timeout => timeout_ms()}.

-define(DEFAULT_TIMEOUT, 30000).

%% @doc The timeout of calls that take none: 30000 ms.
-spec default_timeout() -> timeout_ms().
default_timeout() ->
    ?DEFAULT_TIMEOUT.

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
    on_context(Ctx, Timeout, {call, Module, Function},
               fun(Ref, Ns, Tag) -> py_nif:submit_call(Ref, Ns, Tag, Module, Function, Args, Kwargs, plain) end);
call(Module, Function, Args, Kwargs, Timeout) ->
    check_call(Module, Function, Args),
    check_map(Kwargs),
    check_timeout(Timeout),
    on_pool(Timeout, {call, Module, Function},
            fun(Ref, Ns, Tag) -> py_nif:submit_call(Ref, Ns, Tag, Module, Function, Args, Kwargs, plain) end).

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
    on_context(Ctx, infinity, eval, fun(Ref, Ns, Tag) -> py_nif:submit_eval(Ref, Ns, Tag, Src, Locals, plain) end);
eval(Code, Locals, Timeout) ->
    Src = source(Code),
    check_map(Locals),
    check_timeout(Timeout),
    on_pool(Timeout, eval, fun(Ref, Ns, Tag) -> py_nif:submit_eval(Ref, Ns, Tag, Src, Locals, plain) end).

%% --- exec ---------------------------------------------------------------------------------

%% @doc Runs Python statements on the default pool, in the calling process's namespace.
-spec exec(iodata()) -> ok | {error, term()}.
exec(Code) ->
    Src = source(Code),
    on_pool(infinity, exec, fun(Ref, Ns, Tag) -> py_nif:submit_exec(Ref, Ns, Tag, Src) end).

%% @doc Runs Python statements on context Ctx.
-spec exec(py_context:context(), iodata()) -> ok | {error, term()}.
exec(Ctx, Code) when is_pid(Ctx) ->
    Src = source(Code),
    on_context(Ctx, infinity, exec, fun(Ref, Ns, Tag) -> py_nif:submit_exec(Ref, Ns, Tag, Src) end);
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
    py_request:last_traceback().

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

%% --- shared state ---------------------------------------------------------------------------

%% @doc Stores Value under Key in the state shared by every context of the node (Python:
%% `erlang.state_get(key)'). Atom keys are stored as binaries, matching Python's str keys.
-spec state_store(term(), term()) -> ok.
state_store(Key, Value) -> py_state:store(Key, Value).

%% @doc The value stored under Key.
-spec state_fetch(term()) -> {ok, term()} | {error, not_found}.
state_fetch(Key) -> py_state:fetch(Key).

%% @doc Removes Key.
-spec state_remove(term()) -> ok.
state_remove(Key) -> py_state:remove(Key).

%% @doc Every key of the shared state.
-spec state_keys() -> [term()].
state_keys() -> py_state:keys().

%% @doc Removes every key.
-spec state_clear() -> ok.
state_clear() -> py_state:clear().

%% @doc Atomically adds 1 to the counter Key (created at 0) and returns the new value.
-spec state_incr(term()) -> integer().
state_incr(Key) -> py_state:incr(Key, 1).

%% @doc Atomically adds N to the counter Key and returns the new value.
-spec state_incr(term(), integer()) -> integer().
state_incr(Key, N) when is_integer(N) -> py_state:incr(Key, N);
state_incr(_, _) -> erlang:error(badarg).

%% @doc Atomically subtracts 1 from the counter Key and returns the new value.
-spec state_decr(term()) -> integer().
state_decr(Key) -> py_state:incr(Key, -1).

%% @doc Atomically subtracts N from the counter Key and returns the new value.
-spec state_decr(term(), integer()) -> integer().
state_decr(Key, N) when is_integer(N) -> py_state:incr(Key, -N);
state_decr(_, _) -> erlang:error(badarg).

%% --- opaque object references -------------------------------------------------------------

%% @doc `getattr(Obj, Name)' on the object behind an opaque reference, run by a context of the
%% object's own interpreter.
-spec getattr(reference(), atom() | binary()) -> py_result().
getattr(Obj, Name) ->
    on_object(Obj, fun(Ref, Ns, Tag) -> py_nif:submit_call(Ref, Ns, Tag, builtins, getattr, [Obj, Name], #{}, plain) end).

%% @doc `Obj.Method(*Args)'.
-spec call_method(reference(), atom() | binary(), list()) -> py_result().
call_method(Obj, Method, Args) ->
    call_method(Obj, Method, Args, #{}).

%% @doc `Obj.Method(*Args, **Kwargs)'.
-spec call_method(reference(), atom() | binary(), list(), map()) -> py_result().
call_method(Obj, Method, Args, Kwargs) when is_list(Args), is_map(Kwargs) ->
    on_object(Obj, fun(Ref, Ns, Tag) ->
                           py_nif:submit_call(Ref, Ns, Tag, erlang, '_call_method', [Obj, Method | Args], Kwargs, plain)
                   end);
call_method(_, _, _, _) ->
    erlang:error(badarg).

%% @doc Converts the object behind a reference explicitly: a mapping becomes a map, any other
%% iterable (set, generator, range, dict view, ...) a list; other objects give a TypeError.
-spec to_term(reference()) -> py_result().
to_term(Obj) ->
    on_object(Obj, fun(Ref, Ns, Tag) ->
                           py_nif:submit_eval(Ref, Ns, Tag,
                                              <<"dict(o) if isinstance(o, __import__('collections.abc').abc.Mapping)"
                                                " else list(o)">>, #{o => Obj}, plain)
                   end).

on_object(Obj, Submit) ->
    is_ref(Obj) orelse erlang:error(badarg),
    case py_nif:object_owner(Obj) of
        main -> on_main_interpreter(execution_mode(), Submit);
        {context, Ref} -> py_request:run(Ref, undefined, ?DEFAULT_TIMEOUT, Submit);
        gone -> {error, interpreter_gone}
    end.

%% An object of the main interpreter runs on the caller's pool context when the pool is in
%% worker mode; with an owngil pool, on any worker context (only those run the main interpreter).
on_main_interpreter(worker, Submit) ->
    on_pool(?DEFAULT_TIMEOUT, Submit);
on_main_interpreter(owngil, Submit) ->
    case py_context:any_worker() of
        {ok, Ref} -> py_request:run(Ref, undefined, ?DEFAULT_TIMEOUT, Submit);
        error -> {error, no_worker_context}
    end.


%% --- asynchronous calls, cast and streams -----------------------------------------------------

%% @doc Starts `Module.Function(*Args)' on the calling process's pool context and returns at
%% once. A coroutine function's coroutine runs as a task on that context's event loop (so many
%% of them run concurrently); any other function's result is the result. Collect it, in the
%% same process, with {@link async_await/1}.
-spec async_call(py_module(), py_func(), list()) -> reference().
async_call(Module, Function, Args) ->
    async_call(Module, Function, Args, #{}).

%% @doc {@link async_call/3} with keyword arguments.
-spec async_call(py_module(), py_func(), list(), map()) -> reference().
async_call(Module, Function, Args, Kwargs) ->
    check_call(Module, Function, Args),
    check_map(Kwargs),
    py_async:start(pool, Module, Function, Args, Kwargs, async).

%% @doc The result of {@link async_call/3}: `{ok, Value}' or `{error, Reason}' (timeout 30 s).
-spec async_await(reference()) -> py_result().
async_await(Ref) ->
    async_await(Ref, ?DEFAULT_TIMEOUT).

%% @doc The result of {@link async_call/3}, waiting at most Timeout ms: after `{error, timeout}'
%% the call's late result never reaches the mailbox. badarg for a reference this process did not
%% get from an asynchronous call, or already awaited.
-spec async_await(reference(), timeout_ms()) -> py_result().
async_await(Ref, Timeout) when is_reference(Ref) ->
    check_timeout(Timeout),
    py_async:await(Ref, Timeout);
async_await(_, _) ->
    erlang:error(badarg).

%% @doc Runs the calls concurrently (coroutines as tasks of one event loop) and returns
%% `{ok, [Result1, ...]}' in their order, or the first error (timeout 30 s in all).
-spec async_gather([{py_module(), py_func(), list()}]) -> py_result().
async_gather(Calls) ->
    async_gather(Calls, ?DEFAULT_TIMEOUT).

%% @doc {@link async_gather/1} with a timeout for the whole gather.
-spec async_gather([{py_module(), py_func(), list()}], timeout_ms()) -> py_result().
async_gather(Calls, Timeout) when is_list(Calls) ->
    check_timeout(Timeout),
    lists:foreach(fun({M, F, A}) -> check_call(M, F, A);
                     (_) -> erlang:error(badarg)
                  end, Calls),
    py_async:gather(pool, Calls, Timeout);
async_gather(_, _) ->
    erlang:error(badarg).

%% @doc Starts `Module.Function(*Args)' (a plain function or a coroutine function) and returns
%% at once; {@link await/1} collects the result.
-spec spawn_call(py_module(), py_func(), list()) -> reference().
spawn_call(Module, Function, Args) ->
    async_call(Module, Function, Args, #{}).

%% @doc {@link spawn_call/3} with keyword arguments.
-spec spawn_call(py_module(), py_func(), list(), map()) -> reference().
spawn_call(Module, Function, Args, Kwargs) ->
    async_call(Module, Function, Args, Kwargs).

%% @doc The result of {@link spawn_call/3} (timeout 30 s).
-spec await(reference()) -> py_result().
await(Ref) ->
    async_await(Ref, ?DEFAULT_TIMEOUT).

%% @doc The result of {@link spawn_call/3}, waiting at most Timeout ms.
-spec await(reference(), timeout_ms()) -> py_result().
await(Ref, Timeout) ->
    async_await(Ref, Timeout).

%% @doc Runs `Module.Function(*Args)' (a coroutine function's coroutine to its end) and
%% ignores the result.
-spec cast(py_module(), py_func(), list()) -> ok.
cast(Module, Function, Args) ->
    cast(Module, Function, Args, #{}).

%% @doc {@link cast/3} with keyword arguments.
-spec cast(py_module(), py_func(), list(), map()) -> ok.
cast(Module, Function, Args, Kwargs) ->
    check_call(Module, Function, Args),
    check_map(Kwargs),
    py_async:cast(pool, Module, Function, Args, Kwargs).

%% @doc Calls a function that returns a generator, an async generator or any iterable and
%% returns `{ok, Items}'.
-spec stream(py_module(), py_func(), list()) -> py_result().
stream(Module, Function, Args) ->
    stream(Module, Function, Args, #{}).

%% @doc {@link stream/3} with keyword arguments.
-spec stream(py_module(), py_func(), list(), map()) -> py_result().
stream(Module, Function, Args, Kwargs) ->
    check_call(Module, Function, Args),
    check_map(Kwargs),
    py_async:stream(pool, Module, Function, Args, Kwargs).

%% @doc Evaluates an expression that gives a generator (or iterable) and returns
%% `{ok, Items}': `{ok, [0,1,4,9,16]} = py:stream_eval(<<"(x**2 for x in range(5))">>)'.
-spec stream_eval(iodata()) -> py_result().
stream_eval(Code) ->
    stream_eval(Code, #{}).

%% @doc {@link stream_eval/1} with local variables.
-spec stream_eval(iodata(), map()) -> py_result().
stream_eval(Code, Locals) ->
    Src = source(Code),
    check_map(Locals),
    py_async:stream_eval(pool, Src, Locals).

%% @doc Starts a stream: the items of the generator or async generator that
%% `Module.Function(*Args)' returns are sent to the calling process as they are produced, as
%% `{py_stream, Ref, {data, Item}}', then `{py_stream, Ref, done}' or
%% `{py_stream, Ref, {error, Reason}}'.
-spec stream_start(py_module(), py_func(), list()) -> {ok, reference()} | {error, term()}.
stream_start(Module, Function, Args) ->
    stream_start(Module, Function, Args, #{}).

%% @doc {@link stream_start/3} with options: `owner' (the local process that receives the
%% messages) and `kwargs'.
-spec stream_start(py_module(), py_func(), list(), #{owner => pid(), kwargs => map()}) ->
    {ok, reference()} | {error, term()}.
stream_start(Module, Function, Args, Opts) when is_map(Opts) ->
    check_call(Module, Function, Args),
    py_async:stream_start(pool, Module, Function, Args, Opts);
stream_start(_, _, _, _) ->
    erlang:error(badarg).

%% @doc Stops a stream this process started. No message of it arrives after this returns.
-spec stream_cancel(reference()) -> ok.
stream_cancel(Ref) when is_reference(Ref) ->
    py_async:stream_cancel(Ref);
stream_cancel(_) ->
    erlang:error(badarg).

%% --- virtual environments -------------------------------------------------------------------

%% @doc Makes the packages of the venv at Path (a directory made by `python3 -m venv', as a
%% string or binary) importable in every interpreter: the main one, shared by worker contexts,
%% and each owngil context's, including owngil contexts started later. Its site-packages is
%% added like `site.addsitedir' does (`.pth' files work), in front of the embedded Python's
%% own site-packages. Replaces the venv activated before, if any.
%%
%% `ok', or `{error, Reason}': `{not_a_venv, Dir}' (no `pyvenv.cfg'),
%% `{python_version_mismatch, #{venv => <<"X.Y">>, python => <<"X.Y">>}}',
%% `{no_site_packages, Dir}', or an interpreter's failure. See docs/venv.md.
-spec activate_venv(file:filename_all()) -> ok | {error, term()}.
activate_venv(Path) ->
    py_venv:activate(Path).

%% @doc Removes from `sys.path', in every interpreter, what {@link activate_venv/1} added.
%% Modules already imported from the venv stay imported; new imports no longer find its
%% packages. `ok' also when no venv is active.
-spec deactivate_venv() -> ok | {error, term()}.
deactivate_venv() ->
    py_venv:deactivate().

%% @doc `{ok, #{<<"active">> => boolean(), <<"venv_path">> => Dir, <<"site_packages">> => Dir,
%% <<"sys_path">> => [Entry]}}' (the two paths only while a venv is active; `sys_path' is that
%% of the calling process's pool context).
-spec venv_info() -> {ok, #{binary() => term()}} | {error, term()}.
venv_info() ->
    py_venv:info().

%% --- logging --------------------------------------------------------------------------------

%% @doc {@link configure_logging/1} with the default options: every Python record at `DEBUG'
%% and above, and `warnings', forwarded to `logger'.
-spec configure_logging() -> ok | {error, term()}.
configure_logging() ->
    configure_logging(#{}).

%% @doc Forwards Python `logging' records (and `warnings.warn', as warnings) to OTP `logger',
%% from every interpreter, owngil contexts started later included. Each record is logged with
%% the level mapped (DEBUG -> debug, INFO -> info, WARNING -> warning, ERROR -> error, CRITICAL
%% -> critical), the formatted message, and metadata `#{domain => [python], py_logger => Name,
%% file => Path, line => Line, py_module => Module, py_func => Function, time => T}'. Python
%% never waits for Erlang: records are sent with `erlang.send' to the `py_logger' process.
%% Calling it again replaces the settings (one handler per interpreter).
%%
%% Options: `level' (`debug' | `info' | `warning' | `error' | `critical', default `debug'; or
%% `none' to stop forwarding), `format' (a `logging.Formatter' format, default
%% `<<"%(message)s">>'), `capture_warnings' (default `true'). See docs/logging.md.
-spec configure_logging(py_logger:options()) -> ok | {error, term()}.
configure_logging(Opts) ->
    py_logger:configure(Opts).

%% --- observability ------------------------------------------------------------------------

%% @doc What every running context did, summed, and per context: counters, queue-wait and
%% run-time percentiles, owngil memory. The keys are those of {@link py_context:stats/1}
%% (without `mode' and `memory'), plus `contexts' (how many), `owngil_memory'
%% (`#{allocated_bytes, arena_bytes, contexts}' summed over the owngil contexts that have a
%% memory figure) and `per_context' (`#{Pid => Stats}'). See docs/observability.md.
-spec stats() -> #{atom() => term()}.
stats() ->
    PerContext = [{Ctx, py_observe:context_stats(Ref)} || {Ctx, Ref} <- py_context:registered()],
    Summed = py_observe:sum_stats([S || {_, S} <- PerContext]),
    Summed#{per_context => maps:from_list([{Ctx, maps:remove('$buckets', S)} || {Ctx, S} <- PerContext])}.

%% @doc Sets the slow-request threshold (app env `slow_request_ms', default `infinity': off):
%% a call, eval or exec that has not replied after Ms milliseconds logs one `logger' warning
%% with the Python stack of its context. See docs/observability.md.
-spec set_slow_request_ms(pos_integer() | infinity) -> ok.
set_slow_request_ms(Ms) ->
    py_observe:set_slow_request_ms(Ms).

%% --- internals --------------------------------------------------------------------------------

%% A call on the default pool, in the calling process's namespace on its context. A context
%% that stopped since it was picked is replaced once.
on_pool(Timeout, Submit) ->
    case py_request:run_on(pool, Timeout, Submit) of
        {error, context_stopped} ->
            py_context_router:forget_pick(),
            py_request:run_on(pool, Timeout, Submit);
        Result ->
            Result
    end.

on_context(Ctx, Timeout, What, Submit) ->
    case erlang:function_exported(telemetry, execute, 3) of
        false -> py_request:run_on(Ctx, Timeout, Submit);
        true -> py_observe:span(Ctx, What, fun() -> py_request:run_on(Ctx, Timeout, Submit) end)
    end.

%% on_pool/2 between telemetry events when the telemetry application is loaded (an optional
%% dependency; the check is one BIF call).
on_pool(Timeout, What, Submit) ->
    case erlang:function_exported(telemetry, execute, 3) of
        false -> on_pool(Timeout, Submit);
        true -> py_observe:span(py_context_router:get_context(), What, fun() -> on_pool(Timeout, Submit) end)
    end.

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
