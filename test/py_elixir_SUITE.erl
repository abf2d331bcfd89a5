%% -*- coding: utf-8 -*-
%% Elixir: runs test/elixir/smoke.exs with the `elixir' command against this build (its ebin
%% and priv), and checks its exit status and output. Skipped when `elixir' is not installed
%% (Debian: `apt-get install elixir'; `make deps' installs it).
-module(py_elixir_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([smoke_script/1, smoke_script_fails_loudly/1]).

-define(config(Key, Config), proplists:get_value(Key, Config)).
-define(RUN_TIMEOUT, 120000).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [smoke_script, smoke_script_fails_loudly].

init_per_suite(Config) ->
    case os:find_executable("elixir") of
        false ->
            {skip, "elixir is not installed (apt-get install elixir, or make deps)"};
        Elixir ->
            case script() of
                {ok, Script} ->
                    Version = run(Elixir, ["--version"], []),
                    ct:pal("~ts", [element(2, Version)]),
                    [{elixir, Elixir}, {script, Script} | Config];
                error ->
                    {skip, "test/elixir/smoke.exs not found"}
            end
    end.

end_per_suite(_Config) ->
    ok.

%% The script against the ebin this suite runs with.
smoke_script(Config) ->
    Ebin = code:lib_dir(erlang_python, ebin),
    {Micros, {Status, Out}} =
        timer:tc(fun() -> run(?config(elixir, Config), [?config(script, Config), Ebin], []) end),
    ct:pal("elixir ~ts ~ts (exit status ~w, ~.1f s):~n~ts",
           [?config(script, Config), Ebin, Status, Micros / 1.0e6, Out]),
    0 = Status,
    {match, [Passed]} = re:run(Out, "elixir smoke: ([0-9]+) passed, 0 failed", [{capture, all_but_first, list}]),
    true = list_to_integer(Passed) >= 10,
    nomatch = re:run(Out, "^FAIL", [multiline]).

%% Without a usable ebin the script stops with a non-zero status (it does not pass vacuously).
smoke_script_fails_loudly(Config) ->
    Missing = filename:join(?config(priv_dir, Config), "no_such_ebin"),
    {Status, Out} = run(?config(elixir, Config), [?config(script, Config), Missing], []),
    ct:pal("exit status ~w:~n~ts", [Status, Out]),
    true = Status =/= 0.

%% --- helpers ------------------------------------------------------------------------------------

%% test/elixir/smoke.exs: beside this suite's source (the repository's test/), or in the copy
%% rebar3 makes of test/ under _build.
script() ->
    Dirs = [filename:dirname(?FILE),
            filename:dirname(code:which(?MODULE)),
            filename:join(code:lib_dir(erlang_python), "test")],
    Found = [P || D <- Dirs, P <- [filename:join([D, "elixir", "smoke.exs"])], filelib:is_regular(P)],
    case Found of
        [Script | _] -> {ok, Script};
        [] -> error
    end.

%% Runs Exe with Args, returns {ExitStatus, Output} (stdout and stderr together).
run(Exe, Args, Env) ->
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, {env, Env}, exit_status, stderr_to_stdout, binary, hide]),
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, [Acc, Data]);
        {Port, {exit_status, Status}} -> {Status, unicode:characters_to_list(iolist_to_binary(Acc))}
    after ?RUN_TIMEOUT ->
        catch port_close(Port),
        ct:fail({elixir_timeout, unicode:characters_to_list(iolist_to_binary(Acc))})
    end.
