%% @doc Regression tests for stopping and guarding contexts (issue 14, findings 5 and the
%% "Also" list; docs/reliability.md, "Stop, fork and conversion limits"): py_context:stop/1
%% while a request spins, a killed context's registry row, os.fork() in a context,
%% erlang.new_event_loop() in a Python thread, builtins.eval/exec called by name, and a Python
%% tuple above the BEAM's maximum arity. Worker and owngil where it applies (owngil cases skip
%% below Python 3.13).
-module(py_stop_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_group/2, end_per_group/2]).
-export([fork_refused_with_owngil_alive/1]).
-export([stop_answers_queued_and_running/1, owner_exit_answers_queued_and_running/1,
         killed_context_leaves_no_row/1, fork_refused/1, fork_allowed_by_app_env/1,
         thread_event_loop_no_attribute_error/1, builtins_eval_by_name/1, tuple_above_max_arity/1,
         not_a_context/1]).

-define(CALLERS, 60).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [{group, worker}, {group, owngil}, killed_context_leaves_no_row, fork_allowed_by_app_env,
     fork_refused_with_owngil_alive,
     thread_event_loop_no_attribute_error, builtins_eval_by_name, tuple_above_max_arity, not_a_context].

groups() ->
    Cases = [stop_answers_queued_and_running, owner_exit_answers_queued_and_running, fork_refused],
    [{worker, [], Cases}, {owngil, [], Cases}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

init_per_group(owngil, Config) ->
    case py_context:new(#{mode => owngil}) of
        {ok, Ctx} ->
            ok = py_context:stop(Ctx),
            [{mode, owngil} | Config];
        {error, {owngil_unsupported, V}} ->
            {skip, "OWN_GIL contexts need Python 3.13+; this build uses " ++ binary_to_list(V)}
    end;
init_per_group(worker, Config) ->
    [{mode, worker} | Config].

end_per_group(_, _Config) ->
    ok.

%% --- finding 5: stop while a request spins ----------------------------------------------------

%% A request runs `while True: pass'; ?CALLERS more callers wait behind it. py_context:stop/1
%% interrupts the loop and returns ok (the thread exits), and every caller, the spinning one
%% included, gets exactly one reply: {error, context_stopped}. Before the fix stop returned
%% {error, timeout} after 5 s, the thread spun on and the queued callers never got a reply.
stop_answers_queued_and_running(Config) ->
    {Ctx, Spinner, Callers} = spinning_with_queue(?config(mode, Config)),
    T0 = erlang:monotonic_time(millisecond),
    ok = py_context:stop(Ctx),
    StopMs = erlang:monotonic_time(millisecond) - T0,
    check_all_answered([Spinner | Callers]),
    error = py_context:lookup(Ctx),
    ct:comment("stop returned ok after ~p ms; ~p callers answered once each", [StopMs, ?CALLERS + 1]).

%% The same when the context stops because its owner exits (no stop/1 call at all).
owner_exit_answers_queued_and_running(Config) ->
    Parent = self(),
    Mode = ?config(mode, Config),
    Owner = spawn(fun() ->
                          {ok, Ctx} = py_context:new(#{mode => Mode}),
                          Parent ! {ctx, Ctx},
                          receive exit -> ok end
                  end),
    Ctx = receive {ctx, C} -> C end,
    {Spinner, Callers} = spin_and_queue(Ctx),
    Mon = erlang:monitor(process, Ctx),
    Owner ! exit,
    receive {'DOWN', Mon, process, Ctx, _} -> ok end,
    check_all_answered([Spinner | Callers]).

%% A context whose thread spins in `while True: pass', with ?CALLERS callers queued behind it.
spinning_with_queue(Mode) ->
    {ok, Ctx} = py_context:new(#{mode => Mode}),
    {Spinner, Callers} = spin_and_queue(Ctx),
    {Ctx, Spinner, Callers}.

spin_and_queue(Ctx) ->
    Parent = self(),
    ok = py:exec(Ctx, <<"import erlang\n"
                        "def spin(p):\n"
                        "    erlang.send(p, 'spinning')\n"
                        "    while True:\n"
                        "        pass\n">>),
    Spinner = caller(Parent, fun() -> py:eval(Ctx, <<"spin(p)">>, #{p => Parent}) end),
    receive <<"spinning">> -> ok after 10000 -> ct:fail(not_spinning) end,
    Callers = [caller(Parent, fun() -> py:call(Ctx, operator, add, [I, 1]) end) || I <- lists:seq(1, ?CALLERS)],
    %% Each caller has queued its request once it waits in receive for the reply.
    true = py_test_util:wait_until(fun() -> lists:all(fun waiting/1, Callers) end, 10000),
    {Spinner, Callers}.

waiting(Pid) ->
    erlang:process_info(Pid, status) =:= {status, waiting}.

%% A process that runs Fun, reports its result, then (when told to check) reports whatever
%% else reached its mailbox.
caller(Parent, Fun) ->
    spawn(fun() ->
                  Parent ! {result, self(), Fun()},
                  receive check -> Parent ! {extra, self(), py_test_util:flush()} end
          end).

%% Every caller got exactly {error, context_stopped}, and nothing more once the context's
%% thread has exited.
check_all_answered(Callers) ->
    Results = [receive {result, P, R} -> R after 10000 -> no_reply end || P <- Callers],
    [] = [R || R <- Results, R =/= {error, context_stopped}],
    _ = [P ! check || P <- Callers],
    [] = lists:append([receive {extra, P, Extra} -> Extra end || P <- Callers]),
    ok.

%% --- a killed context leaves no registry row -----------------------------------------------------

%% 100 contexts killed with exit(Ctx, kill): the registry holds as many rows as before. Before
%% the fix every kill left its row (100 kills, 100 more rows).
killed_context_leaves_no_row(_Config) ->
    Rows0 = ets:info(py_context_registry, size),
    Ctxs = [begin {ok, C} = py_context:new(#{mode => worker}), C end || _ <- lists:seq(1, 100)],
    Rows1 = ets:info(py_context_registry, size),
    100 = Rows1 - Rows0,
    _ = [begin
             Mon = erlang:monitor(process, C),
             exit(C, kill),
             receive {'DOWN', Mon, process, C, killed} -> ok end
         end || C <- Ctxs],
    true = py_test_util:wait_until(fun() -> ets:info(py_context_registry, size) =:= Rows0 end, 10000),
    [] = [C || C <- Ctxs, py_context:lookup(C) =/= error],
    {ok, 2.0} = py:call(math, sqrt, [4]).

%% --- fork -------------------------------------------------------------------------------------

%% os.fork() and os.forkpty() raise RuntimeError in a context (no child is made); the context
%% goes on. Before the fix a worker context forked a copy of the node.
fork_refused(Config) ->
    {ok, Ctx} = py_context:new(#{mode => ?config(mode, Config)}),
    {error, {'RuntimeError', Msg}} = py:eval(Ctx, <<"__import__('os').fork()">>),
    true = string:find(Msg, "fork") =/= nomatch,
    {error, {'RuntimeError', _}} = py:eval(Ctx, <<"__import__('posix').fork()">>),
    {error, {'RuntimeError', _}} = py:eval(Ctx, <<"__import__('os').forkpty()">>),
    %% Starting a program is not forking the node.
    {ok, 0} = py:eval(Ctx, <<"__import__('subprocess').call(['true'])">>),
    {ok, 3} = py:call(Ctx, operator, add, [1, 2]),
    ok = py_context:stop(Ctx).

%% With the app env allow_fork set (read when the application starts), fork() works in a worker
%% context: the child exits at once with os._exit, the parent waits for it. In a node of its own
%% (an `erl' OS process): fork is refused while any owngil interpreter lives, and interpreters of
%% earlier suites may still be ending in this one.
fork_allowed_by_app_env(_Config) ->
    Ebin = filename:dirname(code:which(py_context)),
    Expr = "application:load(erlang_python), application:set_env(erlang_python, allow_fork, true), "
           "{ok, _} = application:ensure_all_started(erlang_python), "
           "{ok, C} = py_context:new(#{mode => worker}), "
           "R = py:eval(C, <<\"(lambda os: (lambda pid: os._exit(7) if pid == 0 else "
           "os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))(os.fork()))(__import__('os'))\">>), "
           "io:format(\"RESULT ~p~n\", [R]), halt().",
    Port = open_port({spawn_executable, os:find_executable("erl")},
                     [{args, ["-noshell", "-pa", Ebin, "-eval", Expr]}, exit_status, stderr_to_stdout, binary]),
    Out = collect(Port, <<>>),
    ct:pal("~ts", [Out]),
    {match, _} = re:run(Out, "RESULT \\{ok,7\\}"),
    %% Here (allow_fork unset) fork stays refused.
    {ok, Ctx2} = py_context:new(#{mode => worker}),
    {error, {'RuntimeError', _}} = py:eval(Ctx2, <<"__import__('os').fork()">>),
    ok = py_context:stop(Ctx2).

collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, <<Acc/binary, Data/binary>>);
        {Port, {exit_status, _}} -> Acc
    after 60000 -> ct:fail({no_exit, Acc})
    end.

%% Even when fork is allowed, it is refused while an owngil interpreter lives: CPython aborts the
%% child when it clears the other interpreters (seen in CI: the child died of SIGABRT).
fork_refused_with_owngil_alive(_Config) ->
    case py_context:new(#{mode => owngil}) of
        {error, {owngil_unsupported, _}} ->
            {skip, "owngil contexts need Python 3.13"};
        {ok, Own} ->
            ok = application:stop(erlang_python),
            ok = application:set_env(erlang_python, allow_fork, true),
            try
                {ok, _} = application:ensure_all_started(erlang_python),
                {ok, Own2} = py_context:new(#{mode => owngil}),
                {ok, Ctx} = py_context:new(#{mode => worker}),
                {error, {'RuntimeError', Msg}} = py:eval(Ctx, <<"__import__('os').fork()">>),
                true = string:find(Msg, "other interpreter") =/= nomatch,
                {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
                ok = py_context:stop(Ctx),
                ok = py_context:stop(Own2)
            after
                ok = application:stop(erlang_python),
                ok = application:unset_env(erlang_python, allow_fork),
                {ok, _} = application:ensure_all_started(erlang_python)
            end,
            _ = Own
    end.


%% --- erlang.new_event_loop() in a Python thread -------------------------------------------------

%% It raises RuntimeError (not a context thread) and nothing is reported when the half-made loop
%% is collected. Before the fix BaseEventLoop.__del__ printed "AttributeError: ... '_closed'".
thread_event_loop_no_attribute_error(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    ok = py:exec(Ctx, <<"import erlang, gc, sys, threading\n"
                        "unraisable = []\n"
                        "errors = []\n"
                        "def make():\n"
                        "    try:\n"
                        "        erlang.new_event_loop()\n"
                        "    except RuntimeError as e:\n"
                        "        errors.append(str(e))\n"
                        "old = sys.unraisablehook\n"
                        "sys.unraisablehook = lambda u: unraisable.append(repr(u.exc_value))\n"
                        "try:\n"
                        "    t = threading.Thread(target=make)\n"
                        "    t.start()\n"
                        "    t.join()\n"
                        "    gc.collect()\n"
                        "finally:\n"
                        "    sys.unraisablehook = old\n">>),
    {ok, [_]} = py:eval(Ctx, <<"errors">>),
    {ok, []} = py:eval(Ctx, <<"unraisable">>),
    ok = py_context:stop(Ctx).

%% --- builtins.eval / exec called by name --------------------------------------------------------

%% They run in the request's namespace, as in a module whose globals it is. Before the fix:
%% {error, {'SystemError', "frame does not exist"}}.
builtins_eval_by_name(_Config) ->
    {ok, 3} = py:call(builtins, eval, [<<"1 + 2">>]),
    {ok, Ctx} = py_context:new(#{mode => worker}),
    ok = py:exec(Ctx, <<"x = 5">>),
    {ok, 10} = py:call(Ctx, builtins, eval, [<<"x * 2">>]),
    {ok, none} = py:call(Ctx, builtins, exec, [<<"y = x + 1">>]),
    {ok, 6} = py:eval(Ctx, <<"y">>),
    %% Explicit globals are used as given.
    {ok, 4} = py:call(Ctx, builtins, eval, [<<"z * 2">>, #{<<"z">> => 2}]),
    case py:eval(Ctx, <<"__import__('sys').version_info >= (3, 13)">>) of
        {ok, true} ->  % eval() takes keyword arguments from 3.13 on
            {ok, 4} = py:call(Ctx, builtins, eval, [<<"z * 2">>], #{kwargs => #{globals => #{<<"z">> => 2}}});
        {ok, false} ->
            ok
    end,
    ok = py_context:stop(Ctx).

%% --- a tuple above the BEAM's maximum arity -------------------------------------------------------

%% A Python tuple of 16,777,216 elements is a clear ValueError, and the context goes on; one of
%% 16,777,215 converts. Before the fix the NIF built a tuple above the VM's maximum arity.
tuple_above_max_arity(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    {error, {'ValueError', Msg}} = py:eval(Ctx, <<"(None,) * 16777216">>),
    true = string:find(Msg, "16777215") =/= nomatch,
    {ok, 16777215} = py:eval(Ctx, <<"len((None,) * 16777215)">>),
    {ok, T} = py:eval(Ctx, <<"(1,) * 16777215">>),
    16777215 = tuple_size(T),
    {ok, 3} = py:call(Ctx, operator, add, [1, 2]),
    ok = py_context:stop(Ctx).

%% A live process that is not a context: stop/1 and the worker-loop calls answer at once
%% (before, they waited for a gen_server reply that never came); a context already gone stops
%% with ok, as before.
not_a_context(_Config) ->
    NotContext = spawn_link(fun() -> receive stop -> ok end end),
    {error, context_not_found} = py_context:stop(NotContext),
    {error, context_not_found} = py_context:start_loop(NotContext),
    {error, context_not_found} = py_context:stop_loop(NotContext, 0),
    {error, no_loop} = py_context:loop_ref(NotContext),
    NotContext ! stop,
    {ok, Ctx} = py_context:new(#{}),
    ok = py_context:stop(Ctx),
    ok = py_context:stop(Ctx).
