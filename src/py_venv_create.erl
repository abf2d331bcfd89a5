%% @doc `py:ensure_venv/2,3': creates a virtual environment, installs requirements into it
%% with pip or uv, and activates it (see {@link py_venv}). Every program runs with
%% `open_port({spawn_executable, Program}, [{args, Args}])': no shell sees a path or a name.
-module(py_venv_create).

-export([ensure/3]).

-type option() :: force | {installer, auto | pip | uv} | {python, file:filename_all()} |
                  {extras, [string() | binary()]}.
-export_type([option/0]).

%% @doc Makes sure Dir is a venv with the packages of Requirements installed, then activates it
%% in every interpreter. Requirements is a requirements file (any name but `*.toml'; its lines
%% may hold pip options such as `--no-index' and `--find-links DIR') or a `pyproject.toml',
%% whose project is installed editable (`-e Dir[extras]'). The venv is created when Dir has no
%% `pyvenv.cfg', or recreated with `force'.
%%
%% Options (a proplist): `force'; `{installer, auto | pip | uv}' (default `auto': uv when it
%% is on PATH); `{python, Executable}' (default: the embedded Python's own executable, found
%% under its `sys.base_prefix'); `{extras, [Name]}' for a pyproject.toml.
%%
%% Returns `ok', or `{error, Reason}': `{exit_code, Status, Output}' when a program failed
%% (Output: what it printed), `{not_found, Program}', `{bad_option, Option}', or a failure of
%% the activation.
-spec ensure(file:filename_all(), file:filename_all(), [option()]) -> ok | {error, term()}.
ensure(Path, Requirements, Opts) when is_list(Opts) ->
    try
        lists:foreach(fun check_option/1, Opts),
        Dir = filename:absname(to_list(Path)),
        Req = filename:absname(to_list(Requirements)),
        Installer = installer(proplists:get_value(installer, Opts, auto)),
        ok = created(Dir, Installer, Opts),
        ok = installed(Dir, Req, Installer, Opts),
        py_venv:activate(Dir)
    catch
        throw:{venv_error, Reason} -> {error, Reason};
        error:{badmatch, {error, Reason}} -> {error, Reason}
    end;
ensure(_, _, _) ->
    erlang:error(badarg).

check_option(force) -> ok;
check_option({installer, I}) when I =:= auto; I =:= pip; I =:= uv -> ok;
check_option({python, P}) when is_list(P); is_binary(P) -> ok;
check_option({extras, L}) when is_list(L) -> ok;
check_option(Other) -> throw({venv_error, {bad_option, Other}}).

installer(auto) ->
    case os:find_executable("uv") of
        false -> pip;
        _ -> uv
    end;
installer(I) -> I.

created(Dir, Installer, Opts) ->
    Force = proplists:get_bool(force, Opts),
    case filelib:is_regular(filename:join(Dir, "pyvenv.cfg")) of
        true when not Force -> ok;
        Exists ->
            Python = python(Opts),
            case Installer of
                pip -> run(Python, ["-m", "venv"] ++ ["--clear" || Exists] ++ [Dir], []);
                uv -> run(program("uv"), ["venv", "--python", Python] ++ ["--allow-existing" || Exists] ++ [Dir], [])
            end
    end.

installed(Dir, Req, Installer, Opts) ->
    What = case filename:extension(Req) of
               ".toml" ->
                   Project = filename:dirname(Req),
                   case [to_list(E) || E <- proplists:get_value(extras, Opts, [])] of
                       [] -> ["-e", Project];
                       Extras -> ["-e", Project ++ "[" ++ lists:join(",", Extras) ++ "]"]
                   end;
               _ ->
                   ["-r", Req]
           end,
    VenvPython = filename:join([Dir, "bin", "python"]),
    case Installer of
        pip -> run(VenvPython, ["-m", "pip", "install", "--disable-pip-version-check", "--no-input" | What], []);
        uv -> run(program("uv"), ["pip", "install", "--python", VenvPython | What], [{"VIRTUAL_ENV", Dir}])
    end.

%% The embedded Python's executable: <sys.base_prefix>/bin/pythonX.Y, else python3 on PATH.
python(Opts) ->
    case proplists:get_value(python, Opts) of
        undefined ->
            {ok, Prefix} = py:eval(<<"__import__('sys').base_prefix">>),
            [Major, Minor | _] = string:split(binary_to_list(py_nif:python_version()), ".", all),
            Exe = filename:join([binary_to_list(Prefix), "bin", "python" ++ Major ++ "." ++ Minor]),
            case filelib:is_regular(Exe) of
                true -> Exe;
                false -> program("python3")
            end;
        P ->
            program(to_list(P))
    end.

program(Name) ->
    case filename:pathtype(Name) of
        absolute -> Name;
        _ ->
            case os:find_executable(Name) of
                false -> throw({venv_error, {not_found, Name}});
                Exe -> Exe
            end
    end.

run(Program, Args, Env) ->
    Port = try open_port({spawn_executable, Program},
                         [{args, Args}, {env, Env}, exit_status, stderr_to_stdout, binary, hide])
           catch error:_ -> throw({venv_error, {not_found, Program}})
           end,
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, [Data | Acc]);
        {Port, {exit_status, 0}} -> ok;
        {Port, {exit_status, Status}} ->
            throw({venv_error, {exit_code, Status, string:trim(iolist_to_binary(lists:reverse(Acc)))}})
    end.

to_list(B) when is_binary(B) -> unicode:characters_to_list(B);
to_list(L) when is_list(L) -> L;
to_list(_) -> erlang:error(badarg).
