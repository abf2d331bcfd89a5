%% @doc Setup that every Python interpreter of the node gets: the main interpreter (shared by
%% all worker contexts) and the subinterpreter of each owngil context, including contexts that
%% start later. Used by {@link py_venv} and {@link py_logger}.
%%
%% A step is a key and a Python call, `{Module, Function, Args}', that brings an interpreter to
%% the state wanted for that key (for `venv': this venv's site-packages on sys.path; after
%% deactivation: none). Setting a key replaces its call. The steps live in an ETS table owned
%% by `erlang_python_sup'; setting one runs its call at once on every running interpreter
%% (one worker context for the main interpreter, every owngil context), and every context runs
%% all steps when it starts, in the order they were set.
%%
%% Each set gets a new version number; an interpreter runs a key's call only if it has not run
%% that version or a newer one (`priv/_erlang_setup.py'). So a step that reaches an interpreter
%% twice (a context starting while it is broadcast), or an older one that arrives after a newer
%% one, changes nothing, and no lock is needed between contexts starting and steps being set.
%% Versions grow for the life of the node, not of the application: the main interpreter, and
%% the versions it has run, outlive an application restart.
-module(py_setup).

-export([init_table/0, set/3, lookup/1, steps/0, sync/1]).

-export_type([key/0, step_call/0]).

-define(TABLE, py_setup_steps).
%% How long a context that starts waits for one step; a step that takes longer is reported
%% and the context starts without it.
-define(SYNC_TIMEOUT, 30000).

-type key() :: atom().
-type step_call() :: {module(), atom(), list()}.

%% @doc Creates the table of steps; called by erlang_python_sup, which owns it.
-spec init_table() -> ok.
init_table() ->
    _ = ets:new(?TABLE, [named_table, public, set]),
    ok.

%% @doc Makes `Call' the step for Key, with Info (any term, `undefined' for none) kept beside
%% it for {@link lookup/1}, and runs it on every running interpreter. Returns when every
%% interpreter has run it: `ok', or `{error, Reason}' with the first failure (a Python
%% exception as `{error, {Type, Message}}'). Interpreters that failed keep their previous state
%% for Key and are tried again when the key is next set; a context that starts later runs it.
%% `{error, not_started}' when the application is not running.
-spec set(key(), step_call(), term()) -> ok | {error, term()}.
set(Key, {Module, Function, Args} = Call, Info) when is_atom(Key), is_atom(Module), is_atom(Function),
                                                     is_list(Args) ->
    %% Not a counter in the table: that starts again at 1 when the application restarts, and
    %% the main interpreter, which has run the old versions, would skip the new ones.
    Version = erlang:unique_integer([positive, monotonic]),
    try store({Key, Version, Call, Info}) of
        ok -> broadcast(Key, Version, Call)
    catch error:badarg ->
        {error, not_started}
    end;
set(_, _, _) ->
    erlang:error(badarg).

%% @doc The Info kept with Key's step by {@link set/3}: `{ok, Info}', or `error' when the key
%% was never set or its Info is `undefined'.
-spec lookup(key()) -> {ok, term()} | error.
lookup(Key) ->
    try ets:lookup(?TABLE, Key) of
        [{Key, _Version, _Call, Info}] when Info =/= undefined -> {ok, Info};
        _ -> error
    catch error:badarg -> error  % the application is not running
    end.

%% @doc Every step, oldest first: `{Key, Version, Call, Info}'.
-spec steps() -> [{key(), pos_integer(), step_call(), term()}].
steps() ->
    lists:keysort(2, [Step || {_, _, _, _} = Step <- ets:tab2list(?TABLE)]).

%% @doc Runs every step on the interpreter of context Ref (called by py_context as the context
%% starts). A step that fails is reported with `logger:warning' and skipped.
-spec sync(py_nif:context_ref()) -> ok.
sync(Ref) ->
    lists:foreach(fun({Key, Version, Call, _Info}) ->
                          case run_step(Ref, Key, Version, Call, ?SYNC_TIMEOUT) of
                              {ok, _} -> ok;
                              Failed ->
                                  logger:warning("erlang_python: setup step ~p could not run on a new context: ~0tp",
                                                 [Key, Failed], #{domain => [erlang_python]})
                          end
                  end, steps()).

%% Keeps the newest version of Key's step: two sets racing may store in either order.
store({Key, Version, _, _} = Step) ->
    case ets:insert_new(?TABLE, Step) of
        true -> ok;
        false ->
            Newer = [{{Key, '$1', '_', '_'}, [{'<', '$1', Version}], [{const, Step}]}],
            _ = ets:select_replace(?TABLE, Newer),
            ok
    end.

%% The step on one worker context (for the main interpreter) and on every owngil context, in
%% parallel, each waiting as long as its context needs (a context busy with a long call delays
%% the answer).
broadcast(Key, Version, Call) ->
    Targets = [main | owngil_contexts()] ++ isolated_contexts(Key),
    Parent = self(),
    Workers = [spawn_monitor(fun() -> exit({step_done, Parent, run_target(T, Key, Version, Call)}) end)
               || T <- Targets],
    first_error([receive {'DOWN', Mon, process, Pid, Reason} -> step_result(Reason) end
                 || {Pid, Mon} <- Workers]).

step_result({step_done, _, Result}) -> Result;
step_result(Crash) -> {error, Crash}.

first_error(Results) ->
    case [E || {error, _} = E <- Results] of
        [] -> ok;
        [First | _] -> First
    end.

%% The main interpreter is reached through any worker context; if that one stops meanwhile,
%% through another. None running: the next worker context to start runs the step.
run_target(main, Key, Version, Call) ->
    run_on_main(Key, Version, Call, 5);
run_target({owngil, Ref}, Key, Version, Call) ->
    ok_or_gone(run_step(Ref, Key, Version, Call, infinity));
run_target({isolated, Pid}, Key, Version, {Module, Function, Args}) ->
    Step = [atom_to_binary(Key, utf8), Version, Module, Function, Args],
    case py_isolated:request(Pid, {call, '_erlang_setup', apply, Step, #{}}, infinity) of
        {error, context_not_found} -> ok;
        {error, {python_crashed, _}} -> ok;   % the next child takes the step when it starts
        {error, {context_down, _}} -> ok;
        Result -> ok_or_gone(Result)
    end.

run_on_main(_Key, _Version, _Call, 0) ->
    {error, no_worker_context};
run_on_main(Key, Version, Call, Tries) ->
    case py_context:any_worker() of
        error -> ok;
        {ok, Ref} ->
            case run_step(Ref, Key, Version, Call, infinity) of
                {error, context_stopped} -> run_on_main(Key, Version, Call, Tries - 1);
                Result -> ok_or_gone(Result)
            end
    end.

ok_or_gone({ok, _}) -> ok;
ok_or_gone({error, context_stopped}) -> ok;  % its interpreter is gone with it
ok_or_gone({error, _} = Error) -> Error.

run_step(Ref, Key, Version, {Module, Function, Args}, Timeout) ->
    Step = [atom_to_binary(Key, utf8), Version, Module, Function, Args],
    py_request:run(Ref, undefined, Timeout,
                   fun(R, Ns, Tag) -> py_nif:submit_call(R, Ns, Tag, '_erlang_setup', apply, Step, #{}, plain) end).

%% Isolated contexts take only some steps (py_isolated:setup_keys/0); each new child takes
%% them when it starts.
isolated_contexts(Key) ->
    case lists:member(Key, py_isolated:setup_keys()) of
        true -> [{isolated, Pid} || Pid <- py_isolated:all()];
        false -> []
    end.

owngil_contexts() ->
    [{owngil, Ref} || Ref <- py_context:owngil_refs()].
