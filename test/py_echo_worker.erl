%% @doc One echo server of py_echo_pool: a context (owned by this process) whose worker loop
%% serves asyncio protocols on a py:dup_fd/1 copy of the pool's listening socket. The loop
%% ending ends this process (the supervisor restarts it); terminating it drains first: stop
%% accepting, let the open connections finish (at most 5 s), stop the loop.
-module(py_echo_worker).
-behaviour(gen_server).

-export([start_link/2, context/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-spec start_link(gen_tcp:socket(), py_context:mode()) -> {ok, pid()} | {error, term()}.
start_link(LSock, Mode) ->
    gen_server:start_link(?MODULE, {LSock, Mode}, []).

-spec context(pid()) -> py_context:context().
context(Worker) ->
    gen_server:call(Worker, context).

%% The Python side. `hold' is kept unanswered (a request in progress), `raise' makes
%% data_received raise; anything else is echoed after the version.
code(Version) -> <<"
import asyncio, erlang
VERSION = b'", Version/binary, "'
CONNS = set()
HELD = []
SERVER = None

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        CONNS.add(self)
    def connection_lost(self, exc):
        CONNS.discard(self)
    def data_received(self, data):
        if data == b'raise':
            raise RuntimeError('a protocol that raises')
        if data == b'hold':
            HELD.append(self)
            return
        self.transport.write(VERSION + b' ' + data)

async def serve(fd):
    global SERVER
    SERVER = await erlang.server.serve(fd, Echo)
    return 'serving'

async def unserve():
    await erlang.server.stop_serving(SERVER)
    return True
">>.

-spec init({gen_tcp:socket(), py_context:mode()}) -> {ok, py_context:context()} | {stop, term()}.
init({LSock, Mode}) ->
    process_flag(trap_exit, true),
    Version = persistent_term:get(py_echo_worker_version, <<"v1">>),
    {ok, Ctx} = py_context:new(#{mode => Mode, preload => code(Version)}),
    ok = py_context:start_loop(Ctx),
    {ok, Fd} = py:dup_fd(LSock),
    case py_context:submit_await(Ctx, '__main__', serve, [Fd], #{}, 30000) of
        {ok, <<"serving">>} -> {ok, Ctx};
        Failed -> {stop, {serve_failed, Failed}}
    end.

-spec handle_call(context, gen_server:from(), py_context:context()) -> {reply, py_context:context(), py_context:context()}.
handle_call(context, _From, Ctx) ->
    {reply, Ctx, Ctx}.

-spec handle_cast(term(), py_context:context()) -> {noreply, py_context:context()}.
handle_cast(_Msg, Ctx) ->
    {noreply, Ctx}.

-spec handle_info(term(), py_context:context()) -> {noreply, py_context:context()} | {stop, term(), py_context:context()}.
handle_info({py_loop_exit, Ctx, Result}, Ctx) ->
    {stop, {loop_exit, Result}, Ctx};
handle_info(_Msg, Ctx) ->
    {noreply, Ctx}.

-spec terminate(term(), py_context:context()) -> ok.
terminate(shutdown, Ctx) ->
    _ = py_context:submit_await(Ctx, '__main__', unserve, [], #{}, 5000),
    _ = py_test_util:wait_until(fun() -> py:eval(Ctx, <<"len(CONNS)">>) =:= {ok, 0} end, 5000),
    _ = py_context:stop_loop(Ctx, 1000),
    _ = py_context:stop(Ctx),
    ok;
terminate(_Reason, Ctx) ->
    _ = py_context:stop(Ctx),
    ok.
