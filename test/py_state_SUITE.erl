%% @doc Shared state: py:state_* from Erlang, erlang.state_* from Python, every context
%% (owngil included) seeing the same values, and atomic counters under concurrency.
-module(py_state_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([erlang_api/1, python_api/1, erlang_and_python_agree/1, atomic_counters/1, owngil_sees_state/1]).

suite() -> [{timetrap, {seconds, 60}}].

all() -> [erlang_api, python_api, erlang_and_python_agree, atomic_counters, owngil_sees_state].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

init_per_testcase(_Case, Config) ->
    ok = py:state_clear(),
    Config.

end_per_testcase(_Case, _Config) ->
    ok.

erlang_api(_Config) ->
    {error, not_found} = py:state_fetch(missing),
    ok = py:state_store(<<"k">>, #{a => [1, 2]}),
    {ok, #{a := [1, 2]}} = py:state_fetch(<<"k">>),
    {ok, #{a := [1, 2]}} = py:state_fetch(k),
    [<<"k">>] = py:state_keys(),
    1 = py:state_incr(n),
    11 = py:state_incr(n, 10),
    10 = py:state_decr(n),
    5 = py:state_decr(n, 5),
    ok = py:state_remove(k),
    {error, not_found} = py:state_fetch(k),
    ok = py:state_clear(),
    [] = py:state_keys(),
    {'EXIT', {badarg, _}} = (catch py:state_incr(n, 1.5)),
    ok.

python_api(_Config) ->
    ok = py:exec(<<"import erlang\n"
                   "def work():\n"
                   "    erlang.state_set('p', [1, 'two'])\n"
                   "    a = erlang.state_get('p')\n"
                   "    b = erlang.state_get('absent', 'dflt')\n"
                   "    c = erlang.state_incr('cnt', 5)\n"
                   "    d = erlang.state_decr('cnt')\n"
                   "    keys = sorted(erlang.state_keys())\n"
                   "    erlang.state_delete('p')\n"
                   "    return [a, b, c, d, keys, erlang.state_get('p')]\n">>),
    {ok, [[1, <<"two">>], <<"dflt">>, 5, 4, [<<"cnt">>, <<"p">>], none]} = py:call('__main__', work, []).

erlang_and_python_agree(_Config) ->
    ok = py:state_store(shared, 42),
    {ok, 42} = py:eval(<<"__import__('erlang').state_get('shared')">>),
    {ok, none} = py:eval(<<"__import__('erlang').state_set('from_py', {'x': 1})">>),
    {ok, #{<<"x">> := 1}} = py:state_fetch(from_py).

atomic_counters(_Config) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                               [py:state_incr(hits) || _ <- lists:seq(1, 500)],
                               {ok, _} = py:eval(<<"[__import__('erlang').state_incr('hits') for _ in range(200)][-1]">>),
                               Self ! {done, self()}
                       end) || _ <- lists:seq(1, 10)],
    [receive {done, P} -> ok end || P <- Pids],
    {ok, 7000} = py:state_fetch(hits).

owngil_sees_state(_Config) ->
    case py_context:new(#{mode => owngil}) of
        {error, {owngil_unsupported, V}} ->
            {skip, "OWN_GIL needs Python 3.13+, this build uses " ++ binary_to_list(V)};
        {ok, Ctx} ->
            ok = py:state_store(from_erlang, <<"hello">>),
            {ok, <<"hello">>} = py:eval(Ctx, <<"__import__('erlang').state_get('from_erlang')">>),
            {ok, 1} = py:eval(Ctx, <<"__import__('erlang').state_incr('owngil_counter')">>),
            {ok, 1} = py:state_fetch(owngil_counter),
            ok = py_context:stop(Ctx)
    end.
