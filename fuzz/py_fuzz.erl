%% @private
%% The Erlang side of the conversion fuzzer (fuzz/py_fuzz_nif.cpp, docs/fuzzing.md). Not part of
%% the application: fuzz/run.sh compiles it into _build/fuzz, beside py_fuzz.so, and runs
%%   erl -noinput -pa _build/fuzz -py_fuzz_builder fuzz/py_build.py -eval 'py_fuzz:main()' -extra LIBFUZZER_ARGS
%% libFuzzer ends the OS process: status 0 when it is done, non-zero on a finding.
-module(py_fuzz).

-export([main/0]).

-nifs([start/3]).
-on_load(load/0).

load() ->
    Dir = filename:dirname(code:which(?MODULE)),
    erlang:load_nif(filename:join(Dir, "py_fuzz"), 0).

main() ->
    Args = [unicode:characters_to_binary(A) || A <- init:get_plain_arguments()],
    {ok, [[Builder]]} = init:get_argument(py_fuzz_builder),
    {ok, Source} = file:read_file(Builder),
    case start(Args, samples(), Source) of
        ok ->
            receive after infinity -> ok end;
        {error, Reason} ->
            io:format(standard_error, "py_fuzz: cannot start: ~p~n", [Reason]),
            halt(3)
    end.

%% Terms the external format cannot give the fuzzer on this node (its own pids, references,
%% ports and funs), terms of a remote node (whose atom must exist for a safe decode), and a few
%% values worth combining.
samples() ->
    Self = self(),
    Other = spawn(fun() -> receive stop -> ok end end),
    Node = atom_to_binary('fuzz@remote.example'),
    N = byte_size(Node),
    RemotePid = binary_to_term(<<131, 88, 119, N, Node/binary, 1:32, 2:32, 3:32>>),
    RemotePort = binary_to_term(<<131, 89, 119, N, Node/binary, 4:32, 3:32>>),
    RemoteRef = binary_to_term(<<131, 90, 3:16, 119, N, Node/binary, 3:32, 5:32, 6:32, 7:32>>),
    Port = hd(erlang:ports()),
    [Self, Other, make_ref(), Port, fun(X) -> {X, Self} end, fun lists:reverse/1,
     RemotePid, RemotePort, RemoteRef, <<1:3>>, <<"text">>, <<255, 0, 128>>,
     1 bsl 64, -(1 bsl 200), 3.14, "chars", [1 | 2],
     maps:from_list([{I, I} || I <- lists:seq(1, 40)]),
     maps:from_list([{integer_to_binary(I), I} || I <- lists:seq(1, 200)])].

start(_Args, _Samples, _Builder) -> erlang:nif_error(nif_not_loaded).
