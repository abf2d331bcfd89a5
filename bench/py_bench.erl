%% @doc Benchmark harness for erlang_python: `make bench'.
%%
%% Every row runs a warm-up and then R rounds (default 5); the table shows, for each row, the
%% median of the per-round figures and their spread (min..max). The table is printed at the end
%% and also written as Markdown to bench/results/latest.md.
%%
%% Environment:
%%   BENCH_QUICK=1    one round and smaller counts (CI smoke run)
%%   BENCH_ROUNDS=N   number of rounds (default 5; 1 with BENCH_QUICK=1)
%%   BENCH_ONLY=a,b   only the sections whose name contains one of these words
%%                    (e.g. BENCH_ONLY=conversion, BENCH_ONLY=py_buffer,SharedDict);
%%                    BENCH_SECTIONS is the same
%%   BENCH_PRIORITIES=idle,low,normal  thread_priority values the "under load" section compares,
%%                    interleaved round by round (default: the application's default only)
-module(py_bench).

-export([main/0, child/1, channels/0]).

-define(RESULTS_FILE, "bench/results/latest.md").
-define(MIB, 1048576).
-define(PROBE_ROUND_MS, 12000).

-record(cfg, {
    quick :: boolean(),
    rounds :: pos_integer(),
    round_ns :: pos_integer(),      % duration of one round of a throughput row
    nif_ops :: pos_integer(),       % empty NIF calls per round
    conc_procs :: pos_integer(),    % processes in the concurrent row
    list_len :: pos_integer(),
    map_keys :: pos_integer(),
    idle_ms :: pos_integer(),       % idle CPU window per round
    probes :: pos_integer(),        % sleeps per round in the wake-up row
    extra_ctxs :: pos_integer()     % contexts per round in the memory row
}).

%% One table row: Id, label, unit, per-round figures, note.
-record(row, {id :: string(), label :: string(), unit :: string(),
              figures = [] :: [number()], note = "" :: string(), error = undefined :: term()}).

%% --- entry point ----------------------------------------------------------------------------

main() ->
    _ = io:setopts(standard_io, [{encoding, unicode}]),
    try run() of
        ok -> ok
    catch Class:Reason:Stack ->
        io:format(standard_error, "bench failed: ~p:~p~n~p~n", [Class, Reason, Stack]),
        halt(1)
    end.

run() ->
    Cfg = config(),
    {ok, _} = application:ensure_all_started(erlang_python),
    Header = header(Cfg),
    io:format("~ts~n", [Header]),
    T0 = now_ns(),
    Rows = all_rows(Cfg),  % BENCH_ONLY picks sections (step/2)
    Secs = (now_ns() - T0) / 1.0e9,
    Footer = io_lib:format("Total bench time: ~.1f s. Load average (uptime) at the end: ~ts.",
                           [Secs, load_average()]),
    Text = text_table(Rows),
    io:format("~n~ts~n~ts~n~ts~n", [Header, Text, Footer]),
    write_markdown(Header, Rows, Footer),
    io:format("Markdown written to ~s~n", [?RESULTS_FILE]),
    ok.

all_rows(Cfg) ->
    lists:append([
        step("empty NIF call", fun() -> bench_nif(Cfg) end),
        step("sequential py:call", fun() -> bench_seq_call(Cfg) end),
        step("concurrent py:call", fun() -> bench_concurrent(Cfg) end),
        step("sequential py:eval", fun() -> bench_eval(Cfg) end),
        step("1 MiB binaries", fun() -> bench_binaries(Cfg) end),
        step("integer list", fun() -> bench_list(Cfg) end),
        step("binary-key map", fun() -> isolated(map, Cfg) end),
        step("idle CPU", fun() -> bench_idle(Cfg) end),
        step("wake-up latency", fun() -> bench_wakeup(Cfg) end),
        step("context memory", fun() -> bench_ctx_mem(Cfg) end),
        step("parallel CPU-bound Python", fun() -> bench_parallel(Cfg) end),
        step("asyncio loop throughput", fun() -> bench_loop(Cfg) end),
        step("conversion round trips", fun() -> bench_conversions(Cfg) end),
        step("py_buffer streaming", fun() -> bench_buffer(Cfg) end),
        step("SharedDict get", fun() -> bench_shared_dict(Cfg) end),
        step("reactor echo", fun() -> bench_reactor(Cfg) end),
        step("channels", fun() -> bench_channels(Cfg) end),
        step("under load", fun() -> bench_under_load(Cfg) end),
        step("worker loops", fun() -> bench_workers(Cfg) end),
        step("isolated context", fun() -> bench_isolated_context(Cfg) end),
        step("observability cost", fun() -> bench_observability(Cfg) end)
    ]).

%% The 1, 5 and 15 minute load averages, as uptime prints them.
load_average() ->
    case file:read_file("/proc/loadavg") of
        {ok, Bin} -> lists:join(" ", lists:sublist(string:lexemes(binary_to_list(Bin), " "), 3));
        _ -> "unknown"
    end.

%% Only the channel rows (15a-c):
%% erl -noshell -pa _build/default/lib/erlang_python/ebin -pa _build/bench -eval 'py_bench:channels(), halt().'
channels() ->
    Cfg = config(),
    {ok, _} = application:ensure_all_started(erlang_python),
    Header = header(Cfg),
    Rows = step("channels", fun() -> bench_channels(Cfg) end),
    io:format("~n~ts~n~ts~n", [Header, text_table(Rows)]).

config() ->
    Quick = os:getenv("BENCH_QUICK") =:= "1",
    Rounds = case os:getenv("BENCH_ROUNDS") of
                 false -> case Quick of true -> 1; false -> 5 end;
                 S -> max(1, list_to_integer(S))
             end,
    case Quick of
        false ->
            #cfg{quick = false, rounds = Rounds, round_ns = 1000000000, nif_ops = 2000000,
                 conc_procs = 8, list_len = 100000, map_keys = 10000, idle_ms = 3000,
                 probes = 2000, extra_ctxs = 20};
        true ->
            #cfg{quick = true, rounds = Rounds, round_ns = 200000000, nif_ops = 200000,
                 conc_procs = 8, list_len = 100000, map_keys = 10000, idle_ms = 1000,
                 probes = 300, extra_ctxs = 5}
    end.

%% Runs one group of rows; a crash becomes an error row so the rest of the table still prints.
step(Name, Fun) ->
    case selected(Name) of
        true -> run_step(Name, Fun);
        false -> []
    end.

%% BENCH_ONLY=a,b (or BENCH_SECTIONS): only the sections whose name contains a or b.
selected(Name) ->
    Only = case os:getenv("BENCH_ONLY") of
               false -> os:getenv("BENCH_SECTIONS");
               Set -> Set
           end,
    case Only of
        false -> true;
        "" -> true;
        Words -> lists:any(fun(Word) -> string:find(Name, Word) =/= nomatch end, string:lexemes(Words, ","))
    end.

run_step(Name, Fun) ->
    io:format("running: ~ts ...~n", [Name]),
    T0 = now_ns(),
    Rows = try Fun()
           catch Class:Reason:Stack ->
               io:format(standard_error, "  ~ts failed: ~p:~p~n  ~p~n", [Name, Class, Reason, Stack]),
               [#row{id = "-", label = Name, unit = "-", error = {Class, Reason}}]
           end,
    io:format("  done in ~.1f s~n", [(now_ns() - T0) / 1.0e9]),
    Rows.

header(#cfg{rounds = R, quick = Quick}) ->
    {{Y, Mo, D}, {H, Mi, S}} = calendar:universal_time(),
    Date = io_lib:format("~4..0w-~2..0w-~2..0wT~2..0w:~2..0w:~2..0wZ", [Y, Mo, D, H, Mi, S]),
    io_lib:format("erlang_python bench ~s | Python ~ts | OTP ~s (erts ~s) | schedulers ~w (online ~w) | "
                  "~w round(s)~s | commit ~s",
                  [Date, element(2, py:version()), erlang:system_info(otp_release), erlang:system_info(version),
                   erlang:system_info(schedulers), erlang:system_info(schedulers_online), R,
                   case Quick of true -> " BENCH_QUICK"; false -> "" end, git_commit()]).


git_commit() ->
    case string:trim(os:cmd("git rev-parse --short HEAD 2>/dev/null")) of
        "" -> "unknown";
        Rev ->
            case string:trim(os:cmd("git status --porcelain --untracked-files=no 2>/dev/null")) of
                "" -> Rev;
                _ -> Rev ++ "+dirty"
            end
    end.

%% --- rows --------------------------------------------------------------------------------

%% Warm-up, then R rounds of Fun(); returns the list of round figures.
rounds(#cfg{rounds = R}, Fun) ->
    _ = Fun(),
    [Fun() || _ <- lists:seq(1, R)].

%% 1. Baseline: an empty NIF call, loop overhead included.
bench_nif(Cfg = #cfg{nif_ops = N}) ->
    Figures = rounds(Cfg, fun() ->
        T0 = now_ns(),
        nif_loop(N),
        (now_ns() - T0) / N
    end),
    put(nif_ns, median(Figures)),
    [#row{id = "1", label = "empty NIF call py_nif:is_ref(0) (baseline)", unit = "ns/op",
          figures = Figures, note = "loop overhead included"}].

nif_loop(0) -> ok;
nif_loop(N) -> false = py_nif:is_ref(0), nif_loop(N - 1).

%% 2. Sequential py:call from one process.
bench_seq_call(Cfg = #cfg{round_ns = Dur}) ->
    check({ok, 3.0}, py:call(math, sqrt, [9])),
    Rates = rounds(Cfg, fun() ->
        rate(timed(fun(I) -> {ok, _} = py:call(math, sqrt, [I]) end, 100, Dur))
    end),
    Us = [1.0e6 / R || R <- Rates],
    Rows = [#row{id = "2a", label = "sequential py:call(math, sqrt, [X]), 1 process", unit = "calls/s",
                 figures = Rates},
            #row{id = "2b", label = "  same, time per call", unit = "µs/call", figures = Us}],
    case get(nif_ns) of
        NifNs when is_number(NifNs), NifNs > 0 ->
            Rows ++ [#row{id = "2c", label = "  same, ratio to the empty NIF call", unit = "x",
                          figures = [U * 1000 / NifNs || U <- Us],
                          note = "per-round µs/call ÷ median NIF ns/op"}];
        _ -> Rows
    end.

%% O. What the request timings of the statistics cost (py:set_request_timings/1), A/B in one
%% run: each round alternates timings on and off 10 times (the order swapped every other time)
%% on one worker context, so drifts of the machine fall on both; the figure is on / off. O3: the
%% Erlang side's checks, which run with timings on or off: the telemetry check of a call and the
%% slow-request threshold read of a waiting caller, timed in a loop.
bench_observability(Cfg = #cfg{conc_procs = NProcs, round_ns = Dur}) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    Slice = Dur div 10,
    Seq = fun() -> rate(timed(fun(K) -> {ok, _} = py:call(Ctx, operator, add, [K, 1]) end, 100, Slice)) end,
    Conc = fun() -> callers_rate(Ctx, NProcs, Slice) end,
    AB = fun(Measure) ->
                 Pairs = [case I rem 2 of
                              0 -> {timings(true, Measure), timings(false, Measure)};
                              1 -> {Off, On} = {timings(false, Measure), timings(true, Measure)}, {On, Off}
                          end || I <- lists:seq(1, 10)],
                 {lists:sum([On || {On, _} <- Pairs]) / 10, lists:sum([Off || {_, Off} <- Pairs]) / 10}
         end,
    try
        check({ok, 3}, py:call(Ctx, operator, add, [1, 2])),
        SeqPairs = rounds(Cfg, fun() -> AB(Seq) end),
        ConcPairs = rounds(Cfg, fun() -> AB(Conc) end),
        Checks = rounds(Cfg, fun() -> erlang_checks_ns(1000000) end),
        CallNs = 1.0e9 / median([On || {On, _} <- SeqPairs]),
        [#row{id = "O1", label = "sequential py:call(Ctx, operator, add, [K, 1]), request timings on / off",
              unit = "x", figures = [On / Off || {On, Off} <- SeqPairs],
              note = "1.00 = free; 0.97 = the timings cost 3 %"},
         #row{id = "O1a", label = "  same, timings on", unit = "calls/s", figures = [On || {On, _} <- SeqPairs]},
         #row{id = "O1b", label = "  same, timings off", unit = "calls/s", figures = [Off || {_, Off} <- SeqPairs]},
         #row{id = "O2", label = io_lib:format("~w processes calling one worker context, timings on / off", [NProcs]),
              unit = "x", figures = [On / Off || {On, Off} <- ConcPairs]},
         #row{id = "O3", label = "Erlang side per request: telemetry check + slow-request threshold read",
              unit = "ns", figures = Checks,
              note = io_lib:format("~.2f % of a sequential call (O1a's median, ~.1f ns)",
                                   [100 * median(Checks) / CallNs, CallNs])}]
    after
        ok = py_observe:init_request_timings(),
        ok = py_context:stop(Ctx)
    end.

timings(On, Measure) ->
    ok = py:set_request_timings(On),
    Measure().

%% ns per request of what py and py_request check whether or not requests are timed.
erlang_checks_ns(N) ->
    T0 = now_ns(),
    erlang_checks(N),
    (now_ns() - T0) / N.

erlang_checks(0) -> ok;
erlang_checks(N) ->
    _ = erlang:function_exported(telemetry, execute, 3),
    _ = py_observe:slow_request_ms(),
    erlang_checks(N - 1).

%% I. An isolated context (Python in a child process) against a worker context, same run:
%% sequential round trip, N callers on one context, start-up time.
bench_isolated_context(Cfg = #cfg{conc_procs = NProcs, round_ns = Dur}) ->
    {ok, W} = py_context:new(#{mode => worker}),
    {ok, I} = py_context:new(#{mode => isolated}),
    {ok, NoSpin} = py_context:new(#{mode => isolated, spin => false}),
    try
        Seq = fun(Ctx) ->
                      check({ok, 3}, py:call(Ctx, operator, add, [1, 2])),
                      rounds(Cfg, fun() ->
                          1.0e6 / rate(timed(fun(K) -> {ok, _} = py:call(Ctx, operator, add, [K, 1]) end, 100, Dur))
                      end)
              end,
        Conc = fun(Ctx) -> rounds(Cfg, fun() -> callers_rate(Ctx, NProcs, Dur) end) end,
        %% I1 and I5 (spin => false) in alternating rounds, so that both see the same load.
        SeqOne = fun(Ctx) -> 1.0e6 / rate(timed(fun(K) -> {ok, _} = py:call(Ctx, operator, add, [K, 1]) end, 100, Dur)) end,
        check({ok, 3}, py:call(NoSpin, operator, add, [1, 2])),
        check({ok, 3}, py:call(I, operator, add, [1, 2])),
        {SeqSpin, SeqNoSpin} = lists:unzip(rounds(Cfg, fun() -> {SeqOne(I), SeqOne(NoSpin)} end)),
        Refs = fun(Ctx) ->
                       {ok, First} = py:eval(Ctx, <<"object()">>),
                       true = py:is_ref(First),
                       rounds(Cfg, fun() ->
                           1.0e6 / rate(timed(fun(_) -> {ok, _} = py:eval(Ctx, <<"object()">>) end, 100, Dur))
                       end)
               end,
        Starts = rounds(Cfg, fun() ->
                                     T0 = now_ns(),
                                     {ok, C} = py_context:new(#{mode => isolated}),
                                     {ok, 2} = py:eval(C, <<"1 + 1">>),
                                     Ms = (now_ns() - T0) / 1.0e6,
                                     ok = py_context:stop(C),
                                     Ms
                             end),
        [#row{id = "I1", label = "isolated context: sequential py:call(Ctx, operator, add, [K, 1])",
              unit = "µs/call", figures = SeqSpin, note = "goal < 30 µs"},
         #row{id = "I1w", label = "  same on a worker context", unit = "µs/call", figures = Seq(W)},
         #row{id = "I2", label = io_lib:format("isolated context: ~w processes calling it", [NProcs]),
              unit = "calls/s total", figures = Conc(I)},
         #row{id = "I2w", label = "  same on a worker context", unit = "calls/s total", figures = Conc(W)},
         #row{id = "I3", label = "isolated context: new + first eval", unit = "ms", figures = Starts},
         #row{id = "I4", label = "isolated context: sequential py:eval(Ctx, <<\"object()\">>) (an object reference)",
              unit = "µs/call", figures = Refs(I), note = "made in the child, released when collected"},
         #row{id = "I4w", label = "  same on a worker context", unit = "µs/call", figures = Refs(W)},
         #row{id = "I5", label = "  I1 with spin => false (the child sleeps in read at once)", unit = "µs/call",
              figures = SeqNoSpin, note = "rounds alternate with I1's"},
         #row{id = "I6", label = "  I2 with spin => false", unit = "calls/s total", figures = Conc(NoSpin)}]
    after
        py_context:stop(NoSpin),
        py_context:stop(I),
        py_context:stop(W)
    end.

callers_rate(Ctx, NProcs, Dur) ->
    Parent = self(),
    T0 = now_ns(),
    Deadline = T0 + Dur,
    Pids = [spawn_link(fun() ->
                               N = run_until(fun(K) -> {ok, _} = py:call(Ctx, operator, add, [K, 1]) end,
                                             10, Deadline, 0),
                               Parent ! {callers_done, self(), N, now_ns()}
                       end) || _ <- lists:seq(1, NProcs)],
    Done = [receive {callers_done, P, N, TEnd} -> {N, TEnd} after 120000 -> error(callers_timeout) end
            || P <- Pids],
    lists:sum([N || {N, _} <- Done]) * 1.0e9 / (lists:max([T || {_, T} <- Done]) - T0).

%% 3. N processes calling concurrently through the default pool.
bench_concurrent(Cfg = #cfg{conc_procs = NProcs, round_ns = Dur}) ->
    Parent = self(),
    Pids = [spawn_link(fun() -> conc_worker(Parent) end) || _ <- lists:seq(1, NProcs)],
    Ctxs = [receive {ready, P, Ctx} -> Ctx after 30000 -> error(worker_not_ready) end || P <- Pids],
    try
        Rates = rounds(Cfg, fun() ->
            T0 = now_ns(),
            Deadline = T0 + Dur,
            [P ! {go, Deadline} || P <- Pids],
            Done = [receive {done, P, N, TEnd} -> {N, TEnd} after 60000 -> error(worker_timeout) end
                    || P <- Pids],
            Total = lists:sum([N || {N, _} <- Done]),
            Total * 1.0e9 / (lists:max([T || {_, T} <- Done]) - T0)
        end),
        Used = length(lists:usort(Ctxs)),
        [#row{id = "3", label = io_lib:format("~w processes, py:call(math, sqrt, [X]), default pool", [NProcs]),
              unit = "calls/s total", figures = Rates,
              note = io_lib:format("processes spread over ~w of ~w pool contexts",
                                   [Used, py_context_router:num_contexts()])}]
    after
        [P ! stop || P <- Pids]
    end.

conc_worker(Parent) ->
    [{ok, _} = py:call(math, sqrt, [I]) || I <- lists:seq(1, 100)],
    Parent ! {ready, self(), py:context()},
    conc_wait(Parent).

conc_wait(Parent) ->
    receive
        {go, Deadline} ->
            N = run_until(fun(I) -> {ok, _} = py:call(math, sqrt, [I]) end, 20, Deadline, 0),
            Parent ! {done, self(), N, now_ns()},
            conc_wait(Parent);
        stop ->
            ok
    end.

run_until(Fun, Batch, Deadline, N) ->
    repeat(Fun, Batch),
    case now_ns() >= Deadline of
        true -> N + Batch;
        false -> run_until(Fun, Batch, Deadline, N + Batch)
    end.

%% 4. Sequential py:eval with a local variable.
bench_eval(Cfg = #cfg{round_ns = Dur}) ->
    check({ok, 42}, py:eval(<<"x + 1">>, #{x => 41})),
    Rates = rounds(Cfg, fun() ->
        rate(timed(fun(I) -> {ok, _} = py:eval(<<"x + 1">>, #{x => I}) end, 100, Dur))
    end),
    [#row{id = "4", label = "sequential py:eval(<<\"x + 1\">>, #{x => N})", unit = "calls/s", figures = Rates}].

%% 5. 1 MiB binaries through an identity function, UTF-8 text (-> str) and non-UTF-8 (-> bytes).
bench_binaries(Cfg = #cfg{round_ns = Dur}) ->
    ok = py:exec(<<"def ident(x): return x">>),
    Text = binary:copy(<<"The quick brown fox jumps over the lazy dog. 0123456789 ABCDEFG\n">>, ?MIB div 64),
    ?MIB = byte_size(Text),
    Bytes = binary:copy(<<255>>, ?MIB),
    check({ok, Text}, ident(Text)),
    check({ok, Bytes}, ident(Bytes)),
    check({ok, true}, py:eval(<<"isinstance(x, str)">>, #{x => Text})),
    check({ok, true}, py:eval(<<"isinstance(x, bytes)">>, #{x => Bytes})),
    Mbs = fun(Bin) ->
        rounds(Cfg, fun() ->
            {N, Ns} = timed(fun(_) -> {ok, _} = ident(Bin) end, 1, Dur),
            byte_size(Bin) / 1.0e6 / (Ns / N / 1.0e9)
        end)
    end,
    Note = "MB/s = 1 MiB payload / round-trip time (1 MB = 10^6 B)",
    [#row{id = "5a", label = "1 MiB UTF-8 (ASCII) binary -> str -> binary", unit = "MB/s",
          figures = Mbs(Text), note = Note},
     #row{id = "5b", label = "1 MiB non-UTF-8 binary (byte 255) -> bytes -> binary", unit = "MB/s",
          figures = Mbs(Bytes), note = Note}].

ident(X) ->
    py:call('__main__', ident, [X]).

%% 6. A list of integers, round trip.
bench_list(Cfg = #cfg{list_len = Len, round_ns = Dur}) ->
    ok = py:exec(<<"def ident(x): return x">>),
    L = lists:seq(1, Len),
    check({ok, L}, ident(L)),
    Ms = rounds(Cfg, fun() -> ms_per_op(timed(fun(_) -> {ok, _} = ident(L) end, 1, Dur)) end),
    [#row{id = "6", label = io_lib:format("list of ~s integers, round trip", [group(Len)]), unit = "ms",
          figures = Ms}].

%% 7. A map with binary keys, round trip; and Erlang -> Python only. Run in a child VM
%% (see isolated/2): converting a large dict back to a map has crashed the VM (SIGSEGV).
bench_map(Cfg = #cfg{map_keys = NKeys, round_ns = Dur}) ->
    ok = py:exec(<<"def ident(x): return x">>),
    M = maps:from_list([{<<"key_", (integer_to_binary(I))/binary>>, I} || I <- lists:seq(1, NKeys)]),
    check({ok, NKeys}, py:eval(<<"len(m)">>, #{m => M})),
    OneWay = rounds(Cfg, fun() ->
        ms_per_op(timed(fun(_) -> {ok, NKeys} = py:eval(<<"len(m)">>, #{m => M}) end, 1, Dur))
    end),
    Keys = group(NKeys),
    Row7b = #row{id = "7b", label = io_lib:format("  same map, Erlang -> Python only (eval len(m))", []),
                 unit = "ms", figures = OneWay},
    emit_partial([Row7b]),
    check({ok, M}, ident(M)),
    Ms = rounds(Cfg, fun() -> ms_per_op(timed(fun(_) -> {ok, _} = ident(M) end, 1, Dur)) end),
    [#row{id = "7a", label = io_lib:format("map of ~s binary keys (integer values), round trip", [Keys]),
          unit = "ms", figures = Ms},
     Row7b].

%% C. Conversions: py:eval(<<"x">>, #{x => V}) round trips (V to Python and back), each round's
%% figure the median of ?CONVERSION_RUNS round trips. The goals are issue 15's: creating 100,000
%% Python ints and 100,000 Erlang integers, or copying 1 MiB twice, costs far less.
-define(CONVERSION_RUNS, 31).
bench_conversions(Cfg = #cfg{list_len = Len, map_keys = NKeys}) ->
    Text = binary:copy(<<"The quick brown fox jumps over the lazy dog. 0123456789 ABCDEFG\n">>, ?MIB div 64),
    Bytes = binary:copy(<<255>>, ?MIB),
    List = lists:seq(1, Len),
    Map = maps:from_list([{<<"key_", (integer_to_binary(I))/binary>>, I} || I <- lists:seq(1, NKeys)]),
    check({ok, true}, py:eval(<<"isinstance(x, str)">>, #{x => Text})),
    check({ok, true}, py:eval(<<"isinstance(x, bytes)">>, #{x => Bytes})),
    [conversion_row(Cfg, "C1", io_lib:format("list of ~s integers", [group(Len)]), List, 5),
     conversion_row(Cfg, "C2", io_lib:format("map of ~s binary keys (integer values)", [group(NKeys)]), Map, 5),
     conversion_row(Cfg, "C3", "1 MiB UTF-8 (ASCII) binary (str in Python)", Text, 1),
     conversion_row(Cfg, "C4", "1 MiB non-UTF-8 binary (bytes in Python)", Bytes, 1)].

conversion_row(Cfg, Id, What, V, GoalMs) ->
    check({ok, V}, py:eval(<<"x">>, #{x => V})),
    Ms = rounds(Cfg, fun() ->
        median([begin
                    T0 = now_ns(),
                    {ok, _} = py:eval(<<"x">>, #{x => V}),
                    (now_ns() - T0) / 1.0e6
                end || _ <- lists:seq(1, ?CONVERSION_RUNS)])
    end),
    Verdict = case median(Ms) =< GoalMs of true -> "met"; false -> "NOT met" end,
    #row{id = Id, label = ["py:eval(<<\"x\">>, #{x => V}) round trip, V = ", What], unit = "ms",
         figures = Ms,
         note = io_lib:format("goal <= ~w ms (~s); median of ~w per round", [GoalMs, Verdict, ?CONVERSION_RUNS])}.

%% 8. CPU time of this OS process while the default pool is idle.
bench_idle(Cfg = #cfg{idle_ms = Window}) ->
    NCtx = py_context_router:num_contexts(),
    NCtx > 0 orelse error(pool_not_running),
    erlang:garbage_collect(),
    Tck = clk_tck(),
    Pcts = rounds(Cfg, fun() ->
        {C0, T0} = {proc_cpu_ticks(), now_ns()},
        timer:sleep(Window),
        {C1, T1} = {proc_cpu_ticks(), now_ns()},
        100 * ((C1 - C0) / Tck) / ((T1 - T0) / 1.0e9)
    end),
    [#row{id = "8", label = io_lib:format("idle CPU, default pool (~w contexts) started, no calls", [NCtx]),
          unit = "% of 1 core", figures = Pcts,
          note = io_lib:format("utime+stime over ~.1f s; resolution ~.2f%",
                               [Window / 1000, 100 / Tck / (Window / 1000)])}].

%% 9. Timer wake-up latency of an Erlang process while 2 contexts run CPU-bound Python.
bench_wakeup(Cfg = #cfg{probes = NProbes}) ->
    Unloaded = probe(min(NProbes, 500)),
    {ok, C1} = py_context:new(#{mode => worker}),
    {ok, C2} = py_context:new(#{mode => worker}),
    Parent = self(),
    Burners = [spawn_link(fun() -> burn(Parent, C, 0) end) || C <- [C1, C2]],
    try
        timer:sleep(300),
        T0 = now_ns(),
        %% Short warm-up; each round stops early after ?PROBE_ROUND_MS so the row fits the budget.
        _ = probe(min(NProbes, 200), now_ns() + ?PROBE_ROUND_MS * 1000000),
        Samples = [probe(NProbes, now_ns() + ?PROBE_ROUND_MS * 1000000) || _ <- lists:seq(1, Cfg#cfg.rounds)],
        Secs = (now_ns() - T0) / 1.0e9,
        [B ! stop || B <- Burners],
        Evals = [receive {burned, B, N} -> N after 30000 -> error(burner_timeout) end || B <- Burners],
        %% The warm-up round is in the time but not in the rounds; evals/s is approximate.
        Note = io_lib:format("probe: receive after 1 ms, ~w..~w sleeps/round (~w max, ~w s cap); background ~w evals/s per context; "
                             "unloaded p50/p99 ~.2f/~.2f ms",
                             [lists:min([length(S) || S <- Samples]), lists:max([length(S) || S <- Samples]),
                              NProbes, ?PROBE_ROUND_MS div 1000, round(lists:sum(Evals) / 2 / Secs),
                              percentile(Unloaded, 50), percentile(Unloaded, 99)]),
        [#row{id = "9a", label = "wake-up latency p50, 2 contexts busy in Python", unit = "ms",
              figures = [percentile(S, 50) || S <- Samples], note = Note},
         #row{id = "9b", label = "wake-up latency p99, 2 contexts busy in Python", unit = "ms",
              figures = [percentile(S, 99) || S <- Samples]}]
    after
        [B ! stop || B <- Burners],
        ok = py_context:stop(C1),
        ok = py_context:stop(C2)
    end.

burn(Parent, Ctx, N) ->
    {ok, _} = py:eval(Ctx, <<"sum(range(3000000))">>),
    receive
        stop -> Parent ! {burned, self(), N + 1}
    after 0 ->
        burn(Parent, Ctx, N + 1)
    end.

%% Actual durations (ms) of up to NProbes sleeps of 1 ms, stopping at Deadline (ns).
probe(NProbes) -> probe(NProbes, infinity).

probe(0, _Deadline) -> [];
probe(N, Deadline) ->
    T0 = erlang:monotonic_time(microsecond),
    receive after 1 -> ok end,
    T1 = erlang:monotonic_time(microsecond),
    Sample = (T1 - T0) / 1000,
    case Deadline =/= infinity andalso T1 * 1000 >= Deadline of
        true -> [Sample];
        false -> [Sample | probe(N - 1, Deadline)]
    end.

%% 10. RSS per extra worker context.
bench_ctx_mem(Cfg = #cfg{extra_ctxs = N}) ->
    Results = rounds(Cfg, fun() ->
        erlang:garbage_collect(),
        timer:sleep(200),
        {Rss0, Vm0} = {proc_status_kb("VmRSS"), proc_status_kb("VmSize")},
        Ctxs = [begin {ok, C} = py_context:new(#{mode => worker}), C end || _ <- lists:seq(1, N)],
        [{ok, _} = py:call(C, math, sqrt, [2]) || C <- Ctxs],
        {Rss1, Vm1} = {proc_status_kb("VmRSS"), proc_status_kb("VmSize")},
        [ok = py_context:stop(C) || C <- Ctxs],
        {(Rss1 - Rss0) / N, (Vm1 - Vm0) / N}
    end),
    [#row{id = "10", label = io_lib:format("RSS per extra worker context (~w created, 1 call each)", [N]),
          unit = "KB/context", figures = [R || {R, _} <- Results],
          note = io_lib:format("VmSize grows ~w KB/context (8 MiB stack reserved); "
                               "contexts are stopped after each round", [round(median([V || {_, V} <- Results]))])}].

%% 11-12. K contexts (K = online schedulers) each running the same CPU-bound pure-Python loop
%% at once, against one context running it alone: throughput ratio, per mode. Also the RSS an
%% owngil context costs.
bench_parallel(Cfg) ->
    K = erlang:system_info(schedulers_online),
    Modes = case py_context:new(#{mode => owngil}) of
                {ok, Probe} -> ok = py_context:stop(Probe), [owngil, worker];
                {error, _} -> [worker]
            end,
    lists:append([parallel_rows(Cfg, Mode, K) || Mode <- Modes]).

parallel_rows(Cfg, Mode, K) ->
    Rss0 = proc_status_kb("VmRSS"),
    Ctxs = [begin {ok, C} = py_context:new(#{mode => Mode}), C end || _ <- lists:seq(1, K)],
    Loop = <<"sum(i * i for i in range(300000))">>,
    Reps = case Cfg#cfg.quick of true -> 2; false -> 6 end,
    Work = fun(C) -> [{ok, _} = py:eval(C, Loop) || _ <- lists:seq(1, Reps)] end,
    [Work(C) || C <- Ctxs],
    RssPer = (proc_status_kb("VmRSS") - Rss0) / K,
    Ratios = rounds(Cfg, fun() ->
        T0 = now_ns(),
        Work(hd(Ctxs)),
        One = now_ns() - T0,
        Self = self(),
        T1 = now_ns(),
        Pids = [spawn_link(fun() -> Work(C), Self ! {parallel_done, self()} end) || C <- Ctxs],
        [receive {parallel_done, P} -> ok end || P <- Pids],
        All = now_ns() - T1,
        K * One / All
    end),
    [ok = py_context:stop(C) || C <- Ctxs],
    Id = case Mode of owngil -> "11"; worker -> "12" end,
    Rows = [#row{id = Id, label = io_lib:format("~w ~w contexts, CPU-bound Python, throughput vs 1", [K, Mode]),
                 unit = "x", figures = Ratios,
                 note = io_lib:format("each context evals ~s ~w times; limit ~w on ~w cores",
                                      [Loop, Reps, K, K])}],
    case Mode of
        owngil ->
            Rows ++ [#row{id = "13", label = "RSS per owngil context (created, CPU loop run)",
                          unit = "KB/context", figures = [RssPer],
                          note = "one measurement: first owngil contexts of the run"}];
        worker ->
            Rows
    end.

%% 14. Event loop throughput: the same asyncio code on ErlangEventLoop and on the stock loop,
%% in a context of its own (bench/loop_bench.py).
bench_loop(Cfg = #cfg{quick = Quick}) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py:exec(Ctx, <<"import sys; sys.path.insert(0, 'bench')">>),
    {Timers, Echoes} = case Quick of true -> {2000, 500}; false -> {20000, 5000} end,
    Rate = fun(Fun, Args) ->
        rounds(Cfg, fun() -> {ok, R} = py:call(Ctx, loop_bench, Fun, Args), R end)
    end,
    TimersErl = Rate(timers, [erlang, Timers]),
    TimersStock = Rate(timers, [stock, Timers]),
    EchoErl = Rate(echo, [erlang, Echoes, 64]),
    EchoStock = Rate(echo, [stock, Echoes, 64]),
    ManyRounds = case Quick of true -> 20; false -> 200 end,
    ManyErl = Rate(echo_many, [erlang, 100, ManyRounds, 64]),
    ManyStock = Rate(echo_many, [stock, 100, ManyRounds, 64]),
    IdleSeconds = case Quick of true -> 0.5; false -> 2.0 end,
    IdleErl = Rate(idle_cpu, [erlang, IdleSeconds]),
    IdleStock = Rate(idle_cpu, [stock, IdleSeconds]),
    ok = py_context:stop(Ctx),
    Ratio = fun(A, B) -> io_lib:format("~.2fx the stock loop (medians)", [median(A) / median(B)]) end,
    [#row{id = "14a", label = "timer chain (call_later(0)), ErlangEventLoop", unit = "timers/s",
          figures = TimersErl, note = Ratio(TimersErl, TimersStock)},
     #row{id = "14b", label = "timer chain (call_later(0)), stock asyncio loop", unit = "timers/s",
          figures = TimersStock},
     #row{id = "14c", label = "TCP echo round trip (64 B, loopback), ErlangEventLoop", unit = "round trips/s",
          figures = EchoErl, note = Ratio(EchoErl, EchoStock)},
     #row{id = "14d", label = "TCP echo round trip (64 B, loopback), stock asyncio loop", unit = "round trips/s",
          figures = EchoStock},
     #row{id = "L1", label = "TCP echo, 100 concurrent connections (64 B), ErlangEventLoop", unit = "round trips/s",
          figures = ManyErl, note = Ratio(ManyErl, ManyStock)},
     #row{id = "L2", label = "TCP echo, 100 concurrent connections (64 B), stock asyncio loop", unit = "round trips/s",
          figures = ManyStock},
     #row{id = "L3", label = "idle loop (server + 1 connection open), ErlangEventLoop: its thread's CPU",
          unit = "ms CPU/s", figures = IdleErl, note = "0 = no CPU while idle"},
     #row{id = "L4", label = "idle loop (server + 1 connection open), stock asyncio loop: its thread's CPU",
          unit = "ms CPU/s", figures = IdleStock}].

%% 15. py_buffer: 64 MiB written by Erlang in 64 KiB chunks into a buffer of unknown length
%% (it grows), then read by Python in one pass through a memoryview (memoryview(b).tobytes():
%% every byte read once). 15a is the whole trip, 15b/15c its two halves.
bench_buffer(Cfg) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py:exec(Ctx, <<"def mv_pass(b):\n"
                        "    mv = memoryview(b)\n"
                        "    n = len(mv.tobytes())\n"
                        "    mv.release()\n"
                        "    return n\n"
                        "_dst = memoryview(bytearray())\n"
                        "def mv_into(b):\n"
                        "    global _dst\n"
                        "    mv = memoryview(b)\n"
                        "    if len(_dst) != len(mv):\n"
                        "        _dst.release()\n"
                        "        _dst = memoryview(bytearray(len(mv)))\n"
                        "    _dst[:] = mv\n"
                        "    n = len(mv)\n"
                        "    mv.release()\n"
                        "    return n\n"
                        "def baseline(size, read_name):\n"
                        "    import time\n"
                        "    read = globals()[read_name]\n"
                        "    data = bytes(size)\n"
                        "    read(data)\n"
                        "    t0 = time.perf_counter_ns()\n"
                        "    read(data)\n"
                        "    return size / (time.perf_counter_ns() - t0)\n">>),
    Total = 64 * ?MIB,
    Chunk = binary:copy(<<"0123456789abcdef">>, 4096),
    Tck = clk_tck(),
    TripWith = fun(New, Read) -> rounds(Cfg, fun() ->
        %% The previous round's buffer is garbage: collected now (outside the clock), as when
        %% the process that handled the previous request has exited, so its memory is reusable.
        true = erlang:garbage_collect(),
        {ok, B} = New(),
        C0 = proc_cpu_ticks(),
        T0 = now_ns(),
        lists:foreach(fun(_) -> ok = py_buffer:write(B, Chunk) end, lists:seq(1, Total div byte_size(Chunk))),
        ok = py_buffer:close(B),
        T1 = now_ns(),
        {ok, Total} = py:call(Ctx, '__main__', Read, [B]),
        T2 = now_ns(),
        CpuNs = max(1, proc_cpu_ticks() - C0) * 1.0e9 / Tck,
        {Total / (T2 - T0), Total / (T1 - T0), Total / (T2 - T1), Total / CpuNs}  % bytes/ns = GB/s
    end) end,
    Trip = fun(New) -> TripWith(New, mv_pass) end,
    Rounds = Trip(fun() -> py_buffer:new() end),
    Known = Trip(fun() -> py_buffer:new(Total) end),
    %% 15g-i: the reader copies the view into memory of its own that it reuses (a memoryview
    %% slice assignment: one memcpy, no new 64 MiB object per pass, so no fresh pages to fault
    %% in on the Python side). bytearray slice assignment would not do: from an object that is
    %% not a bytearray it first makes a temporary bytearray copy.
    InPlace = TripWith(fun() -> py_buffer:new() end, mv_into),
    Baseline = fun(Read) ->
                       rounds(Cfg, fun() ->
                           {ok, R} = py:call(Ctx, '__main__', baseline, [Total, atom_to_binary(Read)]),
                           R
                       end)
               end,
    CopyOut = Baseline(mv_pass),
    CopyInto = Baseline(mv_into),
    ok = py_context:stop(Ctx),
    Note = "64 MiB; GB/s = 10^9 B/s; read = one memoryview(b).tobytes() pass in a worker context",
    [#row{id = "15a", label = "py_buffer 64 MiB: 64 KiB writes + close + Python memoryview read", unit = "GB/s",
          figures = [A || {A, _, _, _} <- Rounds], note = Note},
     #row{id = "15b", label = "py_buffer 64 MiB: the 1024 Erlang writes of 64 KiB alone", unit = "GB/s",
          figures = [W || {_, W, _, _} <- Rounds]},
     #row{id = "15c", label = "py_buffer 64 MiB: the Python memoryview read alone (py:call included)", unit = "GB/s",
          figures = [R || {_, _, R, _} <- Rounds]},
     #row{id = "15d", label = "py_buffer 64 MiB, length known (py_buffer:new(64 MiB)): whole trip", unit = "GB/s",
          figures = [A || {A, _, _, _} <- Known]},
     #row{id = "15f", label = "py_buffer 64 MiB whole trip (15a) per CPU-second of the VM", unit = "GB/CPU-s",
          figures = [C || {_, _, _, C} <- Rounds],
          note = "64 MiB / (utime + stime of the VM during the trip, all threads): the rate without other load"},
     #row{id = "15e", label = "baseline: the same memoryview pass over a 64 MiB Python bytes", unit = "GB/s",
          figures = CopyOut, note = "the ceiling of the read pass on this machine at this load"},
     #row{id = "15g", label = "py_buffer 64 MiB whole trip, read = memoryview(dst)[:] = memoryview(b), dst reused",
          unit = "GB/s", figures = [A || {A, _, _, _} <- InPlace],
          note = "as 15a, the reader copying the view into memory of its own it already has"},
     #row{id = "15h", label = "py_buffer 64 MiB: that read alone (py:call included)", unit = "GB/s",
          figures = [R || {_, _, R, _} <- InPlace]},
     #row{id = "15i", label = "baseline: that read over a 64 MiB Python bytes", unit = "GB/s",
          figures = CopyInto, note = "its ceiling on this machine at this load"}].

%% 16. SharedDict get of a small value (a 3-key map) under a binary key: from Erlang
%% (py:shared_dict_get/2) and from Python (sd['config'] in a loop inside one call).
bench_shared_dict(Cfg = #cfg{round_ns = Dur}) ->
    {ok, SD} = py:shared_dict_new(),
    Value = #{<<"host">> => <<"localhost">>, <<"port">> => 8080, <<"tls">> => true},
    ok = py:shared_dict_set(SD, <<"config">>, Value),
    check(Value, py:shared_dict_get(SD, <<"config">>)),
    Erl = rounds(Cfg, fun() ->
        rate(timed(fun(_) -> Value = py:shared_dict_get(SD, <<"config">>) end, 1000, Dur))
    end),
    {ok, Ctx} = py_context:new(#{}),
    ok = py:exec(Ctx, <<"from erlang import SharedDict\n"
                        "def gets(h, n):\n"
                        "    sd = SharedDict(h)\n"
                        "    for _ in range(n):\n"
                        "        v = sd['config']\n"
                        "    return v['port']\n">>),
    N = 100000,
    Py = rounds(Cfg, fun() ->
        T0 = now_ns(),
        {ok, 8080} = py:call(Ctx, '__main__', gets, [SD, N]),
        N * 1.0e9 / (now_ns() - T0)
    end),
    ok = py_context:stop(Ctx),
    ok = py:shared_dict_destroy(SD),
    Note = "value: a map of 3 keys; Python: 100,000 sd['config'] in one py:call (to_python of the map included)",
    [#row{id = "16a", label = "SharedDict get from Erlang (py:shared_dict_get/2)", unit = "ops/s", figures = Erl,
          note = Note},
     #row{id = "16b", label = "SharedDict get from Python (sd[key], worker context)", unit = "ops/s", figures = Py}].

%% 17. Reactor echo: 64 B ping-pongs from Erlang clients (1 and 100 connections) to an echo
%% protocol on a py_reactor_context (worker) and to the same echo on asyncio's stock loop in a
%% plain python3 process (bench/reactor_bench.py), in the same run.
bench_reactor(Cfg = #cfg{round_ns = Dur}) ->
    {R, ReactorPort, Acceptor} = start_bench_reactor(#{max_connections => 1000}),
    %% S rows: the same reactor with its thread at thread_priority auto (SCHED_IDLE until
    %% starved), the default before reactor contexts ran at normal priority.
    {RAuto, AutoPort, AutoAcceptor} = start_bench_reactor(#{max_connections => 1000, thread_priority => auto}),
    {Stock, StockPort} = stock_echo_server(),
    %% Where each server's CPU is read: the reactor context's thread, the stock server's process.
    ThreadStat = fun(Reactor) ->
                         {ok, Tid} = py:call(py_reactor_context:context(Reactor), threading, get_native_id, []),
                         "/proc/self/task/" ++ integer_to_list(Tid) ++ "/stat"
                 end,
    {os_pid, StockPid} = erlang:port_info(Stock, os_pid),
    Stats = [ThreadStat(R), ThreadStat(RAuto), "/proc/" ++ integer_to_list(StockPid) ++ "/stat"],
    Tck = clk_tck(),
    %% One echo run against Port: {round trips/s, the server's CPU µs per round trip, the CPU µs
    %% per round trip of the clients (this VM without the reactor threads), the server's kernel
    %% CPU (stime) µs per round trip}.
    Measured = fun(Port, NConns) ->
                       Before = [user_sys_ticks(S) || S <- Stats],
                       Vm0 = proc_cpu_ticks(),
                       Rate = echo_clients(Port, NConns, Dur),
                       Delta = [{U1 - U0, S1 - S0} || {Stat, {U0, S0}} <- lists:zip(Stats, Before),
                                                      {U1, S1} <- [user_sys_ticks(Stat)]],
                       Total = fun({U, S}) -> U + S end,
                       {ServerUser, ServerSys} = lists:nth(index_of(Port, [ReactorPort, AutoPort, StockPort]), Delta),
                       ClientTicks = proc_cpu_ticks() - Vm0 - Total(lists:nth(1, Delta)) - Total(lists:nth(2, Delta)),
                       Us = fun(Ticks) -> Ticks * 1.0e6 / Tck / (Rate * Dur / 1.0e9) end,
                       {Rate, Us(ServerUser + ServerSys), Us(ClientTicks), Us(ServerSys)}
               end,
    %% Round by round, the three servers in turn, so that a change of load hits all of them.
    Run = fun(NConns) ->
                  Rounds = rounds(Cfg, fun() -> [Measured(P, NConns) || P <- [ReactorPort, AutoPort, StockPort]] end),
                  [[lists:nth(I, Round) || Round <- Rounds] || I <- [1, 2, 3]]
          end,
    Rates = fun(Runs) -> [Rate || {Rate, _, _, _} <- Runs] end,
    try
        [One, OneAuto, OneStock] = [Rates(X) || X <- Run(1)],
        [HundredRuns, _, HundredStockRuns] = HundredAll = Run(100),
        [Hundred, HundredAuto, HundredStock] = [Rates(X) || X <- HundredAll],
        ServerUs = fun(Runs) -> [S || {_, S, _, _} <- Runs] end,
        ServerSysUs = fun(Runs) -> [K || {_, _, _, K} <- Runs] end,
        ClientUs = [C || {_, _, C, _} <- HundredRuns ++ HundredStockRuns],
        %% At 100 connections every party is CPU-bound on this machine's CPUs, so a round trip
        %% costs the clients' CPU plus the server's: the best ratio a server could reach against
        %% the stock loop is (clients + stock server) / (clients + its own kernel time alone).
        Ratio = fun(A, B) -> io_lib:format("~.2fx the stock loop (medians)", [median(A) / median(B)]) end,
        BestRatio = fun(Clients, StockServer, OwnKernel) ->
                            io_lib:format("a server with no user-space CPU: at most ~.2fx the stock loop here",
                                          [(median(Clients) + median(StockServer)) / (median(Clients) + median(OwnKernel))])
                    end,
        [#row{id = "17a", label = "reactor echo (64 B, 1 connection), py_reactor_context", unit = "round trips/s",
              figures = One, note = Ratio(One, OneStock)},
         #row{id = "17b", label = "reactor echo (64 B, 1 connection), stock asyncio loop (python3)",
              unit = "round trips/s", figures = OneStock},
         #row{id = "17c", label = "reactor echo (64 B, 100 connections), py_reactor_context",
              unit = "round trips/s", figures = Hundred, note = Ratio(Hundred, HundredStock)},
         #row{id = "17d", label = "reactor echo (64 B, 100 connections), stock asyncio loop (python3)",
              unit = "round trips/s", figures = HundredStock},
         #row{id = "17e", label = "reactor echo, 100 connections: the reactor thread's CPU per round trip",
              unit = "us CPU", figures = ServerUs(HundredRuns),
              note = "utime + stime of the context's thread / round trips (/proc, clock ticks)"},
         #row{id = "17f", label = "reactor echo, 100 connections: the stock server process's CPU per round trip",
              unit = "us CPU", figures = ServerUs(HundredStockRuns)},
         #row{id = "17g", label = "reactor echo, 100 connections: the Erlang clients' CPU per round trip",
              unit = "us CPU", figures = ClientUs,
              note = "this VM without the reactor threads, both servers' runs; a round trip costs clients + server"},
         #row{id = "17h", label = "reactor echo, 100 connections: the reactor thread's kernel CPU (stime) per round trip",
              unit = "us CPU", figures = ServerSysUs(HundredRuns),
              note = BestRatio(ClientUs, ServerUs(HundredStockRuns), ServerSysUs(HundredRuns))},
         #row{id = "17i", label = "reactor echo, 100 connections: the stock server's kernel CPU (stime) per round trip",
              unit = "us CPU", figures = ServerSysUs(HundredStockRuns)},
         #row{id = "S1", label = "reactor echo (64 B, 1 connection), py_reactor_context at thread_priority auto",
              unit = "round trips/s", figures = OneAuto, note = Ratio(OneAuto, OneStock)},
         #row{id = "S2", label = "reactor echo (64 B, 100 connections), py_reactor_context at thread_priority auto",
              unit = "round trips/s", figures = HundredAuto, note = Ratio(HundredAuto, HundredStock)}]
    after
        catch port_close(Stock),
        stop_bench_reactor(R, Acceptor),
        stop_bench_reactor(RAuto, AutoAcceptor)
    end.

%% A worker py_reactor_context with the echo protocol, and an acceptor handing it the
%% connections of a loopback listener: {Reactor, Port, Acceptor}.
start_bench_reactor(Opts) ->
    {ok, R} = py_reactor_context:start_link(bench, worker, Opts),
    Ctx = py_reactor_context:context(R),
    ok = py:exec(Ctx, <<"import sys; sys.path.insert(0, 'bench')">>),
    {ok, true} = py:call(Ctx, reactor_bench, reactor_setup, []),
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}, {backlog, 512}]),
    {ok, Port} = inet:port(L),
    Acceptor = spawn_link(fun() -> reactor_acceptor(L, R) end),
    {R, Port, {Acceptor, L}}.

stop_bench_reactor(R, {Acceptor, L}) ->
    unlink(Acceptor),
    exit(Acceptor, kill),
    ok = gen_tcp:close(L),
    unlink(R),
    ok = py_reactor_context:stop(R).

%% W. Worker loops (docs/servers.md): py_context:submit_await/4 round trips from one process
%% (a coroutine and a plain function) on a worker context's running loop, and 64 B echo through
%% a worker serving a py:dup_fd/1 copy of an Erlang listener with erlang.server, next to the
%% same echo on asyncio's stock loop in a plain python3 process (bench/reactor_bench.py), in
%% the same run.
bench_workers(Cfg = #cfg{round_ns = Dur}) ->
    {ok, Ctx} = py_context:new(#{preload => <<"
import asyncio, erlang
async def coro(x):
    return x
def plain(x):
    return x
class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(data)
async def serve(fd):
    await erlang.server.serve(fd, Echo, backlog=512)
    return 'serving'
">>}),
    ok = py_context:start_loop(Ctx),
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}, {backlog, 512}]),
    {ok, Port} = inet:port(L),
    {ok, Fd} = py:dup_fd(L),
    check({ok, <<"serving">>}, py_context:submit_await(Ctx, '__main__', serve, [Fd])),
    {Stock, StockPort} = stock_echo_server(),
    Submit = fun(F) ->
                     rounds(Cfg, fun() ->
                         rate(timed(fun(I) -> {ok, I} = py_context:submit_await(Ctx, '__main__', F, [I]) end, 10, Dur))
                     end)
             end,
    Run = fun(P, NConns) -> rounds(Cfg, fun() -> echo_clients(P, NConns, Dur) end) end,
    try
        Coro = Submit(coro),
        Plain = Submit(plain),
        One = Run(Port, 1),
        OneStock = Run(StockPort, 1),
        Hundred = Run(Port, 100),
        HundredStock = Run(StockPort, 100),
        Ratio = fun(A, B) -> io_lib:format("~.2fx the stock loop (medians)", [median(A) / median(B)]) end,
        Us = fun(F) -> io_lib:format("~.1f us per round trip (median)", [1.0e6 / median(F)]) end,
        [#row{id = "W1", label = "py_context:submit_await/4 of a coroutine, worker loop, 1 process",
              unit = "round trips/s", figures = Coro, note = Us(Coro)},
         #row{id = "W2", label = "py_context:submit_await/4 of a plain function, worker loop, 1 process",
              unit = "round trips/s", figures = Plain, note = Us(Plain)},
         #row{id = "W3", label = "echo (64 B, 1 connection) through a worker loop (erlang.server on a dup_fd)",
              unit = "round trips/s", figures = One, note = Ratio(One, OneStock)},
         #row{id = "W4", label = "echo (64 B, 1 connection), stock asyncio loop (python3)", unit = "round trips/s",
              figures = OneStock},
         #row{id = "W5", label = "echo (64 B, 100 connections) through a worker loop", unit = "round trips/s",
              figures = Hundred, note = Ratio(Hundred, HundredStock)},
         #row{id = "W6", label = "echo (64 B, 100 connections), stock asyncio loop (python3)",
              unit = "round trips/s", figures = HundredStock}]
    after
        catch port_close(Stock),
        ok = gen_tcp:close(L),
        _ = py_context:stop(Ctx)
    end.

reactor_acceptor(L, R) ->
    {ok, S} = gen_tcp:accept(L),
    {ok, Fd} = inet:getfd(S),
    ok = py_reactor_context:handoff(R, Fd, #{}),
    ok = gen_tcp:close(S),
    reactor_acceptor(L, R).

%% python3 bench/reactor_bench.py: prints its port, exits when its stdin closes.
stock_echo_server() ->
    Python = os:find_executable("python3"),
    Port = open_port({spawn_executable, Python}, [{args, ["bench/reactor_bench.py"]}, {line, 64}, binary]),
    receive
        {Port, {data, {eol, Line}}} -> {Port, binary_to_integer(Line)}
    after 10000 -> error(stock_server_did_not_start)
    end.

%% NConns clients each do 64 B ping-pongs for Dur ns; round trips per second, all together.
echo_clients(Port, NConns, Dur) ->
    Parent = self(),
    Socks = [begin
                 {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {nodelay, true}]),
                 ok = gen_tcp:send(C, <<0:512>>),
                 {ok, _} = gen_tcp:recv(C, 64, 5000),  % served before the clock starts
                 C
             end || _ <- lists:seq(1, NConns)],
    T0 = now_ns(),
    Deadline = T0 + Dur,
    Pids = [spawn_link(fun() -> Parent ! {echoed, self(), echo_loop(C, Deadline, 0)} end) || C <- Socks],
    Total = lists:sum([receive {echoed, P, N} -> N end || P <- Pids]),
    Ns = now_ns() - T0,
    [ok = gen_tcp:close(C) || C <- Socks],
    Total * 1.0e9 / Ns.

echo_loop(C, Deadline, N) ->
    case now_ns() < Deadline of
        false -> N;
        true ->
            ok = gen_tcp:send(C, <<N:512>>),
            {ok, <<N:512>>} = gen_tcp:recv(C, 64, 5000),
            echo_loop(C, Deadline, N + 1)
    end.

%% 15. Channels: Erlang py_channel:send/2 (a writer process) -> Python iteration over the channel
%% in one worker context, end to end (from the first send until Python has read the close);
%% every message is checked (count and bytes). 15c is send/2 alone into an unbounded channel.
bench_channels(Cfg = #cfg{quick = Quick}) ->
    {ok, Ctx} = py_context:new(#{}),
    ok = py:exec(Ctx, <<"
from erlang.channel import Channel
def bench_channel_read(ch):
    n = size = 0
    for msg in Channel(ch):
        n += 1
        size += len(msg[2]) if isinstance(msg, tuple) else len(msg)
    return (n, size)
def bench_send_bytes(ref, n):
    ch = erlang.ByteChannel(ref)
    data = bytes(64)
    for _ in range(n):
        ch.send_bytes(data)
    ch.close()
    return n
">>),
    {NSmall, NBig} = case Quick of true -> {100000, 5000}; false -> {1000000, 50000} end,
    Small = {msg, 1, binary:copy(<<"a">>, 40)},   % 56 bytes in external format
    Big = binary:copy(<<1>>, 16384),
    Run = fun(Mod, Msg, N, Size) ->
        rounds(Cfg, fun() -> channel_round(Ctx, Mod, Msg, N, Size) end)
    end,
    SmallRates = Run(py_channel, Small, NSmall, 40),
    BigRates = Run(py_byte_channel, Big, NBig, 16384),
    SendRates = rounds(Cfg, fun() ->
        {ok, Ch} = py_channel:new(),
        T0 = now_ns(),
        channel_send_n(py_channel, Ch, Small, NSmall),
        NSmall * 1.0e9 / (now_ns() - T0)
    end),
    NPy = NSmall div 5,
    PyToErl = rounds(Cfg, fun() -> send_bytes_round(Ctx, NPy) end),
    ok = py_context:stop(Ctx),
    [#row{id = "18a", label = "channel: send/2 -> Python iteration, 56 B terms, end to end", unit = "msgs/s",
          figures = SmallRates, note = io_lib:format("~w messages per round, one worker context", [NSmall])},
     #row{id = "18b", label = "byte channel: send/2 -> Python iteration, 16 KiB binaries", unit = "msgs/s",
          figures = BigRates, note = io_lib:format("~w MB/s (median); the same cache-hot binary each send", [round(median(BigRates) * 16384 / 1.0e6)])},
     #row{id = "18c", label = "channel: send/2 alone (56 B terms, unbounded)", unit = "msgs/s",
          figures = SendRates},
     #row{id = "R1", label = "byte channel: Python send_bytes (64 B) -> Erlang recv/2, end to end", unit = "msgs/s",
          figures = PyToErl, note = io_lib:format("~w messages per round; one worker context writes, one Erlang process reads", [NPy])}].

%% R1: a worker context writes N 64-byte messages with ByteChannel.send_bytes and closes; this
%% process reads them with py_byte_channel:recv/2 until the close. From the call to the last read.
send_bytes_round(Ctx, N) ->
    {ok, Ch} = py_byte_channel:new(),
    T0 = now_ns(),
    Self = self(),
    Writer = spawn_link(fun() -> Self ! {written, py:call(Ctx, '__main__', bench_send_bytes, [Ch, N], #{timeout => 120000})} end),
    N = recv_all(Ch, 0),
    Rate = N * 1.0e9 / (now_ns() - T0),
    receive {written, {ok, N}} -> ok end,
    unlink(Writer),
    Rate.

recv_all(Ch, K) ->
    case py_byte_channel:recv(Ch, 120000) of
        {ok, <<0:512>>} -> recv_all(Ch, K + 1);
        {error, closed} -> K
    end.

channel_round(Ctx, Mod, Msg, N, Size) ->
    {ok, Ch} = Mod:new(),
    T0 = now_ns(),
    Writer = spawn_link(fun() -> channel_send_n(Mod, Ch, Msg, N), ok = Mod:close(Ch) end),
    Expected = {N, N * Size},
    {ok, Expected} = py:call(Ctx, '__main__', bench_channel_read, [Ch], #{timeout => 120000}),
    Rate = N * 1.0e9 / (now_ns() - T0),
    unlink(Writer),
    Rate.

channel_send_n(_Mod, _Ch, _Msg, 0) -> ok;
channel_send_n(Mod, Ch, Msg, K) -> ok = Mod:send(Ch, Msg), channel_send_n(Mod, Ch, Msg, K - 1).

%% --- under load (rows L*) ------------------------------------------------------------------------
%%
%% The same node with S busy Erlang processes (S = online schedulers: every scheduler has work)
%% and/or contexts running CPU-bound Python: does each side keep a fair share of the CPU?
%% Every figure is measured quiet and loaded in the same round (quiet first), and given as the
%% loaded figure's fraction of the quiet one. With BENCH_PRIORITIES=idle,low,normal the rounds
%% run each thread_priority in turn (the application is restarted with it), so the options are
%% compared under the same machine load.
%%
%% To add a request-path row, add an entry to load_request_rows/0; to add another kind of
%% measurement, add a function returning load figures (see load_figure/7) to load_round/2.

%% A call that takes longer than this counts as a timeout (a starved context).
-define(LOAD_CALL_TIMEOUT_MS, 5000).
%% The unit of CPU-bound Python work: ~26 ms quiet on the project's machine.
-define(BURN_N, 1000000).
-define(BURN_SRC, <<"def burn(n):\n    return sum(range(n))\n">>).

bench_under_load(Cfg = #cfg{rounds = Rounds}) ->
    Default = application:get_env(erlang_python, thread_priority, normal),
    Prios = load_priorities(Default),
    io:format("  thread_priority: ~p (default ~p); load average at start ~ts~n",
              [Prios, Default, load_average()]),
    try
        Figures = lists:append([[{P, F} || P <- Prios, F <- load_round_with(P, Cfg)]
                                || _ <- lists:seq(1, Rounds)]),
        load_rows(Prios, Default, Figures)
    after
        use_priority(Default)
    end.

load_priorities(Default) ->
    case os:getenv("BENCH_PRIORITIES") of
        false -> [Default];
        "" -> [Default];
        Text -> [list_to_existing_atom(string:trim(P)) || P <- string:lexemes(Text, ",")]
    end.

%% Restarts the application so that the default pool's threads run at priority P.
use_priority(P) ->
    case application:get_env(erlang_python, thread_priority) of
        {ok, P} -> ok;
        _ ->
            ok = application:stop(erlang_python),
            ok = application:set_env(erlang_python, thread_priority, P),
            {ok, _} = application:ensure_all_started(erlang_python),
            ok
    end.

load_round_with(P, Cfg) ->
    ok = use_priority(P),
    io:format("  round at ~p (load ~ts)~n", [P, load_average()]),
    load_round(Cfg, erlang:system_info(schedulers_online)).

load_round(Cfg, S) ->
    lists:append([python_share(Cfg, 1, S),
                  python_share(Cfg, 2, S),
                  wakeup_under_python(Cfg, worker, 2),
                  wakeup_under_python(Cfg, owngil, 2),
                  request_rows_under_load(Cfg, S)]).

%% One figure of one round: the row it belongs to, the fraction (or value), the quiet and loaded
%% absolute figures and the calls that timed out.
load_figure(Id, Label, Unit, Value, Quiet, Loaded, Timeouts) ->
    #{id => Id, label => Label, unit => Unit, value => Value, quiet => Quiet, loaded => Loaded,
      timeouts => Timeouts}.

fraction(_Loaded, Quiet) when Quiet == 0 -> 0.0;
fraction(Loaded, Quiet) -> Loaded / Quiet.

%% (a) and (b): K contexts run CPU-bound Python back to back, alone, then with S busy Erlang
%% processes; the busy processes run alone, then with the Python. Both sides' throughput under
%% the other's load, as a fraction of alone.
python_share(#cfg{round_ns = Dur}, K, S) ->
    Ctxs = [begin {ok, C} = py_context:new(#{mode => worker}), ok = py:exec(C, ?BURN_SRC), C end
            || _ <- lists:seq(1, K)],
    try
        {PyQuiet, _} = burn_rate(Ctxs, Dur),
        ErlQuiet = with_busy(S, fun() -> timer:sleep(Dur div 1000000) end),
        {{PyLoaded, Timeouts}, ErlLoaded} =
            with_busy_result(S, fun() -> burn_rate(Ctxs, Dur) end),
        Ctx = case K of 1 -> "1 context"; _ -> io_lib:format("~w contexts", [K]) end,
        [load_figure(io_lib:format("L~wa", [K]),
                     io_lib:format("Python throughput, ~s CPU-bound, ~w busy Erlang processes", [Ctx, S]),
                     "x quiet", fraction(PyLoaded, PyQuiet), PyQuiet, PyLoaded, Timeouts),
         load_figure(io_lib:format("L~wb", [K]),
                     io_lib:format("  Erlang throughput, ~w busy processes, beside ~s of Python", [S, Ctx]),
                     "x quiet", fraction(ErlLoaded, ErlQuiet), ErlQuiet, ErlLoaded, 0)]
    after
        [py_context:stop(C) || C <- Ctxs]
    end.

%% Python work done per second (burn(?BURN_N) calls) by one caller per context, calling back to
%% back for Dur ns; a call that times out ends its caller. {Rate, Timeouts}.
burn_rate(Ctxs, Dur) ->
    Parent = self(),
    T0 = now_ns(),
    Deadline = T0 + Dur,
    Pids = [spawn_link(fun() -> Parent ! {burned, self(), burn_until(C, Deadline, 0)} end) || C <- Ctxs],
    Results = [receive {burned, P, R} -> R end || P <- Pids],
    Elapsed = now_ns() - T0,
    Done = lists:sum([N || {N, _} <- Results]),
    {Done * 1.0e9 / Elapsed, length([t || {_, timeout} <- Results])}.

burn_until(Ctx, Deadline, N) ->
    case py:call(Ctx, '__main__', burn, [?BURN_N], #{timeout => ?LOAD_CALL_TIMEOUT_MS}) of
        {ok, _} ->
            case now_ns() >= Deadline of
                true -> {N + 1, ok};
                false -> burn_until(Ctx, Deadline, N + 1)
            end;
        {error, timeout} -> {N, timeout}
    end.

%% S busy Erlang processes run while Fun() runs: their throughput (work units/s).
with_busy(S, Fun) ->
    {_, Rate} = with_busy_result(S, Fun),
    Rate.

with_busy_result(S, Fun) ->
    T0 = now_ns(),
    Pids = [spawn_link(fun() -> busy(0) end) || _ <- lists:seq(1, S)],
    try
        Result = Fun(),
        [P ! {stop, self()} || P <- Pids],
        Units = lists:sum([receive {busy_done, P, N} -> N end || P <- Pids]),
        {Result, Units * 1.0e9 / (now_ns() - T0)}
    after
        [exit(P, kill) || P <- Pids]
    end.

busy(N) ->
    receive
        {stop, From} -> From ! {busy_done, self(), N}
    after 0 ->
        busy_work(1000),
        busy(N + 1)
    end.

busy_work(0) -> ok;
busy_work(K) -> busy_work(K - 1).

%% (b) `receive after 1' wake-up latency while K contexts run CPU-bound Python (no Erlang load):
%% K worker contexts (one GIL: one thread runs Python at a time), or K owngil contexts (K
%% threads run Python at once). Skipped for owngil where it is not available.
wakeup_under_python(Cfg, owngil, K) ->
    case py_context:new(#{mode => owngil}) of
        {ok, Probe} -> ok = py_context:stop(Probe), wakeup_under_python(Cfg, owngil, K, "L3b");
        {error, _} -> []
    end;
wakeup_under_python(Cfg, worker, K) ->
    wakeup_under_python(Cfg, worker, K, "L3a").

wakeup_under_python(#cfg{round_ns = Dur, probes = NProbes}, Mode, K, Id) ->
    Quiet = probe(min(NProbes, 300), now_ns() + Dur),
    Ctxs = [begin {ok, C} = py_context:new(#{mode => Mode}), ok = py:exec(C, ?BURN_SRC), C end
            || _ <- lists:seq(1, K)],
    Self = self(),
    Burner = spawn_link(fun() -> Self ! {burn_result, burn_rate(Ctxs, Dur + 200000000)} end),
    try
        timer:sleep(50),
        Loaded = probe(NProbes, now_ns() + Dur),
        {_, Timeouts} = receive {burn_result, R} -> R end,
        P99 = percentile(Loaded, 99),
        [load_figure(Id, io_lib:format("receive after 1 wake-up p99, ~w ~w contexts busy in Python", [K, Mode]),
                     "ms", P99, percentile(Quiet, 99), P99, Timeouts)]
    after
        unlink(Burner),
        exit(Burner, kill),
        [py_context:stop(C) || C <- Ctxs]
    end.

%% (c) Request-path rows: each one's throughput with S busy Erlang processes, as a fraction of
%% quiet. Each entry: {Id, Label, Fun}; Fun(Deadline) makes calls until Deadline (ns) and
%% returns {Calls, Timeouts}.
load_request_rows() ->
    Text = binary:copy(<<"The quick brown fox jumps over the lazy dog. 0123456789 ABCDEFG\n">>, ?MIB div 64),
    List = lists:seq(1, 100000),
    [{"L4a", "sequential py:call(math, sqrt, [X])",
      fun(D) -> calls_until(fun(I) -> py:call(math, sqrt, [I], #{}, ?LOAD_CALL_TIMEOUT_MS) end, D) end},
     {"L4b", "8 processes py:call(math, sqrt, [X]), default pool",
      fun(D) -> concurrent_calls_until(8, fun(I) -> py:call(math, sqrt, [I], #{}, ?LOAD_CALL_TIMEOUT_MS) end, D) end},
     {"L4c", "sequential py:eval(<<\"x + 1\">>, #{x => N})",
      fun(D) -> calls_until(fun(I) -> py:eval(<<"x + 1">>, #{x => I}, ?LOAD_CALL_TIMEOUT_MS) end, D) end},
     {"L4d", "1 MiB UTF-8 binary round trip (eval x)",
      fun(D) -> calls_until(fun(_) -> py:eval(<<"x">>, #{x => Text}, ?LOAD_CALL_TIMEOUT_MS) end, D) end},
     {"L4e", "list of 100,000 integers round trip (eval x)",
      fun(D) -> calls_until(fun(_) -> py:eval(<<"x">>, #{x => List}, ?LOAD_CALL_TIMEOUT_MS) end, D) end},
     {"L4z", "reference, no Python: message round trip to an Erlang process",
      fun(D) -> erlang_round_trips_until(D) end}].

%% What the BEAM itself gives a request/reply exchange between two processes under the same
%% load: the ceiling for the rows above, which make the same kind of exchange with a thread.
erlang_round_trips_until(Deadline) ->
    Echo = spawn_link(fun Loop() -> receive {From, X} -> From ! {self(), X}, Loop(); stop -> ok end end),
    Result = calls_until(fun(I) -> Echo ! {self(), I}, receive {Echo, I} -> {ok, I} end end, Deadline),
    Echo ! stop,
    Result.

request_rows_under_load(#cfg{round_ns = Dur}, S) ->
    lists:append([request_row_under_load(Row, Dur, S) || Row <- load_request_rows()]).

request_row_under_load({Id, Label, Fun}, Dur, S) ->
    _ = Fun(now_ns() + Dur div 10),  % warm-up
    Quiet = call_rate(Fun, Dur),
    {Loaded, _} = with_busy_result(S, fun() -> call_rate(Fun, Dur) end),
    [load_figure(Id, io_lib:format("~ts, ~w busy Erlang processes", [Label, S]), "x quiet",
                 fraction(element(1, Loaded), element(1, Quiet)), element(1, Quiet), element(1, Loaded),
                 element(2, Loaded))].

%% {Calls/s, Timeouts} of Fun over Dur ns.
call_rate(Fun, Dur) ->
    T0 = now_ns(),
    {Calls, Timeouts} = Fun(T0 + Dur),
    {Calls * 1.0e9 / (now_ns() - T0), Timeouts}.

%% Calls Fun(I) until Deadline; a timeout ends the loop. {Calls, Timeouts}.
calls_until(Fun, Deadline) -> calls_until(Fun, Deadline, 0).

calls_until(Fun, Deadline, N) ->
    case Fun(N) of
        {ok, _} ->
            case (N band 7 =/= 7) orelse now_ns() < Deadline of
                true -> calls_until(Fun, Deadline, N + 1);
                false -> {N + 1, 0}
            end;
        {error, timeout} -> {N, 1}
    end.

concurrent_calls_until(NProcs, Fun, Deadline) ->
    Parent = self(),
    Pids = [spawn_link(fun() -> Parent ! {calls, self(), calls_until(Fun, Deadline)} end)
            || _ <- lists:seq(1, NProcs)],
    Results = [receive {calls, P, R} -> R end || P <- Pids],
    {lists:sum([C || {C, _} <- Results]), lists:sum([T || {_, T} <- Results])}.

%% One table row per (row id, priority): the per-round figures, and in the note the quiet and
%% loaded medians and the timeouts over all rounds.
load_rows(Prios, Default, Figures) ->
    Ids = lists:usort([lists:flatten(maps:get(id, F)) || {_, F} <- Figures]),
    [load_row(Id, P, Default, [F || {P1, F} <- Figures, P1 =:= P, lists:flatten(maps:get(id, F)) =:= Id])
     || Id <- Ids, P <- Prios].

load_row(Id, P, Default, Fs = [F | _]) ->
    Mark = case P of Default -> " (default)"; _ -> "" end,
    Timeouts = lists:sum([maps:get(timeouts, X) || X <- Fs]),
    Note = io_lib:format("quiet ~ts, loaded ~ts~ts",
                         [fmt(median([maps:get(quiet, X) || X <- Fs])),
                          fmt(median([maps:get(loaded, X) || X <- Fs])),
                          case Timeouts of 0 -> ""; _ -> io_lib:format("; ~w TIMEOUTS (~w ms)", [Timeouts, ?LOAD_CALL_TIMEOUT_MS]) end]),
    #row{id = Id, label = io_lib:format("~ts [~p~ts]", [maps:get(label, F), P, Mark]),
         unit = maps:get(unit, F), figures = [maps:get(value, X) || X <- Fs], note = Note}.

%% --- rows run in a child VM ------------------------------------------------------------------

%% Runs a row group in a separate `erl' so that a crash of the VM (a NIF bug) costs one row,
%% not the whole run. The child prints its rows as Erlang terms; rows it finished before dying
%% are kept.
isolated(Name, _Cfg) ->
    Ebins = lists:usort([filename:dirname(code:which(?MODULE)), filename:dirname(code:which(py))]),
    Cmd = lists:flatten(["erl -noshell", [[" -pa ", D] || D <- Ebins],
                         " -eval 'py_bench:child(", atom_to_list(Name), "), halt().' 2>&1; echo \"BENCH_EXIT $?\""]),
    Out = os:cmd(Cmd),
    Lines = string:split(Out, "\n", all),
    Rows = lists:append([parse_term(string:prefix(L, "BENCH_ROWS ")) || L <- Lines,
                         string:prefix(L, "BENCH_ROWS ") =/= nomatch]),
    Exit = lists:last([string:trim(string:prefix(L, "BENCH_EXIT ")) || L <- Lines,
                       string:prefix(L, "BENCH_EXIT ") =/= nomatch]),
    case Exit of
        "0" -> last_rows(Rows);
        Code ->
            Why = case Code of
                      "139" -> "child VM died of SIGSEGV (exit 139)";
                      _ -> "child VM exited with status " ++ Code
                  end,
            io:format(standard_error, "  ~s~n  child output (tail): ~ts~n",
                      [Why, lists:join("\n  ", lists:nthtail(max(0, length(Lines) - 8), Lines))]),
            Partial = last_rows(Rows),
            [#row{id = "7a", label = "map round trip", unit = "ms", error = Why} | Partial]
    end.

parse_term(Text) ->
    {ok, Tokens, _} = erl_scan:string(Text),
    {ok, Term} = erl_parse:parse_term(Tokens),
    [Term].

%% The child prints partial rows first and the full list last; keep the last report.
last_rows([]) -> [];
last_rows(Reports) -> lists:last(Reports).

emit_partial(Rows) ->
    case get(bench_child) of
        true -> io:format("BENCH_ROWS ~0p.~n", [[flat_row(R) || R <- Rows]]);
        _ -> ok
    end.

flat_row(R = #row{label = L, note = N}) -> R#row{label = lists:flatten(L), note = lists:flatten(N)}.

%% @private Entry point of the child VM.
child(map) ->
    put(bench_child, true),
    Cfg = config(),
    {ok, _} = application:ensure_all_started(erlang_python),
    Rows = bench_map(Cfg),
    io:format("BENCH_ROWS ~0p.~n", [[flat_row(R) || R <- Rows]]).

%% --- measuring --------------------------------------------------------------------------------

now_ns() -> erlang:monotonic_time(nanosecond).

%% Calls Fun(I) in batches of Batch until Dur ns have elapsed: {Ops, ElapsedNs}.
timed(Fun, Batch, Dur) ->
    T0 = now_ns(),
    N = run_until(Fun, Batch, T0 + Dur, 0),
    {N, now_ns() - T0}.

repeat(_Fun, 0) -> ok;
repeat(Fun, K) -> Fun(K), repeat(Fun, K - 1).

rate({N, Ns}) -> N * 1.0e9 / Ns.
ms_per_op({N, Ns}) -> Ns / N / 1.0e6.

check(Expected, Expected) -> ok;
check(Expected, Got) -> error({unexpected_result, Expected, Got}).

clk_tck() ->
    case string:to_integer(string:trim(os:cmd("getconf CLK_TCK"))) of
        {T, _} when is_integer(T), T > 0 -> T;
        _ -> 100
    end.

%% utime + stime of this OS process, in clock ticks.
proc_cpu_ticks() ->
    cpu_ticks("/proc/self/stat").

%% The position (1-based) of X in List.
index_of(X, List) ->
    length(lists:takewhile(fun(Y) -> Y =/= X end, List)) + 1.

%% utime + stime in clock ticks from a /proc stat file (a process's, or a thread's under task/).
cpu_ticks(StatFile) ->
    {User, Sys} = user_sys_ticks(StatFile),
    User + Sys.

%% {utime, stime} in clock ticks from a /proc stat file.
user_sys_ticks(StatFile) ->
    {ok, Stat} = file:read_file(StatFile),
    %% The command name (field 2) is in parentheses and may contain spaces: split after it.
    [_, Rest] = binary:split(Stat, <<") ">>, [trim_all]),
    Fields = binary:split(Rest, <<" ">>, [global]),
    %% Rest starts at field 3 (state); utime and stime are fields 14 and 15.
    {binary_to_integer(lists:nth(12, Fields)), binary_to_integer(lists:nth(13, Fields))}.

proc_status_kb(Key) ->
    {ok, Status} = file:read_file("/proc/self/status"),
    KeyB = list_to_binary(Key ++ ":"),
    [Line] = [L || L <- binary:split(Status, <<"\n">>, [global]), binary:longest_common_prefix([L, KeyB]) =:= byte_size(KeyB)],
    [_, Value | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Value).

median(Xs) -> percentile(Xs, 50).

percentile([], _) -> 0;
percentile(Xs, P) ->
    Sorted = lists:sort(Xs),
    N = length(Sorted),
    lists:nth(max(1, min(N, ceil(P * N / 100))), Sorted).

%% --- output ------------------------------------------------------------------------------------

row_cells(#row{id = Id, label = Label, unit = Unit, figures = Fs, note = Note, error = undefined}) ->
    Spread = case Fs of
                 [_] -> "-";
                 _ -> fmt(lists:min(Fs)) ++ ".." ++ fmt(lists:max(Fs))
             end,
    [Id, lists:flatten(Label), Unit, fmt(median(Fs)), Spread, lists:flatten(Note)];
row_cells(#row{id = Id, label = Label, error = Err}) ->
    [Id, lists:flatten(Label), "-", "error", "-", lists:flatten(io_lib:format("~0p", [Err]))].

-define(COLUMNS, ["#", "Benchmark", "Unit", "Median", "Min..Max", "Note"]).

text_table(Rows) ->
    Cells = [?COLUMNS | [row_cells(R) || R <- Rows]],
    Widths = [lists:max([string:length(lists:nth(I, C)) || C <- Cells]) || I <- lists:seq(1, length(?COLUMNS))],
    Align = [left, left, left, right, right, left],
    Line = fun(C) ->
        Parts = [pad(Text, W, A) || {Text, W, A} <- lists:zip3(C, Widths, Align)],
        string:trim(lists:join("  ", Parts), trailing)
    end,
    Sep = lists:join("  ", [lists:duplicate(W, $-) || W <- Widths]),
    [H | Body] = Cells,
    lists:join("\n", [Line(H), Sep | [Line(C) || C <- Body]]).

pad(Text, W, left) -> string:pad(Text, W, trailing);
pad(Text, W, right) -> string:pad(Text, W, leading).

write_markdown(Header, Rows, Footer) ->
    Esc = fun(S) -> string:replace(S, "|", "\\|", all) end,
    Line = fun(C) -> ["| ", lists:join(" | ", [Esc(X) || X <- C]), " |\n"] end,
    Md = ["# erlang_python benchmark results\n\n", Header, "\n\n",
          "Median of the per-round figures, spread = min..max over rounds (after one warm-up round).\n\n",
          Line(?COLUMNS), "|---|---|---|---:|---:|---|\n", [Line(row_cells(R)) || R <- Rows],
          "\n", Footer, "\n"],
    ok = filelib:ensure_dir(?RESULTS_FILE),
    ok = file:write_file(?RESULTS_FILE, unicode:characters_to_binary(Md)).

%% Numbers: thousands grouped above 1000, otherwise 3 significant digits or so.
fmt(X) when is_integer(X) -> group(X);
fmt(X) when X >= 1000 -> group(round(X));
fmt(X) when X >= 100 -> float_to_list(X * 1.0, [{decimals, 1}]);
fmt(X) when X >= 10 -> float_to_list(X * 1.0, [{decimals, 2}]);
fmt(X) -> float_to_list(X * 1.0, [{decimals, 3}]).

group(N) when N < 0 -> "-" ++ group(-N);
group(N) ->
    S = integer_to_list(N),
    Lead = length(S) rem 3,
    {H, T} = lists:split(Lead, S),
    lists:flatten(lists:join(",", [H || H =/= ""] ++ chunks3(T))).

chunks3([]) -> [];
chunks3([A, B, C | T]) -> [[A, B, C] | chunks3(T)].
