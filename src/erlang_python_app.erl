%% @doc The erlang_python application: loads the chosen Python (py_runtime), then starts the
%% top supervisor, which starts the default pool of contexts.
-module(erlang_python_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @private
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    case py_runtime:load() of
        ok -> erlang_python_sup:start_link();
        {error, _} = Error -> Error
    end.

%% @private
-spec stop(term()) -> ok.
stop(_State) ->
    ok.
