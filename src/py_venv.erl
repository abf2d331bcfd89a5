%% @doc Virtual environments: a venv's site-packages on `sys.path' of every interpreter (see
%% docs/venv.md). The work is done by {@link py_setup}, so owngil contexts started later get
%% the active venv too; `py:activate_venv/1', `py:deactivate_venv/0' and `py:venv_info/0' call
%% this module.
-module(py_venv).

-export([activate/1, deactivate/0, info/0, site_packages/1]).

%% @doc Makes the packages of the venv at Path importable in every interpreter, replacing the
%% venv activated before, if any. Path is the venv's directory (made by `python3 -m venv'), as
%% a string or a binary; a relative path is taken from the node's current directory.
%%
%% Returns `ok', or `{error, Reason}' without changing anything when Path is not a venv of the
%% embedded Python (see {@link site_packages/1}), or with the first failure of an interpreter.
-spec activate(file:filename_all()) -> ok | {error, term()}.
activate(Path) ->
    case site_packages(Path) of
        {ok, Venv, SitePackages} ->
            py_setup:set(venv, {'_erlang_venv', activate, [Venv, SitePackages]},
                         #{venv_path => Venv, site_packages => SitePackages});
        {error, _} = Error ->
            Error
    end.

%% @doc Removes from `sys.path', in every interpreter, what {@link activate/1} added. Modules
%% already imported from the venv stay imported (in `sys.modules' and wherever they are
%% referenced); only new imports stop finding them. `ok' also when no venv is active.
-spec deactivate() -> ok | {error, term()}.
deactivate() ->
    case py_setup:lookup(venv) of
        error -> ok;
        {ok, _} -> py_setup:set(venv, {'_erlang_venv', deactivate, []}, undefined)
    end.

%% @doc `{ok, Info}': `<<"active">>' (a boolean), and for an active venv `<<"venv_path">>'
%% and `<<"site_packages">>' (absolute paths, binaries); `<<"sys_path">>': `sys.path' of the
%% calling process's pool context. The keys are binaries, as in erlang_python 3.x.
-spec info() -> {ok, #{binary() => term()}} | {error, term()}.
info() ->
    Venv = case py_setup:lookup(venv) of
               {ok, #{venv_path := V, site_packages := S}} ->
                   #{<<"active">> => true, <<"venv_path">> => V, <<"site_packages">> => S};
               error ->
                   #{<<"active">> => false}
           end,
    case py:eval(<<"__import__('sys').path">>) of
        {ok, SysPath} -> {ok, Venv#{<<"sys_path">> => SysPath}};
        {error, _} = Error -> Error
    end.

%% @doc Checks that Path is a venv made for the embedded Python's version and finds its
%% site-packages (`lib/pythonX.Y/site-packages'). Returns `{ok, VenvDir, SitePackages}'
%% (absolute, binaries) or `{error, Reason}':
%% <ul>
%% <li>`{not_a_venv, Dir}': Dir is not a directory holding a `pyvenv.cfg';</li>
%% <li>`{python_version_mismatch, #{venv => VenvVersion, python => EmbeddedVersion}}': the venv
%%   was made by another Python (`version' or `version_info' in pyvenv.cfg, else which
%%   `lib/pythonX.Y' it has), versions as `<<"X.Y">>' binaries;</li>
%% <li>`{no_site_packages, Dir}': the directory where site-packages should be is missing.</li>
%% </ul>
-spec site_packages(file:filename_all()) -> {ok, binary(), binary()} | {error, term()}.
site_packages(Path) when is_binary(Path); is_list(Path) ->
    Dir = unicode:characters_to_binary(filename:absname(Path)),
    Cfg = filename:join(Dir, <<"pyvenv.cfg">>),
    Python = major_minor(py_nif:python_version()),
    case file:read_file(Cfg) of
        {ok, Text} ->
            Lib = filename:join([Dir, <<"lib">>, <<"python", Python/binary>>, <<"site-packages">>]),
            case venv_version(Text, Dir) of
                {ok, Python} -> existing_dir(Dir, Lib);
                {ok, Other} -> {error, {python_version_mismatch, #{venv => Other, python => Python}}};
                unknown -> existing_dir(Dir, Lib)
            end;
        {error, _} ->
            {error, {not_a_venv, Dir}}
    end;
site_packages(_) ->
    erlang:error(badarg).

existing_dir(Dir, SitePackages) ->
    case filelib:is_dir(SitePackages) of
        true -> {ok, Dir, SitePackages};
        false -> {error, {no_site_packages, SitePackages}}
    end.

%% The X.Y a venv was made for: from pyvenv.cfg (`version = 3.13.0' from venv,
%% `version_info = 3.13.0.final.0' from virtualenv and uv), else from its lib/pythonX.Y.
venv_version(Cfg, Dir) ->
    Lines = binary:split(Cfg, [<<"\n">>, <<"\r">>], [global]),
    Pairs = [{string:trim(K), string:trim(V)} || L <- Lines, [K, V] <- [binary:split(L, <<"=">>)]],
    case [V || {K, V} <- Pairs, K =:= <<"version">> orelse K =:= <<"version_info">>, V =/= <<>>] of
        [V | _] -> {ok, major_minor(V)};
        [] ->
            case filelib:wildcard(binary_to_list(filename:join([Dir, <<"lib">>, <<"python3.*">>]))) of
                [Lib | _] -> {ok, major_minor(iolist_to_binary(string:prefix(filename:basename(Lib), "python")))};
                [] -> unknown
            end
    end.

major_minor(Version) ->
    case binary:split(iolist_to_binary(Version), <<".">>, [global]) of
        [Major, Minor | _] -> <<Major/binary, ".", (strip_suffix(Minor))/binary>>;
        _ -> iolist_to_binary(Version)
    end.

%% "13t" (a free-threaded build's lib/python3.13t) -> "13".
strip_suffix(Minor) ->
    iolist_to_binary([C || <<C>> <= Minor, C >= $0, C =< $9]).
