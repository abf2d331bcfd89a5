%% @private
%% @doc The state shared by every context of the node: an ETS table written from Erlang
%% (py:state_*) and from Python (erlang.state_*, through the internal callback '$py_state').
%% Keys are binaries (atoms are stored as their text, so `foo' and Python's 'foo' are the same
%% key); counters are updated atomically with ets:update_counter/4.
-module(py_state).

-export([init_table/0, store/2, fetch/1, remove/1, keys/0, clear/0, incr/2, from_python/1]).

-define(TABLE, py_state).

-spec init_table() -> ok.
init_table() ->
    _ = ets:new(?TABLE, [named_table, public, set, {read_concurrency, true}, {write_concurrency, true}]),
    ok = py_callback:register(<<"$py_state">>, fun ?MODULE:from_python/1).

-spec store(term(), term()) -> ok.
store(Key, Value) ->
    true = ets:insert(?TABLE, {key(Key), Value}),
    ok.

-spec fetch(term()) -> {ok, term()} | {error, not_found}.
fetch(Key) ->
    case ets:lookup(?TABLE, key(Key)) of
        [{_, Value}] -> {ok, Value};
        [] -> {error, not_found}
    end.

-spec remove(term()) -> ok.
remove(Key) ->
    true = ets:delete(?TABLE, key(Key)),
    ok.

-spec keys() -> [term()].
keys() ->
    ets:select(?TABLE, [{{'$1', '_'}, [], ['$1']}]).

-spec clear() -> ok.
clear() ->
    true = ets:delete_all_objects(?TABLE),
    ok.

%% Adds N to the integer stored under Key (0 if absent) and returns the new value.
-spec incr(term(), integer()) -> integer().
incr(Key, N) when is_integer(N) ->
    ets:update_counter(?TABLE, key(Key), N, {key(Key), 0}).

%% The '$py_state' callback: erlang.state_set/get/delete/keys/incr/decr in Python.
-spec from_python(list()) -> term().
from_python([<<"set">>, Key, Value]) -> store(Key, Value), none;
from_python([<<"get">>, Key, Default]) ->
    case fetch(Key) of
        {ok, Value} -> Value;
        {error, not_found} -> Default
    end;
from_python([<<"delete">>, Key]) -> remove(Key), none;
from_python([<<"keys">>]) -> keys();
from_python([<<"incr">>, Key, N]) -> incr(Key, N).

key(Key) when is_atom(Key), Key =/= none, Key =/= undefined, Key =/= nil, Key =/= true, Key =/= false ->
    atom_to_binary(Key, utf8);
key(Key) ->
    Key.
