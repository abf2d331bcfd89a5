%% @doc Node-wide Python services behind `py': reloading a module in every interpreter,
%% running calls in parallel on the pool, the garbage collector and `tracemalloc'
%% (erlang_python 4.x's shapes).
-module(py_node).

-export([reload/1, parallel/1, memory_stats/0, gc/1, tracemalloc_start/1, tracemalloc_stop/0]).

-define(TIMEOUT, 30000).

%% @doc Reloads Module (`importlib.reload') in every interpreter that has imported it: the main
%% one (worker contexts) and each owngil context's. Interpreters that have not imported it are
%% left alone. `ok', or `{error, [{context, Reason}]}' with each interpreter's failure.
-spec reload(py:py_module()) -> ok | {error, [{context, term()}]}.
reload(Module) ->
    Name = name(Module),
    Code = <<"__import__('importlib').reload(__import__('sys').modules[m]) "
             "if m in __import__('sys').modules else None">>,
    Results = [eval_on(Ref, Code, #{m => Name}) || Ref <- interpreters()],
    case [{context, Reason} || {error, Reason} <- Results, Reason =/= context_stopped] of
        [] -> ok;
        Errors -> {error, Errors}
    end.

%% One context per interpreter: any worker context for the main one, every owngil context.
interpreters() ->
    Main = case py_context:any_worker() of
               {ok, Ref} -> [Ref];
               error -> []
           end,
    Main ++ py_context:owngil_refs().

eval_on(Ref, Code, Locals) ->
    py_request:run(Ref, undefined, ?TIMEOUT,
                   fun(R, Ns, Tag) -> py_nif:submit_eval(R, Ns, Tag, Code, Locals, plain) end).

%% @doc Runs the calls `{Module, Function, Args}' at the same time, spread over the pool's
%% contexts (round robin), and returns `{ok, [Result]}' in their order, or the first
%% `{error, Reason}' in that order. Each call has 30 s. With an owngil pool the calls run in
%% parallel; with a worker pool they share the GIL (I/O and C code that releases it still
%% overlap).
-spec parallel([{py:py_module(), py:py_func(), list()}]) -> py:py_result().
parallel(Calls) when is_list(Calls) ->
    lists:foreach(fun({M, F, A}) when is_list(A) -> _ = name(M), _ = name(F), ok;
                     (_) -> erlang:error(badarg)
                  end, Calls),
    N = max(1, py_context_router:num_contexts()),
    Indexed = lists:zip(lists:seq(0, length(Calls) - 1), Calls),
    Jobs = [spawn_monitor(fun() ->
                                  Ctx = py_context_router:get_context(I rem N + 1),
                                  exit({parallel_result, py:call(Ctx, M, F, A, #{timeout => ?TIMEOUT})})
                          end) || {I, {M, F, A}} <- Indexed],
    Results = [receive {'DOWN', Mon, process, Pid, Why} -> job_result(Why) end || {Pid, Mon} <- Jobs],
    case [E || {error, _} = E <- Results] of
        [] -> {ok, [V || {ok, V} <- Results]};
        [First | _] -> First
    end;
parallel(_) ->
    erlang:error(badarg).

job_result({parallel_result, Result}) -> Result;
job_result(Crash) -> {error, Crash}.

%% @doc `{ok, Stats}' of the calling process's pool interpreter: `gc_stats' (a map per
%% generation, as `gc.get_stats()'), `gc_count' and `gc_threshold' (tuples), and while
%% `tracemalloc' traces, `traced_memory_current' and `traced_memory_peak' (bytes).
-spec memory_stats() -> {ok, map()} | {error, term()}.
memory_stats() ->
    Code = <<"(lambda gc, tm: dict(gc_stats=gc.get_stats(), gc_count=gc.get_count(), "
             "gc_threshold=gc.get_threshold(), "
             "**(dict(zip(('traced_memory_current', 'traced_memory_peak'), tm.get_traced_memory())) "
             "if tm.is_tracing() else {})))(__import__('gc'), __import__('tracemalloc'))">>,
    case py:eval(Code) of
        {ok, Stats} -> {ok, maps:fold(fun(K, V, Acc) -> Acc#{binary_to_atom(K) => V} end, #{}, Stats)};
        {error, _} = Error -> Error
    end.

%% @doc Collects Generation (0, 1 or 2) on the calling process's pool interpreter:
%% `{ok, Unreachable}'.
-spec gc(0..2) -> {ok, non_neg_integer()} | {error, term()}.
gc(Generation) when Generation =:= 0; Generation =:= 1; Generation =:= 2 ->
    py:call(gc, collect, [Generation]);
gc(_) ->
    erlang:error(badarg).

%% @doc Starts `tracemalloc' with NFrame frames per traceback on the calling process's pool
%% interpreter.
-spec tracemalloc_start(pos_integer()) -> ok | {error, term()}.
tracemalloc_start(NFrame) when is_integer(NFrame), NFrame > 0 ->
    ok_or_error(py:call(tracemalloc, start, [NFrame]));
tracemalloc_start(_) ->
    erlang:error(badarg).

%% @doc Stops `tracemalloc' on the calling process's pool interpreter.
-spec tracemalloc_stop() -> ok | {error, term()}.
tracemalloc_stop() ->
    ok_or_error(py:call(tracemalloc, stop, [])).

ok_or_error({ok, _}) -> ok;
ok_or_error({error, _} = Error) -> Error.

name(N) when is_atom(N) -> atom_to_binary(N, utf8);
name(N) when is_binary(N) -> N;
name(N) when is_list(N) -> unicode:characters_to_binary(N);
name(_) -> erlang:error(badarg).
