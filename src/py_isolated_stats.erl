%% @private
%% @doc The statistics of an isolated context (py_context:stats/1), kept by its context process
%% (py_isolated): the counters of the in-process modes, and the queue wait and run time of its
%% requests in histograms with the buckets of c_src/context/stats.hpp (a quarter of a power of
%% two wide), so that the figures read the same way.
-module(py_isolated_stats).

-export([new/0, submitted/2, sent/2, answered/3, forgotten/2, count/2, snapshot/2]).

-export_type([stats/0]).

-type counter() :: submitted | served | errors | timeouts | abandoned | interrupts | callbacks.
-type histogram() :: #{non_neg_integer() => pos_integer()}.
%% since: per request in flight, when it was submitted, or sent to the child (ns).
-record(stats, {submitted = 0 :: non_neg_integer(), served = 0 :: non_neg_integer(),
                errors = 0 :: non_neg_integer(), timeouts = 0 :: non_neg_integer(),
                abandoned = 0 :: non_neg_integer(), interrupts = 0 :: non_neg_integer(),
                callbacks = 0 :: non_neg_integer(),
                queue_wait = #{} :: histogram(), queue_wait_max = 0 :: non_neg_integer(),
                run_time = #{} :: histogram(), run_time_max = 0 :: non_neg_integer(),
                since = #{} :: #{reference() => {queued | sent, integer()}}}).
-opaque stats() :: #stats{}.

-spec new() -> stats().
new() ->
    #stats{}.

%% Request Id was accepted by the context.
-spec submitted(reference(), stats()) -> stats().
submitted(Id, #stats{submitted = N, since = Since} = Stats) ->
    Stats#stats{submitted = N + 1, since = Since#{Id => {queued, now_ns()}}}.

%% Request Id was written to the child: its queue wait ends.
-spec sent(reference(), stats()) -> stats().
sent(Id, #stats{since = Since, queue_wait = QW, queue_wait_max = Max} = Stats) ->
    case Since of
        #{Id := {queued, T}} ->
            Now = now_ns(),
            Wait = Now - T,
            Stats#stats{since = Since#{Id := {sent, Now}}, queue_wait = record(Wait, QW),
                        queue_wait_max = max(Max, Wait)};
        _ ->
            Stats
    end.

%% The child answered request Id with Result: its run time ends.
-spec answered(reference(), term(), stats()) -> stats().
answered(Id, Result, #stats{since = Since} = Stats) ->
    case maps:take(Id, Since) of
        {{sent, T}, Rest} ->
            #stats{served = Served, errors = Errors, run_time = RT, run_time_max = Max} = Stats,
            Run = now_ns() - T,
            Failed = case Result of
                         {error, _} -> 1;
                         _ -> 0
                     end,
            Stats#stats{since = Rest, served = Served + 1, errors = Errors + Failed,
                        run_time = record(Run, RT), run_time_max = max(Max, Run)};
        {_, Rest} ->
            Stats#stats{since = Rest};
        error ->
            Stats
    end.

%% Request Id will not be answered by the child (its caller gave up, or the child died).
-spec forgotten(reference(), stats()) -> stats().
forgotten(Id, #stats{since = Since} = Stats) when map_size(Since) > 0 ->
    Stats#stats{since = maps:remove(Id, Since)};
forgotten(_Id, Stats) ->
    Stats.

-spec count(counter(), stats()) -> stats().
count(submitted, #stats{submitted = N} = S) -> S#stats{submitted = N + 1};
count(served, #stats{served = N} = S) -> S#stats{served = N + 1};
count(errors, #stats{errors = N} = S) -> S#stats{errors = N + 1};
count(timeouts, #stats{timeouts = N} = S) -> S#stats{timeouts = N + 1};
count(abandoned, #stats{abandoned = N} = S) -> S#stats{abandoned = N + 1};
count(interrupts, #stats{interrupts = N} = S) -> S#stats{interrupts = N + 1};
count(callbacks, #stats{callbacks = N} = S) -> S#stats{callbacks = N + 1}.

%% The figures in the shape of py_context:stats/1, with Extra (the context's own keys) added.
-spec snapshot(stats(), map()) -> map().
snapshot(#stats{} = S, Extra) ->
    maps:merge(#{submitted => S#stats.submitted, served => S#stats.served, errors => S#stats.errors,
                 timeouts => S#stats.timeouts, abandoned => S#stats.abandoned,
                 interrupts => S#stats.interrupts, callbacks => S#stats.callbacks,
                 queue_wait_us => latency(S#stats.queue_wait, S#stats.queue_wait_max),
                 run_time_us => latency(S#stats.run_time, S#stats.run_time_max)},
               Extra).

%% --- histograms ----------------------------------------------------------------------------

record(Ns, Buckets) ->
    Upper = upper(max(0, Ns)),
    case Buckets of
        #{Upper := N} -> Buckets#{Upper := N + 1};
        _ -> Buckets#{Upper => 1}
    end.

%% The largest duration of the bucket Ns falls in: [2^k (1 + j/4), 2^k (1 + (j+1)/4)).
upper(Ns) when Ns < 4 ->
    Ns;
upper(Ns) ->
    K = top_bit(Ns),
    Sub = (Ns bsr (K - 2)) band 3,
    (1 bsl K) + ((Sub + 1) bsl (K - 2)) - 1.

%% The index of the highest bit set in N > 0 (a halving search: durations fit in 64 bits).
top_bit(N) -> top_bit(N, 0, 32).

top_bit(_N, Bit, 0) -> Bit;
top_bit(N, Bit, Step) when N bsr (Bit + Step) > 0 -> top_bit(N, Bit + Step, Step div 2);
top_bit(N, Bit, Step) -> top_bit(N, Bit, Step div 2).

%% #{count, p50, p99, max} in microseconds, as py_observe gives them for in-process contexts.
latency(Buckets, Max) ->
    py_observe:latency(lists:keysort(1, maps:to_list(Buckets)), Max).

%% Native units are nanoseconds on Linux; converted all the same (a shift or a no-op).
now_ns() -> erlang:convert_time_unit(erlang:monotonic_time(), native, nanosecond).
