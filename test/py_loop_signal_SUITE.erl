%% @doc loop.add_signal_handler / remove_signal_handler on ErlangEventLoop: OS signals OTP
%% routes (os:set_signal/2) reach the loops that asked, through erl_signal_server's py_signal
%% handler; other signals raise asyncio's errors; a closed loop asks for nothing any more.
%% SIGTERM is only exercised through the handler's path (py_signal:handle_event/2), never sent
%% to the node (OTP's own handler would stop it).
-module(py_loop_signal_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_group/2, end_per_group/2]).
-export([signal_runs_handler/1, refused_signals/1, remove_and_close_unsubscribe/1,
         sigterm_through_handler_path/1, handler_installed/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [handler_installed, refused_signals, remove_and_close_unsubscribe, sigterm_through_handler_path,
          {group, worker}, {group, owngil}].

groups() -> [{worker, [], [signal_runs_handler]}, {owngil, [], [signal_runs_handler]}].

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
                              ('sigchld', int(signal.SIGCHLD), print), ('coroutine', int(signal.SIGUSR2), coro)]:
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
      <<"sigchld">> := <<"RuntimeError">>, <<"coroutine">> := <<"TypeError">>,
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
