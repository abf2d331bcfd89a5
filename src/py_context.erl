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

-export([new/1, stop/1, reset/1, create_local_env/1, call/7, eval/5, exec/3, stats/1, backtrace/1]).
-export([call/4, call/5, call/6, eval/2, eval/3, eval/4, exec/2, call_method/4, destroy/1, interrupt/1]).
-export([start_link/2]).
-export([start_link/1, lookup/1, any_worker/0, owngil_refs/0, registered/0, init_registry/0]).
-export([start_loop/1, start_loop/2, stop_loop/1, stop_loop/2, loop_ref/1, set_loop_state/2, end_loop/2,
         drop_loop/1,
         submit/4, submit/5, submit_await/4, submit_await/5, submit_await/6]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([context/0, mode/0, thread_priority/0, worker_loop/0]).

-type context() :: pid().
-type mode() :: worker | owngil | isolated.
-type thread_priority() :: auto | normal | batch | low | idle.
%% A context's worker loop as its context process keeps it: the loop's serial, its owner and
%% the monitor of the owner.
-type worker_loop() :: {pos_integer(), pid(), reference()}.

-define(REGISTRY, py_context_registry).
%% Worker loops: Ctx -> {running, Serial, LoopRef} | stopped (read by submit/5 and loop_ref/1).
-define(LOOPS, py_context_loops).
-define(LOOP_GRACE, 5000).
%% How long start_loop/2 waits for the context's thread to take the start (it may be busy).
-define(LOOP_START_TIMEOUT, 15000).
%% After the grace period and its interrupt, how long stop_loop/2 still waits.
-define(LOOP_INTERRUPT_WAIT, 2000).
-define(STOP_DEADLINE, 5000).
-define(FORK_POLICY_KEY, {?MODULE, fork_policy}).
-define(IDLE_EXIT, 5).
%% What a starting context runs first: it answers None once the interpreter works, and makes
%% threads that Python code starts leave SCHED_IDLE (priv/_erlang_threads.py).
-define(STARTED_CHECK, <<"__import__('_erlang_threads').install()">>).

-record(state, {ref :: py_nif:context_ref(),
                owner :: pid() | undefined,
                owner_mon :: reference() | undefined,
                stopped = false :: boolean(),
                %% The worker loop: its serial, owner and the owner's monitor.
                loop :: worker_loop() | undefined}).

%% @doc Starts a new context owned by the calling process.
%%
%% Options: `mode': `worker' (the default: a thread on the main interpreter, sharing its GIL;
%% `auto' means the same) or `owngil' (a subinterpreter with its own GIL, Python 3.13+; older
%% Pythons give `{error, {owngil_unsupported, Version}}'). `subinterp' (erlang_python 4.x's
%% subinterpreter sharing the main GIL) gives an `owngil' context: an interpreter of its own,
%% which is what code asking for `subinterp' relies on. An unknown mode gives
%% `{error, {invalid_mode, Mode}}'. Options erlang_python 4.1 has that are not provided here
%% give `{error, {unsupported_option, Key}}' (see docs/migration.md); any other key gives
%% `{error, {unknown_option, Key}}'. `preload': Python statements (iodata) run in the
%% context's shared namespace as it starts, after the node's preload code ({@link py_preload});
%% if they raise, the context does not start: `{error, {preload, {Type, Message}}}'. The
%% context stops when the calling process exits.
%% `mode => isolated' runs the context's Python in a child OS process, with the options
%% `limits', `restart', `kill_after', `network' and `spin' ({@link py_isolated}; docs/contexts.md).
%% `thread_priority': the OS scheduling of this context's thread (`auto', `normal', `batch',
%% `low', `idle'; default: the application's `thread_priority'); another value gives
%% `{error, {invalid_option, thread_priority}}'.
-spec new(#{mode => term(), preload => iodata(), limits => py_isolated:limits(), restart => boolean(),
            kill_after => non_neg_integer(), network => boolean(), spin => boolean(),
            thread_priority => thread_priority()}) ->
          {ok, context()} | {error, term()}.
new(#{mode := isolated} = Opts) ->
    py_isolated:new(Opts);
new(Opts) when is_map(Opts) ->
    case check_options(Opts) of
        ok -> new_checked(maps:update_with(mode, fun context_mode/1, worker, Opts));
        {error, _} = Error -> Error
    end;
new(_) ->
    erlang:error(badarg).

%% @doc erlang_python 4.x's way to start a context of your own: {@link new/1} with mode Mode
%% (`worker', `owngil', `isolated', or 4.x's `subinterp' and `auto'), linked to the caller as
%% 4.x's was; like any context from new/1 it also stops when the caller exits. Id, 4.x's
%% number for the context, names nothing here: it only has to be a positive integer.
-spec start_link(pos_integer(), atom()) -> {ok, context()} | {error, term()}.
start_link(Id, Mode) when is_integer(Id), Id > 0, is_atom(Mode) ->
    case new(#{mode => Mode}) of
        {ok, Ctx} ->
            true = link(Ctx),
            {ok, Ctx};
        {error, _} = Error ->
            Error
    end;
start_link(_, _) ->
    erlang:error(badarg).

%% 4.x's other names for the two modes.
context_mode(auto) -> worker;
context_mode(subinterp) -> owngil;
context_mode(Mode) -> Mode.

new_checked(Opts) ->
    case maps:get(mode, Opts, worker) of
        Mode when Mode =:= worker; Mode =:= owngil ->
            Start = #{mode => Mode, owner => self(), kind => own, preload => maps:get(preload, Opts, undefined)},
            py_context_sup:start_context(maps:merge(Start, maps:with([thread_priority], Opts)));
        Mode ->
            {error, {invalid_mode, Mode}}
    end.

%% The keys of new/1: those handled, those of erlang_python 4.1 not provided, the others.
check_options(#{thread_priority := P}) when not (P =:= auto orelse P =:= normal orelse P =:= batch orelse
                                                P =:= low orelse P =:= idle) ->
    {error, {invalid_option, thread_priority}};
check_options(Opts) ->
    Known = [mode, preload, thread_priority],
    Unsupported = [memory_limit],
    case [K || K <- lists:sort(maps:keys(Opts)), not lists:member(K, Known)] of
        [] -> ok;
        [Key | _] ->
            case lists:member(Key, Unsupported) of
                true -> {error, {unsupported_option, Key}};
                false -> {error, {unknown_option, Key}}
            end
    end.

%% @doc Interrupts the request the context runs now: its caller gets `{error, interrupted}'
%% (same as {@link py:interrupt/1}). `not_running' when it runs nothing.
-spec interrupt(context()) -> ok | not_running | {error, context_not_found}.
interrupt(Ctx) ->
    py:interrupt(Ctx).

%% @doc Same as {@link stop/1} (erlang_python 3.x's name).
-spec destroy(context()) -> ok | {error, term()}.
destroy(Ctx) ->
    stop(Ctx).

%% @doc `Module.Function(*Args)' on context Ctx, no timeout: the same as `py:call(Ctx, Module,
%% Function, Args)'. A pool context runs it in the calling process's namespace, any other
%% context in its shared one.
-spec call(context(), py:py_module(), py:py_func(), list()) -> py:py_result().
call(Ctx, Module, Function, Args) ->
    call(Ctx, Module, Function, Args, #{}, infinity).

%% @doc {@link call/4} with keyword arguments.
-spec call(context(), py:py_module(), py:py_func(), list(), map()) -> py:py_result().
call(Ctx, Module, Function, Args, Kwargs) ->
    call(Ctx, Module, Function, Args, Kwargs, infinity).

%% @doc {@link call/5} waiting at most Timeout ms (`{error, timeout}', the call cancelled).
-spec call(context(), py:py_module(), py:py_func(), list(), map(), py:timeout_ms()) -> py:py_result().
call(Ctx, Module, Function, Args, Kwargs, Timeout) when is_pid(Ctx), is_map(Kwargs) ->
    py:call(Ctx, Module, Function, Args, #{kwargs => Kwargs, timeout => Timeout});
call(_, _, _, _, _, _) ->
    erlang:error(badarg).

%% @doc Evaluates a Python expression on context Ctx: the same as `py:eval(Ctx, Code)'.
-spec eval(context(), iodata()) -> py:py_result().
eval(Ctx, Code) ->
    eval(Ctx, Code, #{}, infinity).

%% @doc {@link eval/2} with local variables.
-spec eval(context(), iodata(), map()) -> py:py_result().
eval(Ctx, Code, Locals) ->
    eval(Ctx, Code, Locals, infinity).

%% @doc {@link eval/3} waiting at most Timeout ms.
-spec eval(context(), iodata(), map(), py:timeout_ms()) -> py:py_result().
eval(Ctx, Code, Locals, Timeout) when is_pid(Ctx), is_map(Locals) ->
    py:eval_on(Ctx, Code, Locals, Timeout);
eval(_, _, _, _) ->
    erlang:error(badarg).

%% @doc Runs Python statements on context Ctx: the same as `py:exec(Ctx, Code)'.
-spec exec(context(), iodata()) -> ok | {error, term()}.
exec(Ctx, Code) ->
    py:exec(Ctx, Code).

%% @doc `Obj.Method(*Args)' for an opaque reference Obj. The object runs on a context of the
%% interpreter it belongs to, as with `py:call_method/3'; Ctx must be a running context
%% (`{error, context_not_found}' otherwise).
-spec call_method(context(), reference(), atom() | binary(), list()) -> py:py_result().
call_method(Ctx, Obj, Method, Args) when is_pid(Ctx), is_list(Args) ->
    case lookup(Ctx) of
        {ok, _, _} -> py:call_method(Obj, Method, Args);
        error -> {error, context_not_found}
    end;
call_method(_, _, _, _) ->
    erlang:error(badarg).

%% @doc Stops a context. Every request not answered yet, queued or running, gets
%% `{error, context_stopped}' at once, and the Python code that runs is interrupted (an
%% `erlang.Interrupted' exception, raised again every 100 ms while it goes on). Waits up to
%% 5 seconds for the context's thread to return from that code and release its interpreter:
%% `{error, timeout}' when it is still running then (C code that never returns to the
%% interpreter cannot be interrupted: the thread is left to exit when it does, and a warning is
%% logged), `{error, Reason}' when an owngil interpreter could not be ended (a Python thread it
%% started never finished), `ok' otherwise, and also for a context that is already gone.
-spec stop(context()) -> ok | {error, term()}.
stop(Ctx) when is_pid(Ctx) ->
    case node(Ctx) =/= node() orelse is_context(Ctx) of
        true ->   % a remote context is asked by its node (docs/distributed.md)
            try gen_server:call(Ctx, stop, infinity)
            catch exit:_ -> ok
            end;
        false ->
            case is_process_alive(Ctx) of
                false -> ok;   % stopped already
                true -> {error, context_not_found}   % not a context: no answer would come
            end
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
    or_isolated(on_ref(Ctx, fun(Ref) -> py_request:run(Ref, undefined, infinity, fun py_nif:submit_reset/3) end),
                Ctx, fun py_isolated:reset/1).

%% @doc A new, empty namespace on context Ctx, for the `call/7', `eval/5' and `exec/3'
%% variants: it lets one process keep several independent sets of globals on one context, owngil
%% contexts included. It is freed when the last copy of the returned term is garbage collected.
-spec create_local_env(context()) -> {ok, reference()} | {error, term()}.
create_local_env(Ctx) ->
    case is_pid(Ctx) andalso py_isolated:is_isolated(Ctx) of
        true -> in_isolated_env(Ctx, '_new_env', [], infinity);
        false -> on_ref(Ctx, fun(Ref) -> {ok, py_request:new_namespace(Ref)} end)
    end.

%% @doc `py:call' on context Ctx in the namespace Env made by create_local_env/1.
-spec call(context(), py:py_module(), py:py_func(), list(), map(), py:timeout_ms(), reference()) ->
    py:py_result().
call(Ctx, Module, Function, Args, Kwargs, Timeout, Env) when is_list(Args), is_map(Kwargs) ->
    case isolated_env(Ctx, '_env_call', fun() -> [Env, Module, Function, Args, Kwargs] end, Timeout) of
        false -> with_env(Ctx, Env, Timeout, fun(Ref, Ns, Tag) ->
                                        py_nif:submit_call(Ref, Ns, Tag, Module, Function, Args, Kwargs, plain)
                                end);
        Result -> Result
    end;
call(_, _, _, _, _, _, _) ->
    erlang:error(badarg).

%% @doc `py:eval' on context Ctx in the namespace Env.
-spec eval(context(), iodata(), map(), py:timeout_ms(), reference()) -> py:py_result().
eval(Ctx, Code, Locals, Timeout, Env) when is_map(Locals) ->
    case isolated_env(Ctx, '_env_eval', fun() -> [Env, iolist_to_binary(Code), Locals] end, Timeout) of
        false -> with_env(Ctx, Env, Timeout, fun(Ref, Ns, Tag) -> py_nif:submit_eval(Ref, Ns, Tag, Code, Locals, plain) end);
        Result -> Result
    end;
eval(_, _, _, _, _) ->
    erlang:error(badarg).

%% @doc `py:exec' on context Ctx in the namespace Env.
-spec exec(context(), iodata(), reference()) -> ok | {error, term()}.
exec(Ctx, Code, Env) ->
    case isolated_env(Ctx, '_env_exec', fun() -> [Env, iolist_to_binary(Code)] end, infinity) of
        false -> with_env(Ctx, Env, infinity, fun(Ref, Ns, Tag) -> py_nif:submit_exec(Ref, Ns, Tag, Code) end);
        Result -> Result
    end.

%% On an isolated context, a local env is an object in its child (_erlang_isolated._Env); the
%% env functions are helpers there. false for any other context.
isolated_env(Ctx, Helper, MakeArgs, Timeout) ->
    is_pid(Ctx) andalso py_isolated:is_isolated(Ctx) andalso in_isolated_env(Ctx, Helper, MakeArgs(), Timeout).

in_isolated_env(Ctx, Helper, Args, Timeout) ->
    case py_isolated:request(Ctx, {call, '_erlang_isolated', Helper, Args, #{}}, Timeout) of
        {ok, none} when Helper =:= '_env_exec' -> ok;
        Result -> Result
    end.

%% @doc What context Ctx did since it started (a snapshot; each figure is exact, the set is not
%% taken atomically). `{ok, Stats}' with:
%% <ul>
%% <li>`mode': `worker', `owngil' or `isolated' (whose other keys are in docs/contexts.md);</li>
%% <li>`queue_depth': requests queued and not yet taken by the context's thread;</li>
%% <li>`running': requests whose Python code is on the thread's stack now (more than one while a
%% request waiting for an Erlang callback serves nested ones); `in_flight': the two added;</li>
%% <li>`submitted', `served' (requests whose code ran to its end), `errors' (of those, ended by a
%% Python exception), `timeouts' (cancelled by `py_nif:cancel': a caller's timeout or a
%% `stream_cancel'), `abandoned' (cancelled because the caller exited), `interrupts'
%% (`erlang.Interrupted' raised in running code), `callbacks' (`erlang.call's made);</li>
%% <li>`queue_wait_us' and `run_time_us': `#{count, p50, p99, max}' in microseconds, from a
%% histogram of quarter powers of two (a percentile is the upper edge of its bucket: at most 25 %
%% above the true value); queue wait is from submission to start, run time from start to end
%% (nested requests included);</li>
%% <li>`memory': for owngil contexts `#{allocated_bytes, arena_bytes, age_ms}', the pymalloc
%% figures of the context's interpreter (objects of up to 512 bytes; larger ones come from
%% malloc and are not counted), sampled by the context's thread at most once a second while it
%% serves requests, `age_ms' ago; `undefined' for worker contexts (they share the main
%% interpreter) and when pymalloc is off.</li>
%% </ul>
%% `{error, context_not_found}' when Ctx is not a running context.
-spec stats(context()) -> {ok, #{atom() => term()}} | {error, context_not_found}.
stats(Ctx) ->
    or_isolated(on_ref(Ctx, fun(Ref) -> {ok, maps:remove('$buckets', py_observe:context_stats(Ref))} end),
                Ctx, fun py_isolated:stats/1).

%% @doc The Python stack of the code context Ctx runs now, read without stopping it:
%% `{ok, [#{file => binary(), line => integer(), function => binary()}]}', innermost frame
%% first, or `{ok, idle}' when it runs nothing. The stack is read by a thread of its own that
%% takes the context's GIL (code running Python bytecode hands it over within 5 ms):
%% `{error, timeout}' when that takes more than 5 seconds (C code holding the GIL),
%% `{error, context_stopped}' or `{error, context_not_found}' when the context is gone.
-spec backtrace(context()) -> {ok, idle | [py_observe:frame()]} | {error, term()}.
backtrace(Ctx) ->
    or_isolated(on_ref(Ctx, fun(Ref) ->
                                    case py_observe:backtrace(Ref, undefined) of
                                        {error, _} = Error -> Error;
                                        Stack -> {ok, Stack}
                                    end
                            end),
                Ctx, fun py_isolated:backtrace/1).

%% A pid that is not an in-process context may be an isolated one (py_isolated).
or_isolated({error, context_not_found}, Ctx, OnIsolated) when is_pid(Ctx) ->
    OnIsolated(Ctx);
or_isolated(Result, _Ctx, _OnIsolated) ->
    Result.

%% --- worker loops (erlang_python 4.1's names and shapes; docs/servers.md) ----------------------

%% @doc Makes the context's event loop a worker loop owned by the calling process: see
%% {@link start_loop/2}.
-spec start_loop(context()) -> ok | {error, term()}.
start_loop(Ctx) ->
    start_loop(Ctx, #{}).

%% @doc Starts the worker loop of context Ctx and returns at once: the context's own event
%% loop (the one `py_event_loop' tasks run on), which the context steps whenever a descriptor
%% is ready, a timer is due or work was scheduled. Option `owner' (default: the caller): the
%% process that gets `{py_loop_exit, Ctx, Result}' when the loop ends (`ok' after
%% {@link stop_loop/2}, `{error, loop_stopped}' after `py_event_loop:stop/1',
%% `{error, context_stopped}' when the context stops); the loop is stopped when the owner
%% exits. Unlike erlang_python 4.1, calls, evals and callbacks on Ctx keep working while the
%% loop runs. `{error, loop_running}' when it runs already, `{error, context_not_found}'.
-spec start_loop(context(), #{owner => pid()}) -> ok | {error, term()}.
start_loop(Ctx, Opts) when is_pid(Ctx), is_map(Opts) ->
    Owner = maps:get(owner, Opts, self()),
    is_pid(Owner) orelse erlang:error(badarg),
    case py_isolated:is_isolated(Ctx) of
        true -> py_isolated_loop:start(Ctx, Owner);
        false -> loop_call(Ctx, {start_loop, Owner})
    end;
start_loop(_, _) ->
    erlang:error(badarg).

%% @doc {@link stop_loop/2} with a grace period of 5 seconds.
-spec stop_loop(context()) -> ok | {error, term()}.
stop_loop(Ctx) ->
    stop_loop(Ctx, ?LOOP_GRACE).

%% @doc Stops the worker loop of Ctx: its servers (`erlang.server') stop accepting, its
%% connections are aborted, its tasks are cancelled and given Grace ms to finish (tasks that
%% ignore the cancellation are dropped then), and the loop is closed. From the call on,
%% `submit' gets `{error, loop_stopped}'. When the stop has not ended Grace ms plus one
%% second later (a task that holds the thread once cancelled), the stop's own Python code is
%% interrupted (never another request of the context) and the loop closed at once.
%% `ok' once the loop is closed, `{error, no_loop}' when none runs, `{error, timeout}' when
%% the thread was still busy 2 seconds later (a request or task that holds the thread
%% before the stop could start: the loop is closed when the thread comes to it; the owner is
%% told then).
-spec stop_loop(context(), non_neg_integer()) -> ok | {error, term()}.
stop_loop(Ctx, Grace) when is_pid(Ctx), is_integer(Grace), Grace >= 0 ->
    case loop_call(Ctx, stopping_loop) of
        {ok, Serial, Ref} -> wait_loop_stopped(Ctx, Serial, Ref, Grace);
        {ok, Serial} -> py_isolated_loop:stop(Ctx, Serial, Grace);   % an isolated context's
        {error, _} = Error -> Error
    end;
stop_loop(_, _) ->
    erlang:error(badarg).

%% The stop runs in a process of its own, which tells the context process when it is done
%% (also after stop_loop/2 gave up waiting). The stop's Python code says when it starts to run:
%% only then does an interrupt land in it (and not in another request of the context).
wait_loop_stopped(Ctx, Serial, Ref, Grace) ->
    Self = self(),
    Tag = make_ref(),
    %% Forwards the "started" message while this call waits (none reaches the caller after).
    Waiter = spawn(fun() -> receive stop_running -> Self ! {stop_running, Tag} end end),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       Stop = fun(R, Ns, T) ->
                                                      py_nif:submit_call(R, Ns, T, '_erlang_worker', stop,
                                                                         [Serial, Grace / 1000, Waiter], #{}, plain)
                                              end,
                                       Result = case py_request:run(Ref, undefined, infinity, Stop) of
                                                    {ok, _} -> ok;
                                                    {error, _} = Error -> Error
                                                end,
                                       _ = loop_call(Ctx, {loop_ended, Serial, Result}),
                                       exit({loop_stopped, Result})
                               end),
    Outcome = receive {'DOWN', Mon, process, Pid, {loop_stopped, Result}} -> Result
              after Grace + 1000 ->
                  receive {stop_running, Tag} -> _ = py:interrupt(Ctx)
                  after 0 -> ok
                  end,
                  receive {'DOWN', Mon, process, Pid, {loop_stopped, Result}} -> Result
                  after ?LOOP_INTERRUPT_WAIT ->
                      erlang:demonitor(Mon, [flush]),
                      {error, timeout}
                  end
              end,
    exit(Waiter, kill),
    receive {stop_running, Tag} -> Outcome
    after 0 -> Outcome
    end.

%% @private
%% What submit/5 and loop_ref/1 see of context Ctx's worker loop: `{running, Serial}' (a new
%% loop reference), `stopped' (submit gives loop_stopped) or `none'. For py_isolated, whose
%% context process keeps its loop's state itself.
-spec set_loop_state(pid(), {running, pos_integer()} | stopped | none) -> ok.
set_loop_state(Ctx, {running, Serial}) ->
    true = ets:insert(?LOOPS, {Ctx, {running, Serial, make_ref()}}),
    ok;
set_loop_state(Ctx, stopped) ->
    true = ets:insert(?LOOPS, {Ctx, stopped}),
    ok;
set_loop_state(Ctx, none) ->
    true = ets:delete(?LOOPS, Ctx),
    ok.

%% @private
%% Context process only: its worker loop Loop ended with Result. The owner gets
%% `{py_loop_exit, Ctx, Result}' and submit/5 refuses tasks until the next start.
-spec end_loop(worker_loop(), term()) -> ok.
end_loop({_Serial, Owner, Mon}, Result) ->
    erlang:demonitor(Mon, [flush]),
    set_loop_state(self(), stopped),
    Owner ! {py_loop_exit, self(), Result},
    ok.

%% @private
%% Context process only, as it goes: the owner of its worker loop Loop (undefined: none) gets
%% `{py_loop_exit, Ctx, {error, context_stopped}}', and the loop's state is forgotten.
-spec drop_loop(worker_loop() | undefined) -> ok.
drop_loop(Loop) ->
    set_loop_state(self(), none),
    case Loop of
        {_, Owner, _} -> Owner ! {py_loop_exit, self(), {error, context_stopped}}, ok;
        undefined -> ok
    end.

%% @doc The reference of the worker loop Ctx runs now (a new one at each start_loop/1,2):
%% `{ok, LoopRef}', `{error, no_loop}' when none runs.
-spec loop_ref(context()) -> {ok, reference()} | {error, no_loop}.
loop_ref(Ctx) when is_pid(Ctx) ->
    case ets:lookup(?LOOPS, Ctx) of
        [{_, {running, _Serial, LoopRef}}] -> {ok, LoopRef};
        _ -> {error, no_loop}
    end;
loop_ref(_) ->
    erlang:error(badarg).

%% @doc {@link submit/5} without keyword arguments.
-spec submit(context(), py:py_module(), py:py_func(), list()) -> {ok, reference()} | {error, term()}.
submit(Ctx, Module, Function, Args) ->
    submit(Ctx, Module, Function, Args, #{}).

%% @doc Schedules `Module.Function(*Args, **Kwargs)' on the event loop of Ctx and returns
%% `{ok, TaskRef}' at once: a coroutine function's coroutine runs as a task, any other
%% function is called. The result arrives as `{async_result, TaskRef, {ok, Value} |
%% {error, Reason}}' (`py_event_loop:await/1,2' receives it). A context whose worker loop was
%% stopped gives `{error, loop_stopped}' at once (until start_loop/1,2 again); without any
%% worker loop, the task runs on the context's event loop all the same (as
%% `py_event_loop:create_task_on/5'). The task is cancelled when the calling process exits.
-spec submit(context(), py:py_module(), py:py_func(), list(), map()) -> {ok, reference()} | {error, term()}.
submit(Ctx, Module, Function, Args, Kwargs) when is_pid(Ctx), is_list(Args), is_map(Kwargs) ->
    case ets:lookup(?LOOPS, Ctx) of
        [{_, stopped}] -> {error, loop_stopped};
        _ ->
            %% An isolated context has no worker loop: the task runs on its child's loop.
            case lookup(Ctx) =/= error orelse py_isolated:is_isolated(Ctx) of
                true ->
                    (is_name(Module) andalso is_name(Function)) orelse erlang:error(badarg),
                    {ok, py_task:start_queued(Ctx, Module, Function, Args, Kwargs, async)};
                false -> {error, context_not_found}
            end
    end;
submit(_, _, _, _, _) ->
    erlang:error(badarg).

%% @doc {@link submit_await/6} without keyword arguments, timeout 5 s.
-spec submit_await(context(), py:py_module(), py:py_func(), list()) -> py:py_result().
submit_await(Ctx, Module, Function, Args) ->
    submit_await(Ctx, Module, Function, Args, #{}, 5000).

%% @doc {@link submit_await/6} with timeout 5 s.
-spec submit_await(context(), py:py_module(), py:py_func(), list(), map()) -> py:py_result().
submit_await(Ctx, Module, Function, Args, Kwargs) ->
    submit_await(Ctx, Module, Function, Args, Kwargs, 5000).

%% @doc {@link submit/5}, then `py_event_loop:await(TaskRef, Timeout)': the result, or
%% `{error, timeout}' (the task cancelled).
-spec submit_await(context(), py:py_module(), py:py_func(), list(), map(), py:timeout_ms()) -> py:py_result().
submit_await(Ctx, Module, Function, Args, Kwargs, Timeout) ->
    case submit(Ctx, Module, Function, Args, Kwargs) of
        {ok, TaskRef} -> py_event_loop:await(TaskRef, Timeout);
        {error, _} = Error -> Error
    end.

is_name(N) -> is_atom(N) orelse is_binary(N) orelse is_list(N).

%% A worker-loop request to the context's process; {error, context_not_found} when it is gone.
loop_call(Ctx, Request) ->
    case is_context(Ctx) of
        true ->
            try gen_server:call(Ctx, Request, infinity)
            catch exit:_ -> {error, context_not_found}
            end;
        false ->
            {error, context_not_found}
    end.

%% Whether Pid is a context process of this node (any mode, a stopping one included): a call
%% to another process would wait for an answer that never comes.
is_context(Pid) ->
    case proc_lib:initial_call(Pid) of
        {py_context, init, _} -> true;
        {py_isolated, init, _} -> true;
        _ -> false
    end.

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
start_link(#{mode := isolated} = Opts) ->
    py_isolated:start_link(Opts);
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
%% Every running context: its pid and NIF handle.
-spec registered() -> [{pid(), py_nif:context_ref()}].
registered() ->
    ets:select(?REGISTRY, [{{'$1', {'$2', '_', '_'}}, [], [{{'$1', '$2'}}]}]).

%% @private
%% Creates the registry table; called by erlang_python_sup, which owns it.
-spec init_registry() -> ok.
init_registry() ->
    _ = ets:new(?REGISTRY, [named_table, public, set, {read_concurrency, true}]),
    _ = ets:new(?LOOPS, [named_table, public, set, {read_concurrency, true}]),
    ok.

%% @private
-spec init(#{mode := mode(), owner := pid() | undefined, kind := pool | own, preload => iodata() | undefined,
              thread_priority => thread_priority()}) ->
          {ok, #state{}} | {stop, term()}.
init(#{mode := Mode, owner := Owner, kind := Kind} = Opts) ->
    process_flag(trap_exit, true),
    Priority = maps:get(thread_priority, Opts, application:get_env(erlang_python, thread_priority, auto)),
    case py_nif:context_new(Mode, Priority) of
        {ok, Ref} ->
            case started(Ref) of
                ok ->
                    ok = py_context_registry:register(self(), {Ref, Kind, Mode}),
                    %% After registering, so that a step set meanwhile reaches this context
                    %% one way or the other (running it twice changes nothing: py_setup).
                    ok = py_setup:sync(Ref),
                    ok = fork_policy(Mode, Ref),
                    case preload(Ref, maps:get(preload, Opts, undefined)) of
                        ok ->
                            Mon = case Owner of
                                      undefined -> undefined;
                                      _ -> erlang:monitor(process, Owner)
                                  end,
                            {ok, #state{ref = Ref, owner = Owner, owner_mon = Mon}};
                        {error, Reason} ->
                            ets:delete(?REGISTRY, self()),
                            _ = stop_thread(Ref),
                            {stop, {preload, Reason}}
                    end;
                {error, Reason} ->
                    {stop, Reason}
            end;
        {error, Reason} ->
            {stop, Reason}
    end.

%% The `preload' option: statements run in the shared namespace (made now, after the setup
%% steps, so it also starts with the node's preloaded globals).
preload(_Ref, undefined) ->
    ok;
preload(Ref, Code) ->
    Src = iolist_to_binary(Code),
    py_request:run(Ref, undefined, infinity, fun(R, Ns, Tag) -> py_nif:submit_exec(R, Ns, Tag, Src) end).

%% Waits for the context's thread to be ready (an owngil interpreter takes a few ms to
%% create), so that a context that cannot start is reported by new/1. The probe runs in a
%% namespace of its own: the shared one is made later, after the setup steps. A failure is
%% {Tag, {error, _}} or, for a Python exception, {Tag, {error, _}, Traceback}.
started(Ref) ->
    Tag = make_ref(),
    Request = py_nif:submit_eval(Ref, py_nif:namespace_new(Ref), Tag, ?STARTED_CHECK, #{}, plain),
    receive
        {Tag, {ok, none}} -> ok;
        {Tag, _Failed} -> start_failed(Ref);
        {Tag, _Failed, _Traceback} -> start_failed(Ref)
    after ?STOP_DEADLINE ->
        _ = py_nif:cancel(Ref, Request),
        _ = stop_thread(Ref),
        {error, context_start_timeout}
    end.

start_failed(Ref) ->
    case stop_thread(Ref) of
        {error, Reason} -> {error, Reason};
        ok -> {error, context_start_failed}
    end.

%% os.fork() in the main interpreter as app env `allow_fork' says (priv/_erlang_fork.py):
%% a worker context that starts applies the env when the main interpreter (which lives as long
%% as the node, as persistent terms do) has not had that value yet. owngil subinterpreters
%% refuse fork in CPython itself.
fork_policy(owngil, _Ref) ->
    ok;
fork_policy(worker, Ref) ->
    Allow = application:get_env(erlang_python, allow_fork, false) =:= true,
    case persistent_term:get(?FORK_POLICY_KEY, undefined) of
        Allow -> ok;
        _ ->
            Configure = fun(R, Ns, Tag) ->
                                py_nif:submit_call(R, Ns, Tag, '_erlang_fork', configure, [Allow], #{}, plain)
                        end,
            case py_request:run(Ref, undefined, ?STOP_DEADLINE, Configure) of
                {ok, _} -> persistent_term:put(?FORK_POLICY_KEY, Allow);
                Failed ->
                    logger:error("erlang_python: context ~p could not set the fork policy: ~0tp", [self(), Failed],
                                 #{domain => [erlang_python]})
            end
    end.

%% An idle context's thread exits at once; a busy one's callers are answered and its code
%% interrupted after IDLE_EXIT ms (so that stopping an idle context starts no extra thread).
stop_thread(Ref) ->
    Tag = make_ref(),
    ok = py_nif:context_stop(Ref, Tag),
    receive {py_context_exited, Tag, Status} -> Status
    after ?IDLE_EXIT ->
        ok = py_nif:context_stop_now(Ref),
        wait_exited(Tag)
    end.

wait_exited(Tag) ->
    receive {py_context_exited, Tag, Status} -> Status
    after ?STOP_DEADLINE - ?IDLE_EXIT ->
        %% Its callers have their answers; the thread exits (and frees the context) whenever
        %% the code it runs returns to the interpreter.
        logger:warning("erlang_python: context ~p: its thread still runs Python code ~b ms after stop; "
                       "left to exit on its own", [self(), ?STOP_DEADLINE], #{domain => [erlang_python]}),
        {error, timeout}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) ->
          {stop, normal, ok | {error, term()}, #state{}} | {reply, term(), #state{}}.
handle_call(stop, _From, #state{ref = Ref} = State) ->
    ets:delete(?REGISTRY, self()),
    Status = stop_thread(Ref),
    {stop, normal, Status, State#state{stopped = true}};
handle_call({start_loop, Owner}, _From, #state{ref = Ref, loop = undefined} = State) ->
    Serial = erlang:unique_integer([positive]),
    Start = fun(R, Ns, Tag) -> py_nif:submit_call(R, Ns, Tag, '_erlang_worker', start, [self(), Serial], #{}, plain) end,
    case py_request:run(Ref, undefined, ?LOOP_START_TIMEOUT, Start) of
        {ok, true} ->
            set_loop_state(self(), {running, Serial}),
            {reply, ok, State#state{loop = {Serial, Owner, erlang:monitor(process, Owner)}}};
        {error, _} = Error ->
            {reply, Error, State}
    end;
handle_call({start_loop, _Owner}, _From, State) ->
    {reply, {error, loop_running}, State};
handle_call(stopping_loop, _From, #state{loop = {Serial, _, _}} = State) ->
    set_loop_state(self(), stopped),
    {reply, {ok, Serial, State#state.ref}, State};
handle_call(stopping_loop, _From, State) ->
    {reply, {error, no_loop}, State};
handle_call({loop_ended, Serial, Result}, _From, State) ->
    {reply, ok, loop_ended(Serial, Result, State)};
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
handle_info({'DOWN', Mon, process, _, _}, #state{loop = {_, _, Mon}} = State) ->
    %% The loop's owner is gone: stop the loop, from a process of its own (stopping steps the
    %% loop, whose readiness comes through this process).
    Ctx = self(),
    _ = spawn(fun() -> stop_loop(Ctx, ?LOOP_GRACE) end),
    {noreply, State};
handle_info({'$py_loop_exit', Serial, Result}, State) ->
    {noreply, loop_ended(Serial, Result, State)};
handle_info({'EXIT', Owner, _}, #state{owner = Owner} = State) when is_pid(Owner) ->
    %% The owner, linked by start_link/2, has exited: as its 'DOWN' (not a crash of this context).
    {stop, normal, State};
handle_info({'EXIT', _, Reason}, State) ->
    {stop, Reason, State};
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{stopped = true} = State) ->
    context_ended(State);
terminate(_Reason, #state{ref = Ref} = State) ->
    ets:delete(?REGISTRY, self()),
    _ = stop_thread(Ref),
    context_ended(State).

%% The context is gone: the owner of its worker loop learns it.
context_ended(#state{loop = Loop}) ->
    drop_loop(Loop).

%% Worker loop Serial ended with Result (once: a later report of the same loop is ignored).
loop_ended(Serial, Result, #state{loop = {Serial, _, _} = Loop} = State) ->
    end_loop(Loop, Result),
    State#state{loop = undefined};
loop_ended(_Serial, _Result, State) ->
    State.
