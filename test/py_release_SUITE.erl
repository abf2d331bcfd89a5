%% @doc Which Python a node runs is chosen when it starts (py_runtime), and a release can carry
%% its own (scripts/bundle_python.sh): each case starts fresh `erl' nodes as OS processes, since
%% the test node has its Python loaded already.
%%   home_chosen_at_run_time    ERLANG_PYTHON_HOME names the build's Python: used, calls work.
%%   missing_python_is_an_error a home without Python: application start is {error, Sentence},
%%                              the node keeps running.
%%   wrong_minor_refused        the libpython of another minor version: refused by name.
%%   release_carries_python     `rebar3 release' of an app depending on this one (through
%%                              _checkouts), bundled, moved elsewhere, booted in a private mount
%%                              namespace where the build's Python and this repository are hidden
%%                              (tmpfs / bind mounts): calls work; the same release without the
%%                              bundle fails to boot with the sentence. Needs root and unshare;
%%                              skipped under ASan (the release's NIF would need the ASan runtime).
-module(py_release_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([home_chosen_at_run_time/1, missing_python_is_an_error/1, wrong_minor_refused/1,
         release_carries_python/1]).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [home_chosen_at_run_time, missing_python_is_an_error, wrong_minor_refused, release_carries_python].

init_per_suite(Config) ->
    Ebin = filename:dirname(code:which(py_runtime)),
    Work = string:trim(os:cmd("mktemp -d /tmp/py_release_SUITE.XXXXXX")),
    Src = filename:join(?config(data_dir, Config), "release_check.erl"),
    {ok, release_check} = compile:file(Src, [{outdir, Work}, report]),
    Priv = code:priv_dir(erlang_python),
    Build = read_build_info(filename:join(Priv, "python_build.txt")),
    [{ebin, Ebin}, {work, Work}, {build, Build} | Config].

end_per_suite(Config) ->
    _ = os:cmd("rm -rf '" ++ ?config(work, Config) ++ "'"),
    ok.

home_chosen_at_run_time(Config) ->
    #{prefix := Prefix} = ?config(build, Config),
    Checks = start_app(Config, [{"ERLANG_PYTHON_HOME", Prefix}]),
    {ok, [erlang_python]} = maps:get(start, Checks),
    {ok, Home} = maps:get(prefix, Checks),
    Prefix = binary_to_list(Home).

missing_python_is_an_error(Config) ->
    Checks = start_app(Config, [{"ERLANG_PYTHON_HOME", "/nonexistent/python"}]),
    {error, {erlang_python, {{python_unavailable, Why}, _}}} = maps:get(start, Checks),
    ct:pal("~ts", [Why]),
    match(Why, "looked for its libpython at /nonexistent/python/lib/"),
    match(Why, "ERLANG_PYTHON_HOME"),
    true = maps:get(alive, Checks).

wrong_minor_refused(Config) ->
    #{version := Version} = ?config(build, Config),
    case other_minor_libpython(major_minor(Version)) of
        none ->
            {skip, "no libpython of another minor version on this machine"};
        Lib ->
            Checks = start_app(Config, [{"ERLANG_PYTHON_LIBPYTHON", Lib}]),
            {error, {erlang_python, {{python_unavailable, Why}, _}}} = maps:get(start, Checks),
            ct:pal("~ts", [Why]),
            match(Why, "needs a " ++ major_minor(Version) ++ ".x"),
            true = maps:get(alive, Checks)
    end.

release_carries_python(Config) ->
    case release_preconditions() of
        ok -> release_carries_python_(Config);
        {skip, _} = Skip -> Skip
    end.

release_carries_python_(Config) ->
    Work = ?config(work, Config),
    Repo = repo_root(),
    Project = filename:join(Work, "project"),
    ok = filelib:ensure_dir(filename:join([Project, "_checkouts", "x"])),
    ok = file:make_symlink(Repo, filename:join([Project, "_checkouts", "erlang_python"])),
    ok = file:write_file(filename:join(Project, "rebar.config"),
                         "{deps, [erlang_python]}.\n"
                         "{relx, [{release, {pyrel, \"0.1.0\"}, [erlang_python]},\n"
                         "        {dev_mode, false}, {include_erts, true}, {include_src, false}]}.\n"),
    {0, _} = run(Project, os:find_executable("rebar3"), ["release"], []),
    Built = filename:join([Project, "_build", "default", "rel", "pyrel"]),
    %% Moved away from where it was built, once without and once with the Python.
    Bare = filename:join(Work, "bare"),
    Moved = filename:join(Work, "moved"),
    {0, _} = run(Work, "/bin/cp", ["-a", Built, Bare], []),
    {0, Out} = run(Work, filename:join(Repo, "scripts/bundle_python.sh"), [Built], []),
    ct:pal("~ts", [Out]),
    {0, _} = run(Work, "/bin/mv", [Built, Moved], []),
    Hidden = hidden_paths(?config(build, Config), Repo, Project),
    ct:pal("hidden in the boot namespace: ~p", [Hidden]),
    Checks = boot_hidden(Moved, Hidden, Work, ["-s", "release_check", "calls"]),
    {ok, Prefix} = maps:get(prefix, Checks),
    true = lists:prefix(Moved, binary_to_list(Prefix)),
    {ok, 4.0} = maps:get(sqrt, Checks),
    {ok, <<"{\"a\": [1, 2]}">>} = maps:get(json, Checks),
    {ok, <<"slept">>} = maps:get(asyncio, Checks),
    %% Without the bundle the build's Python is what it looks for, and it is hidden.
    {_, BareOut} = boot_hidden_raw(Bare, Hidden, Work, ["-s", "release_check", "calls"]),
    ct:pal("bare release:~n~ts", [BareOut]),
    match(BareOut, "python_unavailable"),
    match(BareOut, "bundle_python.sh").

%% --- helpers ---------------------------------------------------------------------------------

start_app(Config, Env) ->
    Erl = os:find_executable("erl"),
    {_, Out} = run(?config(work, Config), Erl,
                   ["-noshell", "-pa", ?config(ebin, Config), "-pa", ?config(work, Config),
                    "-kernel", "logger_level", "none", "-s", "release_check", "start_app"],
                   Env),
    checks(Out).

boot_hidden(Release, Hidden, Work, Args) ->
    {0, Out} = boot_hidden_raw(Release, Hidden, Work, Args),
    checks(Out).

%% erts/bin/erl of the release, with its boot script and sys.config, in a private mount
%% namespace where every path of Hidden is covered (a directory by a tmpfs, a file by
%% /dev/null).
boot_hidden_raw(Release, Hidden, Work, Args) ->
    [Erts] = filelib:wildcard(filename:join(Release, "erts-*")),
    [Boot] = filelib:wildcard(filename:join([Release, "releases", "*", "start.boot"])),
    RelDir = filename:dirname(Boot),
    Mounts = [case filelib:is_dir(P) of
                  true -> "mount -t tmpfs none " ++ quote(P);
                  false -> "mount --bind /dev/null " ++ quote(P)
              end || P <- Hidden],
    Erl = string:join([quote(filename:join([Erts, "bin", "erl"])),
                       "-boot", quote(filename:join(RelDir, "start")),
                       "-config", quote(filename:join(RelDir, "sys")),
                       "-noshell", "-pa", quote(Work) | [quote(A) || A <- Args]], " "),
    Script = string:join(Mounts ++ ["exec " ++ Erl], " && "),
    run(Work, os:find_executable("unshare"), ["--mount", "--propagation", "private", "sh", "-c", Script], []).

%% The build's Python (its prefix, or for a system Python its standard library and libpython
%% file) and this repository (with its _build).
hidden_paths(#{prefix := Prefix, stdlib := Stdlib, libpython := Lib}, Repo, Project) ->
    Python = case Prefix of
                 "/usr" -> [Stdlib, Lib];
                 _ -> [Prefix]
             end,
    Python ++ [Repo, Project].

release_preconditions() ->
    Root = string:trim(os:cmd("id -u")) =:= "0",
    Unshare = os:find_executable("unshare") =/= false,
    Rebar = os:find_executable("rebar3") =/= false,
    Asan = os:getenv("ASAN_OPTIONS") =/= false,
    if
        Asan -> {skip, "under ASan: the release's NIF needs the ASan runtime preloaded"};
        not Root -> {skip, "needs root for a private mount namespace"};
        not Unshare -> {skip, "no unshare"};
        not Rebar -> {skip, "no rebar3"};
        true ->
            case os:cmd("unshare --mount --propagation private true 2>&1; echo $?") of
                "0\n" -> ok;
                Other -> {skip, "unshare --mount fails here: " ++ Other}
            end
    end.

repo_root() ->
    %% priv in _build/<profile>/lib/erlang_python is a link to the repository's priv.
    Priv = code:priv_dir(erlang_python),
    filename:dirname(string:trim(os:cmd("readlink -f " ++ quote(Priv)))).

other_minor_libpython(Wanted) ->
    Root = string:trim(os:cmd("pyenv root 2>/dev/null")),
    Candidates = filelib:wildcard(filename:join([Root, "versions", "*", "lib", "libpython3.*.so.1.0"])) ++
                 filelib:wildcard("/usr/lib/*/libpython3.*.so.1.0"),
    Own = "libpython" ++ Wanted ++ ".so.1.0",
    case [C || C <- Candidates, filename:basename(C) =/= Own, string:find(filename:basename(C), "m.so") =:= nomatch] of
        [First | _] -> First;
        [] -> none
    end.

read_build_info(File) ->
    {ok, Bin} = file:read_file(File),
    maps:from_list([{list_to_atom(K), V} || Line <- string:split(binary_to_list(Bin), "\n", all),
                                           [K, V] <- [string:split(Line, "=")]]).

major_minor(Version) ->
    [Major, Minor | _] = string:split(Version, ".", all),
    Major ++ "." ++ Minor.

checks(Out) ->
    maps:from_list([{list_to_atom(Tag), binary_to_term(base64:decode(Value))}
                    || Line <- string:split(Out, "\n", all),
                       ["CHECK", Tag, Value] <- [string:lexemes(Line, " ")]]).

match(Text, Part) ->
    case string:find(Text, Part) of
        nomatch -> ct:fail({missing, Part, Text});
        _ -> ok
    end.

quote(S) -> "'" ++ S ++ "'".

%% Runs Exe with Args in Dir (no shell), with Env added; returns {ExitStatus, Output}.
run(Dir, Exe, Args, Env) ->
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, {cd, Dir}, {env, Env}, exit_status, stderr_to_stdout, binary, hide]),
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, [Data | Acc]);
        {Port, {exit_status, Status}} -> {Status, unicode:characters_to_list(lists:reverse(Acc))}
    after 240000 ->
        ct:fail({no_exit, lists:reverse(Acc)})
    end.
