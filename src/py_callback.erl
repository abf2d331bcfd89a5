%% @private
%% @doc The registry of Erlang functions Python may call (`erlang.call(Name, ...)',
%% `erlang.Name(...)', `from erlang import Name'), and running one for a request.
%%
%% A callback runs in the process that made the Python request, inside its wait for the reply
%% (see py:await/4), so no extra process or scheduler is held, and a callback that calls Python
%% again on the same context is served by that context's thread while it waits.
-module(py_callback).

-export([init_table/0, register/2, unregister/1, run/2]).

-define(TABLE, py_callbacks).
-define(REASON_CHARS, 2000).

-type callback() :: fun((list()) -> term()) | {module(), atom()}.
-type result() :: {ok, term()} | {error, {atom(), binary()}} | unknown_function.

%% Creates the table; called by erlang_python_sup, which owns it.
-spec init_table() -> ok.
init_table() ->
    _ = ets:new(?TABLE, [named_table, public, set, {read_concurrency, true}]),
    py_nif:callback_names(clear, none).

-spec register(atom() | binary(), callback()) -> ok.
register(Name, Callback) ->
    Key = key(Name),
    true = ets:insert(?TABLE, {Key, Callback}),
    py_nif:callback_names(add, Key).

-spec unregister(atom() | binary()) -> ok.
unregister(Name) ->
    Key = key(Name),
    true = ets:delete(?TABLE, Key),
    py_nif:callback_names(remove, Key).

%% Runs the function registered as Name with the argument list Args. An exception becomes
%% {error, {Class, FormattedReason}}, raised in Python as erlang.ErlangError(Class, Reason).
-spec run(term(), list()) -> result().
run(Name, Args) ->
    case lookup(Name) of
        {ok, Callback} ->
            try {ok, apply_callback(Callback, Args)}
            catch Class:Reason -> {error, {Class, format_reason(Reason)}}
            end;
        error ->
            unknown_function
    end.

%% Bounded: in a chain of nested callbacks each level's reason quotes the level below it, so
%% unbounded formatting grows exponentially with the depth (escapes double at every level).
format_reason(Reason) ->
    unicode:characters_to_binary(io_lib:format("~0tp", [Reason], [{chars_limit, ?REASON_CHARS}])).

apply_callback(Fun, Args) when is_function(Fun, 1) -> Fun(Args);
apply_callback({M, F}, Args) -> M:F(Args).

lookup(Name) when is_binary(Name) ->
    case ets:lookup(?TABLE, Name) of
        [{_, Callback}] -> {ok, Callback};
        [] -> error
    end;
lookup(_) ->
    error.

key(Name) when is_atom(Name) -> atom_to_binary(Name, utf8);
key(Name) when is_binary(Name) -> Name;
key(_) -> erlang:error(badarg).
