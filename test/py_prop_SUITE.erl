%% -*- coding: utf-8 -*-
%% Property-based tests (PropEr) of the conversion rules of docs/type-conversion.md.
%%
%% What the suite proves, for random terms rather than the examples of py_conversion_SUITE:
%%   - roundtrip_worker: any term built from integers (bignums too), floats (-0.0,
%%     subnormals), atoms, UTF-8 and non-UTF-8 binaries, lists, tuples, maps, pids, references,
%%     ports and funs comes back from a Python identity function as model/1 says (the doc's
%%     table: atoms become binaries, none/undefined/nil become none, the rest is unchanged);
%%     the sign of -0.0 is checked too.
%%   - map_key_collisions: map keys that are equal once in Python (1, 1.0 and true; a and
%%     <<"a">>; none and nil; (1,) and (1.0,) ...) leave one entry per class of equal keys,
%%     with a key and a value taken from that class.
%%   - errors_anywhere: an improper list, a bitstring that is not whole bytes or a map key
%%     that Python cannot hash, anywhere inside a term, gives {error, {'TypeError', _}} and the
%%     context still works.
%%   - python_type_names: Python sees each part of a term as the type the table names.
%%   - roundtrip_owngil: the round trip and the errors on an OWN_GIL context (skipped on
%%     Pythons older than 3.13).
%%   - python_to_erlang: random Python values (built by Python from a seed) convert to the
%%     Erlang terms the second table says, compared through an encoding both sides compute.
%%
%% Case counts: 12,000 in all by default. PY_PROP_CASES=N sets the total (each property keeps
%% its share, rounded up), e.g. PY_PROP_CASES=100000 for a long run.
-module(py_prop_SUITE).

-include_lib("proper/include/proper.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).

-export([roundtrip_worker/1, map_key_collisions/1, errors_anywhere/1,
         python_type_names/1, roundtrip_owngil/1, python_to_erlang/1]).

%% Default cases per property; they add up to ?DEFAULT_TOTAL.
-define(DEFAULT_TOTAL, 12000).
-define(CASES, [{roundtrip_worker, 4000}, {map_key_collisions, 1000}, {errors_anywhere, 2000},
                {python_type_names, 1500}, {roundtrip_owngil, 2000}, {python_to_erlang, 1500}]).

%% --- Python helpers ---------------------------------------------------------------------------

-define(PY_HELPERS, <<"
import collections, enum, random, struct

def ident(x):
    return x

def type_tree(x):
    name = type(x).__name__
    if type(x) in (list, tuple):
        return [name, [type_tree(e) for e in x]]
    if type(x) is dict:
        return [name, [[type_tree(k), type_tree(v)] for k, v in x.items()]]
    return name

class _Num(enum.IntEnum):
    SMALL = 3
    NEG = -9
    BIG = 2 ** 80

_Pair = collections.namedtuple('_Pair', 'left right')

class _List(list):
    pass

class _Dict(dict):
    pass

def _text(r):
    cps = []
    for _ in range(r.randrange(8)):
        k = r.randrange(10)
        if k < 4:
            c = r.randrange(0x20, 0x7f)
        elif k < 5:
            c = r.randrange(0, 0x20)
        elif k < 7:
            c = r.randrange(0x80, 0x800)
        elif k < 9:
            c = r.randrange(0x800, 0x10000)
            if 0xd800 <= c < 0xe000:
                c = 0xfffd
        else:
            c = r.randrange(0x10000, 0x110000)
        cps.append(c)
    if r.randrange(30) == 0:
        cps.insert(r.randrange(len(cps) + 1), r.randrange(0xd800, 0xe000))  # a lone surrogate
    return ''.join(map(chr, cps))

def _float(r):
    k = r.randrange(4)
    if k == 0:  # any bit pattern: subnormals, infinities, NaNs with payloads
        return struct.unpack('<d', r.getrandbits(64).to_bytes(8, 'little'))[0]
    if k == 1:
        return r.choice([0.0, -0.0, float('inf'), float('-inf'), float('nan'), 5e-324,
                         1.7976931348623157e308, -2.0 ** 70, 1.0])
    return r.uniform(-1e6, 1e6)

def _int(r):
    k = r.randrange(5)
    if k == 0:
        return r.randrange(-300, 300)
    if k == 1:
        return r.randrange(-2 ** 65, 2 ** 65)
    if k == 2:
        return r.choice([2 ** 63 - 1, -2 ** 63, 2 ** 63, -2 ** 63 - 1, 2 ** 64 - 1, 2 ** 64,
                         -2 ** 64, 2 ** 100000])
    if k == 3:
        bits = r.randrange(65, 5000)
        v = r.getrandbits(bits) | (1 << (bits - 1))
        return -v if r.random() < 0.5 else v
    return r.choice(list(_Num))

def _key(r, pool, depth):
    k = r.randrange(9)
    if k == 0:
        return None
    if k == 1:
        return r.random() < 0.5
    if k == 2:
        return _int(r)
    if k == 3:
        return _float(r)
    if k == 4:  # short texts, as str or bytes, so that 'a' and b'a' meet
        s = ''.join(r.choice('ab') for _ in range(r.randrange(3)))
        return s if r.random() < 0.5 else s.encode()
    if k == 5:
        return _text(r)
    if k == 6:
        return r.choice(pool)
    if depth < 2:
        return tuple(_key(r, pool, depth + 1) for _ in range(r.randrange(4)))
    return r.randbytes(r.randrange(4))

def _leaf(r, pool):
    k = r.randrange(11)
    if k == 0:
        return None
    if k == 1:
        return r.random() < 0.5
    if k < 4:
        return _int(r)
    if k < 6:
        return _float(r)
    if k < 8:
        return _text(r)
    if k == 8:
        b = r.randbytes(r.randrange(8))
        return bytearray(b) if r.random() < 0.3 else b
    if k == 9:
        return r.choice(pool)
    return r.choice([object(), {1, 2}, frozenset(), 1j, range(3), type])

def _dict(r, pool, size, depth, n):
    d = r.choice([dict, _Dict, collections.OrderedDict])()
    if r.randrange(40) == 0:  # past the 128 keys that are built another way (to_erlang.cpp)
        for i in range(r.randrange(129, 300)):
            k = 'k%d' % r.randrange(200)
            d[k if r.random() < 0.5 else k.encode()] = i
        return d
    clash = r.randrange(3) == 0
    for _ in range(n):
        k = _clashing_key(r) if clash else _key(r, pool, 0)
        d[k] = _value(r, pool, size, depth + 1)
    return d

def _clashing_key(r):
    # Distinct in Python, the same term in Erlang: str and bytes, NaNs, tuples of them.
    k = r.randrange(4)
    if k == 0:
        return float('nan')
    s = r.choice(['', 'a', 'b'])
    if k == 3:
        return (s, ) if r.random() < 0.5 else (s.encode(), )
    return s if r.random() < 0.5 else s.encode()

def _value(r, pool, size, depth):
    if depth >= 4 or size <= 1 or r.randrange(3) == 0:
        return _leaf(r, pool)
    n = r.randrange(6)
    sub = max(1, size // (n + 1))
    k = r.randrange(6)
    if k == 4:
        return _Pair(_value(r, pool, sub, depth + 1), _value(r, pool, sub, depth + 1))
    if k == 5:
        return _dict(r, pool, sub, depth, n)
    items = [_value(r, pool, sub, depth + 1) for _ in range(n)]
    return [items, tuple(items), _List(items), items][k]

def py_value(seed, size, pool):
    return _value(random.Random(seed), pool, size, 0)

def _enc(x, pool):
    if x is None:
        return 'N'
    if x is True:
        return 'T'
    if x is False:
        return 'F'
    if isinstance(x, int):
        return 'i' + ('-' if x < 0 else '') + format(abs(int(x)), 'x')
    if isinstance(x, float):
        if x != x:
            return 'fnan'
        if x in (float('inf'), float('-inf')):
            return 'finf' if x > 0 else 'f-inf'
        return 'f' + struct.pack('>d', x).hex()
    if isinstance(x, str):
        return 'b' + x.encode('utf-8').hex()
    if isinstance(x, (bytes, bytearray)):
        return 'b' + bytes(x).hex()
    if isinstance(x, list):
        return '[' + ','.join(_enc(e, pool) for e in x) + ']'
    if isinstance(x, tuple):
        return '(' + ','.join(_enc(e, pool) for e in x) + ')'
    if isinstance(x, dict):
        m = {}
        for k, v in x.items():  # keys equal as Erlang terms: the last one wins
            m[_enc(k, pool)] = _enc(v, pool)
        return '{' + ','.join(k + ':' + m[k] for k in sorted(m)) + '}'
    for i, p in enumerate(pool):
        if type(x) is type(p) and x == p:
            return 'e%d' % i
    return 'r'

def py_describe(seed, size, pool):
    try:
        return _enc(py_value(seed, size, pool), pool)
    except UnicodeEncodeError:
        return 'error:UnicodeEncodeError'
">>).

suite() ->
    %% Generous: CI also runs the suites under ASan, several times slower.
    [{timetrap, {seconds, 600 * max(1, ceil(total_cases() / ?DEFAULT_TOTAL))}}].

all() ->
    [roundtrip_worker, map_key_collisions, errors_anywhere, python_type_names,
     roundtrip_owngil, python_to_erlang].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

init_per_testcase(roundtrip_owngil, Config) ->
    case py_context:new(#{mode => owngil}) of
        {ok, Ctx} ->
            ok = py:exec(Ctx, ?PY_HELPERS),
            [{ctx, Ctx} | init_pool(Config)];
        {error, {owngil_unsupported, Version}} ->
            {skip, "OWN_GIL contexts need Python 3.13+; this build uses " ++ binary_to_list(Version)}
    end;
init_per_testcase(_Case, Config) ->
    %% The default pool: these definitions live in this process's namespace.
    ok = py:exec(?PY_HELPERS),
    init_pool(Config).

end_per_testcase(_Case, Config) ->
    case proplists:get_value(ctx, Config) of
        undefined -> ok;
        Ctx -> py_context:stop(Ctx)
    end,
    case proplists:get_value(other_pid, Config) of
        undefined -> ok;
        Pid -> exit(Pid, kill)
    end,
    ok.

%% The pids, references, ports and funs the generators draw from live in the test case
%% process's dictionary (PropEr generates and runs the cases in this process).
init_pool(Config) ->
    Other = spawn(fun() -> receive stop -> ok end end),
    Port = hd(erlang:ports()),
    put(py_prop_pool, #{other => Other,
                        remote_pid => remote(self()),
                        remote_ref => remote(make_ref()),
                        port => Port,
                        remote_port => remote(Port)}),
    [{other_pid, Other} | Config].

%% --- test cases ---------------------------------------------------------------------------------

roundtrip_worker(_Config) ->
    run(roundtrip_worker, g_term(),
        fun(T) -> roundtrip(T, fun(X) -> py:call('__main__', ident, [X]) end) end).

map_key_collisions(_Config) ->
    run(map_key_collisions, g_colliding_map(), fun check_collisions/1).

errors_anywhere(_Config) ->
    run(errors_anywhere, g_bad(),
        fun(T) -> expect_type_error(T, fun(X) -> py:call('__main__', ident, [X]) end) end).

python_type_names(_Config) ->
    run(python_type_names, g_term(), fun check_type_names/1).

roundtrip_owngil(Config) ->
    Ctx = proplists:get_value(ctx, Config),
    Ident = fun(X) -> py:call(Ctx, '__main__', ident, [X]) end,
    run(roundtrip_owngil, frequency([{4, {good, g_term()}}, {1, {bad, g_bad()}}]),
        fun({good, T}) -> roundtrip(T, Ident);
           ({bad, T}) -> expect_type_error(T, Ident)
        end).

python_to_erlang(_Config) ->
    Pool = [self(), make_ref(), fun erlang:node/0, closure({1, [2.5]}), hd(erlang:ports()),
            remote(self())],
    Atoms = counters:new(1, []),
    Secs = run(python_to_erlang, {choose(0, 1 bsl 32), choose(1, 40)},
                 fun(Case) -> check_from_python(Case, Pool, Atoms) end),
    %% Thousands of str values and dict keys came back and made no atom (the count is
    %% taken around each case's calls; another process may make the odd atom meanwhile).
    Made = counters:get(Atoms, 1),
    ct:pal("atoms made during python_to_erlang's calls: ~b", [Made]),
    true = Made < 20,
    ct:comment("~b cases, ~.1f s, ~b atoms made", [cases(python_to_erlang), Secs, Made]).

%% --- running a property -------------------------------------------------------------------------

total_cases() ->
    case os:getenv("PY_PROP_CASES") of
        false -> ?DEFAULT_TOTAL;
        "" -> ?DEFAULT_TOTAL;
        S -> list_to_integer(string:trim(S))
    end.

cases(Name) ->
    Default = proplists:get_value(Name, ?CASES),
    max(1, (Default * total_cases() + ?DEFAULT_TOTAL - 1) div ?DEFAULT_TOTAL).  % rounded up

%% Checks Check(X) =:= ok for cases(Name) values X of Gen; fails with the shrunk
%% counterexample and what Check says about it. Returns the seconds taken.
run(Name, Gen, Check) ->
    N = cases(Name),
    Counter = counters:new(1, []),
    Prop = ?FORALL(X, Gen, begin
                               counters:add(Counter, 1, 1),
                               Check(X) =:= ok
                           end),
    T0 = erlang:monotonic_time(millisecond),
    Result = proper:quickcheck(Prop, [{numtests, N}, quiet, long_result]),
    Secs = (erlang:monotonic_time(millisecond) - T0) / 1000,
    Ran = counters:get(Counter, 1),
    ct:pal("~s: ~b cases run (~b asked) in ~.1f s on Python ~s", [Name, Ran, N, Secs, element(2, py:version())]),
    case Result of
        true ->
            ct:comment("~b cases, ~.1f s", [N, Secs]),
            Secs;
        [Counterexample] ->
            Why = try Check(Counterexample) catch C:R -> {crashed, C, R} end,
            ct:pal("~s: counterexample (after shrinking):~n~p~n~p", [Name, Counterexample, Why]),
            ct:fail({counterexample, Name, Counterexample, Why});
        Other ->
            ct:fail({proper, Name, Other})
    end.

%% --- checks -------------------------------------------------------------------------------------

roundtrip(T, Ident) ->
    Expected = model(T),
    case Ident(T) of
        {ok, Got} ->
            case same(Expected, Got) of
                true -> ok;
                false -> {mismatch, #{term => T, expected => Expected, got => Got}}
            end;
        Other ->
            {mismatch, #{term => T, expected => {ok, Expected}, got => Other}}
    end.

expect_type_error(T, Ident) ->
    case Ident(T) of
        {error, {'TypeError', Msg}} when is_list(Msg) ->
            case Ident(42) of
                {ok, 42} -> ok;
                After -> {unusable_after_error, #{term => T, got => After}}
            end;
        Other ->
            {mismatch, #{term => T, expected => {error, {'TypeError', '_'}}, got => Other}}
    end.

%% Keys equal in Python: one entry per class of equal keys, its key the model of one of the
%% class's keys and its value the model of one of the class's values.
check_collisions(M) ->
    Classes = maps:groups_from_list(fun({K, _}) -> py_key(K) end, maps:to_list(M)),
    case py:call('__main__', ident, [M]) of
        {ok, Got} when is_map(Got), map_size(Got) =:= map_size(Classes) ->
            Bad = [{Class, Entries}
                   || {Class, Entries} <- maps:to_list(Classes),
                      not class_ok(Class, Entries, Got)],
            case Bad of
                [] -> ok;
                _ -> {mismatch, #{term => M, got => Got, classes_not_matched => Bad}}
            end;
        Other ->
            {mismatch, #{term => M, expected => {map_with_keys, map_size(Classes)}, got => Other}}
    end.

class_ok(Class, Entries, Got) ->
    case [{K, V} || {K, V} <- maps:to_list(Got), py_key(K) =:= Class] of
        [{K, V}] ->
            lists:any(fun({K0, _}) -> same(model(K0), K) end, Entries) andalso
                lists:any(fun({_, V0}) -> same(model(V0), V) end, Entries);
        _ ->
            false
    end.

check_type_names(T) ->
    Expected = type_tree(T),
    case py:call('__main__', type_tree, [T]) of
        {ok, Got} ->
            case sort_dicts(Got) =:= Expected of
                true -> ok;
                false -> {mismatch, #{term => T, expected => Expected, got => Got}}
            end;
        Other ->
            {mismatch, #{term => T, expected => {ok, Expected}, got => Other}}
    end.

check_from_python({Seed, Size}, Pool, Atoms) ->
    Args = [Seed, Size, Pool],
    {ok, Description} = py:call('__main__', py_describe, Args),
    Before = erlang:system_info(atom_count),
    Value = py:call('__main__', py_value, Args),
    counters:add(Atoms, 1, erlang:system_info(atom_count) - Before),
    case {Description, Value} of
        {<<"error:UnicodeEncodeError">>, {error, {'UnicodeEncodeError', _}}} ->
            ok;
        {_, {ok, V}} ->
            case iolist_to_binary(enc(V, Pool)) of
                Description -> ok;
                Got -> {mismatch, #{seed => Seed, size => Size, python => Description,
                                    erlang => Got, term => V}}
            end;
        {_, Other} ->
            {mismatch, #{seed => Seed, size => Size, python => Description, got => Other}}
    end.

%% --- the documented mapping, written out in Erlang ------------------------------------------------

%% What a term comes back as from a Python identity function (docs/type-conversion.md).
model(true) -> true;
model(false) -> false;
model(A) when A =:= none; A =:= undefined; A =:= nil -> none;
model(A) when is_atom(A) -> atom_to_binary(A, utf8);
model(L) when is_list(L) -> [model(E) || E <- L];
model(T) when is_tuple(T) -> list_to_tuple([model(E) || E <- tuple_to_list(T)]);
model(M) when is_map(M) -> maps:from_list([{model(K), model(V)} || {K, V} <- maps:to_list(M)]);
model(X) -> X.  % integers, floats, binaries, pids, references, ports, funs

%% The type Python sees a term as; containers as [TypeName, Children], dict entries sorted.
type_tree(I) when is_integer(I) -> <<"int">>;
type_tree(F) when is_float(F) -> <<"float">>;
type_tree(B) when is_boolean(B) -> <<"bool">>;
type_tree(A) when A =:= none; A =:= undefined; A =:= nil -> <<"NoneType">>;
type_tree(A) when is_atom(A) -> <<"str">>;
type_tree(B) when is_binary(B) ->
    case is_utf8(B) of
        true -> <<"str">>;
        false -> <<"bytes">>
    end;
type_tree(L) when is_list(L) -> [<<"list">>, [type_tree(E) || E <- L]];
type_tree(T) when is_tuple(T) -> [<<"tuple">>, [type_tree(E) || E <- tuple_to_list(T)]];
type_tree(M) when is_map(M) ->
    [<<"dict">>, lists:sort([[type_tree(K), type_tree(V)] || {K, V} <- maps:to_list(M)])];
type_tree(P) when is_pid(P), node(P) =:= node() -> <<"Pid">>;
type_tree(_) -> <<"Term">>.  % references, ports, funs, remote pids

sort_dicts([<<"dict">>, Pairs]) ->
    [<<"dict">>, lists:sort([[sort_dicts(K), sort_dicts(V)] || [K, V] <- Pairs])];
sort_dicts([Name, Children]) -> [Name, [sort_dicts(C) || C <- Children]];
sort_dicts(Name) -> Name.

%% A key's identity as a Python dict key: keys with equal images are equal in Python
%% (1 == 1.0 == True, 'a' as atom or binary, None, tuples element by element).
py_key(true) -> {num, 1};
py_key(false) -> {num, 0};
py_key(A) when A =:= none; A =:= undefined; A =:= nil -> none;
py_key(A) when is_atom(A) -> {str, atom_to_binary(A, utf8)};
py_key(I) when is_integer(I) -> {num, I};
py_key(F) when is_float(F) ->
    I = trunc(F),
    case I == F of
        true -> {num, I};
        false -> {float, F}
    end;
py_key(B) when is_binary(B) ->
    case is_utf8(B) of
        true -> {str, B};
        false -> {bytes, B}
    end;
py_key(T) when is_tuple(T) -> {tuple, [py_key(E) || E <- tuple_to_list(T)]};
py_key(X) -> {term, X}.  % pids, references, ports, funs (lists and maps are not hashable)

is_utf8(B) ->
    unicode:characters_to_binary(B, utf8, utf8) =:= B.

%% Equality that also tells -0.0 from 0.0 (=:= does not on OTP 25 and 26).
same(A, B) when is_float(A), is_float(B) -> <<A/float>> =:= <<B/float>>;
same([A | As], [B | Bs]) -> same(A, B) andalso same(As, Bs);
same(A, B) when is_tuple(A), is_tuple(B), tuple_size(A) =:= tuple_size(B) ->
    same(tuple_to_list(A), tuple_to_list(B));
same(A, B) when is_map(A), is_map(B), map_size(A) =:= map_size(B) ->
    same_pairs(lists:sort(maps:to_list(A)), lists:sort(maps:to_list(B)));
same(A, B) -> A =:= B.

same_pairs([{K1, V1} | As], [{K2, V2} | Bs]) ->
    same(K1, K2) andalso same(V1, V2) andalso same_pairs(As, Bs);
same_pairs([], []) -> true;
same_pairs(_, _) -> false.

%% The encoding py_describe computes, from the Erlang side (Python to Erlang table).
enc(none, _) -> "N";
enc(true, _) -> "T";
enc(false, _) -> "F";
enc(nan, _) -> "fnan";
enc(infinity, _) -> "finf";
enc(neg_infinity, _) -> "f-inf";
enc(I, _) when is_integer(I), I < 0 -> ["i-", string:lowercase(integer_to_list(-I, 16))];
enc(I, _) when is_integer(I) -> ["i", string:lowercase(integer_to_list(I, 16))];
enc(F, _) when is_float(F) -> ["f", hex(<<F/float>>)];
enc(B, _) when is_binary(B) -> ["b", hex(B)];
enc(L, Pool) when is_list(L) -> ["[", lists:join(",", [enc(E, Pool) || E <- L]), "]"];
enc(T, Pool) when is_tuple(T) ->
    ["(", lists:join(",", [enc(E, Pool) || E <- tuple_to_list(T)]), ")"];
enc(M, Pool) when is_map(M) ->
    Pairs = lists:sort([{iolist_to_binary(enc(K, Pool)), enc(V, Pool)} || {K, V} <- maps:to_list(M)]),
    ["{", lists:join(",", [[K, ":", V] || {K, V} <- Pairs]), "}"];
enc(X, Pool) ->
    case py:is_ref(X) of
        true -> "r";
        false -> ["e", integer_to_list(index(X, Pool, 0))]
    end.

index(X, [X | _], I) -> I;
index(X, [_ | Rest], I) -> index(X, Rest, I + 1);
index(X, [], _) -> io_lib:format("?~p", [X]).  % not from the pool: will not match

hex(B) -> [io_lib:format("~2.16.0b", [Byte]) || <<Byte>> <= B].

%% --- generators ---------------------------------------------------------------------------------

%% A term that converts: leaves and nested lists, tuples and maps, about PropEr's size in
%% leaves (at most 42; nesting at most 6 deep, as each level at least halves the budget).
g_term() ->
    ?SIZED(Size, g_term(Size)).

g_term(Size) when Size =< 1 ->
    g_leaf();
g_term(Size) ->
    frequency([{4, g_leaf()},
               {3, ?LAZY(?LET(Items, g_items(Size), Items))},
               {1, ?LAZY(?LET(Items, g_items(Size), list_to_tuple(Items)))},
               {2, ?LAZY(g_map(Size))}]
              ++ [{1, ?LAZY(g_big_map())} || Size >= 30]).

g_items(Size) ->
    ?LET(N, choose(0, 6), vector(N, g_term(Size div (N + 1)))).

%% Maps whose keys stay distinct in Python (see map_key_collisions for the other case).
g_map(Size) ->
    ?LET(N, choose(0, 5),
         ?LET(Pairs, vector(N, {g_key(Size div (N + 1)), g_term(Size div (N + 1))}),
              distinct_keys(Pairs))).

distinct_keys(Pairs) ->
    {Kept, _} = lists:foldl(fun({K, V}, {Acc, Seen}) ->
                                    PK = py_key(K),
                                    case sets:is_element(PK, Seen) of
                                        true -> {Acc, Seen};
                                        false -> {[{K, V} | Acc], sets:add_element(PK, Seen)}
                                    end
                            end, {[], sets:new()}, Pairs),
    maps:from_list(Kept).

%% Past 32 keys an Erlang map is a hash trie, not a sorted array.
g_big_map() ->
    ?LET(N, choose(33, 150),
         ?LET(Pairs, vector(N, {g_scalar(), g_scalar()}), distinct_keys(Pairs))).

%% Keys Python can hash: leaves other than charlists, and tuples of them.
g_key(Size) when Size =< 1 ->
    g_scalar();
g_key(Size) ->
    frequency([{4, g_scalar()},
               {1, ?LAZY(?LET(N, choose(0, 3),
                              ?LET(Es, vector(N, g_key(Size div (N + 1))), list_to_tuple(Es))))}]).

g_leaf() ->
    frequency([{18, g_scalar()}, {1, g_charlist()}]).

%% Leaves that are not lists.
g_scalar() ->
    frequency([{5, g_int()}, {4, g_float()}, {3, g_atom()}, {4, g_text()}, {2, g_bytes()},
               {2, g_erlang_term()}]).

g_int() ->
    frequency([{4, integer()},
               {2, elements(int_edges())},
               {2, g_bignum(9, 80)},        % 65 to 640 bits
               {1, g_bignum(80, 1200)},     % up to about 9,600 bits
               {1, largeint()}]).

int_edges() ->
    Edges = [0, 1, 1 bsl 27, 1 bsl 31, 1 bsl 32, (1 bsl 63) - 1, 1 bsl 63, (1 bsl 64) - 1,
             1 bsl 64, 1 bsl 65, 1 bsl 100000],
    Edges ++ [-E || E <- Edges] ++ [E - 1 || E <- Edges] ++ [1 - E || E <- Edges].

g_bignum(MinBytes, MaxBytes) ->
    ?LET({Negative, N}, {boolean(), choose(MinBytes, MaxBytes)},
         ?LET(Digits, binary(N),
              begin
                  V = binary:decode_unsigned(<<1, Digits/binary>>),
                  case Negative of
                      true -> -V;
                      false -> V
                  end
              end)).

g_float() ->
    frequency([{3, float()},
               {3, ?LET({S, E, M}, {choose(0, 1), choose(0, 2046), choose(0, (1 bsl 52) - 1)},
                        begin <<F/float>> = <<S:1, E:11, M:52>>, F end)},
               {2, ?LAZY(elements(float_specials()))},
               {1, ?LET(I, integer(), float(I))}]).

float_specials() ->
    [0.0, neg_zero(), 5.0e-324, -5.0e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
     -1.7976931348623157e308, 0.1, 1.0, -1.0, 2.0, 9007199254740992.0, float(1 bsl 70)].

%% -0.0 made at run time (the compiler may merge a -0.0 literal with 0.0 before OTP 27).
neg_zero() ->
    <<F/float>> = <<1:1, 0:63>>,
    F.

%% Atoms only from this fixed set: no atom is made at random.
g_atom() ->
    ?LAZY(elements(atoms())).

atoms() ->
    [true, false, none, undefined, nil, ok, error, a, b, '', 'Hello World', infinity,
     neg_infinity, nan, 'None', 'True', 'café', '世界', '😀', 'a\0b',
     list_to_atom(lists:duplicate(255, $x)), list_to_atom(lists:duplicate(255, 16#20AC))].

g_text() ->
    oneof([utf8(),
           ?LET(Cps, list(g_codepoint()), unicode:characters_to_binary(Cps)),
           ?LET(Cps, list(g_codepoint()), unaligned(unicode:characters_to_binary(Cps)))]).

g_codepoint() ->
    oneof([choose(0, 16#7F), choose(16#80, 16#7FF), choose(16#800, 16#D7FF),
           choose(16#E000, 16#FFFF), choose(16#10000, 16#10FFFF)]).

%% Mostly not UTF-8: random bytes, or text followed by a sequence UTF-8 forbids (a
%% surrogate, an overlong form, a code point past U+10FFFF, a truncated sequence ...).
g_bytes() ->
    oneof([binary(),
           ?LET({Text, Bad}, {g_text(), elements(not_utf8())}, <<Text/binary, Bad/binary>>),
           ?LET(B, binary(), unaligned(B)),
           ?LET(B, non_empty(binary()), binary:copy(B, 1 + 200 div byte_size(B)))]).

%% B as a sub-binary that starts 3 bits into a larger binary.
unaligned(B) ->
    <<_:3, Sub:(byte_size(B))/binary, _:5>> = <<0:3, B/binary, 0:5>>,
    Sub.

not_utf8() ->
    [<<255>>, <<254, 255>>, <<128>>, <<192, 128>>, <<193, 191>>, <<224, 128, 128>>,
     <<237, 160, 128>>, <<237, 191, 191>>, <<244, 144, 128, 128>>, <<248, 136, 128, 128, 128>>,
     <<226, 130>>, <<240, 159, 152>>, <<"caf", 233>>].

g_charlist() ->
    ?LET(Text, g_text(), unicode:characters_to_list(Text)).

%% Pids, references, ports and funs: local and of another node.
g_erlang_term() ->
    ?LAZY(begin
              Pool = get(py_prop_pool),
              oneof([self(), maps:get(other, Pool), maps:get(remote_pid, Pool),
                     ?LAZY(make_ref()), maps:get(remote_ref, Pool),
                     maps:get(port, Pool), maps:get(remote_port, Pool),
                     fun erlang:node/0, fun lists:reverse/1,
                     %% A fun travels whole, in external format: even a term that could not
                     %% be converted may sit in its environment.
                     ?LET(X, oneof([g_int(), g_text(), g_atom(), g_bad_leaf()]), closure(X))])
          end).

closure(X) ->
    fun() -> X end.

%% A term with one part that cannot be converted somewhere inside.
g_bad() ->
    ?SIZED(Size, g_bad(Size)).

g_bad(Size) when Size =< 1 ->
    g_bad_leaf();
g_bad(Size) ->
    Half = Size div 2,
    frequency([{2, g_bad_leaf()},
               {2, ?LAZY(?LET({Pre, Bad, Post}, {g_items(Half), g_bad(Half), g_items(Half)},
                              Pre ++ [Bad | Post]))},
               {1, ?LAZY(?LET({Pre, Bad, Post}, {g_items(Half), g_bad(Half), g_items(Half)},
                              list_to_tuple(Pre ++ [Bad | Post])))},
               {1, ?LAZY(?LET({M, K, Bad}, {g_map(Half), g_key(Half), g_bad(Half)},
                              M#{K => Bad}))},
               {1, ?LAZY(?LET({M, Bad, V}, {g_map(Half), g_bad(Half), g_term(Half)},
                              M#{Bad => V}))}]).

g_bad_leaf() ->
    oneof([g_improper(), g_bitstring(), g_unhashable_key()]).

%% [X1, ..., Xn | Tail] with n >= 1 and Tail not a list.
g_improper() ->
    ?LET({Items, Tail}, {non_empty(list(g_leaf())), oneof([g_leaf(), ?LAZY(g_map(4))])},
         case is_list(Tail) of
             true -> Items ++ [Tail | <<"tail">>];
             false -> Items ++ Tail
         end).

g_bitstring() ->
    ?LET({Bytes, Bits, Value}, {binary(), choose(1, 7), choose(0, 127)},
         <<Bytes/binary, Value:Bits>>).

%% A map key that becomes a list or a dict, which Python cannot hash (the error of
%% py_conversion_SUITE:unhashable_key; the table itself does not list it).
g_unhashable_key() ->
    ?LET({K, V}, {oneof([?LAZY(?LET(I, g_items(4), I)), ?LAZY(g_map(4)),
                         ?LAZY(?LET(I, g_items(4), {I}))]),
                  g_leaf()},
         #{K => V}).

%% Maps whose keys collide in Python.
g_colliding_map() ->
    ?LET(Pairs, list({?LAZY(elements(colliding_keys())), g_term(4)}), maps:from_list(Pairs)).

colliding_keys() ->
    Big = 1 bsl 70,
    [0, 1, 2, 0.0, neg_zero(), 1.0, 2.0, 1.5, true, false, none, undefined, nil, a, <<"a">>,
     b, <<"b">>, '', <<>>, Big, float(Big), -Big, -float(Big), {1}, {1.0}, {true}, {a},
     {<<"a">>}, {none}, {nil}, {}, {0, false}, {false, 0.0}, <<255>>].

%% --- terms of another node ----------------------------------------------------------------------

%% The same pid, reference or port as if it came from node 'other@elsewhere'.
remote(Term) ->
    Node = <<"other@elsewhere">>,
    NodeExt = <<100, (byte_size(Node)):16, Node/binary>>,
    case term_to_binary(Term) of
        <<131, 90, IdLen:16, 100, Len:16, _:Len/binary, Rest/binary>> ->  % NEWER_REFERENCE_EXT
            binary_to_term(<<131, 90, IdLen:16, NodeExt/binary, Rest/binary>>);
        <<131, Tag, 100, Len:16, _:Len/binary, Rest/binary>> ->           % pids, ports
            binary_to_term(<<131, Tag, NodeExt/binary, Rest/binary>>)
    end.
