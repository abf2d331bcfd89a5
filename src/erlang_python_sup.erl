%% @doc Top supervisor. Owns the context registry table (so it survives restarts of the
%% processes below), the table of setup steps (py_setup) and those of py_callback and py_state,
%% and supervises the registry's janitor, the context supervisor, py_thread_callback, py_tracer,
%% the pool router, py_logger, py_semaphore and py_map_builder, in that order. The `imports' and
%% `paths' app env and preload code set before the start become setup steps here, before any
%% context starts.
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
    py_isolated:init_table(),
    py_callback:init_table(),
    py_state:init_table(),
    py_setup:init_table(),
    py_import:init(),
    py_preload:apply_on_start(),
    py_signal:install(),
    Children = [
        #{id => py_context_registry, start => {py_context_registry, start_link, []}},
        #{id => py_context_sup, start => {py_context_sup, start_link, []}, type => supervisor},
        #{id => py_thread_callback, start => {py_thread_callback, start_link, []}},
        #{id => py_tracer, start => {py_tracer, start_link, []}},
        #{id => py_context_router, start => {py_context_router, start_link, []}, shutdown => 30000},
        %% When it restarts, only py_semaphore and the map builder do too (it reinstalls the
        %% Python handlers itself).
        #{id => py_logger, start => {py_logger, start_link, []}},
        %% The queue of callers waiting for a max_concurrent slot (py_semaphore).
        #{id => py_semaphore, start => {py_semaphore, start_link, []}},
        %% Last: nothing else restarts with it (contexts build big maps by insertion meanwhile).
        #{id => py_map_builder, start => {py_map_builder, start_link, []}}
    ],
    {ok, {#{strategy => rest_for_one, intensity => 5, period => 10}, Children}}.
