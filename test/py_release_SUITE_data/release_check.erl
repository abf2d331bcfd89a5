%% Run inside the nodes py_release_SUITE starts (erl -s release_check Fun): prints what it saw
%% on lines starting with "CHECK " and halts; the suite reads them.
-module(release_check).
-export([calls/0, start_app/0]).

%% The node booted a release that starts erlang_python: make calls.
calls() ->
    report(prefix, py:eval(<<"__import__('sys').prefix">>)),
    report(sqrt, py:call(math, sqrt, [16.0])),
    report(json, py:eval(<<"__import__('json').dumps({'a': [1, 2]})">>)),
    report(asyncio, py:eval(<<"__import__('asyncio').run(__import__('asyncio').sleep(0, 'slept'))">>)),
    erlang:halt(0).

%% The node only has erlang_python on its code path: start it and report the result.
start_app() ->
    Result = application:ensure_all_started(erlang_python),
    report(start, Result),
    case Result of
        {ok, _} -> report(prefix, py:eval(<<"__import__('sys').prefix">>));
        _ -> ok
    end,
    report(alive, erlang:whereis(init) =/= undefined),
    erlang:halt(0).

report(Tag, Value) ->
    io:format("CHECK ~p ~s~n", [Tag, base64:encode(term_to_binary(Value))]).
