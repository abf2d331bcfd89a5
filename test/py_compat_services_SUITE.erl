%% @doc erlang_python 4.x's start-up code, paths, node services, tracing and Python-side
%% `erlang' module, called in the shapes upstream's docs show (issue 16 items 3-6): worker and
%% owngil contexts where the interpreter matters (owngil cases are skipped before Python 3.13).
-module(py_compat_services_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([preload_code/1, preload_isolation/1, preload_option/1, imports/1, paths/1, app_env/1,
         bad_app_env/1, version/1, reload/1, parallel/1, memory_and_gc/1, tracemalloc/1,
         local_env/1, ensure_venv/1, ensure_venv_errors/1, interrupt/1, interrupt_cleanup/1,
         tracing/1, erlang_in_main/1, whereis_and_atom/1, send_errors/1, hasattr_registered/1,
         thread_callbacks/1, thread_callback_while_waiting/1, async_call/1, bytes_tuple/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [preload_code, preload_isolation, preload_option, imports, paths, app_env, bad_app_env,
     version, reload, parallel, memory_and_gc, tracemalloc, local_env, ensure_venv,
     ensure_venv_errors, interrupt, interrupt_cleanup, tracing, erlang_in_main, whereis_and_atom,
     send_errors, hasattr_registered, thread_callbacks, thread_callback_while_waiting, async_call,
     bytes_tuple].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    application:stop(erlang_python).

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    py_preload:clear_code(),
    py_import:clear_paths(),
    py_import:clear_imports(),
    _ = py:disable_tracing(),
    ok.

%% The modes to try: worker always, owngil when this Python has it.
modes() ->
    case py_context:new(#{mode => owngil}) of
        {ok, Ctx} -> ok = py_context:stop(Ctx), [worker, owngil];
        {error, {owngil_unsupported, _}} -> [worker]
    end.

new(Mode) ->
    {ok, Ctx} = py_context:new(#{mode => Mode}),
    Ctx.

%% --- start-up code and paths ----------------------------------------------------------------

preload_code(_Config) ->
    false = py_preload:has_preload(),
    undefined = py_preload:get_code(),
    ok = py_preload:set_code(<<"import json\n"
                               "def shared_helper(x):\n"
                               "    return x * 2\n"
                               "CONFIG = {'debug': True}\n">>),
    true = py_preload:has_preload(),
    <<"import json", _/binary>> = py_preload:get_code(),
    [begin
         Ctx = new(Mode),
         {ok, 10} = py:eval(Ctx, <<"shared_helper(5)">>),
         {ok, <<"{\"a\": 1}">>} = py:eval(Ctx, <<"json.dumps({'a': 1})">>),
         {ok, true} = py:eval(Ctx, <<"CONFIG['debug']">>)
     end || Mode <- modes()],
    %% A new process's namespace on the pool gets it too.
    Self = self(),
    spawn_link(fun() -> Self ! {pool, py:eval(<<"shared_helper(21)">>)} end),
    receive {pool, {ok, 42}} -> ok end,
    %% Cleared: contexts made before keep it, new ones do not.
    Before = new(worker),
    {ok, 4} = py:eval(Before, <<"shared_helper(2)">>),
    ok = py_preload:clear_code(),
    false = py_preload:has_preload(),
    {ok, 4} = py:eval(Before, <<"shared_helper(2)">>),
    [{error, {'NameError', _}} = py:eval(new(Mode), <<"shared_helper(2)">>) || Mode <- modes()],
    %% Code that raises is reported; the previous preload stays.
    {error, {'ZeroDivisionError', _}} = py_preload:set_code("X = 1 / 0"),
    ok.

preload_isolation(_Config) ->
    ok = py_preload:set_code(<<"COUNTER = 0">>),
    Ctx1 = new(worker),
    Ctx2 = new(worker),
    ok = py:exec(Ctx1, <<"COUNTER = 100">>),
    {ok, 100} = py:eval(Ctx1, <<"COUNTER">>),
    {ok, 0} = py:eval(Ctx2, <<"COUNTER">>).

preload_option(_Config) ->
    [begin
         {ok, Ctx} = py_context:new(#{mode => Mode, preload => <<"APP = 'ready'\nimport math">>}),
         {ok, <<"ready">>} = py:eval(Ctx, <<"APP">>),
         {ok, 3.0} = py:eval(Ctx, <<"math.sqrt(9)">>),
         {error, {preload, {'NameError', _}}} = py_context:new(#{mode => Mode, preload => <<"undefined_name">>})
     end || Mode <- modes()],
    ok.

imports(_Config) ->
    false = py_import:is_imported(colorsys),
    ok = py_import:ensure_imported(colorsys),
    ok = py_import:ensure_imported(json, dumps),
    true = py_import:is_imported(colorsys),
    true = py_import:is_imported(<<"colorsys">>, anything),
    true = py_import:is_imported("json", "dumps"),
    false = py_import:is_imported(json, loads),
    {ok, #{<<"colorsys">> := [], <<"json">> := [<<"dumps">>]}} = py_import:import_list(),
    [{<<"colorsys">>, all}, {<<"json">>, <<"dumps">>}] = lists:sort(py_import:all_imports()),
    true = py:is_imported(colorsys),
    {error, main_not_cacheable} = py_import:ensure_imported('__main__'),
    {ok, #{count := 2}} = py:import_stats(),
    %% As in 4.x, a module that cannot be imported is registered; calls into it fail then.
    ok = py_import:ensure_imported(no_such_module_h16),
    true = py_import:is_imported(no_such_module_h16),
    {error, {'ModuleNotFoundError', _}} = py:call(no_such_module_h16, f, []),
    [{ok, false} = py:eval(new(Mode), <<"'no_such_module_h16' in __import__('sys').modules">>) || Mode <- modes()],
    %% Imported in every interpreter, owngil contexts started later included.
    [{ok, true} = py:eval(new(Mode), <<"'colorsys' in __import__('sys').modules">>) || Mode <- modes()],
    ok = py_import:clear_imports(),
    [] = py_import:all_imports(),
    %% Registrations made at once from many processes are all kept.
    Self = self(),
    Mods = [json, math, os, string, re, base64, collections, functools, itertools, operator],
    Pids = [spawn_link(fun() -> Self ! {self(), py:ensure_imported(M)} end) || M <- Mods],
    [ok = receive {P, R} -> R end || P <- Pids],
    {ok, #{count := 10}} = py:import_stats().

paths(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "paths"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = file:write_file(filename:join(Dir, "h16_path_mod.py"), <<"VALUE = 'found'\n">>),
    Running = [new(Mode) || Mode <- modes()],
    ok = py_import:add_path(Dir),
    true = py_import:is_path_added(Dir),
    [DirBin] = py_import:all_paths(),
    ok = py_import:add_paths([Dir, "/nonexistent/h16"]),
    [DirBin, <<"/nonexistent/h16">>] = py_import:all_paths(),
    Later = [new(Mode) || Mode <- modes()],
    [{ok, <<"found">>} = py:eval(Ctx, <<"__import__('h16_path_mod').VALUE">>) || Ctx <- Running ++ Later],
    {ok, 0} = py:eval(hd(Later), <<"__import__('sys').path.index(d)">>, #{d => DirBin}),
    %% Every context of a pool reaches it, not only the caller's.
    [{ok, <<"found">>} = py:eval(py:context(N), <<"__import__('h16_path_mod').VALUE">>)
     || N <- lists:seq(1, py_context_router:num_contexts())],
    ok = py_import:clear_paths(),
    false = py_import:is_path_added(Dir),
    [{ok, false} = py:eval(Ctx, <<"d in __import__('sys').path">>, #{d => DirBin}) || Ctx <- Running ++ Later],
    ok.

app_env(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "env_paths"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = file:write_file(filename:join(Dir, "h16_env_mod.py"), <<"VALUE = 'env'\n">>),
    ok = application:stop(erlang_python),
    ok = application:set_env(erlang_python, paths, [Dir]),
    ok = application:set_env(erlang_python, imports, [colorsys, {json, dumps}]),
    try
        {ok, _} = application:ensure_all_started(erlang_python),
        true = py_import:is_path_added(Dir),
        true = py_import:is_imported(json, dumps),
        {ok, <<"env">>} = py:eval(<<"__import__('h16_env_mod').VALUE">>),
        [{ok, true} = py:eval(new(Mode), <<"'colorsys' in __import__('sys').modules">>) || Mode <- modes()]
    after
        application:unset_env(erlang_python, paths),
        application:unset_env(erlang_python, imports),
        ok = application:stop(erlang_python),
        {ok, _} = application:ensure_all_started(erlang_python)
    end,
    ok.

bad_app_env(_Config) ->
    [begin
         ok = application:stop(erlang_python),
         ok = application:set_env(erlang_python, Key, Value),
         Result = application:start(erlang_python),
         application:unset_env(erlang_python, Key),
         {ok, _} = application:ensure_all_started(erlang_python),
         {error, Reason} = Result,
         %% The reason names the key, whatever wraps it.
         Text = lists:flatten(io_lib:format("~p", [Reason])),
         true = string:find(Text, "{invalid_app_env," ++ atom_to_list(Key)) =/= nomatch
     end || {Key, Value} <- [{paths, not_a_list}, {imports, [{1, 2, 3}]}]],
    ok.

%% --- node services --------------------------------------------------------------------------

version(_Config) ->
    {ok, Version} = py:version(),
    true = is_binary(Version) andalso byte_size(Version) > 0,
    {ok, Version} = py:eval(<<"__import__('platform').python_version()">>).

reload(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "reload"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    File = filename:join(Dir, "h16_reload_mod.py"),
    ok = file:write_file(File, <<"VALUE = 1\n">>),
    ok = py_import:add_path(Dir),
    Ctxs = [new(Mode) || Mode <- modes()],
    [{ok, 1} = py:eval(Ctx, <<"__import__('h16_reload_mod').VALUE">>) || Ctx <- Ctxs],
    %% Another size: the bytecode cache is keyed by mtime (seconds) and size.
    ok = file:write_file(File, <<"VALUE = 222\n">>),
    ok = py:reload(h16_reload_mod),
    [{ok, 222} = py:eval(Ctx, <<"__import__('h16_reload_mod').VALUE">>) || Ctx <- Ctxs],
    ok = py:reload(<<"h16_module_nobody_imported">>),
    ok = file:write_file(File, <<"VALUE = (\n">>),
    {error, [{context, {'SyntaxError', _}} | _]} = py:reload("h16_reload_mod").

parallel(_Config) ->
    {ok, [4.0, 5.0, 6.0, 7.0]} = py:parallel([{math, sqrt, [16]}, {math, sqrt, [25]},
                                              {math, sqrt, [36]}, {math, sqrt, [49]}]),
    {ok, []} = py:parallel([]),
    {error, {'ValueError', _}} = py:parallel([{math, sqrt, [1]}, {math, sqrt, [-1]}, {math, nope, []}]),
    badarg = try py:parallel([not_a_call]) catch error:E -> E end.

memory_and_gc(_Config) ->
    {ok, Stats} = py:memory_stats(),
    #{gc_stats := [#{<<"collections">> := _} | _], gc_count := {_, _, _}, gc_threshold := {_, _, _}} = Stats,
    {ok, N} = py:gc(),
    true = is_integer(N) andalso N >= 0,
    [{ok, _} = py:gc(G) || G <- [0, 1, 2]],
    {ok, Cycles} = py:eval(<<"(lambda gc: [gc.disable(), [ (lambda l: l.append(l))([]) for _ in range(50)], "
                             "gc.collect(2), gc.enable()][2])(__import__('gc'))">>),
    true = Cycles >= 50,
    badarg = try py:gc(3) catch error:E -> E end.

tracemalloc(_Config) ->
    ok = py:tracemalloc_start(),
    {ok, _} = py:eval(<<"[x**2 for x in range(1000)]">>),
    {ok, #{traced_memory_current := Cur, traced_memory_peak := Peak}} = py:memory_stats(),
    true = is_integer(Cur) andalso Peak >= Cur,
    ok = py:tracemalloc_stop(),
    {ok, After} = py:memory_stats(),
    false = maps:is_key(traced_memory_current, After),
    ok = py:tracemalloc_start(5),
    {ok, 5} = py:eval(<<"__import__('tracemalloc').get_traceback_limit()">>),
    ok = py:tracemalloc_stop().

local_env(_Config) ->
    %% On a pool context: the namespace py:call(Ctx, ...) uses from this process.
    Ctx = py:context(1),
    Env = py:get_local_env(Ctx),
    Env = py:get_local_env(Ctx),
    ok = py:exec(Ctx, <<"def h16_local(x):\n    return x + 1\n">>),
    {ok, 2} = py_context:call(Ctx, '__main__', h16_local, [1], #{}, 5000, Env),
    {ok, 2} = py_context:eval(Ctx, <<"h16_local(1)">>, #{}, 5000, Env),
    %% On a context of its own: a namespace of the process's own.
    Own = new(worker),
    OwnEnv = py:get_local_env(Own),
    ok = py_context:exec(Own, <<"Z = 5">>, OwnEnv),
    {ok, 5} = py_context:eval(Own, <<"Z">>, #{}, 5000, OwnEnv),
    badarg = try py:get_local_env(not_a_pid) catch error:E -> E end.

ensure_venv(Config) ->
    Priv = ?config(priv_dir, Config),
    Wheels = filename:join(Priv, "wheels"),
    Wheel = build_wheel(Wheels, "h16_pkg", "0.1.0", <<"VALUE = 'from the wheel'\n">>),
    true = filelib:is_regular(Wheel),
    Req = filename:join(Priv, "requirements.txt"),
    ok = file:write_file(Req, ["--no-index\n--find-links ", Wheels, "\nh16_pkg==0.1.0\n"]),
    Venv = filename:join(Priv, "venv ensure"),  % a space: no shell may split it
    try
        ok = py:ensure_venv(Venv, Req, [{installer, pip}]),
        true = filelib:is_regular(filename:join(Venv, "pyvenv.cfg")),
        {ok, #{<<"active">> := true}} = py:venv_info(),
        {ok, <<"from the wheel">>} = py:eval(<<"__import__('h16_pkg').VALUE">>),
        [{ok, <<"from the wheel">>} = py:eval(new(Mode), <<"__import__('h16_pkg').VALUE">>) || Mode <- modes()],
        %% Again: the venv exists; the requirement is satisfied.
        ok = py:ensure_venv(list_to_binary(Venv), list_to_binary(Req))
    after
        ok = py:deactivate_venv()
    end.

ensure_venv_errors(Config) ->
    Priv = ?config(priv_dir, Config),
    Req = filename:join(Priv, "missing-requirements.txt"),
    ok = file:write_file(Req, <<"--no-index\nh16_package_nobody_has\n">>),
    Venv = filename:join(Priv, "venv_errors"),
    {error, {exit_code, Status, Output}} = py:ensure_venv(Venv, Req, [{installer, pip}]),
    true = Status =/= 0 andalso is_binary(Output),
    {error, {bad_option, {installer, conda}}} = py:ensure_venv(Venv, Req, [{installer, conda}]),
    {error, {not_found, _}} = py:ensure_venv(filename:join(Priv, "venv_nopython"), Req,
                                             [{installer, pip}, {python, "no-such-python-h16"}]),
    {ok, #{<<"active">> := false}} = py:venv_info().

%% A wheel made by hand: a zip of the module and its .dist-info (METADATA, WHEEL, RECORD).
build_wheel(Dir, Name, Version, Source) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    DistInfo = Name ++ "-" ++ Version ++ ".dist-info",
    Files = [{Name ++ ".py", Source},
             {DistInfo ++ "/METADATA", iolist_to_binary(["Metadata-Version: 2.1\nName: ", Name, "\nVersion: ", Version, "\n"])},
             {DistInfo ++ "/WHEEL", <<"Wheel-Version: 1.0\nGenerator: h16\nRoot-Is-Purelib: true\nTag: py3-none-any\n">>}],
    Record = [[F, ",sha256=", hash(B), ",", integer_to_list(byte_size(B)), "\n"] || {F, B} <- Files],
    All = Files ++ [{DistInfo ++ "/RECORD", iolist_to_binary([Record, DistInfo, "/RECORD,,\n"])}],
    Wheel = filename:join(Dir, Name ++ "-" ++ Version ++ "-py3-none-any.whl"),
    {ok, _} = zip:create(Wheel, All),
    Wheel.

hash(Bin) ->
    B64 = base64:encode(crypto:hash(sha256, Bin)),
    binary:replace(binary:replace(binary:replace(B64, <<"+">>, <<"-">>, [global]), <<"/">>, <<"_">>, [global]),
                   <<"=">>, <<>>, [global]).

%% --- interrupts -----------------------------------------------------------------------------

interrupt(_Config) ->
    [begin
         Ctx = new(Mode),
         not_running = py:interrupt(Ctx),
         Self = self(),
         ok = py:exec(Ctx, <<"def spin(pid):\n"
                             "    erlang.send(pid, 'spinning')\n"
                             "    while True:\n"
                             "        pass\n">>),
         spawn_link(fun() -> Self ! {done, py:call(Ctx, '__main__', spin, [Self])} end),
         receive <<"spinning">> -> ok end,
         ok = py:interrupt(Ctx),
         receive {done, Result} -> {error, interrupted} = Result end,
         {ok, 2} = py:eval(Ctx, <<"1 + 1">>)
     end || Mode <- modes()],
    {error, context_not_found} = py:interrupt(spawn(fun() -> ok end)),
    badarg = try py:interrupt(not_a_pid) catch error:E -> E end.

%% Cleanup written for 4.x (`except KeyboardInterrupt: ...; raise') runs.
interrupt_cleanup(_Config) ->
    Ctx = new(worker),
    Self = self(),
    ok = py:exec(Ctx, <<"def guarded(pid):\n"
                        "    try:\n"
                        "        erlang.send(pid, 'spinning')\n"
                        "        while True:\n"
                        "            pass\n"
                        "    except KeyboardInterrupt:\n"
                        "        erlang.send(pid, 'cleaned up')\n"
                        "        raise\n">>),
    spawn_link(fun() -> Self ! {done, py:call(Ctx, '__main__', guarded, [Self])} end),
    receive <<"spinning">> -> ok end,
    ok = py:interrupt(Ctx),
    receive <<"cleaned up">> -> ok end,
    receive {done, {error, interrupted}} -> ok end,
    {ok, true} = py:eval(<<"issubclass(erlang.Interrupted, KeyboardInterrupt)">>).

%% --- tracing --------------------------------------------------------------------------------

tracing(_Config) ->
    ok = py:clear_traces(),
    {ok, []} = py:get_traces(),
    %% Disabled: spans send nothing.
    ok = py:exec(<<"with erlang.Span('ignored'):\n    pass\n">>),
    ok = py:enable_tracing(),
    [begin
         Ctx = new(Mode),
         ok = py:exec(Ctx, <<"with erlang.Span('outer', user_id=123) as span:\n"
                             "    span.event('checkpoint', items=10)\n"
                             "    span.event('progress', percent=50)\n"
                             "    with erlang.Span('inner'):\n"
                             "        pass\n"
                             "try:\n"
                             "    with erlang.Span('risky'):\n"
                             "        raise ValueError('went wrong')\n"
                             "except ValueError:\n"
                             "    pass\n"
                             "@erlang.trace(name='decorated')\n"
                             "def work():\n"
                             "    return 42\n"
                             "assert work() == 42\n">>)
     end || Mode <- modes()],
    N = 4 * length(modes()),
    true = py_test_util:wait_until(fun() -> {ok, S} = py:get_traces(), length(S) =:= N end, 5000),
    {ok, Spans} = py:get_traces(),
    ByName = fun(Name) -> [S || #{name := Nm} = S <- Spans, Nm =:= Name] end,
    [#{span_id := OuterId, parent_id := undefined, status := "ok", attributes := #{<<"user_id">> := 123},
       events := [#{name := <<"progress">>, time := TE2},
                  #{name := <<"checkpoint">>, attrs := #{<<"items">> := 10}, time := TE1}],
       start_time := T0, end_time := T1, duration_us := D} | _] = ByName(<<"outer">>),
    D = T1 - T0,
    true = TE1 =< TE2,
    [#{parent_id := OuterId, status := "ok"} | _] = ByName(<<"inner">>),
    [#{status := "error", end_attrs := #{<<"exception">> := <<"went wrong">>}} | _] = ByName(<<"risky">>),
    [#{status := "ok"} | _] = ByName(<<"decorated">>),
    ok = py:disable_tracing(),
    ok = py:exec(<<"with erlang.Span('after'):\n    pass\n">>),
    {ok, true} = py:eval(<<"__import__('_erlang_trace')._sink is None">>),
    ok = py:clear_traces(),
    {ok, []} = py:get_traces().

%% --- the Python side --------------------------------------------------------------------------

erlang_in_main(_Config) ->
    ok = py:register_function(h16_add, fun([A, B]) -> A + B end),
    {ok, 12} = py:eval(<<"erlang.call('h16_add', 5, 7)">>),
    {ok, 50} = py:eval(<<"erlang.h16_add(20, 30)">>),
    [{ok, true} = py:eval(new(Mode), <<"erlang is __import__('erlang')">>) || Mode <- modes()],
    ok = py:unregister_function(h16_add).

whereis_and_atom(_Config) ->
    Self = self(),
    true = register(h16_whereis_test, Self),
    try
        [begin
             Ctx = new(Mode),
             {ok, Self} = py:eval(Ctx, <<"erlang.whereis('h16_whereis_test')">>),
             {ok, Self} = py:eval(Ctx, <<"erlang.whereis(b'h16_whereis_test')">>),
             {ok, Self} = py:eval(Ctx, <<"erlang.whereis(erlang.atom('h16_whereis_test'))">>),
             {ok, Self} = py:eval(Ctx, <<"erlang.whereis(erlang._atom('h16_whereis_test'))">>),
             {ok, none} = py:eval(Ctx, <<"erlang.whereis('h16_nobody_registered_this')">>),
             {error, {'TypeError', _}} = py:eval(Ctx, <<"erlang.whereis(123)">>),
             {ok, hello} = py:eval(Ctx, <<"erlang.atom('hello')">>),
             {ok, [ok, {<<"x">>, error}]} = py:eval(Ctx, <<"[erlang.atom('ok'), ('x', erlang.atom('error'))]">>),
             {ok, true} = py:eval(Ctx, <<"erlang.atom('a') == erlang.atom('a')">>),
             {error, {'TypeError', _}} = py:eval(Ctx, <<"erlang.atom(1)">>),
             {ok, none} = py:eval(Ctx, <<"erlang.send('h16_whereis_test', ('by name', 1))">>),
             receive {<<"by name">>, 1} -> ok end,
             {ok, none} = py:eval(Ctx, <<"erlang.send(erlang.atom('h16_whereis_test'), 2)">>),
             receive 2 -> ok end
         end || Mode <- modes()]
    after
        unregister(h16_whereis_test)
    end,
    ok.

send_errors(_Config) ->
    Dead = spawn(fun() -> ok end),
    Mon = monitor(process, Dead),
    receive {'DOWN', Mon, process, Dead, _} -> ok end,
    [begin
         Ctx = new(Mode),
         {error, {'ProcessError', _}} = py:eval(Ctx, <<"erlang.send(p, 'dead')">>, #{p => Dead}),
         ok = py:exec(Ctx, <<"def caught(p):\n"
                             "    try:\n"
                             "        erlang.send(p, 'x')\n"
                             "    except erlang.ProcessError:\n"
                             "        return 'caught'\n">>),
         {ok, <<"caught">>} = py:call(Ctx, '__main__', caught, [Dead]),
         {ok, true} = py:eval(Ctx, <<"issubclass(erlang.ProcessError, Exception)">>),
         %% A name nobody registered: erlang.NotRegistered, both a ProcessError (ours) and the
         %% TypeError 4.1 raised for every name destination, so either handler catches it.
         {error, {'NotRegistered', _}} = py:eval(Ctx, <<"erlang.send('h16_no_such_name', 1)">>),
         ok = py:exec(Ctx, <<"def unregistered(cls):\n"
                             "    try:\n"
                             "        erlang.send('h16_no_such_name', 'x')\n"
                             "    except cls:\n"
                             "        return True\n">>),
         {ok, [true, true]} = py:eval(Ctx, <<"[unregistered(TypeError), unregistered(erlang.ProcessError)]">>),
         {error, {'TypeError', _}} = py:eval(Ctx, <<"erlang.send(42, 1)">>),
         %% 4.x's pattern: a handler naming erlang.SuspensionRequired ahead of `except
         %% Exception' lets the real error through (the name resolves; it is never raised).
         ok = py:exec(Ctx, <<"def guarded(p):\n"
                             "    try:\n"
                             "        erlang.send(p, 'x')\n"
                             "    except erlang.SuspensionRequired:\n"
                             "        raise\n"
                             "    except Exception as e:\n"
                             "        return type(e).__name__\n">>),
         {ok, <<"ProcessError">>} = py:call(Ctx, '__main__', guarded, [Dead]),
         {ok, [true, false]} = py:eval(Ctx, <<"[issubclass(erlang.SuspensionRequired, BaseException), "
                                             "issubclass(erlang.SuspensionRequired, Exception)]">>)
     end || Mode <- modes()],
    ok.

hasattr_registered(_Config) ->
    {ok, false} = py:eval(<<"hasattr(erlang, 'h16_not_registered')">>),
    {ok, true} = py:eval(<<"hasattr(erlang, 'ProcessError') and isinstance(erlang.ProcessError, type)">>),
    ok = py:register_function(h16_reg, fun([]) -> registered end),
    {ok, true} = py:eval(<<"hasattr(erlang, 'h16_reg')">>),
    {ok, <<"registered">>} = py:eval(<<"erlang.h16_reg()">>),  % an atom arrives in Python as str
    ok = py:unregister_function(h16_reg),
    {ok, false} = py:eval(<<"hasattr(erlang, 'h16_reg')">>),
    {error, {'AttributeError', _}} = py:eval(<<"erlang.h16_reg">>),
    {error, {'ImportError', _}} = py:exec(<<"from erlang import h16_reg">>).

%% erlang.call from threading.Thread and ThreadPoolExecutor workers (upstream's docs/threading.md).
thread_callbacks(_Config) ->
    ok = py:register_function(h16_double, fun([X]) -> X * 2 end),
    ok = py:register_function(h16_fail, fun([_]) -> error(odd_number) end),
    %% The process running the call dies before answering: the thread still gets one answer.
    ok = py:register_function(h16_killed, fun([]) -> exit(self(), kill) end),
    Code = <<"import threading\n"
             "from concurrent.futures import ThreadPoolExecutor\n"
             "def by_pool():\n"
             "    with ThreadPoolExecutor(max_workers=4) as ex:\n"
             "        return list(ex.map(lambda x: erlang.call('h16_double', x), range(20)))\n"
             "def by_threads():\n"
             "    out = [None] * 5\n"
             "    def body(i):\n"
             "        out[i] = erlang.call('h16_double', erlang.call('h16_double', i))\n"
             "    ts = [threading.Thread(target=body, args=(i,)) for i in range(5)]\n"
             "    [t.start() for t in ts]\n"
             "    [t.join() for t in ts]\n"
             "    return out\n"
             "def failing():\n"
             "    with ThreadPoolExecutor(max_workers=1) as ex:\n"
             "        try:\n"
             "            ex.submit(erlang.call, 'h16_fail', 1).result()\n"
             "        except erlang.ErlangError as e:\n"
             "            return e.args[0]\n"
             "def killed():\n"
             "    with ThreadPoolExecutor(max_workers=1) as ex:\n"
             "        try:\n"
             "            ex.submit(erlang.call, 'h16_killed').result()\n"
             "        except RuntimeError as e:\n"
             "            return str(e)\n">>,
    Expected = [X * 2 || X <- lists:seq(0, 19)],
    [begin
         Ctx = new(Mode),
         ok = py:exec(Ctx, Code),
         {ok, Expected} = py:call(Ctx, '__main__', by_pool, []),
         {ok, [0, 4, 8, 12, 16]} = py:call(Ctx, '__main__', by_threads, []),
         {ok, <<"error">>} = py:call(Ctx, '__main__', failing, []),
         {ok, <<"the Erlang process that was to run this callback exited">>} = py:call(Ctx, '__main__', killed, [])
     end || Mode <- modes()],
    ok = py:unregister_function(h16_killed),
    ok = py:unregister_function(h16_double),
    ok = py:unregister_function(h16_fail).

%% The context thread waits for a Python thread that calls Erlang: no deadlock, also when the
%% Erlang function calls Python on another context.
thread_callback_while_waiting(_Config) ->
    Other = new(worker),
    ok = py:register_function(h16_via_other, fun([X]) -> {ok, V} = py:eval(Other, <<"x * 10">>, #{x => X}), V end),
    [begin
         Ctx = new(Mode),
         {ok, 70} = py:eval(Ctx, <<"__import__('concurrent.futures', fromlist=['ThreadPoolExecutor'])"
                                   ".ThreadPoolExecutor(max_workers=1).submit(erlang.call, 'h16_via_other', 7).result()">>)
     end || Mode <- modes()],
    ok = py:unregister_function(h16_via_other).

async_call(_Config) ->
    ok = py:register_function(h16_async_double, fun([X]) -> X * 2 end),
    Code = <<"import asyncio\n"
             "async def gather50():\n"
             "    return await asyncio.gather(*[erlang.async_call('h16_async_double', i) for i in range(50)])\n"
             "def run_gather50():\n"
             "    return asyncio.run(gather50())\n">>,
    Expected = [I * 2 || I <- lists:seq(0, 49)],
    [begin
         Ctx = new(Mode),
         ok = py:exec(Ctx, Code),
         {ok, Expected} = py:call(Ctx, '__main__', run_gather50, [])
     end || Mode <- modes()],
    %% In a task of the context's own event loop (py:async_call of a coroutine function).
    ok = py:exec(<<"async def h16_co(x):\n    return await erlang.async_call('h16_async_double', x)\n">>),
    {ok, 42} = py:async_await(py:async_call('__main__', h16_co, [21])),
    ok = py:unregister_function(h16_async_double).

%% --- values ---------------------------------------------------------------------------------

bytes_tuple(_Config) ->
    {ok, <<"bytes">>} = py:eval(<<"type(v).__name__">>, #{v => {bytes, <<"abc">>}}),
    {ok, true} = py:eval(<<"v == b'h\\xc3\\xa9'">>, #{v => {bytes, <<"hé"/utf8>>}}),
    {ok, [<<"bytes">>, <<"str">>]} = py:eval(<<"[type(x).__name__ for x in v]">>, #{v => [{bytes, <<>>}, <<"s">>]}),
    %% Only a binary makes bytes: any other {bytes, _} stays a tuple.
    {ok, <<"tuple">>} = py:eval(<<"type(v).__name__">>, #{v => {bytes, 1}}),
    {ok, <<"abc">>} = py:call(builtins, bytes, [{bytes, <<"abc">>}]).
