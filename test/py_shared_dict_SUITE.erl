%% @doc SharedDict: py:shared_dict_* from Erlang, erlang.SharedDict from Python in worker and
%% owngil contexts, concurrent writers from several interpreters, a destroyed dict, a dict whose
%% owner died, values with no Erlang equivalent.
-module(py_shared_dict_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_group/2, end_per_group/2,
         init_per_testcase/2, end_per_testcase/2]).
-export([erlang_api/1, destroyed_from_erlang/1, owner_exit_destroys/1, bad_handles/1, concurrent_writers/1,
         python_api/1, python_and_erlang_agree/1, python_refuses_python_objects/1, destroyed_in_python/1,
         every_interpreter_sees_one_dict/1]).

suite() -> [{timetrap, {seconds, 120}}].

all() -> [erlang_api, destroyed_from_erlang, owner_exit_destroys, bad_handles, concurrent_writers,
          {group, worker}, {group, owngil}].

groups() ->
    Python = [python_api, python_and_erlang_agree, python_refuses_python_objects, destroyed_in_python,
              every_interpreter_sees_one_dict],
    [{worker, [], Python}, {owngil, [], Python}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

init_per_group(Mode, Config) ->
    py_test_util:mode_group(Mode, Config).

end_per_group(_Mode, _Config) ->
    ok.

%% A context of the group's mode per case (a context lives as long as the process that made it:
%% the case's own process).
init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    ok.

context(Config) ->
    {ok, Ctx} = py_context:new(#{mode => ?config(mode, Config)}),
    ok = py:exec(Ctx, helpers()),
    Ctx.

helpers() ->
    <<"from erlang import SharedDict\n"
      "def exercise(h):\n"
      "    sd = SharedDict(h)\n"
      "    sd['n'] = 1\n"
      "    sd['cfg'] = {'host': 'localhost', 'ports': [80, 443], 'on': True, 'none': None}\n"
      "    sd[('t', 1)] = 2.5\n"
      "    out = [sd['n'], sd['cfg'], sd[('t', 1)], sd.get('missing'), sd.get('missing', 'dflt'),\n"
      "           'n' in sd, 'missing' in sd, object() in sd, sorted(k for k in sd.keys() if isinstance(k, str))]\n"
      "    try:\n"
      "        sd['missing']\n"
      "        out.append('no KeyError')\n"
      "    except KeyError as e:\n"
      "        out.append(['KeyError', e.args[0]])\n"
      "    del sd['n']\n"
      "    try:\n"
      "        del sd['n']\n"
      "        out.append('no KeyError')\n"
      "    except KeyError:\n"
      "        out.append('KeyError')\n"
      "    out.append('n' in sd)\n"
      "    return out\n"
      "def set_items(h, items):\n"
      "    sd = SharedDict(h)\n"
      "    for k, v in items:\n"
      "        sd[k] = v\n"
      "def get_item(h, k):\n"
      "    return SharedDict(h)[k]\n"
      "def refuse(h):\n"
      "    sd = SharedDict(h)\n"
      "    out = []\n"
      "    for v in (object(), [1, object()], {'k': lambda: 1}):\n"
      "        try:\n"
      "            sd['bad'] = v\n"
      "            out.append('stored')\n"
      "        except TypeError as e:\n"
      "            out.append('TypeError')\n"
      "    try:\n"
      "        sd[object()] = 1\n"
      "    except TypeError:\n"
      "        out.append('TypeError')\n"
      "    out.append('bad' in sd)\n"
      "    try:\n"
      "        SharedDict(42)\n"
      "    except TypeError:\n"
      "        out.append('TypeError')\n"
      "    return out\n"
      "def after_destroy(h):\n"
      "    sd = SharedDict(h)\n"
      "    sd.destroy()\n"
      "    out = []\n"
      "    for op in (lambda: sd['k'], lambda: sd.__setitem__('k', 1), lambda: sd.__delitem__('k'),\n"
      "               lambda: sd.get('k'), lambda: sd.keys(), lambda: 'k' in sd):\n"
      "        try:\n"
      "            op()\n"
      "            out.append('ran')\n"
      "        except RuntimeError as e:\n"
      "            out.append(str(e))\n"
      "    sd.destroy()\n"
      "    return out\n">>.

%% --- Erlang --------------------------------------------------------------------------------

erlang_api(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    undefined = py:shared_dict_get(SD, <<"k">>),
    dflt = py:shared_dict_get(SD, <<"k">>, dflt),
    ok = py:shared_dict_set(SD, <<"config">>, #{host => <<"localhost">>, port => 8080}),
    #{host := <<"localhost">>, port := 8080} = py:shared_dict_get(SD, <<"config">>),
    ok = py:shared_dict_set(SD, {tuple, 1}, [1, 2.5, self()]),
    Self = self(),
    [1, 2.5, Self] = py:shared_dict_get(SD, {tuple, 1}),
    ok = py:shared_dict_set(SD, <<"config">>, replaced),
    replaced = py:shared_dict_get(SD, <<"config">>),
    Keys = lists:sort(py:shared_dict_keys(SD)),
    Keys = lists:sort([<<"config">>, {tuple, 1}]),
    ok = py:shared_dict_del(SD, <<"config">>),
    ok = py:shared_dict_del(SD, <<"config">>),
    undefined = py:shared_dict_get(SD, <<"config">>),
    [{tuple, 1}] = py:shared_dict_keys(SD),
    %% a big map (more than 128 keys) is copied, never decoded off a scheduler
    Big = maps:from_list([{N, N} || N <- lists:seq(1, 500)]),
    ok = py:shared_dict_set(SD, big, Big),
    Big = py:shared_dict_get(SD, big),
    ok = py:shared_dict_destroy(SD).

destroyed_from_erlang(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    ok = py:shared_dict_set(SD, <<"k">>, 1),
    ok = py:shared_dict_destroy(SD),
    ok = py:shared_dict_destroy(SD),
    {'EXIT', {badarg, _}} = (catch py:shared_dict_get(SD, <<"k">>)),
    {'EXIT', {badarg, _}} = (catch py:shared_dict_get(SD, <<"k">>, d)),
    {'EXIT', {badarg, _}} = (catch py:shared_dict_set(SD, <<"k">>, 2)),
    {'EXIT', {badarg, _}} = (catch py:shared_dict_del(SD, <<"k">>)),
    {'EXIT', {badarg, _}} = (catch py:shared_dict_keys(SD)),
    %% Python sees it destroyed too
    {error, {'RuntimeError', _}} = py:eval(<<"__import__('erlang').SharedDict(h)['k']">>, #{h => SD}).

owner_exit_destroys(_Config) ->
    Self = self(),
    {Owner, Mon} = spawn_monitor(fun() ->
                                         {ok, SD} = py:shared_dict_new(),
                                         ok = py:shared_dict_set(SD, <<"k">>, v),
                                         Self ! {dict, SD},
                                         receive stop -> ok end
                                 end),
    SD = receive {dict, D} -> D end,
    v = py:shared_dict_get(SD, <<"k">>),
    Owner ! stop,
    receive {'DOWN', Mon, process, Owner, normal} -> ok end,
    %% the monitor's callback runs on its own: wait for its observable effect
    ok = wait_until(fun() -> destroyed(SD) end, 5000),
    {'EXIT', {badarg, _}} = (catch py:shared_dict_set(SD, <<"k">>, 1)),
    ok.

bad_handles(_Config) ->
    {'EXIT', {badarg, _}} = (catch py:shared_dict_get(make_ref(), k)),
    {'EXIT', {badarg, _}} = (catch py:shared_dict_set(not_a_dict, k, v)),
    {'EXIT', {badarg, _}} = (catch py:shared_dict_destroy(self())),
    {ok, B} = py_buffer:new(),
    {'EXIT', {badarg, _}} = (catch py:shared_dict_keys(B)),
    {error, {'TypeError', _}} = py:eval(<<"__import__('erlang').SharedDict(b)">>, #{b => B}).

%% Writers in several interpreters (worker and, on 3.13+, owngil contexts) and Erlang processes
%% write their own keys and one common key at the same time; every write lands.
concurrent_writers(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    Modes = [worker, worker | case py:subinterp_supported() of true -> [owngil, owngil]; false -> [] end],
    Ctxs = [begin {ok, C} = py_context:new(#{mode => M}), ok = py:exec(C, helpers()), C end || M <- Modes],
    N = 500,
    Self = self(),
    Py = [spawn_link(fun() ->
                             Items = [[[I, K], K] || K <- lists:seq(1, N)] ++ [[<<"common">>, I]],
                             {ok, none} = py:call(C, '__main__', set_items, [SD, Items]),
                             Self ! {done, I}
                     end) || {I, C} <- lists:zip(lists:seq(1, length(Ctxs)), Ctxs)],
    Erl = [spawn_link(fun() ->
                              [ok = py:shared_dict_set(SD, [I, K], K) || K <- lists:seq(1, N)],
                              ok = py:shared_dict_set(SD, <<"common">>, I),
                              Self ! {done, I}
                      end) || I <- lists:seq(100, 101)],
    [receive {done, _} -> ok end || _ <- Py ++ Erl],
    Writers = lists:seq(1, length(Ctxs)) ++ [100, 101],
    Expected = length(Writers) * N + 1,
    Expected = length(py:shared_dict_keys(SD)),
    [K = py:shared_dict_get(SD, [I, K]) || I <- Writers, K <- [1, N div 2, N]],
    true = lists:member(py:shared_dict_get(SD, <<"common">>), Writers),
    %% and each interpreter reads what the others wrote
    [{ok, N} = py:call(C, '__main__', get_item, [SD, [100, N]]) || C <- Ctxs],
    [ok = py_context:stop(C) || C <- Ctxs],
    ok = py:shared_dict_destroy(SD).

%% --- Python (per context mode) -------------------------------------------------------------

python_api(Config) ->
    Ctx = context(Config),
    {ok, SD} = py:shared_dict_new(),
    {ok, [1, #{<<"host">> := <<"localhost">>, <<"ports">> := [80, 443], <<"on">> := true, <<"none">> := none},
          2.5, none, <<"dflt">>, true, false, false, [<<"cfg">>, <<"n">>], [<<"KeyError">>, <<"missing">>],
          <<"KeyError">>, false]} = py:call(Ctx, '__main__', exercise, [SD]),
    %% Python str keys are binaries, tuples stay tuples
    2.5 = py:shared_dict_get(SD, {<<"t">>, 1}),
    ok = py:shared_dict_destroy(SD).

python_and_erlang_agree(Config) ->
    Ctx = context(Config),
    {ok, SD} = py:shared_dict_new(),
    ok = py:shared_dict_set(SD, <<"from_erlang">>, {a, [1, 2]}),
    {ok, {<<"a">>, [1, 2]}} = py:call(Ctx, '__main__', get_item, [SD, <<"from_erlang">>]),
    {ok, none} = py:call(Ctx, '__main__', set_items, [SD, [[<<"from_python">>, #{<<"x">> => 1}]]]),
    #{<<"x">> := 1} = py:shared_dict_get(SD, <<"from_python">>),
    ok = py:shared_dict_destroy(SD).

python_refuses_python_objects(Config) ->
    Ctx = context(Config),
    {ok, SD} = py:shared_dict_new(),
    {ok, [<<"TypeError">>, <<"TypeError">>, <<"TypeError">>, <<"TypeError">>, false, <<"TypeError">>]} =
        py:call(Ctx, '__main__', refuse, [SD]),
    [] = py:shared_dict_keys(SD),
    ok = py:shared_dict_destroy(SD).

destroyed_in_python(Config) ->
    Ctx = context(Config),
    {ok, SD} = py:shared_dict_new(),
    ok = py:shared_dict_set(SD, <<"k">>, 1),
    Msg = <<"SharedDict has been destroyed">>,
    {ok, [Msg, Msg, Msg, Msg, Msg, Msg]} = py:call(Ctx, '__main__', after_destroy, [SD]),
    {'EXIT', {badarg, _}} = (catch py:shared_dict_get(SD, <<"k">>)),
    ok.

%% A value set in this group's context is seen by the default pool's contexts and back.
every_interpreter_sees_one_dict(Config) ->
    Ctx = context(Config),
    {ok, SD} = py:shared_dict_new(),
    {ok, none} = py:call(Ctx, '__main__', set_items, [SD, [[<<"mode">>, atom_to_binary(?config(mode, Config))]]]),
    Mode = atom_to_binary(?config(mode, Config)),
    {ok, Mode} = py:eval(<<"__import__('erlang').SharedDict(h)['mode']">>, #{h => SD}),
    ok = py:shared_dict_destroy(SD).

%% --- helpers -------------------------------------------------------------------------------

destroyed(SD) ->
    case catch py:shared_dict_keys(SD) of
        {'EXIT', {badarg, _}} -> true;
        Keys when is_list(Keys) -> false
    end.

wait_until(Pred, Left) when Left =< 0 ->
    Pred() orelse ct:fail(condition_not_reached),
    ok;
wait_until(Pred, Left) ->
    case Pred() of
        true -> ok;
        false ->
            receive after 10 -> wait_until(Pred, Left - 10) end
    end.
