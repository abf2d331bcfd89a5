%% py_channel and py_byte_channel: Erlang writes, Python reads (receive, try_receive,
%% async_receive, iteration), backpressure, close races, owners and contexts that go away.
%% Every case runs on a worker context and on an owngil context (skipped below Python 3.13).
-module(py_channel_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_group/2,
         end_per_group/2, init_per_testcase/2, end_per_testcase/2]).
-export([terms_arrive/1, bytes_arrive/1, iterate_until_close/1, send_after_close/1,
         backpressure/1, try_receive_states/1, context_manager/1, blocked_thread_keeps_context_serving/1,
         receive_is_interruptible/1, async_receive_erlang_loop/1, async_receive_context_loop/1,
         async_receive_stock_loop/1, close_race_loses_nothing/1, owner_died/1, context_stopped/1,
         bad_input/1, reply_to_pid/1, pending_interrupt_keeps_message/1,
         concurrent_readers/1, byte_recv_from_erlang/1, send_bytes_from_python/1,
         upstream_callbacks/1, handle_receive_waits/1, channel_ref_returns/1, channel_none/1,
         callback_receive_keeps_timeout/1]).

-define(PY, <<"
import threading, asyncio, erlang
from erlang.channel import Channel, ChannelClosed, reply
from erlang import ByteChannel, ByteChannelClosed

def recv_n(ch, n):
    c = Channel(ch)
    return [c.receive() for _ in range(n)]

def drain(ch):
    return list(Channel(ch))

def drain_bytes(ch):
    return [type(b).__name__ for b in ByteChannel(ch)] + list(ByteChannel(ch))

def bytes_n(ch, n):
    c = ByteChannel(ch)
    return [c.receive_bytes() for _ in range(n)]

def try_states(ch):
    c = Channel(ch)
    out = [c.try_receive()]
    out.append(c.try_receive())
    return out

def try_after_close(ch):
    try:
        Channel(ch).try_receive()
    except ChannelClosed:
        try:
            Channel(ch).receive()
        except ChannelClosed:
            return 'closed'
    return 'not closed'

def with_block(ch):
    with Channel(ch) as c:
        return c.receive()

_thread_state = {}

def start_reader(ch, pid):
    def run():
        c = Channel(ch)
        reply(pid, erlang.atom('reader_waiting'))
        _thread_state['got'] = c.receive()
        reply(pid, (erlang.atom('reader_got'), _thread_state['got']))
    t = threading.Thread(target=run)
    t.start()
    return True

def blocking_receive(ch, pid):
    reply(pid, erlang.atom('blocking'))
    return Channel(ch).receive()

async def _reader(ch, pid):
    c = Channel(ch)
    ticks = 0
    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            if ticks == 3:
                reply(pid, erlang.atom('ticked'))
            await asyncio.sleep(0.001)
    t = asyncio.ensure_future(ticker())
    got = [m async for m in c]
    t.cancel()
    return (got, ticks >= 3)

def read_on_erlang_loop(ch, pid):
    return erlang.run(_reader(ch, pid))

def read_on_stock_loop(ch, pid):
    return asyncio.run(_reader(ch, pid))

async def read_on_context_loop(ch, pid):
    return await _reader(ch, pid)

def pop_with_pending_interrupt(ch):
    # Raises KeyboardInterrupt on this thread and pops in the same C-level sequence (no bytecode
    # in between): the pending interrupt must send the message back to the queue.
    import ctypes, functools, operator
    ref = Channel(ch)._ref
    raise_it = functools.partial(ctypes.pythonapi.PyThreadState_SetAsyncExc,
                                 ctypes.c_ulong(threading.get_ident()), ctypes.py_object(KeyboardInterrupt))
    try:
        got = list(map(operator.call, [raise_it, functools.partial(ref._pop, 0.0)]))
        return ('not interrupted', got)
    except KeyboardInterrupt:
        return ref._info()['length']

def read_in_threads(ch, nthreads):
    # nthreads Python threads read one channel at once; returns every message read, sorted
    c = Channel(ch)
    got = [[] for _ in range(nthreads)]
    def run(i):
        for m in c:
            got[i].append(m)
    ts = [threading.Thread(target=run, args=(i,)) for i in range(nthreads)]
    for t in ts: t.start()
    for t in ts: t.join()
    return sorted(m for part in got for m in part)

_kept = {}
def keep(ch):
    _kept['ch'] = Channel(ch)
    return True

def send_all(ch, chunks):
    c = ByteChannel(ch)
    return [c.send_bytes(x) for x in chunks]

def send_outcome(ch, data):
    try:
        return ByteChannel(ch).send_bytes(data)
    except erlang.channel.ChannelBusy as e:
        return ('busy', isinstance(e, RuntimeError))
    except ByteChannelClosed:
        return 'closed'
    except TypeError:
        return 'TypeError'

def send_from_thread(ch, n):
    def run():
        c = ByteChannel(ch)
        for i in range(n):
            c.send_bytes(b'%d' % i)
    t = threading.Thread(target=run)
    t.start()
    t.join()
    return True

def via_callbacks(ch, b):
    # erlang_python 4.1's callback names (py_channel:register_callbacks/0 and
    # py_byte_channel:register_callbacks/0)
    return [erlang.call('_py_channel_info', ch),
            erlang.call('_py_channel_try_receive', ch),
            erlang.call('_py_channel_receive', ch),
            erlang.call('_py_channel_try_receive', ch),
            erlang.call('_py_byte_channel_try_receive', b),
            erlang.call('_py_byte_channel_receive', b),
            erlang.call('_py_byte_channel_try_receive', b)]

_cb = {}

def receive_via_callback(name, ch, idle):
    try:
        _cb['got'] = erlang.call(name, ch)
    except BaseException as e:  # the cancel may come before erlang.call has returned
        _cb['got'] = type(e).__name__
        raise
    Channel(idle).receive()  # nothing comes: runs until the request is cancelled

def refs_back(ch):
    kept = Channel(ch)
    return [ch, (ch, [ch]), {'k': ch}, kept._ref]

def none_channel():
    c = Channel(None)
    out = [hasattr(c, '_is_closed'), c.__aiter__() is c, hasattr(c, '__anext__')]
    for use in (c.receive, c.try_receive, c.info, c.close, lambda: list(c)):
        try:
            use()
            out.append('no error')
        except TypeError:
            out.append('TypeError')
    return out

def channel_arg_type(x):
    try:
        Channel(x)
    except TypeError:
        return 'TypeError'
    return 'accepted'
">>).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [{group, worker}, {group, owngil}].

cases() ->
    [terms_arrive, bytes_arrive, iterate_until_close, send_after_close, backpressure,
     try_receive_states, context_manager, blocked_thread_keeps_context_serving,
     receive_is_interruptible, async_receive_erlang_loop, async_receive_context_loop,
     async_receive_stock_loop, close_race_loses_nothing, owner_died, context_stopped, bad_input,
     reply_to_pid, pending_interrupt_keeps_message, concurrent_readers,
     byte_recv_from_erlang, send_bytes_from_python, upstream_callbacks, handle_receive_waits,
     channel_ref_returns, channel_none, callback_receive_keeps_timeout].

groups() -> [{worker, [], cases()}, {owngil, [], cases()}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) -> ok.

init_per_group(Mode, Config) ->
    py_test_util:mode_group(Mode, Config).

end_per_group(_Mode, _Config) -> ok.

%% A context per case, owned by the case's process.
init_per_testcase(_Case, Config) ->
    {ok, Ctx} = py_context:new(#{mode => ?config(mode, Config)}),
    ok = py:exec(Ctx, ?PY),
    [{ctx, Ctx} | Config].

end_per_testcase(_Case, Config) ->
    catch py_context:stop(?config(ctx, Config)),
    ok.

call(Config, F, Args) -> py:call(?config(ctx, Config), '__main__', F, Args).

%% --- cases -----------------------------------------------------------------------------------

terms_arrive(Config) ->
    {ok, Ch} = py_channel:new(),
    Terms = [{request, <<"data">>, 1}, [1, 2, 3], #{<<"k">> => 2.5}, 1 bsl 70, <<255, 0>>],
    [ok = py_channel:send(Ch, T) || T <- Terms],
    #{size := Size, max_size := 0, closed := false} = py_channel:info(Ch),
    true = Size > 0,
    {ok, [{<<"request">>, <<"data">>, 1}, [1, 2, 3], #{<<"k">> := 2.5}, Big, <<255, 0>>]} =
        call(Config, recv_n, [Ch, 5]),
    Big = 1 bsl 70,
    #{size := 0} = py_channel:info(Ch).

bytes_arrive(Config) ->
    {ok, Ch} = py_byte_channel:new(),
    ok = py_byte_channel:send(Ch, <<"text">>),
    ok = py_byte_channel:send(Ch, binary:copy(<<7>>, 100000)),
    {ok, [<<"text">>, Big]} = call(Config, bytes_n, [Ch, 2]),
    100000 = byte_size(Big),
    ok = py_byte_channel:send(Ch, <<"a">>),
    ok = py_byte_channel:close(Ch),
    %% every message is bytes, also valid UTF-8
    {ok, [<<"bytes">>]} = call(Config, drain_bytes, [Ch]),
    {error, closed} = py_byte_channel:send(Ch, <<"late">>),
    {error, closed} = py_byte_channel:try_receive(Ch).

iterate_until_close(Config) ->
    {ok, Ch} = py_channel:new(),
    [ok = py_channel:send(Ch, N) || N <- lists:seq(1, 1000)],
    ok = py_channel:close(Ch),
    Expected = lists:seq(1, 1000),
    {ok, Expected} = call(Config, drain, [Ch]),
    {ok, []} = call(Config, drain, [Ch]).

send_after_close(_Config) ->
    {ok, Ch} = py_channel:new(),
    ok = py_channel:close(Ch),
    ok = py_channel:close(Ch),
    {error, closed} = py_channel:send(Ch, x),
    #{closed := true, size := 0} = py_channel:info(Ch).

backpressure(Config) ->
    {ok, Ch} = py_channel:new(#{max_size => 200}),
    Payload = binary:copy(<<1>>, 50),
    Results = [py_channel:send(Ch, Payload) || _ <- lists:seq(1, 10)],
    Ok = length([ok || ok <- Results]),
    true = Ok >= 1 andalso Ok < 10,
    busy = lists:last(Results),
    #{size := Size, max_size := 200} = py_channel:info(Ch),
    true = Size =< 200,
    %% a message larger than max_size passes when the queue is empty
    {ok, Got} = call(Config, recv_n, [Ch, Ok]),
    Ok = length(Got),
    ok = py_channel:send(Ch, binary:copy(<<1>>, 1000)),
    busy = py_channel:send(Ch, x),
    {ok, [_]} = call(Config, recv_n, [Ch, 1]),
    ok = py_channel:send(Ch, x),
    %% byte channels count binary bytes
    {ok, B} = py_byte_channel:new(#{max_size => 10}),
    ok = py_byte_channel:send(B, <<"12345678">>),
    busy = py_byte_channel:send(B, <<"123">>),
    ok = py_byte_channel:send(B, <<"12">>),
    #{size := 10} = py_byte_channel:info(B).

try_receive_states(Config) ->
    {ok, Ch} = py_channel:new(),
    {ok, [none, none]} = call(Config, try_states, [Ch]),
    ok = py_channel:send(Ch, 1),
    {ok, [1, none]} = call(Config, try_states, [Ch]),
    ok = py_channel:close(Ch),
    {ok, <<"closed">>} = call(Config, try_after_close, [Ch]).

context_manager(Config) ->
    {ok, Ch} = py_channel:new(),
    ok = py_channel:send(Ch, 42),
    {ok, 42} = call(Config, with_block, [Ch]),
    {error, closed} = py_channel:send(Ch, 43).

%% A threading.Thread blocked in receive() releases the GIL: the context answers other
%% requests, callbacks and timeouts meanwhile.
blocked_thread_keeps_context_serving(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Ch} = py_channel:new(),
    {ok, true} = call(Config, start_reader, [Ch, self()]),
    receive reader_waiting -> ok after 5000 -> ct:fail(reader_not_started) end,
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    ok = py:register_function(chan_suite_double, fun([X]) -> 2 * X end),
    {ok, 14} = py:eval(Ctx, <<"erlang.call('chan_suite_double', 7)">>, #{}),
    {error, timeout} = py:call(Ctx, time, sleep, [2], #{timeout => 50}),
    {ok, 9.0} = py:call(Ctx, math, sqrt, [81]),
    [] = [M || {reader_got, _} = M <- py_test_util:flush()],
    ok = py_channel:send(Ch, <<"wake">>),
    receive {reader_got, <<"wake">>} -> ok after 5000 -> ct:fail(reader_not_woken) end,
    py:unregister_function(chan_suite_double).

%% A receive() in a request whose caller gives up ends (erlang.Interrupted between wait slices)
%% without taking a message; the context keeps serving.
receive_is_interruptible(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Ch} = py_channel:new(),
    ok = timed_out_while_blocking(Ctx, Ch, 100),
    {ok, 2.0} = py:call(Ctx, math, sqrt, [4]),
    ok = py_channel:send(Ch, kept),
    {ok, [<<"kept">>]} = call(Config, recv_n, [Ch, 1]).

%% A call that times out while its receive() blocks. A call that timed out still queued (a loaded
%% machine) never ran its code: tried again with twice the timeout, for about 30 s at most.
timed_out_while_blocking(_Ctx, _Ch, Timeout) when Timeout > 16000 ->
    ct:fail(never_blocking);
timed_out_while_blocking(Ctx, Ch, Timeout) ->
    {error, timeout} = py:call(Ctx, '__main__', blocking_receive, [Ch, self()], #{timeout => Timeout}),
    receive
        blocking -> ok
    after 1000 -> timed_out_while_blocking(Ctx, Ch, Timeout * 2)
    end.

async_receive_erlang_loop(Config) -> async_case(Config, read_on_erlang_loop).

async_receive_stock_loop(Config) -> async_case(Config, read_on_stock_loop).

%% On the context's own loop (py_event_loop tasks).
async_receive_context_loop(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Ch} = py_channel:new(),
    Self = self(),
    Ref = py_event_loop:create_task_on(Ctx, '__main__', read_on_context_loop, [Ch, Self]),
    receive ticked -> ok after 5000 -> ct:fail(no_ticks) end,
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    [ok = py_channel:send(Ch, N) || N <- lists:seq(1, 50)],
    ok = py_channel:close(Ch),
    Expected = lists:seq(1, 50),
    {ok, {Expected, true}} = py_event_loop:await(Ref, 10000).

%% The coroutine reads while another task ticks; Erlang sends only once the ticker ran, so
%% the reader had to wait on the loop without blocking it.
async_case(Config, Reader) ->
    {ok, Ch} = py_channel:new(),
    Self = self(),
    Writer = spawn_link(fun() ->
                                receive go -> ok end,
                                [ok = py_channel:send(Ch, N) || N <- lists:seq(1, 200)],
                                ok = py_channel:close(Ch)
                        end),
    Relay = spawn_link(fun() -> receive ticked -> Writer ! go, Self ! relayed end end),
    Expected = lists:seq(1, 200),
    {ok, {Expected, true}} = call(Config, Reader, [Ch, Relay]),
    receive relayed -> ok after 1000 -> ct:fail(no_relay) end.

%% An Erlang writer racing close/1 against a Python reader: everything sent before the close
%% is read, in order, whatever the interleaving.
close_race_loses_nothing(Config) ->
    lists:foreach(
      fun(Round) ->
              {ok, Ch} = py_channel:new(),
              N = 500 + Round * 97,
              Self = self(),
              spawn_link(fun() ->
                                 [ok = py_channel:send(Ch, I) || I <- lists:seq(1, N)],
                                 ok = py_channel:close(Ch),
                                 {error, closed} = py_channel:send(Ch, late),
                                 Self ! {sent, Round}
                         end),
              Expected = lists:seq(1, N),
              {ok, Expected} = call(Config, drain, [Ch]),
              receive {sent, Round} -> ok after 5000 -> ct:fail(writer_stuck) end
      end, lists:seq(1, 5)),
    ok.

%% A channel outlives the process that made it: what it queued is still read.
owner_died(Config) ->
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       {ok, Ch} = py_channel:new(),
                                       [ok = py_channel:send(Ch, N) || N <- [1, 2, 3]],
                                       Self ! {channel, Ch}
                               end),
    Ch = receive {channel, C} -> C after 5000 -> ct:fail(no_channel) end,
    receive {'DOWN', Mon, process, Pid, normal} -> ok end,
    ok = py_channel:send(Ch, 4),
    ok = py_channel:close(Ch),
    {ok, [1, 2, 3, 4]} = call(Config, drain, [Ch]).

%% A context that held the channel, and was blocked in receive() until interrupted, stops; the
%% channel keeps working for Erlang and for another context.
context_stopped(Config) ->
    Mode = ?config(mode, Config),
    {ok, Ctx} = py_context:new(#{mode => Mode}),
    ok = py:exec(Ctx, ?PY),
    {ok, Ch} = py_channel:new(),
    {ok, true} = py:call(Ctx, '__main__', keep, [Ch]),
    Self = self(),
    Caller = spawn(fun() -> Self ! {blocked_result, py:call(Ctx, '__main__', blocking_receive, [Ch, Self])} end),
    receive blocking -> ok after 5000 -> ct:fail(not_blocking) end,
    %% stop/1 waits for running code, as for any blocking call: py_context:interrupt/1 ends
    %% the receive() within one wait slice
    ok = py_context:interrupt(Ctx),
    ok = py_context:stop(Ctx),
    receive {blocked_result, {error, _}} -> ok after 10000 -> ct:fail({no_reply, Caller}) end,
    ok = py_channel:send(Ch, after_stop),
    #{closed := false} = py_channel:info(Ch),
    ok = py_channel:close(Ch),
    {ok, [<<"after_stop">>]} = call(Config, drain, [Ch]).

bad_input(Config) ->
    {'EXIT', {badarg, _}} = (catch py_channel:send(make_ref(), x)),
    {'EXIT', {badarg, _}} = (catch py_channel:info(not_a_channel)),
    {'EXIT', {badarg, _}} = (catch py_channel:close(self())),
    {'EXIT', {badarg, _}} = (catch py_channel:new(#{max_size => -1})),
    {'EXIT', {function_clause, _}} = (catch py_channel:new(not_a_map)),
    {ok, B} = py_byte_channel:new(),
    {'EXIT', {function_clause, _}} = (catch py_byte_channel:send(B, not_a_binary)),
    {'EXIT', {badarg, _}} = (catch py_channel:send(B, not_a_binary)),
    {ok, <<"TypeError">>} = call(Config, channel_arg_type, [42]),
    {ok, <<"accepted">>} = call(Config, channel_arg_type, [B]),
    {ok, 1.0} = py:call(?config(ctx, Config), math, sqrt, [1]).

reply_to_pid(Config) ->
    {ok, Ch} = py_channel:new(),
    ok = py_channel:send(Ch, {request, self(), <<"compute">>}),
    ok = py_channel:close(Ch),
    ok = py:exec(?config(ctx, Config), <<"
def serve(ch):
    for msg in Channel(ch):
        _, pid, data = msg
        reply(pid, ('response', data.upper()))
    return 'done'
">>),
    {ok, <<"done">>} = call(Config, serve, [Ch]),
    receive {<<"response">>, <<"COMPUTE">>} -> ok after 5000 -> ct:fail(no_reply) end.

%% A message popped while an interrupt is pending on the reading thread goes back to the queue.
pending_interrupt_keeps_message(Config) ->
    {ok, Ch} = py_channel:new(),
    ok = py_channel:send(Ch, first),
    ok = py_channel:send(Ch, second),
    {ok, 2} = call(Config, pop_with_pending_interrupt, [Ch]),
    ok = py_channel:close(Ch),
    {ok, [<<"first">>, <<"second">>]} = call(Config, drain, [Ch]).

%% Three Python threads of this context and a second context read one channel while a writer
%% sends: every message is read exactly once.
concurrent_readers(Config) ->
    {ok, Other} = py_context:new(#{mode => ?config(mode, Config)}),
    ok = py:exec(Other, ?PY),
    {ok, Ch} = py_channel:new(),
    N = 20000,
    Self = self(),
    spawn_link(fun() ->
                       [ok = py_channel:send(Ch, {I, <<"payload">>}) || I <- lists:seq(1, N)],
                       ok = py_channel:close(Ch)
               end),
    spawn_link(fun() -> Self ! {other, py:call(Other, '__main__', read_in_threads, [Ch, 1])} end),
    {ok, Mine} = call(Config, read_in_threads, [Ch, 3]),
    Theirs = receive {other, {ok, T}} -> T after 60000 -> ct:fail(other_reader_stuck) end,
    ok = py_context:stop(Other),
    Expected = [{I, <<"payload">>} || I <- lists:seq(1, N)],
    Expected = lists:merge(Mine, Theirs).

%% py_byte_channel:recv/1,2: an Erlang process waits in a receive for the next binary or the close.
byte_recv_from_erlang(_Config) ->
    {ok, B} = py_byte_channel:new(),
    {error, timeout} = py_byte_channel:recv(B, 20),
    [] = py_test_util:flush(),
    Self = self(),
    Waiting = fun(Pid) -> fun() -> process_info(Pid, status) =:= {status, waiting} end end,
    P1 = spawn_link(fun() -> Self ! {got, py_byte_channel:recv(B)} end),
    true = py_test_util:wait_until(Waiting(P1), 5000),
    ok = py_byte_channel:send(B, <<"one">>),
    receive {got, {ok, <<"one">>}} -> ok after 5000 -> ct:fail(no_recv) end,
    P2 = spawn_link(fun() -> Self ! {got, py_byte_channel:recv(B, 10000)} end),
    true = py_test_util:wait_until(Waiting(P2), 5000),
    ok = py_byte_channel:close(B),
    receive {got, {error, closed}} -> ok after 5000 -> ct:fail(no_closed) end,
    {error, closed} = py_byte_channel:recv(B, 0),
    [] = py_test_util:flush().

%% ByteChannel.send_bytes: Python writes, Erlang (recv/try_receive) and Python (receive_bytes)
%% read; bytes-like objects of any kind; a full channel raises ChannelBusy (a RuntimeError), a
%% closed one ByteChannelClosed; a str or a term channel is a TypeError. ({bytes, Bin}: a
%% binary that arrives as bytes even when it is valid UTF-8.)
send_bytes_from_python(Config) ->
    {ok, B} = py_byte_channel:new(),
    Self = self(),
    Reader = spawn_link(fun() -> Self ! {got, py_byte_channel:recv(B, 10000)} end),
    true = py_test_util:wait_until(fun() -> process_info(Reader, status) =:= {status, waiting} end, 5000),
    {ok, [true, true, true]} = call(Config, send_all, [B, [{bytes, <<"one">>}, {bytes, <<"two">>}, {bytes, <<"three">>}]]),
    receive {got, {ok, <<"one">>}} -> ok after 10000 -> ct:fail(no_recv) end,
    {ok, <<"two">>} = py_byte_channel:try_receive(B),
    {ok, <<"three">>} = py_byte_channel:try_receive(B),
    {error, empty} = py_byte_channel:try_receive(B),
    {ok, true} = py:eval(?config(ctx, Config), <<"erlang.ByteChannel(c).send_bytes(b'whole')">>, #{c => B}),
    {ok, true} = py:eval(?config(ctx, Config), <<"erlang.ByteChannel(c).send_bytes(memoryview(b'view')[1:])">>, #{c => B}),
    {ok, true} = py:eval(?config(ctx, Config), <<"erlang.ByteChannel(c).send_bytes(bytearray(1000))">>, #{c => B}),
    {ok, <<"whole">>} = py_byte_channel:recv(B, 5000),
    {ok, <<"iew">>} = py_byte_channel:try_receive(B),
    {ok, Zeros} = py_byte_channel:recv(B),
    Zeros = <<0:8000>>,
    %% Python to Python, also from a thread of its own
    {ok, true} = call(Config, send_from_thread, [B, 50]),
    {ok, Got} = call(Config, bytes_n, [B, 50]),
    Got = [integer_to_binary(I) || I <- lists:seq(0, 49)],
    {ok, <<"TypeError">>} = py:eval(?config(ctx, Config), <<"send_outcome(c, 'str')">>, #{c => B}),
    {ok, <<"TypeError">>} = py:eval(?config(ctx, Config), <<"send_outcome(c, 42)">>, #{c => B}),
    {ok, Small} = py_byte_channel:new(#{max_size => 8}),
    {ok, true} = call(Config, send_outcome, [Small, {bytes, <<"12345678">>}]),
    {ok, {<<"busy">>, true}} = call(Config, send_outcome, [Small, {bytes, <<"9">>}]),
    {ok, <<"12345678">>} = py_byte_channel:recv(Small, 5000),
    {ok, true} = call(Config, send_outcome, [Small, {bytes, <<"9">>}]),
    ok = py_byte_channel:close(Small),
    {ok, <<"closed">>} = call(Config, send_outcome, [Small, {bytes, <<"late">>}]),
    {ok, <<"9">>} = py_byte_channel:recv(Small, 5000),
    {error, closed} = py_byte_channel:recv(Small, 0),
    {ok, Terms} = py_channel:new(),
    {error, {'TypeError', _}} =
        py:eval(?config(ctx, Config), <<"erlang.ByteChannel(c).send_bytes(b'x')">>, #{c => Terms}),
    [] = py_test_util:flush().

%% erlang_python 4.1's py_channel:register_callbacks/0 and py_byte_channel:register_callbacks/0
%% (idempotent) make its callback names callable from Python with 4.1's results.
upstream_callbacks(Config) ->
    ok = py_channel:register_callbacks(),
    ok = py_channel:register_callbacks(),
    ok = py_byte_channel:register_callbacks(),
    {ok, Ch} = py_channel:new(#{max_size => 1000}),
    {ok, B} = py_byte_channel:new(),
    [ok = py_channel:send(Ch, T) || T <- [{a, 1}, <<"second">>]],
    [ok = py_byte_channel:send(B, X) || X <- [<<"x">>, <<"y">>]],
    {ok, [#{<<"size">> := Size, <<"max_size">> := 1000, <<"closed">> := false},
          {<<"ok">>, {<<"a">>, 1}}, {<<"ok">>, <<"second">>}, {<<"error">>, <<"empty">>},
          {<<"ok">>, <<"x">>}, {<<"ok">>, <<"y">>}, {<<"error">>, <<"empty">>}]} =
        call(Config, via_callbacks, [Ch, B]),
    true = Size > 0,
    ok = py_channel:close(Ch),
    {error, closed} = py_channel:handle_try_receive([Ch]),
    #{closed := true} = py_channel:handle_info([Ch]),
    {error, empty} = py_byte_channel:handle_try_receive_bytes([B]),
    {'EXIT', {function_clause, _}} = (catch py_channel:handle_receive(Ch)),
    {'EXIT', {badarg, _}} = (catch py_channel:handle_receive([not_a_channel])),
    ok.

%% py_channel:handle_receive/1 and py_byte_channel:handle_receive_bytes/1 wait in the caller's
%% receive: several waiters at once each get one message; a close wakes the rest with
%% {error, closed}; nothing is left in their mailboxes.
handle_receive_waits(_Config) ->
    {ok, Ch} = py_channel:new(),
    {ok, B} = py_byte_channel:new(),
    Self = self(),
    Wait = fun(F) ->
               Pid = spawn_link(fun() -> R = F(), Self ! {got, self(), R, py_test_util:flush()} end),
               true = py_test_util:wait_until(fun() -> process_info(Pid, status) =:= {status, waiting} end, 5000),
               Pid
           end,
    Terms = [Wait(fun() -> py_channel:handle_receive([Ch]) end) || _ <- [1, 2, 3]],
    B1 = Wait(fun() -> py_byte_channel:handle_receive_bytes([B]) end),
    ok = py_channel:send(Ch, {one}),
    ok = py_channel:send(Ch, {two}),
    ok = py_byte_channel:send(B, <<"bytes">>),
    receive {got, B1, {ok, <<"bytes">>}, []} -> ok after 10000 -> ct:fail(no_bytes) end,
    Take = fun() ->
               receive {got, P, R, []} -> true = lists:member(P, Terms), {P, R}
               after 10000 -> ct:fail(no_term)
               end
           end,
    {P1, {ok, M1}} = Take(),
    {P2, {ok, M2}} = Take(),
    [{one}, {two}] = lists:sort([M1, M2]),
    [Last] = Terms -- [P1, P2],
    true = is_process_alive(Last),
    ok = py_channel:close(Ch),
    {Last, {error, closed}} = Take(),
    {error, closed} = py_channel:handle_receive([Ch]),
    ok = py_byte_channel:close(B),
    {error, closed} = py_byte_channel:handle_receive_bytes([B]),
    [] = py_test_util:flush().

%% An erlang.ChannelRef that Python returns, alone or in a container, is the channel's own
%% reference again (4.1 gave back its capsule's channel the same way).
channel_ref_returns(Config) ->
    {ok, Ch} = py_channel:new(),
    {ok, [Ch, {Ch, [Ch]}, #{<<"k">> := Ch}, Ch]} = call(Config, refs_back, [Ch]),
    {ok, Ch} = py:eval(?config(ctx, Config), <<"c">>, #{c => Ch}),
    {ok, Back} = py:eval(?config(ctx, Config), <<"c">>, #{c => Ch}),
    ok = py_channel:send(Back, <<"through the returned reference">>),
    {ok, <<"through the returned reference">>} = py_channel:handle_try_receive([Ch]),
    {ok, B} = py_byte_channel:new(),
    {ok, B} = py:eval(?config(ctx, Config), <<"c">>, #{c => B}),
    #{closed := false} = py_byte_channel:info(B).

%% Channel(None) is accepted, as in 4.1; every use of it raises TypeError.
channel_none(Config) ->
    {ok, [true, true, true, <<"TypeError">>, <<"TypeError">>, <<"TypeError">>, <<"TypeError">>,
          <<"TypeError">>]} = call(Config, none_channel, []),
    {ok, <<"TypeError">>} = call(Config, channel_arg_type, [42]).

%% 4.1's receive callbacks, run from Python, wait no longer than the request that asked for
%% them may run: at its deadline they give Python ('error', 'timeout') (or the cancel reaches
%% erlang.call first) and the request ends with {error, timeout}; the context serves the next
%% request and the channel keeps its messages for later readers. (Waiting with no limit, the
%% first eval would never return.)
callback_receive_keeps_timeout(Config) ->
    ok = py_channel:register_callbacks(),
    ok = py_byte_channel:register_callbacks(),
    Ctx = ?config(ctx, Config),
    {ok, Ch} = py_channel:new(),
    {ok, B} = py_byte_channel:new(),
    {ok, Idle} = py_channel:new(),
    [begin
         {error, timeout} = py_context:eval(Ctx, <<"receive_via_callback(n, ch, idle)">>,
                                            #{n => Name, ch => C, idle => Idle}, 300),
         {ok, Got} = py:eval(Ctx, <<"_cb.pop('got')">>),
         true = lists:member(Got, [{<<"error">>, <<"timeout">>}, <<"TimeoutError">>, <<"Interrupted">>])
     end || {Name, C} <- [{<<"_py_channel_receive">>, Ch}, {<<"_py_byte_channel_receive">>, B}]],
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    ok = py_channel:send(Ch, later),
    ok = py_byte_channel:send(B, <<"later">>),
    {ok, {<<"ok">>, <<"later">>}} = py:eval(Ctx, <<"erlang.call('_py_channel_receive', ch)">>, #{ch => Ch}),
    {ok, {<<"ok">>, <<"later">>}} = py:eval(Ctx, <<"erlang.call('_py_byte_channel_receive', b)">>, #{b => B}),
    [] = py_test_util:flush().

