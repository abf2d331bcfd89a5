%% @doc loop.add_signal_handler / remove_signal_handler on ErlangEventLoop: OS signals OTP
%% routes (os:set_signal/2) reach the loops that asked, through erl_signal_server's py_signal
%% handler; other signals raise asyncio's errors; a closed loop asks for nothing any more.
%% SIGCHLD, which OTP leaves to the BEAM, is caught by the library's own handler while a loop
%% asks for it (c_src/aio/child_signal.hpp): it reaches every loop that asked, asyncio's child
%% watchers get their children's exit codes, the disposition found before is put back (and
%% chained while ours is installed), and the node's own external programs are unaffected.
%% SIGTERM is only exercised through the handler's path (py_signal:handle_event/2), never sent
%% to the node (OTP's own handler would stop it).
-module(py_loop_signal_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_group/2, end_per_group/2]).
-export([signal_runs_handler/1, refused_signals/1, remove_and_close_unsubscribe/1,
         sigterm_through_handler_path/1, handler_installed/1, sigchld_runs_handler/1,
         sigchld_child_watcher/1, sigchld_hosted_loop/1, sigchld_handler_only_while_asked/1,
         sigchld_restores_ignore/1, sigchld_chains_previous_handler/1, sigchld_several_contexts/1,
         sigchld_many_children/1]).
%% A gen_event handler of erl_signal_server that forwards the signals it sees to a process.
-export([init/1, handle_event/2, handle_call/2]).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [handler_installed, refused_signals, remove_and_close_unsubscribe, sigterm_through_handler_path,
          sigchld_hosted_loop, sigchld_handler_only_while_asked, sigchld_restores_ignore,
          sigchld_chains_previous_handler, sigchld_several_contexts, sigchld_many_children,
          {group, worker}, {group, owngil}].

groups() ->
    Cases = [signal_runs_handler, sigchld_runs_handler, sigchld_child_watcher],
    [{worker, [], Cases}, {owngil, [], Cases}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    Config.

end_per_suite(_Config) ->
    application:stop(erlang_python).

init_per_group(Mode, Config) -> py_test_util:mode_group(Mode, Config).
end_per_group(_, _Config) -> ok.

-define(CODE, <<"
import asyncio, os, signal, erlang

async def _wait_signal(sig, send_self):
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    loop.add_signal_handler(sig, lambda tag: got.done() or got.set_result(tag), 'handled')
    if send_self:
        os.kill(os.getpid(), sig)
    return await asyncio.wait_for(got, 60)

def wait_signal(sig, send_self):
    return erlang.run(_wait_signal(sig, send_self))

async def _wait_sigterm(notify):
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, got.set_result, 'graceful')
    erlang.send(notify, erlang.atom('ready'))
    return await asyncio.wait_for(got, 60)

def wait_sigterm(notify):
    return erlang.run(_wait_sigterm(notify))

def refused():
    async def coro():
        pass
    out = {}
    async def main():
        loop = asyncio.get_running_loop()
        for name, sig, cb in [('str', 'x', print), ('zero', 0, print), ('huge', 100000, print),
                              ('sigint', int(signal.SIGINT), print), ('sigkill', int(signal.SIGKILL), print),
                              ('sigsegv', int(signal.SIGSEGV), print), ('coroutine', int(signal.SIGUSR2), coro)]:
            try:
                loop.add_signal_handler(sig, cb)
                out[name] = 'accepted'
            except Exception as e:
                out[name] = type(e).__name__
        out['remove_unknown'] = loop.remove_signal_handler(int(signal.SIGHUP))
    erlang.run(main())
    return out

_loops = []

def subscribe(sig):
    loop = erlang.new_event_loop()
    loop.add_signal_handler(sig, print)
    _loops.append(loop)

def remove_last(sig):
    return _loops[-1].remove_signal_handler(sig)

def close_last():
    _loops.pop().close()

# --- SIGCHLD ---
import ctypes, subprocess, warnings
_libc = ctypes.CDLL(None, use_errno=True)
_libc.signal.restype = ctypes.c_void_p
_libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]

def disposition():
    # the OS's own disposition of SIGCHLD (sa_handler is the first field of struct sigaction)
    buf = ctypes.create_string_buffer(512)
    if _libc.sigaction(int(signal.SIGCHLD), None, buf) != 0:
        raise OSError(ctypes.get_errno(), 'sigaction')
    handler = ctypes.c_void_p.from_buffer(buf).value or 0
    return {0: 'default', 1: 'ignore'}.get(handler, 'handler')

def set_ignored(ignored):
    _libc.signal(int(signal.SIGCHLD), 1 if ignored else 0)

def held_child(code):
    # a child that exits with code once its stdin is closed (so its SIGCHLD comes after)
    return subprocess.Popen(['/bin/sh', '-c', f'read line; exit {code}'], stdin=subprocess.PIPE)

async def _child_signal(code):
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGCHLD, lambda tag: got.done() or got.set_result(tag), 'chld')
    child = held_child(code)
    child.stdin.close()
    tag = await asyncio.wait_for(got, 60)
    removed = loop.remove_signal_handler(signal.SIGCHLD)
    return (tag, child.wait(), removed)

def child_signal(code):
    return erlang.run(_child_signal(code))

async def watched_child(code):
    # asyncio's SafeChildWatcher: waitpid() on each SIGCHLD the loop hands it
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        watcher = asyncio.SafeChildWatcher()
    watcher.attach_loop(loop)
    try:
        child = held_child(code)
        watcher.add_child_handler(child.pid, lambda pid, rc: done.done() or done.set_result(rc))
        child.stdin.close()
        return await asyncio.wait_for(done, 60)
    finally:
        watcher.close()

async def watched_children(n):
    # n children ending at once: their signals coalesce, the watcher still reaps each
    loop = asyncio.get_running_loop()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        watcher = asyncio.SafeChildWatcher()
    watcher.attach_loop(loop)
    try:
        futures, children = [], []
        for code in range(n):
            done = loop.create_future()
            child = held_child(code)
            watcher.add_child_handler(child.pid, lambda pid, rc, f=done: f.done() or f.set_result(rc))
            futures.append(done)
            children.append(child)
        for child in children:
            child.stdin.close()
        return await asyncio.wait_for(asyncio.gather(*futures), 90)
    finally:
        watcher.close()

def run_watched_child(code):
    return erlang.run(watched_child(code))

_held = []

def start_held_child():
    _held.append(held_child(0))

def release_held_child():
    child = _held.pop()
    child.stdin.close()
    return child.wait()

_chld_seen = []

def subscribe_chld():
    loop = erlang.new_event_loop()
    loop.add_signal_handler(signal.SIGCHLD, _chld_seen.append, 1)
    _loops.append(loop)

async def _until_chld(code):
    # a loop of its own that waits for a SIGCHLD; the node's other loops asked for it too
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGCHLD, lambda: got.done() or got.set_result(True))
    erlang.send(erlang.atom('py_loop_signal_SUITE_waiter'), erlang.atom('chld_ready'))
    await asyncio.wait_for(got, 60)
    loop.remove_signal_handler(signal.SIGCHLD)
    return code

def until_chld(code):
    return erlang.run(_until_chld(code))
">>).

setup(Ctx) -> ok = py:exec(Ctx, ?CODE).

handler_installed(_Config) ->
    true = lists:member(py_signal, gen_event:which_handlers(erl_signal_server)),
    %% OTP's own handler stays (it still stops the node on SIGTERM).
    true = lists:member(erl_signal_handler, gen_event:which_handlers(erl_signal_server)),
    [sighup, sigquit, sigabrt, sigalrm, sigterm, sigusr1, sigusr2, sigtstp] = py_signal:routable(),
    {error, not_routable} = py_signal:route(sigchld),
    {'EXIT', {badarg, _}} = (catch py_nif:loop_signal(sigint)),
    {'EXIT', {badarg, _}} = (catch py_nif:loop_signal(<<"sigterm">>)),
    ok.

%% A real SIGUSR2, sent by the Python code itself right after add_signal_handler (routed
%% before the call returned), reaches the loop's callback with its arguments.
signal_runs_handler(Config) ->
    {ok, Ctx} = py_context:new(#{mode => ?config(mode, Config)}),
    setup(Ctx),
    {ok, Usr2} = py:eval(Ctx, <<"int(signal.SIGUSR2)">>),
    {ok, <<"handled">>} = py:call(Ctx, '__main__', wait_signal, [Usr2, true], #{timeout => 90000}),
    true = lists:member(sigusr2, py_signal:routed()),
    %% Runner closed the loop: it asks for nothing any more.
    0 = py_nif:loop_signal(sigusr2),
    ok = py_context:stop(Ctx).

refused_signals(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    setup(Ctx),
    {ok, Out} = py:call(Ctx, '__main__', refused, []),
    #{<<"str">> := <<"TypeError">>, <<"zero">> := <<"ValueError">>, <<"huge">> := <<"ValueError">>,
      <<"sigint">> := <<"RuntimeError">>, <<"sigkill">> := <<"RuntimeError">>,
      <<"sigsegv">> := <<"RuntimeError">>, <<"coroutine">> := <<"TypeError">>,
      <<"remove_unknown">> := false} = Out,
    ok = py_context:stop(Ctx).

remove_and_close_unsubscribe(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    setup(Ctx),
    {ok, Hup} = py:eval(Ctx, <<"int(signal.SIGHUP)">>),
    Before = py_nif:loop_signal(sighup),
    {ok, _} = py:call(Ctx, '__main__', subscribe, [Hup]),
    Before1 = Before + 1,
    Before1 = py_nif:loop_signal(sighup),
    {ok, true} = py:call(Ctx, '__main__', remove_last, [Hup]),
    {ok, false} = py:call(Ctx, '__main__', remove_last, [Hup]),
    Before = py_nif:loop_signal(sighup),
    {ok, _} = py:call(Ctx, '__main__', subscribe, [Hup]),
    Before1 = py_nif:loop_signal(sighup),
    {ok, _} = py:call(Ctx, '__main__', close_last, []),
    Before = py_nif:loop_signal(sighup),
    %% A stopped context's loops ask for nothing either.
    {ok, _} = py:call(Ctx, '__main__', subscribe, [Hup]),
    Before1 = py_nif:loop_signal(sighup),
    ok = py_context:stop(Ctx),
    true = py_test_util:wait_until(fun() -> erlang:garbage_collect(), py_nif:loop_signal(sighup) =:= Before end, 30000),
    ok.

%% SIGTERM's graceful path without stopping the node: the loop asks for SIGTERM, and the
%% py_signal handler receives the event as erl_signal_server would hand it over.
sigterm_through_handler_path(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    setup(Ctx),
    Self = self(),
    Caller = spawn_link(fun() -> Self ! {result, py:call(Ctx, '__main__', wait_sigterm, [Self], #{timeout => 90000})} end),
    receive ready -> ok after 60000 -> ct:fail(no_ready) end,
    {ok, undefined} = py_signal:handle_event(sigterm, undefined),
    receive {result, R} -> {ok, <<"graceful">>} = R after 60000 -> ct:fail({no_result, Caller}) end,
    ok = py_context:stop(Ctx).

%% --- SIGCHLD --------------------------------------------------------------------------------

%% A child started after add_signal_handler(SIGCHLD) ends: the loop's callback runs with its
%% arguments, the child's exit status is its own (nobody reaped it), and the node's own
%% external programs (started by erl_child_setup) still report theirs.
sigchld_runs_handler(Config) ->
    {ok, Ctx} = py_context:new(#{mode => ?config(mode, Config)}),
    setup(Ctx),
    {ok, {<<"chld">>, 7, true}} = py:call(Ctx, '__main__', child_signal, [7], #{timeout => 90000}),
    {ok, <<"default">>} = py:call(Ctx, '__main__', disposition, []),
    0 = py_nif:loop_signal(sigchld),
    Port = open_port({spawn, "/bin/sh -c 'exit 5'"}, [exit_status]),
    receive {Port, {exit_status, 5}} -> ok after 60000 -> ct:fail(no_port_exit_status) end,
    ok = py_context:stop(Ctx).

%% asyncio's SafeChildWatcher, attached to the loop (its attach_loop adds the SIGCHLD handler),
%% reaps the child on the signal and reports its exit code.
sigchld_child_watcher(Config) ->
    {ok, Ctx} = py_context:new(#{mode => ?config(mode, Config)}),
    setup(Ctx),
    {ok, 3} = py:call(Ctx, '__main__', run_watched_child, [3], #{timeout => 90000}),
    {ok, 0} = py:call(Ctx, '__main__', run_watched_child, [0], #{timeout => 90000}),
    0 = py_nif:loop_signal(sigchld),
    ok = py_context:stop(Ctx).

%% The same on a context's own (hosted) loop, a task of py_event_loop.
sigchld_hosted_loop(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    setup(Ctx),
    Ref = py_event_loop:create_task_on(Ctx, '__main__', watched_child, [9]),
    {ok, 9} = py_event_loop:await(Ref, 90000),
    ok = py_context:stop(Ctx).

%% The handler is there only while some loop asks: two loops on two contexts, one removes its
%% handler (still there), the other's loop closes (gone); a stopped context's loop counts no more.
sigchld_handler_only_while_asked(_Config) ->
    {ok, A} = py_context:new(#{}),
    {ok, B} = py_context:new(#{}),
    setup(A),
    setup(B),
    {ok, <<"default">>} = py:call(A, '__main__', disposition, []),
    {ok, _} = py:call(A, '__main__', subscribe, [sigchld_number(A)]),
    {ok, <<"handler">>} = py:call(A, '__main__', disposition, []),
    {ok, _} = py:call(B, '__main__', subscribe, [sigchld_number(B)]),
    2 = py_nif:loop_signal(sigchld),
    {ok, true} = py:call(A, '__main__', remove_last, [sigchld_number(A)]),
    1 = py_nif:loop_signal(sigchld),
    {ok, <<"handler">>} = py:call(A, '__main__', disposition, []),
    {ok, _} = py:call(B, '__main__', close_last, []),
    0 = py_nif:loop_signal(sigchld),
    {ok, <<"default">>} = py:call(A, '__main__', disposition, []),
    %% A context stopped with its loop still asking: the handler goes with it.
    {ok, _} = py:call(B, '__main__', subscribe, [sigchld_number(B)]),
    {ok, <<"handler">>} = py:call(A, '__main__', disposition, []),
    ok = py_context:stop(B),
    true = py_test_util:wait_until(fun() -> py_nif:loop_signal(sigchld) =:= 0 end, 30000),
    {ok, <<"default">>} = py:call(A, '__main__', disposition, []),
    ok = py_context:stop(A).

%% A SIGCHLD ignored before the first loop asked is ignored again after the last one.
sigchld_restores_ignore(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    setup(Ctx),
    try
        {ok, _} = py:call(Ctx, '__main__', set_ignored, [true]),
        {ok, <<"ignore">>} = py:call(Ctx, '__main__', disposition, []),
        {ok, _} = py:call(Ctx, '__main__', subscribe, [sigchld_number(Ctx)]),
        {ok, <<"handler">>} = py:call(Ctx, '__main__', disposition, []),
        {ok, _} = py:call(Ctx, '__main__', close_last, []),
        {ok, <<"ignore">>} = py:call(Ctx, '__main__', disposition, [])
    after
        {ok, _} = py:call(Ctx, '__main__', set_ignored, [false])
    end,
    {ok, <<"default">>} = py:call(Ctx, '__main__', disposition, []),
    ok = py_context:stop(Ctx).

%% A handler installed before (here the BEAM's own, os:set_signal(sigchld, handle), which hands
%% the signal to erl_signal_server) still runs while a loop asks for SIGCHLD, and is the one
%% installed again afterwards.
sigchld_chains_previous_handler(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    setup(Ctx),
    ok = os:set_signal(sigchld, handle),
    ok = gen_event:add_handler(erl_signal_server, {?MODULE, chld}, self()),
    try
        {ok, <<"handler">>} = py:call(Ctx, '__main__', disposition, []),
        {ok, {<<"chld">>, 4, true}} = py:call(Ctx, '__main__', child_signal, [4], #{timeout => 90000}),
        receive {signal, sigchld} -> ok after 60000 -> ct:fail(beam_handler_not_chained) end,
        flush_sigchld(),
        %% The BEAM's handler is back: the next child's signal reaches erl_signal_server.
        {ok, _} = py:call(Ctx, '__main__', start_held_child, []),
        {ok, 0} = py:call(Ctx, '__main__', release_held_child, []),
        receive {signal, sigchld} -> ok after 60000 -> ct:fail(beam_handler_not_restored) end
    after
        ok = gen_event:delete_handler(erl_signal_server, {?MODULE, chld}, []),
        ok = os:set_signal(sigchld, default)
    end,
    {ok, <<"default">>} = py:call(Ctx, '__main__', disposition, []),
    ok = py_context:stop(Ctx).

%% One SIGCHLD reaches every loop that asked: two contexts' loops wait for it, a third context
%% starts the child and lets it end.
sigchld_several_contexts(_Config) ->
    Ctxs = [begin {ok, C} = py_context:new(#{}), setup(C), C end || _ <- [1, 2]],
    {ok, Starter} = py_context:new(#{}),
    setup(Starter),
    {ok, _} = py:call(Starter, '__main__', start_held_child, []),
    true = register(py_loop_signal_SUITE_waiter, self()),
    Self = self(),
    try
        [spawn_link(fun() -> Self ! {waited, N, py:call(C, '__main__', until_chld, [N], #{timeout => 90000})} end)
         || {N, C} <- lists:enumerate(Ctxs)],
        [receive chld_ready -> ok after 60000 -> ct:fail(waiter_not_ready) end || _ <- Ctxs]
    after
        unregister(py_loop_signal_SUITE_waiter)
    end,
    {ok, 0} = py:call(Starter, '__main__', release_held_child, []),
    [receive {waited, N, R} -> {ok, N} = R after 90000 -> ct:fail({no_sigchld, N}) end
     || {N, _} <- lists:enumerate(Ctxs)],
    [ok = py_context:stop(C) || C <- [Starter | Ctxs]],
    ok.

%% 30 children end at about the same time: every exit code reaches its callback.
sigchld_many_children(_Config) ->
    {ok, Ctx} = py_context:new(#{}),
    setup(Ctx),
    Codes = lists:seq(0, 29),
    {ok, Codes} = py_context:eval(Ctx, <<"erlang.run(watched_children(30))">>, #{}, 120000),
    0 = py_nif:loop_signal(sigchld),
    ok = py_context:stop(Ctx).

sigchld_number(Ctx) ->
    {ok, N} = py:eval(Ctx, <<"int(signal.SIGCHLD)">>),
    N.

flush_sigchld() ->
    receive {signal, sigchld} -> flush_sigchld() after 0 -> ok end.

%% @private erl_signal_server handler (sigchld_chains_previous_handler).
init(Pid) -> {ok, Pid}.
%% @private
handle_event(Signal, Pid) ->
    Pid ! {signal, Signal},
    {ok, Pid}.
%% @private
handle_call(_, Pid) -> {ok, ok, Pid}.
