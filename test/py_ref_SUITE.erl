%% @doc Opaque references to Python objects: getattr, call_method, to_term, passing back,
%% release on garbage collection, and references that outlive or cross interpreters.
-module(py_ref_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([attributes_and_methods/1, to_term/1, pass_back/1, bad_handles/1,
         released_when_collected/1, owngil_references/1]).

suite() -> [{timetrap, {seconds, 120}}].

all() -> [attributes_and_methods, to_term, pass_back, bad_handles, released_when_collected,
          owngil_references].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

attributes_and_methods(_Config) ->
    ok = py:exec(<<"class Acc:\n"
                   "    def __init__(self): self.total = 0\n"
                   "    def add(self, n, times=1):\n"
                   "        self.total += n * times\n"
                   "        return self.total\n">>),
    {ok, Acc} = py:call('__main__', 'Acc', []),
    true = py:is_ref(Acc),
    {ok, 0} = py:getattr(Acc, total),
    {ok, 5} = py:call_method(Acc, add, [5]),
    {ok, 35} = py:call_method(Acc, <<"add">>, [10], #{times => 3}),
    {ok, 35} = py:getattr(Acc, <<"total">>),
    {error, {'AttributeError', _}} = py:getattr(Acc, no_such_attr),
    {error, {'TypeError', _}} = py:call_method(Acc, add, []).

to_term(_Config) ->
    {ok, Set} = py:eval(<<"{3, 1, 2}">>),
    {ok, [1, 2, 3]} = (fun({ok, L}) -> {ok, lists:sort(L)} end)(py:to_term(Set)),
    {ok, Gen} = py:eval(<<"(x * x for x in range(4))">>),
    {ok, [0, 1, 4, 9]} = py:to_term(Gen),
    {ok, Proxy} = py:eval(<<"__import__('types').MappingProxyType({'a': 1})">>),
    {ok, #{<<"a">> := 1}} = py:to_term(Proxy),
    {ok, Obj} = py:eval(<<"object()">>),
    {error, {'TypeError', _}} = py:to_term(Obj).

pass_back(_Config) ->
    {ok, Obj} = py:eval(<<"object()">>),
    {ok, true} = py:eval(<<"a is b">>, #{a => Obj, b => Obj}),
    {ok, [<<"object">>]} = py:eval(<<"[type(x).__name__ for x in xs]">>, #{xs => [Obj]}).

bad_handles(_Config) ->
    {'EXIT', {badarg, _}} = (catch py:getattr(make_ref(), x)),
    {'EXIT', {badarg, _}} = (catch py:to_term(<<"not a ref">>)),
    false = py:is_ref(make_ref()),
    ok.

%% 10,000 references created and dropped: the objects are released (on the interpreter's own
%% thread) and the count of live instances goes back to its baseline.
released_when_collected(_Config) ->
    {ok, Ctx} = py_context:new(#{mode => worker}),
    ok = py:exec(Ctx, <<"class Tracked:\n"
                        "    live = 0\n"
                        "    def __init__(self): Tracked.live += 1\n"
                        "    def __del__(self): Tracked.live -= 1\n">>),
    {ok, Base} = py:eval(Ctx, <<"Tracked.live">>),
    Self = self(),
    Holder = spawn_link(fun() ->
                                Refs = [begin {ok, R} = py:eval(Ctx, <<"Tracked()">>), R end
                                        || _ <- lists:seq(1, 10000)],
                                {ok, Live} = py:eval(Ctx, <<"Tracked.live">>),
                                Self ! {live, Live, length(Refs)}
                        end),
    Peak = receive {live, L, 10000} -> L end,
    true = Peak >= Base + 10000,
    unlink(Holder),
    wait_dead(Holder),
    erlang:garbage_collect(),
    After = wait_live(Ctx, Base, 1500),  % polls for up to 30 s
    ct:pal("references: ~p live at peak, ~p after the holder exited (baseline ~p)", [Peak, After, Base]),
    Base = After,
    ok = py_context:stop(Ctx).

wait_dead(Pid) ->
    case is_process_alive(Pid) of
        true -> timer:sleep(10), wait_dead(Pid);
        false -> ok
    end.

%% Each call lets the context drain its release queue; poll until the count settles.
wait_live(Ctx, Base, 0) -> {ok, N} = py:eval(Ctx, <<"Tracked.live">>), max(N, Base);
wait_live(Ctx, Base, Tries) ->
    case py:eval(Ctx, <<"Tracked.live">>) of
        {ok, Base} -> Base;
        {ok, _} -> timer:sleep(20), wait_live(Ctx, Base, Tries - 1)
    end.

owngil_references(_Config) ->
    case py_context:new(#{mode => owngil}) of
        {error, {owngil_unsupported, V}} ->
            {skip, "OWN_GIL needs Python 3.13+, this build uses " ++ binary_to_list(V)};
        {ok, Ctx} ->
            {ok, Obj} = py:eval(Ctx, <<"type('K', (), {'v': 7})()">>),
            {ok, 7} = py:getattr(Obj, v),
            {error, {'ValueError', _}} = py:eval(<<"o">>, #{o => Obj}),
            ok = py_context:stop(Ctx),
            {error, interpreter_gone} = py:getattr(Obj, v)
    end.
