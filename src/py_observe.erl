%% @private
%% @doc What the observability functions of `py' and `py_context' are made of: statistics
%% snapshots turned into percentiles and summed, Python stacks of running code, slow-request
%% warnings and `telemetry' events (see docs/observability.md).
-module(py_observe).

-export([context_stats/1, sum_stats/1, latency/2, backtrace/2,
         slow_request_ms/0, set_slow_request_ms/1, init_slow_request/0, report_slow/3,
         request_timings/0, set_request_timings/1, init_request_timings/0,
         span/3]).

%% telemetry is an optional dependency: it is called only when it is loaded (rebar.config's
%% xref_ignores names it; emit/3 calls it through apply so that dialyzer, which cannot know it,
%% does not report it).
-define(TELEMETRY, telemetry).

-define(SLOW_KEY, {erlang_python, slow_request_ms}).
-define(TIMINGS_KEY, {erlang_python, request_timings}).
-define(BACKTRACE_DEADLINE, 5000).

-type latency() :: #{count := non_neg_integer(), p50 := non_neg_integer(), p99 := non_neg_integer(),
                     max := non_neg_integer()}.
-type stats() :: #{atom() => term()}.
-type frame() :: #{file := binary(), line := integer(), function := binary()}.
-export_type([latency/0, stats/0, frame/0]).

%% --- statistics ---------------------------------------------------------------------------

%% The statistics of the context behind NIF handle Ref (see py_context:stats/1 for the keys).
-spec context_stats(py_nif:context_ref()) -> stats().
context_stats(Ref) ->
    Raw = py_nif:context_stats(Ref),
    #{queue_wait := QW, queue_wait_max := QWMax, run_time := RT, run_time_max := RTMax,
      queue_depth := Queued, running := Running} = Raw,
    Counters = maps:without([queue_wait, queue_wait_max, run_time, run_time_max], Raw),
    Counters#{in_flight => Queued + Running,
              queue_wait_us => latency(QW, QWMax),
              run_time_us => latency(RT, RTMax),
              '$buckets' => {QW, QWMax, RT, RTMax}}.

%% Sums the statistics of several contexts: counters are added, histograms merged (so the
%% percentiles are those of every request), owngil memory added.
-spec sum_stats([stats()]) -> stats().
sum_stats(All) ->
    Counters = [queue_depth, running, in_flight, submitted, served, errors, timeouts, abandoned,
                interrupts, callbacks],
    Sums = maps:from_list([{K, lists:sum([maps:get(K, S) || S <- All])} || K <- Counters]),
    QW = merge_buckets([element(1, maps:get('$buckets', S)) || S <- All]),
    QWMax = lists:max([0 | [element(2, maps:get('$buckets', S)) || S <- All]]),
    RT = merge_buckets([element(3, maps:get('$buckets', S)) || S <- All]),
    RTMax = lists:max([0 | [element(4, maps:get('$buckets', S)) || S <- All]]),
    Memories = [M || #{memory := M} <- All, is_map(M)],
    Sums#{contexts => length(All),
          queue_wait_us => latency(QW, QWMax),
          run_time_us => latency(RT, RTMax),
          owngil_memory => #{allocated_bytes => lists:sum([A || #{allocated_bytes := A} <- Memories]),
                             arena_bytes => lists:sum([A || #{arena_bytes := A} <- Memories]),
                             contexts => length(Memories)}}.

merge_buckets(Lists) ->
    Add = fun({Upper, N}, Acc) -> maps:update_with(Upper, fun(C) -> C + N end, N, Acc) end,
    lists:keysort(1, maps:to_list(lists:foldl(Add, #{}, lists:append(Lists)))).

%% Percentiles from [{UpperNs, Count}] (ascending): the upper edge of the bucket that holds
%% the rank, never above the maximum seen; microseconds, rounded up.
-spec latency([{non_neg_integer(), non_neg_integer()}], non_neg_integer()) -> latency().
latency(Buckets, MaxNs) ->
    Count = lists:sum([N || {_, N} <- Buckets]),
    #{count => Count,
      p50 => us(min(percentile(Buckets, Count, 50), MaxNs)),
      p99 => us(min(percentile(Buckets, Count, 99), MaxNs)),
      max => us(MaxNs)}.

percentile(_Buckets, 0, _P) -> 0;
percentile(Buckets, Count, P) ->
    Rank = max(1, (Count * P + 99) div 100),
    rank(Buckets, Rank, 0).

rank([{Upper, N} | Rest], Rank, Seen) ->
    case Seen + N >= Rank of
        true -> Upper;
        false -> rank(Rest, Rank, Seen + N)
    end;
rank([], _Rank, _Seen) -> 0.

us(Ns) -> (Ns + 999) div 1000.

%% --- Python stacks --------------------------------------------------------------------------

%% The Python stack of the code context Ref runs now (Request: the handle of a request to
%% compare with the running one, or `undefined'). A short-lived process waits for the answer,
%% so that one arriving after the deadline reaches no mailbox.
-spec backtrace(py_nif:context_ref(), py_nif:request_ref() | undefined) -> term().
backtrace(Ref, Request) ->
    {Pid, Mon} = spawn_monitor(fun() ->
                                       Tag = make_ref(),
                                       case py_nif:context_backtrace(Ref, Tag, Request) of
                                           ok -> receive {py_backtrace, Tag, Result} -> exit({backtrace, Result}) end;
                                           {error, _} = Error -> exit({backtrace, Error})
                                       end
                               end),
    receive
        {'DOWN', Mon, process, Pid, {backtrace, Result}} -> Result;
        {'DOWN', Mon, process, Pid, Other} -> {error, Other}
    after ?BACKTRACE_DEADLINE ->
        exit(Pid, kill),
        erlang:demonitor(Mon, [flush]),
        {error, timeout}
    end.

%% --- slow requests --------------------------------------------------------------------------

%% The threshold of slow-request warnings, in ms, or `infinity' (off).
-spec slow_request_ms() -> pos_integer() | infinity.
slow_request_ms() ->
    persistent_term:get(?SLOW_KEY, infinity).

-spec set_slow_request_ms(pos_integer() | infinity) -> ok.
set_slow_request_ms(Ms) when Ms =:= infinity; is_integer(Ms), Ms > 0 ->
    case slow_request_ms() of
        Ms -> ok;
        _ -> persistent_term:put(?SLOW_KEY, Ms)
    end;
set_slow_request_ms(_) ->
    erlang:error(badarg).

%% Reads the app env `slow_request_ms' (at application start).
-spec init_slow_request() -> ok.
init_slow_request() ->
    case application:get_env(erlang_python, slow_request_ms, infinity) of
        Ms when Ms =:= infinity; is_integer(Ms), Ms > 0 -> set_slow_request_ms(Ms);
        Other ->
            logger:warning("erlang_python: ignoring slow_request_ms = ~p (a positive integer or infinity)", [Other]),
            set_slow_request_ms(infinity)
    end.

%% --- request timings ---------------------------------------------------------------------------

%% Whether requests are timed (their queue wait and run time go into the histograms).
-spec request_timings() -> boolean().
request_timings() ->
    persistent_term:get(?TIMINGS_KEY, true).

-spec set_request_timings(boolean()) -> ok.
set_request_timings(On) when is_boolean(On) ->
    ok = py_nif:set_request_timings(On),
    case request_timings() of
        On -> ok;
        _ -> persistent_term:put(?TIMINGS_KEY, On)
    end;
set_request_timings(_) ->
    erlang:error(badarg).

%% Applies the app env `request_timings' (at application start; checked by py_app_env).
-spec init_request_timings() -> ok.
init_request_timings() ->
    set_request_timings(application:get_env(erlang_python, request_timings, true)).

%% The request Request of the calling process, on context Ref, has not replied after Ms: logs
%% one warning with the Python stack of the context, from a process of its own (the caller
%% goes on waiting).
-spec report_slow(py_nif:context_ref(), py_nif:request_ref(), pos_integer()) -> ok.
report_slow(Ref, Request, Ms) ->
    Caller = self(),
    _ = spawn(fun() -> log_slow(Ref, Request, Ms, Caller) end),
    ok.

log_slow(Ref, Request, Ms, Caller) ->
    Ctx = context_pid(Ref),
    Meta = #{domain => [erlang_python, slow_request], context => Ctx, caller => Caller, threshold_ms => Ms},
    case backtrace(Ref, Request) of
        {running, Frames} ->
            logger:warning("Python request of ~p on context ~p has run for more than ~b ms; its Python stack "
                           "(most recent call last):~n~ts", [Caller, Ctx, Ms, format_stack(Frames)],
                           Meta#{stack => Frames});
        {not_running, Stack} ->
            logger:warning("Python request of ~p on context ~p has waited more than ~b ms without running "
                           "(queued, or under a nested request); the context runs (most recent call last):~n~ts",
                           [Caller, Ctx, Ms, format_stack(Stack)], Meta#{stack => Stack});
        finished ->
            logger:warning("Python request of ~p on context ~p took more than ~b ms (it finished before its stack "
                           "was read)", [Caller, Ctx, Ms], Meta);
        Other ->
            logger:warning("Python request of ~p on context ~p has run for more than ~b ms (no stack: ~p)",
                           [Caller, Ctx, Ms, Other], Meta)
    end.

format_stack(idle) ->
    "  (nothing)";
format_stack(Frames) ->
    [io_lib:format("  File \"~ts\", line ~b, in ~ts~n", [File, Line, Function])
     || #{file := File, line := Line, function := Function} <- lists:reverse(Frames)].

%% The pid of the context whose NIF handle is Ref, or the handle when it is not registered.
context_pid(Ref) ->
    try ets:match(py_context_registry, {'$1', {Ref, '_', '_'}}) of
        [[Pid] | _] -> Pid;
        _ -> Ref
    catch error:badarg -> Ref  % the application stopped meanwhile
    end.

%% --- telemetry ------------------------------------------------------------------------------

%% Runs Fun, a call, eval or exec on context Ctx, between telemetry events
%% [erlang_python, call, start] and [erlang_python, call, stop] (or exception when Fun raises).
%% Called only when telemetry is loaded. What: {call, Module, Function} | eval | exec.
-spec span(pid(), {call, term(), term()} | eval | exec, fun(() -> Result)) -> Result.
span(Ctx, What, Fun) ->
    Meta0 = case What of
                {call, M, F} -> #{context => Ctx, type => call, module => M, function => F};
                Type -> #{context => Ctx, type => Type}
            end,
    Meta = Meta0#{telemetry_span_context => make_ref()},
    Start = erlang:monotonic_time(),
    emit(start, #{monotonic_time => Start, system_time => erlang:system_time()}, Meta),
    try Fun() of
        Result ->
            Stop = erlang:monotonic_time(),
            Status = case Result of
                         {error, Reason} -> #{status => error, error => Reason};
                         _ -> #{status => ok}
                     end,
            emit(stop, #{duration => Stop - Start, monotonic_time => Stop}, maps:merge(Meta, Status)),
            Result
    catch
        Class:Reason:Stacktrace ->
            Stop = erlang:monotonic_time(),
            emit(exception, #{duration => Stop - Start, monotonic_time => Stop},
                 Meta#{kind => Class, reason => Reason, stacktrace => Stacktrace}),
            erlang:raise(Class, Reason, Stacktrace)
    end.

emit(Event, Measurements, Meta) ->
    erlang:apply(?TELEMETRY, execute, [[erlang_python, call, Event], Measurements, Meta]).
