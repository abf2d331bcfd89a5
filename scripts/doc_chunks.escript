#!/usr/bin/env escript
%% -*- erlang -*-
%% Puts the EDoc of every module of src/ into its .beam as an EEP-48 "Docs" chunk, so that
%% `h(py, call)' in the Erlang shell and `h :py.call' in IEx show it wherever the beams go
%% (a dependency, a release). Run by rebar3's compile post-hook; beams that have the chunk
%% already are left alone. The ebin is $REBAR_BARE_COMPILER_OUTPUT_DIR/ebin (Mix), else
%% $REBAR_BUILD_DIR/lib/erlang_python/ebin (rebar3), else the first argument. Never fails a
%% build: a module whose docs cannot be built is reported and skipped.
-mode(compile).

main(Args) ->
    case ebin(Args) of
        {ok, Ebin} -> embed_all(Ebin);
        none -> io:format("doc_chunks: no ebin found; docs not embedded~n")
    end.

ebin([Dir | _]) -> {ok, Dir};
ebin([]) ->
    Candidates = [filename:join(D, "ebin") || D <- [os:getenv("REBAR_BARE_COMPILER_OUTPUT_DIR")], D =/= false] ++
                 [filename:join([D, "lib", "erlang_python", "ebin"]) || D <- [os:getenv("REBAR_BUILD_DIR")], D =/= false],
    case [C || C <- Candidates, filelib:is_dir(C)] of
        [Ebin | _] -> {ok, Ebin};
        [] -> none
    end.

embed_all(Ebin) ->
    Sources = filelib:wildcard(filename:join(src_dir(), "*.erl")),
    Todo = [{Src, Beam} || Src <- Sources,
                           Beam <- [filename:join(Ebin, filename:basename(Src, ".erl") ++ ".beam")],
                           filelib:is_regular(Beam), not has_docs(Beam)],
    Tmp = filename:join(Ebin, ".doc_chunks"),
    lists:foreach(fun({Src, Beam}) -> embed(Src, Beam, Tmp) end, Todo),
    _ = file:del_dir_r(Tmp),
    ok.

src_dir() ->
    filename:join(filename:dirname(filename:dirname(filename:absname(escript:script_name()))), "src").

has_docs(Beam) ->
    case beam_lib:chunks(Beam, ["Docs"]) of
        {ok, _} -> true;
        _ -> false
    end.

embed(Src, Beam, Tmp) ->
    Mod = filename:basename(Src, ".erl"),
    Opts = [{doclet, edoc_doclet_chunks}, {layout, edoc_layout_chunks}, {dir, Tmp}, {preprocess, true},
            {includes, [filename:dirname(Src)]}, {report_missing_types, false}],
    try
        ok = edoc:files([Src], Opts),
        {ok, Docs} = file:read_file(filename:join([Tmp, "chunks", Mod ++ ".chunk"])),
        {ok, Mod1, Chunks} = beam_lib:all_chunks(Beam),
        {ok, Bin} = beam_lib:build_module(Chunks ++ [{"Docs", Docs}]),
        ok = file:write_file(Beam, Bin),
        _ = Mod1
    catch
        Class:Reason -> io:format("doc_chunks: ~ts: ~p:~p (docs not embedded)~n", [Mod, Class, Reason])
    end.
