%% @private
%% @doc Runs the Erlang functions that Python threads which are no context's own (a
%% `threading.Thread', a `ThreadPoolExecutor' worker) call with `erlang.call'. Such a thread
%% has no Erlang process waiting for its callbacks, so it sends
%% `{py_thread_callback, Call, Name, Args}' to this registered process, which runs each one in
%% a process of its own (a slow function does not delay the others) and answers with
%% `py_nif:thread_callback_reply/2'. A call whose process dies before answering, or whose
%% message is lost, is answered `aborted' by the NIF when its last reference goes
%% (c_src/bridge/thread_call.hpp): the Python thread gets a RuntimeError, never a hang.
-module(py_thread_callback).
-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @private
-spec init([]) -> {ok, no_state}.
init([]) ->
    {ok, no_state}.

%% @private
-spec handle_call(term(), gen_server:from(), no_state) -> {reply, {error, unknown_call}, no_state}.
handle_call(_Msg, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), no_state) -> {noreply, no_state}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), no_state) -> {noreply, no_state} | {noreply, no_state, hibernate}.
handle_info({py_thread_callback, Call, Name, Args}, State) ->
    _ = spawn(fun() -> py_nif:thread_callback_reply(Call, py_callback:run(Name, Args)) end),
    %% Hibernating drops this process's copy of Call (the message stays in its heap until a
    %% collection otherwise), so that the runner's is the last one: a runner that dies without
    %% answering then releases Call at once, and the NIF answers `aborted'.
    {noreply, State, hibernate};
handle_info(_Msg, State) ->
    {noreply, State}.
