%% @doc Pools of contexts and how callers are spread over them.
%%
%% The `default' pool starts with the application: `num_contexts' contexts (app env, default
%% the number of schedulers) in `context_mode'. It can be stopped ({@link stop/0}) and started
%% again with another size or mode ({@link start/1}). More pools, by name, come from
%% {@link start_pool/3}; `py:call(Pool, M, F, A)' runs on one of them, and a Python module (or
%% one function of it) can be routed to a pool with {@link register_pool/2} or {@link register_pool/3}, so that a plain
%% `py:call(M, F, A)' goes there.
%%
%% A process that calls without naming a context sticks to one context per pool: the one it
%% bound with `bind_context/1,2', or else the one it was given at its first call there. First
%% calls are handed out round-robin, so processes spawned together (which start on the same
%% scheduler) still spread over the whole pool. Pool contexts run each calling process in a
%% namespace of its own. A pool context that dies is replaced.
-module(py_context_router).
-behaviour(gen_server).

-export([get_context/0, get_context/1, bind_context/1, bind_context/2,
         unbind_context/0, unbind_context/1,
         num_contexts/0, num_contexts/1, contexts/0, contexts/1,
         start/0, start/1, stop/0, is_started/0,
         start_pool/2, start_pool/3, stop_pool/1, pool_started/1,
         register_pool/2, register_pool/3, unregister_pool/1, unregister_pool/2,
         lookup_pool/2, list_pool_registrations/0]).
-export([start_link/0, pick/0, pick/1, forget_pick/0, forget_pick/1, route/2, route/3,
         policy/0, set_limit/1, valid_size/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([pool_name/0, start_opts/0]).

%% A pool's largest size: each context is an OS thread (an owngil one an interpreter too), so a
%% mistaken size (a byte count, a timestamp) must not start threads until the node falls over.
-define(MAX_POOL_SIZE, 1024).
-define(DEFAULT, default).
-define(POOL_KEY, {?MODULE, pool}).
-define(NAMED_KEY(Name), {?MODULE, pool, Name}).
-define(COUNTER_KEY, {?MODULE, counter}).
%% What a pool call that names no pool must look at: `plain' (nothing registered, no
%% max_concurrent limit: the common case, one read of an atom key) or {Registry, Limit}.
%% Written by the router process only, so that its two parts never race.
-define(POLICY_KEY, '$py_pool_policy').
-define(PICK_KEY, '$py_context_pick').
-define(BOUND_KEY, '$py_context_bound').
-define(CALL_TIMEOUT, 60000).

-type pool_name() :: atom().
-type start_opts() :: #{contexts => pos_integer(), mode => py_context:mode()}.
-type slot() :: {pid(), py_nif:context_ref()}.
%% A pool's mode and its slots (the slots are also in persistent_term, read by callers).
-type pool() :: #{mode := py_context:mode(), slots := tuple()}.
-type state() :: #{pools := #{pool_name() => pool()}}.
%% Registrations: normalized keys for lookups, and the keys as given for listing.
-type registry() :: {#{{binary(), binary() | '_'} => pool_name()},
                     #{{atom() | binary(), atom() | binary() | '_'} => pool_name()}}.
-type policy() :: plain | {registry() | none, py_semaphore:limit()}.

%% --- picking contexts -----------------------------------------------------------------------

%% @doc The default pool's context the calling process uses (picked again if the one it used
%% has stopped, e.g. when the pool was stopped and started again).
-spec get_context() -> py_context:context().
get_context() ->
    {Pid, _Ref} = pick(),
    case is_process_alive(Pid) of
        true -> Pid;
        false ->
            forget_pick(),
            {Next, _} = pick(),
            Next
    end.

%% @doc `get_context(N)': context number N (1-based) of the default pool (badarg when out of
%% range); `get_context(Pool)': the context of pool Pool the calling process uses (badarg when
%% that pool is not started).
-spec get_context(pos_integer() | pool_name()) -> py_context:context().
get_context(N) when is_integer(N), N >= 1 ->
    Pool = pool(),
    N =< tuple_size(Pool) orelse erlang:error(badarg),
    element(1, element(N, Pool));
get_context(Pool) when is_atom(Pool) ->
    case pick(Pool) of
        {error, _} -> erlang:error(badarg);
        {Pid, _Ref} ->
            case is_process_alive(Pid) of
                true -> Pid;
                false ->
                    forget_pick(Pool),
                    get_context_again(Pool)
            end
    end;
get_context(_) ->
    erlang:error(badarg).

get_context_again(Pool) ->
    case pick(Pool) of
        {error, _} -> erlang:error(badarg);
        {Pid, _Ref} -> Pid
    end.

%% @doc Makes the calling process use Ctx for calls on the default pool that name no context.
-spec bind_context(py_context:context()) -> ok.
bind_context(Ctx) ->
    bind_context(?DEFAULT, Ctx).

%% @doc Makes the calling process use Ctx for its calls on pool Pool.
-spec bind_context(pool_name(), py_context:context()) -> ok.
bind_context(Pool, Ctx) when is_atom(Pool), is_pid(Ctx) ->
    case py_context:lookup(Ctx) of
        {ok, Ref, _Kind} ->
            put(bound_key(Pool), {Ctx, Ref}),
            ok;
        error ->
            erlang:error(badarg)
    end;
bind_context(_, _) ->
    erlang:error(badarg).

%% @doc Undoes bind_context/1: the calling process goes back to its default pool context.
-spec unbind_context() -> ok.
unbind_context() ->
    unbind_context(?DEFAULT).

%% @doc Undoes bind_context/2 for pool Pool.
-spec unbind_context(pool_name()) -> ok.
unbind_context(Pool) when is_atom(Pool) ->
    erase(bound_key(Pool)),
    ok;
unbind_context(_) ->
    erlang:error(badarg).

%% @doc The number of contexts in the default pool (0 when it is not running).
-spec num_contexts() -> non_neg_integer().
num_contexts() ->
    tuple_size(pool()).

%% @doc The number of contexts in pool Pool (0 when it is not running).
-spec num_contexts(pool_name()) -> non_neg_integer().
num_contexts(Pool) when is_atom(Pool) ->
    tuple_size(pool(Pool));
num_contexts(_) ->
    erlang:error(badarg).

%% @doc The pids of the default pool's contexts, in order.
-spec contexts() -> [py_context:context()].
contexts() ->
    [Pid || {Pid, _} <- tuple_to_list(pool())].

%% @doc The pids of pool Pool's contexts, in order (`[]' when it is not running).
-spec contexts(pool_name()) -> [py_context:context()].
contexts(Pool) when is_atom(Pool) ->
    [Pid || {Pid, _} <- tuple_to_list(pool(Pool))];
contexts(_) ->
    erlang:error(badarg).

%% --- starting and stopping pools -----------------------------------------------------------

%% @doc Starts the default pool with the application's settings; see {@link start/1}.
-spec start() -> {ok, [py_context:context()]} | {error, term()}.
start() ->
    start(#{}).

%% @doc Starts the default pool: `contexts' contexts (default: the `num_contexts' app env, or
%% the number of schedulers) in `mode' (`worker' or `owngil'; default: the `context_mode' app
%% env). Returns the contexts; when the pool runs already, its contexts as they are (to resize
%% it, {@link stop/0} then start/1 with another `contexts').
-spec start(start_opts()) -> {ok, [py_context:context()]} | {error, term()}.
start(Opts) when is_map(Opts) ->
    case maps:keys(maps:without([contexts, mode], Opts)) of
        [] ->
            Size = maps:get(contexts, Opts, default_size()),
            Mode = maps:get(mode, Opts, default_mode()),
            start_pool(?DEFAULT, Size, Mode);
        [Key | _] ->
            {error, {unknown_option, Key}}
    end;
start(_) ->
    erlang:error(badarg).

%% @doc Stops the default pool: its contexts stop (requests they have queued get
%% `{error, context_stopped}'); calls that name no context fail until it is started again.
-spec stop() -> ok.
stop() ->
    stop_pool(?DEFAULT).

%% @doc Whether the default pool is running.
-spec is_started() -> boolean().
is_started() ->
    pool_started(?DEFAULT).

%% @doc Starts pool Pool with Size worker contexts.
-spec start_pool(pool_name(), pos_integer()) -> {ok, [py_context:context()]} | {error, term()}.
start_pool(Pool, Size) ->
    start_pool(Pool, Size, worker).

%% @doc Starts pool Pool with Size contexts in Mode (`worker' or `owngil'; `auto' is `worker'), owned by the
%% application (they stop with it, or with {@link stop_pool/1}). When Pool runs already, its
%% contexts as they are. `{error, {invalid_size, Size}}' (Size from 1 to 1,024: each context is an
%% OS thread, an owngil one an interpreter too), `{error, {invalid_mode, Mode}}', or
%% the error of the first context that could not start (the others are stopped again).
-spec start_pool(pool_name(), pos_integer(), py_context:mode()) ->
    {ok, [py_context:context()]} | {error, term()}.
start_pool(Pool, Size, auto) ->
    start_pool(Pool, Size, worker);
start_pool(Pool, Size, Mode) when is_atom(Pool) ->
    case valid_size(Size) of
        false -> {error, {invalid_size, Size}};
        true when Mode =/= worker, Mode =/= owngil -> {error, {invalid_mode, Mode}};
        true -> call_router({start_pool, Pool, Size, Mode})
    end;
start_pool(_, _, _) ->
    erlang:error(badarg).

%% @private
%% Whether Size is a pool size start_pool/3 takes (also the check of the `num_contexts' app env).
-spec valid_size(term()) -> boolean().
valid_size(Size) ->
    is_integer(Size) andalso Size >= 1 andalso Size =< ?MAX_POOL_SIZE.

%% @doc Stops pool Pool (`ok' also when it is not running). Registrations that route to it
%% stay: calls they route fail with `{error, {pool_not_started, Pool}}' until it runs again.
-spec stop_pool(pool_name()) -> ok.
stop_pool(Pool) when is_atom(Pool) ->
    case call_router({stop_pool, Pool}) of
        {error, not_started} -> ok;
        ok -> ok
    end;
stop_pool(_) ->
    erlang:error(badarg).

%% @doc Whether pool Pool is running.
-spec pool_started(pool_name()) -> boolean().
pool_started(Pool) when is_atom(Pool) ->
    tuple_size(pool(Pool)) > 0;
pool_started(_) ->
    erlang:error(badarg).

%% --- routing modules to pools --------------------------------------------------------------

%% @doc Routes every function of Python module Module to pool Pool: `py:call(Module, F, A)'
%% (and its /4, /5 forms without a pool or context) runs there.
-spec register_pool(pool_name(), atom() | binary()) -> ok.
register_pool(Pool, Module) when is_atom(Pool), (is_atom(Module) orelse is_binary(Module)) ->
    update_registry({register, Pool, Module, '_'});
register_pool(_, _) ->
    erlang:error(badarg).

%% @doc Routes `Module.Function' to pool Pool; it takes precedence over a registration of the
%% whole module.
-spec register_pool(pool_name(), atom() | binary(), atom() | binary()) -> ok.
register_pool(Pool, Module, Function)
  when is_atom(Pool), (is_atom(Module) orelse is_binary(Module)),
       (is_atom(Function) orelse is_binary(Function)), Function =/= '_' ->
    update_registry({register, Pool, Module, Function});
register_pool(_, _, _) ->
    erlang:error(badarg).

%% @doc Removes the registration of module Module (those of its single functions stay).
-spec unregister_pool(atom() | binary()) -> ok.
unregister_pool(Module) when is_atom(Module); is_binary(Module) ->
    update_registry({unregister, Module, '_'});
unregister_pool(_) ->
    erlang:error(badarg).

%% @doc Removes the registration of `Module.Function'.
-spec unregister_pool(atom() | binary(), atom() | binary()) -> ok.
unregister_pool(Module, Function)
  when (is_atom(Module) orelse is_binary(Module)), (is_atom(Function) orelse is_binary(Function)) ->
    update_registry({unregister, Module, Function});
unregister_pool(_, _) ->
    erlang:error(badarg).

%% @doc The pool calls of `Module.Function' go to: that of a function registration, else that
%% of a module registration, else `default'.
-spec lookup_pool(atom() | binary() | string(), atom() | binary() | string()) -> pool_name().
lookup_pool(Module, Function) ->
    route(Module, Function).

%% @doc Every registration: `{{Module, Function | '_'}, Pool}', Module and Function as given.
-spec list_pool_registrations() -> [{{atom() | binary(), atom() | binary() | '_'}, pool_name()}].
list_pool_registrations() ->
    case policy() of
        {{_, Listing}, _} -> lists:sort(maps:to_list(Listing));
        _ -> []
    end.

%% @private
%% The pool of a call that names none (what lookup_pool/2 says).
-spec route(term(), term()) -> pool_name().
route(Module, Function) ->
    case policy() of
        {Registry, _} -> route(Registry, Module, Function);
        plain -> ?DEFAULT
    end.

%% @private
%% route/2 with the registry of a policy already read.
-spec route(registry() | none, term(), term()) -> pool_name().
route(none, _Module, _Function) ->
    ?DEFAULT;
route({Lookup, _}, Module, Function) ->
    M = name_key(Module),
    case maps:find({M, name_key(Function)}, Lookup) of
        {ok, Pool} -> Pool;
        error -> maps:get({M, '_'}, Lookup, ?DEFAULT)
    end.

%% @private
%% What pool calls must look at (see ?POLICY_KEY).
-spec policy() -> policy().
policy() ->
    persistent_term:get(?POLICY_KEY, plain).

%% @private
%% Sets the max_concurrent limit kept in the policy (py_semaphore:set_max_concurrent/1).
-spec set_limit(py_semaphore:limit()) -> ok | {error, not_started}.
set_limit(Max) ->
    call_router({set_limit, Max}).

name_key(Name) when is_atom(Name) -> atom_to_binary(Name, utf8);
name_key(Name) when is_binary(Name) -> Name;
name_key(Name) when is_list(Name) ->
    case unicode:characters_to_binary(Name) of
        Bin when is_binary(Bin) -> Bin;
        _ -> Name
    end;
name_key(Name) -> Name.

%% --- the pick of the calling process ---------------------------------------------------------

%% @private
%% The default pool's context (pid and NIF handle) for a call that names none. Raises
%% `{py_not_started, _}' when the default pool is not running.
-spec pick() -> slot().
pick() ->
    case pick_in(fun pool/0, ?BOUND_KEY, ?PICK_KEY) of
        {error, _} -> erlang:error({py_not_started, "the default pool of contexts is not running"});
        Picked -> Picked
    end.

%% @private
%% The context of pool Pool for the calling process.
-spec pick(pool_name()) -> slot() | {error, {pool_not_started, pool_name()}}.
pick(?DEFAULT) ->
    try pick()
    catch error:{py_not_started, _} -> {error, {pool_not_started, ?DEFAULT}}
    end;
pick(Pool) ->
    case pick_in(fun() -> pool(Pool) end, bound_key(Pool), pick_key(Pool)) of
        {error, _} -> {error, {pool_not_started, Pool}};
        Picked -> Picked
    end.

%% The context bound to the calling process, else the one it picked before, else a new pick
%% from the pool PoolOf() gives (kept under PickKey); {error, _} when that pool is not running.
pick_in(PoolOf, BoundKey, PickKey) ->
    case get(BoundKey) of
        undefined ->
            case get(PickKey) of
                undefined -> pick_next(PoolOf(), PickKey);
                Picked -> Picked
            end;
        Bound ->
            Bound
    end.

%% @private
%% Drops the cached pick of the default pool (after its context stopped) so the next call
%% picks again.
-spec forget_pick() -> ok.
forget_pick() ->
    forget_pick(?DEFAULT).

%% @private
%% forget_pick/0 for pool Pool.
-spec forget_pick(pool_name()) -> ok.
forget_pick(Pool) ->
    erase(pick_key(Pool)),
    case get(bound_key(Pool)) of
        {Pid, _} -> is_process_alive(Pid) orelse erase(bound_key(Pool));
        undefined -> ok
    end,
    ok.

pick_key(?DEFAULT) -> ?PICK_KEY;
pick_key(Pool) -> {?PICK_KEY, Pool}.

bound_key(?DEFAULT) -> ?BOUND_KEY;
bound_key(Pool) -> {?BOUND_KEY, Pool}.

pick_next(Slots, Key) ->
    case tuple_size(Slots) of
        0 -> {error, not_started};
        N ->
            Turn = atomics:add_get(persistent_term:get(?COUNTER_KEY), 1, 1),
            Picked = element(Turn rem N + 1, Slots),
            put(Key, Picked),
            Picked
    end.

pool() ->
    persistent_term:get(?POOL_KEY, {}).

pool(?DEFAULT) -> pool();
pool(Name) -> persistent_term:get(?NAMED_KEY(Name), {}).

publish(?DEFAULT, Slots) -> persistent_term:put(?POOL_KEY, Slots);
publish(Name, Slots) -> persistent_term:put(?NAMED_KEY(Name), Slots).

unpublish(?DEFAULT) -> persistent_term:erase(?POOL_KEY);
unpublish(Name) -> persistent_term:erase(?NAMED_KEY(Name)).

default_size() ->
    application:get_env(erlang_python, num_contexts, erlang:system_info(schedulers)).

default_mode() ->
    application:get_env(erlang_python, context_mode, worker).

call_router(Request) ->
    try gen_server:call(?MODULE, Request, ?CALL_TIMEOUT)
    catch exit:{noproc, _} -> {error, not_started}
    end.

update_registry(Change) ->
    case call_router({registry, Change}) of
        ok -> ok;
        {error, not_started} -> erlang:error({py_not_started, "the erlang_python application is not running"})
    end.

%% --- the router process ---------------------------------------------------------------

%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @private
-spec init([]) -> {ok, state()} | {stop, {pool_start_failed, term()}}.
init([]) ->
    process_flag(trap_exit, true),
    persistent_term:put(?COUNTER_KEY, atomics:new(1, [{signed, false}])),
    %% Registrations and the limit outlive a restart of the router (not of the application:
    %% terminate/2 erases them on shutdown).
    case persistent_term:get(?POLICY_KEY, undefined) of
        undefined -> put_policy(none, application:get_env(erlang_python, max_concurrent, infinity));
        _ -> ok
    end,
    case start_slots(default_size(), default_mode()) of
        {ok, Slots} ->
            publish(?DEFAULT, Slots),
            {ok, #{pools => #{?DEFAULT => #{mode => default_mode(), slots => Slots}}}};
        {error, Reason} ->
            {stop, {pool_start_failed, Reason}}
    end.

%% Starts N contexts; on a failure, stops those already started.
start_slots(N, Mode) ->
    start_slots(N, Mode, []).

start_slots(0, _Mode, Acc) ->
    {ok, list_to_tuple(lists:reverse(Acc))};
start_slots(N, Mode, Acc) ->
    case start_pool_context(Mode) of
        {error, _} = Error ->
            _ = [py_context:stop(Pid) || {Pid, _} <- Acc],
            Error;
        Slot ->
            start_slots(N - 1, Mode, [Slot | Acc])
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
-spec handle_call(term(), gen_server:from(), state()) -> {reply, term(), state()}.
handle_call({start_pool, Name, Size, Mode}, _From, #{pools := Pools} = State) ->
    case Pools of
        #{Name := #{slots := Slots}} ->
            {reply, {ok, [Pid || {Pid, _} <- tuple_to_list(Slots)]}, State};
        #{} ->
            case start_slots(Size, Mode) of
                {ok, Slots} ->
                    publish(Name, Slots),
                    {reply, {ok, [Pid || {Pid, _} <- tuple_to_list(Slots)]},
                     State#{pools := Pools#{Name => #{mode => Mode, slots => Slots}}}};
                {error, _} = Error ->
                    {reply, Error, State}
            end
    end;
handle_call({stop_pool, Name}, _From, #{pools := Pools} = State) ->
    case maps:take(Name, Pools) of
        {#{slots := Slots}, Rest} ->
            %% Unpublished first: no new call picks a context that is stopping.
            _ = unpublish(Name),
            stop_slots(Slots),
            {reply, ok, State#{pools := Rest}};
        error ->
            {reply, ok, State}
    end;
handle_call({registry, Change}, _From, State) ->
    {Registry, Limit} = policy_parts(),
    Changed = case change_registry(Change, registry_or_empty(Registry)) of
                  {Lookup, _} when map_size(Lookup) =:= 0 -> none;
                  New -> New
              end,
    put_policy(Changed, Limit),
    {reply, ok, State};
handle_call({set_limit, Max}, _From, State) ->
    {Registry, _} = policy_parts(),
    put_policy(Registry, Max),
    {reply, ok, State};
handle_call(_Msg, _From, State) ->
    {reply, {error, unknown_call}, State}.

policy_parts() ->
    case policy() of
        plain -> {none, infinity};
        Parts -> Parts
    end.

registry_or_empty(none) -> {#{}, #{}};
registry_or_empty(Registry) -> Registry.

put_policy(Registry, Limit) ->
    New = case {Registry, Limit} of
              {none, infinity} -> plain;
              Parts -> Parts
          end,
    case policy() of
        New -> ok;
        _ -> persistent_term:put(?POLICY_KEY, New)
    end.

-spec change_registry(term(), registry()) -> registry().
change_registry({register, Pool, Module, Function}, {Lookup, Listing}) ->
    {Lookup#{{name_key(Module), fn_key(Function)} => Pool},
     maps:put({Module, Function}, Pool, drop_listed(Module, Function, Listing))};
change_registry({unregister, Module, Function}, {Lookup, Listing}) ->
    {maps:remove({name_key(Module), fn_key(Function)}, Lookup), drop_listed(Module, Function, Listing)}.

fn_key('_') -> '_';
fn_key(Function) -> name_key(Function).

%% The listed entries for the same (normalized) key: `json' and `<<"json">>' are one module.
drop_listed(Module, Function, Listing) ->
    Key = {name_key(Module), fn_key(Function)},
    maps:filter(fun({M, F}, _) -> {name_key(M), fn_key(F)} =/= Key end, Listing).

stop_slots(Slots) ->
    _ = [py_context:stop(Pid) || {Pid, _} <- tuple_to_list(Slots)],
    ok.

%% @private
-spec handle_cast(term(), state()) -> {noreply, state()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), state()) -> {noreply, state()} | {stop, {pool_restart_failed, term()}, state()}.
handle_info({'DOWN', _, process, Pid, _}, #{pools := Pools} = State) ->
    case [{Name, Pool} || {Name, #{slots := Slots} = Pool} <- maps:to_list(Pools),
                          lists:keymember(Pid, 1, tuple_to_list(Slots))] of
        [{Name, #{mode := Mode, slots := Slots} = Pool}] ->
            case start_pool_context(Mode) of
                {error, Reason} ->
                    {stop, {pool_restart_failed, Reason}, State};
                New ->
                    Slots1 = list_to_tuple(lists:keyreplace(Pid, 1, tuple_to_list(Slots), New)),
                    publish(Name, Slots1),
                    {noreply, State#{pools := Pools#{Name := Pool#{slots := Slots1}}}}
            end;
        [] ->
            {noreply, State}
    end;
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), state()) -> ok.
terminate(Reason, #{pools := Pools}) ->
    %% Registrations outlive a restart of the router, not the application.
    Reason =:= shutdown andalso persistent_term:erase(?POLICY_KEY),
    maps:foreach(fun(Name, #{slots := Slots}) ->
                         _ = unpublish(Name),
                         stop_slots(Slots)
                 end, Pools);
terminate(_Reason, _State) ->
    ok.
