%% @doc The erlang_python application: starts the top supervisor, which starts the default
%% pool of contexts.
-module(erlang_python_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @private
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    ok = py_observe:init_slow_request(),
    erlang_python_sup:start_link().

%% @private
-spec stop(term()) -> ok.
stop(_State) ->
    ok.
