%% -*- coding: utf-8 -*-
%% @doc A randomized run across context stops (issue 14, item 3): object references and local
%% envs are made on contexts that then stop, and are used on the contexts that replace them
%% (often at the dead ones' addresses), mixed with resets and fresh work. The libFuzzer target
%% (fuzz/, docs/fuzzing.md) cannot do this: it runs the conversion code on one thread of its
%% own with the main interpreter attached, without the context NIFs, their threads or the
%% processes that call them.
%%
%% Every step's reply is checked against what the docs promise: an owngil context's reference
%% after its context stopped is refused (ValueError or interpreter_gone), never read; a worker
%% context's reference stays usable on any worker context; an env works on its own context
%% only (badarg on another, context_not_found once its context stopped); nothing crashes the
%% node and every call gets a reply. The seed is printed (ct log and comment);
%% PY_STOP_FUZZ_SEED=N replays a run, PY_STOP_FUZZ_STEPS=N changes its length.
-module(py_stop_fuzz_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([references_and_envs_across_stops/1]).

suite() -> [{timetrap, {minutes, 10}}].

all() -> [references_and_envs_across_stops].

-define(DEFAULT_STEPS, 300).
-define(MAX_LIVE, 4).
-define(TIMEOUT, 30000).

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    OwnGil = py_test_util:owngil_works(),
    [{owngil, OwnGil} | Config].

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

%% The run's state: live contexts and the references and envs made so far, each with the
%% context that made it.
-record(ctx, {pid :: pid(), mode :: worker | owngil, live = true :: boolean()}).
-record(st, {modes :: [worker | owngil],
             ctxs = [] :: [#ctx{}],
             refs = [] :: [{reference(), #ctx{}}],
             envs = [] :: [{reference(), #ctx{}, binary()}],
             counts = #{} :: #{atom() => non_neg_integer()}}).

references_and_envs_across_stops(Config) ->
    Seed = env_int("PY_STOP_FUZZ_SEED", erlang:unique_integer([positive])),
    Steps = env_int("PY_STOP_FUZZ_STEPS", ?DEFAULT_STEPS),
    ct:log("seed ~p, ~p steps (PY_STOP_FUZZ_SEED=~p replays it)", [Seed, Steps, Seed]),
    _ = rand:seed(exsss, {Seed, Seed bxor 16#5bd1e995, 7}),
    Modes = case ?config(owngil, Config) of
                true -> [worker, owngil];
                false -> [worker]
            end,
    Sentinel = new_ctx(worker),
    St0 = #st{modes = Modes},
    St = lists:foldl(fun(I, S) -> step(I, S) end, St0, lists:seq(1, Steps)),
    %% Everything still answers: the sentinel, and every context left running.
    {ok, 2} = py:eval(Sentinel, <<"1 + 1">>),
    [{ok, 2} = py:eval(P, <<"1 + 1">>) || #ctx{pid = P, live = true} <- St#st.ctxs],
    [ok = py_context:stop(P) || #ctx{pid = P, live = true} <- St#st.ctxs],
    ok = py_context:stop(Sentinel),
    ct:log("operations: ~p", [St#st.counts]),
    ct:comment("seed ~p, ~p steps, ~p", [Seed, Steps, lists:sort(maps:to_list(St#st.counts))]),
    ok.

env_int(Name, Default) ->
    case os:getenv(Name) of
        false -> Default;
        Text -> list_to_integer(Text)
    end.

new_ctx(Mode) ->
    {ok, Pid} = py_context:new(#{mode => Mode}),
    Pid.

live(#st{ctxs = Ctxs}) -> [C || C = #ctx{live = true} <- Ctxs].

pick([]) -> none;
pick(List) -> lists:nth(rand:uniform(length(List)), List).

count(Op, St = #st{counts = Counts}) ->
    St#st{counts = maps:update_with(Op, fun(N) -> N + 1 end, 1, Counts)}.

%% One random operation. With no live context, the step starts one.
step(I, St) ->
    Op = case live(St) of
             [] -> new;
             Live when length(Live) >= ?MAX_LIVE -> pick([stop, make_ref, make_env, use_ref, use_env, reset]);
             _ -> pick([new, new, stop, make_ref, make_ref, make_env, use_ref, use_ref, use_ref, use_env,
                        use_env, reset])
         end,
    try
        count(Op, do(Op, St))
    catch
        Class:Reason:Stack ->
            ct:fail("step ~p (~p) failed: ~p:~p~n~p", [I, Op, Class, Reason, Stack])
    end.

do(new, St = #st{ctxs = Ctxs, modes = Modes}) ->
    Mode = pick(Modes),
    St#st{ctxs = [#ctx{pid = new_ctx(Mode), mode = Mode} | Ctxs]};
do(stop, St = #st{ctxs = Ctxs}) ->
    C = pick(live(St)),
    ok = py_context:stop(C#ctx.pid),
    %% Lets the context's resource go, so that the next one may take its address.
    true = erlang:garbage_collect(),
    Stopped = C#ctx{live = false},
    St#st{ctxs = lists:keyreplace(C#ctx.pid, #ctx.pid, Ctxs, Stopped),
          refs = [{R, mark(O, C)} || {R, O} <- St#st.refs],
          envs = [{E, mark(O, C), V} || {E, O, V} <- St#st.envs]};
do(make_ref, St = #st{refs = Refs}) ->
    C = pick(live(St)),
    %% Objects with no Erlang equivalent, so that the reply is a reference.
    Code = pick([<<"{str(i) * 20 for i in range(200)}">>, <<"object()">>, <<"lambda x: [x]">>,
                 <<"iter(range(5))">>, <<"type('T', (), {'__repr__': lambda s: 'T'})()">>]),
    {ok, Ref} = py:eval(C#ctx.pid, Code),
    true = py:is_ref(Ref),
    St#st{refs = [{Ref, C} | lists:sublist(Refs, 30)]};
do(make_env, St = #st{envs = Envs}) ->
    C = pick(live(St)),
    {ok, Env} = py_context:create_local_env(C#ctx.pid),
    Value = integer_to_binary(rand:uniform(1000000)),
    ok = py_context:exec(C#ctx.pid, <<"x = '", Value/binary, "'">>, Env),
    St#st{envs = [{Env, C, Value} | lists:sublist(Envs, 30)]};
do(use_ref, St = #st{refs = []}) ->
    do(make_ref, St);
do(use_ref, St) ->
    {Ref, Origin} = pick(St#st.refs),
    Target = pick(live(St)),
    Reply = use_ref(pick([eval, repr, call, getattr, to_term, owner]), Ref, Target),
    count(check_ref(Reply, Origin, Target), St);
do(use_env, St = #st{envs = []}) ->
    do(make_env, St);
do(use_env, St) ->
    {Env, Origin, Value} = pick(St#st.envs),
    Target = pick([Origin | live(St)]),
    Reply = (catch py_context:eval(Target#ctx.pid, <<"x">>, #{}, ?TIMEOUT, Env)),
    count(check_env(Reply, Env, Origin, Target, Value), St);
do(reset, St) ->
    C = pick(live(St)),
    ok = py_context:reset(C#ctx.pid),
    %% A reset clears the context's shared namespace, not its envs or objects.
    St.

%% The origin's liveness as the run knows it (C just stopped).
mark(O = #ctx{pid = P}, #ctx{pid = P}) -> O#ctx{live = false};
mark(O, _) -> O.

use_ref(eval, Ref, #ctx{pid = P}) ->
    py:eval(P, pick([<<"len(o)">>, <<"repr(o)">>, <<"[o]">>, <<"o.clear()">>, <<"type(o).__name__">>]),
            #{o => Ref});
use_ref(repr, Ref, #ctx{pid = P}) ->
    py:call(P, builtins, repr, [Ref]);
use_ref(call, Ref, #ctx{pid = P}) ->
    py:call(P, builtins, isinstance, [Ref, 1], #{timeout => ?TIMEOUT});
use_ref(getattr, Ref, _) ->
    py:getattr(Ref, '__class__');
use_ref(to_term, Ref, _) ->
    py:to_term(Ref);
use_ref(owner, Ref, _) ->
    {owner, py_nif:object_owner(Ref)}.

%% What a use of a reference may answer, by its origin and the context it went to. Returns
%% the kind of outcome, counted in the run's comment.
check_ref({owner, Owner}, #ctx{mode = worker}, _) ->
    main = Owner,
    owner_main;
check_ref({owner, Owner}, #ctx{mode = owngil, live = false}, _) ->
    gone = Owner,
    owner_gone;
check_ref({owner, Owner}, #ctx{mode = owngil, live = true}, _) ->
    {context, _} = Owner,
    owner_context;
check_ref(Reply, #ctx{mode = owngil, live = false}, _) ->
    true = is_stale(Reply) orelse error({stale_reference_not_refused, Reply}),
    stale_ref_refused;
check_ref(Reply, #ctx{mode = owngil, pid = P}, #ctx{pid = T}) when P =/= T ->
    %% Another interpreter's object: refused, or (getattr and to_term, which go to the owner)
    %% answered by its own context.
    ok_or_error(Reply),
    other_interpreter_ref;
check_ref(Reply, _, _) ->
    ok_or_error(Reply),
    ref_used.

is_stale({error, interpreter_gone}) -> true;
is_stale({error, {'ValueError', Msg}}) -> lists:prefix("a Python object reference whose interpreter has ended", Msg);
is_stale(_) -> false.

ok_or_error({ok, _}) -> ok;
ok_or_error(ok) -> ok;
ok_or_error({error, Reason}) when Reason =/= timeout -> ok;
ok_or_error(Other) -> error({unexpected_reply, Other}).

%% An env answers on its own live context with the value it was given, is badarg on any
%% other, and is context_not_found on its own stopped context.
check_env(Reply, _Env, #ctx{pid = P, live = true}, #ctx{pid = P}, Value) ->
    {ok, Value} = Reply,
    env_used;
check_env(Reply, _Env, #ctx{pid = P, live = false}, #ctx{pid = P}, _) ->
    {error, context_not_found} = Reply,
    env_of_stopped_context;
check_env(Reply, _Env, _, _, _) ->
    {'EXIT', {badarg, _}} = Reply,
    env_refused.
