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

-include("py_timeout.hrl").

-export([call/3, call/4, call/5,
         eval/1, eval/2, eval/3,
         exec/1, exec/2,
         context/0, context/1,
         execution_mode/0, num_executors/0, version/0, is_ref/1, last_traceback/0,
         register_function/2, register_function/3, unregister_function/1,
         state_store/2, state_fetch/1, state_remove/1, state_keys/0, state_clear/0,
         state_incr/1, state_incr/2, state_decr/1, state_decr/2,
         getattr/2, call_method/3, call_method/4, to_term/1,
         async_call/3, async_call/4, async_await/1, async_await/2, async_gather/1, async_gather/2,
         spawn_call/3, spawn_call/4, spawn_call/5, await/1, await/2, cast/3, cast/4, cast/5,
         stream/3, stream/4, stream_eval/1, stream_eval/2, stream_start/3, stream_start/4, stream_cancel/1,
         default_timeout/0,
         activate_venv/1, deactivate_venv/0, venv_info/0,
         configure_logging/0, configure_logging/1,
         stats/0, set_slow_request_ms/1, set_request_timings/1,
         start_contexts/0, start_contexts/1, stop_contexts/0, contexts_started/0, subinterp_supported/0,
         register_pool/2, unregister_pool/1]).
-export([shared_dict_new/0, shared_dict_get/2, shared_dict_get/3, shared_dict_set/3, shared_dict_del/2,
         shared_dict_keys/1, shared_dict_destroy/1]).
-export([eval_on/4]).
-export([dup_fd/1]).

%% Node services, start-up code and tracing (erlang_python 4.x's shapes).
-export([reload/1, parallel/1, memory_stats/0, gc/0, gc/1, tracemalloc_start/0, tracemalloc_start/1,
         tracemalloc_stop/0, get_local_env/1, interrupt/1, ensure_venv/2, ensure_venv/3,
         enable_tracing/0, disable_tracing/0, get_traces/0, clear_traces/0,
         ensure_imported/1, ensure_imported/2, is_imported/1, is_imported/2, all_imports/0,
         clear_imports/0, import_list/0, import_stats/0]).

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
%% `call(Pool, Module, Function, Args)' (Function an atom or a binary) on a pool started with
%% {@link py_context_router:start_pool/3} (`default' is the default pool);
%% `call(Module, Function, Args, Kwargs)' calls on the default pool (or the pool the module is
%% registered to, see {@link register_pool/2}) with keyword arguments.
-spec call(py_context:context(), py_module(), py_func(), list()) -> py_result();
          (py_context_router:pool_name(), py_module(), py_func(), list()) -> py_result();
          (py_module(), py_func(), list(), map()) -> py_result().
call(Ctx, Module, Function, Args) when is_pid(Ctx) ->
    call(Ctx, Module, Function, Args, #{});
call(Pool, Module, Function, Args)
  when is_atom(Pool), is_atom(Function) orelse is_binary(Function), is_list(Args) ->
    call(Pool, Module, Function, Args, #{});
call(Module, Function, Args, Kwargs) ->
    call(Module, Function, Args, Kwargs, ?DEFAULT_TIMEOUT).

%% @doc `call(Ctx, Module, Function, Args, #{kwargs => Map, timeout => T})' on context Ctx;
%% `call(Pool, Module, Function, Args, Kwargs)' on pool Pool (timeout 30 s);
%% `call(Module, Function, Args, Kwargs, Timeout)' on the default pool (or the registered one).
%% A call that times out returns `{error, timeout}' and its late result never reaches the
%% mailbox. Pool calls on a pool that is not running give `{error, {pool_not_started, Pool}}'.
%% With a `max_concurrent' limit set (see {@link py_semaphore}), a pool call waits for a slot
%% within its own timeout (`{error, {overloaded, Current, Max}}' when none came in time).
-spec call(py_context:context(), py_module(), py_func(), list(), call_opts()) -> py_result();
          (py_context_router:pool_name(), py_module(), py_func(), list(), map()) -> py_result();
          (py_module(), py_func(), list(), map(), timeout_ms()) -> py_result().
call(Ctx, Module, Function, Args, Opts) when is_pid(Ctx), is_map(Opts) ->
    check_call(Module, Function, Args),
    Kwargs = maps:get(kwargs, Opts, #{}),
    Timeout = maps:get(timeout, Opts, infinity),
    check_map(Kwargs),
    check_timeout(Timeout),
    or_isolated(on_context(Ctx, Timeout, {call, Module, Function},
                           fun(Ref, Ns, Tag) -> py_nif:submit_call(Ref, Ns, Tag, Module, Function, Args, Kwargs, plain) end),
                Ctx, Timeout, {call, Module, Function, Args, Kwargs});
call(Pool, Module, Function, Args, Kwargs)
  when is_atom(Pool), is_atom(Function) orelse is_binary(Function), is_list(Args), is_map(Kwargs) ->
    pool_call(Pool, Module, Function, Args, Kwargs, ?DEFAULT_TIMEOUT, py_semaphore:max_concurrent());
call(Module, Function, Args, Kwargs, Timeout) ->
    %% `plain': nothing registered and no limit (one persistent_term read).
    case py_context_router:policy() of
        plain ->
            pool_call(default, Module, Function, Args, Kwargs, Timeout, infinity);
        {Registry, Limit} ->
            Pool = py_context_router:route(Registry, Module, Function),
            pool_call(Pool, Module, Function, Args, Kwargs, Timeout, Limit)
    end.

pool_call(Pool, Module, Function, Args, Kwargs, Timeout, Limit) ->
    check_call(Module, Function, Args),
    check_map(Kwargs),
    check_timeout(Timeout),
    Submit = fun(Ref, Ns, Tag) -> py_nif:submit_call(Ref, Ns, Tag, Module, Function, Args, Kwargs, plain) end,
    case Limit of
        infinity -> traced_on_pool(Pool, Timeout, {call, Module, Function}, Submit);
        _ -> py_semaphore:with_slot(Timeout, fun(Left) -> traced_on_pool(Pool, Left, {call, Module, Function}, Submit) end)
    end.

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
    eval_on(Ctx, Code, Locals, infinity);
eval(Code, Locals, Timeout) ->
    Src = source(Code),
    check_map(Locals),
    check_timeout(Timeout),
    traced_on_pool(default, Timeout, eval, fun(Ref, Ns, Tag) -> py_nif:submit_eval(Ref, Ns, Tag, Src, Locals, plain) end).

%% @private
%% eval/3 on context Ctx with a timeout (py_context:eval/4).
-spec eval_on(py_context:context(), iodata(), map(), timeout_ms()) -> py_result().
eval_on(Ctx, Code, Locals, Timeout) ->
    Src = source(Code),
    check_map(Locals),
    check_timeout(Timeout),
    or_isolated(on_context(Ctx, Timeout, eval, fun(Ref, Ns, Tag) -> py_nif:submit_eval(Ref, Ns, Tag, Src, Locals, plain) end),
                Ctx, Timeout, {eval, Src, Locals}).

%% --- exec ---------------------------------------------------------------------------------

%% @doc Runs Python statements on the default pool, in the calling process's namespace.
-spec exec(iodata()) -> ok | {error, term()}.
exec(Code) ->
    Src = source(Code),
    traced_on_pool(default, infinity, exec, fun(Ref, Ns, Tag) -> py_nif:submit_exec(Ref, Ns, Tag, Src) end).

%% @doc Runs Python statements on context Ctx.
-spec exec(py_context:context(), iodata()) -> ok | {error, term()}.
exec(Ctx, Code) when is_pid(Ctx) ->
    Src = source(Code),
    or_isolated(on_context(Ctx, infinity, exec, fun(Ref, Ns, Tag) -> py_nif:submit_exec(Ref, Ns, Tag, Src) end),
                Ctx, infinity, {exec, Src});
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

%% @doc How the default pool runs Python, in erlang_python 4.x's words: `multi_executor'
%% (worker contexts: one thread each, sharing the main interpreter's GIL) or `subinterp'
%% (owngil contexts: a subinterpreter and GIL each). From the app env `context_mode'.
%% `free_threaded' (4.x on a free-threaded Python build) is not returned here.
-spec execution_mode() -> multi_executor | subinterp.
execution_mode() ->
    case pool_mode() of
        owngil -> subinterp;
        worker -> multi_executor
    end.

pool_mode() ->
    case application:get_env(erlang_python, context_mode, worker) of
        owngil -> owngil;
        _ -> worker
    end.

%% @doc The number of threads running Python calls of the default pool: one per context, so
%% the number of contexts of the default pool (0 while it is stopped). erlang_python 4.x's
%% name for its executor threads.
-spec num_executors() -> non_neg_integer().
num_executors() ->
    py_context_router:num_contexts().

%% @doc `{ok, Version}': the version of the embedded Python, e.g. `{ok, <<"3.13.0">>}'.
-spec version() -> {ok, binary()}.
version() ->
    {ok, py_nif:python_version()}.

%% @doc Whether Term is an opaque reference to a Python object (of any context, isolated ones
%% included).
-spec is_ref(term()) -> boolean().
is_ref(Term) ->
    py_nif:is_ref(Term) orelse py_nif:isolated_ref_info(Term) =/= false.

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

%% --- SharedDict (docs/shared-dict.md) -----------------------------------------------------

%% @doc A new SharedDict, owned by the calling process (destroyed when it exits). Python sees it
%% as `erlang.SharedDict(Handle)' in every context.
-spec shared_dict_new() -> {ok, reference()}.
shared_dict_new() -> py_nif:shared_dict_new().

%% @doc The value under Key, or `undefined'. badarg when the dict was destroyed.
-spec shared_dict_get(reference(), term()) -> term().
shared_dict_get(Dict, Key) -> py_nif:shared_dict_get(Dict, Key, undefined).

%% @doc The value under Key, or Default.
-spec shared_dict_get(reference(), term(), term()) -> term().
shared_dict_get(Dict, Key, Default) -> py_nif:shared_dict_get(Dict, Key, Default).

%% @doc Stores (a copy of) Value under Key.
-spec shared_dict_set(reference(), term(), term()) -> ok.
shared_dict_set(Dict, Key, Value) -> py_nif:shared_dict_set(Dict, Key, Value).

%% @doc Removes Key; ok also when it was not there.
-spec shared_dict_del(reference(), term()) -> ok.
shared_dict_del(Dict, Key) -> py_nif:shared_dict_del(Dict, Key).

%% @doc Every key, in no particular order.
-spec shared_dict_keys(reference()) -> [term()].
shared_dict_keys(Dict) -> py_nif:shared_dict_keys(Dict).

%% @doc Drops every entry; later operations, from Erlang or Python, fail. Idempotent.
-spec shared_dict_destroy(reference()) -> ok.
shared_dict_destroy(Dict) -> py_nif:shared_dict_destroy(Dict).

%% --- opaque object references -------------------------------------------------------------

%% @doc `getattr(Obj, Name)' on the object behind an opaque reference, run by a context of the
%% object's own interpreter.
-spec getattr(reference(), atom() | binary()) -> py_result().
getattr(Obj, Name) ->
    on_object(Obj, {call, builtins, getattr, [Obj, Name], #{}},
              fun(Ref, Ns, Tag) -> py_nif:submit_call(Ref, Ns, Tag, builtins, getattr, [Obj, Name], #{}, plain) end).

%% @doc `Obj.Method(*Args)'.
-spec call_method(reference(), atom() | binary(), list()) -> py_result().
call_method(Obj, Method, Args) ->
    call_method(Obj, Method, Args, #{}).

%% @doc `Obj.Method(*Args, **Kwargs)'.
-spec call_method(reference(), atom() | binary(), list(), map()) -> py_result().
call_method(Obj, Method, Args, Kwargs) when is_list(Args), is_map(Kwargs) ->
    on_object(Obj, {call, '_erlang_isolated', '_call_method', [Obj, Method | Args], Kwargs},
              fun(Ref, Ns, Tag) ->
                      py_nif:submit_call(Ref, Ns, Tag, erlang, '_call_method', [Obj, Method | Args], Kwargs, plain)
              end);
call_method(_, _, _, _) ->
    erlang:error(badarg).

%% @doc Converts the object behind a reference explicitly: a mapping becomes a map, any other
%% iterable (set, generator, range, dict view, ...) a list; other objects give a TypeError.
-spec to_term(reference()) -> py_result().
to_term(Obj) ->
    on_object(Obj, {call, '_erlang_isolated', '_to_term', [Obj], #{}},
              fun(Ref, Ns, Tag) ->
                           py_nif:submit_eval(Ref, Ns, Tag,
                                              <<"dict(o) if isinstance(o, __import__('collections.abc').abc.Mapping)"
                                                " else list(o)">>, #{o => Obj}, plain)
                   end).

%% An object of an isolated context is handled by that context's child (IsolatedRequest).
on_object(Obj, IsolatedRequest, Submit) ->
    case py_nif:isolated_ref_info(Obj) of
        {Ctx, _Serial, _Id} -> on_isolated(Ctx, IsolatedRequest);
        false -> on_object(Obj, Submit)
    end.

on_isolated(Ctx, Request) ->
    case py_isolated:request(Ctx, Request, ?DEFAULT_TIMEOUT) of
        {error, context_not_found} -> {error, interpreter_gone};
        {error, context_stopped} -> {error, interpreter_gone};
        {error, {'ValueError', "a Python object reference whose isolated process has ended" ++ _}} ->
            {error, interpreter_gone};
        Result -> Result
    end.

on_object(Obj, Submit) ->
    is_ref(Obj) orelse erlang:error(badarg),
    case py_nif:object_owner(Obj) of
        main -> on_main_interpreter(pool_mode(), Submit);
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

%% @doc `spawn_call(Ctx, Module, Function, Args)': {@link spawn_call/3} on context Ctx;
%% `spawn_call(Module, Function, Args, Kwargs)': with keyword arguments.
-spec spawn_call(py_context:context(), py_module(), py_func(), list()) -> reference();
                (py_module(), py_func(), list(), map()) -> reference().
spawn_call(Ctx, Module, Function, Args) when is_pid(Ctx) ->
    spawn_call(Ctx, Module, Function, Args, #{});
spawn_call(Module, Function, Args, Kwargs) ->
    async_call(Module, Function, Args, Kwargs).

%% @doc {@link spawn_call/3} on context Ctx with keyword arguments; {@link await/1} collects
%% the result.
-spec spawn_call(py_context:context(), py_module(), py_func(), list(), map()) -> reference().
spawn_call(Ctx, Module, Function, Args, Kwargs) when is_pid(Ctx) ->
    check_call(Module, Function, Args),
    check_map(Kwargs),
    py_async:start(Ctx, Module, Function, Args, Kwargs, async);
spawn_call(_, _, _, _, _) ->
    erlang:error(badarg).

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

%% @doc `cast(Ctx, Module, Function, Args)': {@link cast/3} on context Ctx;
%% `cast(Module, Function, Args, Kwargs)': with keyword arguments.
-spec cast(py_context:context(), py_module(), py_func(), list()) -> ok;
          (py_module(), py_func(), list(), map()) -> ok.
cast(Ctx, Module, Function, Args) when is_pid(Ctx) ->
    cast(Ctx, Module, Function, Args, #{});
cast(Module, Function, Args, Kwargs) ->
    check_call(Module, Function, Args),
    check_map(Kwargs),
    py_async:cast(pool, Module, Function, Args, Kwargs).

%% @doc {@link cast/3} on context Ctx with keyword arguments (`ok' also when Ctx is gone).
-spec cast(py_context:context(), py_module(), py_func(), list(), map()) -> ok.
cast(Ctx, Module, Function, Args, Kwargs) when is_pid(Ctx) ->
    check_call(Module, Function, Args),
    check_map(Kwargs),
    py_async:cast(Ctx, Module, Function, Args, Kwargs);
cast(_, _, _, _, _) ->
    erlang:error(badarg).

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

%% @doc Creates the venv at Path if needed, installs the requirements file (or pyproject.toml)
%% into it with pip or uv, and activates it: see {@link py_venv_create:ensure/3}.
-spec ensure_venv(file:filename_all(), file:filename_all()) -> ok | {error, term()}.
ensure_venv(Path, Requirements) ->
    ensure_venv(Path, Requirements, []).

%% @doc {@link ensure_venv/2} with options: `force', `{installer, auto | pip | uv}',
%% `{python, Executable}', `{extras, [Name]}'.
-spec ensure_venv(file:filename_all(), file:filename_all(), [py_venv_create:option()]) -> ok | {error, term()}.
ensure_venv(Path, Requirements, Opts) ->
    py_venv_create:ensure(Path, Requirements, Opts).

%% --- node services --------------------------------------------------------------------------

%% @doc Reloads a module in every interpreter that imported it: see {@link py_node:reload/1}.
-spec reload(py_module()) -> ok | {error, [{context, term()}]}.
reload(Module) ->
    py_node:reload(Module).

%% @doc Runs `[{Module, Function, Args}]' at the same time over the pool's contexts:
%% `{ok, [Result]}' in order, or the first error. See {@link py_node:parallel/1}.
-spec parallel([{py_module(), py_func(), list()}]) -> py_result().
parallel(Calls) ->
    py_node:parallel(Calls).

%% @doc `{ok, #{gc_stats, gc_count, gc_threshold}}' (and `traced_memory_current',
%% `traced_memory_peak' while tracemalloc traces) of the calling process's pool interpreter.
-spec memory_stats() -> {ok, map()} | {error, term()}.
memory_stats() ->
    py_node:memory_stats().

%% @doc A full garbage collection on the calling process's pool interpreter: `{ok, Unreachable}'.
-spec gc() -> {ok, non_neg_integer()} | {error, term()}.
gc() ->
    py_node:gc(2).

%% @doc Collects generation 0, 1 or 2: `{ok, Unreachable}'.
-spec gc(0..2) -> {ok, non_neg_integer()} | {error, term()}.
gc(Generation) ->
    py_node:gc(Generation).

%% @doc Starts `tracemalloc' (1 frame per traceback) on the calling process's pool interpreter.
-spec tracemalloc_start() -> ok | {error, term()}.
tracemalloc_start() ->
    py_node:tracemalloc_start(1).

%% @doc Starts `tracemalloc' with NFrame frames per traceback.
-spec tracemalloc_start(pos_integer()) -> ok | {error, term()}.
tracemalloc_start(NFrame) ->
    py_node:tracemalloc_start(NFrame).

%% @doc Stops `tracemalloc'.
-spec tracemalloc_stop() -> ok | {error, term()}.
tracemalloc_stop() ->
    py_node:tracemalloc_stop().

%% @doc The calling process's own namespace on context Ctx, for `py_context:call/7',
%% `eval/5' and `exec/3'. On a pool context it is the namespace `py:call(Ctx, ...)' uses from
%% this process; on a context made with `py_context:new/1' (whose `py:call(Ctx, ...)' use the
%% context's shared namespace) it is one of the process's own. Made at first use, kept in the
%% process dictionary, freed with the process.
-spec get_local_env(py_context:context()) -> reference().
get_local_env(Ctx) when is_pid(Ctx) ->
    case py_context:lookup(Ctx) of
        {ok, Ref, _Kind} -> py_request:namespace(Ctx, Ref);
        error -> erlang:error(badarg)
    end;
get_local_env(_) ->
    erlang:error(badarg).

%% @doc Interrupts the Python code context Ctx runs now: `erlang.Interrupted' (a
%% `KeyboardInterrupt') is raised in it at its next bytecode, and its caller gets
%% `{error, interrupted}' unless the code catches it (if it goes on, it is interrupted again
%% every 100 ms until it returns). Code blocked in a C call is interrupted when it returns.
%% `ok', `not_running' when the context runs no request, `{error, context_not_found}' for a
%% context that is gone. Any process may call it.
-spec interrupt(py_context:context()) -> ok | not_running | {error, context_not_found}.
interrupt(Ctx) when is_pid(Ctx) ->
    case py_context:lookup(Ctx) of
        {ok, Ref, _Kind} -> py_nif:context_interrupt(Ref);
        error -> py_isolated:interrupt(Ctx)
    end;
interrupt(_) ->
    erlang:error(badarg).

%% --- imports registry -----------------------------------------------------------------------

%% @doc {@link py_import:ensure_imported/1}.
-spec ensure_imported(py_module()) -> ok | {error, term()}.
ensure_imported(Module) -> py_import:ensure_imported(Module).

%% @doc {@link py_import:ensure_imported/2}.
-spec ensure_imported(py_module(), py_func()) -> ok | {error, term()}.
ensure_imported(Module, Function) -> py_import:ensure_imported(Module, Function).

%% @doc {@link py_import:is_imported/1}.
-spec is_imported(py_module()) -> boolean().
is_imported(Module) -> py_import:is_imported(Module).

%% @doc {@link py_import:is_imported/2}.
-spec is_imported(py_module(), py_func()) -> boolean().
is_imported(Module, Function) -> py_import:is_imported(Module, Function).

%% @doc {@link py_import:all_imports/0}.
-spec all_imports() -> [{binary(), binary() | all}].
all_imports() -> py_import:all_imports().

%% @doc {@link py_import:clear_imports/0}.
-spec clear_imports() -> ok.
clear_imports() -> py_import:clear_imports().

%% @doc {@link py_import:import_stats/0}.
-spec import_stats() -> {ok, #{count := non_neg_integer()}}.
import_stats() -> py_import:import_stats().

%% @doc {@link py_import:import_list/0}.
-spec import_list() -> {ok, #{binary() => [binary()]}}.
import_list() -> py_import:import_list().

%% --- tracing --------------------------------------------------------------------------------

%% @doc Starts collecting the spans Python opens with `erlang.Span' / `@erlang.trace()' in
%% every interpreter. See {@link py_tracer}.
-spec enable_tracing() -> ok | {error, term()}.
enable_tracing() -> py_tracer:enable().

%% @doc Stops collecting spans (those collected are kept).
-spec disable_tracing() -> ok | {error, term()}.
disable_tracing() -> py_tracer:disable().

%% @doc `{ok, Spans}': the completed spans, oldest first (see {@link py_tracer}).
-spec get_traces() -> {ok, [map()]}.
get_traces() -> py_tracer:get_spans().

%% @doc Forgets the collected spans.
-spec clear_traces() -> ok.
clear_traces() -> py_tracer:clear().

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

%% --- pools ---------------------------------------------------------------------------------

%% @doc Starts the default pool if it is not running: {@link py_context_router:start/0}.
-spec start_contexts() -> {ok, [py_context:context()]} | {error, term()}.
start_contexts() ->
    py_context_router:start().

%% @doc Starts the default pool with options `contexts' and `mode':
%% {@link py_context_router:start/1}.
-spec start_contexts(py_context_router:start_opts()) -> {ok, [py_context:context()]} | {error, term()}.
start_contexts(Opts) ->
    py_context_router:start(Opts).

%% @doc Stops the default pool: {@link py_context_router:stop/0}.
-spec stop_contexts() -> ok.
stop_contexts() ->
    py_context_router:stop().

%% @doc Whether the default pool is running.
-spec contexts_started() -> boolean().
contexts_started() ->
    py_context_router:is_started().

%% @doc Whether this Python can run `owngil' contexts (subinterpreters with their own GIL:
%% Python 3.13 or newer here).
-spec subinterp_supported() -> boolean().
subinterp_supported() ->
    case binary:split(py_nif:python_version(), <<".">>, [global]) of
        [Major, Minor | _] -> {binary_to_integer(Major), binary_to_integer(Minor)} >= {3, 13};
        _ -> false
    end.

%% @doc Routes calls of a Python module, or of one `{Module, Function}', to pool Pool:
%% `py:call(Module, Function, Args)' then runs there. See
%% {@link py_context_router:register_pool/2}.
-spec register_pool(py_context_router:pool_name(), atom() | binary() | {atom() | binary(), atom() | binary()}) -> ok.
register_pool(Pool, {Module, Function}) ->
    py_context_router:register_pool(Pool, Module, Function);
register_pool(Pool, Module) ->
    py_context_router:register_pool(Pool, Module).

%% @doc Removes a registration made with {@link register_pool/2}.
-spec unregister_pool(atom() | binary() | {atom() | binary(), atom() | binary()}) -> ok.
unregister_pool({Module, Function}) ->
    py_context_router:unregister_pool(Module, Function);
unregister_pool(Module) ->
    py_context_router:unregister_pool(Module).

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

%% @doc Turns request timings on or off for every context (app env `request_timings', default
%% `true'). Off, requests read no clock and the queue-wait and run-time figures of
%% `stats/0' stop growing; the counters are kept. What the timings cost is in
%% docs/performance.md (rows O1, O2). `badarg' unless a boolean.
-spec set_request_timings(boolean()) -> ok.
set_request_timings(On) ->
    py_observe:set_request_timings(On).

%% --- internals --------------------------------------------------------------------------------

%% A call on the default pool, in the calling process's namespace on its context. A context
%% that stopped since it was picked is replaced once.
on_pool(Timeout, Submit) ->
    on_pool(default, Timeout, Submit).

on_pool(Pool, Timeout, Submit) ->
    Target = pool_target(Pool),
    case py_request:run_on(Target, Timeout, Submit) of
        {error, context_stopped} ->
            py_context_router:forget_pick(Pool),
            py_request:run_on(Target, Timeout, Submit);
        Result ->
            Result
    end.

pool_target(default) -> pool;
pool_target(Pool) -> {pool, Pool}.

on_context(Ctx, Timeout, Submit) ->
    py_request:run_on(Ctx, Timeout, Submit).

%% on_context/3 between telemetry events when the telemetry application is loaded (an optional
%% dependency; the check is one BIF call).
on_context(Ctx, Timeout, What, Submit) ->
    case erlang:function_exported(telemetry, execute, 3) of
        false -> on_context(Ctx, Timeout, Submit);
        true -> py_observe:span(Ctx, What, fun() -> on_context(Ctx, Timeout, Submit) end)
    end.

%% on_pool/3 between telemetry events, as on_context/4.
traced_on_pool(Pool, Timeout, What, Submit) ->
    case erlang:function_exported(telemetry, execute, 3) of
        false -> on_pool(Pool, Timeout, Submit);
        true -> py_observe:span(py_context_router:get_context(), What, fun() -> on_pool(Pool, Timeout, Submit) end)
    end.

%% A pid that is not an in-process context may be an isolated one (py_isolated): only then is
%% its table looked at, so in-process calls pay nothing for it.
or_isolated({error, context_not_found}, Ctx, Timeout, Request) ->
    py_isolated:request(Ctx, Request, Timeout);
or_isolated(Result, _Ctx, _Timeout, _Request) ->
    Result.

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

check_timeout(T) when ?IS_TIMEOUT(T) -> ok;
check_timeout(_) -> erlang:error(badarg).

%% @doc A duplicate of a file descriptor, for Python to own: `{ok, NewFd}' or
%% `{error, Reason}' (`ebadf' for a descriptor that is not open). Fd is a descriptor number
%% (`inet:getfd/1' of a `gen_tcp'/`gen_udp' socket, `socket:getopt(S, {otp, fd})'), or the
%% `gen_tcp'/`gen_udp' port or `socket' itself. The copy is close-on-exec; the original stays
%% Erlang's, so Erlang may close its socket at any time (docs/servers.md). Hand the copy to
%% `erlang.server.serve/adopt', which close it when done.
-spec dup_fd(integer() | port() | socket:socket()) -> {ok, non_neg_integer()} | {error, term()}.
dup_fd(Fd) when is_integer(Fd) ->
    py_nif:dup_fd(Fd);
dup_fd(Port) when is_port(Port) ->
    case inet:getfd(Port) of
        {ok, Fd} -> py_nif:dup_fd(Fd);
        {error, _} = Error -> Error
    end;
dup_fd({'$socket', _} = Socket) ->
    case socket:getopt(Socket, {otp, fd}) of
        {ok, Fd} when is_integer(Fd) -> py_nif:dup_fd(Fd);
        {ok, _} -> {error, ebadf};
        {error, _} = Error -> Error
    end;
dup_fd(_) ->
    erlang:error(badarg).
