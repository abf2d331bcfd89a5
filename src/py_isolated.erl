%% @doc Isolated contexts: a context whose Python runs in a child OS process (priv/py_child).
%%
%% Made with `py_context:new(#{mode => isolated})'; used with the same `py:call/eval/exec'
%% and `py_context' functions as the in-process modes (docs/contexts.md). The context is a
%% process owning a port to the child; requests and replies are external terms (`{packet, 4}'),
%% served by priv/_erlang_isolated.py, one at a time, except that requests made while the child
%% waits for an Erlang callback run in it at once (a callback may call the same context again).
%% Asynchronous requests (start_async/2, send_async/4) do not keep the child busy: their
%% coroutines run as tasks of the child's event loop, between requests, and are answered when
%% they end; a caller that gives up has its task cancelled.
%%
%% A child that dies (a signal, `os._exit', a limit) answers every request it was running with
%% `{error, {python_crashed, Reason}}' and is started again at the next request (or never, with
%% `restart => false': the context then answers `{error, {context_down, Reason}}').
-module(py_isolated).
-behaviour(gen_server).

-export([new/1, request/3, interrupt/1, is_isolated/1, init_table/0, start_link/1, all/0,
         setup_keys/0]).
-export([start_async/2, send_async/4, wait_async/3]).
-export([stats/1, backtrace/1, reset/1, context_call/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([limits/0, crash/0, pending/0, request/0, async_request/0]).

-type limits() :: #{memory => pos_integer(), cpu_seconds => pos_integer(),
                    open_files => pos_integer(), processes => pos_integer()}.
%% Why the child died: its exit status or signal, the last lines it wrote to stderr, and the
%% limit it ran into when that is known (`cpu_seconds' for SIGXCPU) or that it was killed
%% because it ignored an interrupt.
-type crash() :: #{exit_status => integer(), signal => atom() | pos_integer(),
                   stderr := [binary()], limit => memory | cpu_seconds,
                   killed => interrupt_ignored | bad_frame, port_closed => term()}.
%% A request's frame; with the serials of the children its object handles name, and the
%% handles themselves (held until the request ends, so none is released before the child
%% has read the request).
-type request() :: {call, py:py_module(), py:py_func(), list(), map()}
                 | {eval, iodata(), map()} | {exec, iodata()}.
%% An asynchronous request: the function's awaitable result runs as a task of the child's
%% event loop, and the request is answered when it ends (priv/_erlang_isolated_loop.py).
-type async_request() :: {async, py:py_module(), py:py_func(), list(), map()}.
%% An asynchronous request sent, waited for with wait_async/3 by the process that made Alias.
-type pending() :: {pid(), reference()}.

-define(TABLE, py_isolated_contexts).
-define(START_DEADLINE, 30000).
-define(DEFAULT_KILL_AFTER, 2000).
-define(RUNTIME_KEY, {?MODULE, runtime}).
-define(BACKTRACE_DEADLINE, 5000).
%% py_child's exit status when the kernel refuses it a network namespace (c_src/child/py_child.cpp).
-define(EXIT_NO_NETWORK_NAMESPACE, 72).

%% serial: names this incarnation of the child in object handles; never reused in the node.
-record(child, {port :: port(), os_pid :: pos_integer(), generation :: pos_integer(),
                serial :: pos_integer()}).
%% A request is named by its caller's alias (the reply goes to it); the child echoes it back.
-record(state, {owner_mon :: reference() | undefined,
                opts :: map(),
                log :: file:filename(),
                child :: #child{} | undefined,
                generation = 0 :: non_neg_integer(),
                down :: crash() | undefined,   %% crashed with restart => false
                queue = queue:new() :: queue:queue(reference()),
                %% in the child, innermost first; {loop, Key}: a task's callback Key in flight
                running = [] :: [reference() | {loop, {pos_integer(), integer()}}],
                %% Erlang callbacks in flight, each with the request that waits for it.
                callbacks = #{} :: #{{pos_integer(), integer()} => {pid(), reference()}},
                %% the frame, with the object handles it uses when it has any (py_isolated_frame:request_frame/0)
                requests = #{} :: #{reference() => {reference(), py_isolated_frame:request_frame()}},
                %% The asynchronous requests: queued, their task running in the child, or
                %% cancelled (a 'cancel' frame sent, the child killed if the timer fires first).
                tasks = #{} :: #{reference() => queued | started | {cancelling, reference()}},
                kill_timer :: {reference(), reference()} | undefined,
                stats = py_isolated_stats:new() :: py_isolated_stats:stats(),
                %% py_context:backtrace/1 callers waiting for the child's stack, and their deadline
                backtraces = [] :: [gen_server:from()],
                backtrace_timer :: reference() | undefined,
                signal_pending :: reference() | undefined,   %% a SIGINT on its way (interrupt/1)
                killed = false :: false | interrupt_ignored | bad_frame,
                %% the worker loop (py_isolated_loop): its serial, owner and owner monitor
                loop :: py_context:worker_loop() | undefined}).

%% --- API ---------------------------------------------------------------------------------------

%% @private
%% py_context:new/1 for `mode => isolated': checks the options and starts the context under
%% py_context_sup, owned by the calling process.
-spec new(map()) -> {ok, pid()} | {error, term()}.
new(Opts) ->
    case py_isolated_opts:check(Opts) of
        ok -> py_context_sup:start_context(Opts#{owner => self()});
        {error, _} = Error -> Error
    end.

%% @private
%% One request to isolated context Ctx, waiting at most Timeout ms. `{error,
%% context_not_found}' when Ctx is not a running isolated context.
-spec request(pid(), request() | async_request(), py:timeout_ms()) -> term().
request(Ctx, {async, _, _, _, _} = Request, Timeout) ->
    case start_async(Ctx, Request) of
        {ok, {_, Alias}} -> wait_async(Ctx, Alias, Timeout);
        {error, _} = Error -> Error
    end;
request(Ctx, Request, Timeout) ->
    case is_isolated(Ctx) of
        false -> {error, context_not_found};
        true ->
            await(Ctx, Request, Timeout)
    end.

%% @private
%% py:interrupt/1 on an isolated context: SIGINT to the child when it runs a request.
-spec interrupt(pid()) -> ok | not_running | {error, context_not_found}.
interrupt(Ctx) ->
    case is_isolated(Ctx) of
        false -> {error, context_not_found};
        true ->
            try gen_server:call(Ctx, interrupt, infinity)
            catch exit:_ -> {error, context_not_found}
            end
    end.

%% @private
-spec is_isolated(pid()) -> boolean().
is_isolated(Ctx) ->
    try ets:member(?TABLE, Ctx)
    catch error:badarg -> false
    end.

%% @private
%% Creates the table of isolated contexts; called by erlang_python_sup, which owns it.
-spec init_table() -> ok.
init_table() ->
    _ = ets:new(?TABLE, [named_table, public, set, {read_concurrency, true}]),
    ok.

%% @private
-spec start_link(map()) -> {ok, pid()} | {error, term()}.
start_link(Opts) ->
    gen_server:start_link(?MODULE, Opts, []).

%% @private
%% Sends asynchronous request Request (py:spawn_call/4,5 on an isolated context) and returns at
%% once; the calling process waits for it with wait_async/3. `{error, context_not_found}' when
%% Ctx is not a running isolated context.
-spec start_async(pid(), async_request()) -> {ok, pending()} | {error, context_not_found}.
start_async(Ctx, Request) ->
    case is_isolated(Ctx) of
        false -> {error, context_not_found};
        true ->
            Alias = erlang:monitor(process, Ctx, [{alias, demonitor}]),
            ok = send_async(Ctx, Request, Alias, self()),
            {ok, {Ctx, Alias}}
    end.

%% @private
%% Queues asynchronous request Request on isolated context Ctx: the reply goes to Alias, an
%% alias of a monitor of Ctx made by the process that waits (wait_async/3); the request is
%% cancelled when Waiter exits. Ordered after the requests this process sent before.
-spec send_async(pid(), async_request(), reference(), pid()) -> ok.
send_async(Ctx, {async, _, _, _, _} = Request, Alias, Waiter) ->
    Frame = try py_isolated_frame:encode(Request, Ctx, Alias)
            catch error:badarg -> erlang:demonitor(Alias, [flush]), erlang:error(badarg)
            end,
    Ctx ! {'$py_isolated_async', Alias, Waiter, Frame},
    ok.

%% @private
%% The reply to an asynchronous request this process sent (start_async/2 or send_async/4 with
%% its own alias), waiting at most Timeout ms; a timeout cancels the request's task.
-spec wait_async(pid(), reference(), py:timeout_ms()) -> term().
wait_async(Ctx, Alias, Timeout) ->
    receive
        {Alias, Reply} ->
            erlang:demonitor(Alias, [flush]),
            Reply;
        {'DOWN', Alias, process, _, _} ->
            {error, context_stopped}
    after Timeout ->
        erlang:demonitor(Alias, [flush]),
        Ctx ! {'$py_isolated_cancel', Alias},
        receive {Alias, _} -> ok after 0 -> ok end,
        {error, timeout}
    end.

%% @private
%% py_context:stats/1 on an isolated context: the in-process keys (`mode' is `isolated'), with
%% `tasks' (of the child's event loop, counted in `in_flight' too), `os_pid', `restarts' and
%% `memory' (`#{rss_bytes, vm_bytes}' of the child, or `undefined' when none runs).
-spec stats(pid()) -> {ok, map()} | {error, context_not_found}.
stats(Ctx) ->
    context_call(Ctx, stats).

%% @private
%% py_context:backtrace/1 on an isolated context: the Python stack the child runs now, read by a
%% signal handler in the child (SIGUSR2) without stopping it; `{ok, idle}' when it runs nothing.
-spec backtrace(pid()) -> {ok, idle | [py_observe:frame()]} | {error, term()}.
backtrace(Ctx) ->
    context_call(Ctx, backtrace).

%% @private
%% py_context:reset/1 on an isolated context: a fresh `__main__' namespace in the child and a
%% garbage collection; imported modules, object references and local envs stay.
-spec reset(pid()) -> ok | {error, term()}.
reset(Ctx) ->
    case request(Ctx, {call, '_erlang_isolated', '_reset', [], #{}}, infinity) of
        {ok, _} -> ok;
        {error, _} = Error -> Error
    end.

%% @private
%% A call to the process of isolated context Ctx; {error, context_not_found} when it is not one
%% (or is gone).
-spec context_call(pid(), term()) -> term().
context_call(Ctx, Msg) ->
    case is_isolated(Ctx) of
        false -> {error, context_not_found};
        true ->
            try gen_server:call(Ctx, Msg, infinity)
            catch exit:_ -> {error, context_not_found}
            end
    end.

%% --- the caller's side -------------------------------------------------------------------------

await(Ctx, Request, Timeout) ->
    Mon = erlang:monitor(process, Ctx, [{alias, demonitor}]),
    Frame = try py_isolated_frame:encode(Request, Ctx, Mon)
            catch error:badarg -> erlang:demonitor(Mon, [flush]), erlang:error(badarg)
            end,
    Ctx ! {'$py_isolated', Mon, self(), Frame},
    receive
        {Mon, Reply} ->
            erlang:demonitor(Mon, [flush]),
            Reply;
        {'DOWN', Mon, process, _, _} ->
            {error, context_stopped}
    after Timeout ->
        %% The alias goes with the monitor: a late reply is dropped by the runtime.
        erlang:demonitor(Mon, [flush]),
        Ctx ! {'$py_isolated_cancel', Mon},
        receive {Mon, _} -> ok after 0 -> ok end,
        {error, timeout}
    end.

%% --- the context process -----------------------------------------------------------------------

%% @private
-spec init(map()) -> {ok, #state{}} | {stop, term()}.
init(#{owner := Owner} = Opts) ->
    process_flag(trap_exit, true),
    State0 = #state{opts = Opts, log = log_file()},
    %% Listed before the child starts: a py_setup step set meanwhile reaches it either way.
    true = ets:insert(?TABLE, {self()}),
    case start_child(State0) of
        {ok, State} ->
            {ok, State#state{owner_mon = erlang:monitor(process, Owner)}};
        {error, Reason} ->
            ets:delete(?TABLE, self()),
            _ = file:delete(State0#state.log),
            {stop, Reason}
    end.

%% The child's stdout and stderr, one file per context, deleted when it stops (no directory: a
%% directory per node was left behind, empty, by every node).
log_file() ->
    filename:join(tmp_dir(), "erlang_python_isolated." ++ os:getpid() ++ "." ++
                      integer_to_list(erlang:unique_integer([positive])) ++ ".log").

tmp_dir() ->
    case os:getenv("TMPDIR") of
        Dir when is_list(Dir), Dir =/= "" -> Dir;
        _ -> "/tmp"
    end.

%% Starts the child and waits for its `ready' frame, then runs the `preload' code in it.
start_child(#state{opts = Opts, log = Log, generation = Gen} = State) ->
    #{libpython := Lib, home := Home} = runtime(),
    Priv = code:priv_dir(erlang_python),
    Limits = maps:get(limits, Opts, #{}),
    Args = [Priv, home_arg(Home), Log | [integer_to_list(maps:get(K, Limits, 0)) || K <- py_isolated_opts:limit_keys()]],
    %% The child is not built with sanitizers: a node run with LD_PRELOAD=libasan.so (make
    %% test-asan) must not pass it on (ASan's shadow memory does not fit a memory limit, and its
    %% SIGSEGV handler would turn a crash into an exit status).
    %% ERLANG_PYTHON_CHILD_SPIN: whether the child polls its pipe for a moment before it sleeps
    %% (c_src/child/input_wait.hpp).
    Env = [{"LD_LIBRARY_PATH", filename:dirname(Lib)}, {"LD_PRELOAD", false},
           {"ERLANG_PYTHON_CHILD_SPIN", spin_env(maps:get(spin, Opts, true))} | network_env(Opts)],
    try open_port({spawn_executable, filename:join(Priv, "py_child")},
                  [{packet, 4}, binary, exit_status, use_stdio, {args, Args}, {env, Env}]) of
        Port ->
            receive
                {Port, {data, Bin}} ->
                    case catch binary_to_term(Bin, [safe]) of
                        {ready, _Version, OsPid} when is_integer(OsPid) ->
                            Child = #child{port = Port, os_pid = OsPid, generation = Gen + 1,
                                           serial = erlang:unique_integer([positive])},
                            Up = State#state{child = Child, generation = Gen + 1, down = undefined},
                            ok = run_setup_steps(Up),
                            %% The node's preload globals, then the context's own preload code.
                            Adopt = case py_preload:has_preload() of
                                        true -> <<"__import__('_erlang_isolated')._adopt_preload()">>;
                                        false -> undefined
                                    end,
                            case preload(Up, Adopt) of
                                {ok, Ready} -> preload(Ready, maps:get(preload, Opts, undefined));
                                {error, _} = Error -> Error
                            end;
                        _ ->
                            catch port_close(Port),
                            {error, {child_not_started, bad_hello}}
                    end;
                {Port, {exit_status, ?EXIT_NO_NETWORK_NAMESPACE}} when map_get(network, Opts) =:= false ->
                    %% The kernel refused the network namespace: no child runs unprotected.
                    logger:error("erlang_python: isolated context ~p: no network namespace: ~0tp",
                                 [self(), py_isolated_crash:last_lines(Log)], #{domain => [erlang_python]}),
                    {error, {limit_unenforceable, network}};
                {Port, {exit_status, Status}} ->
                    {error, {python_crashed, crash_reason(Status, State)}}
            after ?START_DEADLINE ->
                catch port_close(Port),
                {error, context_start_timeout}
            end
    catch error:Reason ->
        {error, {child_not_started, Reason}}
    end.

%% `network => false': py_child enters an empty network namespace before Python starts; the
%% variable is always set or removed, so that the node's own environment cannot decide it.
network_env(#{network := false}) -> [{"ERLANG_PYTHON_CHILD_NETWORK", "none"}];
network_env(_Opts) -> [{"ERLANG_PYTHON_CHILD_NETWORK", false}].

spin_env(true) -> "1";
spin_env(false) -> "0".

home_arg(undefined) -> "";
home_arg(Home) -> Home.

runtime() ->
    case persistent_term:get(?RUNTIME_KEY, undefined) of
        undefined ->
            {ok, #{libpython := Lib, home := Home}} = py_runtime:choice(),
            Runtime = #{libpython => Lib, home => Home},
            persistent_term:put(?RUNTIME_KEY, Runtime),
            Runtime;
        Runtime ->
            Runtime
    end.

%% @private
%% The running isolated contexts (py_setup broadcasts its steps to them).
-spec all() -> [pid()].
all() ->
    try [Pid || {Pid} <- ets:tab2list(?TABLE)]
    catch error:badarg -> []
    end.

%% @private
%% The py_setup steps an isolated context's child runs: `logging' (py:configure_logging/1),
%% `venv' (py:activate_venv/1), `paths' and `imports' (py_import), and the node's preload code
%% (py_preload: the child's __main__ starts with its globals, as do local envs made later).
%% Tracing is not applied in the child.
-spec setup_keys() -> [atom()].
setup_keys() ->
    [logging, venv, paths, imports, preload].

%% The py_setup steps this child takes, in the order they were set, before the preload code.
%% A step that fails is reported and skipped (as for a new in-process context).
run_setup_steps(#state{child = #child{port = Port}} = State) ->
    lists:foreach(
      fun({Key, Version, {Module, Function, Args}, _Info}) ->
              Step = [atom_to_binary(Key, utf8), Version, Module, Function, Args],
              port_command(Port, py_isolated_frame:request_binary({call, '_erlang_setup', apply, Step, #{}}, 0)),
              case setup_reply(State) of
                  ok -> ok;
                  {error, Reason} ->
                      logger:warning("erlang_python: setup step ~p could not run in an isolated context's child: ~0tp",
                                     [Key, Reason], #{domain => [erlang_python]})
              end
      end,
      [Step || {Key, _, _, _} = Step <- py_setup:steps(), lists:member(Key, setup_keys())]).

setup_reply(#state{child = #child{port = Port} = Child} = State) ->
    receive
        {Port, {data, Bin}} ->
            case catch result(binary_to_term(Bin, [safe])) of
                {reply, 0, {ok, _}} -> ok;
                {reply, 0, {error, _} = Error} -> Error;
                {callback, CbId, _Name, _Args} ->
                    send_frame(Child, {cb_reply, CbId, term_to_binary({error, {<<"error">>, <<"setup">>}})}),
                    setup_reply(State);
                _Other ->
                    setup_reply(State)
            end;
        {Port, {exit_status, _}} = Exit ->
            self() ! Exit,   %% seen again once the context runs: the crash is handled there
            {error, child_exited}
    end.

preload(State, undefined) ->
    {ok, State};
preload(#state{child = #child{port = Port}} = State, Code) ->
    port_command(Port, py_isolated_frame:request_binary({exec, Code}, 0)),
    preload_reply(State).

%% Callbacks are not served while the preload code runs (the context is not registered yet).
preload_reply(#state{child = #child{port = Port} = Child} = State) ->
    receive
        {Port, {data, Bin}} ->
            case catch result(binary_to_term(Bin, [safe])) of
                {reply, 0, ok} ->
                    {ok, State};
                {reply, 0, {error, Exception}} ->
                    stop_child(State),
                    {error, {preload, Exception}};
                {callback, CbId, _Name, _Args} ->
                    send_frame(Child, {cb_reply, CbId, term_to_binary({error, {<<"error">>, <<"preload">>}})}),
                    preload_reply(State);
                _Other ->
                    preload_reply(State)
            end;
        {Port, {exit_status, Status}} ->
            {error, {python_crashed, crash_reason(Status, State)}}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}} | {stop, normal, ok, #state{}}.
handle_call(stop, _From, State) ->
    ets:delete(?TABLE, self()),
    {stop, normal, ok, shut_down(State)};
handle_call(interrupt, _From, #state{running = [Id | _]} = State) when is_reference(Id) ->
    {reply, ok, interrupt_running(Id, State)};
handle_call(interrupt, _From, State) ->
    {reply, not_running, State};
handle_call(stats, _From, State) ->
    {reply, {ok, stats_snapshot(State)}, State};
handle_call(backtrace, _From, #state{child = undefined} = State) ->
    {reply, {ok, idle}, State};
handle_call(backtrace, From, #state{backtraces = [_ | _] = Waiting} = State) ->
    {noreply, State#state{backtraces = [From | Waiting]}};   %% one signal answers them all
handle_call(backtrace, From, #state{child = Child} = State) ->
    send_signal(Child, "USR2"),
    Timer = erlang:send_after(?BACKTRACE_DEADLINE, self(), backtrace_timeout),
    {noreply, State#state{backtraces = [From], backtrace_timer = Timer}};
handle_call({claim_loop, Owner}, _From, #state{loop = undefined, down = undefined} = State) ->
    %% py_isolated_loop:start/2 starts it in the child next.
    Serial = erlang:unique_integer([positive]),
    {reply, {ok, Serial}, State#state{loop = {Serial, Owner, erlang:monitor(process, Owner)}}};
handle_call({claim_loop, _Owner}, _From, #state{down = Crash} = State) when Crash =/= undefined ->
    {reply, {error, {context_down, Crash}}, State};
handle_call({claim_loop, _Owner}, _From, State) ->
    {reply, {error, loop_running}, State};
handle_call({loop_failed, Serial}, _From, #state{loop = {Serial, _, Mon}} = State) ->
    %% The child did not start it: nobody was told it ran, nobody is told it ended.
    erlang:demonitor(Mon, [flush]),
    {reply, ok, State#state{loop = undefined}};
handle_call({loop_failed, _Serial}, _From, State) ->
    {reply, ok, State};
handle_call({loop_started, Serial}, _From, #state{loop = {Serial, _, _}} = State) ->
    py_context:set_loop_state(self(), {running, Serial}),
    {reply, ok, State};
handle_call({loop_started, _Serial}, _From, State) ->
    {reply, {error, loop_stopped}, State};   %% it ended meanwhile (the child crashed)
handle_call(stopping_loop, _From, #state{loop = {Serial, _, _}} = State) ->
    py_context:set_loop_state(self(), stopped),
    {reply, {ok, Serial}, State};
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
handle_info({'$py_isolated', Alias, Caller, Frame}, State) ->
    {noreply, pump(accept(Alias, Caller, Frame, State))};
handle_info({'$py_isolated_async', Alias, Caller, Frame}, #state{tasks = Tasks} = State) ->
    Accepted = accept(Alias, Caller, Frame, State),
    Queued = case is_map_key(Alias, Accepted#state.requests) of
                 true -> Accepted#state{tasks = Tasks#{Alias => queued}};
                 false -> Accepted   %% answered at once: the context is down
             end,
    {noreply, pump(Queued)};
handle_info({task_cancel_timeout, Alias}, #state{tasks = Tasks, child = Child} = State)
  when Child =/= undefined ->
    %% A cancelled task that has not ended kill_after ms later (code that blocks the loop, or
    %% catches the cancellation): the child is killed, as for an interrupt ignored.
    case Tasks of
        #{Alias := {cancelling, _}} ->
            kill_group(Child, "KILL"),
            {noreply, State#state{killed = interrupt_ignored}};
        _ ->
            {noreply, State}
    end;
handle_info({Port, {data, Bin}}, #state{child = #child{port = Port} = Child} = State) ->
    try binary_to_term(Bin, [safe]) of
        Frame -> {noreply, pump(from_child(Frame, State))}
    catch error:badarg ->
        %% Not a frame of ours (Python code can forge an erlang.Pid): the child is killed, its
        %% requests get the crash.
        kill_group(Child, "KILL"),
        {noreply, State#state{killed = bad_frame}}
    end;
handle_info({Port, {exit_status, Status}}, #state{child = #child{port = Port}} = State) ->
    {noreply, pump(crashed(crash_reason(Status, State), State))};
handle_info({'$py_callback_done', Key, Result}, #state{child = Child, callbacks = Cbs} = State) ->
    case maps:take(Key, Cbs) of
        {_, Rest} when Child =/= undefined ->
            {_Gen, CbId} = Key,
            send_frame(Child, {cb_reply, CbId, term_to_binary(callback_reply(Result, Child))}),
            {noreply, pump(State#state{callbacks = Rest,
                                       running = lists:delete({loop, Key}, State#state.running)})};
        _ ->
            {noreply, State}
    end;
handle_info({'$py_isolated_release', Serial, Id}, #state{child = #child{serial = Serial} = Child} = State) ->
    send_frame(Child, {release, Id}),
    {noreply, State};
handle_info({'$py_isolated_release', _Serial, _Id}, State) ->
    {noreply, State};   %% an earlier child's object: gone with it
handle_info({'$py_signal_sent', Ref}, #state{signal_pending = Ref} = State) ->
    {noreply, pump(State#state{signal_pending = undefined})};
handle_info({'$py_isolated_cancel', Alias}, State) ->
    {noreply, pump(abandon(Alias, counted_if_pending(timeouts, Alias, State)))};
handle_info(backtrace_timeout, State) ->
    %% C code that keeps the child from running Python (its signal handler) for 5 seconds.
    {noreply, answer_backtraces({error, timeout}, State)};
handle_info({'DOWN', Mon, process, _, _}, #state{owner_mon = Mon} = State) ->
    ets:delete(?TABLE, self()),
    {stop, normal, shut_down(State)};
handle_info({'DOWN', Mon, process, _, _}, #state{loop = {_, _, Mon}} = State) ->
    %% The worker loop's owner is gone: the loop is stopped, by a process of its own (the stop
    %% is a request this process serves).
    Ctx = self(),
    _ = spawn(fun() -> py_context:stop_loop(Ctx) end),
    {noreply, State};
handle_info({'$py_loop_exit', Serial, Result}, State) ->
    %% From the child: its loop was stopped under the worker loop (py_event_loop:stop/1).
    {noreply, loop_ended(Serial, Result, State)};
handle_info({{'DOWN', Alias}, _, process, _, _}, State) ->
    %% A caller exited while its request was pending.
    {noreply, pump(abandon(Alias, counted_if_pending(abandoned, Alias, State)))};
handle_info({kill_ignored, Id}, #state{kill_timer = {Id, _}, running = Running, child = Child} = State)
  when Child =/= undefined ->
    case lists:member(Id, Running) of
        true ->
            kill_group(Child, "KILL"),
            {noreply, State#state{kill_timer = undefined, killed = interrupt_ignored}};
        false ->
            {noreply, State#state{kill_timer = undefined}}
    end;
handle_info({'EXIT', Port, Reason}, #state{child = #child{port = Port}} = State) ->
    %% The port closed without an exit status (a write to a child that had died: epipe): no
    %% exit_status message follows, so this is the crash.
    Crash = (crash_reason(0, State))#{port_closed => Reason},
    {noreply, pump(crashed(maps:remove(exit_status, Crash), State))};
handle_info({'EXIT', _, _}, State) ->
    {noreply, State};
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, State) ->
    ets:delete(?TABLE, self()),
    _ = shut_down(State),
    ok.

%% A new request: numbered, its caller monitored (the monitor reference doubles as the key for
%% a caller that exits), queued.
accept(Alias, _Caller, _Frame, #state{down = Crash} = State) when Crash =/= undefined ->
    Alias ! {Alias, {error, {context_down, Crash}}},
    State;
accept(Alias, Caller, Frame, #state{queue = Q, requests = Reqs, stats = Stats} = State) ->
    Mon = erlang:monitor(process, Caller, [{tag, {'DOWN', Alias}}]),
    State#state{queue = queue:in(Alias, Q), requests = Reqs#{Alias => {Mon, Frame}},
                stats = py_isolated_stats:submitted(Alias, Stats)}.

%% Sends queued requests while the child can take them: when it is idle, or when every request
%% it runs waits for an Erlang callback (a nested call runs on top of them).
pump(#state{down = Crash} = State) when Crash =/= undefined ->
    State;
pump(#state{signal_pending = Ref} = State) when Ref =/= undefined ->
    State;
pump(#state{queue = Q, running = Running, callbacks = Cbs} = State) ->
    case length(Running) =:= map_size(Cbs) andalso queue:out(Q) of
        {{value, Id}, Rest} ->
            case State#state.requests of
                #{Id := {_, Frame}} ->
                    case ensure_child(State#state{queue = Rest}) of
                        {ok, #state{child = #child{port = Port, serial = Serial}} = Up} ->
                            case py_isolated_frame:stale_handles(Frame, Serial) of
                                false ->
                                    case write(Port, py_isolated_frame:frame_binary(Frame)) of
                                        ok -> pump(sent(Id, Up));
                                        closed -> pump(child_gone_before(Id, Up))
                                    end;
                                Why ->
                                    pump(reply(Id, {error, {'ValueError', Why}}, Up))
                            end;
                        {error, Reason, Down} ->
                            pump(reply(Id, {error, Reason}, Down))
                    end;
                _ ->
                    %% cancelled while queued
                    pump(State#state{queue = Rest, tasks = maps:remove(Id, State#state.tasks)})
            end;
        _ ->
            State
    end.

%% Request Id is in the child: an asynchronous one runs as a task of the child's loop and does
%% not keep the child busy; any other runs on top of those running.
sent(Id, #state{tasks = Tasks, running = Running, stats = Stats0} = State0) ->
    State = State0#state{stats = py_isolated_stats:sent(Id, Stats0)},
    case Tasks of
        #{Id := queued} -> State#state{tasks = Tasks#{Id := started}};
        _ -> State#state{running = [Id | Running]}
    end.

ensure_child(#state{child = undefined} = State) ->
    case start_child(State) of
        {ok, Up} -> {ok, Up};
        {error, Reason} -> {error, Reason, State}
    end;
ensure_child(State) ->
    {ok, State}.

from_child({with_objects, Bin}, #state{child = #child{serial = Serial}} = State) when is_binary(Bin) ->
    %% A frame holding references to objects kept in the child: each becomes a handle whose
    %% garbage collection releases the object ('$py_isolated_release').
    try binary_to_term(Bin, [safe]) of
        Frame -> from_child(py_isolated_frame:objects_in(Frame, Serial), State)
    catch error:badarg ->
        %% Not a frame of ours: as for a forged frame (handle_info/2), the child is killed.
        kill_group(State#state.child, "KILL"),
        State#state{killed = bad_frame}
    end;
from_child({reply, Id, Result}, #state{running = Running, callbacks = Cbs} = State) ->
    Cleared = case State#state.kill_timer of
                  {Id, Timer} -> _ = erlang:cancel_timer(Timer), State#state{kill_timer = undefined};
                  _ -> State
              end,
    %% A request interrupted while it waited for a callback: that callback's answer is not
    %% awaited any more.
    Awaited = maps:filter(fun(_, {_, Waiting}) -> Waiting =/= Id end, Cbs),
    Answer = result(Result),
    Counted = Cleared#state{stats = py_isolated_stats:answered(Id, Answer, Cleared#state.stats)},
    reply(Id, Answer, task_ended(Id, Counted#state{running = lists:delete(Id, Running), callbacks = Awaited}));
from_child({backtrace, Stack}, State) ->
    answer_backtraces({ok, frames(Stack)}, State);
from_child({callback, CbId, <<"$py_send_to_name">>, [Name, Msg]}, #state{child = Child} = State) ->
    %% erlang.send to a registered name: looked up here, so an unregistered one raises.
    Reply = case registered(Name) of
                undefined -> {error, {<<"NotRegistered">>, Name}};
                Pid -> Pid ! Msg, {ok, none}
            end,
    send_frame(Child, {cb_reply, CbId, term_to_binary(Reply)}),
    State;
from_child({callback, CbId, Name, Args}, #state{child = #child{generation = Gen}, callbacks = Cbs,
                                                running = [Waiting | _]} = State) ->
    Self = self(),
    Key = {Gen, CbId},
    Pid = spawn(fun() -> Self ! {'$py_callback_done', Key, run_callback(Name, Args)} end),
    State#state{callbacks = Cbs#{Key => {Pid, Waiting}},
                stats = py_isolated_stats:count(callbacks, State#state.stats)};
from_child({callback, CbId, Name, Args}, #state{child = #child{generation = Gen}, callbacks = Cbs,
                                                running = []} = State) ->
    %% With no request running, from a task of the child's loop (or a server a task started):
    %% the child waits for it as for a request's callback (a request made by the callback runs
    %% in the child on top of it).
    Self = self(),
    Key = {Gen, CbId},
    Pid = spawn(fun() -> Self ! {'$py_callback_done', Key, run_callback(Name, Args)} end),
    State#state{callbacks = Cbs#{Key => {Pid, {loop, Key}}}, running = [{loop, Key}],
                stats = py_isolated_stats:count(callbacks, State#state.stats)};
from_child({send, Dest, Term}, State) when is_pid(Dest) ->
    Dest ! Term,
    State;
from_child(_Other, State) ->
    State.

registered(Name) when is_binary(Name) ->
    try whereis(binary_to_existing_atom(Name, utf8))
    catch error:badarg -> undefined
    end;
registered(_) ->
    undefined.

run_callback(Name, Args) ->
    try py_callback:run(Name, Args)
    catch Class:Reason -> {error, {Class, iolist_to_binary(io_lib:format("~0tp", [Reason]))}}
    end.

%% A callback's result with this child's object handles as the child's references (the
%% release of a handle, if it follows, reaches the child after this reply).
callback_reply(Result, #child{serial = Serial}) ->
    case py_isolated_frame:objects_out(callback_result(Result), self(), []) of
        {Out, Held} ->
            case lists:usort([S || {S, _} <- Held]) -- [Serial] of
                [] -> Out;
                _ -> {error, {<<"ValueError">>, <<"a Python object reference from another context or an ended "
                                                  "isolated process cannot be used here">>}}
            end
    end.

callback_result({ok, _} = Ok) -> Ok;
callback_result(unknown_function) -> {error, unknown_function};
callback_result({error, {Class, Reason}}) -> {error, {atom_to_binary(Class, utf8), Reason}};
callback_result(Other) -> {error, {<<"error">>, iolist_to_binary(io_lib:format("~0tp", [Other]))}}.

%% The child's answer as the in-process modes give it: exception names as atoms.
result({reply, Id, Result}) ->
    {reply, Id, result(Result)};
result({error, {<<"KeyboardInterrupt">>, <<"erlang_python: interrupted">>}}) ->
    %% The SIGINT of py:interrupt/1 (a timed-out request's caller has its answer already); a
    %% KeyboardInterrupt the code raised itself is an exception like any other.
    {error, interrupted};
result({error, {Name, Message}}) when is_binary(Name) ->
    {error, {exception_name(Name), message(Message)}};
result(Result) ->
    Result.

%% An exception's message as the in-process modes give it: a string (the binary itself only
%% if it is not UTF-8).
message(Message) when is_binary(Message) ->
    case unicode:characters_to_list(Message) of
        List when is_list(List) -> List;
        _ -> Message
    end;
message(Message) ->
    Message.

exception_name(Name) ->
    %% The in-process rule and budget (one for the node): an existing atom, a new one while the
    %% budget lasts, else the binary.
    py_nif:code_name_atom(Name).

reply(Alias, Result, #state{requests = Reqs} = State) ->
    case maps:take(Alias, Reqs) of
        {{Mon, _}, Rest} ->
            erlang:demonitor(Mon, [flush]),
            Alias ! {Alias, Result},
            State#state{requests = Rest, tasks = maps:remove(Alias, State#state.tasks),
                        stats = py_isolated_stats:forgotten(Alias, State#state.stats)};
        error ->
            State
    end.

%% A caller that timed out or exited: its request is forgotten; if it is the one the child
%% runs, the child is interrupted (SIGINT) and killed when it still runs it kill_after ms later.
abandon(Alias, #state{requests = Reqs} = State) ->
    case maps:take(Alias, Reqs) of
        {{Mon, _}, Rest} ->
            erlang:demonitor(Mon, [flush]),
            Forgot = State#state{requests = Rest, stats = py_isolated_stats:forgotten(Alias, State#state.stats)},
            case State of
                #state{running = [Alias | _]} -> interrupt_running(Alias, Forgot);
                #state{tasks = #{Alias := started}} -> cancel_task(Alias, Forgot);
                #state{tasks = #{Alias := queued}} -> Forgot#state{tasks = maps:remove(Alias, State#state.tasks)};
                _ -> Forgot
            end;
        error ->
            State
    end.

%% A task whose caller gave up: a 'cancel' frame cancels it in the child (its answer, which
%% nobody awaits, says when it ended); the child is killed if it has not ended kill_after ms later.
cancel_task(Alias, #state{child = Child, opts = Opts, tasks = Tasks} = State) ->
    send_frame(Child, {cancel, Alias}),
    After = maps:get(kill_after, Opts, ?DEFAULT_KILL_AFTER),
    Timer = erlang:send_after(After, self(), {task_cancel_timeout, Alias}),
    State#state{tasks = Tasks#{Alias := {cancelling, Timer}}}.

%% The child answered request Id: if it was a task, it has ended.
task_ended(Id, #state{tasks = Tasks} = State) ->
    case maps:take(Id, Tasks) of
        {{cancelling, Timer}, Rest} -> _ = erlang:cancel_timer(Timer), State#state{tasks = Rest};
        {_, Rest} -> State#state{tasks = Rest};
        error -> State
    end.

interrupt_running(_Id, #state{child = undefined} = State) ->
    State;
interrupt_running(Id, #state{child = Child, opts = Opts} = State0) ->
    State = State0#state{signal_pending = send_sigint(Child),
                         stats = py_isolated_stats:count(interrupts, State0#state.stats)},
    case State#state.kill_timer of
        undefined ->
            After = maps:get(kill_after, Opts, ?DEFAULT_KILL_AFTER),
            State#state{kill_timer = {Id, erlang:send_after(After, self(), {kill_ignored, Id})}};
        _ ->
            State
    end.

%% The child died: every request it ran is answered; queued ones run in the next child.
crashed(Crash, #state{running = Running, opts = Opts} = State) ->
    kill_group(State#state.child, "KILL"),
    logger:error("erlang_python: isolated context ~p: its Python process died: ~0tp", [self(), Crash],
                 #{domain => [erlang_python]}),
    Cleared = case State#state.kill_timer of
                  {_, Timer} -> _ = erlang:cancel_timer(Timer), State#state{kill_timer = undefined};
                  undefined -> State
              end,
    %% The tasks the child ran die with it; queued ones run in the next child.
    {Queued, InChild} = maps:fold(fun(Id, queued, {Q, C}) -> {Q#{Id => queued}, C};
                                     (Id, {cancelling, Timer}, {Q, C}) -> _ = erlang:cancel_timer(Timer), {Q, [Id | C]};
                                     (Id, started, {Q, C}) -> {Q, [Id | C]}
                                  end, {#{}, []}, State#state.tasks),
    Answered = lists:foldl(fun(Id, S) -> reply(Id, {error, {python_crashed, Crash}}, S) end,
                           (answer_backtraces({error, {python_crashed, Crash}}, Cleared))#state{child = undefined, running = [], callbacks = #{}, killed = false,
                                         tasks = Queued},
                           [Id || Id <- Running, is_reference(Id)] ++ InChild),
    LoopGone = case Answered#state.loop of
                   {Serial, _, _} -> loop_ended(Serial, {error, {python_crashed, Crash}}, Answered);
                   undefined -> Answered
               end,
    case maps:get(restart, Opts, true) of
        true -> LoopGone;
        false ->
            Down = LoopGone#state{down = Crash, tasks = #{}},
            lists:foldl(fun(Id, S) -> reply(Id, {error, {context_down, Crash}}, S) end,
                        Down#state{queue = queue:new()}, queue:to_list(LoopGone#state.queue))
    end.

%% Worker loop Serial ended with Result: its owner is told (once; a later report of the same
%% loop, or of an earlier one, is ignored).
loop_ended(Serial, Result, #state{loop = {Serial, _, _} = Loop} = State) ->
    py_context:end_loop(Loop, Result),
    State#state{loop = undefined};
loop_ended(_Serial, _Result, State) ->
    State.

crash_reason(Status, #state{log = Log, opts = Opts, killed = Killed}) ->
    py_isolated_crash:reason(Status, Log, maps:get(limits, Opts, #{}), Killed).

%% Stops the child and answers everything still pending with {error, context_stopped}.
shut_down(#state{requests = Reqs} = State) ->
    stop_child(State),
    _ = file:delete(State#state.log),
    maps:foreach(fun(Alias, {Mon, _}) ->
                         erlang:demonitor(Mon, [flush]),
                         Alias ! {Alias, {error, context_stopped}}
                 end, Reqs),
    [exit(Pid, kill) || {Pid, _} <- maps:values(State#state.callbacks)],
    _ = answer_backtraces({error, context_stopped}, State),
    py_context:drop_loop(State#state.loop),
    State#state{child = undefined, backtraces = [], backtrace_timer = undefined, requests = #{}, running = [], queue = queue:new(),
                callbacks = #{}, tasks = #{}, loop = undefined}.

%% Closing the port ends an idle child (end of file); the group kill ends a busy one and what it
%% forked. The BEAM reaps the child.
stop_child(#state{child = undefined}) ->
    ok;
stop_child(#state{child = #child{port = Port} = Child}) ->
    catch port_close(Port),
    kill_group(Child, "KILL"),
    ok.

send_frame(#child{port = Port}, Term) ->
    _ = write(Port, term_to_binary(Term)),
    ok.

%% A frame to the child; `closed' when its port is closed already (the child died, and its
%% port's exit message waits in the mailbox or never comes).
write(Port, Bin) ->
    try port_command(Port, Bin) of
        true -> ok
    catch error:badarg -> closed
    end.

%% The child died before request Id could be written to it: its running requests get the crash,
%% and Id, which it never read, runs in the next child (or gets context_down).
child_gone_before(Id, State) ->
    Crash = maps:remove(exit_status, (crash_reason(0, State))#{port_closed => write_failed}),
    Down = crashed(Crash, State),
    case Down#state.down of
        undefined -> Down#state{queue = queue:in_r(Id, Down#state.queue)};
        _ -> reply(Id, {error, {context_down, Crash}}, Down)
    end.

%% SIGINT to the child, from a process of its own (os:cmd takes a few ms): it reports
%% {'$py_signal_sent', Ref} once kill(2) returned; until then pump/1 sends the child nothing,
%% so that the signal can only land in the request it was meant for (or in the idle child,
%% which ignores it).
send_sigint(#child{os_pid = OsPid}) ->
    Self = self(),
    Ref = make_ref(),
    _ = spawn(fun() ->
                      _ = os:cmd("kill -s INT " ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
                      Self ! {'$py_signal_sent', Ref}
              end),
    Ref.

%% A signal to the child alone (not its group), from a process of its own (os:cmd takes a few ms).
send_signal(#child{os_pid = OsPid}, Sig) ->
    _ = spawn(fun() -> os:cmd("kill -s " ++ Sig ++ " " ++ integer_to_list(OsPid) ++ " 2>/dev/null") end),
    ok.

%% --- stats and backtrace -----------------------------------------------------------------------

counted_if_pending(Counter, Alias, #state{requests = Reqs, stats = Stats} = State) ->
    case is_map_key(Alias, Reqs) of
        true -> State#state{stats = py_isolated_stats:count(Counter, Stats)};
        false -> State
    end.

stats_snapshot(#state{queue = Q, requests = Reqs, running = Running, tasks = Tasks, child = Child,
                      generation = Gen, stats = Stats}) ->
    Queued = length([Id || Id <- queue:to_list(Q), is_map_key(Id, Reqs)]),
    InChild = length([Id || Id <- Running, is_reference(Id)]),
    Started = map_size(maps:filter(fun(_, V) -> V =/= queued end, Tasks)),
    {OsPid, Memory} = case Child of
                          undefined -> {undefined, undefined};
                          #child{os_pid = P} -> {P, child_memory(P)}
                      end,
    py_isolated_stats:snapshot(Stats, #{mode => isolated, queue_depth => Queued, running => InChild,
                                        tasks => Started, in_flight => Queued + InChild + Started,
                                        memory => Memory, os_pid => OsPid, restarts => max(0, Gen - 1)}).

%% The child's resident and virtual size, from /proc (undefined when it cannot be read).
child_memory(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status") of
        {ok, Status} ->
            case {kb(Status, <<"VmRSS">>), kb(Status, <<"VmSize">>)} of
                {Rss, Vm} when is_integer(Rss), is_integer(Vm) -> #{rss_bytes => Rss * 1024, vm_bytes => Vm * 1024};
                _ -> undefined
            end;
        {error, _} ->
            undefined
    end.

kb(Status, Key) ->
    case re:run(Status, <<"^", Key/binary, ":\\s+([0-9]+) kB">>, [multiline, {capture, all_but_first, binary}]) of
        {match, [N]} -> binary_to_integer(N);
        nomatch -> undefined
    end.

answer_backtraces(_Answer, #state{backtraces = []} = State) ->
    State;
answer_backtraces(Answer, #state{backtraces = Waiting, backtrace_timer = Timer} = State) ->
    _ = is_reference(Timer) andalso erlang:cancel_timer(Timer),
    [gen_server:reply(From, Answer) || From <- Waiting],
    State#state{backtraces = [], backtrace_timer = undefined}.

%% The child's stack as py_observe gives it: `idle', or frames innermost first.
frames(Stack) when is_list(Stack) ->
    [#{file => File, line => Line, function => Function} || {File, Line, Function} <- Stack];
frames(_Idle) ->
    idle.

kill_group(undefined, _Sig) ->
    ok;
kill_group(#child{os_pid = OsPid}, Sig) ->
    _ = os:cmd("kill -s " ++ Sig ++ " -- -" ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
    ok.
