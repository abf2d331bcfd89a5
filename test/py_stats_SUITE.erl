%% @doc Observability: py:stats/0 and py_context:stats/1 (counters, latency percentiles, owngil
%% memory), py_context:backtrace/1 on running code, slow-request warnings, telemetry events.
%% Every case runs on a worker context and, on Python 3.13+, on an owngil one.
-module(py_stats_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_group/2, end_per_group/2]).
-export([counters/1, latency_percentiles/1, timeouts_and_interrupts/1, abandoned_by_exit/1, callbacks/1,
         summed_over_contexts/1, owngil_memory/1, backtrace_idle/1, backtrace_stuck_loop/1,
         backtrace_nested/1, backtrace_gone/1, backtrace_during_stop/1, slow_request_warning/1, slow_request_off/1,
         telemetry_events/1, telemetry_absent/1, histogram_math/1, request_timings_off/1]).
%% logger handler callback (slow_request_warning)
-export([log/2]).

-define(SPIN, <<"def spin():\n    while True: pass\n">>).
%% block(path) returns once the file exists (no Erlang callback: those serve nested requests).
-define(BLOCK, <<"import os, time\n",
                 "def block(path):\n",
                 "    while not os.path.exists(path):\n",
                 "        time.sleep(0.002)\n">>).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [{group, worker}, {group, owngil}, histogram_math, summed_over_contexts, slow_request_off,
          telemetry_absent, request_timings_off].

groups() ->
    Cases = [counters, latency_percentiles, timeouts_and_interrupts, abandoned_by_exit, callbacks,
             backtrace_idle, backtrace_stuck_loop, backtrace_nested, backtrace_gone, backtrace_during_stop,
             slow_request_warning,
             telemetry_events],
    [{worker, [], Cases}, {owngil, [], Cases ++ [owngil_memory]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    application:stop(erlang_python).

init_per_group(owngil, Config) ->
    case py_context:new(#{mode => owngil}) of
        {ok, Ctx} ->
            ok = py_context:stop(Ctx),
            [{mode, owngil} | Config];
        {error, {owngil_unsupported, Version}} ->
            {skip, "owngil contexts need Python 3.13+; this build uses " ++ binary_to_list(Version)}
    end;
init_per_group(Mode, Config) ->
    [{mode, Mode} | Config].

end_per_group(_Group, _Config) ->
    ok.

new(Config) ->
    {ok, Ctx} = py_context:new(#{mode => ?config(mode, Config)}),
    Ctx.

stats(Ctx) ->
    {ok, S} = py_context:stats(Ctx),
    S.

%% A file name that does not exist yet, for block/1.
go_file(Config, Name) ->
    Path = filename:join(?config(priv_dir, Config),
                         Name ++ "_" ++ integer_to_list(erlang:unique_integer([positive])) ++ ".go"),
    _ = file:delete(Path),
    unicode:characters_to_binary(Path).

wait_stats(Ctx, Pred) ->
    true = py_test_util:wait_until(fun() -> Pred(stats(Ctx)) end, 30000),
    stats(Ctx).

%% --- counters -------------------------------------------------------------------------------

counters(Config) ->
    Ctx = new(Config),
    Mode = ?config(mode, Config),
    #{mode := Mode, served := Served0, submitted := Submitted0, errors := 0} = stats(Ctx),
    [{ok, _} = py:call(Ctx, math, sqrt, [X]) || X <- lists:seq(1, 50)],
    {error, {'ZeroDivisionError', _}} = py:eval(Ctx, <<"1/0">>),
    {error, {'NameError', _}} = py:call(Ctx, '__main__', nothing_here, []),
    ok = py:exec(Ctx, <<"y = 1">>),
    S = stats(Ctx),
    #{served := Served, submitted := Submitted, errors := 2, queue_depth := 0, running := 0, in_flight := 0,
      timeouts := 0, abandoned := 0, interrupts := 0, callbacks := 0} = S,
    53 = Served - Served0,
    53 = Submitted - Submitted0,
    #{queue_wait_us := #{count := Served}, run_time_us := #{count := Served}} = S,
    ok = py_context:stop(Ctx),
    {error, context_not_found} = py_context:stats(Ctx).

latency_percentiles(Config) ->
    Ctx = new(Config),
    %% 20 requests of >= 30 ms among many quick ones: p50 is small, p99 and max are >= 30 ms.
    [{ok, _} = py:eval(Ctx, <<"1">>) || _ <- lists:seq(1, 200)],
    [{ok, none} = py:call(Ctx, time, sleep, [0.03]) || _ <- lists:seq(1, 3)],
    #{run_time_us := #{count := N, p50 := P50, p99 := P99, max := Max}} = stats(Ctx),
    true = N >= 203,
    true = P50 < 30000,
    true = Max >= 30000,
    true = P99 =< Max,
    true = P50 =< P99,
    %% A request queued behind a blocked one waits at least from when it was seen queued to
    %% when the blocked one was released.
    Go = go_file(Config, "latency"),
    ok = py:exec(Ctx, ?BLOCK),
    Self = self(),
    _ = spawn(fun() -> Self ! {blocked, py:call(Ctx, '__main__', block, [Go])} end),
    wait_stats(Ctx, fun(#{running := R}) -> R =:= 1 end),
    _ = spawn(fun() -> Self ! {queued, py:eval(Ctx, <<"1 + 1">>)} end),
    wait_stats(Ctx, fun(#{queue_depth := Q}) -> Q =:= 1 end),
    Seen = erlang:monotonic_time(microsecond),
    timer:sleep(20),  % a known lower bound on the wait, not a synchronisation
    Released = erlang:monotonic_time(microsecond),
    ok = file:write_file(Go, <<>>),
    receive {blocked, {ok, none}} -> ok end,
    receive {queued, {ok, 2}} -> ok end,
    #{queue_wait_us := #{max := QMax}, queue_depth := 0, in_flight := 0} = stats(Ctx),
    true = QMax >= Released - Seen,
    ok = py_context:stop(Ctx).

%% py:set_request_timings(false): requests are still counted but no longer timed; true again
%% and they are timed again. Bad values are refused, by the function and by the app env check.
request_timings_off(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    [{ok, _} = py:eval(Ctx, <<"1">>) || _ <- lists:seq(1, 10)],
    #{served := Served0, run_time_us := #{count := Timed0}, queue_wait_us := #{count := Waited0}} = stats(Ctx),
    try
        ok = py:set_request_timings(false),
        [{ok, _} = py:eval(Ctx, <<"1">>) || _ <- lists:seq(1, 10)],
        #{served := Served1, run_time_us := #{count := Timed1}, queue_wait_us := #{count := Waited1}} = stats(Ctx),
        10 = Served1 - Served0,
        Timed0 = Timed1,
        Waited0 = Waited1
    after
        ok = py:set_request_timings(true)
    end,
    [{ok, _} = py:eval(Ctx, <<"1">>) || _ <- lists:seq(1, 10)],
    #{run_time_us := #{count := Timed2}, queue_wait_us := #{count := Waited2}} = stats(Ctx),
    10 = Timed2 - Timed0,
    10 = Waited2 - Waited0,
    {'EXIT', {badarg, _}} = catch py:set_request_timings(yes),
    false = py_app_env:valid(request_timings, 1),
    true = py_app_env:valid(request_timings, false),
    ok = py_context:stop(Ctx).

timeouts_and_interrupts(Config) ->
    Ctx = new(Config),
    ok = py:exec(Ctx, ?SPIN),
    {error, timeout} = py:call(Ctx, '__main__', spin, [], #{timeout => 100}),
    %% The interrupt lands at the next bytecode boundary; then the context serves again.
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    S = wait_stats(Ctx, fun(#{interrupts := I}) -> I >= 1 end),
    #{timeouts := 1, abandoned := 0, running := 0, queue_depth := 0} = S,
    ok = py_context:stop(Ctx).

abandoned_by_exit(Config) ->
    Ctx = new(Config),
    ok = py:exec(Ctx, ?SPIN),
    {Pid, Mon} = spawn_monitor(fun() -> py:call(Ctx, '__main__', spin, [], #{timeout => 60000}) end),
    wait_stats(Ctx, fun(#{running := R}) -> R =:= 1 end),
    exit(Pid, kill),
    receive {'DOWN', Mon, process, Pid, killed} -> ok end,
    S = wait_stats(Ctx, fun(#{abandoned := A, running := R}) -> A =:= 1 andalso R =:= 0 end),
    #{timeouts := 0} = S,
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py_context:stop(Ctx).

callbacks(Config) ->
    ok = py:register_function(stats_echo, fun([X]) -> X end),
    Ctx = new(Config),
    {ok, [1, 2, 3]} = py:eval(Ctx, <<"[__import__('erlang').call('stats_echo', i) for i in (1, 2, 3)]">>),
    #{callbacks := 3} = stats(Ctx),
    ok = py_context:stop(Ctx),
    ok = py:unregister_function(stats_echo).

summed_over_contexts(_Config) ->
    {ok, A} = py_context:new(#{}),
    {ok, B} = py_context:new(#{}),
    [{ok, _} = py:eval(A, <<"1">>) || _ <- lists:seq(1, 7)],
    [{ok, _} = py:eval(B, <<"1">>) || _ <- lists:seq(1, 5)],
    {error, _} = py:eval(B, <<"1/0">>),
    All = py:stats(),
    #{per_context := #{A := SA, B := SB} = Per, contexts := N, served := Served, errors := Errors,
      run_time_us := #{count := Count}, queue_wait_us := #{}, owngil_memory := #{}} = All,
    N = map_size(Per),
    true = N >= 2 + py_context_router:num_contexts(),
    Served = lists:sum([maps:get(served, S) || S <- maps:values(Per)]),
    Errors = lists:sum([maps:get(errors, S) || S <- maps:values(Per)]),
    Count = lists:sum([maps:get(count, maps:get(run_time_us, S)) || S <- maps:values(Per)]),
    #{served := SAServed} = SA,
    #{served := SBServed, errors := 1} = SB,
    true = SAServed >= 7 andalso SBServed >= 6,
    false = maps:is_key('$buckets', SA),
    ok = py_context:stop(A),
    ok = py_context:stop(B).

owngil_memory(Config) ->
    case os:getenv("PYTHONMALLOC") of
        "malloc" -> {skip, "PYTHONMALLOC=malloc: no pymalloc figures (memory is undefined)"};
        _ -> owngil_memory_figures(Config)
    end.

owngil_memory_figures(Config) ->
    Ctx = new(Config),
    %% The first figures are taken right after the context's first request replied.
    #{memory := #{allocated_bytes := Before}} = wait_stats(Ctx, fun(#{memory := M}) -> is_map(M) end),
    {ok, C} = py_context:new(#{mode => owngil}),
    #{memory := #{allocated_bytes := OtherBefore}} = wait_stats(C, fun(#{memory := M}) -> is_map(M) end),
    %% 200,000 small strings (~60 bytes each) on Ctx's interpreter only.
    ok = py:exec(Ctx, <<"keep = [str(i) * 2 for i in range(200000)]">>),
    Allocated = erlang:monotonic_time(millisecond),
    %% Figures are sampled at most once a second, after a batch of requests.
    true = py_test_util:wait_until(
             fun() ->
                     {ok, _} = py:eval(Ctx, <<"1">>),
                     #{memory := #{allocated_bytes := Now}} = stats(Ctx),
                     Now > Before + 8000000
             end, 30000),
    #{memory := #{arena_bytes := Arenas, allocated_bytes := After, age_ms := Age}} = stats(Ctx),
    true = Arenas >= After andalso Age >= 0,
    %% The other interpreter's figure, sampled after that allocation, did not move with it.
    true = py_test_util:wait_until(
             fun() ->
                     {ok, _} = py:eval(C, <<"1">>),
                     #{memory := #{age_ms := A}} = stats(C),
                     A < erlang:monotonic_time(millisecond) - Allocated
             end, 30000),
    #{memory := #{allocated_bytes := OtherAfter}} = stats(C),
    true = abs(OtherAfter - OtherBefore) < 2000000,
    %% Worker contexts share the main interpreter: no figure of their own.
    {ok, W} = py_context:new(#{mode => worker}),
    #{memory := undefined} = stats(W),
    #{owngil_memory := #{contexts := NG, allocated_bytes := Sum}} = py:stats(),
    true = NG >= 2 andalso Sum >= After,
    [ok = py_context:stop(X) || X <- [Ctx, C, W]].

%% --- backtrace ------------------------------------------------------------------------------

backtrace_idle(Config) ->
    Ctx = new(Config),
    {ok, idle} = py_context:backtrace(Ctx),
    {ok, 1} = py:eval(Ctx, <<"1">>),
    {ok, idle} = py_context:backtrace(Ctx),
    ok = py_context:stop(Ctx).

%% A context stuck in `while True: pass': the stack names the function, its file and the line
%% of the loop; reading it does not stop the loop, and the context serves again afterwards.
backtrace_stuck_loop(Config) ->
    Ctx = new(Config),
    ok = py:exec(Ctx, <<"import sys\n",
                        "def outer():\n",
                        "    return spin()\n",
                        "def spin():\n",
                        "    n = 0\n",
                        "    while True: pass\n">>),
    Self = self(),
    Caller = spawn(fun() -> Self ! {spun, py:call(Ctx, '__main__', outer, [], #{timeout => 60000})} end),
    Frames = wait_frames(Ctx, <<"spin">>),
    [#{function := <<"spin">>, line := 6, file := <<"<exec>">>},
     #{function := <<"outer">>, line := 3, file := <<"<exec>">>} | _] = Frames,
    %% Still running: a second look sees the same line.
    {ok, [#{function := <<"spin">>, line := 6} | _]} = py_context:backtrace(Ctx),
    #{running := 1} = stats(Ctx),
    exit(Caller, kill),
    wait_stats(Ctx, fun(#{running := R}) -> R =:= 0 end),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    {ok, idle} = py_context:backtrace(Ctx),
    ok = py_context:stop(Ctx).

%% A request waiting for an Erlang callback that runs a nested request: the stack holds both.
backtrace_nested(Config) ->
    Ctx = new(Config),
    ok = py:exec(Ctx, <<"import erlang\n",
                        "def inner():\n",
                        "    while True: pass\n",
                        "def outer():\n",
                        "    return erlang.call('stats_nest')\n">>),
    ok = py:register_function(stats_nest,
                              fun([]) -> py:call(Ctx, '__main__', inner, [], #{timeout => 60000}) end),
    Caller = spawn(fun() -> py:call(Ctx, '__main__', outer, [], #{timeout => 60000}) end),
    Frames = wait_frames(Ctx, <<"inner">>),
    Names = [F || #{function := F} <- Frames],
    [<<"inner">> | _] = Names,
    true = lists:member(<<"outer">>, Names),
    #{running := 2, callbacks := 1} = stats(Ctx),
    exit(Caller, kill),
    wait_stats(Ctx, fun(#{running := R}) -> R =:= 0 end),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py:unregister_function(stats_nest),
    ok = py_context:stop(Ctx).

backtrace_gone(Config) ->
    Ctx = new(Config),
    ok = py_context:stop(Ctx),
    {error, context_not_found} = py_context:backtrace(Ctx),
    {error, context_not_found} = py_context:backtrace(self()),
    ok = try py_context:backtrace(not_a_pid) catch error:badarg -> ok end,
    {error, context_not_found} = py_context:stats(self()),
    ok = try py_context:stats(not_a_pid) catch error:badarg -> ok end,
    %% The NIF refuses what is not a context, a reference or a request of that context.
    {ok, Other} = py_context:new(#{}),
    {ok, Ref, _} = py_context:lookup(Other),
    ok = try py_nif:context_backtrace(make_ref(), make_ref(), undefined) catch error:badarg -> ok end,
    ok = try py_nif:context_backtrace(Ref, not_a_ref, undefined) catch error:badarg -> ok end,
    ok = try py_nif:context_backtrace(Ref, make_ref(), make_ref()) catch error:badarg -> ok end,
    ok = try py_nif:context_stats(make_ref()) catch error:badarg -> ok end,
    ok = py_context:stop(Other).

%% Stacks asked for by 20 processes while the context runs and then stops: each gets exactly
%% one answer, and the stop completes.
backtrace_during_stop(Config) ->
    Ctx = new(Config),
    ok = py:exec(Ctx, <<"def work():\n    n = 0\n    for i in range(200000):\n        n += i\n    return n\n">>),
    Self = self(),
    Load = spawn(fun() -> Loop = fun L() -> _ = py:call(Ctx, '__main__', work, []), L() end, Loop() end),
    Askers = [spawn(fun() -> Self ! {answers, self(), ask_until_gone(Ctx, [])} end) || _ <- lists:seq(1, 20)],
    wait_stats(Ctx, fun(#{served := S}) -> S >= 5 end),
    ok = py_context:stop(Ctx),
    exit(Load, kill),
    Answers = lists:append([receive {answers, P, A} -> A end || P <- Askers]),
    [] = [A || A <- Answers, not expected_answer(A)],
    true = lists:any(fun({ok, [_ | _]}) -> true; (_) -> false end, Answers),
    [] = [M || {py_backtrace, _, _} = M <- py_test_util:flush()].

ask_until_gone(Ctx, Acc) ->
    case py_context:backtrace(Ctx) of
        {error, context_not_found} = Gone -> lists:reverse([Gone | Acc]);
        Other -> ask_until_gone(Ctx, [Other | Acc])
    end.

expected_answer({ok, idle}) -> true;
expected_answer({ok, Frames}) when is_list(Frames) -> true;
expected_answer({error, context_stopped}) -> true;
expected_answer({error, context_not_found}) -> true;
expected_answer(_) -> false.

%% The stack of Ctx once its innermost frame is in function Innermost.
wait_frames(Ctx, Innermost) ->
    Self = self(),
    true = py_test_util:wait_until(fun() ->
                                           case py_context:backtrace(Ctx) of
                                               {ok, [#{function := Innermost} | _] = F} -> Self ! {frames, F}, true;
                                               {ok, _} -> false
                                           end
                                   end, 30000),
    receive {frames, F} -> F end.

%% --- slow requests --------------------------------------------------------------------------

%% A request that runs longer than the threshold logs one warning carrying its Python stack;
%% the request goes on and replies normally.
slow_request_warning(Config) ->
    Ctx = new(Config),
    ok = py:exec(Ctx, <<"import os, time\n",
                        "def slow(path):\n",
                        "    while not os.path.exists(path):\n",
                        "        time.sleep(0.005)\n",
                        "    return 'done'\n">>),
    Go = go_file(Config, "slow"),
    ok = logger:add_handler(stats_slow, ?MODULE,
                            #{config => #{pid => self()}, level => all, filter_default => stop,
                              filters => [{slow, {fun logger_filters:domain/2,
                                                  {log, equal, [erlang_python, slow_request]}}}]}),
    ok = py:set_slow_request_ms(50),
    try
        Self = self(),
        Caller = spawn(fun() -> Self ! {slow_done, py:call(Ctx, '__main__', slow, [Go], #{timeout => 60000})} end),
        receive
            {log, #{level := warning, meta := #{caller := Caller, threshold_ms := 50, stack := Stack} = Meta,
                    msg := {Format, Args}}} ->
                Ctx = maps:get(context, Meta),
                %% The innermost frames may be os.path.exists's (frozen genericpath).
                [#{line := Line} | _] = [Fr || #{function := <<"slow">>, file := <<"<exec>">>} = Fr <- Stack],
                true = lists:member(Line, [3, 4]),
                Text = lists:flatten(io_lib:format(Format, Args)),
                true = string:find(Text, "in slow") =/= nomatch
        after 30000 -> ct:fail(no_slow_request_warning)
        end,
        ok = file:write_file(Go, <<>>),
        receive {slow_done, {ok, <<"done">>}} -> ok end,
        %% One warning per request, and none for quick ones.
        {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
        [] = [L || {log, _} = L <- py_test_util:flush()]
    after
        ok = py:set_slow_request_ms(infinity),
        ok = logger:remove_handler(stats_slow)
    end,
    ok = py_context:stop(Ctx).

slow_request_off(_Config) ->
    infinity = py_observe:slow_request_ms(),
    ok = try py:set_slow_request_ms(0) catch error:badarg -> ok end,
    ok = try py:set_slow_request_ms(-5) catch error:badarg -> ok end,
    ok = try py:set_slow_request_ms(fast) catch error:badarg -> ok end,
    ok = py:set_slow_request_ms(1000),
    1000 = py_observe:slow_request_ms(),
    ok = py:set_slow_request_ms(infinity).

log(Event, #{config := #{pid := Pid}}) ->
    Pid ! {log, Event}.

%% --- telemetry ------------------------------------------------------------------------------

%% With a `telemetry' module loaded (here a stand-in compiled into priv_dir that forwards each
%% event to a registered process), calls, evals and execs emit start and stop events.
telemetry_events(Config) ->
    non_existing = code:which(telemetry),
    load_fake_telemetry(Config),
    true = register(stats_telemetry_sink, self()),
    try
        Ctx = new(Config),
        {ok, 3.0} = py:call(Ctx, math, sqrt, [9]),
        [{[erlang_python, call, start], #{monotonic_time := T0, system_time := _},
          #{context := Ctx, type := call, module := math, function := sqrt, telemetry_span_context := Span}},
         {[erlang_python, call, stop], #{duration := D, monotonic_time := T1},
          #{context := Ctx, type := call, status := ok, telemetry_span_context := Span}}] = events(2),
        true = D >= 0 andalso T1 - T0 =:= D,
        {error, {'ZeroDivisionError', _}} = py:eval(Ctx, <<"1/0">>),
        [{[erlang_python, call, start], _, #{type := eval}},
         {[erlang_python, call, stop], _, #{type := eval, status := error, error := {'ZeroDivisionError', _}}}] =
            events(2),
        ok = py:exec(Ctx, <<"z = 1">>),
        [{_, _, #{type := exec}}, {[erlang_python, call, stop], _, #{type := exec, status := ok}}] = events(2),
        %% Pool calls name the pool context they ran on.
        {ok, 4} = py:eval(<<"2 + 2">>),
        Pool = py:context(),
        [{_, _, #{context := Pool}}, {_, _, #{context := Pool}}] = events(2),
        %% Arguments refused before the request is made: no event.
        ok = try py:call(Ctx, math, sqrt, [9], #{timeout => bad}) catch error:badarg -> ok end,
        %% A span whose body raises emits exception, and the exception goes on.
        ok = try py_observe:span(Ctx, eval, fun() -> error(boom) end) catch error:boom -> ok end,
        [{[erlang_python, call, start], _, #{type := eval}},
         {[erlang_python, call, exception], #{duration := _}, #{type := eval, kind := error, reason := boom,
                                                                stacktrace := [_ | _]}}] = events(2),
        ok = py_context:stop(Ctx)
    after
        unregister(stats_telemetry_sink),
        unload_fake_telemetry()
    end,
    [] = py_test_util:flush().

%% Without telemetry nothing is emitted and nothing fails.
telemetry_absent(_Config) ->
    non_existing = code:which(telemetry),
    false = erlang:function_exported(telemetry, execute, 3),
    {ok, 2} = py:eval(<<"1 + 1">>).

events(N) ->
    [receive {telemetry, E, M, Meta} -> {E, M, Meta} after 10000 -> ct:fail({missing_event, I}) end
     || I <- lists:seq(1, N)].

load_fake_telemetry(Config) ->
    Src = filename:join(?config(priv_dir, Config), "telemetry.erl"),
    ok = file:write_file(Src, <<"-module(telemetry).\n"
                                "-export([execute/3]).\n"
                                "execute(Event, Measurements, Meta) ->\n"
                                "    case whereis(stats_telemetry_sink) of\n"
                                "        undefined -> ok;\n"
                                "        Pid -> Pid ! {telemetry, Event, Measurements, Meta}, ok\n"
                                "    end.\n">>),
    {ok, telemetry, Bin} = compile:file(Src, [binary]),
    {module, telemetry} = code:load_binary(telemetry, Src, Bin),
    ok.

unload_fake_telemetry() ->
    _ = code:purge(telemetry),
    true = code:delete(telemetry),
    _ = code:purge(telemetry),
    ok.

%% --- the histogram's arithmetic ---------------------------------------------------------------

%% Percentiles of known samples through the NIF's bucket layout: within 25 % above the truth.
histogram_math(_Config) ->
    %% sum_stats over synthetic bucket lists: 98 samples in the 1 us bucket, 2 at 10 ms.
    S = #{queue_depth => 0, running => 0, in_flight => 0, submitted => 100, served => 100, errors => 0,
          timeouts => 0, abandoned => 0, interrupts => 0, callbacks => 0, memory => undefined,
          '$buckets' => {[{1023, 98}, {10485759, 2}], 10000000, [], 0}},
    #{queue_wait_us := #{count := 200, p50 := 2, p99 := 10000, max := 10000},
      run_time_us := #{count := 0, p50 := 0, p99 := 0, max := 0}, served := 200} = py_observe:sum_stats([S, S]).
