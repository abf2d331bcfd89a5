%% @doc py:activate_venv/1, py:deactivate_venv/0, py:venv_info/0 on a venv made in priv_dir by
%% the Python the NIF embeds (`python3 -m venv --without-pip': no network needed), on pool
%% contexts and owngil contexts (skipped before Python 3.13), including owngil contexts started
%% after activation.
-module(py_venv_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([pool_contexts/1, pth_files/1, owngil_contexts/1, isolated_contexts/1, deactivate/1, replace/1, info/1, errors/1,
         contexts_starting/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [pool_contexts, pth_files, owngil_contexts, isolated_contexts, deactivate, replace, info, errors,
          contexts_starting].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Python = python_executable(),
    ct:pal("embedded Python ~ts, venv made by ~ts", [element(2, py:version()), Python]),
    Priv = ?config(priv_dir, Config),
    Venv = filename:join(Priv, "venv"),
    run([Python, "-m", "venv", "--without-pip", Venv]),
    SitePackages = site_packages(Venv),
    true = filelib:is_dir(SitePackages),
    %% A package, a second one that no test imports before deactivation, and a .pth file
    %% naming a directory outside site-packages (as an editable install does).
    write(filename:join([SitePackages, "eco_venv_pkg", "__init__.py"]), "VALUE = 'from the venv'\n"),
    write(filename:join([SitePackages, "eco_venv_late", "__init__.py"]), "VALUE = 'late'\n"),
    Extra = filename:join(Priv, "extra"),
    write(filename:join(Extra, "eco_pth_mod.py"), "VALUE = 'via pth'\n"),
    write(filename:join(SitePackages, "eco_extra.pth"), Extra ++ "\n"),
    [{venv, Venv}, {site_packages, SitePackages}, {extra, Extra} | Config].

end_per_suite(_Config) ->
    _ = py:deactivate_venv(),
    application:stop(erlang_python).

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    ok = py:deactivate_venv().

%% The executable of the Python the NIF embeds. Not `python3' from PATH: that may be another
%% version (pyenv's shim here). An embedded interpreter's sys.executable is whatever the
%% embedding set (it can be the BEAM), so the first choice is BINDIR/pythonX.Y from sysconfig,
%% the installation libpython comes from; each candidate is run and must report exactly
%% py:version().
python_executable() ->
    {ok, Candidates} = py:eval(<<"[__import__('os').path.join(__import__('sysconfig').get_config_var('BINDIR') or '',"
                                 " 'python' + __import__('sysconfig').get_config_var('VERSION')),"
                                 " __import__('sys')._base_executable, __import__('sys').executable]">>),
    Version = binary_to_list(element(2, py:version())),
    Fits = [binary_to_list(C) || C <- Candidates, C =/= <<>>, filelib:is_regular(C),
                                 reports(binary_to_list(C), Version)],
    case Fits of
        [Python | _] -> Python;
        [] -> ct:fail({no_python_executable, Version, Candidates})
    end.

reports(Exe, Version) ->
    Out = os:cmd(Exe ++ " -c \"import sys; print('%d.%d.%d' % sys.version_info[:3])\""),
    string:trim(Out) =:= Version.

site_packages(Venv) ->
    [Major, Minor | _] = string:split(binary_to_list(element(2, py:version())), ".", all),
    filename:join([Venv, "lib", "python" ++ Major ++ "." ++ Minor, "site-packages"]).

run(Argv) ->
    Port = open_port({spawn_executable, hd(Argv)}, [{args, tl(Argv)}, exit_status, stderr_to_stdout]),
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, D}} -> collect(Port, [D | Acc]);
        {Port, {exit_status, 0}} -> ok;
        {Port, {exit_status, S}} -> ct:fail({command_failed, S, lists:flatten(lists:reverse(Acc))})
    after 60000 -> ct:fail(command_timeout)
    end.

write(File, Text) ->
    ok = filelib:ensure_dir(File),
    ok = file:write_file(File, Text).

owngil(_Config) ->
    case py_context:new(#{mode => owngil}) of
        {ok, Ctx} -> Ctx;
        {error, {owngil_unsupported, V}} -> {skip, "owngil contexts need Python 3.13+, this is " ++ binary_to_list(V)}
    end.

import(Ctx, Module) ->
    py:eval(Ctx, <<"__import__('importlib').import_module(m).VALUE">>, #{m => Module}).

%% A fresh import: forgets the module first, so that sys.path is searched again.
reimport(Ctx, Module) ->
    py:eval(Ctx, <<"(__import__('sys').modules.pop(m, None), __import__('importlib').import_module(m).VALUE)[1]">>,
            #{m => Module}).

on_sys_path(Ctx, Dir) ->
    {ok, Path} = py:eval(Ctx, <<"__import__('sys').path">>),
    lists:member(unicode:characters_to_binary(Dir), Path).

%% --- cases ----------------------------------------------------------------------------------

pool_contexts(Config) ->
    Venv = ?config(venv, Config),
    {error, {'ModuleNotFoundError', _}} = import(py:context(), <<"eco_venv_pkg">>),
    ok = py:activate_venv(list_to_binary(Venv)),
    Pool = py_context_router:contexts(),
    true = length(Pool) >= 1,
    [{ok, <<"from the venv">>} = import(Ctx, <<"eco_venv_pkg">>) || Ctx <- Pool],
    {ok, <<"from the venv">>} = py:eval(<<"__import__('eco_venv_pkg').VALUE">>),
    %% A worker context made after activation shares the main interpreter.
    {ok, W} = py_context:new(#{mode => worker}),
    {ok, <<"from the venv">>} = reimport(W, <<"eco_venv_pkg">>),
    ok = py_context:stop(W),
    %% In front of the base installation's site-packages, behind the standard library.
    {ok, Path} = py:eval(<<"__import__('sys').path">>),
    SP = list_to_binary(?config(site_packages, Config)),
    {Before, [SP | _]} = lists:splitwith(fun(E) -> E =/= SP end, Path),
    {ok, Stdlib} = py:eval(<<"__import__('sysconfig').get_path('stdlib')">>),
    true = lists:member(Stdlib, Before),
    ok.

pth_files(Config) ->
    ok = py:activate_venv(?config(venv, Config)),
    {ok, <<"via pth">>} = reimport(py:context(), <<"eco_pth_mod">>),
    true = on_sys_path(py:context(), ?config(extra, Config)),
    ok = py:deactivate_venv(),
    false = on_sys_path(py:context(), ?config(extra, Config)),
    {error, {'ModuleNotFoundError', _}} = reimport(py:context(), <<"eco_pth_mod">>),
    ok.

owngil_contexts(Config) ->
    case owngil(Config) of
        {skip, _} = Skip ->
            Skip;
        Before ->
            ok = py:activate_venv(?config(venv, Config)),
            {ok, <<"from the venv">>} = import(Before, <<"eco_venv_pkg">>),
            After = owngil(Config),
            {ok, <<"from the venv">>} = import(After, <<"eco_venv_pkg">>),
            {ok, <<"via pth">>} = import(After, <<"eco_pth_mod">>),
            ok = py_context:stop(Before),
            ok = py_context:stop(After)
    end.

%% An isolated context's child takes the venv too: one running when it is activated, one started
%% after, and a restarted child; deactivation reaches it as well.
isolated_contexts(Config) ->
    {ok, Before} = py_context:new(#{mode => isolated}),
    {error, {'ModuleNotFoundError', _}} = import(Before, <<"eco_venv_pkg">>),
    ok = py:activate_venv(?config(venv, Config)),
    {ok, <<"from the venv">>} = import(Before, <<"eco_venv_pkg">>),
    {ok, After} = py_context:new(#{mode => isolated}),
    {ok, <<"from the venv">>} = import(After, <<"eco_venv_pkg">>),
    {ok, <<"via pth">>} = import(After, <<"eco_pth_mod">>),
    {error, {python_crashed, _}} = py:eval(After, <<"__import__('os')._exit(3)">>),
    {ok, <<"from the venv">>} = import(After, <<"eco_venv_pkg">>),  % the next child
    ok = py:deactivate_venv(),
    {error, {'ModuleNotFoundError', _}} = reimport(Before, <<"eco_venv_late">>),
    ok = py_context:stop(Before),
    ok = py_context:stop(After).

deactivate(Config) ->
    SP = ?config(site_packages, Config),
    Owngil = case owngil(Config) of {skip, _} -> []; O -> [O] end,
    Contexts = py_context_router:contexts() ++ Owngil,
    ok = py:activate_venv(?config(venv, Config)),
    [{ok, _} = import(Ctx, <<"eco_venv_pkg">>) || Ctx <- Contexts],
    ok = py:deactivate_venv(),
    %% What was imported stays imported (documented): the module object is still there.
    [{ok, <<"from the venv">>} = py:eval(Ctx, <<"__import__('sys').modules['eco_venv_pkg'].VALUE">>)
     || Ctx <- Contexts],
    Later = case owngil(Config) of {skip, _} -> []; L -> [L] end,
    lists:foreach(
      fun(Ctx) ->
              false = on_sys_path(Ctx, SP),
              {error, {'ModuleNotFoundError', _}} = import(Ctx, <<"eco_venv_late">>),
              {error, {'ModuleNotFoundError', _}} = reimport(Ctx, <<"eco_venv_pkg">>)
      end, Contexts ++ Later),
    ok = py:deactivate_venv(),  % nothing active: still ok
    [ok = py_context:stop(Ctx) || Ctx <- Owngil ++ Later],
    ok.

%% A second venv replaces the first: its entries leave sys.path.
replace(Config) ->
    Other = fake_venv(Config, "other", binary_to_list(element(2, py:version()))),
    write(filename:join(site_packages(Other), "eco_other_pkg.py"), "VALUE = 'other'\n"),
    ok = py:activate_venv(?config(venv, Config)),
    ok = py:activate_venv(Other),
    false = on_sys_path(py:context(), ?config(site_packages, Config)),
    true = on_sys_path(py:context(), site_packages(Other)),
    {ok, <<"other">>} = import(py:context(), <<"eco_other_pkg">>),
    {error, {'ModuleNotFoundError', _}} = import(py:context(), <<"eco_venv_late">>),
    ok.

info(Config) ->
    {ok, #{<<"active">> := false} = Off} = py:venv_info(),
    false = maps:is_key(<<"venv_path">>, Off),
    ok = py:activate_venv(?config(venv, Config)),
    Venv = list_to_binary(?config(venv, Config)),
    SP = list_to_binary(?config(site_packages, Config)),
    {ok, #{<<"active">> := true, <<"venv_path">> := Venv, <<"site_packages">> := SP,
           <<"sys_path">> := Path}} = py:venv_info(),
    true = lists:member(SP, Path),
    ok = py:deactivate_venv(),
    {ok, #{<<"active">> := false}} = py:venv_info(),
    ok.

errors(Config) ->
    Priv = ?config(priv_dir, Config),
    Priv1 = list_to_binary(filename:absname(Priv)),
    Priv2 = list_to_binary(filename:absname(filename:join(Priv, "no_such_dir"))),
    {error, {not_a_venv, Priv1}} = py:activate_venv(Priv),
    {error, {not_a_venv, Priv2}} = py:activate_venv(filename:join(Priv, "no_such_dir")),
    Old = fake_venv(Config, "old", "3.2.1"),
    {ok, Embedded} = py:eval(<<"'%d.%d' % __import__('sys').version_info[:2]">>),
    {error, {python_version_mismatch, #{venv := <<"3.2">>, python := Embedded}}} = py:activate_venv(Old),
    Empty = filename:join(Priv, "empty"),
    write(filename:join(Empty, "pyvenv.cfg"), "version = " ++ binary_to_list(element(2, py:version())) ++ "\n"),
    {error, {no_site_packages, _}} = py:activate_venv(Empty),
    {'EXIT', {badarg, _}} = catch py:activate_venv(42),
    %% A failed activation leaves the active venv alone.
    ok = py:activate_venv(?config(venv, Config)),
    {error, _} = py:activate_venv(Old),
    {ok, #{<<"active">> := true}} = py:venv_info(),
    {ok, <<"from the venv">>} = import(py:context(), <<"eco_venv_pkg">>),
    ok.

%% A directory shaped like a venv of Python Version (pyvenv.cfg and lib/pythonX.Y/site-packages).
fake_venv(Config, Name, Version) ->
    Dir = filename:join(?config(priv_dir, Config), Name),
    write(filename:join(Dir, "pyvenv.cfg"), "home = /nowhere\nversion = " ++ Version ++ "\n"),
    [Major, Minor | _] = string:split(Version, ".", all),
    ok = filelib:ensure_dir(filename:join([Dir, "lib", "python" ++ Major ++ "." ++ Minor, "site-packages", "x"])),
    Dir.

%% Contexts starting while the venv is switched on and off: each ends up with the last state,
%% its site-packages on sys.path once (owngil contexts where supported, else worker ones).
contexts_starting(Config) ->
    Mode = case owngil(Config) of {skip, _} -> worker; C -> ok = py_context:stop(C), owngil end,
    Self = self(),
    Starter = spawn_link(fun() ->
                                 Ctxs = [begin {ok, Ctx} = py_context:new(#{mode => Mode}), Ctx end
                                         || _ <- lists:seq(1, 6)],
                                 Self ! {started, Ctxs},
                                 receive stop -> ok end
                         end),
    Toggle = fun(_) -> ok = py:activate_venv(?config(venv, Config)), ok = py:deactivate_venv() end,
    lists:foreach(Toggle, lists:seq(1, 10)),
    ok = py:activate_venv(?config(venv, Config)),
    Ctxs = receive {started, L} -> L after 60000 -> ct:fail(contexts_not_started) end,
    SP = list_to_binary(?config(site_packages, Config)),
    [{ok, 1} = py:eval(Ctx, <<"__import__('sys').path.count(sp)">>, #{sp => SP})
     || Ctx <- Ctxs ++ py_context_router:contexts()],
    [{ok, <<"from the venv">>} = import(Ctx, <<"eco_venv_pkg">>) || Ctx <- Ctxs],
    ok = py:deactivate_venv(),
    [{ok, 0} = py:eval(Ctx, <<"__import__('sys').path.count(sp)">>, #{sp => SP}) || Ctx <- Ctxs],
    Starter ! stop,
    ok.
