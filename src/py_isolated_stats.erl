%% @private
%% @doc The statistics of an isolated context (py_context:stats/1), kept by its context process
%% (py_isolated): the counters of the in-process modes, and the queue wait and run time of its
%% requests in histograms with the buckets of c_src/context/stats.hpp (a quarter of a power of
%% two wide), so that the figures read the same way.
-module(py_isolated_stats).

-export([new/0, submitted/2, sent/2, answered/3, forgotten/2, count/2, snapshot/2]).

-export_type([stats/0]).

-type counter() :: submitted | served | errors | timeouts | abandoned | interrupts | callbacks.
-opaque stats() :: #{counters := #{counter() => non_neg_integer()},
                     queue_wait := histogram(), run_time := histogram(),
                     %% per request in flight: when it was submitted, or sent to the child
                     since := #{reference() => {queued | sent, integer()}}}.
-type histogram() :: {#{non_neg_integer() => pos_integer()}, non_neg_integer()}.

-spec new() -> stats().
new() ->
    #{counters => maps:from_list([{K, 0} || K <- [submitted, served, errors, timeouts, abandoned,
                                                  interrupts, callbacks]]),
      queue_wait => {#{}, 0}, run_time => {#{}, 0}, since => #{}}.

%% Request Id was accepted by the context.
-spec submitted(reference(), stats()) -> stats().
submitted(Id, #{since := Since} = Stats) ->
    count(submitted, Stats#{since := Since#{Id => {queued, now_ns()}}}).

%% Request Id was written to the child: its queue wait ends.
-spec sent(reference(), stats()) -> stats().
sent(Id, #{since := Since, queue_wait := QW} = Stats) ->
    case Since of
        #{Id := {queued, T}} ->
            Now = now_ns(),
            Stats#{since := Since#{Id := {sent, Now}}, queue_wait := record(Now - T, QW)};
        _ ->
            Stats
    end.

%% The child answered request Id with Result: its run time ends.
-spec answered(reference(), term(), stats()) -> stats().
answered(Id, Result, #{since := Since, run_time := RT} = Stats) ->
    case maps:take(Id, Since) of
        {{sent, T}, Rest} ->
            Counted = count(served, Stats#{since := Rest, run_time := record(now_ns() - T, RT)}),
            case Result of
                {error, _} -> count(errors, Counted);
                _ -> Counted
            end;
        {_, Rest} ->
            Stats#{since := Rest};
        error ->
            Stats
    end.

%% Request Id will not be answered by the child (its caller gave up, or the child died).
-spec forgotten(reference(), stats()) -> stats().
forgotten(Id, #{since := Since} = Stats) ->
    Stats#{since := maps:remove(Id, Since)}.

-spec count(counter(), stats()) -> stats().
count(Key, #{counters := Counters} = Stats) ->
    Stats#{counters := maps:update_with(Key, fun(N) -> N + 1 end, Counters)}.

%% The figures in the shape of py_context:stats/1, with Extra (the context's own keys) added.
-spec snapshot(stats(), map()) -> map().
snapshot(#{counters := Counters, queue_wait := QW, run_time := RT}, Extra) ->
    maps:merge(Counters#{queue_wait_us => latency(QW), run_time_us => latency(RT)}, Extra).

%% --- histograms ----------------------------------------------------------------------------

record(Ns, {Buckets, Max}) ->
    Upper = upper(max(0, Ns)),
    {maps:update_with(Upper, fun(N) -> N + 1 end, 1, Buckets), max(Max, Ns)}.

%% The largest duration of the bucket Ns falls in: [2^k (1 + j/4), 2^k (1 + (j+1)/4)).
upper(Ns) when Ns < 4 ->
    Ns;
upper(Ns) ->
    K = bit_length(Ns) - 1,
    Sub = (Ns bsr (K - 2)) band 3,
    (1 bsl K) + ((Sub + 1) bsl (K - 2)) - 1.

bit_length(N) -> bit_length(N, 0).
bit_length(0, Bits) -> Bits;
bit_length(N, Bits) -> bit_length(N bsr 1, Bits + 1).

%% #{count, p50, p99, max} in microseconds, as py_observe gives them for in-process contexts.
latency({Buckets, Max}) ->
    Sorted = lists:keysort(1, maps:to_list(Buckets)),
    Count = lists:sum([N || {_, N} <- Sorted]),
    #{count => Count, p50 => us(min(percentile(Sorted, Count, 50), Max)),
      p99 => us(min(percentile(Sorted, Count, 99), Max)), max => us(Max)}.

percentile(_Sorted, 0, _P) -> 0;
percentile(Sorted, Count, P) -> rank(Sorted, max(1, (Count * P + 99) div 100), 0).

rank([{Upper, N} | Rest], Rank, Seen) ->
    case Seen + N >= Rank of
        true -> Upper;
        false -> rank(Rest, Rank, Seen + N)
    end;
rank([], _Rank, _Seen) -> 0.

us(Ns) -> (Ns + 999) div 1000.

now_ns() -> erlang:monotonic_time(nanosecond).
