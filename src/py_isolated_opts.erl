%% @private
%% @doc The options of an isolated context (`py_context:new(#{mode => isolated, ...})'),
%% checked before anything starts: unknown keys and bad values are refused with the same
%% `{error, {unknown_option, Key}}' and `{error, {invalid_option, {Key, Value}}}' as the other
%% modes, and a limit the kernel would not enforce is refused rather than ignored.
-module(py_isolated_opts).

-export([check/1, limit_keys/0]).

-define(LIMIT_KEYS, [memory, cpu_seconds, open_files, processes]).

%% @doc ok, or why the options cannot start an isolated context.
-spec check(map()) -> ok | {error, term()}.
check(Opts) ->
    check_options(Opts).

%% @doc The keys of the `limits' option, in the order py_child takes them on its command line.
-spec limit_keys() -> [atom()].
limit_keys() ->
    ?LIMIT_KEYS.

check_options(Opts) ->
    Known = [mode, preload, limits, restart, kill_after, network, spin],
    case [K || K <- lists:sort(maps:keys(Opts)), not lists:member(K, Known)] of
        [Key | _] -> {error, {unknown_option, Key}};
        [] -> check_values(Opts)
    end.

check_values(Opts) ->
    Limits = maps:get(limits, Opts, #{}),
    Checks = [{restart, is_boolean(maps:get(restart, Opts, true))},
              {network, is_boolean(maps:get(network, Opts, true))},
              {spin, is_boolean(maps:get(spin, Opts, true))},
              {kill_after, is_integer(maps:get(kill_after, Opts, 0)) andalso maps:get(kill_after, Opts, 0) >= 0},
              {limits, is_map(Limits)}],
    case [K || {K, false} <- Checks] of
        [Bad | _] -> {error, {invalid_option, {Bad, maps:get(Bad, Opts)}}};
        [] -> check_limits(Limits)
    end.

check_limits(Limits) ->
    Bad = [{K, V} || {K, V} <- maps:to_list(Limits), not (lists:member(K, ?LIMIT_KEYS) andalso is_integer(V) andalso V > 0)],
    case Bad of
        [KV | _] -> {error, {invalid_option, {limits, KV}}};
        [] ->
            case maps:is_key(processes, Limits) andalso running_as_root() of
                %% Linux does not apply RLIMIT_NPROC to root (nor to CAP_SYS_RESOURCE holders).
                true -> {error, {limit_unenforceable, processes}};
                false -> ok
            end
    end.

running_as_root() ->
    case file:read_file("/proc/self/status") of
        {ok, Status} -> re:run(Status, <<"^Uid:\\s+0\\s">>, [multiline]) =/= nomatch;
        {error, _} -> false
    end.
