%% -*- coding: utf-8 -*-
%% Doc tests: every ```erlang block of README.md and docs/*.md is run, so the examples cannot rot.
%%
%% One case per file. A block is read as a sequence of Erlang expressions (erl_scan, erl_parse,
%% erl_eval) and evaluated one expression at a time with a fresh binding set, in a fresh process
%% (no mailbox, process dictionary or link is shared between blocks; contexts the block made
%% stop when that process exits). A block's pattern matches are its assertions: a failing one is
%% reported with the file, the line of the expression, the expression and the error. Each file
%% runs against a freshly started erlang_python (the application is stopped after the file), so
%% registrations, shared state and logging settings do not leak from one file to the next.
%%
%% The convention, also described in docs/README.md: an HTML comment on the line right before a
%% fence changes what happens to that block:
%%
%%   <!-- doc-test: skip (why) -->   not run; the reason is required and printed.
%%   <!-- doc-test: setup -->        run before every later block of the same file, in that
%%                                   block's process and with its bindings (a shared prelude).
%%   <!-- doc-test: owngil -->       run only on Python 3.13+ (skipped on older ones, whose
%%                                   owngil contexts give {error, {owngil_unsupported, V}}).
%%   <!-- doc-test: run -->          on a ```python block: run it with py:exec on a fresh worker
%%                                   context; it passes when that returns ok (use assert).
%%   <!-- doc-test: peer -->         needs a second node: the variable B is bound to a peer node
%%                                   (OTP peer, loopback, erlang_python started there), started
%%                                   once for the file; this node is made distributed if it is not.
%%
%% Words combine: `<!-- doc-test: setup owngil -->`. Blocks in other languages (sh, elixir,
%% python without `run`) are not run and are counted as such. A `doc-test:` comment that is not
%% right before a fence, or an unknown word, fails the file. A new docs/*.md file needs a case
%% here (every_doc_has_a_case fails until it has one).
-module(py_docs_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, init_per_testcase/2, end_per_testcase/2]).
-export([buffers/1, shared_dict/1]).
-export([readme/1, getting_started/1, type_conversion/1, contexts/1, owngil/1, callbacks/1,
         state_and_references/1, asyncio/1, channels/1, distributed/1, elixir/1, logging/1, venv/1,
         performance/1, reliability/1, fuzzing/1, migration/1, installation/1, observability/1, docs_readme/1,
         reactor/1, servers/1,
         every_doc_has_a_case/1, runner_reports_failures/1]).
%% Used by runner_reports_failures/1.
-export([blocks_of/1, run_blocks/2]).

-define(BLOCK_TIMEOUT, 15000).
-define(DIRECTIVE, "doc-test:").

%% Case -> file, relative to the repository's root.
files() ->
    [{readme, "README.md"},
     {docs_readme, "docs/README.md"},
     {getting_started, "docs/getting-started.md"},
     {type_conversion, "docs/type-conversion.md"},
     {contexts, "docs/contexts.md"},
     {owngil, "docs/owngil.md"},
     {callbacks, "docs/callbacks.md"},
     {state_and_references, "docs/state-and-references.md"},
     {asyncio, "docs/asyncio.md"},
     {channels, "docs/channels.md"},
     {distributed, "docs/distributed.md"},
     {elixir, "docs/elixir.md"},
     {logging, "docs/logging.md"},
     {venv, "docs/venv.md"},
     {performance, "docs/performance.md"},
     {reliability, "docs/reliability.md"},
     {fuzzing, "docs/fuzzing.md"},
     {migration, "docs/migration.md"},
     {installation, "docs/installation.md"},
     {observability, "docs/observability.md"},
     {buffers, "docs/buffers.md"},
     {shared_dict, "docs/shared-dict.md"},
     {reactor, "docs/reactor.md"},
     {servers, "docs/servers.md"}].

suite() -> [{timetrap, {seconds, 120}}].

all() -> [Case || {Case, _} <- files()] ++ [every_doc_has_a_case, runner_reports_failures].

init_per_testcase(_Case, Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_testcase(_Case, _Config) ->
    _ = application:stop(erlang_python),
    ok.

readme(_Config) -> doc_file(readme).
docs_readme(_Config) -> doc_file(docs_readme).
getting_started(_Config) -> doc_file(getting_started).
installation(_Config) -> doc_file(installation).
type_conversion(_Config) -> doc_file(type_conversion).
contexts(_Config) -> doc_file(contexts).
owngil(_Config) -> doc_file(owngil).
callbacks(_Config) -> doc_file(callbacks).
state_and_references(_Config) -> doc_file(state_and_references).
asyncio(_Config) -> doc_file(asyncio).
channels(_Config) -> doc_file(channels).
distributed(_Config) -> doc_file(distributed).
elixir(_Config) -> doc_file(elixir).
logging(_Config) -> doc_file(logging).
venv(_Config) -> doc_file(venv).
performance(_Config) -> doc_file(performance).
reliability(_Config) -> doc_file(reliability).
fuzzing(_Config) -> doc_file(fuzzing).
migration(_Config) -> doc_file(migration).
observability(_Config) -> doc_file(observability).
buffers(_Config) -> doc_file(buffers).
shared_dict(_Config) -> doc_file(shared_dict).
reactor(_Config) -> doc_file(reactor).
servers(_Config) -> doc_file(servers).

%% Every Markdown file of docs/ (and README.md) has a case above.
every_doc_has_a_case(_Config) ->
    Root = root(),
    OnDisk = ["README.md" | ["docs/" ++ F || F <- filelib:wildcard("*.md", filename:join(Root, "docs"))]],
    Known = [F || {_, F} <- files()],
    case {OnDisk -- Known, Known -- OnDisk} of
        {[], []} -> ok;
        {New, Gone} -> ct:fail("files without a case: ~p; cases without a file: ~p", [New, Gone])
    end.

%% The runner itself: setup blocks, skips, fresh processes, a failing match (reported with the line
%% of its expression), a missing period, a stray or unknown directive and a skip without a reason.
runner_reports_failures(Config) ->
    Doc = "# t\n"
          "\n"
          "<!-- doc-test: setup -->\n"
          "```erlang\n"
          "X = 1.\n"
          "```\n"
          "\n"
          "```erlang\n"
          "2 = X + 1,\n"
          "3 = X + 1.\n"
          "```\n"
          "\n"
          "<!-- doc-test: skip (needs a second node) -->\n"
          "```erlang\n"
          "this would not parse\n"
          "```\n"
          "\n"
          "```erlang\n"
          "hello = self() ! hello,\n"
          "{messages, [hello]} = process_info(self(), messages).\n"
          "```\n"
          "\n"
          "```erlang\n"
          "{messages, []} = process_info(self(), messages),\n"
          "undefined = get(anything),\n"
          "_ = put(anything, 1),\n"
          "{ok, 3} = py:eval(<<\"1 + 2\">>).\n"
          "```\n"
          "\n"
          "```sh\n"
          "echo not run\n"
          "```\n",
    Path = filename:join(proplists:get_value(priv_dir, Config), "doc_test_sample.md"),
    ok = file:write_file(Path, Doc),
    {ok, Blocks} = blocks_of(Path),
    #{run := 4, skipped := [{14, "needs a second node"}], not_run := [{30, "sh"}],
      failures := [Failure]} = run_blocks(Path, Blocks),
    #{line := 10, expr := "3 = X + 1", error := {error, {badmatch, 2}}} = Failure,
    %% A directive that is not right before a fence, or a skip without a reason.
    ok = file:write_file(Path, "<!-- doc-test: skip (x) -->\n\n```erlang\nok.\n```\n"),
    {error, {stray_directive, 1}} = blocks_of(Path),
    ok = file:write_file(Path, "<!-- doc-test: skip -->\n```erlang\nok.\n```\n"),
    {error, {skip_needs_a_reason, 1}} = blocks_of(Path),
    ok = file:write_file(Path, "<!-- doc-test: sometimes -->\n```erlang\nok.\n```\n"),
    {error, {unknown_directive, 1, "sometimes"}} = blocks_of(Path),
    ok = file:write_file(Path, "```erlang\nok = ok\n```\n"),
    {ok, [B]} = blocks_of(Path),
    #{failures := [#{line := 2, error := {parse, "the block does not end with a period"}}]} =
        run_blocks(Path, [B]),
    ok.

%% --- running a file -------------------------------------------------------------------------

doc_file(Case) ->
    {Case, Rel} = lists:keyfind(Case, 1, files()),
    Path = filename:join(root(), Rel),
    case blocks_of(Path) of
        {error, Reason} ->
            ct:fail("~ts: ~p", [Rel, Reason]);
        {ok, Blocks} ->
            #{run := Run, skipped := Skipped, not_run := NotRun, failures := Failures} =
                run_blocks(Path, Blocks),
            Summary = summary(Run, Skipped, NotRun),
            ct:pal("~ts: ~ts~ts", [Rel, Summary,
                                   [io_lib:format("~n  skipped, line ~w: ~ts", [L, R]) || {L, R} <- Skipped]]),
            case Failures of
                [] ->
                    {comment, Summary};
                _ ->
                    Text = [format_failure(Rel, F) || F <- Failures],
                    ct:pal("~ts", [Text]),
                    ct:fail("~ts: ~w block(s) failed:~n~ts", [Rel, length(Failures), Text])
            end
    end.

summary(Run, Skipped, NotRun) ->
    Langs = lists:usort([L || {_, L} <- NotRun]),
    Other = [io_lib:format("~w ~ts", [length([x || {_, L1} <- NotRun, L1 =:= L]), L]) || L <- Langs],
    lists:flatten(io_lib:format("~w run, ~w skipped~ts", [Run, length(Skipped),
                                                         case Other of
                                                             [] -> "";
                                                             _ -> ", not run: " ++ lists:join(", ", Other)
                                                         end])).

format_failure(Rel, #{block := BlockLine, line := Line, expr := Expr, error := Error}) ->
    io_lib:format("~ts:~w (block at line ~w): ~ts~n    ~tp~n", [Rel, Line, BlockLine, Expr, Error]).

%% Runs the blocks of one file: the setup blocks before each later block, in its process.
-spec run_blocks(file:filename(), [map()]) -> map().
run_blocks(_Path, Blocks) ->
    Owngil = owngil_supported(),
    Peer = case [B || #{words := Ws} = B <- Blocks, lists:member(peer, Ws)] of
               [] -> none;
               _ -> start_peer()
           end,
    try run_blocks(Blocks, Owngil, Peer)
    after stop_peer(Peer)
    end.

run_blocks(Blocks, Owngil, Peer) ->
    {_, Acc} =
        lists:foldl(
          fun(#{lang := Lang, line := Line} = B, {Setups, Acc}) ->
                  Words = maps:get(words, B, []),
                  Action = action(Lang, Words, Owngil, Peer),
                  Acc1 = case Action of
                             {skip, Why} ->
                                 Acc#{skipped := maps:get(skipped, Acc) ++ [{Line, Why}]};
                             not_run ->
                                 Acc#{not_run := maps:get(not_run, Acc) ++ [{Line, Lang}]};
                             _ when Action =:= setup ->
                                 Acc#{run := maps:get(run, Acc) + 1};
                             _ ->
                                 T0 = erlang:monotonic_time(millisecond),
                                 Bindings0 = case {lists:member(peer, Words), Peer} of
                                                 {true, {ok, Node, _, _}} -> [{'B', Node}];
                                                 _ -> []
                                             end,
                                 R = run_in_fresh_process(Bindings0, Setups ++ [{Action, B}]),
                                 Ms = erlang:monotonic_time(millisecond) - T0,
                                 ct:log("line ~w (~ts): ~p in ~w ms", [Line, Lang, R, Ms]),
                                 Failures = case R of
                                                ok -> [];
                                                {failed, F} -> [F]
                                            end,
                                 Acc#{run := maps:get(run, Acc) + 1,
                                      failures := maps:get(failures, Acc) ++ Failures}
                         end,
                  Setups1 = case Action of
                                setup -> Setups ++ [{erlang, B}];
                                _ -> Setups
                            end,
                  {Setups1, Acc1}
          end,
          {[], #{run => 0, skipped => [], not_run => [], failures => []}}, Blocks),
    Acc.

action(Lang, Words, Owngil, Peer) ->
    Skip = proplists:get_value(skip, Words),
    NeedsOwngil = lists:member(owngil, Words),
    NoPeer = case {lists:member(peer, Words), Peer} of
                 {true, {error, Why}} -> Why;
                 _ -> false
             end,
    if
        Skip =/= undefined -> {skip, Skip};
        NeedsOwngil, not Owngil -> {skip, "owngil contexts need Python 3.13+ (this build: " ++
                                          binary_to_list(element(2, py:version())) ++ ")"};
        NoPeer =/= false -> {skip, "no peer node: " ++ NoPeer};
        Lang =:= "erlang" ->
            case lists:member(setup, Words) of
                true -> setup;
                false -> erlang
            end;
        Lang =:= "python" ->
            case lists:member(run, Words) of
                true -> python;
                false -> not_run
            end;
        true -> not_run
    end.

owngil_supported() ->
    [Major, Minor | _] = [list_to_integer(P) || P <- string:lexemes(binary_to_list(element(2, py:version())), "."),
                                                 lists:all(fun(C) -> C >= $0 andalso C =< $9 end, P)],
    {Major, Minor} >= {3, 13}.

%% The blocks run in a new process; the result comes back as its exit reason, so nothing is
%% left in this process's mailbox and the block's own links and contexts go with it.
run_in_fresh_process(Bindings, Steps) ->
    {Pid, Mon} = spawn_monitor(fun() -> exit({doc_test, run_steps(Bindings, Steps)}) end),
    receive
        {'DOWN', Mon, process, Pid, {doc_test, Result}} ->
            Result;
        {'DOWN', Mon, process, Pid, Other} ->
            #{line := L} = element(2, lists:last(Steps)),
            {failed, #{block => L, line => L, expr => "(the block's process)", error => {exit, Other}}}
    after ?BLOCK_TIMEOUT ->
        {dictionary, Dict} = process_info(Pid, dictionary),
        Where = proplists:get_value(doc_test_at, Dict, {0, 0, "?"}),
        exit(Pid, kill),
        receive {'DOWN', Mon, process, Pid, _} -> ok end,
        {BlockLine, Line, Expr} = Where,
        {failed, #{block => BlockLine, line => Line, expr => Expr,
                   error => {timeout, ?BLOCK_TIMEOUT, "no answer (a receive that never matched?)"}}}
    end.

run_steps(Bindings0, Steps) ->
    Initial = lists:foldl(fun({K, V}, B) -> erl_eval:add_binding(K, V, B) end,
                          erl_eval:new_bindings(), Bindings0),
    try
        lists:foldl(fun({Kind, B}, Bindings) -> run_step(Kind, B, Bindings) end, Initial, Steps),
        ok
    catch
        throw:{doc_test_failed, Failure} -> {failed, Failure}
    end.

run_step(erlang, #{line := BlockLine, first := First, text := Text}, Bindings) ->
    Exprs = parse(BlockLine, First, Text),
    lists:foldl(fun(E, B) -> eval(BlockLine, E, B) end, Bindings, Exprs);
run_step(python, #{line := BlockLine, first := First, text := Text}, Bindings) ->
    put(doc_test_at, {BlockLine, First, "py:exec of the python block"}),
    {ok, Ctx} = py_context:new(#{mode => worker}),
    case py:exec(Ctx, unicode:characters_to_binary(Text)) of
        ok ->
            ok = py_context:stop(Ctx),
            Bindings;
        Error ->
            throw({doc_test_failed, #{block => BlockLine, line => First, expr => "py:exec of the python block",
                                      error => {Error, py:last_traceback()}}})
    end.

parse(BlockLine, First, Text) ->
    Fail = fun(Line, Why) ->
                   throw({doc_test_failed, #{block => BlockLine, line => Line, expr => "", error => {parse, Why}}})
           end,
    Tokens = case erl_scan:string(Text, {First, 1}) of
                 {ok, Scanned, _} -> Scanned;
                 {error, {ScanLoc, ScanMod, ScanDesc}, _} ->
                     Fail(line_of(ScanLoc), lists:flatten(ScanMod:format_error(ScanDesc)))
             end,
    Chunks = split_at_dots(Tokens, [], []),
    lists:append(
      [case Chunk of
           {no_dot, Ts} ->
               Fail(line_of(erl_scan:location(lists:last(Ts))), "the block does not end with a period");
           {dot, Ts} ->
               case erl_parse:parse_exprs(Ts) of
                   {ok, Es} -> Es;
                   {error, {Loc, Mod, Desc}} -> Fail(line_of(Loc), lists:flatten(Mod:format_error(Desc)))
               end
       end || Chunk <- Chunks]).

split_at_dots([], [], Acc) -> lists:reverse(Acc);
split_at_dots([], Cur, Acc) -> lists:reverse([{no_dot, lists:reverse(Cur)} | Acc]);
split_at_dots([{dot, _} = D | Rest], Cur, Acc) -> split_at_dots(Rest, [], [{dot, lists:reverse([D | Cur])} | Acc]);
split_at_dots([T | Rest], Cur, Acc) -> split_at_dots(Rest, [T | Cur], Acc).

line_of({Line, _Col}) -> Line;
line_of(Line) when is_integer(Line) -> Line.

eval(BlockLine, Expr, Bindings) ->
    Line = erl_anno:line(element(2, Expr)),
    Source = lists:flatten(erl_pp:expr(Expr)),
    put(doc_test_at, {BlockLine, Line, Source}),
    try erl_eval:expr(Expr, Bindings) of
        {value, _, Bindings1} -> Bindings1
    catch
        Class:Reason ->
            throw({doc_test_failed, #{block => BlockLine, line => Line, expr => Source,
                                      error => {Class, Reason}}})
    end.

%% --- reading a file ---------------------------------------------------------------------------

%% The fenced blocks of a Markdown file: #{line => FenceLine, first => FirstCodeLine,
%% lang => Info, text => Code, words => Directive}.
-spec blocks_of(file:filename()) -> {ok, [map()]} | {error, term()}.
blocks_of(Path) ->
    {ok, Bin} = file:read_file(Path),
    Lines = string:split(unicode:characters_to_list(Bin), "\n", all),
    try
        {ok, scan(lists:zip(lists:seq(1, length(Lines)), Lines), none, [])}
    catch
        throw:{doc_test_markdown, Reason} -> {error, Reason}
    end.

%% Pending: none | {Line, Words}: a directive seen on the line before.
scan([], {DLine, _}, _Acc) ->
    throw({doc_test_markdown, {stray_directive, DLine}});
scan([], none, Acc) ->
    lists:reverse(Acc);
scan([{N, Line} | Rest], Pending, Acc) ->
    Trimmed = string:trim(Line),
    case fence(Line) of
        {open, Indent, Lang} ->
            {Code, Rest1} = block_lines(Rest, Indent, []),
            Words = case Pending of
                        none -> [];
                        {_, W} -> W
                    end,
            Block = #{line => N, first => N + 1, lang => Lang, words => Words,
                      text => lists:flatten(lists:join("\n", Code)) ++ "\n"},
            scan(Rest1, none, [Block | Acc]);
        none ->
            case Pending of
                {DLine, _} -> throw({doc_test_markdown, {stray_directive, DLine}});
                none -> ok
            end,
            case directive(N, Trimmed) of
                none -> scan(Rest, none, Acc);
                Words -> scan(Rest, {N, Words}, Acc)
            end
    end.

fence(Line) ->
    case re:run(Line, "^( *)```([A-Za-z0-9_+-]*)\\s*$", [{capture, all_but_first, list}, unicode]) of
        {match, [Indent, Lang]} -> {open, length(Indent), Lang};
        nomatch -> none
    end.

%% The code lines up to the closing fence, with the fence's indentation removed.
block_lines([], _Indent, _Acc) ->
    throw({doc_test_markdown, unclosed_fence});
block_lines([{_, Line} | Rest], Indent, Acc) ->
    case re:run(Line, "^ *```\\s*$", [unicode]) of
        {match, _} -> {lists:reverse(Acc), Rest};
        nomatch -> block_lines(Rest, Indent, [dedent(Line, Indent) | Acc])
    end.

dedent([$\s | Rest], N) when N > 0 -> dedent(Rest, N - 1);
dedent(Line, _) -> Line.

%% "<!-- doc-test: skip (why) -->" -> [{skip, "why"}]; "<!-- doc-test: setup owngil -->" ->
%% [setup, owngil]; none when the line is not a directive.
directive(N, Trimmed) ->
    case re:run(Trimmed, "^<!--\\s*" ?DIRECTIVE "(.*?)-->$", [{capture, all_but_first, list}, unicode]) of
        nomatch ->
            %% A comment that mentions doc-test: but is not one (prose may quote the syntax).
            case lists:prefix("<!--", Trimmed) andalso string:find(Trimmed, ?DIRECTIVE) =/= nomatch of
                true -> throw({doc_test_markdown, {malformed_directive, N}});
                false -> none
            end;
        {match, [Body]} ->
            {WordsText, Reason} =
                case re:run(Body, "^([^(]*)\\((.*)\\)\\s*$", [{capture, all_but_first, list}, unicode]) of
                    {match, [W, R]} -> {W, string:trim(R)};
                    nomatch -> {Body, ""}
                end,
            Words = string:lexemes(WordsText, " ,"),
            [word(N, W, Reason) || W <- Words]
    end.

word(N, "skip", "") -> throw({doc_test_markdown, {skip_needs_a_reason, N}});
word(_, "skip", Reason) -> {skip, Reason};
word(_, "setup", _) -> setup;
word(_, "owngil", _) -> owngil;
word(_, "run", _) -> run;
word(_, "peer", _) -> peer;
word(N, Other, _) -> throw({doc_test_markdown, {unknown_directive, N, Other}}).

%% --- a second node for `peer' blocks ------------------------------------------------------------

%% {ok, Node, Peer, StartedDistribution} or {error, Reason}. Loopback only: this node gets long
%% names on 127.0.0.1 if it is not distributed (epmd is started when it is not running), and the
%% peer's distribution port listens on 127.0.0.1. Names carry the OS pid: runs on one host do not
%% collide.
start_peer() ->
    case py_test_util:ensure_distributed("py_docs_a") of
        {error, _} = Error ->
            Error;
        {ok, Started} ->
            try
                {Peer, Node} = py_test_util:start_peer("py_docs_b", [code:lib_dir(erlang_python, ebin)]),
                {ok, _} = erpc:call(Node, application, ensure_all_started, [erlang_python]),
                {ok, Node, Peer, Started}
            catch
                C:R ->
                    py_test_util:stop_distributed(Started),
                    {error, lists:flatten(io_lib:format("~p:~0p", [C, R]))}
            end
    end.

stop_peer({ok, _Node, Peer, Started}) ->
    catch peer:stop(Peer),
    py_test_util:stop_distributed(Started);
stop_peer(_) ->
    ok.

%% The repository's root: the first directory above this suite with README.md and docs/
%% (rebar3 compiles a copy of test/ under _build).
root() ->
    Starts = [filename:dirname(?FILE), filename:dirname(code:which(?MODULE))],
    case [D || S <- Starts, D <- [find_root(filename:absname(S))], D =/= none] of
        [Root | _] -> Root;
        [] -> ct:fail("no README.md with a docs/ directory above ~p", [Starts])
    end.

find_root("/") ->
    none;
find_root(Dir) ->
    case filelib:is_regular(filename:join(Dir, "README.md"))
        andalso filelib:is_dir(filename:join(Dir, "docs"))
        andalso filelib:is_regular(filename:join(Dir, "rebar.config")) of
        true -> Dir;
        false -> find_root(filename:dirname(Dir))
    end.
