%% @doc Top supervisor. Owns the context registry table (so it survives restarts of the
%% processes below), the table of setup steps (py_setup) and those of py_callback and py_state,
%% and supervises the context supervisor, the pool router, py_logger and py_map_builder, in that
%% order.
-module(erlang_python_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

%% @private
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @private
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    py_context:init_registry(),
    py_callback:init_table(),
    py_state:init_table(),
    py_setup:init_table(),
    Children = [
        #{id => py_context_sup, start => {py_context_sup, start_link, []}, type => supervisor},
        #{id => py_context_router, start => {py_context_router, start_link, []}, shutdown => 30000},
        %% Near the end: when it restarts, only the map builder does too (it reinstalls the
        %% Python handlers itself).
        #{id => py_logger, start => {py_logger, start_link, []}},
        %% Last: nothing else restarts with it (contexts build big maps by insertion meanwhile).
        #{id => py_map_builder, start => {py_map_builder, start_link, []}}
    ],
    {ok, {#{strategy => rest_for_one, intensity => 5, period => 10}, Children}}.
