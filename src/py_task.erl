%% @private
%% @doc The tasks of `py_event_loop:create_task/3,4' and `create_task_on/4,5', whose result
%% arrives as a message, as in erlang_python 3.x and 4.x: `{async_result, Ref, Result}' (so a
%% caller may `receive' it itself instead of calling `py_event_loop:await/1,2').
%%
%% The request is made by a small relay process, linked to the caller, which waits for the
%% reply (answering the Erlang callbacks of the task meanwhile) and sends it on. The caller
%% exiting kills the relay, which cancels the task; an await that times out kills the relay
%% too, waits for it to be gone and takes a result it may have sent out of the mailbox, so no
%% late result arrives after `{error, timeout}'. A relay whose result await/2 received serves
%% the caller's next task (up to ?MAX_IDLE idle relays per process, ?IDLE_MS each).
-module(py_task).

-export([start/6, start_queued/6, await/2]).

-define(RELAY_KEY(Ref), {'$py_task', Ref}).
%% Tasks of one process remembered (for await/2) before those whose relay is gone are forgotten.
-define(PRUNE_AT, 64).
%% The idle relays of a process (see relay/3): how many it keeps, how long one waits for a task.
-define(IDLE_KEY, '$py_task_idle').
-define(MAX_IDLE, 4).
-define(IDLE_MS, 5000).
-define(COLLECT_MS, 100).
-define(RUN, '$py_task_run').
-define(STOP, '$py_task_stop').

%% Starts Module.Function(*Args, **Kwargs) on Target (`pool': the calling process's pool
%% context, in its namespace; or a context pid) with result mode Mode; returns the reference
%% of the result message once the request is in the context's queue.
-spec start(pool | py_context:context(), py:py_module(), py:py_func(), list(), map(), py_nif:result_mode()) ->
    reference().
start(Target, Module, Function, Args, Kwargs, Mode) ->
    launch_or_isolated(Target, resolve(Target), Module, Function, Args, Kwargs, Mode).

%% `pool': where the calling process made its latest namespace (so a function it defined with
%% py:exec(py:context(N), Code) is found as '__main__', as in erlang_python 4.x), else its pool
%% context. A pool context picked earlier that has stopped since is picked again first.
resolve(pool) ->
    case py_request:last_namespace_context() of
        undefined -> resolve_picked();
        Ctx ->
            case py_request:resolve(Ctx) of
                {ok, _, _} = Resolved -> Resolved;
                {error, _} -> resolve_picked()
            end
    end;
resolve(Ctx) ->
    py_request:resolve(Ctx).

resolve_picked() ->
    {Pid, _} = py_context_router:pick(),
    case py_context:lookup(Pid) of
        {ok, _, _} -> ok;
        error -> py_context_router:forget_pick()
    end,
    py_request:resolve(pool).

%% start/6 on a context: a request made after this call returns (py_context:stop_loop/2) is
%% served after it.
-spec start_queued(py_context:context(), py:py_module(), py:py_func(), list(), map(), py_nif:result_mode()) ->
    reference().
start_queued(Ctx, Module, Function, Args, Kwargs, Mode) ->
    launch_or_isolated(Ctx, resolve(Ctx), Module, Function, Args, Kwargs, Mode).

%% A pid that is not an in-process context may be an isolated one (py_isolated): the task runs
%% on its child's event loop.
launch_or_isolated(Ctx, {error, context_not_found} = Error, Module, Function, Args, Kwargs, async)
  when is_pid(Ctx) ->
    case py_isolated:is_isolated(Ctx) of
        true -> launch_isolated(Ctx, {async, Module, Function, Args, Kwargs});
        false -> launch(Error, Module, Function, Args, Kwargs, async)
    end;
launch_or_isolated(_Target, Resolved, Module, Function, Args, Kwargs, Mode) ->
    launch(Resolved, Module, Function, Args, Kwargs, Mode).

%% The request is sent by the caller itself (so it is ordered before the caller's later
%% requests), with the caller as the process whose exit cancels it; a relay, linked to the
%% caller, receives the reply and sends it on as {async_result, Ref, Result}.
launch_isolated(Ctx, Request) ->
    Ref = make_ref(),
    prune(),
    Caller = self(),
    Relay = spawn_link(fun() -> isolated_relay(Caller, Ref, Ctx) end),
    Alias = receive {'$py_task_alias', Ref, A} -> A end,
    ok = py_isolated:send_async(Ctx, Request, Alias, Caller),
    put(?RELAY_KEY(Ref), {isolated, Relay, Ctx, Alias}),
    Ref.

isolated_relay(Caller, Ref, Ctx) ->
    CallerMon = erlang:monitor(process, Caller),
    Alias = erlang:monitor(process, Ctx, [{alias, demonitor}]),
    Caller ! {'$py_task_alias', Ref, Alias},
    receive
        {Alias, Result} -> Caller ! {async_result, Ref, Result};
        {'DOWN', Alias, process, _, _} -> Caller ! {async_result, Ref, {error, context_stopped}};
        {'DOWN', CallerMon, process, _, _} -> ok   %% the context cancels the task (it monitors Caller)
    end,
    unlink(Caller).

launch({error, _} = Error, _Module, _Function, _Args, _Kwargs, _Mode) ->
    Ref = make_ref(),
    self() ! {async_result, Ref, Error},
    Ref;
launch({ok, CtxRef, Ns}, Module, Function, Args, Kwargs, Mode) ->
    Ref = make_ref(),
    prune(),
    Submit = fun(R, N, Tag) -> py_nif:submit_call(R, N, Tag, Module, Function, Args, Kwargs, Mode) end,
    Job = {?RUN, Ref, CtxRef, Ns, Submit},
    Relay = hand_over(Job, take_idle()),
    put(?RELAY_KEY(Ref), Relay),
    Ref.

%% Gives Job to an idle relay of this process, or to a new one when there is none or the idle
%% one ended meanwhile (its idle time ran out); returns once the relay has queued the request.
hand_over(Job = {?RUN, Ref, _, _, _}, Idle) ->
    Caller = self(),
    Relay = case Idle of
                none -> spawn_link(fun() -> relay(Caller, erlang:monitor(process, Caller), Job) end);
                Pid -> Pid ! Job, Pid
            end,
    Mon = erlang:monitor(process, Relay),
    receive
        {queued, Ref} ->
            erlang:demonitor(Mon, [flush]),
            Relay;
        {'DOWN', Mon, process, Relay, _} when Idle =/= none ->
            hand_over(Job, none);
        {'DOWN', Mon, process, Relay, _} ->
            Relay  % killed before it queued anything: await/2 times out as for any lost task
    end.

%% A relay makes one request at a time for its caller, answers the Erlang callbacks of its
%% task while it waits, and sends the result on; then it waits, idle, for the caller's next
%% task (a process exit per task costs more than the task: see docs/performance.md). It ends
%% when its caller is gone, when told to, or after ?IDLE_MS idle.
relay(Caller, CallerMon, {?RUN, Ref, CtxRef, Ns, Submit}) ->
    Pending = py_request:start(CtxRef, Ns, Submit),
    Caller ! {queued, Ref},
    Result = case Pending of
                 {error, _} = Error -> Error;
                 _ -> py_request:wait(Pending, infinity)
             end,
    Caller ! {async_result, Ref, Result},
    idle(Caller, CallerMon).

%% Idle past ?COLLECT_MS, a relay collects its heap: the last task's result (a large binary,
%% say) is not kept alive by a relay that merely waits. Idle ?IDLE_MS more, it ends.
idle(Caller, CallerMon) ->
    idle(Caller, CallerMon, false).

idle(Caller, CallerMon, Collected) ->
    receive
        {?RUN, _, _, _, _} = Job -> relay(Caller, CallerMon, Job);
        {'DOWN', CallerMon, process, Caller, _} -> ok;
        ?STOP -> unlink(Caller)
    after wait_ms(Collected) ->
        case Collected of
            false ->
                erlang:garbage_collect(),
                idle(Caller, CallerMon, true);
            true ->
                unlink(Caller)  % a caller trapping exits gets no 'EXIT' message for it
        end
    end.

wait_ms(false) -> ?COLLECT_MS;
wait_ms(true) -> ?IDLE_MS.

%% The idle relays of this process, most recently used first.
take_idle() ->
    case get(?IDLE_KEY) of
        [Relay | Rest] ->
            put(?IDLE_KEY, Rest),
            Relay;
        _ ->
            none
    end.

%% Relay has sent the result of its task and waits for another one.
give_back(Relay) ->
    Idle = case get(?IDLE_KEY) of
               undefined -> [];
               List -> List
           end,
    case length(Idle) < ?MAX_IDLE of
        true -> put(?IDLE_KEY, [Relay | Idle]);
        false -> Relay ! ?STOP
    end,
    ok.

%% The result of a task this process started, waiting at most Timeout ms. A reference this
%% process did not get from start/6 (or already awaited) is waited for as a message all the
%% same, as erlang_python does.
-spec await(reference(), py:timeout_ms()) -> py:py_result().
await(Ref, Timeout) ->
    case erase(?RELAY_KEY(Ref)) of
        undefined ->
            receive {async_result, Ref, Result} -> Result
            after Timeout -> {error, timeout}
            end;
        {isolated, Relay, Ctx, Alias} ->
            receive {async_result, Ref, Result} -> Result
            after Timeout ->
                stop_relay(Relay),
                Ctx ! {'$py_isolated_cancel', Alias},   %% cancels the task in the child
                receive {async_result, Ref, _} -> ok after 0 -> ok end,
                {error, timeout}
            end;
        Relay ->
            receive {async_result, Ref, Result} -> give_back(Relay), Result
            after Timeout ->
                stop_relay(Relay),
                receive {async_result, Ref, _} -> ok after 0 -> ok end,
                {error, timeout}
            end
    end.

%% Kills the relay (which cancels the task) and waits until it is gone: whatever it sent
%% before is in the mailbox then.
stop_relay(Relay) ->
    unlink(Relay),
    Mon = erlang:monitor(process, Relay),
    exit(Relay, kill),
    receive {'DOWN', Mon, process, Relay, _} -> ok end.

%% Forgets the tasks whose relay is gone (their result was received, or is in the mailbox),
%% once a process has many remembered.
prune() ->
    Keys = [K || {?RELAY_KEY(_) = K, _} <- get()],
    case length(Keys) >= ?PRUNE_AT of
        true -> _ = [erase(K) || K <- Keys, not is_process_alive(relay_pid(get(K)))], ok;
        false -> ok
    end.

relay_pid({isolated, Relay, _Ctx, _Alias}) -> Relay;
relay_pid(Relay) -> Relay.
