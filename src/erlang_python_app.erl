%% @doc The erlang_python application: checks its environment, loads the chosen Python
%% (py_runtime), then starts the top supervisor, which starts the default pool of contexts.
-module(erlang_python_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @private
%% `{error, {invalid_env, Key, Value}}' when an application variable has a value it cannot
%% take (e.g. `{num_contexts, 0}'): the application does not start.
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    maybe_start([fun py_app_env:check/0, fun py_runtime:load/0, fun py_observe:init_slow_request/0,
                fun py_observe:init_request_timings/0]).

%% Each step in turn; the first error stops the start.
maybe_start([]) ->
    erlang_python_sup:start_link();
maybe_start([Step | Rest]) ->
    case Step() of
        ok -> maybe_start(Rest);
        {error, _} = Error -> Error
    end.

%% @private
-spec stop(term()) -> ok.
stop(_State) ->
    py_signal:uninstall().
