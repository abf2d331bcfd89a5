%% -*- coding: utf-8 -*-
%% Tests of the public API in src/py.erl and the pool functions of src/py_context_router.erl.
-module(py_api_SUITE).

-export([suite/0, all/0, groups/0,
         init_per_suite/1, end_per_suite/1]).

-export([call_atoms/1, call_binaries/1, call_strings/1, call_mixed_name_types/1,
         call_kwargs/1, call_kwargs_with_context/1, call_with_timeout/1,
         call_infinity_timeout/1, call_timeout_expires/1,
         call_dotted_module/1, call_dotted_function/1,
         eval_simple/1, eval_iolist/1, eval_locals/1, eval_binary_locals/1,
         eval_with_timeout/1, eval_does_not_leak_locals/1,
         exec_simple/1, exec_then_call_main/1, exec_then_call_main_dotted/1,
         exec_then_eval/1,
         error_zero_division/1, error_name/1, error_syntax_exec/1, error_syntax_eval/1,
         error_module_not_found/1, error_missing_function/1, error_raised_in_python/1,
         error_then_success/1,
         last_traceback_after_error/1, last_traceback_fresh_process/1,
         last_traceback_is_per_process/1,
         badarg_args_not_list/1, badarg_kwargs_not_map/1, badarg_bad_timeout/1,
         badarg_bad_names/1, badarg_code_not_iodata/1, badarg_locals_not_map/1,
         badarg_context_opts/1, badarg_exec2_not_pid/1,
         nul_in_module_name/1, nul_in_function_name/1, nul_in_source/1,
         version/1, execution_mode/1, num_contexts_default/1, contexts_list/1,
         context_0/1, context_1/1, context_1_out_of_range/1,
         bind_context/1, bind_context_badarg/1, unbind_context_without_bind/1,
         is_ref/1]).

suite() -> [{timetrap, {seconds, 60}}].

all() ->
    [{group, call}, {group, eval}, {group, exec}, {group, errors}, {group, traceback},
     {group, badarg}, {group, info}, {group, contexts}].

groups() ->
    [{call, [parallel],
      [call_atoms, call_binaries, call_strings, call_mixed_name_types,
       call_kwargs, call_kwargs_with_context, call_with_timeout,
       call_infinity_timeout, call_timeout_expires,
       call_dotted_module, call_dotted_function]},
     {eval, [parallel],
      [eval_simple, eval_iolist, eval_locals, eval_binary_locals, eval_with_timeout,
       eval_does_not_leak_locals]},
     {exec, [parallel],
      [exec_simple, exec_then_call_main, exec_then_call_main_dotted, exec_then_eval]},
     {errors, [parallel],
      [error_zero_division, error_name, error_syntax_exec, error_syntax_eval,
       error_module_not_found, error_missing_function, error_raised_in_python,
       error_then_success, nul_in_module_name, nul_in_function_name, nul_in_source]},
     {traceback, [],
      [last_traceback_after_error, last_traceback_fresh_process,
       last_traceback_is_per_process]},
     {badarg, [parallel],
      [badarg_args_not_list, badarg_kwargs_not_map, badarg_bad_timeout, badarg_bad_names,
       badarg_code_not_iodata, badarg_locals_not_map, badarg_context_opts,
       badarg_exec2_not_pid]},
     {info, [parallel],
      [version, execution_mode, num_contexts_default, contexts_list, is_ref]},
     {contexts, [],
      [context_0, context_1, context_1_out_of_range, bind_context, bind_context_badarg,
       unbind_context_without_bind]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).


%% --- call --------------------------------------------------------------------------------

call_atoms(_Config) ->
    {ok, 4.0} = py:call(math, sqrt, [16]),
    {ok, 3} = py:call(builtins, len, [[a, b, c]]),
    {ok, 1024} = py:call(builtins, pow, [2, 10]),
    {ok, <<"HELLO">>} = py:call(builtins, 'str.upper', [<<"hello">>]).

call_binaries(_Config) ->
    {ok, 4.0} = py:call(<<"math">>, <<"sqrt">>, [16]),
    {ok, 120} = py:call(<<"math">>, <<"factorial">>, [5]).

call_strings(_Config) ->
    {ok, 4.0} = py:call("math", "sqrt", [16]),
    {ok, 6} = py:call("math", "gcd", [12, 18]).

call_mixed_name_types(_Config) ->
    {ok, 5.0} = py:call(math, "sqrt", [25]),
    {ok, 5.0} = py:call("math", <<"sqrt">>, [25]),
    {ok, 5.0} = py:call(<<"math">>, sqrt, [25]).

call_kwargs(_Config) ->
    {ok, 255} = py:call(builtins, int, [<<"ff">>], #{base => 16}),
    {ok, 255} = py:call(builtins, int, [<<"ff">>], #{<<"base">> => 16}),
    {ok, [3, 2, 1]} = py:call(builtins, sorted, [[2, 3, 1]], #{reverse => true}),
    {ok, <<"[1,2]">>} = py:call(json, dumps, [[1, 2]], #{separators => {<<",">>, <<":">>}}),
    %% An empty kwargs map is the same as none.
    {ok, [1, 2, 3]} = py:call(builtins, sorted, [[2, 3, 1]], #{}),
    %% An unknown keyword reaches Python, which rejects it.
    {error, {'TypeError', _}} = py:call(builtins, sorted, [[1]], #{no_such_kw => 1}).

call_kwargs_with_context(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    {ok, 255} = py:call(Ctx, builtins, int, [<<"ff">>], #{kwargs => #{base => 16}}),
    {ok, 255} = py:call(Ctx, builtins, int, [<<"ff">>], #{kwargs => #{base => 16}, timeout => 5000}),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    ok = py_context:stop(Ctx).

call_with_timeout(_Config) ->
    {ok, 4.0} = py:call(math, sqrt, [16], #{}, 5000),
    {ok, 255} = py:call(builtins, int, [<<"ff">>], #{base => 16}, 5000).

call_infinity_timeout(_Config) ->
    {ok, 4.0} = py:call(math, sqrt, [16], #{}, infinity),
    %% A zero timeout may or may not beat the worker; either way the answer is well-formed
    %% and nothing is left in the mailbox.
    case py:call(builtins, abs, [-7], #{}, 0) of
        {ok, 7} -> ok;
        {error, timeout} -> ok
    end,
    %% served after the abs call on the same context: a late reply of it would be here first
    {ok, 2.0} = py:call(math, sqrt, [4]),
    {messages, []} = process_info(self(), messages).

call_timeout_expires(_Config) ->
    T0 = erlang:monotonic_time(millisecond),
    {error, timeout} = py:call(time, sleep, [0.5], #{}, 50),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    true = Elapsed < 1000,
    %% The same process can keep calling (it waits for the sleep to end on its context).
    {ok, 4.0} = py:call(math, sqrt, [16]).

call_dotted_module(_Config) ->
    {ok, <<"a/b">>} = py:call('os.path', join, [<<"a">>, <<"b">>]),
    {ok, <<"c.txt">>} = py:call(<<"os.path">>, basename, [<<"/x/y/c.txt">>]),
    {ok, <<"/x/y">>} = py:call("os.path", "dirname", [<<"/x/y/c.txt">>]),
    {ok, false} = py:call('xml.etree.ElementTree', iselement, [none]),
    {ok, <<"mimetext">>} = py:call('email.mime.text', 'MIMEText.__name__.lower', []),
    {ok, <<"a/b/c">>} = py:call('os.path', join, [<<"a">>, <<"b">>, <<"c">>]).

call_dotted_function(_Config) ->
    {ok, <<"a/b">>} = py:call(os, 'path.join', [<<"a">>, <<"b">>]),
    {ok, <<"c.txt">>} = py:call(<<"os">>, <<"path.basename">>, [<<"/x/c.txt">>]),
    %% Attribute chains on an imported module's objects.
    {ok, <<"1,2">>} = py:call(builtins, 'str.join', [<<",">>, [<<"1">>, <<"2">>]]),
    {error, {'AttributeError', _}} = py:call(os, 'path.no_such_fn', [<<"a">>]).

%% --- eval --------------------------------------------------------------------------------

eval_simple(_Config) ->
    {ok, 4} = py:eval(<<"2 + 2">>),
    {ok, 4} = py:eval("2 + 2"),
    {ok, [0, 1, 4, 9]} = py:eval(<<"[i * i for i in range(4)]">>),
    {ok, <<"abc">>} = py:eval(<<"'a' + 'b' + 'c'">>),
    {ok, none} = py:eval(<<"None">>).

eval_iolist(_Config) ->
    {ok, 3} = py:eval([<<"1 + ">>, "2"]),
    {ok, 6} = py:eval([$1, [<<" + 2">>, [" + 3"]]]),
    %% A unicode charlist is accepted as source.
    {ok, 2} = py:eval("len('é€')").

eval_locals(_Config) ->
    {ok, 3} = py:eval(<<"x + y">>, #{x => 1, y => 2}),
    {ok, <<"hi there">>} = py:eval(<<"a + ' ' + b">>, #{a => <<"hi">>, b => <<"there">>}),
    {ok, 10} = py:eval(<<"sum(xs)">>, #{xs => [1, 2, 3, 4]}),
    {ok, 6} = py:eval(<<"x * 2">>, #{x => 3}, 5000),
    %% An empty locals map behaves like eval/1.
    {ok, 7} = py:eval(<<"3 + 4">>, #{}).

eval_binary_locals(_Config) ->
    {ok, 42} = py:eval(<<"answer">>, #{<<"answer">> => 42}),
    {ok, 3} = py:eval(<<"a + b">>, #{a => 1, <<"b">> => 2}).

eval_with_timeout(_Config) ->
    {ok, 4} = py:eval(<<"2 + 2">>, #{}, 5000),
    {ok, 4} = py:eval(<<"2 + 2">>, #{}, infinity),
    {error, timeout} = py:eval(<<"__import__('time').sleep(0.5)">>, #{}, 50),
    {ok, 1} = py:eval(<<"1">>).

eval_does_not_leak_locals(_Config) ->
    {ok, 5} = py:eval(<<"leaky_local_xyz">>, #{leaky_local_xyz => 5}),
    {error, {'NameError', _}} = py:eval(<<"leaky_local_xyz">>).

%% --- exec --------------------------------------------------------------------------------

exec_simple(_Config) ->
    ok = py:exec(<<"x = 21\ny = x * 2">>),
    {ok, 42} = py:eval(<<"y">>),
    ok = py:exec("z = 1"),
    {ok, 1} = py:eval(<<"z">>),
    ok = py:exec([<<"w = ">>, "3"]),
    {ok, 3} = py:eval(<<"w">>).

exec_then_call_main(_Config) ->
    ok = py:exec(<<"def add(a, b=10):\n    return a + b\n">>),
    {ok, 11} = py:call('__main__', add, [1]),
    {ok, 3} = py:call('__main__', add, [1, 2]),
    {ok, 6} = py:call('__main__', add, [1], #{b => 5}),
    {ok, 3} = py:call(<<"__main__">>, <<"add">>, [1, 2]),
    {ok, 3} = py:call("__main__", "add", [1, 2]),
    {error, {'NameError', _}} = py:call('__main__', not_defined_here_xyz, []).

exec_then_call_main_dotted(_Config) ->
    ok = py:exec(<<"class K:\n    @staticmethod\n    def m(x):\n        return x + 1\n">>),
    {ok, 8} = py:call('__main__', 'K.m', [7]),
    {error, {'AttributeError', _}} = py:call('__main__', 'K.nope', []).

exec_then_eval(_Config) ->
    ok = py:exec(<<"import math\nhalf_pi = math.pi / 2">>),
    {ok, 1.0} = py:eval(<<"math.sin(half_pi)">>),
    %% Locals see the globals too.
    {ok, 3.0} = py:eval(<<"half_pi * 0 + k">>, #{k => 3.0}).

%% --- errors ------------------------------------------------------------------------------

error_zero_division(_Config) ->
    {error, {'ZeroDivisionError', Msg}} = py:eval(<<"1/0">>),
    true = is_list(Msg),
    true = io_lib:printable_unicode_list(Msg),
    "division by zero" = Msg,
    {error, {'ZeroDivisionError', _}} = py:call(operator, truediv, [1, 0]).

error_name(_Config) ->
    {error, {'NameError', Msg}} = py:eval(<<"undefined_name_xyz">>),
    true = lists:prefix("name 'undefined_name_xyz'", Msg).

error_syntax_exec(_Config) ->
    {error, {'SyntaxError', Msg}} = py:exec(<<"def (:">>),
    true = is_list(Msg).

error_syntax_eval(_Config) ->
    {error, {'SyntaxError', _}} = py:eval(<<"1 +">>),
    %% Statements are not expressions.
    {error, {'SyntaxError', _}} = py:eval(<<"x = 1">>).

error_module_not_found(_Config) ->
    {error, {'ModuleNotFoundError', Msg}} = py:call(no_such_module_xyz, f, []),
    true = string:find(Msg, "no_such_module_xyz") =/= nomatch,
    {error, {'ModuleNotFoundError', _}} = py:call('no_such_pkg_xyz.sub', f, []).

error_missing_function(_Config) ->
    {error, {'AttributeError', Msg}} = py:call(math, no_such_function_xyz, []),
    true = string:find(Msg, "no_such_function_xyz") =/= nomatch.

error_raised_in_python(_Config) ->
    ok = py:exec(<<"class MyCustomError(Exception): pass\n"
                   "def boom(): raise MyCustomError('custom é message')\n"/utf8>>),
    {error, {'MyCustomError', Msg}} = py:call('__main__', boom, []),
    "custom é message" = Msg,
    {error, {'ValueError', "bad"}} = py:exec(<<"raise ValueError('bad')">>),
    {error, {'KeyError', _}} = py:eval(<<"{}['missing']">>).

error_then_success(_Config) ->
    {error, {'ZeroDivisionError', _}} = py:eval(<<"1/0">>),
    {ok, 2} = py:eval(<<"1 + 1">>),
    {error, {'TypeError', _}} = py:call(math, sqrt, [<<"x">>]),
    {ok, 3.0} = py:call(math, sqrt, [9]).

nul_in_module_name(_Config) ->
    {error, _} = py:call(<<"os\0path">>, join, [<<"a">>]),
    {error, _} = py:call("math\0", sqrt, [4]),
    {error, _} = py:call('math\0', sqrt, [4]),
    %% Still working afterwards.
    {ok, 2.0} = py:call(math, sqrt, [4]).

nul_in_function_name(_Config) ->
    {error, _} = py:call(math, <<"sqrt\0evil">>, [4]),
    {ok, 2.0} = py:call(math, sqrt, [4]).

nul_in_source(_Config) ->
    {error, {'SyntaxError', _}} = py:eval(<<"1\0 + 1">>),
    {error, {'SyntaxError', _}} = py:exec(<<"x = 1\0">>),
    {ok, 2} = py:eval(<<"1 + 1">>).

%% --- traceback ---------------------------------------------------------------------------

last_traceback_after_error(_Config) ->
    ok = py:exec(<<"def inner():\n    return 1/0\ndef outer():\n    return inner()\n">>),
    {error, {'ZeroDivisionError', _}} = py:call('__main__', outer, []),
    TB = py:last_traceback(),
    true = is_binary(TB),
    {_, _} = binary:match(TB, <<"Traceback">>),
    {_, _} = binary:match(TB, <<"ZeroDivisionError">>),
    {_, _} = binary:match(TB, <<"inner">>),
    %% A later error replaces it.
    {error, {'NameError', _}} = py:eval(<<"nope_xyz">>),
    TB2 = py:last_traceback(),
    {_, _} = binary:match(TB2, <<"NameError">>),
    nomatch = binary:match(TB2, <<"ZeroDivisionError">>).

last_traceback_fresh_process(_Config) ->
    Self = self(),
    Pid = spawn(fun() -> Self ! {tb, self(), py:last_traceback()} end),
    receive {tb, Pid, undefined} -> ok
    after 5000 -> ct:fail(no_reply)
    end.

last_traceback_is_per_process(_Config) ->
    {error, {'ZeroDivisionError', _}} = py:eval(<<"1/0">>),
    Self = self(),
    Pid = spawn(fun() ->
                        {ok, 1} = py:eval(<<"1">>),
                        Self ! {tb, self(), py:last_traceback()}
                end),
    receive {tb, Pid, undefined} -> ok
    after 5000 -> ct:fail(no_reply)
    end,
    true = is_binary(py:last_traceback()).

%% --- badarg ------------------------------------------------------------------------------

badarg_args_not_list(_Config) ->
    badarg = raised(fun() -> py:call(math, sqrt, 16) end),
    badarg = raised(fun() -> py:call(math, sqrt, {16}) end),
    badarg = raised(fun() -> py:call(math, sqrt, 16, #{}) end),
    badarg = raised(fun() -> py:call(math, sqrt, 16, #{}, 1000) end).

badarg_kwargs_not_map(_Config) ->
    badarg = raised(fun() -> py:call(math, sqrt, [16], [{base, 16}]) end),
    badarg = raised(fun() -> py:call(math, sqrt, [16], [], 1000) end),
    {ok, Ctx} = py_context:new(#{}),
    badarg = raised(fun() -> py:call(Ctx, math, sqrt, [16], #{kwargs => [a]}) end),
    ok = py_context:stop(Ctx).

badarg_bad_timeout(_Config) ->
    badarg = raised(fun() -> py:call(math, sqrt, [16], #{}, -1) end),
    badarg = raised(fun() -> py:call(math, sqrt, [16], #{}, 1.5) end),
    badarg = raised(fun() -> py:call(math, sqrt, [16], #{}, forever) end),
    badarg = raised(fun() -> py:eval(<<"1">>, #{}, -5) end),
    badarg = raised(fun() -> py:eval(<<"1">>, #{}, soon) end),
    {ok, Ctx} = py_context:new(#{}),
    badarg = raised(fun() -> py:call(Ctx, math, sqrt, [16], #{timeout => -1}) end),
    badarg = raised(fun() -> py:call(Ctx, math, sqrt, [16], #{timeout => "10"}) end),
    %% Longer than a receive can wait (2^32-1 ms): refused before anything is sent, as OTP's
    %% own calls refuse it (timeout_value), rather than failing after the request ran.
    Huge = 1 bsl 40,
    badarg = raised(fun() -> py:call(math, sqrt, [16], #{}, Huge) end),
    badarg = raised(fun() -> py:call(Ctx, math, sqrt, [16], #{timeout => Huge}) end),
    badarg = raised(fun() -> py_context:call(Ctx, math, sqrt, [16], #{}, Huge) end),
    badarg = raised(fun() -> py:eval(<<"1">>, #{}, Huge) end),
    badarg = raised(fun() -> py_semaphore:acquire(Huge) end),
    {ok, 4.0} = py:call(math, sqrt, [16], #{}, 16#FFFFFFFF),
    ok = py_context:stop(Ctx).

badarg_bad_names(_Config) ->
    badarg = raised(fun() -> py:call(42, sqrt, [16]) end),
    badarg = raised(fun() -> py:call(math, 42, [16]) end),
    badarg = raised(fun() -> py:call({math}, sqrt, [16]) end).

badarg_code_not_iodata(_Config) ->
    badarg = raised(fun() -> py:eval(42) end),
    badarg = raised(fun() -> py:eval(foo) end),
    badarg = raised(fun() -> py:eval({<<"1">>}) end),
    badarg = raised(fun() -> py:eval([foo]) end),
    badarg = raised(fun() -> py:exec(42) end),
    badarg = raised(fun() -> py:exec(foo) end),
    badarg = raised(fun() -> py:exec([-1]) end),
    badarg = raised(fun() -> py:eval(42, #{}, 1000) end),
    {ok, Ctx} = py_context:new(#{}),
    badarg = raised(fun() -> py:eval(Ctx, 42) end),
    badarg = raised(fun() -> py:exec(Ctx, 42) end),
    ok = py_context:stop(Ctx).

badarg_locals_not_map(_Config) ->
    badarg = raised(fun() -> py:eval(<<"x">>, [{x, 1}]) end),
    badarg = raised(fun() -> py:eval(<<"x">>, [{x, 1}], 1000) end).

badarg_context_opts(_Config) ->
    badarg = raised(fun() -> py_context:new([{mode, worker}]) end),
    badarg = raised(fun() -> py_context:stop(not_a_pid) end).

badarg_exec2_not_pid(_Config) ->
    badarg = raised(fun() -> py:exec(not_a_pid, <<"x = 1">>) end).

%% --- info --------------------------------------------------------------------------------

version(_Config) ->
    {ok, V} = py:version(),
    true = is_binary(V),
    <<"3.", _/binary>> = V,
    %% It is the version of the interpreter that runs our code.
    {ok, V} = py:eval(<<"__import__('platform').python_version()">>).

execution_mode(_Config) ->
    multi_executor = py:execution_mode().

num_contexts_default(_Config) ->
    N = erlang:system_info(schedulers),
    N = py_context_router:num_contexts().

contexts_list(_Config) ->
    Ctxs = py_context_router:contexts(),
    N = py_context_router:num_contexts(),
    N = length(Ctxs),
    N = length(lists:usort(Ctxs)),
    true = lists:all(fun erlang:is_process_alive/1, Ctxs).

is_ref(_Config) ->
    {ok, Obj} = py:eval(<<"object()">>),
    true = py:is_ref(Obj),
    false = py:is_ref(make_ref()),
    false = py:is_ref(42),
    false = py:is_ref(<<"object">>).

%% --- contexts ----------------------------------------------------------------------------

context_0(_Config) ->
    Ctx = py:context(),
    true = is_pid(Ctx),
    true = lists:member(Ctx, py_context_router:contexts()),
    %% Stable for the process.
    Ctx = py:context(),
    Ctx = py_context_router:get_context().

context_1(_Config) ->
    N = py_context_router:num_contexts(),
    Ctxs = [py:context(I) || I <- lists:seq(1, N)],
    Ctxs = py_context_router:contexts(),
    %% Each pool context runs on a thread of its own.
    Ids = [begin {ok, Id} = py:call(C, threading, get_native_id, []), Id end || C <- Ctxs],
    N = length(lists:usort(Ids)).

context_1_out_of_range(_Config) ->
    N = py_context_router:num_contexts(),
    badarg = raised(fun() -> py:context(0) end),
    badarg = raised(fun() -> py:context(N + 1) end),
    badarg = raised(fun() -> py:context(first) end).

bind_context(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    {ok, CtxThread} = py:call(Ctx, threading, get_native_id, []),
    {ok, PoolThread} = py:call(threading, get_native_id, []),
    true = CtxThread =/= PoolThread,
    ok = py_context_router:bind_context(Ctx),
    Ctx = py:context(),
    {ok, CtxThread} = py:call(threading, get_native_id, []),
    {ok, CtxThread} = py:eval(<<"__import__('threading').get_native_id()">>),
    ok = py_context_router:unbind_context(),
    true = py:context() =/= Ctx,
    {ok, PoolThread} = py:call(threading, get_native_id, []),
    %% Binding to another pool context moves the calls there.
    Other = hd([C || C <- py_context_router:contexts(), C =/= py:context()] ++ [py:context()]),
    ok = py_context_router:bind_context(Other),
    Other = py:context(),
    {ok, OtherThread} = py:call(Other, threading, get_native_id, []),
    {ok, OtherThread} = py:call(threading, get_native_id, []),
    ok = py_context_router:unbind_context(),
    ok = py_context:stop(Ctx).

bind_context_badarg(_Config) ->
    badarg = raised(fun() -> py_context_router:bind_context(self()) end),
    badarg = raised(fun() -> py_context_router:bind_context(not_a_pid) end),
    {ok, Ctx} = py_context:new(#{}),
    ok = py_context:stop(Ctx),
    badarg = raised(fun() -> py_context_router:bind_context(Ctx) end).

unbind_context_without_bind(_Config) ->
    Ctx = py:context(),
    ok = py_context_router:unbind_context(),
    Ctx = py:context(),
    {ok, 2.0} = py:call(math, sqrt, [4]).

%% --- helpers -----------------------------------------------------------------------------

%% The error reason F raises (error class), or {returned, Value} when it raises nothing.
raised(F) ->
    try F() of
        Value -> {returned, Value}
    catch
        error:Reason -> Reason
    end.
