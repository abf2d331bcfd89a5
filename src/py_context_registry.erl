%% @private
%% @doc Keeps the context registry table (`py_context_registry', owned by `erlang_python_sup')
%% free of rows of dead context processes.
%%
%% A context process removes its own row when it stops, but one killed (`exit(Ctx, kill)')
%% runs no code on the way out. This process monitors every registered context and deletes the
%% row of one that went down, so the table never holds more rows than there are contexts.
-module(py_context_registry).
-behaviour(gen_server).

-export([start_link/0, register/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TABLE, py_context_registry).

%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @private
%% Registers context process Pid with Row (see py_context:lookup/1) and has its row removed
%% when it goes down.
-spec register(pid(), tuple()) -> ok.
register(Pid, Row) ->
    true = ets:insert(?TABLE, {Pid, Row}),
    gen_server:cast(?MODULE, {watch, Pid}).

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    %% After a restart of this process: watch the contexts registered meanwhile.
    _ = [erlang:monitor(process, Pid) || {Pid, _} <- ets:tab2list(?TABLE)],
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), #{}) -> {reply, {error, unknown_call}, #{}}.
handle_call(_Msg, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), #{}) -> {noreply, #{}}.
handle_cast({watch, Pid}, State) ->
    _ = erlang:monitor(process, Pid),
    {noreply, State};
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #{}) -> {noreply, #{}}.
handle_info({'DOWN', _, process, Pid, _}, State) ->
    ets:delete(?TABLE, Pid),
    {noreply, State};
handle_info(_Msg, State) ->
    {noreply, State}.
