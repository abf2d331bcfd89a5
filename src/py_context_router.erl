%% @doc The default pool of contexts and how callers are spread over it.
%%
%% The pool starts with the application: `num_contexts' contexts (app env, default the number
%% of schedulers). A process that calls without naming a context sticks to one pool context:
%% the one it bound with `bind_context/1', or else the one it was given at its first call.
%% First calls are handed out round-robin, so processes spawned together (which start on the
%% same scheduler) still spread over the whole pool. A pool context that dies is replaced.
-module(py_context_router).
-behaviour(gen_server).

-export([get_context/0, get_context/1, bind_context/1, unbind_context/0,
         num_contexts/0, contexts/0]).
-export([start_link/0, pick/0, forget_pick/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(POOL_KEY, {?MODULE, pool}).
-define(COUNTER_KEY, {?MODULE, counter}).
-define(PICK_KEY, '$py_context_pick').
-define(BOUND_KEY, '$py_context_bound').

%% The router's state: the pool's mode and its {Pid, Ref} slots (also in persistent_term).
-type state() :: #{mode := py_context:mode(), pool := tuple()}.

%% @doc The pool context the calling process uses.
-spec get_context() -> py_context:context().
get_context() ->
    {Pid, _Ref} = pick(),
    Pid.

%% @doc Pool context number N (1-based). Raises badarg when N is out of range.
-spec get_context(pos_integer()) -> py_context:context().
get_context(N) when is_integer(N), N >= 1 ->
    Pool = pool(),
    N =< tuple_size(Pool) orelse erlang:error(badarg),
    element(1, element(N, Pool));
get_context(_) ->
    erlang:error(badarg).

%% @doc Makes the calling process use Ctx for calls that name no context.
-spec bind_context(py_context:context()) -> ok.
bind_context(Ctx) when is_pid(Ctx) ->
    case py_context:lookup(Ctx) of
        {ok, Ref, _Kind} ->
            put(?BOUND_KEY, {Ctx, Ref}),
            ok;
        error ->
            erlang:error(badarg)
    end;
bind_context(_) ->
    erlang:error(badarg).

%% @doc Undoes bind_context/1: the calling process goes back to its pool context.
-spec unbind_context() -> ok.
unbind_context() ->
    erase(?BOUND_KEY),
    ok.

%% @doc The number of contexts in the default pool (0 when it is not running).
-spec num_contexts() -> non_neg_integer().
num_contexts() ->
    tuple_size(pool()).

%% @doc The pids of the default pool's contexts.
-spec contexts() -> [py_context:context()].
contexts() ->
    [Pid || {Pid, _} <- tuple_to_list(pool())].

%% @private
%% The context (pid and NIF handle) for a call that names none.
-spec pick() -> {pid(), py_nif:context_ref()}.
pick() ->
    case get(?BOUND_KEY) of
        undefined ->
            case get(?PICK_KEY) of
                undefined -> pick_next();
                Picked -> Picked
            end;
        Bound ->
            Bound
    end.

%% @private
%% Drops the cached pick (after its context stopped) so the next call picks again.
-spec forget_pick() -> ok.
forget_pick() ->
    erase(?PICK_KEY),
    case get(?BOUND_KEY) of
        {Pid, _} -> is_process_alive(Pid) orelse erase(?BOUND_KEY);
        undefined -> ok
    end,
    ok.

pick_next() ->
    Pool = pool(),
    case tuple_size(Pool) of
        0 -> erlang:error({py_not_started, "the erlang_python application is not running"});
        N ->
            Turn = atomics:add_get(persistent_term:get(?COUNTER_KEY), 1, 1),
            Picked = element(Turn rem N + 1, Pool),
            put(?PICK_KEY, Picked),
            Picked
    end.

pool() ->
    persistent_term:get(?POOL_KEY, {}).

%% --- the router process ---------------------------------------------------------------

%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @private
-spec init([]) -> {ok, state()} | {stop, {pool_start_failed, term()}}.
init([]) ->
    process_flag(trap_exit, true),
    N = application:get_env(erlang_python, num_contexts, erlang:system_info(schedulers)),
    Mode = application:get_env(erlang_python, context_mode, worker),
    Slots = [start_pool_context(Mode) || _ <- lists:seq(1, N)],
    case [R || {error, R} <- Slots] of
        [] ->
            Pool = list_to_tuple(Slots),
            persistent_term:put(?COUNTER_KEY, atomics:new(1, [{signed, false}])),
            persistent_term:put(?POOL_KEY, Pool),
            {ok, #{mode => Mode, pool => Pool}};
        [Reason | _] ->
            {stop, {pool_start_failed, Reason}}
    end.

start_pool_context(Mode) ->
    case py_context_sup:start_context(#{mode => Mode, owner => self(), kind => pool}) of
        {ok, Pid} ->
            erlang:monitor(process, Pid),
            {ok, Ref, pool} = py_context:lookup(Pid),
            {Pid, Ref};
        {error, _} = Error ->
            Error
    end.

%% @private
-spec handle_call(term(), gen_server:from(), state()) -> {reply, {error, unknown_call}, state()}.
handle_call(_Msg, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), state()) -> {noreply, state()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), state()) -> {noreply, state()} | {stop, {pool_restart_failed, term()}, state()}.
handle_info({'DOWN', _, process, Pid, _}, #{mode := Mode, pool := Pool} = State) ->
    Slots = tuple_to_list(Pool),
    case lists:keymember(Pid, 1, Slots) of
        true ->
            case start_pool_context(Mode) of
                {error, Reason} ->
                    {stop, {pool_restart_failed, Reason}, State};
                New ->
                    Pool1 = list_to_tuple(lists:keyreplace(Pid, 1, Slots, New)),
                    persistent_term:put(?POOL_KEY, Pool1),
                    {noreply, State#{pool := Pool1}}
            end;
        false ->
            {noreply, State}
    end;
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), state()) -> ok.
terminate(_Reason, #{pool := Pool}) ->
    persistent_term:erase(?POOL_KEY),
    _ = [py_context:stop(Pid) || {Pid, _} <- tuple_to_list(Pool)],
    ok;
terminate(_Reason, _State) ->
    ok.
