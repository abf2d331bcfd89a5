#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell
%%
%% Checks that every exported function of the given modules has a -spec.
%%
%%   escript scripts/check_specs.escript [FILE.erl ...]     (default: src/*.erl)
%%
%% Reads each file's forms with epp (macros expanded, include/ and src/ on the
%% include path), so it needs no build. NIF stubs and behaviour callbacks are
%% held to the same rule as the rest (a callback's -spec is what dialyzer and
%% edoc read for that module). -compile(export_all) counts as exporting every
%% function in the module. A file epp cannot read is an error too.
%% Prints one line per missing spec (file:line: module:fun/arity) and exits 1
%% if there is any, 0 otherwise.
-mode(compile).

main(Args) ->
    Files = case Args of
                [] -> lists:sort(filelib:wildcard("src/*.erl"));
                _ -> Args
            end,
    case Files of
        [] ->
            io:format(standard_error, "check_specs: no files~n", []),
            halt(2);
        _ ->
            ok
    end,
    Results = [check(F) || F <- Files],
    Missing = lists:append([M || {ok, M, _} <- Results]),
    Exports = lists:sum([N || {ok, _, N} <- Results]),
    Errors = [E || {error, E} <- Results],
    [io:format("~ts:~b: ~ts:~ts/~b has no -spec~n", [F, L, Mod, Fun, A])
     || {F, L, Mod, Fun, A} <- Missing],
    [io:format(standard_error, "check_specs: ~ts~n", [E]) || E <- Errors],
    case {Missing, Errors} of
        {[], []} ->
            io:format("check_specs: ~b exported functions in ~b modules, all with a -spec~n",
                      [Exports, length(Files)]),
            halt(0);
        _ ->
            io:format("check_specs: ~b exported function(s) without a -spec, ~b file(s) unreadable~n",
                      [length(Missing), length(Errors)]),
            halt(1)
    end.

check(File) ->
    case forms(File) of
        {ok, Forms} ->
            [Mod] = [M || {attribute, _, module, M} <- Forms],
            Specs = specs(Mod, Forms),
            Lines = maps:from_list([{{N, A}, erl_anno:line(Anno)}
                                    || {function, Anno, N, A, _} <- Forms]),
            Exports = exports(Forms),
            {ok, [{File, maps:get(FA, Lines, 0), Mod, F, A}
                  || {F, A} = FA <- Exports, not sets:is_element(FA, Specs)],
             length(Exports)};
        {error, _} = Err ->
            Err
    end.

forms(File) ->
    case epp:parse_file(File, [{includes, ["include", "src", filename:dirname(File)]}]) of
        {ok, Forms} ->
            case [E || {error, E} <- Forms] of
                [] -> {ok, Forms};
                [E | _] -> {error, io_lib:format("~ts: ~p", [File, E])}
            end;
        {error, Reason} ->
            {error, io_lib:format("~ts: ~p", [File, Reason])}
    end.

exports(Forms) ->
    case lists:member(export_all, compile_opts(Forms)) of
        true ->
            lists:usort([{N, A} || {function, _, N, A, _} <- Forms]);
        false ->
            lists:usort(lists:append([FAs || {attribute, _, export, FAs} <- Forms]))
    end.

compile_opts(Forms) ->
    lists:append([if is_list(O) -> O; true -> [O] end
                  || {attribute, _, compile, O} <- Forms]).

specs(Mod, Forms) ->
    sets:from_list([FA || {attribute, _, spec, {Name, _}} <- Forms,
                          FA <- [spec_name(Mod, Name)], FA =/= other]).

spec_name(_Mod, {F, A}) -> {F, A};
spec_name(Mod, {Mod, F, A}) -> {F, A};
spec_name(_Mod, _) -> other.
