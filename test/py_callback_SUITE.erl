%% @doc Python calling Erlang: registered functions (three call styles), errors, re-entrant
%% chains, callback storms, erlang.send/self, and callbacks interrupted by timeouts or by the
%% caller's death.
-module(py_callback_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1]).
-export([three_styles/1, module_function/1, unregister/1, erlang_exception/1, unknown_name/1,
         arguments_and_results/1, code_runs_once/1, reentrant_depth_64/1, reentrant_parallel/1,
         storm_unique_tokens/1, send_to_pid/1, self_is_caller/1, outside_request/1,
         timeout_in_callback/1, caller_killed_in_callback/1, owngil_callbacks/1]).
-export([triple/1]).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [{group, basics}, {group, reentrancy}, {group, faults}, owngil_callbacks].

groups() ->
    [{basics, [parallel], [three_styles, module_function, unregister, erlang_exception, unknown_name,
                           arguments_and_results, code_runs_once, send_to_pid, self_is_caller,
                           outside_request]},
     {reentrancy, [], [reentrant_depth_64, reentrant_parallel, storm_unique_tokens]},
     {faults, [], [timeout_in_callback, caller_killed_in_callback]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

triple([X]) -> 3 * X.

%% --- basics -------------------------------------------------------------------------------------

three_styles(_Config) ->
    ok = py:register_function(cb_add, fun([A, B]) -> A + B end),
    ok = py:exec(<<"import erlang\n"
                   "from erlang import cb_add\n"
                   "def styles():\n"
                   "    return [cb_add(1, 2), erlang.cb_add(3, 4), erlang.call('cb_add', 5, 6)]\n">>),
    {ok, [3, 7, 11]} = py:call('__main__', styles, []).

module_function(_Config) ->
    ok = py:register_function(cb_triple, ?MODULE, triple),
    {ok, 21} = py:eval(<<"__import__('erlang').call('cb_triple', 7)">>).

unregister(_Config) ->
    ok = py:register_function(<<"cb_gone">>, fun(_) -> 1 end),
    {ok, 1} = py:eval(<<"__import__('erlang').cb_gone()">>),
    {ok, true} = py:eval(<<"hasattr(__import__('erlang'), 'cb_gone')">>),
    ok = py:unregister_function(cb_gone),
    %% Only registered names are attributes (erlang_python 3.x); erlang.call still reaches Erlang.
    {ok, false} = py:eval(<<"hasattr(__import__('erlang'), 'cb_gone')">>),
    {error, {'AttributeError', _}} = py:eval(<<"__import__('erlang').cb_gone()">>),
    {error, {'NameError', _}} = py:eval(<<"__import__('erlang').call('cb_gone')">>).

erlang_exception(_Config) ->
    ok = py:register_function(cb_fail, fun([How]) ->
                                               case How of
                                                   <<"error">> -> error(badarith);
                                                   <<"throw">> -> throw(my_ball);
                                                   <<"exit">> -> exit(gone)
                                               end
                                       end),
    ok = py:exec(<<"import erlang\n"
                   "def catch_it(how):\n"
                   "    try:\n"
                   "        erlang.cb_fail(how)\n"
                   "    except erlang.ErlangError as e:\n"
                   "        return list(e.args)\n">>),
    {ok, [<<"error">>, <<"badarith">>]} = py:call('__main__', catch_it, [<<"error">>]),
    {ok, [<<"throw">>, <<"my_ball">>]} = py:call('__main__', catch_it, [<<"throw">>]),
    {ok, [<<"exit">>, <<"gone">>]} = py:call('__main__', catch_it, [<<"exit">>]),
    %% Not caught in Python: it reaches Erlang as a Python exception.
    {error, {'ErlangError', _}} = py:eval(<<"__import__('erlang').cb_fail('error')">>).

unknown_name(_Config) ->
    {error, {'NameError', Msg}} = py:eval(<<"__import__('erlang').call('no_such_callback_xyz')">>),
    true = string:find(Msg, "register_function") =/= nomatch,
    {error, {'TypeError', _}} = py:eval(<<"__import__('erlang').call(42)">>).

arguments_and_results(_Config) ->
    ok = py:register_function(cb_echo, fun(Args) -> Args end),
    {ok, [1, 2.5, <<"s">>, [1, 2], {3, 4}, #{<<"k">> := none}]} =
        py:eval(<<"__import__('erlang').cb_echo(1, 2.5, 's', [1, 2], (3, 4), {'k': None})">>),
    ok = py:register_function(cb_pid, fun([]) -> self() end),
    {ok, <<"Pid">>} = py:eval(<<"type(__import__('erlang').cb_pid()).__name__">>).

code_runs_once(_Config) ->
    ok = py:register_function(cb_one, fun(_) -> 1 end),
    ok = py:exec(<<"import erlang\n"
                   "runs = []\n"
                   "def once():\n"
                   "    runs.append(1)\n"
                   "    x = erlang.cb_one()\n"
                   "    runs.append(2)\n"
                   "    return x\n">>),
    {ok, 1} = py:call('__main__', once, []),
    {ok, [1, 2]} = py:eval(<<"runs">>).

send_to_pid(_Config) ->
    Ref = make_ref(),
    {ok, none} = py:call(erlang, send, [self(), {<<"hello">>, Ref, [1, 2]}]),
    receive {<<"hello">>, Ref, [1, 2]} -> ok after 2000 -> ct:fail(no_message) end,
    {error, {'TypeError', _}} = py:call(erlang, send, [1, 1]),
    %% A str is a registered name: none registered is erlang.NotRegistered (a ProcessError and
    %% a TypeError), a dead pid erlang.ProcessError.
    {error, {'NotRegistered', _}} = py:call(erlang, send, [<<"not a registered name">>, 1]),
    Dead = spawn(fun() -> ok end),
    Mon = monitor(process, Dead),
    receive {'DOWN', Mon, process, Dead, _} -> ok end,
    {error, {'ProcessError', _}} = py:call(erlang, send, [Dead, 1]).

self_is_caller(_Config) ->
    Self = self(),
    {ok, Self} = py:eval(<<"__import__('erlang').self()">>).

outside_request(_Config) ->
    %% A Python thread of its own has no request: its calls run in a process of their own
    %% (py_thread_callback), with the same results and errors.
    ok = py:register_function(cb_from_thread, fun([X]) -> {X, self()} end),
    ok = py:exec(<<"import threading, erlang\n"
                   "def in_thread():\n"
                   "    out = []\n"
                   "    def body():\n"
                   "        out.append(erlang.call('cb_from_thread', 1))\n"
                   "        try:\n"
                   "            erlang.call('cb_anything')\n"
                   "        except NameError as e:\n"
                   "            out.append('NameError')\n"
                   "    t = threading.Thread(target=body)\n"
                   "    t.start(); t.join()\n"
                   "    return out\n">>),
    {ok, [{1, Runner}, <<"NameError">>]} = py:call('__main__', in_thread, []),
    true = is_pid(Runner) andalso Runner =/= self().

%% --- re-entrancy ----------------------------------------------------------------------------

%% Python -> Erlang -> Python -> ... on one context, Depth levels.
chain(Ctx) ->
    ok = py:exec(Ctx, <<"import erlang\n"
                        "def down(n, token):\n"
                        "    return [token] if n == 0 else [n] + erlang.call('cb_again', n - 1, token)\n">>),
    ok = py:register_function(cb_again, fun([N, Token]) ->
                                                {ok, R} = py:call(Ctx, '__main__', down, [N, Token]),
                                                R
                                        end).

reentrant_depth_64(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    chain(Ctx),
    Expected = lists:seq(64, 1, -1) ++ [<<"t">>],
    {ok, Expected} = py:call(Ctx, '__main__', down, [64, <<"t">>]),
    ok = py_context:stop(Ctx).

reentrant_parallel(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    chain(Ctx),
    Self = self(),
    Pids = [spawn_link(fun() ->
                               Token = integer_to_binary(I),
                               Depth = 1 + I rem 64,
                               R = py:call(Ctx, '__main__', down, [Depth, Token]),
                               Self ! {done, self(), R =:= {ok, lists:seq(Depth, 1, -1) ++ [Token]}}
                       end) || I <- lists:seq(1, 32)],
    [true] = lists:usort([receive {done, P, Ok} -> Ok after 60000 -> timeout end || P <- Pids]),
    ok = py_context:stop(Ctx).

%% 100 processes x 300 callbacks (py_stress_SUITE's callback_storm runs more): every callback
%% gets the answer to its own token. The calls have no deadline of their own (the suite's
%% timetrap is the bound): at ~4,000 callbacks/s on a quiet 2-core machine, 100 x 1,000 came
%% within a few seconds of the 30 s default on a loaded one.
storm_unique_tokens(_Config) ->
    ok = py:register_function(cb_token, fun([T]) -> {token, T} end),
    Self = self(),
    {Micros, Mismatches} =
        timer:tc(fun() ->
                         Pids = [spawn_link(fun() ->
                                                    ok = py:exec(<<"import erlang\n"
                                                                   "def storm(base, n):\n"
                                                                   "    bad = 0\n"
                                                                   "    for i in range(n):\n"
                                                                   "        t = base * 100000 + i\n"
                                                                   "        if erlang.cb_token(t) != ('token', t):\n"
                                                                   "            bad += 1\n"
                                                                   "    return bad\n">>),
                                                    {ok, Bad} = py:call('__main__', storm, [I, 300], #{}, infinity),
                                                    Self ! {bad, self(), Bad}
                                            end) || I <- lists:seq(1, 100)],
                         lists:sum([receive {bad, P, B} -> B end || P <- Pids])
                 end),
    ct:pal("callback storm: 100 processes x 300 callbacks, ~p mismatches, ~.1f s", [Mismatches, Micros / 1.0e6]),
    0 = Mismatches.

%% --- faults ----------------------------------------------------------------------------------

timeout_in_callback(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    ok = py:register_function(cb_slow, fun(_) -> timer:sleep(200), 1 end),
    ok = py:register_function(cb_quick, fun(_) -> 1 end),
    {error, timeout} = py:call(Ctx, erlang, call, [<<"cb_slow">>], #{timeout => 50}),
    Results = [py:call(Ctx, erlang, call, [<<"cb_quick">>], #{timeout => I rem 3}) || I <- lists:seq(1, 300)],
    [] = [R || R <- Results, R =/= {ok, 1}, R =/= {error, timeout}],
    %% served after every earlier request: a stray reply or callback request of one would be
    %% in the mailbox before this reply
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    {messages, []} = process_info(self(), messages),
    ok = py_context:stop(Ctx).

%% Each caller is killed while its callback runs (the callback tells the test it has started).
caller_killed_in_callback(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    Self = self(),
    ok = py:register_function(cb_block, fun(_) -> Self ! {in_callback, self()}, receive never -> ok end end),
    [begin
         P = spawn(fun() -> py:call(Ctx, erlang, call, [<<"cb_block">>]) end),
         receive {in_callback, P} -> ok after 30000 -> ct:fail(callback_not_called) end,
         exit(P, kill)
     end || _ <- lists:seq(1, 50)],
    {ok, 4} = py:eval(Ctx, <<"2 + 2">>),
    ok = py_context:stop(Ctx).

%% --- owngil ------------------------------------------------------------------------------------

owngil_callbacks(_Config) ->
    case py_context:new(#{mode => owngil}) of
        {error, {owngil_unsupported, V}} ->
            {skip, "OWN_GIL needs Python 3.13+, this build uses " ++ binary_to_list(V)};
        {ok, Ctx} ->
            ok = py:register_function(cb_mul, fun([A, B]) -> A * B end),
            {ok, 42} = py:eval(Ctx, <<"__import__('erlang').cb_mul(6, 7)">>),
            chain(Ctx),
            {ok, [3, 2, 1, <<"o">>]} = py:call(Ctx, '__main__', down, [3, <<"o">>]),
            ok = py_context:stop(Ctx)
    end.
