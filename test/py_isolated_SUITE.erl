%% -*- coding: utf-8 -*-
%% Tests of isolated contexts (src/py_isolated.erl, priv/py_child, priv/_erlang_isolated.py):
%% the API on a child process, crashes as values, OS limits, interrupts, and clean-up.
-module(py_isolated_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1]).

-export([node_paths_reach_child/1]).
-export([call_eval_exec/1, conversions/1, python_output_kept_off_the_pipe/1, options_checked/1,
         callbacks_reentrant/1, send_to_pid/1, concurrent_callers/1,
         timeout_interrupts/1, interrupt_ignored_is_killed/1, caller_exit_interrupts/1,
         interrupt_on_demand/1, worker_loop_start_stop/1, worker_loop_ends/1, node_preload_reaches_child/1,
         same_results_as_worker/1, timeouts_never_hit_other_callers/1,
         segfault/1, abort_with_stderr/1, os_exit/1, kill_from_outside/1, kill_then_call_at_once/1,
         callback_in_flight_when_child_dies/1, restart_false_stays_down/1, forged_frame_kills_child/1,
         timeout_in_callback/1,
         memory_limit/1, cpu_limit/1, open_files_limit/1, fork_bomb/1,
         forked_processes_killed_with_child/1,
         owner_exit_stops_child/1, churn_100_contexts/1,
         codec_edges/1, codec_malformed_input/1,
         object_references/1, object_references_released/1, object_references_refused/1,
         local_envs/1, logging_forwarded/1,
         network_off/1, network_namespace_refused/1,
         async_tasks_run_at_once/1, async_cancelled_by_timeout_and_exit/1, async_task_blocking_loop_killed/1,
         async_loop_start_stop/1, async_child_dies/1, async_callbacks/1,
         stats_counted/1, backtrace_stacks/1, backtrace_in_c_code_times_out/1, reset_namespace/1]).

suite() -> [{timetrap, {minutes, 5}}].

all() ->
    [{group, api}, {group, interrupts}, {group, crashes}, {group, limits}, {group, cleanup},
     {group, network}, {group, async}, {group, observe}].

groups() ->
    [{api, [], [call_eval_exec, conversions, python_output_kept_off_the_pipe, options_checked,
                callbacks_reentrant, send_to_pid, concurrent_callers,
                codec_edges, codec_malformed_input,
                object_references, object_references_released, object_references_refused,
                local_envs, logging_forwarded, node_paths_reach_child, node_preload_reaches_child,
                same_results_as_worker]},
     {interrupts, [], [timeout_interrupts, interrupt_ignored_is_killed, caller_exit_interrupts,
                       interrupt_on_demand, timeout_in_callback, timeouts_never_hit_other_callers]},
     {crashes, [], [segfault, abort_with_stderr, os_exit, kill_from_outside, kill_then_call_at_once,
                    callback_in_flight_when_child_dies, restart_false_stays_down, forged_frame_kills_child]},
     {limits, [], [memory_limit, cpu_limit, open_files_limit, fork_bomb]},
     {cleanup, [], [forked_processes_killed_with_child, owner_exit_stops_child, churn_100_contexts]},
     {network, [], [network_off, network_namespace_refused]},
     {async, [], [async_tasks_run_at_once, async_cancelled_by_timeout_and_exit, async_task_blocking_loop_killed,
                  async_loop_start_stop, async_child_dies, async_callbacks, worker_loop_start_stop,
                  worker_loop_ends]},
     {observe, [], [stats_counted, backtrace_stacks, backtrace_in_c_code_times_out, reset_namespace]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

%% --- helpers -----------------------------------------------------------------------------------

new(Opts) ->
    {ok, Ctx} = py_context:new(Opts#{mode => isolated}),
    Ctx.

child_pid(Ctx) ->
    {ok, Pid} = py:eval(Ctx, <<"__import__('os').getpid()">>),
    Pid.

kill9(OsPid) ->
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    ok.

alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            %% A zombie (state Z) is dead but not reaped yet.
            [_, AfterName] = binary:split(Stat, <<") ">>),
            binary:first(AfterName) =/= $Z;
        {error, _} ->
            false
    end.

%% OS processes whose parent is this node, and how many of them are zombies.
node_children() ->
    Me = list_to_integer(os:getpid()),
    {ok, Entries} = file:list_dir("/proc"),
    lists:foldl(fun(E, {N, Z}) ->
                        case file:read_file("/proc/" ++ E ++ "/stat") of
                            {ok, Stat} ->
                                [_, Rest] = binary:split(Stat, <<") ">>),
                                [State, PPid | _] = binary:split(Rest, <<" ">>, [global]),
                                case binary_to_integer(PPid) of
                                    Me -> {N + 1, Z + case State of <<"Z">> -> 1; _ -> 0 end};
                                    _ -> {N, Z}
                                end;
                            {error, _} -> {N, Z}
                        end
                end, {0, 0}, [E || E <- Entries, lists:all(fun(C) -> C >= $0 andalso C =< $9 end, E)]).

%% A worker context answers: the node and the in-process contexts are unaffected.
node_fine() ->
    {ok, 4.0} = py:call(math, sqrt, [16]),
    ok.

%% --- api ---------------------------------------------------------------------------------------

call_eval_exec(_Config) ->
    Ctx = new(#{}),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    {ok, 42} = py:eval(Ctx, <<"x + 1">>, #{x => 41}),
    ok = py:exec(Ctx, <<"def f(a, b=2):\n    return [a, b]\n">>),
    {ok, [1, 5]} = py:call(Ctx, '__main__', f, [1], #{kwargs => #{b => 5}}),
    {ok, [1, 2]} = py_context:call(Ctx, '__main__', f, [1]),
    {ok, 7} = py_context:eval(Ctx, <<"3 + 4">>),
    ok = py_context:exec(Ctx, <<"y = 9">>),
    {ok, 9} = py:eval(Ctx, <<"y">>),
    {error, {'ZeroDivisionError', _}} = py:eval(Ctx, <<"1/0">>),
    {error, {'ModuleNotFoundError', _}} = py:call(Ctx, no_such_module_here, f, []),
    {error, {'SyntaxError', _}} = py:exec(Ctx, <<"def (">>),
    %% An exception's message has the in-process modes' shape (a string), non-ASCII included.
    {ok, W} = py_context:new(#{mode => worker}),
    Raise = <<"(_ for _ in ()).throw(ValueError('caf\\u00e9 ' + str(2 + 2)))">>,
    {error, {'ValueError', "café 4" = Msg}} = py:eval(Ctx, Raise),
    {error, {'ValueError', Msg}} = py:eval(W, Raise),
    ok = py_context:stop(W),
    %% Its own process: not the node's.
    true = child_pid(Ctx) =/= list_to_integer(os:getpid()),
    ok = py_context:stop(Ctx),
    {error, context_not_found} = py:eval(Ctx, <<"1">>),
    node_fine().

conversions(_Config) ->
    Ctx = new(#{}),
    Self = self(),
    Ref = make_ref(),
    Values = [1, -1, 255, 256, -(1 bsl 40), 1 bsl 100, -(1 bsl 3000), 1.5, true, false, <<"héllo"/utf8>>,
              <<255, 0>>, [1, [2, [3]]], {1, <<"a">>}, #{<<"k">> => [1]}, [], {}, Self, Ref],
    [{ok, V} = py:eval(Ctx, <<"v">>, #{v => V}) || V <- Values],
    {ok, <<"hello">>} = py:eval(Ctx, <<"v">>, #{v => hello}),
    {ok, none} = py:eval(Ctx, <<"v">>, #{v => undefined}),
    {ok, {<<"bytes">>, <<"text">>}} = py:eval(Ctx, <<"(type(v).__name__, v)">>, #{v => {bytes, <<"text">>}}),
    {ok, <<"str">>} = py:eval(Ctx, <<"type(v).__name__">>, #{v => hello}),
    {ok, #{<<"a">> := 1}} = py:eval(Ctx, <<"v">>, #{v => #{a => 1}}),
    {ok, {none, true, infinity, neg_infinity, nan}} =
        py:eval(Ctx, <<"(None, True, float('inf'), float('-inf'), float('nan'))">>),
    {ok, <<"abc">>} = py:eval(Ctx, <<"bytearray(b'abc')">>),
    {ok, Self} = py:eval(Ctx, <<"p">>, #{p => Self}),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"v">>, #{v => [1 | 2]}),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"v">>, #{v => <<1:3>>}),
    {error, {'UnicodeEncodeError', _}} = py:eval(Ctx, <<"'\\ud800'">>),
    %% Objects with no Erlang form come back as references (object_references).
    {ok, Obj} = py:eval(Ctx, <<"object()">>),
    true = py:is_ref(Obj),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py_context:stop(Ctx).

%% The child's term codec (c_src/child/etf_*.cpp) on the terms the conversions case leaves out.
codec_edges(_Config) ->
    Ctx = new(#{}),
    Fun = fun() -> ok end,
    Port = hd(erlang:ports()),
    Big = list_to_tuple(lists:seq(1, 300)),
    Values = [-2147483648, 2147483647, 2147483648, -2147483649, 1 bsl 64, -(1 bsl 64), 1 bsl 2100,
              -0.0, 1.0e308, Big, Fun, fun lists:seq/2, Port, #{1 => #{2 => [<<>>]}},
              [<<"é"/utf8>>, <<"日本"/utf8>>], list_to_binary(lists:duplicate(70000, $x))],
    [{ok, V} = py:eval(Ctx, <<"v">>, #{v => V}) || V <- Values],
    {ok, [97, 98, 99]} = py:eval(Ctx, <<"v">>, #{v => "abc"}),
    {ok, <<"héllo"/utf8>>} = py:eval(Ctx, <<"v">>, #{v => 'héllo'}),
    {ok, <<"bytes">>} = py:eval(Ctx, <<"type(v).__name__">>, #{v => {bytes, <<255, 1>>}}),
    {ok, {<<"bytes">>, 1}} = py:eval(Ctx, <<"v">>, #{v => {bytes, 1}}),
    {ok, <<"Term">>} = py:eval(Ctx, <<"type(v).__name__">>, #{v => Fun}),
    {ok, true} = py:eval(Ctx, <<"a == b and hash(a) == hash(b)">>, #{a => self(), b => self()}),
    %% Too deep either way: an error for that request, the context stays usable.
    Deep = lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, 200000)),
    {error, {'RecursionError', _}} = py:eval(Ctx, <<"v">>, #{v => Deep}),
    {error, {'RecursionError', _}} =
        py:eval(Ctx, <<"__import__('functools').reduce(lambda a, _: [a], range(200000), [])">>),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"v">>, #{v => #{[1] => 2}}),
    {ok, [1, Obj]} = py:eval(Ctx, <<"[1, object()]">>),
    true = py:is_ref(Obj),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_context:stop(Ctx).

%% Every truncation and many byte flips of a term given to the child's decoder raise a Python
%% exception (or decode to something); none crashes the child.
codec_malformed_input(_Config) ->
    Ctx = new(#{}),
    Term = {self(), make_ref(), fun() -> ok end, #{<<"k">> => [1, 2.5, -(1 bsl 70)]}, 'héllo',
            "abc", {bytes, <<1, 2>>}, [1 | [<<"x">>]], 300, -3},
    Bin = term_to_binary(Term),
    Code = <<"import _erlang_etf, random\n"
             "def attempt(b):\n"
             "    try:\n"
             "        _erlang_etf.decode(b)\n"
             "        return 'value'\n"
             "    except (ValueError, TypeError, RecursionError, UnicodeDecodeError) as e:\n"
             "        return type(e).__name__\n"
             "prefixes = {attempt(b[:n]) for n in range(len(b))}\n"
             "rng = random.Random(20)\n"
             "flips = set()\n"
             "for _ in range(20000):\n"
             "    m = bytearray(b)\n"
             "    for _ in range(rng.randint(1, 3)):\n"
             "        m[rng.randrange(1, len(m))] = rng.randrange(256)\n"
             "    flips.add(attempt(bytes(m)))\n"
             "result = (sorted(prefixes), attempt(b))\n">>,
    ok = py:exec(Ctx, <<"b = None">>),
    {ok, _} = py:eval(Ctx, <<"globals().__setitem__('b', v)">>, #{v => {bytes, Bin}}),
    ok = py:exec(Ctx, Code),
    {ok, {Prefixes, <<"value">>}} = py:eval(Ctx, <<"result">>),
    false = lists:member(<<"value">>, Prefixes),
    [] = Prefixes -- [<<"ValueError">>, <<"TypeError">>],
    {ok, Flips} = py:eval(Ctx, <<"sorted(flips)">>),
    ct:pal("outcomes of 20000 mutated terms: ~p", [Flips]),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_context:stop(Ctx).

%% Objects with no Erlang form live in the child; their references work as in-process ones.
object_references(_Config) ->
    Ctx = new(#{}),
    ok = py:exec(Ctx, <<"class Counter:\n"
                        "    def __init__(self, start=0):\n"
                        "        self.value = start\n"
                        "    def add(self, n=1, *, times=1):\n"
                        "        self.value += n * times\n"
                        "        return self.value\n">>),
    {ok, C} = py:call(Ctx, '__main__', 'Counter', [10]),
    true = py:is_ref(C),
    {ok, 10} = py:getattr(C, value),
    {ok, 11} = py:call_method(C, add, []),
    {ok, 17} = py:call_method(C, add, [2], #{times => 3}),
    {ok, 17} = py:eval(Ctx, <<"c.value">>, #{c => C}),
    {ok, true} = py:eval(Ctx, <<"a is b">>, #{a => C, b => C}),
    {ok, 18} = py:eval(Ctx, <<"d['k'][0].add()">>, #{d => #{k => [C]}}),
    {error, {'AttributeError', _}} = py:getattr(C, nope),
    {error, {'TypeError', _}} = py:to_term(C),
    {ok, G} = py:eval(Ctx, <<"(x * x for x in range(4))">>),
    {ok, [0, 1, 4, 9]} = py:to_term(G),
    {ok, MP} = py:eval(Ctx, <<"__import__('types').MappingProxyType({'a': 1})">>),
    {ok, #{<<"a">> := 1}} = py:to_term(MP),
    %% Through a callback and back: the same object.
    ok = py:register_function(iso_echo, fun([X]) -> X end),
    {ok, true} = py:eval(Ctx, <<"(lambda o: __import__('erlang').call('iso_echo', o) is o)(object())">>),
    ok = py:unregister_function(iso_echo),
    %% erlang.send with an object: the receiver gets a reference it can use.
    {ok, none} = py:eval(Ctx, <<"__import__('erlang').send(p, ('set', {1, 2}))">>, #{p => self()}),
    receive {<<"set">>, Set} -> {ok, [1, 2]} = py:to_term(Set)
    after 30000 -> ct:fail(no_message)
    end,
    %% An object kept for a reply that then fails to encode is not kept.
    {error, {'UnicodeEncodeError', _}} =
        py:eval(Ctx, <<"[type('Marked', (), {'tag': 'x9'})(), '\\ud800']">>),
    {ok, false} = py:eval(Ctx, <<"any(getattr(o, 'tag', None) == 'x9' "
                                 "for o in __import__('_erlang_isolated')._objects.table.values())">>),
    ok = py_context:stop(Ctx).

held(Ctx) ->
    {ok, N} = py:eval(Ctx, <<"len(__import__('_erlang_isolated')._objects.table)">>),
    N.

%% When the last copy of a reference is garbage collected, the child lets the object go.
object_references_released(_Config) ->
    Ctx = new(#{}),
    Before = held(Ctx),
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                        Refs = [element(2, py:eval(Ctx, <<"object()">>)) || _ <- lists:seq(1, 50)],
                                        Self ! {made, length(Refs), held(Ctx)}
                                end),
    receive {made, 50, During} -> true = During >= Before + 50 after 60000 -> ct:fail(no_objects) end,
    receive {'DOWN', Mon, process, Pid, _} -> ok end,
    %% The process's heap is gone: each handle's destructor told the context.
    true = py_test_util:wait_until(fun() -> held(Ctx) =:= Before end, 30000),
    {ok, Kept} = py:eval(Ctx, <<"object()">>),
    erlang:garbage_collect(),
    {ok, <<"object">>} = py:eval(Ctx, <<"type(o).__name__">>, #{o => Kept}),
    ok = py_context:stop(Ctx).

%% A reference names its context and the child's incarnation (a serial never reused): another
%% context, a restarted child and a stopped context refuse it with a clear error.
object_references_refused(_Config) ->
    Ctx = new(#{}),
    Other = new(#{}),
    {ok, O} = py:eval(Ctx, <<"object()">>),
    {error, {'ValueError', "a Python object reference from another context" ++ _}} =
        py:eval(Other, <<"o">>, #{o => O}),
    ok = py_context:stop(Other),
    Pid1 = child_pid(Ctx),
    kill9(Pid1),
    true = py_test_util:wait_until(fun() -> not alive(Pid1) end, 10000),
    %% The crash is seen, then a new child runs.
    true = py_test_util:wait_until(fun() -> is_integer(catch child_pid(Ctx)) end, 30000),
    {error, {'ValueError', "a Python object reference whose isolated process has ended" ++ _}} =
        py:eval(Ctx, <<"o">>, #{o => O}),
    {error, interpreter_gone} = py:getattr(O, '__class__'),
    {ok, O2} = py:eval(Ctx, <<"object()">>),
    ok = py_context:stop(Ctx),
    {error, interpreter_gone} = py:call_method(O2, '__repr__', []),
    %% Not a reference at all: badarg, as in-process.
    {'EXIT', {badarg, _}} = catch py:getattr(make_ref(), x),
    node_fine().

%% py_context:create_local_env/1 and the call/7, eval/5, exec/3 variants: namespaces of their
%% own in the child, apart from each other and from the context's shared one.
local_envs(_Config) ->
    Ctx = new(#{}),
    {ok, Env1} = py_context:create_local_env(Ctx),
    {ok, Env2} = py_context:create_local_env(Ctx),
    ok = py_context:exec(Ctx, <<"x = 'one'">>, Env1),
    ok = py_context:exec(Ctx, <<"x = 'two'\ndef shout(s): return s.upper() + '!'">>, Env2),
    {ok, <<"one">>} = py_context:eval(Ctx, <<"x">>, #{}, 5000, Env1),
    {ok, <<"two">>} = py_context:eval(Ctx, [<<"x">>], #{}, 5000, Env2),
    {ok, <<"HI!">>} = py_context:call(Ctx, '__main__', shout, [<<"hi">>], #{}, 5000, Env2),
    {error, {'NameError', _}} = py_context:call(Ctx, '__main__', shout, [<<"hi">>], #{}, 5000, Env1),
    {ok, 30} = py_context:eval(Ctx, <<"a * b">>, #{a => 5, b => 6}, infinity, Env1),
    {ok, 4.0} = py_context:call(Ctx, math, sqrt, [16], #{}, 5000, Env1),
    {error, {'NameError', _}} = py:eval(Ctx, <<"x">>),   % the shared namespace
    {error, timeout} = py_context:eval(Ctx, <<"__import__('time').sleep(30)">>, #{}, 200, Env1),
    {ok, <<"one">>} = py_context:eval(Ctx, <<"x">>, #{}, 5000, Env1),
    %% An env of another context, or a value that is not an env.
    Other = new(#{}),
    {error, {'ValueError', _}} = py_context:eval(Other, <<"x">>, #{}, 5000, Env1),
    {ok, NotEnv} = py:eval(Ctx, <<"object()">>),
    {error, {'TypeError', _}} = py_context:eval(Ctx, <<"1">>, #{}, 5000, NotEnv),
    ok = py_context:stop(Other),
    %% After a restart of the child, its envs are gone with it.
    {error, {python_crashed, _}} = py:eval(Ctx, <<"__import__('os')._exit(1)">>),
    {error, {'ValueError', _}} = py_context:eval(Ctx, <<"x">>, #{}, 5000, Env1),
    ok = py_context:stop(Ctx).

%% py:configure_logging/1 reaches isolated contexts running when it is called, those started
%% later, and a child restarted after a crash.
logging_forwarded(_Config) ->
    Self = self(),
    Copy = fun(#{meta := #{domain := [python]}} = Event, To) -> To ! {logged, Event}, ignore;
              (_, _) -> ignore
           end,
    ok = logger:add_primary_filter(iso_copy_python_events, {Copy, Self}),
    Before = new(#{}),
    try
        ok = py:configure_logging(#{level => info}),
        After = new(#{}),
        Log = fun(Ctx, Text) ->
                      ok = py:exec(Ctx, <<"import logging\nlogging.getLogger('iso.app').debug('not this')\n"
                                          "logging.getLogger('iso.app').warning('%s', '", Text/binary, "')">>),
                      receive
                          {logged, #{level := warning, msg := {"~ts", [Got]}, meta := #{py_logger := <<"iso.app">>}}} ->
                              Text = Got
                      after 30000 -> ct:fail({not_logged, Text})
                      end
              end,
        Log(Before, <<"from a context started before">>),
        Log(After, <<"from a context started after">>),
        {error, {python_crashed, _}} = py:eval(After, <<"__import__('os')._exit(1)">>),
        Log(After, <<"from a restarted child">>),
        %% Below the level: never sent (it was logged before each warning that arrived).
        receive {logged, #{level := debug}} -> ct:fail(debug_forwarded) after 0 -> ok end,
        ok = py_context:stop(After)
    after
        ok = py:configure_logging(#{level => none}),
        ok = logger:remove_primary_filter(iso_copy_python_events),
        ok = py_context:stop(Before)
    end.

python_output_kept_off_the_pipe(_Config) ->
    Ctx = new(#{}),
    ok = py:exec(Ctx, <<"import os, sys\nprint('x' * 100000)\nos.write(1, b'raw bytes on fd 1')\n"
                        "sys.stdout.flush()">>),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_context:stop(Ctx).

options_checked(_Config) ->
    {error, {unknown_option, colour}} = py_context:new(#{mode => isolated, colour => red}),
    {error, {invalid_option, {limits, {memory, -1}}}} =
        py_context:new(#{mode => isolated, limits => #{memory => -1}}),
    {error, {invalid_option, {limits, {disk, 1}}}} =
        py_context:new(#{mode => isolated, limits => #{disk => 1}}),
    {error, {invalid_option, {restart, maybe}}} = py_context:new(#{mode => isolated, restart => maybe}),
    {error, {preload, {'NameError', _}}} = py_context:new(#{mode => isolated, preload => <<"nope">>}),
    %% No callbacks from preload code (the context is not registered yet).
    {error, {preload, {'ErlangError', _}}} =
        py_context:new(#{mode => isolated, preload => <<"import erlang\nerlang.call('anything')">>}),
    Ctx = new(#{preload => <<"ready = 'yes'">>}),
    {ok, <<"yes">>} = py:eval(Ctx, <<"ready">>),
    ok = py_context:stop(Ctx).

callbacks_reentrant(_Config) ->
    Ctx = new(#{}),
    ok = py:register_function(iso_double, fun([X]) -> X * 2 end),
    {ok, 42} = py:eval(Ctx, <<"__import__('erlang').call('iso_double', 21)">>),
    %% Erlang -> Python -> Erlang -> Python on the same context, nested 5 deep.
    ok = py:register_function(iso_down, fun([N]) ->
                                                {ok, V} = py:call(Ctx, '__main__', down, [N - 1]),
                                                V
                                        end),
    ok = py:exec(Ctx, <<"import erlang\ndef down(n):\n    return n if n == 0 else 1 + erlang.call('iso_down', n)\n">>),
    {ok, 5} = py:call(Ctx, '__main__', down, [5]),
    ok = py:register_function(iso_fails, fun([]) -> error(badarith) end),
    {error, {'ErlangError', _}} = py:eval(Ctx, <<"__import__('erlang').call('iso_fails')">>),
    {error, {'ErlangError', _}} = py:eval(Ctx, <<"__import__('erlang').call('iso_nobody_registered_this')">>),
    ok = py:unregister_function(iso_double),
    ok = py:unregister_function(iso_down),
    ok = py:unregister_function(iso_fails),
    ok = py_context:stop(Ctx).

send_to_pid(_Config) ->
    Ctx = new(#{}),
    {ok, none} = py:eval(Ctx, <<"__import__('erlang').send(p, ('hi', 1, [2.5]))">>, #{p => self()}),
    receive {<<"hi">>, 1, [2.5]} -> ok after 10000 -> ct:fail(no_message) end,
    %% A registered name (str or bytes); an unregistered one raises NotRegistered, a TypeError
    %% and a ProcessError as in-process.
    true = register(iso_receiver, self()),
    {ok, none} = py:eval(Ctx, <<"__import__('erlang').send('iso_receiver', ('by name', 1))">>),
    receive {<<"by name">>, 1} -> ok after 10000 -> ct:fail(no_message_by_name) end,
    {ok, none} = py:eval(Ctx, <<"__import__('erlang').send(b'iso_receiver', 2)">>),
    receive 2 -> ok after 10000 -> ct:fail(no_message_by_bytes_name) end,
    true = unregister(iso_receiver),
    {error, {'NotRegistered', _}} = py:eval(Ctx, <<"__import__('erlang').send('iso_receiver', 1)">>),
    {error, {'NotRegistered', _}} = py:eval(Ctx, <<"__import__('erlang').send('nobody_has_this_atom_x9', 1)">>),
    {ok, true} = py:eval(Ctx, <<"(lambda e: issubclass(e.NotRegistered, TypeError) and "
                                "issubclass(e.NotRegistered, e.ProcessError))(__import__('erlang'))">>),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"__import__('erlang').send(3, 1)">>),
    ok = py_context:stop(Ctx).

concurrent_callers(_Config) ->
    Ctx = new(#{}),
    Self = self(),
    Pids = [spawn_link(fun() ->
                               Results = [py:call(Ctx, operator, mul, [N, I]) || I <- lists:seq(1, 200)],
                               Self ! {self(), Results =:= [{ok, N * I} || I <- lists:seq(1, 200)]}
                       end) || N <- lists:seq(1, 8)],
    [receive {P, true} -> ok after 60000 -> ct:fail({no_answer, P}) end || P <- Pids],
    ok = py_context:stop(Ctx).

%% --- interrupts --------------------------------------------------------------------------------

timeout_interrupts(_Config) ->
    Ctx = new(#{}),
    {error, timeout} = py_context:eval(Ctx, <<"__import__('time').sleep(30)">>, #{}, 300),
    {error, timeout} = py_context:call(Ctx, builtins, exec, [<<"while True: pass">>], #{}, 300),
    %% Same child: the code was interrupted, not the process killed.
    Pid = child_pid(Ctx),
    {error, timeout} = py_context:eval(Ctx, <<"__import__('time').sleep(30)">>, #{}, 300),
    Pid = child_pid(Ctx),
    [] = py_test_util:flush(),
    ok = py_context:stop(Ctx).

interrupt_ignored_is_killed(_Config) ->
    Ctx = new(#{kill_after => 500}),
    ok = py:exec(Ctx, <<"import time\ndef stubborn():\n    while True:\n        try:\n"
                        "            time.sleep(60)\n        except KeyboardInterrupt:\n            pass\n">>),
    Pid = child_pid(Ctx),
    {error, timeout} = py_context:call(Ctx, '__main__', stubborn, [], #{}, 300),
    true = py_test_util:wait_until(fun() -> not alive(Pid) end, 30000),
    %% The next call starts a new child.
    {ok, 1} = py:eval(Ctx, <<"1">>),
    true = child_pid(Ctx) =/= Pid,
    ok = py_context:stop(Ctx).

caller_exit_interrupts(_Config) ->
    Ctx = new(#{}),
    Pid = child_pid(Ctx),
    Self = self(),
    Caller = spawn(fun() -> Self ! started, py:eval(Ctx, <<"__import__('time').sleep(60)">>) end),
    receive started -> ok end,
    true = py_test_util:wait_until(fun() -> backtrace_busy(Pid) end, 10000),
    exit(Caller, kill),
    %% Interrupted: the context answers again, from the same child.
    {ok, Pid} = py_context:eval(Ctx, <<"__import__('os').getpid()">>, #{}, 30000),
    ok = py_context:stop(Ctx).

interrupt_on_demand(_Config) ->
    Ctx = new(#{}),
    not_running = py:interrupt(Ctx),
    Pid = child_pid(Ctx),
    Self = self(),
    spawn_link(fun() -> Self ! {result, py:eval(Ctx, <<"__import__('time').sleep(60)">>)} end),
    true = py_test_util:wait_until(fun() -> backtrace_busy(Pid) end, 10000),
    ok = py_context:interrupt(Ctx),
    receive {result, R} -> {error, interrupted} = R after 30000 -> ct:fail(no_answer) end,
    {ok, Pid} = py:eval(Ctx, <<"__import__('os').getpid()">>),
    ok = py_context:stop(Ctx),
    {error, context_not_found} = py:interrupt(Ctx).

%% Timeouts that race with the end of their request: the SIGINT never reaches another caller's
%% request (nothing is sent to the child until the signal is delivered).
timeouts_never_hit_other_callers(_Config) ->
    Ctx = new(#{}),
    Self = self(),
    Racer = spawn_link(fun() ->
                               [py_context:eval(Ctx, <<"__import__('time').sleep(0.002)">>, #{}, 2)
                                || _ <- lists:seq(1, 100)],
                               Self ! racer_done
                       end),
    Results = [py:eval(Ctx, <<"sum(range(100000))">>) || _ <- lists:seq(1, 300)],
    receive racer_done -> ok after 120000 -> ct:fail({racer, Racer}) end,
    [] = [R || R <- Results, R =/= {ok, 4999950000}],
    ok = py_context:stop(Ctx).

%% --- worker loops (py_isolated_loop) ----------------------------------------------------------

-define(LOOP_CODE, <<"import asyncio\n"
                    "async def twice(x):\n"
                    "    await asyncio.sleep(0)\n"
                    "    return 2 * x\n"
                    "async def forever():\n"
                    "    await asyncio.sleep(3600)\n">>).

%% start, a second start refused, loop_ref, tasks (calls served meanwhile), stop_loop: the
%% task cancelled, the owner told `ok', submit refused until the next start.
worker_loop_start_stop(_Config) ->
    Ctx = new(#{}),
    ok = py:exec(Ctx, ?LOOP_CODE),
    {error, no_loop} = py_context:loop_ref(Ctx),
    {error, no_loop} = py_context:stop_loop(Ctx),
    ok = py_context:start_loop(Ctx),
    {error, loop_running} = py_context:start_loop(Ctx),
    {ok, Ref} = py_context:loop_ref(Ctx),
    true = is_reference(Ref),
    {ok, 42} = py_context:submit_await(Ctx, '__main__', twice, [21]),
    {ok, Task} = py_context:submit(Ctx, '__main__', forever, []),
    {ok, 2.0} = py:call(Ctx, math, sqrt, [4.0]),
    ok = py_context:stop_loop(Ctx, 100),
    {error, {'CancelledError', _}} = py_event_loop:await(Task, 10000),
    receive {py_loop_exit, Ctx, ok} -> ok after 10000 -> ct:fail(no_loop_exit) end,
    {error, loop_stopped} = py_context:submit(Ctx, '__main__', twice, [1]),
    {error, no_loop} = py_context:loop_ref(Ctx),
    ok = py_context:start_loop(Ctx),
    {ok, Ref2} = py_context:loop_ref(Ctx),
    true = Ref2 =/= Ref,
    {ok, 10} = py_context:submit_await(Ctx, '__main__', twice, [5]),
    ok = py_context:stop(Ctx),
    receive {py_loop_exit, Ctx, {error, context_stopped}} -> ok after 10000 -> ct:fail(no_loop_exit) end.

%% The loop ends under its owner: py_event_loop:stop/1 (loop_stopped), the child dying
%% (python_crashed; the next start runs in the new child), the owner exiting (the loop stopped).
worker_loop_ends(_Config) ->
    Ctx = new(#{}),
    ok = py_context:start_loop(Ctx),
    ok = py_event_loop:stop(Ctx),
    receive {py_loop_exit, Ctx, {error, loop_stopped}} -> ok after 10000 -> ct:fail(no_loop_exit) end,
    ok = py_context:start_loop(Ctx),
    {error, {python_crashed, _}} = py:exec(Ctx, <<"import os; os._exit(3)">>),
    receive {py_loop_exit, Ctx, {error, {python_crashed, #{exit_status := 3}}}} -> ok
    after 10000 -> ct:fail(no_loop_exit)
    end,
    ok = py:exec(Ctx, ?LOOP_CODE),
    ok = py_context:start_loop(Ctx),
    {ok, 8} = py_context:submit_await(Ctx, '__main__', twice, [4]),
    ok = py_context:stop_loop(Ctx),
    receive {py_loop_exit, Ctx, ok} -> ok after 10000 -> ct:fail(no_loop_exit) end,
    ok = py_test_util:loop_stops_with_owner(Ctx, twice),
    ok = py_context:stop(Ctx).

%% "Behind the same API": the same calls on a worker context and an isolated one give the same
%% terms, values and errors alike (exception names and messages included; references compared
%% by kind only).
same_results_as_worker(_Config) ->
    {ok, W} = py_context:new(#{mode => worker}),
    I = new(#{}),
    Self = self(),
    Fun = fun() -> ok end,
    Cases = [{eval, <<"1/0">>, #{}}, {eval, <<"undefined_name">>, #{}},
             {eval, <<"[1, 2.5, 'a', b'b', None, True]">>, #{}}, {eval, <<"{'a': 1, 2: [3]}">>, #{}},
             {eval, <<"(1, (2, 3))">>, #{}}, {eval, <<"v">>, #{v => [1 | 2]}},
             {eval, <<"v">>, #{v => {a, "str", <<"bin">>, 3.0, -7, 1 bsl 80}}}, {eval, <<"v">>, #{v => Self}},
             {eval, <<"v">>, #{v => Fun}}, {eval, <<"v">>, #{v => an_atom}}, {eval, <<"v">>, #{v => undefined}},
             {eval, <<"v">>, #{v => #{<<"k">> => #{nested => [1]}}}}, {eval, <<"set([1])">>, #{}},
             {eval, <<"1j">>, #{}}, {eval, <<"float('inf')">>, #{}}, {eval, <<"range(3)">>, #{}},
             {eval, <<"'\\ud800'">>, #{}}, {eval, <<"bytearray(b'x')">>, #{}}, {eval, <<"2 ** 100">>, #{}},
             {call, math, sqrt, [-1]}, {call, math, nope, []}, {call, nomod_x, f, []},
             {call, builtins, sorted, [[3, 1, 2]]}, {call, operator, truediv, [1, 0]},
             {exec, <<"def (">>}, {exec, <<"x = 1">>}, {exec, <<"raise KeyError('k')">>},
             {exec, <<"raise SystemExit(3)">>}, {exec, <<"raise KeyboardInterrupt">>},
             {exec, <<"class E(Exception): pass\nraise E('custom')">>}, {exec, <<"assert False, 'no'">>}],
    Run = fun(Ctx, {eval, Code, Locals}) -> py:eval(Ctx, Code, Locals);
             (Ctx, {call, M, F, A}) -> py:call(Ctx, M, F, A);
             (Ctx, {exec, Code}) -> py:exec(Ctx, Code)
          end,
    [] = [{Case, Worker, Isolated} || Case <- Cases,
                                      Worker <- [refs_as_kind(Run(W, Case))],
                                      Isolated <- [refs_as_kind(Run(I, Case))],
                                      Worker =/= Isolated],
    ok = py_context:stop(W),
    ok = py_context:stop(I).

refs_as_kind(T) when is_reference(T) -> reference;
refs_as_kind(T) when is_tuple(T) -> list_to_tuple(refs_as_kind(tuple_to_list(T)));
refs_as_kind([H | T]) -> [refs_as_kind(H) | refs_as_kind(T)];
refs_as_kind(T) when is_map(T) -> maps:map(fun(_, V) -> refs_as_kind(V) end, T);
refs_as_kind(T) -> T.

%% The node's preload code (py_preload) reaches isolated children as it reaches interpreters:
%% a new child's __main__ and its local envs start with its globals, so does __main__ after
%% py_context:reset/1; a running child's existing namespaces keep theirs when the code changes
%% (as in-process), its new ones and the next child get the new code; cleared, none.
node_preload_reaches_child(_Config) ->
    ok = py_preload:set_code(<<"ANSWER = 42\ndef helper(x):\n    return x + ANSWER\n">>),
    try
        Ctx = new(#{}),
        {ok, 43} = py:eval(Ctx, <<"helper(1)">>),
        {ok, 44} = py:call(Ctx, '__main__', helper, [2]),
        {ok, Env} = py_context:create_local_env(Ctx),
        {ok, 42} = py_context:eval(Ctx, <<"ANSWER">>, #{}, 5000, Env),
        ok = py:exec(Ctx, <<"ANSWER = 0">>),
        ok = py_context:reset(Ctx),
        {ok, 42} = py:eval(Ctx, <<"ANSWER">>),
        ok = py_preload:set_code(<<"ANSWER = 7\n">>),
        {ok, 42} = py:eval(Ctx, <<"ANSWER">>),
        {ok, Env2} = py_context:create_local_env(Ctx),
        {ok, 7} = py_context:eval(Ctx, <<"ANSWER">>, #{}, 5000, Env2),
        {error, {python_crashed, _}} = py:exec(Ctx, <<"import os; os._exit(1)">>),
        {ok, 7} = py:eval(Ctx, <<"ANSWER">>),   % the next child
        ok = py_preload:clear_code(),
        Fresh = new(#{}),
        {error, {'NameError', _}} = py:eval(Fresh, <<"ANSWER">>),
        ok = py_context:stop(Fresh),
        ok = py_context:stop(Ctx)
    after
        py_preload:clear_code()
    end.

%% The node's paths (py_import:add_path/1, app env `paths') reach a running child and the next one;
%% removing them reaches it too.
node_paths_reach_child(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "iso_paths"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = file:write_file(filename:join(Dir, "iso_path_mod.py"), <<"VALUE = 'on the node path'\n">>),
    Ctx = new(#{}),
    {error, {'ModuleNotFoundError', _}} = py:eval(Ctx, <<"__import__('iso_path_mod').VALUE">>),
    try
        ok = py_import:add_path(Dir),
        {ok, <<"on the node path">>} = py:eval(Ctx, <<"__import__('iso_path_mod').VALUE">>),
        {error, {python_crashed, _}} = py:eval(Ctx, <<"__import__('os')._exit(3)">>),
        {ok, <<"on the node path">>} = py:eval(Ctx, <<"__import__('iso_path_mod').VALUE">>)
    after
        ok = py_import:clear_paths()
    end,
    {ok, false} = py:eval(Ctx, <<"d in __import__('sys').path">>, #{d => unicode:characters_to_binary(Dir)}),
    ok = py_context:stop(Ctx).

%% The child runs the request: it sleeps in (clock_)nanosleep (/proc/PID/syscall), not in the
%% read of its pipe.
backtrace_busy(Pid) ->
    case file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/syscall") of
        {ok, <<"230 ", _/binary>>} -> true;   %% clock_nanosleep (x86_64)
        {ok, <<"35 ", _/binary>>} -> true;    %% nanosleep (x86_64)
        {ok, <<"101 ", _/binary>>} -> true;   %% nanosleep (aarch64)
        {ok, <<"115 ", _/binary>>} -> true;   %% clock_nanosleep (aarch64)
        _ -> false
    end.

%% --- crashes -----------------------------------------------------------------------------------

segfault(_Config) ->
    Ctx = new(#{}),
    {error, {python_crashed, #{signal := sigsegv}}} = py:eval(Ctx, <<"__import__('ctypes').string_at(0)">>),
    node_fine(),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py_context:stop(Ctx).

abort_with_stderr(_Config) ->
    Ctx = new(#{}),
    {error, {python_crashed, #{signal := sigabrt, stderr := Lines}}} =
        py:exec(Ctx, <<"import os, sys\nsys.stderr.write('last words\\n')\nos.abort()">>),
    true = lists:member(<<"last words">>, Lines),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py_context:stop(Ctx).

os_exit(_Config) ->
    Ctx = new(#{}),
    {error, {python_crashed, #{exit_status := 3}}} = py:eval(Ctx, <<"__import__('os')._exit(3)">>),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py_context:stop(Ctx).

kill_from_outside(_Config) ->
    Ctx = new(#{}),
    %% Killed while idle: nobody to answer; the next call gets a new child.
    Pid1 = child_pid(Ctx),
    kill9(Pid1),
    true = py_test_util:wait_until(fun() -> not alive(Pid1) end, 10000),
    %% A call that races with the context noticing the death gets the crash (it went to the
    %% dead child); the next one runs in a new child.
    NewChild = fun() ->
                       case py:eval(Ctx, <<"__import__('os').getpid()">>) of
                           {ok, P} -> P =/= Pid1;
                           {error, {python_crashed, #{}}} -> false
                       end
               end,
    true = py_test_util:wait_until(NewChild, 30000),
    Pid2 = child_pid(Ctx),
    true = Pid2 =/= Pid1,
    %% Killed while it runs a request: the caller gets the crash.
    Self = self(),
    spawn_link(fun() -> Self ! {result, py:eval(Ctx, <<"__import__('time').sleep(60)">>)} end),
    true = py_test_util:wait_until(fun() -> backtrace_busy(Pid2) end, 10000),
    kill9(Pid2),
    receive {result, R} -> {error, {python_crashed, #{signal := sigkill}}} = R
    after 30000 -> ct:fail(no_answer)
    end,
    node_fine(),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py_context:stop(Ctx).

%% A call made right after the idle child was killed races with the context noticing: it is
%% answered (in a new child, or with the crash), and the context lives on. Before the fix a
%% write to the closed port crashed the context's process.
kill_then_call_at_once(_Config) ->
    Ctx = new(#{}),
    Answers = [begin
                   Pid = child_pid(Ctx),
                   kill9(Pid),
                   case py:eval(Ctx, <<"1 + 1">>) of
                       {ok, 2} -> ok;
                       {error, {python_crashed, #{}}} -> crashed
                   end
               end || _ <- lists:seq(1, 10)],
    ct:comment("answers: ~p", [Answers]),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_context:stop(Ctx).

callback_in_flight_when_child_dies(_Config) ->
    Ctx = new(#{}),
    Self = self(),
    ok = py:register_function(iso_blocks, fun([]) ->
                                                  Self ! {in_callback, self()},
                                                  receive go_on -> 1 end
                                          end),
    Pid = child_pid(Ctx),
    spawn_link(fun() -> Self ! {result, py:eval(Ctx, <<"__import__('erlang').call('iso_blocks')">>)} end),
    Cb = receive {in_callback, P} -> P after 30000 -> ct:fail(no_callback) end,
    kill9(Pid),
    receive {result, R} -> {error, {python_crashed, #{signal := sigkill}}} = R
    after 30000 -> ct:fail(no_answer)
    end,
    %% The callback's late answer goes nowhere; the context serves a new child.
    Cb ! go_on,
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py:unregister_function(iso_blocks),
    ok = py_context:stop(Ctx).

forged_frame_kills_child(_Config) ->
    Ctx = new(#{}),
    {error, {python_crashed, #{killed := bad_frame}}} =
        py:eval(Ctx, <<"__import__('erlang').Pid(b'not a term')">>),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    %% The same inside a frame that holds object references (decoded a second time).
    {error, {python_crashed, #{killed := bad_frame}}} =
        py:eval(Ctx, <<"(__import__('erlang').Pid(b'not a term'), object())">>),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py_context:stop(Ctx).

%% A request that times out while its callback never returns: the context serves the next one.
timeout_in_callback(_Config) ->
    Ctx = new(#{}),
    ok = py:register_function(iso_forever, fun([]) -> receive never -> ok end end),
    Pid = child_pid(Ctx),
    {error, timeout} = py_context:eval(Ctx, <<"__import__('erlang').call('iso_forever')">>, #{}, 300),
    {ok, Pid} = py_context:eval(Ctx, <<"__import__('os').getpid()">>, #{}, 30000),
    ok = py:unregister_function(iso_forever),
    ok = py_context:stop(Ctx).

restart_false_stays_down(_Config) ->
    Ctx = new(#{restart => false}),
    {error, {python_crashed, #{exit_status := 7}}} = py:eval(Ctx, <<"__import__('os')._exit(7)">>),
    {error, {context_down, #{exit_status := 7}}} = py:eval(Ctx, <<"1">>),
    {error, {context_down, #{exit_status := 7}}} = py:await(py:spawn_call(Ctx, asyncio, sleep, [0])),
    {ok, idle} = py_context:backtrace(Ctx),
    {ok, #{os_pid := undefined}} = py_context:stats(Ctx),
    ok = py_context:stop(Ctx).

%% --- limits ------------------------------------------------------------------------------------

memory_limit(_Config) ->
    Ctx = new(#{limits => #{memory => 512 * 1024 * 1024}}),
    %% 100 GB under a 512 MB address-space limit: Python's allocator reports it.
    {error, {'MemoryError', _}} = py:eval(Ctx, <<"bytearray(100 * 1024 ** 3)">>),
    {error, {'MemoryError', _}} = py:eval(Ctx, <<"[0] * (50 * 1024 ** 3)">>),
    {ok, 1} = py:eval(Ctx, <<"len(bytearray(100 * 1024 ** 2)) // (100 * 1024 ** 2)">>),
    ok = py_context:stop(Ctx).

cpu_limit(_Config) ->
    Ctx = new(#{limits => #{cpu_seconds => 1}}),
    {error, {python_crashed, #{limit := cpu_seconds}}} = py:exec(Ctx, <<"while True: pass">>),
    node_fine(),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py_context:stop(Ctx).

open_files_limit(_Config) ->
    Ctx = new(#{limits => #{open_files => 32}}),
    {error, {'OSError', _}} = py:exec(Ctx, <<"fs = [open('/dev/null') for _ in range(64)]">>),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py_context:stop(Ctx).

%% Linux does not apply RLIMIT_NPROC to root: there the option is refused, not ignored.
fork_bomb(_Config) ->
    Limit = 5,
    case py_context:new(#{mode => isolated, limits => #{processes => Limit}}) of
        {error, {limit_unenforceable, processes}} ->
            {comment, "running as root: the processes limit is refused"};
        {ok, Ctx} ->
            %% The limit counts all of the user's processes: a bomb is stopped at once.
            {error, {'BlockingIOError', _}} =
                py:exec(Ctx, <<"import os\nwhile True:\n    if os.fork() == 0:\n        import time; time.sleep(60)\n">>),
            ok = py_context:stop(Ctx)
    end.

%% --- cleanup -----------------------------------------------------------------------------------

forked_processes_killed_with_child(_Config) ->
    Ctx = new(#{}),
    ok = py:exec(Ctx, <<"import os, time\nkids = []\nfor _ in range(20):\n    pid = os.fork()\n"
                        "    if pid == 0:\n        time.sleep(600)\n        os._exit(0)\n"
                        "    kids.append(pid)\n">>),
    {ok, Kids} = py:eval(Ctx, <<"kids">>),
    20 = length(Kids),
    true = lists:all(fun alive/1, Kids),
    {error, {python_crashed, _}} = py:eval(Ctx, <<"__import__('os').abort()">>),
    true = py_test_util:wait_until(fun() -> not lists:any(fun alive/1, Kids) end, 30000),
    ok = py_context:stop(Ctx).

owner_exit_stops_child(_Config) ->
    Self = self(),
    Owner = spawn(fun() ->
                          {ok, Ctx} = py_context:new(#{mode => isolated}),
                          Self ! {ctx, Ctx},
                          receive stop -> ok end
                  end),
    Ctx = receive {ctx, C} -> C after 30000 -> ct:fail(no_context) end,
    Pid = child_pid(Ctx),
    Owner ! stop,
    true = py_test_util:wait_until(fun() -> not is_process_alive(Ctx) andalso not alive(Pid) end, 30000).

churn_100_contexts(_Config) ->
    Cycle = fun() ->
                    Ctx = new(#{}),
                    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
                    ok = py_context:stop(Ctx)
            end,
    Cycle(),   %% warm-up: the logger, the runtime choice, the log directory
    {Children0, 0} = node_children(),
    #{fds := Fds0, rss_kb := Rss0} = py_test_util:snapshot(),
    T0 = erlang:monotonic_time(millisecond),
    [Cycle() || _ <- lists:seq(1, 100)],
    Ms = erlang:monotonic_time(millisecond) - T0,
    %% Back to the baseline: no child left, no zombie, no descriptor, no memory kept.
    true = py_test_util:wait_until(fun() -> node_children() =:= {Children0, 0} end, 30000),
    true = py_test_util:wait_until(fun() -> py_test_util:fds() =< Fds0 end, 30000),
    #{rss_kb := Rss1} = py_test_util:snapshot(),
    true = Rss1 - Rss0 < 10240,
    {comment, io_lib:format("100 start/call/stop cycles in ~b ms; node RSS growth ~b KB", [Ms, Rss1 - Rss0])}.

%% --- network -----------------------------------------------------------------------------------

-define(TRY_CONNECT, <<"
import errno, socket
def try_connect(port):
    s = socket.socket()
    s.settimeout(60)
    try:
        s.connect(('127.0.0.1', port))
        return 'connected'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
">>).

%% `network => false': a connection to a listener of this node on loopback fails in the child
%% (no interface is up in its namespace), also in the child started after a crash; it works from
%% an isolated context without the option.
network_off(_Config) ->
    {error, {invalid_option, {network, maybe}}} = py_context:new(#{mode => isolated, network => maybe}),
    {ok, Listener} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}]),
    {ok, Port} = inet:port(Listener),
    Open = new(#{}),
    ok = py:exec(Open, ?TRY_CONNECT),
    {ok, <<"connected">>} = py:call(Open, '__main__', try_connect, [Port]),
    {ok, Accepted} = gen_tcp:accept(Listener, 60000),
    ok = gen_tcp:close(Accepted),
    case py_context:new(#{mode => isolated, network => false}) of
        {ok, Closed} -> network_off(Closed, Open, Listener, Port);
        {error, {limit_unenforceable, network}} ->
            {skip, "the kernel refuses this node's children a network namespace"}
    end.

network_off(Closed, Open, Listener, Port) ->
    ok = py:exec(Closed, ?TRY_CONNECT),
    {ok, <<"ENETUNREACH">>} = py:call(Closed, '__main__', try_connect, [Port]),
    %% Only the namespace's own loopback, down; the child keeps its uid.
    {ok, [{1, <<"lo">>}]} = py:eval(Closed, <<"__import__('socket').if_nameindex()">>),
    {ok, Uid} = py:eval(Open, <<"__import__('os').getuid()">>),
    {ok, Uid} = py:eval(Closed, <<"__import__('os').getuid()">>),
    {error, {python_crashed, #{exit_status := 3}}} = py:eval(Closed, <<"__import__('os')._exit(3)">>),
    ok = py:exec(Closed, ?TRY_CONNECT),
    {ok, <<"ENETUNREACH">>} = py:call(Closed, '__main__', try_connect, [Port]),
    %% No connection reached the listener from the closed context.
    {error, timeout} = gen_tcp:accept(Listener, 0),
    ok = gen_tcp:close(Listener),
    ok = py_context:stop(Open),
    ok = py_context:stop(Closed).

%% When the kernel refuses the network namespace, py_child exits before Python starts (the
%% context then fails to start with {error, {limit_unenforceable, network}}). The refusal is
%% made with a user namespace whose limit of network namespaces is 0 (util-linux unshare).
network_namespace_refused(Config) ->
    Unshare = os:find_executable("unshare"),
    Probe = "unshare -Ur sh -c 'echo 0 > /proc/sys/user/max_net_namespaces && echo refused' 2>/dev/null",
    case Unshare =/= false andalso os:cmd(Probe) of
        "refused\n" -> network_namespace_refused(Unshare, Config);
        _ -> {skip, "cannot make a user namespace with no network namespaces here (util-linux unshare -Ur)"}
    end.

network_namespace_refused(Unshare, Config) ->
    Priv = code:priv_dir(erlang_python),
    Log = filename:join(?config(priv_dir, Config), "refused.log"),
    Script = "echo 0 > /proc/sys/user/max_net_namespaces && exec \"$0\" \"$@\"",
    Args = ["-Ur", "sh", "-c", Script, filename:join(Priv, "py_child"), Priv, "", Log, "0", "0", "0", "0"],
    Port = open_port({spawn_executable, Unshare},
                     [{packet, 4}, binary, exit_status, use_stdio, {args, Args},
                      {env, [{"ERLANG_PYTHON_CHILD_NETWORK", "none"}]}]),
    receive
        {Port, {exit_status, Status}} -> 72 = Status;
        {Port, {data, Frame}} -> ct:fail({child_started_with_network, Frame})
    after 60000 -> ct:fail(no_exit)
    end,
    {ok, Text} = file:read_file(Log),
    {match, _} = re:run(Text, <<"py_child: no network namespace">>),
    node_fine().

%% --- async: the child's event loop ------------------------------------------------------------

-define(ASYNC_CODE, <<"
import asyncio
started = []
state = {}
async def slow(x, delay=0.3):
    started.append(x)
    await asyncio.sleep(delay)
    return len(started)
async def watched(key, delay=600):
    state[key] = 'running'
    try:
        await asyncio.sleep(delay)
        state[key] = 'done'
    except asyncio.CancelledError:
        state[key] = 'cancelled'
        raise
async def fails():
    await asyncio.sleep(0)
    raise KeyError('k')
def plain(x):
    return x + 1
">>).

%% Polls Python expression Expr on Ctx until it gives Expected (a state change made by the child
%% on its own, after a request has returned), for at most a minute.
wait_for(Ctx, Expr, Expected) ->
    wait_for(Ctx, Expr, Expected, erlang:monotonic_time(millisecond) + 60000).

wait_for(Ctx, Expr, Expected, Deadline) ->
    case py:eval(Ctx, Expr) of
        {ok, Expected} -> ok;
        Other ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail({never, Expr, Expected, Other});
                false -> receive after 20 -> wait_for(Ctx, Expr, Expected, Deadline) end
            end
    end.

%% Coroutines started with py:spawn_call/4,5 and py_event_loop:create_task_on/4,5 run as tasks
%% of the child's loop, all at once; plain functions answer at once; errors are values.
async_tasks_run_at_once(_Config) ->
    Ctx = new(#{}),
    ok = py:exec(Ctx, ?ASYNC_CODE),
    Refs = [py:spawn_call(Ctx, '__main__', slow, [N]) || N <- [1, 2, 3]],
    %% Every one had started before the first one ended.
    [{ok, 3}, {ok, 3}, {ok, 3}] = [py:await(R, 60000) || R <- Refs],
    {ok, 2} = py:await(py:spawn_call(Ctx, '__main__', plain, [1])),
    {ok, 4} = py:await(py:spawn_call(Ctx, '__main__', slow, [4], #{delay => 0})),
    {error, {'KeyError', _}} = py:await(py:spawn_call(Ctx, '__main__', fails, [])),
    {error, {'AttributeError', _}} = py:await(py:spawn_call(Ctx, '__main__', nope, [])),
    %% Object references in and out of a task.
    ok = py:exec(Ctx, <<"class Box:\n    def __init__(self, v):\n        self.v = v\nasync def boxed(v):\n    return Box(v)\nasync def unbox(b):\n    return b.v\n">>),
    {ok, Box} = py:await(py:spawn_call(Ctx, '__main__', boxed, [9])),
    true = py:is_ref(Box),
    {ok, 9} = py:await(py:spawn_call(Ctx, '__main__', unbox, [Box])),
    {ok, 7} = py_event_loop:run_on(Ctx, asyncio, sleep, [0.01, 7], #{timeout => 60000}),
    Ref = py_event_loop:create_task_on(Ctx, '__main__', slow, [5], #{kwargs => #{delay => 0}}),
    receive {async_result, Ref, {ok, 5}} -> ok after 60000 -> ct:fail(no_async_result) end,
    {ok, 6} = py_event_loop:await(py_event_loop:create_task_on(Ctx, '__main__', slow, [6], #{kwargs => #{delay => 0}}), 60000),
    %% A request while tasks wait in the loop is answered without waiting for them.
    Long = py:spawn_call(Ctx, '__main__', watched, [long]),
    ok = wait_for(Ctx, <<"state.get('long')">>, <<"running">>),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py:cast(Ctx, '__main__', watched, [cast, 0]),
    ok = wait_for(Ctx, <<"state.get('cast')">>, <<"done">>),
    %% Misuse is badarg, as in-process.
    {'EXIT', {badarg, _}} = catch py:spawn_call(Ctx, '__main__', slow, not_a_list),
    {'EXIT', {badarg, _}} = catch py:await(make_ref()),
    ok = py_context:stop(Ctx),
    {error, context_stopped} = py:await(Long),
    {error, context_not_found} = py:await(py:spawn_call(Ctx, '__main__', slow, [1])),
    node_fine().

%% A caller that times out or exits cancels its task: CancelledError is raised where it awaits.
async_cancelled_by_timeout_and_exit(_Config) ->
    Ctx = new(#{}),
    ok = py:exec(Ctx, ?ASYNC_CODE),
    {error, timeout} = py:await(py:spawn_call(Ctx, '__main__', watched, [a]), 100),
    ok = wait_for(Ctx, <<"state.get('a')">>, <<"cancelled">>),
    {error, timeout} = py_event_loop:await(py_event_loop:create_task_on(Ctx, '__main__', watched, [b]), 100),
    ok = wait_for(Ctx, <<"state.get('b')">>, <<"cancelled">>),
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       _ = py:spawn_call(Ctx, '__main__', watched, [c]),
                                       _ = py_event_loop:create_task_on(Ctx, '__main__', watched, [d]),
                                       Self ! started,
                                       receive stop -> ok end
                               end),
    receive started -> ok end,
    ok = wait_for(Ctx, <<"(state.get('c'), state.get('d'))">>, {<<"running">>, <<"running">>}),
    Pid ! stop,
    receive {'DOWN', Mon, process, Pid, _} -> ok end,
    ok = wait_for(Ctx, <<"(state.get('c'), state.get('d'))">>, {<<"cancelled">>, <<"cancelled">>}),
    %% The same child served all of it.
    {ok, 1} = py:eval(Ctx, <<"1">>),
    ok = py_context:stop(Ctx).

%% A task that blocks the loop (time.sleep) cannot take its cancellation: the child is killed
%% kill_after ms after its caller gave up, and the other tasks get the crash, once.
async_task_blocking_loop_killed(_Config) ->
    Ctx = new(#{kill_after => 300}),
    ok = py:exec(Ctx, <<"import asyncio, time\nasync def block():\n    await asyncio.sleep(0)\n    time.sleep(600)\n">>),
    Other = py:spawn_call(Ctx, asyncio, sleep, [600]),
    {error, timeout} = py:await(py:spawn_call(Ctx, '__main__', block, []), 200),
    {error, {python_crashed, #{killed := interrupt_ignored}}} = py:await(Other, 60000),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_context:stop(Ctx).

%% py_event_loop:stop/1 cancels the tasks (their callers get CancelledError) and closes the loop;
%% start/1 makes one; a server a task started stays up between requests.
async_loop_start_stop(_Config) ->
    Ctx = new(#{}),
    ok = py:exec(Ctx, ?ASYNC_CODE),
    ok = py_event_loop:start(Ctx),
    ok = py_event_loop:start(Ctx),
    Refs = [py:spawn_call(Ctx, '__main__', watched, [K]) || K <- [x, y]],
    ok = wait_for(Ctx, <<"(state.get('x'), state.get('y'))">>, {<<"running">>, <<"running">>}),
    ok = py_event_loop:stop(Ctx),
    [{error, {'CancelledError', _}}, {error, {'CancelledError', _}}] = [py:await(R, 60000) || R <- Refs],
    {ok, <<"cancelled">>} = py:eval(Ctx, <<"state['x']">>),
    ok = py_event_loop:stop(Ctx),
    %% The server's handler makes an Erlang callback: no request is running then.
    ok = py:register_function(iso_async_upper, fun([B]) -> string:uppercase(B) end),
    ok = py:exec(Ctx, <<"
import erlang
async def serve():
    async def echo(reader, writer):
        line = await reader.readline()
        writer.write(erlang.call('iso_async_upper', line).encode())
        await writer.drain()
        writer.close()
    global server
    server = await asyncio.start_server(echo, '127.0.0.1', 0)
    return server.sockets[0].getsockname()[1]
">>),
    {ok, Port} = py:await(py:spawn_call(Ctx, '__main__', serve, []), 60000),
    {ok, Sock} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, line}], 60000),
    ok = gen_tcp:send(Sock, <<"hello\n">>),
    {ok, <<"HELLO\n">>} = gen_tcp:recv(Sock, 0, 60000),
    ok = gen_tcp:close(Sock),
    ok = py:unregister_function(iso_async_upper),
    ok = py_context:stop(Ctx).

%% The child dying answers every task in it once; the next request starts a new child, in which
%% tasks work again.
async_child_dies(_Config) ->
    Ctx = new(#{}),
    Refs = [py:spawn_call(Ctx, asyncio, sleep, [600]) || _ <- [1, 2, 3]],
    TaskRef = py_event_loop:create_task_on(Ctx, asyncio, sleep, [600]),
    {error, {python_crashed, #{exit_status := 5}}} = py:eval(Ctx, <<"__import__('os')._exit(5)">>),
    [{error, {python_crashed, #{exit_status := 5}}} = py:await(R, 60000) || R <- Refs],
    {error, {python_crashed, #{exit_status := 5}}} = py_event_loop:await(TaskRef, 60000),
    receive {async_result, _, _} = Extra -> ct:fail({second_answer, Extra}) after 0 -> ok end,
    {ok, 3} = py:await(py:spawn_call(Ctx, asyncio, sleep, [0, 3]), 60000),
    {error, {python_crashed, #{signal := sigkill}}} =
        py:await(py:spawn_call(Ctx, builtins, eval, [<<"__import__('os').kill(__import__('os').getpid(), 9)">>]), 60000),
    ok = py_context:stop(Ctx),
    node_fine().

%% erlang.call from a task: the function may call the same context again (re-entrant).
async_callbacks(_Config) ->
    Ctx = new(#{}),
    ok = py:register_function(iso_async_twice, fun([X]) ->
                                                       {ok, V} = py:eval(Ctx, <<"x * 2">>, #{x => X}),
                                                       V
                                               end),
    ok = py:exec(Ctx, <<"import asyncio, erlang\nasync def twice_later(x):\n    await asyncio.sleep(0.01)\n    return erlang.call('iso_async_twice', x)\n">>),
    Refs = [py:spawn_call(Ctx, '__main__', twice_later, [N]) || N <- lists:seq(1, 5)],
    [{ok, 2}, {ok, 4}, {ok, 6}, {ok, 8}, {ok, 10}] = [py:await(R, 60000) || R <- Refs],
    ok = py:unregister_function(iso_async_twice),
    ok = py_context:stop(Ctx).

%% --- observe: stats, backtrace, reset ----------------------------------------------------------

%% py_context:stats/1: the keys of an in-process context's statistics, and isolated ones.
stats_counted(_Config) ->
    {ok, Worker} = py_context:new(#{}),
    {ok, WorkerStats} = py_context:stats(Worker),
    ok = py_context:stop(Worker),
    Ctx = new(#{kill_after => 5000}),
    {ok, #{mode := isolated, submitted := 0, served := 0, queue_depth := 0, running := 0, tasks := 0,
           in_flight := 0, os_pid := OsPid, restarts := 0, memory := #{rss_bytes := Rss}} = Fresh} = py_context:stats(Ctx),
    [] = maps:keys(WorkerStats) -- maps:keys(Fresh),
    true = Rss > 0,
    OsPid = child_pid(Ctx),
    ok = py:register_function(iso_stats_cb, fun([X]) -> X end),
    {ok, 1} = py:eval(Ctx, <<"__import__('erlang').call('iso_stats_cb', 1)">>),
    {error, {'ZeroDivisionError', _}} = py:eval(Ctx, <<"1 / 0">>),
    {error, timeout} = py_context:eval(Ctx, <<"__import__('time').sleep(60)">>, #{}, 100),
    {ok, 1} = py:eval(Ctx, <<"1">>),   %% after the interrupted one
    Self = self(),
    {Caller, Mon} = spawn_monitor(fun() -> Self ! go, py:eval(Ctx, <<"__import__('time').sleep(60)">>) end),
    receive go -> ok end,
    {ok, _} = wait_stats(Ctx, fun(#{running := R}) -> R =:= 1 end),
    exit(Caller, kill),
    receive {'DOWN', Mon, process, Caller, _} -> ok end,
    {ok, 1} = py:eval(Ctx, <<"1">>),
    Task = py:spawn_call(Ctx, asyncio, sleep, [600]),
    {ok, #{tasks := 1, in_flight := 1}} = wait_stats(Ctx, fun(#{tasks := T, running := R}) -> T =:= 1 andalso R =:= 0 end),
    %% Served: the requests answered to their caller (not the two interrupted ones, nor the task).
    {ok, #{submitted := 8, errors := 1, served := 5, timeouts := 1, abandoned := 1, interrupts := 2,
           callbacks := 1, queue_wait_us := #{count := 8}, run_time_us := #{count := 5, max := Max}}} =
        py_context:stats(Ctx),
    true = Max > 0,
    {error, {python_crashed, _}} = py:eval(Ctx, <<"__import__('os')._exit(1)">>),
    {error, {python_crashed, _}} = py:await(Task, 60000),
    {ok, #{restarts := 0, os_pid := undefined, memory := undefined, tasks := 0}} = py_context:stats(Ctx),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    {ok, #{restarts := 1, os_pid := NewPid}} = py_context:stats(Ctx),
    true = NewPid =/= OsPid,
    ok = py:unregister_function(iso_stats_cb),
    ok = py_context:stop(Ctx),
    {error, context_not_found} = py_context:stats(Ctx).

wait_stats(Ctx, Pred) ->
    wait_stats(Ctx, Pred, erlang:monotonic_time(millisecond) + 60000).

wait_stats(Ctx, Pred, Deadline) ->
    {ok, Stats} = py_context:stats(Ctx),
    case Pred(Stats) of
        true -> {ok, Stats};
        false ->
            erlang:monotonic_time(millisecond) < Deadline orelse ct:fail({stats_never, Stats}),
            receive after 10 -> wait_stats(Ctx, Pred, Deadline) end
    end.

%% py_context:backtrace/1: idle, the stack of a running request (in a blocking call), of a
%% task of the loop, of a request nested in a callback; several callers at once.
backtrace_stacks(Config) ->
    Ctx = new(#{}),
    {ok, idle} = py_context:backtrace(Ctx),
    Gate = filename:join(?config(priv_dir, Config), "bt_gate"),
    _ = file:delete(Gate),
    ok = py:exec(Ctx, <<"
import asyncio, erlang, os, time
def inner(gate):
    while not os.path.exists(gate):
        time.sleep(0.01)
def outer(gate):
    inner(gate)
async def in_task(gate):
    await asyncio.sleep(0)
    inner(gate)
def nested(gate):
    return erlang.call('iso_bt_cb', gate)
">>),
    Self = self(),
    GateArg = list_to_binary(Gate),
    %% A request.
    spawn_link(fun() -> Self ! {done, py:call(Ctx, '__main__', outer, [GateArg])} end),
    [#{function := <<"inner">>, file := <<"<exec>">>, line := 5}, #{function := <<"outer">>}] =
        wait_backtrace(Ctx),
    Parallel = [spawn_monitor(fun() -> exit({bt, py_context:backtrace(Ctx)}) end) || _ <- lists:seq(1, 5)],
    [receive {'DOWN', M, process, P, {bt, {ok, [#{function := <<"inner">>} | _]}}} -> ok end || {P, M} <- Parallel],
    ok = file:write_file(Gate, <<>>),
    receive {done, {ok, none}} -> ok end,
    {ok, idle} = py_context:backtrace(Ctx),
    ok = file:delete(Gate),
    %% A task of the loop: the loop's own frames are left out.
    Task = py:spawn_call(Ctx, '__main__', in_task, [GateArg]),
    [#{function := <<"inner">>}, #{function := <<"in_task">>}] = wait_backtrace(Ctx),
    ok = file:write_file(Gate, <<>>),
    {ok, none} = py:await(Task, 60000),
    ok = file:delete(Gate),
    %% A request made by a callback, on top of the request that waits for it.
    ok = py:register_function(iso_bt_cb, fun([G]) -> {ok, V} = py:call(Ctx, '__main__', outer, [G]), V end),
    spawn_link(fun() -> Self ! {done, py:call(Ctx, '__main__', nested, [GateArg])} end),
    %% (erlang.call's own frame is the server's: left out)
    [#{function := <<"inner">>}, #{function := <<"outer">>}, #{function := <<"nested">>}] = wait_backtrace(Ctx),
    ok = file:write_file(Gate, <<>>),
    receive {done, {ok, none}} -> ok end,
    ok = py:unregister_function(iso_bt_cb),
    ok = py_context:stop(Ctx),
    {error, context_not_found} = py_context:backtrace(Ctx).

%% The stack once the child runs code of a request (or a task), polling at most a minute.
wait_backtrace(Ctx) ->
    wait_backtrace(Ctx, erlang:monotonic_time(millisecond) + 60000).

wait_backtrace(Ctx, Deadline) ->
    case py_context:backtrace(Ctx) of
        {ok, [_ | _] = Stack} -> Stack;
        Other ->
            erlang:monotonic_time(millisecond) < Deadline orelse ct:fail({no_stack, Other}),
            receive after 10 -> wait_backtrace(Ctx, Deadline) end
    end.

%% Code that keeps the child's signal handler from running (as C code that never returns to
%% Python would; here the signal is blocked): the backtrace gives up after 5 s with
%% {error, timeout}; the late stack reaches nobody.
backtrace_in_c_code_times_out(_Config) ->
    Ctx = new(#{}),
    ok = py:exec(Ctx, <<"
import signal, time
def deaf():
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
    try:
        time.sleep(60)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR2])
">>),
    Self = self(),
    spawn_link(fun() -> Self ! {done, py:call(Ctx, '__main__', deaf, [], #{timeout => 60000})} end),
    {ok, _} = wait_stats(Ctx, fun(#{running := R}) -> R =:= 1 end),
    {error, timeout} = py_context:backtrace(Ctx),
    ok = py:interrupt(Ctx),
    receive {done, {error, interrupted}} -> ok end,
    {ok, idle} = py_context:backtrace(Ctx),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    %% The child dying while backtraces wait for it answers each of them, once.
    {ok, ChildPid} = py:eval(Ctx, <<"__import__('os').getpid()">>),
    spawn_link(fun() -> Self ! {done, py:call(Ctx, '__main__', deaf, [], #{timeout => 60000})} end),
    {ok, _} = wait_stats(Ctx, fun(#{running := R}) -> R =:= 1 end),
    Waiters = [spawn_monitor(fun() -> exit({bt, py_context:backtrace(Ctx)}) end) || _ <- lists:seq(1, 3)],
    %% Their calls are sent (they wait in gen:do_call) before the child dies: the context sees
    %% each of them before it sees the crash.
    [ok = wait_in_call(P) || {P, _} <- Waiters],
    kill9(ChildPid),
    [receive {'DOWN', M, process, P, {bt, {error, {python_crashed, #{signal := sigkill}}}}} -> ok end
     || {P, M} <- Waiters],
    receive {done, {error, {python_crashed, _}}} -> ok end,
    ok = py_context:stop(Ctx).

wait_in_call(Pid) ->
    case process_info(Pid, [current_function, status]) of
        [{current_function, {gen, do_call, 4}}, {status, waiting}] -> ok;
        undefined -> ct:fail({ended_before_the_crash, Pid});
        _ -> receive after 5 -> wait_in_call(Pid) end
    end.

%% py_context:reset/1: a fresh __main__, modules and object references kept.
reset_namespace(_Config) ->
    Ctx = new(#{}),
    ok = py:exec(Ctx, <<"import json\nx = 1\nclass Box:\n    v = 7\n">>),
    {ok, Box} = py:eval(Ctx, <<"Box()">>),
    ok = py_context:reset(Ctx),
    {error, {'NameError', _}} = py:eval(Ctx, <<"x">>),
    {error, {'NameError', _}} = py:eval(Ctx, <<"json">>),
    {ok, <<"__main__">>} = py:eval(Ctx, <<"__name__">>),
    {ok, true} = py:eval(Ctx, <<"'json' in __import__('sys').modules">>),
    {ok, 7} = py:getattr(Box, v),
    {ok, 3} = py:eval(Ctx, <<"len([1, 2, 3])">>),
    ok = py_context:stop(Ctx),
    {error, context_not_found} = py_context:reset(Ctx).
