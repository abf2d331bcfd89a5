%% @doc py_buffer: the Erlang API, erlang.PyBuffer's file interface and memoryview in worker and
%% owngil contexts, blocking reads (interruptible, data arriving while blocked), pinning, and the
%% faults: write after close, a buffer whose creator died, a memoryview kept after close, a
%% reader racing close/1.
-module(py_buffer_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_group/2, end_per_group/2]).
-export([erlang_api/1, bad_input/1, file_interface/1, iteration_and_lines/1, seek_tell_find/1,
         memoryview_zero_copy/1, pinned_growth_refused/1, memoryview_outlives_close/1, python_close/1,
         blocking_read_gets_later_writes/1, blocking_read_is_interruptible/1, creator_died/1,
         reader_races_close/1, large_write/1, context_stops_during_read/1, made_in_python/1,
         reused_memory_holds_only_new_bytes/1]).

suite() -> [{timetrap, {seconds, 120}}].

all() -> [erlang_api, bad_input, {group, worker}, {group, owngil}].

groups() ->
    Cases = [file_interface, iteration_and_lines, seek_tell_find, memoryview_zero_copy, pinned_growth_refused,
             memoryview_outlives_close, python_close, blocking_read_gets_later_writes,
             blocking_read_is_interruptible, creator_died, reader_races_close, large_write, context_stops_during_read,
             made_in_python, reused_memory_holds_only_new_bytes],
    [{worker, [], Cases}, {owngil, [], Cases}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(erlang_python).

init_per_group(Mode, Config) ->
    py_test_util:mode_group(Mode, Config).

end_per_group(_Mode, _Config) ->
    ok.

%% A context of the group's mode, owned by the calling case.
context(Config) ->
    {ok, Ctx} = py_context:new(#{mode => ?config(mode, Config)}),
    ok = py:exec(Ctx, helpers()),
    Ctx.

helpers() ->
    <<"import erlang\n"
      "def file_ops(b):\n"
      "    return [type(b).__name__, b.readable(), b.writable(), b.seekable(), b.closed, len(b),\n"
      "            b.readable_amount(), b.read(3), b.read_nonblock(2), b.tell(), b.at_eof(), b.read(), b.at_eof(),\n"
      "            b.read(), b.read(10), b.read_nonblock(), b.readline()]\n"
      "def lines(b):\n"
      "    return [b.readline(), b.readline(2), b.readline(), b.readlines()]\n"
      "def iterate(b):\n"
      "    return [line for line in b]\n"
      "def seek_find(b):\n"
      "    out = [b.find(b'o'), b.find(b'world'), b.find(b'zz'), b.find(b'o', 5), b.find(b'o', 0, 4)]\n"
      "    out.append(b.seek(6)); out.append(b.read(5)); out.append(b.tell())\n"
      "    out.append(b.find(b'o'))\n"
      "    out.append(b.seek(-5, 1)); out.append(b.seek(-3, 2)); out.append(b.read())\n"
      "    for bad in ((100,), (-1,), (0, 7)):\n"
      "        try:\n"
      "            b.seek(*bad)\n"
      "            out.append('moved')\n"
      "        except ValueError:\n"
      "            out.append('ValueError')\n"
      "    return out\n"
      "def seek_end_before_eof(b):\n"
      "    try:\n"
      "        b.seek(0, 2)\n"
      "        return 'moved'\n"
      "    except ValueError:\n"
      "        return 'ValueError'\n"
      "def view(b):\n"
      "    mv = memoryview(b)\n"
      "    out = [mv.readonly, mv.ndim, mv.nbytes, bytes(mv[:5]), mv[6]]\n"
      "    try:\n"
      "        mv[0] = 1\n"
      "        out.append('written')\n"
      "    except TypeError:\n"
      "        out.append('TypeError')\n"
      "    mv.release()\n"
      "    return out\n"
      "held = {}\n"
      "def pin(b):\n"
      "    held['mv'] = memoryview(b)\n"
      "    return held['mv'].nbytes\n"
      "def unpin():\n"
      "    held.pop('mv').release()\n"
      "def read_held():\n"
      "    return bytes(held['mv'])\n"
      "def drop_all():\n"
      "    held.clear()\n"
      "def close_from_python(b):\n"
      "    b.close()\n"
      "    return [b.closed, b.read(), b.read(), b.at_eof()]\n"
      "def read_all(b):\n"
      "    return b.read()\n"
      "def read_chunks(b, n):\n"
      "    chunks = []\n"
      "    while True:\n"
      "        c = b.read(n)\n"
      "        if not c:\n"
      "            return b''.join(chunks)\n"
      "        chunks.append(c)\n"
      "def swallow_nothing(b):\n"
      "    return b.read()\n">>.

%% --- Erlang API ----------------------------------------------------------------------------

erlang_api(_Config) ->
    {ok, B0} = py_buffer:new(),
    {ok, _} = py_buffer:new(undefined),
    {ok, _} = py_buffer:new(#{content_length => 10}),
    {ok, _} = py_buffer:new(#{}),
    {error, shared_unsupported} = py_buffer:new(#{shared => true}),
    {ok, B1} = py_buffer:new(4),
    ok = py_buffer:write(B1, <<"abcd">>),
    ok = py_buffer:write(B1, [<<"ef">>, "gh"]),  % grows past the content length given
    ok = py_buffer:write(B1, <<>>),
    ok = py_buffer:write(B1, <<>>, 1000),
    ok = py_buffer:close(B1),
    ok = py_buffer:close(B1),
    {error, closed} = py_buffer:write(B1, <<"late">>),
    {ok, true} = py:eval(<<"type(m['in'][0]) is __import__('erlang').PyBuffer">>, #{m => #{in => [B1]}}),
    {ok, <<"abcdefgh">>} = py:eval(<<"b.read()">>, #{b => B1}),
    ok = py_buffer:close(B0),
    {ok, <<>>} = py:eval(<<"b.read()">>, #{b => B0}).

bad_input(_Config) ->
    {ok, B} = py_buffer:new(),
    {'EXIT', {badarg, _}} = (catch py_buffer:new(-1)),
    {'EXIT', {badarg, _}} = (catch py_buffer:new(foo)),
    {'EXIT', {badarg, _}} = (catch py_buffer:write(B, 42)),
    {'EXIT', {badarg, _}} = (catch py_buffer:write(make_ref(), <<"x">>)),
    {'EXIT', {badarg, _}} = (catch py_buffer:close(self())),
    {ok, SD} = py:shared_dict_new(),
    {'EXIT', {badarg, _}} = (catch py_buffer:write(SD, <<"x">>)),
    %% erlang.PyBuffer cannot be made from Python
    {error, {'TypeError', _}} = py:eval(<<"type(b)()">>, #{b => B}),
    ok.

%% --- Python --------------------------------------------------------------------------------

file_interface(Config) ->
    Ctx = context(Config),
    {ok, B} = py_buffer:new(),
    ok = py_buffer:write(B, <<"hello world\nbye">>),
    ok = py_buffer:close(B),
    {ok, [<<"PyBuffer">>, true, false, true, true, 15, 15, <<"hel">>, <<"lo">>, 5, false, <<" world\nbye">>, true,
          <<>>, <<>>, <<>>, <<>>]} = py:call(Ctx, '__main__', file_ops, [B]).

iteration_and_lines(Config) ->
    Ctx = context(Config),
    {ok, B} = py_buffer:new(),
    ok = py_buffer:write(B, <<"one\ntwo\nthree\nfour\nfive">>),
    ok = py_buffer:close(B),
    {ok, [<<"one\n">>, <<"tw">>, <<"o\n">>, [<<"three\n">>, <<"four\n">>, <<"five">>]]} =
        py:call(Ctx, '__main__', lines, [B]),
    {ok, B2} = py_buffer:new(),
    ok = py_buffer:write(B2, <<"a\nb\n\nc">>),
    ok = py_buffer:close(B2),
    {ok, [<<"a\n">>, <<"b\n">>, <<"\n">>, <<"c">>]} = py:call(Ctx, '__main__', iterate, [B2]).

seek_tell_find(Config) ->
    Ctx = context(Config),
    {ok, Open} = py_buffer:new(),
    ok = py_buffer:write(Open, <<"abc">>),
    {ok, <<"ValueError">>} = py:call(Ctx, '__main__', seek_end_before_eof, [Open]),
    {ok, B} = py_buffer:new(),
    ok = py_buffer:write(B, <<"hello world">>),
    ok = py_buffer:close(B),
    %% find: relative to the read position
    {ok, [4, 6, -1, 7, -1, 6, <<"world">>, 11, -1, 6, 8, <<"rld">>, <<"ValueError">>, <<"ValueError">>,
          <<"ValueError">>]} = py:call(Ctx, '__main__', seek_find, [B]).

memoryview_zero_copy(Config) ->
    Ctx = context(Config),
    {ok, B} = py_buffer:new(),
    ok = py_buffer:write(B, <<"hello world">>),
    {ok, [true, 1, 11, <<"hello">>, $w, <<"TypeError">>]} = py:call(Ctx, '__main__', view, [B]).

%% While a memoryview is open, a write that fits in the allocated memory lands; one that would
%% grow (and so move) it is refused; after release it lands.
pinned_growth_refused(Config) ->
    Ctx = context(Config),
    {ok, B} = py_buffer:new(16),
    ok = py_buffer:write(B, <<"0123456789">>),
    {ok, 10} = py:call(Ctx, '__main__', pin, [B]),
    ok = py_buffer:write(B, <<"abcdef">>),              % 16 bytes: fits
    {error, pinned} = py_buffer:write(B, <<"g">>),      % would grow
    {ok, <<"0123456789">>} = py:call(Ctx, '__main__', read_held, []),
    {ok, none} = py:call(Ctx, '__main__', unpin, []),
    ok = py_buffer:write(B, <<"g">>),
    ok = py_buffer:close(B),
    {ok, <<"0123456789abcdefg">>} = py:call(Ctx, '__main__', read_all, [B]).

%% A memoryview kept after close/1 and after every other reference to the buffer went still
%% reads its bytes (the view keeps the buffer's memory).
memoryview_outlives_close(Config) ->
    Ctx = context(Config),
    {ok, B} = py_buffer:new(),
    ok = py_buffer:write(B, <<"kept bytes">>),
    {ok, 10} = py:call(Ctx, '__main__', pin, [B]),
    ok = py_buffer:close(B),
    {ok, [true, <<"kept bytes">>, <<>>, true]} = py:call(Ctx, '__main__', close_from_python, [B]),
    {error, closed} = py_buffer:write(B, <<"x">>),
    erlang:garbage_collect(),
    {ok, <<"kept bytes">>} = py:call(Ctx, '__main__', read_held, []),
    {ok, none} = py:call(Ctx, '__main__', drop_all, []).

%% close() from Python marks the end of data, as py_buffer:close/1 does (erlang_python 4.1's
%% meaning): what was written stays readable, later Erlang writes are refused.
python_close(Config) ->
    Ctx = context(Config),
    {ok, B} = py_buffer:new(),
    ok = py_buffer:write(B, <<"abc">>),
    {ok, [true, <<"abc">>, <<>>, true]} = py:call(Ctx, '__main__', close_from_python, [B]),
    {error, closed} = py_buffer:write(B, <<"more">>),
    {ok, true} = py:eval(Ctx, <<"b.closed">>, #{b => B}).

%% read() blocks until close/1, with the GIL released: the writer's later chunks all arrive.
blocking_read_gets_later_writes(Config) ->
    Ctx = context(Config),
    {ok, B} = py_buffer:new(),
    Self = self(),
    Reader = spawn_link(fun() -> Self ! {read, py:call(Ctx, '__main__', read_all, [B])} end),
    Chunks = [<<N:32>> || N <- lists:seq(1, 200)],
    [ok = py_buffer:write(B, C) || C <- Chunks],
    %% the main interpreter keeps serving other contexts meanwhile
    {ok, 2} = py:eval(<<"1 + 1">>),
    ok = py_buffer:close(B),
    Expected = iolist_to_binary(Chunks),
    receive {read, R} -> {ok, Expected} = R end,
    unlink(Reader).

%% A read blocked on an empty buffer is ended by the call's timeout (the context's interrupter),
%% and the context serves the next call.
blocking_read_is_interruptible(Config) ->
    Ctx = context(Config),
    {ok, B} = py_buffer:new(),
    {error, timeout} = py:call(Ctx, '__main__', swallow_nothing, [B], #{timeout => 200}),
    {ok, 3} = py:eval(Ctx, <<"1 + 2">>),
    ok = py_buffer:write(B, <<"later">>),
    ok = py_buffer:close(B),
    {ok, <<"later">>} = py:call(Ctx, '__main__', read_all, [B]).

%% A buffer lives as long as a reference to it: its creator's exit changes nothing.
creator_died(Config) ->
    Ctx = context(Config),
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       {ok, B} = py_buffer:new(),
                                       ok = py_buffer:write(B, <<"from the dead ">>),
                                       Self ! {buffer, B}
                               end),
    B = receive {buffer, Buf} -> Buf end,
    receive {'DOWN', Mon, process, Pid, normal} -> ok end,
    ok = py_buffer:write(B, <<"and the living">>),
    ok = py_buffer:close(B),
    {ok, <<"from the dead and the living">>} = py:call(Ctx, '__main__', read_all, [B]).

%% A Python reader in small reads and an Erlang writer that closes right after its last write:
%% every byte written before close/1 is read, in order, and nothing after.
reader_races_close(Config) ->
    Ctx = context(Config),
    Self = self(),
    lists:foreach(
      fun(Round) ->
              {ok, B} = py_buffer:new(),
              Chunks = [crypto:strong_rand_bytes(rand:uniform(3000)) || _ <- lists:seq(1, 50 + Round)],
              Reader = spawn_link(fun() -> Self ! {read, py:call(Ctx, '__main__', read_chunks, [B, 1000])} end),
              Writer = spawn_link(fun() ->
                                          [ok = py_buffer:write(B, C) || C <- Chunks],
                                          ok = py_buffer:close(B),
                                          {error, closed} = py_buffer:write(B, <<"after">>),
                                          Self ! written
                                  end),
              receive written -> ok end,
              Expected = iolist_to_binary(Chunks),
              receive {read, R} -> {ok, Expected} = R end,
              unlink(Reader),
              unlink(Writer)
      end, lists:seq(1, 20)).

%% A write over 1 MiB goes to a dirty scheduler; a 64 MiB body arrives whole, also through reads
%% larger than the copy slice.
large_write(Config) ->
    Ctx = context(Config),
    {ok, B} = py_buffer:new(),
    Big = binary:copy(<<"0123456789abcdef">>, 4 * 1024 * 1024),
    ok = py_buffer:write(B, Big),
    ok = py_buffer:close(B),
    {ok, [67108864, true, true, 0]} =
        py:eval(Ctx, <<"[len(b), bytes(memoryview(b)[-16:]) == b'0123456789abcdef',"
                       " b.read(3 * 1024 * 1024 + 5) + b.read() == b'0123456789abcdef' * 4194304, len(b)]">>,
                #{b => B}).

%% The context of a blocked reader stops: the reader gets one error reply, and the buffer (still
%% referenced here) keeps working for another context.
context_stops_during_read(Config) ->
    Ctx = context(Config),
    {ok, B} = py_buffer:new(),
    ok = py_buffer:write(B, <<"first ">>),
    Self = self(),
    {Reader, Mon} = spawn_monitor(fun() -> Self ! {read, py:call(Ctx, '__main__', read_all, [B])} end),
    ok = py_context:stop(Ctx),
    receive {read, R} -> {error, _} = R end,
    receive {'DOWN', Mon, process, Reader, normal} -> ok end,
    receive {read, Extra} -> ct:fail({second_reply, Extra}) after 0 -> ok end,
    ok = py_buffer:write(B, <<"second">>),
    ok = py_buffer:close(B),
    Other = context(Config),
    %% an interrupted read(-1) claimed nothing: it takes its bytes only at the end of data
    {ok, <<"first second">>} = py:call(Other, '__main__', read_all, [B]).

%% PyBuffer._test_create(data) (4.x's name): a buffer holding a copy of data, at EOF, made in
%% Python with no Erlang writer: the same reads as a py_buffer's; not bytes-like input is a
%% TypeError.
made_in_python(Config) ->
    Ctx = context(Config),
    ok = py:exec(Ctx, <<"b = erlang.PyBuffer._test_create(bytearray(b'line1\\nline2\\n'))">>),
    {ok, [<<"line1\n">>, <<"line2\n">>]} = py:eval(Ctx, <<"b.readlines()">>),
    {ok, [true, 12, 0]} = py:eval(Ctx, <<"[b.at_eof(), b.tell(), b.seek(0)]">>),
    {ok, <<"line1\nline2\n">>} = py:eval(Ctx, <<"bytes(memoryview(b))">>),
    {ok, [<<>>, true]} = py:eval(Ctx, <<"(lambda e: [e.read(), e.at_eof()])(erlang.PyBuffer._test_create(b''))">>),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"erlang.PyBuffer._test_create('text')">>),
    {error, {'TypeError', _}} = py:eval(Ctx, <<"erlang.PyBuffer()">>),
    ok = py_context:stop(Ctx).

%% Large buffers' memory is kept for reuse once a buffer is gone (shared/block_cache.hpp): each
%% round's buffer lives in a process that exits, so later rounds may get an earlier round's
%% block. Whatever they get, a reader sees exactly the bytes written to its own buffer: a
%% growing buffer keeps its first bytes when it moves into a kept block, a known-length buffer
%% only partly filled shows no earlier round's bytes.
reused_memory_holds_only_new_bytes(Config) ->
    Ctx = context(Config),
    Check = <<"b.read() == bytes([first]) * n1 + bytes([rest]) * n2">>,
    Round = fun(I) ->
                    {Pid, Mon} = spawn_monitor(fun() ->
                        N1 = 100 * 1024 + I,
                        N2 = (3 bsl 20) + I * 4096,
                        {ok, B} = case I rem 2 of
                                      0 -> py_buffer:new();           % grows from 64 KiB
                                      1 -> py_buffer:new(8 bsl 20)   % more than is written
                                  end,
                        ok = py_buffer:write(B, binary:copy(<<I>>, N1)),
                        ok = py_buffer:write(B, binary:copy(<<(I + 100)>>, N2)),
                        ok = py_buffer:close(B),
                        {ok, true} = py:eval(Ctx, Check, #{b => B, first => I, rest => I + 100, n1 => N1, n2 => N2}),
                        exit(checked)
                    end),
                    receive {'DOWN', Mon, process, Pid, Why} -> {I, checked} = {I, Why} end
            end,
    lists:foreach(Round, lists:seq(1, 8)).
