%% @doc A limit on the number of pool calls running at once (`max_concurrent').
%%
%% Unset (the default), there is no limit and pool calls do not touch the semaphore at all.
%% Set with the `max_concurrent' application variable or {@link set_max_concurrent/1}, each
%% `py:call/3,4,5' on a pool takes a slot for as long as it runs; a call that finds every slot
%% taken waits, within its own timeout, for one to be released (in the order the waiters
%% came), and gives `{error, {overloaded, Current, Max}}' only if none came in time. Calls
%% naming a context, `eval', `exec' and asynchronous calls take no slot.
%%
%% {@link acquire/1} and {@link release/0} take and give back slots by hand. A slot belongs to
%% the process that took it: `release/0' from a process that holds none does nothing, and the
%% slots of a process that died holding them are taken back as soon as a caller waits.
%%
%% A slot is an entry of an ETS table whose size is the count (no process on the way when one
%% is free; a process killed at any point leaves no slot counted that nobody can give back);
%% the `py_semaphore' process only queues the callers that wait.
-module(py_semaphore).

-include("py_timeout.hrl").
-behaviour(gen_server).

-export([max_concurrent/0, current/0, acquire/1, release/0, set_max_concurrent/1]).
-export([with_slot/2, start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(COUNTERS_KEY, {?MODULE, counters}).
-define(HOLDERS, py_semaphore_holders).
-define(WAITING, 1).
-define(SLOTS_KEY, '$py_semaphore_slots').

-type limit() :: pos_integer() | infinity.
-export_type([limit/0]).
-type waiter() :: {pid(), reference(), reference()}.

%% @doc The limit: a positive integer, or `infinity' when none is set.
-spec max_concurrent() -> limit().
max_concurrent() ->
    case py_context_router:policy() of
        {_, Max} -> Max;
        plain -> infinity
    end.

%% @doc The number of slots taken now (pool calls take one only while a limit is set).
-spec current() -> non_neg_integer().
current() ->
    case ets:info(?HOLDERS, size) of
        undefined -> 0;
        N -> N
    end.

%% @doc Sets the limit (`infinity' removes it). A higher limit lets waiting callers go on at
%% once; a lower one makes new callers wait until enough running calls have finished.
-spec set_max_concurrent(limit()) -> ok.
set_max_concurrent(Max) when Max =:= infinity; is_integer(Max), Max > 0 ->
    case py_context_router:set_limit(Max) of
        ok -> wake_server();
        {error, not_started} -> erlang:error({py_not_started, "the erlang_python application is not running"})
    end;
set_max_concurrent(_) ->
    erlang:error(badarg).

%% @doc Takes a slot for the calling process, waiting at most Timeout ms (`infinity' for no
%% bound) for one: `ok', or `{error, max_concurrent}' when none came in time. Without a limit,
%% `ok' at once (the slot is still counted). Give it back with {@link release/0}.
-spec acquire(py:timeout_ms()) -> ok | {error, max_concurrent}.
acquire(Timeout) when ?IS_TIMEOUT(Timeout) ->
    case take(py_request:deadline(Timeout)) of
        ok -> ok;
        timeout -> {error, max_concurrent}
    end;
acquire(_) ->
    erlang:error(badarg).

%% @doc Gives back a slot the calling process took (`ok', and nothing happens, if it holds
%% none).
-spec release() -> ok.
release() ->
    case get(?SLOTS_KEY) of
        [Slot | Rest] ->
            put(?SLOTS_KEY, Rest),
            try ets:delete(?HOLDERS, Slot)
            catch error:badarg -> ok  % the application stopped meanwhile
            end,
            wake_waiters();
        _ ->
            ok
    end.

%% @private
%% Fun(TimeLeft) holding a slot, taken within Timeout.
-spec with_slot(py:timeout_ms(), fun((py:timeout_ms()) -> Result)) ->
    Result | {error, {overloaded, non_neg_integer(), limit()}}.
with_slot(Timeout, Fun) ->
    Deadline = py_request:deadline(Timeout),
    case take(Deadline) of
        ok ->
            try Fun(py_request:remaining(Deadline))
            after release()
            end;
        timeout ->
            {error, {overloaded, current(), max_concurrent()}}
    end.

%% --- taking and giving back -----------------------------------------------------------------
%%
%% A slot is one object {{Pid, Ref}} of the holders table, whose size is the count: taking and
%% counting are one write, so a process killed at any point leaves either no slot or a slot
%% of a dead process, which the server takes back. The holder keeps its slots' keys in its
%% process dictionary for release/0.

take(Deadline) ->
    case ets:info(?HOLDERS, size) of
        undefined -> erlang:error({py_not_started, "the erlang_python application is not running"});
        _ ->
            case try_take(self(), max_concurrent()) of
                {ok, Slot} -> keep(Slot);
                false -> wait_for_slot(Deadline)
            end
    end.

%% Takes a slot for Pid if one is free. Two takers racing for the last slot may both back off
%% (they then queue at the server); never both get it.
try_take(Pid, Max) ->
    Slot = {Pid, make_ref()},
    true = ets:insert(?HOLDERS, {Slot}),
    case Max =:= infinity orelse ets:info(?HOLDERS, size) =< Max of
        true -> {ok, Slot};
        false ->
            ets:delete(?HOLDERS, Slot),
            false
    end.

keep(Slot) ->
    put(?SLOTS_KEY, [Slot | case get(?SLOTS_KEY) of undefined -> []; Slots -> Slots end]),
    ok.

%% Queues at the server, which takes a slot for this process and sends it.
wait_for_slot(Deadline) ->
    case whereis(?MODULE) of
        undefined ->
            timeout;
        Server ->
            Tag = erlang:monitor(process, Server),
            Server ! {wait, self(), Tag},
            receive
                {Tag, {granted, Slot}} ->
                    erlang:demonitor(Tag, [flush]),
                    keep(Slot);
                {'DOWN', Tag, process, _, _} ->
                    timeout
            after py_request:remaining(Deadline) ->
                Server ! {cancel, self(), Tag},
                cancelled(Tag)
            end
    end.

%% After a cancel the server answers `cancelled' (still queued) or `not_queued' (a grant is
%% on its way or here already: that slot is given back).
cancelled(Tag) ->
    receive
        {Tag, {granted, Slot}} ->
            ok = keep(Slot),
            ok = release(),
            cancelled(Tag);
        {Tag, Final} when Final =:= cancelled; Final =:= not_queued ->
            erlang:demonitor(Tag, [flush]),
            timeout;
        {'DOWN', Tag, process, _, _} ->
            timeout
    end.

wake_waiters() ->
    case counters() of
        undefined -> ok;
        Counters ->
            case atomics:get(Counters, ?WAITING) of
                0 -> ok;
                _ -> wake_server()
            end
    end.

wake_server() ->
    case whereis(?MODULE) of
        undefined -> ok;
        Server -> Server ! wake, ok
    end.

counters() ->
    persistent_term:get(?COUNTERS_KEY, undefined).

%% --- the server: the queue of waiting callers ---------------------------------------------------

%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @private
-spec init([]) -> {ok, queue:queue(waiter())}.
init([]) ->
    %% ordered_set: a process's slots are found by their key prefix {Pid, _}. No
    %% write_concurrency: the size must be exact when a taker reads it.
    _ = ets:new(?HOLDERS, [named_table, public, ordered_set]),
    persistent_term:put(?COUNTERS_KEY, atomics:new(1, [{signed, true}])),
    {ok, queue:new()}.

%% @private
-spec handle_call(term(), gen_server:from(), queue:queue(waiter())) ->
    {reply, {error, unknown_call}, queue:queue(waiter())}.
handle_call(_Msg, _From, Queue) ->
    {reply, {error, unknown_call}, Queue}.

%% @private
-spec handle_cast(term(), queue:queue(waiter())) -> {noreply, queue:queue(waiter())}.
handle_cast(_Msg, Queue) ->
    {noreply, Queue}.

%% @private
-spec handle_info(term(), queue:queue(waiter())) -> {noreply, queue:queue(waiter())}.
handle_info({wait, Pid, Tag}, Queue) ->
    atomics:add(counters(), ?WAITING, 1),
    Mon = erlang:monitor(process, Pid),
    {noreply, grant(queue:in({Pid, Tag, Mon}, Queue), true)};
handle_info(wake, Queue) ->
    {noreply, grant(Queue, true)};
handle_info({cancel, Pid, Tag}, Queue) ->
    case take_waiter(fun({P, T, _}) -> P =:= Pid andalso T =:= Tag end, Queue) of
        {{_, _, Mon}, Rest} ->
            erlang:demonitor(Mon, [flush]),
            Pid ! {Tag, cancelled},
            {noreply, Rest};
        none ->
            Pid ! {Tag, not_queued},
            {noreply, Queue}
    end;
handle_info({'DOWN', Mon, process, _, _}, Queue) ->
    case take_waiter(fun({_, _, M}) -> M =:= Mon end, Queue) of
        {_, Rest} -> {noreply, Rest};
        none -> {noreply, Queue}
    end;
handle_info(_Msg, Queue) ->
    {noreply, Queue}.

%% Hands free slots to the waiters in order. When some still wait, slots held by dead
%% processes are taken back once and the handing out tried again.
grant(Queue, Reclaim) ->
    case queue:peek(Queue) of
        empty ->
            Queue;
        {value, {Pid, Tag, Mon}} ->
            case try_take(Pid, max_concurrent()) of
                {ok, Slot} ->
                    erlang:demonitor(Mon, [flush]),
                    atomics:sub(counters(), ?WAITING, 1),
                    Pid ! {Tag, {granted, Slot}},
                    grant(queue:drop(Queue), Reclaim);
                false when Reclaim ->
                    case reclaim_dead_holders() of
                        0 -> Queue;
                        _ -> grant(Queue, false)
                    end;
                false ->
                    Queue
            end
    end.

reclaim_dead_holders() ->
    Dead = ets:foldl(fun({{Pid, _} = Slot}, Acc) ->
                             case is_process_alive(Pid) of
                                 true -> Acc;
                                 false -> [Slot | Acc]
                             end
                     end, [], ?HOLDERS),
    lists:foreach(fun(Slot) -> ets:delete(?HOLDERS, Slot) end, Dead),
    length(Dead).

take_waiter(Match, Queue) ->
    case lists:partition(Match, queue:to_list(Queue)) of
        {[], _} ->
            none;
        {[Waiter | _], Rest} ->
            atomics:sub(counters(), ?WAITING, 1),
            {Waiter, queue:from_list(Rest)}
    end.
