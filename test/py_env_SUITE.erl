%% @doc Process-bound environments: the pool context a process uses, its own namespace there,
%% extra namespaces made with py_context:create_local_env/1 on any context.
-module(py_env_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([context_is_own_namespace/1, two_processes_one_context/1, local_envs/1,
         local_envs_owngil/1, env_of_other_context/1, namespace_freed_with_process/1]).

suite() -> [{timetrap, {seconds, 60}}].

all() -> [context_is_own_namespace, two_processes_one_context, local_envs, local_envs_owngil,
          env_of_other_context, namespace_freed_with_process].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

%% Calls through py:context() run in the same namespace as calls without a context.
context_is_own_namespace(_Config) ->
    Ctx = py:context(),
    ok = py:exec(<<"mine = 'pool'">>),
    {ok, <<"pool">>} = py:eval(Ctx, <<"mine">>),
    ok = py:exec(Ctx, <<"mine = 'ctx'">>),
    {ok, <<"ctx">>} = py:eval(<<"mine">>).

two_processes_one_context(_Config) ->
    Ctx = py:context(1),
    Self = self(),
    Run = fun(Value) ->
                  spawn_link(fun() ->
                                     ok = py_context_router:bind_context(Ctx),
                                     ok = py:exec(Ctx, <<"owner = ", Value/binary>>),
                                     Self ! {ready, self()},
                                     receive go -> ok end,
                                     Self ! {self(), py:eval(Ctx, <<"owner">>), py:call(threading, get_native_id, [])}
                             end)
          end,
    A = Run(<<"'a'">>),
    B = Run(<<"'b'">>),
    [receive {ready, P} -> ok after 30000 -> ct:fail(not_ready) end || P <- [A, B]],
    A ! go, B ! go,
    {ok, <<"a">>} = receive {A, RA, _} -> RA end,
    {ok, <<"b">>} = receive {B, RB, _} -> RB end.

local_envs(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    {ok, E1} = py_context:create_local_env(Ctx),
    {ok, E2} = py_context:create_local_env(Ctx),
    ok = py_context:exec(Ctx, <<"v = 1\ndef get(): return v">>, E1),
    ok = py_context:exec(Ctx, <<"v = 2">>, E2),
    {ok, 1} = py_context:eval(Ctx, <<"v">>, #{}, 5000, E1),
    {ok, 2} = py_context:eval(Ctx, <<"v">>, #{}, 5000, E2),
    {ok, 1} = py_context:call(Ctx, '__main__', get, [], #{}, 5000, E1),
    {error, {'NameError', _}} = py:eval(Ctx, <<"v">>),
    ok = py_context:stop(Ctx).

local_envs_owngil(_Config) ->
    case py_context:new(#{mode => owngil}) of
        {error, {owngil_unsupported, V}} ->
            {skip, "OWN_GIL needs Python 3.13+, this build uses " ++ binary_to_list(V)};
        {ok, Ctx} ->
            {ok, E1} = py_context:create_local_env(Ctx),
            ok = py_context:exec(Ctx, <<"w = 'one'">>, E1),
            {ok, <<"one">>} = py_context:eval(Ctx, <<"w">>, #{}, 5000, E1),
            {error, {'NameError', _}} = py:eval(Ctx, <<"w">>),
            ok = py_context:stop(Ctx)
    end.

env_of_other_context(_Config) ->
    {ok, A} = py_context:new(#{mode => worker}),
    {ok, B} = py_context:new(#{mode => worker}),
    {ok, EnvA} = py_context:create_local_env(A),
    {'EXIT', {badarg, _}} = (catch py_context:exec(B, <<"x = 1">>, EnvA)),
    {'EXIT', {badarg, _}} = (catch py_context:exec(B, <<"x = 1">>, make_ref())),
    ok = py_context:stop(A),
    ok = py_context:stop(B).

%% A process's pool namespace goes away with it: its objects are released.
namespace_freed_with_process(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"import weakref\nclass Probe: pass\nprobes = []">>),
    Self = self(),
    P = spawn(fun() ->
                      ok = py_context_router:bind_context(Ctx),
                      ok = py:exec(Ctx, <<"class Probe: pass\nkeep = Probe()\n"
                                          "import sys\nsys.modules['__probe_ref__'] = __import__('weakref').ref(keep)">>),
                      Self ! ready
              end),
    receive ready -> ok end,
    MRef = erlang:monitor(process, P),
    receive {'DOWN', MRef, process, P, _} -> ok end,
    Dead = fun Loop(0) -> false;
               Loop(N) ->
                   erlang:garbage_collect(),
                   case py:eval(Ctx, <<"__import__('sys').modules['__probe_ref__']() is None">>) of
                       {ok, true} -> true;
                       _ -> timer:sleep(20), Loop(N - 1)
                   end
           end(100),
    true = Dead.
