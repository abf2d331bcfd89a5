%% @doc Supervises every context process, those of the default pool and those made with
%% py_context:new/1. Contexts are temporary: a context that stops is not restarted here (the
%% router replaces pool contexts itself).
-module(py_context_sup).
-behaviour(supervisor).

-export([start_link/0, start_context/1, init/1]).

%% @private
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @private
-spec start_context(map()) -> {ok, pid()} | {error, term()}.
start_context(Opts) ->
    supervisor:start_child(?MODULE, [Opts]).

%% @private
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Child = #{id => py_context, start => {py_context, start_link, []},
              restart => temporary, shutdown => 10000},
    {ok, {#{strategy => simple_one_for_one, intensity => 100, period => 1}, [Child]}}.
