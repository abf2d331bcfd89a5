%% -*- coding: utf-8 -*-
%% @doc Reproducers of the inputs that crashed the node or corrupted a context (issue 14,
%% "Classes found by attack" in the reliability design notes), one case per finding. Each case
%% failed (SIGABRT, SIGSEGV, a wrong result or a 5 s wait) before its fix; see
%% docs/reliability.md, "Hardening: identity and borrowed references".
%%
%% Cases run in worker and owngil mode where the finding applies; the owngil part skips on
%% Pythons without OWN_GIL contexts (before 3.13), with the reason in the case's comment.
-module(py_hardening_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).

-export([stale_reference_owngil/1, worker_reference_outlives_its_context/1, stale_env/1,
         reset_while_converting_locals/1, reset_while_converting_kwargs/1, erlang_module_dropped/1,
         start_failure_reported_at_once/1, event_loop_of_stopped_context/1,
         erlang_types_hostile_calls/1]).

-import(py_test_util, [flush/0]).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [stale_reference_owngil, worker_reference_outlives_its_context, stale_env,
     reset_while_converting_locals, reset_while_converting_kwargs, erlang_module_dropped,
     event_loop_of_stopped_context, start_failure_reported_at_once, erlang_types_hostile_calls].

%% How many stop/new cycles a case tries: the allocator hands a new context or interpreter the
%% address of the one just freed in most cycles, and every cycle must be refused.
-define(CYCLES, 12).

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    OwnGil = py_test_util:owngil_works(),
    [{owngil, OwnGil} | Config].

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

init_per_testcase(_Case, Config) ->
    _ = flush(),
    Config.

end_per_testcase(_Case, _Config) ->
    ok.

modes(Config) ->
    case ?config(owngil, Config) of
        true -> [worker, owngil];
        false -> [worker]
    end.

new_ctx(Mode) ->
    {ok, Ctx} = py_context:new(#{mode => Mode}),
    Ctx.

%% Stops Ctx and lets its NIF resource go (the registry row and this process's copies), so
%% that the next context may be allocated where it was.
stop_and_forget(Ctx) ->
    ok = py_context:stop(Ctx),
    true = erlang:garbage_collect(),
    ok.

owngil_or_skip(Config, Fun) ->
    case ?config(owngil, Config) of
        true -> Fun();
        false -> {skip, "OWN_GIL contexts need Python 3.13+"}
    end.

%% --- finding 1: an object of an ended interpreter ------------------------------------------

%% An object reference of a stopped owngil context, passed to a new owngil context (usually
%% given the dead interpreter's address), to a worker context, and to the functions that work
%% on the object: refused every time, never read. Before the fix: free(): invalid pointer
%% (SIGABRT) on `o.clear()`, and `repr(o)` read freed memory.
stale_reference_owngil(Config) ->
    owngil_or_skip(Config, fun() ->
        Worker = new_ctx(worker),
        [begin
             C1 = new_ctx(owngil),
             {ok, S} = py:eval(C1, <<"{str(i) * 20 for i in range(1000)}">>),
             {ok, O} = py:eval(C1, <<"object()">>),
             true = py:is_ref(S),
             {context, _} = py_nif:object_owner(S),
             stop_and_forget(C1),
             gone = py_nif:object_owner(S),
             C2 = new_ctx(owngil),
             Refused = [py:eval(C, Code, #{o => Ref})
                        || C <- [C2, Worker], Ref <- [S, O],
                           Code <- [<<"o.clear()">>, <<"repr(o)">>, <<"[o]">>]]
                 ++ [py:call(C2, builtins, repr, [S]),
                     py:call(C2, builtins, len, [[]], #{kwargs => #{x => S}})],
             [true = is_stale_reference_error(R) || R <- Refused],
             {error, interpreter_gone} = py:getattr(S, '__class__'),
             {error, interpreter_gone} = py:call_method(S, clear, []),
             {error, interpreter_gone} = py:to_term(S),
             %% C2 is unharmed.
             {ok, 3} = py:eval(C2, <<"len({1, 2, 3})">>),
             stop_and_forget(C2)
         end || _ <- lists:seq(1, ?CYCLES)],
        ok = py_context:stop(Worker)
    end).

is_stale_reference_error({error, {'ValueError', Msg}}) ->
    lists:prefix("a Python object reference whose interpreter has ended", Msg);
is_stale_reference_error(_) ->
    false.

%% The worker-mode half of finding 1: a worker context's objects live in the main interpreter,
%% which never ends, so they stay usable on any worker context after their context stopped.
worker_reference_outlives_its_context(_Config) ->
    [begin
         C1 = new_ctx(worker),
         {ok, S} = py:eval(C1, <<"{str(i) * 20 for i in range(1000)}">>),
         stop_and_forget(C1),
         main = py_nif:object_owner(S),
         C2 = new_ctx(worker),
         {ok, 1000} = py:eval(C2, <<"len(o)">>, #{o => S}),
         {ok, none} = py:eval(C2, <<"o.clear()">>, #{o => S}),
         {ok, 0} = py:eval(C2, <<"len(o)">>, #{o => S}),
         stop_and_forget(C2)
     end || _ <- lists:seq(1, 3)],
    ok.

%% --- finding 2: a local env of a stopped context --------------------------------------------

%% An env made on a context that stopped, used on a new context (often at the dead one's
%% address): refused with badarg as for any other context's env, for every pair of modes.
%% Before the fix: SIGABRT (an owngil env on a worker context) or the old namespace's data.
stale_env(Config) ->
    Pairs = [{A, B} || A <- modes(Config), B <- modes(Config)],
    [begin
         C1 = new_ctx(A),
         {ok, Env} = py_context:create_local_env(C1),
         ok = py_context:exec(C1, <<"x = 'old'">>, Env),
         {ok, <<"old">>} = py_context:eval(C1, <<"x">>, #{}, 5000, Env),
         stop_and_forget(C1),
         C2 = new_ctx(B),
         {'EXIT', {badarg, _}} = (catch py_context:eval(C2, <<"x">>, #{}, 5000, Env)),
         {'EXIT', {badarg, _}} = (catch py_context:exec(C2, <<"x = 'new'">>, Env)),
         {'EXIT', {badarg, _}} = (catch py_context:call(C2, builtins, len, [[]], #{}, 5000, Env)),
         {error, context_not_found} = py_context:eval(C1, <<"x">>, #{}, 5000, Env),
         {ok, 1} = py:eval(C2, <<"1">>),
         stop_and_forget(C2)
     end || {A, B} <- Pairs, _ <- lists:seq(1, ?CYCLES)],
    ct:comment("~p mode pairs x ~p cycles refused", [length(Pairs), ?CYCLES]),
    ok.

%% --- finding 3: the context reset while a request's arguments are converted -----------------

%% Defines, in a local env of Ctx, a class whose __hash__ calls the Erlang function `reset_ctx'
%% (which resets Ctx: a nested request on the same context) and returns an instance of it. The
%% class lives in the env so that nothing but the context holds the shared namespace's dict.
resetting_key(Ctx) ->
    Self = self(),
    ok = py:register_function(reset_ctx, fun([]) ->
                                                 Result = py_context:reset(Ctx),
                                                 Self ! {reset_done, Result},
                                                 0
                                         end),
    {ok, Env} = py_context:create_local_env(Ctx),
    ok = py_context:exec(Ctx, <<"import erlang\n"
                                "class ResettingKey:\n"
                                "    def __hash__(self):\n"
                                "        return erlang.call('reset_ctx')\n"
                                "    def __eq__(self, other):\n"
                                "        return self is other\n">>, Env),
    ok = py:exec(Ctx, <<"y = 'defined before the reset'\n">>),
    {ok, Key} = py_context:eval(Ctx, <<"ResettingKey()">>, #{}, 5000, Env),
    true = py:is_ref(Key),
    Key.

%% Converted after the key (maps of up to 32 keys are in term order: a binary after a
%% reference): new dicts that take the memory of a freed one.
padding() ->
    #{<<"pad">> => [#{<<"k">> => I, <<"v">> => [I]} || I <- lists:seq(1, 64)]}.

%% A locals map whose key's __hash__ resets the context while eval converts it. The eval
%% runs in the namespace it started with. Before the fix: SIGSEGV, or a NameError read from a
%% freed dict (run_eval kept a borrowed globals across the conversion).
reset_while_converting_locals(Config) ->
    [begin
         Ctx = new_ctx(Mode),
         [begin
              Key = resetting_key(Ctx),
              {ok, <<"defined before the reset">>} = py:eval(Ctx, <<"y">>, maps:merge(#{Key => 1}, padding())),
              receive {reset_done, ok} -> ok after 5000 -> ct:fail({no_reset, Mode}) end,
              {error, {'NameError', _}} = py:eval(Ctx, <<"y">>),   % the shared namespace is new
              {ok, 5} = py:eval(Ctx, <<"2 + 3">>)
          end || _ <- lists:seq(1, 5)],
         ok = py:unregister_function(reset_ctx),
         ok = py_context:stop(Ctx)
     end || Mode <- modes(Config)],
    ok.

%% The same through a call's keyword arguments and a function looked up in '__main__'.
reset_while_converting_kwargs(Config) ->
    [begin
         Ctx = new_ctx(Mode),
         [begin
              Key = resetting_key(Ctx),
              ok = py:exec(Ctx, <<"def count(*args, **kwargs):\n    return len(args) + len(kwargs)\n">>),
              {ok, 2} = py:call(Ctx, '__main__', count, [#{Key => 1}], #{kwargs => #{k => #{Key => 2}}}),
              receive {reset_done, ok} -> ok after 5000 -> ct:fail({no_reset, Mode}) end,
              receive {reset_done, ok} -> ok after 5000 -> ct:fail({no_second_reset, Mode}) end,
              {error, {'NameError', _}} = py:eval(Ctx, <<"count">>)
          end || _ <- lists:seq(1, 5)],
         ok = py:unregister_function(reset_ctx),
         ok = py_context:stop(Ctx)
     end || Mode <- modes(Config)],
    ok.

%% --- review items ---------------------------------------------------------------------------

%% User code drops the `erlang` module and collects it: the context keeps the module it
%% imported (its types are what conversions use), so pids, terms and callbacks still work.
%% Owngil only: in the main interpreter the module cannot be put back afterwards. Before the
%% fix: the context read the freed module state (a crash on the next pid conversion).
erlang_module_dropped(Config) ->
    owngil_or_skip(Config, fun() ->
        Ctx = new_ctx(owngil),
        ok = py:exec(Ctx, <<"import sys, gc\n"
                            "del sys.modules['erlang']\n"
                            "for name in list(sys.modules):\n"
                            "    if name.startswith('_erlang'):\n"
                            "        del sys.modules[name]\n"
                            "gc.collect()\n">>),
        Self = self(),
        Ref = make_ref(),
        [begin
             {ok, Self} = py:eval(Ctx, <<"p">>, #{p => Self}),
             {ok, [Self, Ref]} = py:eval(Ctx, <<"[p, r]">>, #{p => Self, r => Ref}),
             {ok, true} = py:eval(Ctx, <<"p == q">>, #{p => Self, q => Self}),
             {ok, 7} = py:eval(Ctx, <<"__import__('erlang').call('h14_seven')">>)
         end || _ <- [ok || ok =:= py:register_function(h14_seven, fun([]) -> 7 end)]],
        ok = py:unregister_function(h14_seven),
        ok = py_context:stop(Ctx)
    end).

%% A context whose first request fails with a Python exception (the reply then carries a
%% traceback: {Tag, {error, _}, Traceback}) is reported by new/1 at once as
%% context_start_failed. Before the fix, py_context:started/1 matched only two-element replies
%% and reported context_start_timeout after 5 s. The failure is made with a sys.monitoring
%% callback (3.12+) in the main interpreter that raises on the next code started, so worker
%% mode only.
start_failure_reported_at_once(_Config) ->
    case py:eval(<<"__import__('sys').version_info >= (3, 12)">>) of
        {ok, false} ->
            {skip, "sys.monitoring needs Python 3.12+"};
        {ok, true} ->
            ok = py:exec(<<"import sys, threading\n"
                           "_h14_mon = sys.monitoring\n"
                           "_h14_tool = 5\n"
                           "_h14_mon.use_tool_id(_h14_tool, 'h14')\n"
                           "_h14_armed = [True]\n"
                           "def _h14_fail(code, offset):\n"
                           "    if code.co_filename == '<eval>' and _h14_armed[0]:\n"
                           "        _h14_armed[0] = False\n"
                           "        raise RuntimeError('start-up refused by the test')\n"
                           "_h14_mon.register_callback(_h14_tool, _h14_mon.events.PY_START, _h14_fail)\n"
                           "_h14_mon.set_events(_h14_tool, _h14_mon.events.PY_START)\n">>),
            T0 = erlang:monotonic_time(millisecond),
            Result = py_context:new(#{mode => worker}),
            Ms = erlang:monotonic_time(millisecond) - T0,
            ok = py:exec(<<"_h14_mon.set_events(_h14_tool, 0)\n"
                           "_h14_mon.register_callback(_h14_tool, _h14_mon.events.PY_START, None)\n"
                           "_h14_mon.free_tool_id(_h14_tool)\n">>),
            ct:comment("new/1 gave ~p after ~p ms", [Result, Ms]),
            {{error, context_start_failed}, true} = {Result, Ms < 2000},
            ok
    end.

%% An event loop made on a worker context outlives it (it is kept in the main interpreter's
%% sys module). Its poller no longer keeps the context alive (the Poller -> Context reference
%% is gone), so a new context may take the old one's address: the poller knows its context by
%% serial and refuses to run elsewhere, cycle after cycle; closing it works anywhere.
event_loop_of_stopped_context(_Config) ->
    [begin
         C1 = new_ctx(worker),
         ok = py:exec(C1, <<"import erlang, sys\nsys._h14_loop = erlang.new_event_loop()\n">>),
         {ok, 3} = py:eval(C1, <<"sys._h14_loop.run_until_complete(__import__('asyncio').sleep(0, 3))">>),
         stop_and_forget(C1),
         C2 = new_ctx(worker),
         {error, {'RuntimeError', "an ErlangEventLoop is used only on the context thread that made it"}} =
             py:eval(C2, <<"__import__('sys')._h14_loop.run_until_complete(__import__('asyncio').sleep(0, 3))">>),
         ok = py:exec(C2, <<"import sys\nsys._h14_loop.close()\ndel sys._h14_loop\n">>),
         stop_and_forget(C2)
     end || _ <- lists:seq(1, ?CYCLES)],
    ok.

%% Every class of the erlang modules, made without its constructor (and with _test_create where
%% it has one), every method called with odd arguments (erlang_types_hostile.py): thousands of
%% calls, no crash, and the context serves afterwards, in each mode.
erlang_types_hostile_calls(Config) ->
    Script = filename:join(?config(data_dir, Config), "erlang_types_hostile.py"),
    {ok, Code} = file:read_file(Script),
    [begin
         Ctx = new_ctx(Mode),
         ok = py:exec(Ctx, Code),
         {ok, Calls} = py:eval(Ctx, <<"run()">>),
         true = Calls > 5000,
         {ok, 4} = py:eval(Ctx, <<"2 + 2">>),
         ct:pal("~p: ~p calls", [Mode, Calls]),
         stop_and_forget(Ctx)
     end || Mode <- modes(Config)],
    {ok, 2} = py:eval(<<"1 + 1">>).
