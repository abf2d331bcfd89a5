%% @doc Which Python the node runs, chosen when the application starts.
%%
%% The NIF library (priv/py_nif.so) was built against one Python; the copy it loads is chosen
%% at run time, in this order:
%% <ol>
%%   <li>the application environment: `{python_home, Dir}' (a Python installation prefix,
%%       holding `lib/pythonX.Y/' and the libpython) or `{libpython, File}';</li>
%%   <li>the OS environment variables `ERLANG_PYTHON_HOME' or `ERLANG_PYTHON_LIBPYTHON';</li>
%%   <li>a Python bundled into this application's priv directory (`priv/python/', put there by
%%       `scripts/bundle_python.sh' when building a release);</li>
%%   <li>the Python it was built against, where it was at build time.</li>
%% </ol>
%% A Python of another minor version than the build's is refused. When no usable Python is
%% found, `application:start(erlang_python)' returns `{error, {{python_unavailable, Why}, _}}'
%% where `Why' says which Python it looked for, where, and how to point it elsewhere; the node
%% itself keeps running. See docs/installation.md.
-module(py_runtime).

-export([load/0, choice/0]).

-export_type([choice/0]).

-type source() :: app_env | os_env | bundled | build.
-type choice() :: #{libpython := file:filename(),
                    home := file:filename() | undefined,
                    source := source(),
                    built_against := binary()}.

-define(ADVICE,
        "Choose a Python when the node starts with the application environment "
        "{erlang_python, [{python_home, Dir}]} (or {libpython, File}), the environment variable "
        "ERLANG_PYTHON_HOME (or ERLANG_PYTHON_LIBPYTHON), or bundle one into the release with "
        "scripts/bundle_python.sh (docs/installation.md).").

%% @doc Loads the chosen Python and the NIF library. `ok' when they are loaded (also when they
%% were already); else `{error, {python_unavailable, Why}}' with a sentence for a person.
%% Called by the application's start.
-spec load() -> ok | {error, {python_unavailable, string()}}.
load() ->
    case nif_status() of
        ok -> ok;
        {error, Why} -> unavailable("Python did not start: ~ts", [Why]);
        not_loaded -> load_now()
    end.

%% @doc The Python that {@link load/0} would load, or has loaded: its libpython, its home
%% (`undefined' when CPython finds its standard library from the build's executable), where the
%% choice came from, and the version this library was built against.
-spec choice() -> {ok, choice()} | {error, {python_unavailable, string()}}.
choice() ->
    case py_boot:load(priv_dir()) of
        ok -> choose(py_boot:build_info());
        {error, Reason} -> unavailable("cannot load ~ts: ~tp", [filename:join(priv_dir(), "py_boot.so"), Reason])
    end.

load_now() ->
    Result = maybe_load(choice()),
    case Result of
        ok -> warn_if_python_config_changed();
        _ -> ok
    end,
    Result.

%% rebar3 and Mix build a dependency once: a PYTHON_CONFIG changed since then is not used until
%% the dependency is rebuilt. Say so when the node starts with it set to another one.
warn_if_python_config_changed() ->
    #{python_config := Built} = py_boot:build_info(),
    case os:getenv("PYTHON_CONFIG") of
        Now when is_list(Now), Now =/= "" ->
            case unicode:characters_to_binary(Now) of
                Built -> ok;
                _ -> logger:warning("erlang_python was built with PYTHON_CONFIG=~ts, but PYTHON_CONFIG is now ~ts: "
                                    "rebuild it (rm -rf _build/default/lib/erlang_python, or rebar3 clean -a) to "
                                    "use that Python", [Built, Now])
            end;
        _ -> ok
    end.

maybe_load({error, _} = Error) ->
    Error;
maybe_load({ok, #{libpython := Lib, home := Home, source := Source, built_against := Built} = Choice}) ->
    Wanted = major_minor(Built),
    case check_files(Choice) of
        {no_lib, Lib} ->
            unavailable("erlang_python (built against Python ~ts) looked for its libpython at ~ts (~ts): "
                        "no such file", [Built, Lib, describe(Source)]);
        ok ->
            case py_boot:preload(unicode:characters_to_binary(Lib), <<Wanted/binary, ".">>) of
                {ok, _Version} -> load_nif(Choice);
                {wrong_version, Version} ->
                    unavailable("the libpython at ~ts (~ts) is Python ~ts, but this erlang_python was built "
                                "against Python ~ts and needs a ~ts.x", [Lib, describe(Source), first_word(Version),
                                                                         Built, Wanted]);
                {error, Why} ->
                    unavailable("erlang_python (built against Python ~ts) cannot load the libpython at ~ts "
                                "(~ts): ~ts", [Built, Lib, describe(Source), Why])
            end;
        {missing, Stdlib} ->
            unavailable("erlang_python found the libpython at ~ts (~ts) but no Python ~ts standard library "
                        "at ~ts (home ~ts)", [Lib, describe(Source), Wanted, Stdlib, home_text(Home)])
    end.

load_nif(#{home := Home} = Choice) ->
    HomeBin = case Home of undefined -> <<>>; _ -> unicode:characters_to_binary(Home) end,
    case py_nif:load(priv_dir(), HomeBin) of
        ok ->
            case nif_status() of
                ok -> ok;
                {error, Why} -> unavailable("Python did not start (~ts): ~ts", [describe(maps:get(source, Choice)), Why]);
                not_loaded -> unavailable("~ts did not load", [filename:join(priv_dir(), "py_nif.so")])
            end;
        {error, Reason} ->
            %% Not a matter of which Python: the library itself (a broken or mixed build).
            {error, {python_unavailable,
                     lists:flatten(io_lib:format("cannot load ~ts: ~tp (rebuild erlang_python)",
                                                 [filename:join(priv_dir(), "py_nif.so"), Reason]))}}
    end.

nif_status() ->
    try py_nif:runtime_status() of
        ok -> ok;
        {error, Why} -> {error, Why}
    catch
        error:nif_not_loaded -> not_loaded;
        error:undef -> not_loaded
    end.

choose(#{soname := Soname, libpython := BuildLib, version := Built}) ->
    Wanted = binary_to_list(major_minor(Built)),
    Found =
        first([fun() -> from_home(app_env(python_home), Soname, Wanted, app_env) end,
               fun() -> from_lib(app_env(libpython), Wanted, app_env) end,
               fun() -> from_home(os_env("ERLANG_PYTHON_HOME"), Soname, Wanted, os_env) end,
               fun() -> from_lib(os_env("ERLANG_PYTHON_LIBPYTHON"), Wanted, os_env) end,
               fun() -> bundled(Soname) end]),
    Choice = case Found of
                 none -> #{libpython => binary_to_list(BuildLib), home => undefined, source => build};
                 Some -> Some
             end,
    {ok, Choice#{built_against => Built}}.

first([]) -> none;
first([F | Rest]) ->
    case F() of
        none -> first(Rest);
        Found -> Found
    end.

%% A home names the libpython in lib/, lib/<multiarch>/ or lib64/; the first that exists, else
%% lib/<soname> (reported as missing by the preload).
from_home(undefined, _Soname, _Wanted, _Source) ->
    none;
from_home(Home, Soname, _Wanted, Source) ->
    Name = binary_to_list(Soname),
    Candidates = [filename:join([Home, "lib", Name])] ++ filelib:wildcard(filename:join([Home, "lib", "*", Name])) ++
                 [filename:join([Home, "lib64", Name])],
    Lib = case [C || C <- Candidates, filelib:is_regular(C)] of
              [First | _] -> First;
              [] -> hd(Candidates)
          end,
    #{libpython => Lib, home => Home, source => Source}.

%% A libpython alone: its home is the nearest directory above it that holds lib/pythonX.Y/.
from_lib(undefined, _Wanted, _Source) ->
    none;
from_lib(Lib, Wanted, Source) ->
    #{libpython => Lib, home => home_above(filename:dirname(Lib), Wanted, 3), source => Source}.

home_above(_Dir, _Wanted, 0) ->
    undefined;
home_above(Dir, Wanted, N) ->
    case filelib:is_regular(filename:join([Dir, "lib", "python" ++ Wanted, "os.py"])) of
        true -> Dir;
        false when Dir =:= "/" -> undefined;
        false -> home_above(filename:dirname(Dir), Wanted, N - 1)
    end.

bundled(Soname) ->
    Home = filename:join(priv_dir(), "python"),
    Lib = filename:join([Home, "lib", binary_to_list(Soname)]),
    case filelib:is_regular(Lib) of
        true -> #{libpython => Lib, home => Home, source => bundled};
        false -> none
    end.

check_files(#{libpython := Lib} = Choice) ->
    case filelib:is_regular(Lib) of
        true -> check_stdlib(Choice);
        false -> {no_lib, Lib}
    end.

check_stdlib(#{home := Home, built_against := Built}) ->
    Stdlib = case Home of
                 undefined -> binary_to_list(maps:get(stdlib, py_boot:build_info()));
                 _ -> filename:join([Home, "lib", "python" ++ binary_to_list(major_minor(Built))])
             end,
    case filelib:is_regular(filename:join(Stdlib, "os.py")) of
        true -> ok;
        false -> {missing, Stdlib}
    end.

app_env(Key) ->
    case application:get_env(erlang_python, Key) of
        {ok, Value} when is_list(Value); is_binary(Value) -> unicode:characters_to_list(Value);
        _ -> undefined
    end.

os_env(Name) ->
    case os:getenv(Name) of
        false -> undefined;
        "" -> undefined;
        Value -> Value
    end.

major_minor(Version) ->
    [Major, Minor | _] = binary:split(Version, <<".">>, [global]),
    <<Major/binary, ".", Minor/binary>>.

first_word(Version) ->
    hd(binary:split(Version, <<" ">>)).

describe(app_env) -> "chosen by the application environment";
describe(os_env) -> "chosen by the OS environment";
describe(bundled) -> "bundled in priv/python";
describe(build) -> "the Python it was built against".

home_text(undefined) -> "that of the build";
home_text(Home) -> Home.

unavailable(Format, Args) ->
    {error, {python_unavailable, lists:flatten(io_lib:format(Format ++ ". " ?ADVICE, Args))}}.

priv_dir() ->
    case code:priv_dir(erlang_python) of
        {error, bad_name} -> filename:join(filename:dirname(filename:dirname(code:which(?MODULE))), "priv");
        Dir -> Dir
    end.
