#!/usr/bin/env escript
%% Writes the seed corpus of the conversion fuzzer (docs/fuzzing.md) into fuzz/corpus/, one file
%% per input, named after its mode and content: escript fuzz/gen_seeds.escript
%% Modes 0 (external format), 1 (binary), 3 (build_term program) and 4 (py_build program) come
%% from here; mode 2 (marshal) from fuzz/gen_marshal_seeds.py. The first byte of each file is
%% the mode (see fuzz/py_fuzz_nif.cpp). The seeds holding a pid or a reference differ from run
%% to run.
-mode(compile).

main(_) ->
    Dir = filename:join(filename:dirname(escript:script_name()), "corpus"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Seeds = [{0, term_to_binary(T)} || T <- terms()]
        ++ [{0, term_to_binary(T, [{minor_version, 1}])} || T <- [1.5, 'atom', -0.0]]
        ++ [{1, B} || B <- binaries()]
        ++ [{3, list_to_binary(P)} || P <- term_programs()]
        ++ [{4, list_to_binary(P)} || P <- object_programs()],
    [write(Dir, Mode, Data) || {Mode, Data} <- Seeds],
    io:format("~b seeds in ~s~n", [length(Seeds), Dir]).

write(Dir, Mode, Data) ->
    Input = <<Mode, Data/binary>>,
    Hash = binary:encode_hex(crypto:hash(sha, Input)),
    Name = io_lib:format("mode~b-~s", [Mode, string:lowercase(binary:part(Hash, 0, 12))]),
    ok = file:write_file(filename:join(Dir, Name), Input).

%% Representative terms (mode 0). Atoms must exist in the fuzzing node for the safe decode: the
%% harness makes the non-Latin-1 ones used here, fuzz/py_fuzz.erl the remote node's name.
terms() ->
    Remote = 'fuzz@remote.example',
    RN = atom_to_binary(Remote),
    RemotePid = binary_to_term(<<131, 88, 119, (byte_size(RN)), RN/binary, 1:32, 2:32, 3:32>>),
    RemoteRef = binary_to_term(<<131, 90, 3:16, 119, (byte_size(RN)), RN/binary, 3:32, 5:32, 6:32, 7:32>>),
    Big = fun(N) -> 1 bsl N end,
    [0, -1, 255, 256, 1 bsl 27, -(1 bsl 27) - 1, 1 bsl 31, (1 bsl 63) - 1, 1 bsl 63, (1 bsl 64) - 1,
     1 bsl 64, -(1 bsl 63), -(1 bsl 63) - 1, Big(200), -Big(200), Big(3000) + 12345,
     0.0, -0.0, 1.0, 3.14, 1.0e300, 5.0e-324, -2.5e-10,
     true, false, none, undefined, nil, nan, infinity, neg_infinity, hello, '', 'Ärger',
     list_to_atom([955]), list_to_atom([128512]), list_to_atom("caf" ++ [233, 8364]),
     <<>>, <<"text">>, <<"h", 233/utf8, "llo">>, <<255>>, <<16#ED, 16#A0, 16#80>>,
     <<16#F4, 16#90, 16#80, 16#80>>, <<16#C0, 16#80>>, <<16#E2, 16#82>>, <<0, 0>>, <<1:3>>,
     <<"ab", 5:4>>, binary:copy(<<"long ">>, 60),
     [], [1, 2, 3], "charlist", [1 | 2], [a | <<"b">>], [[[[]]]], [a, <<"b">>, {c}, 1.5],
     {}, {1}, {a, b}, {{{}}}, {[], #{}, <<>>},
     #{}, #{a => 1}, #{1 => a, 1.0 => b}, #{true => 1, 1 => 2}, #{false => 0, 0 => 1, 0.0 => 2},
     #{<<"a">> => 1, a => 2}, #{none => 1, undefined => 2, nil => 3}, #{[1] => 2}, #{#{} => 1},
     #{{1, [2]} => 3}, #{{1, 2} => 3, {1, 2.0} => 4}, #{<<255>> => bytes, <<"k">> => str},
     maps:from_list([{I, I * I} || I <- lists:seq(1, 40)]),
     maps:from_list([{integer_to_binary(I), [I]} || I <- lists:seq(1, 128)]),
     maps:from_list([{I, I} || I <- lists:seq(1, 129)]),  % refused before decoding (> 128 pairs)
     lists:foldl(fun(_, A) -> [A] end, [], lists:seq(1, 100)),
     lists:foldl(fun(_, A) -> #{k => A} end, #{}, lists:seq(1, 50)),
     lists:foldl(fun(_, A) -> {A, A} end, x, lists:seq(1, 8)),
     self(), make_ref(), RemotePid, RemoteRef, fun lists:reverse/1, fun erlang:node/0,
     [{<<"key">>, #{list => [1, 2.5, <<255>>], tuple => {Big(70), -Big(70)}}}]].

%% Binaries (mode 1): the UTF-8 / bytes decision.
binaries() ->
    [<<>>, <<"hello">>, <<"h", 233/utf8, "llo">>, <<128512/utf8>>, <<16#10FFFF/utf8>>,
     <<255, 254>>, <<16#ED, 16#A0, 16#80>>, <<16#ED, 16#9F, 16#BF>>, <<16#F4, 16#90, 16#80, 16#80>>,
     <<16#C0, 16#AF>>, <<16#E0, 16#80, 16#AF>>, <<16#F0, 16#8F, 16#BF, 16#BF>>, <<"abc", 16#E2, 16#82>>,
     <<0, 1, 2, 3>>, binary:copy(<<"x", 233/utf8>>, 100)].

%% build_term programs (mode 3): op byte = Variant * 16 + Op.
term_programs() ->
    [[6, 3, 0, 5, 3, 5, 4, 3, "abc"],                       % [5, nan, <<"abc">>]
     [16#4c, 10, 0, 1],                                    % 10000 nested lists around 1: converts
     [16#4c, 11, 0, 1],                                    % 10001: RecursionError
     [16#5c, 10, 0, 1],                                    % 10000 nested tuples
     [16#6c, 11, 0, 1],                                    % 10001 nested map values
     [16#0c, 200, 0, 1], [16#2c, 100, 3, 7],               % 200 nested lists, 100 nested maps
     [16#3c, 20, 0, 1],                                    % maps as keys: TypeError
     [9, 200 | lists:append([[0, I, 4, 1, I] || I <- lists:seq(0, 199)])],  % a map of 200 keys
     [8, 19 | lists:append([[16#0b, I] || I <- lists:seq(0, 18)])],     % the samples
     [6, 11 | lists:append([[16#0e, I] || I <- lists:seq(0, 10)])],     % references to Python objects
     [8, 16 | [V * 16 + 15 || V <- lists:seq(0, 15)]],                    % the special values
     [6, 22 | lists:append([[3, I] || I <- lists:seq(0, 21)])],          % the atoms
     [1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1],                    % 2^64
     [16#11, 9, 255, 255, 255, 255, 255, 255, 255, 255, 255],  % -(2^72 - 1)
     [16#21, 1, 0 | lists:duplicate(256, 16#a5)],          % a 256-byte bignum
     [9, 1, 6, 0, 0, 1],                                   % #{[] => 1}: TypeError
     [7, 0, 0, 1, 0, 2],                                   % [1 | 2]: TypeError
     [16#35, 3, 1, 2, 3],                                  % a bitstring: TypeError
     [16#0a, 5, "hello"],                                  % "hello"
     [2, 16#80, 0, 0, 0, 0, 0, 0, 0],                      % -0.0
     [9, 3, 0, 1, 3, 9, 2, 16#3f, 16#f0, 0, 0, 0, 0, 0, 0, 3, 10, 3, 0, 3, 8],  % 1, 1.0, true as keys
     [6, 3, 4, 2, "hi", 16#0d, 0, 16#0d, 0],               % a shared subterm
     [9, 2, 4, 1, "a", 0, 1, 3, 10, 0, 2]].                % <<"a">> and a as keys

%% py_build programs (mode 4): op byte mod 24 is the kind (see fuzz/py_build.py).
object_programs() ->
    [[9, 3, 1, 5, 4, 3, "abc", 0, 22, 1, 2],              % [5, 'abc', 2**258]
     [18, 8, 0, 5, 0, 0, 0, 0, 2, 1, 7, 5, 3, "xyz"],     % a list holding a hostile int (hooks idle)
     [18, 8, 1, 0, 0, 0, 0, 4, 0],                        % ... whose abs() returns itself
     [9, 2, 8, 9, 0, 0, 0, 0, 0, 5, 1, 5],                % a hostile int in a plain list
     [89, 10, 1, 7],                                      % 10000 nested lists
     [89, 11, 1, 7],                                      % 10001: RecursionError
     [17, 200, 1, 7], [41, 100, 1, 7], [65, 50, 1, 7],    % 200 nested lists, tuples; 50 dicts
     [15], [39],                                          % a list holding itself; in a dict
     [11, 3, 4, 1, "k", 0, 1, 1, 5, 1, "k", 1, 2, 1, 3],  % 'k' and b'k' as keys
     [4, 3, 16#ED, 16#A0, 16#80, 1],                      % a lone surrogate
     [4, 2, 255, 65, 0],                                  % surrogateescape
     [9, 4, 7, 1, 0, 0, 0, 0, 0, 0, 0, 1, 31, 3, "abc", 0, 55, 5, 0, 79],  % subclasses
     [9, 2, 14, 0, 14, 1], [12, 3, 1, 1, 1, 2, 4, 1, "s", 0], [13, 1], [13, 3],
     [3, 0, 0, 0, 0, 0, 0, 248, 127], [3, 0, 0, 0, 0, 0, 0, 240, 255],   % nan, -inf
     [6, 3, "abc"], [10, 2, 23, 24]].
