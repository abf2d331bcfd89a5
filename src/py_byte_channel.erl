%% @doc Byte channels: streams of raw binaries that Python code reads as `bytes'.
%%
%% The same queue as `py_channel' without term encoding: a binary is queued as it is (a
%% reference-counted binary is shared, not copied) and arrives in Python as `bytes' through
%% `erlang.ByteChannel' (`receive_bytes()', `try_receive_bytes()', `async_receive_bytes()',
%% iteration). `max_size' counts binary bytes. See docs/channels.md.
-module(py_byte_channel).

-include("py_timeout.hrl").

-export([new/0, new/1, send/2, try_receive/1, recv/1, recv/2, close/1, info/1]).
%% erlang_python 4.1's names for reading a byte channel from Erlang (its Python class called them).
-export([register_callbacks/0, handle_receive_bytes/1, handle_try_receive_bytes/1]).

-type channel() :: reference().
-type opts() :: #{max_size => non_neg_integer()}.
-export_type([channel/0, opts/0]).

%% @doc An unbounded byte channel.
-spec new() -> {ok, channel()}.
new() -> new(#{}).

%% @doc A byte channel; `max_size' (bytes, 0: unbounded, the default) bounds what it queues.
-spec new(opts()) -> {ok, channel()}.
new(Opts) when is_map(Opts) ->
    py_nif:channel_new(bytes, maps:get(max_size, Opts, 0)).

%% @doc Queues Bytes: `ok', `busy' when a bounded channel is full (nothing was queued),
%% `{error, closed}' after close/1.
-spec send(channel(), binary()) -> ok | busy | {error, closed}.
send(Channel, Bytes) when is_binary(Bytes) -> py_nif:channel_send(Channel, Bytes).

%% @doc Takes the oldest queued binary from Erlang, without waiting.
-spec try_receive(channel()) -> {ok, binary()} | {error, empty | closed}.
try_receive(Channel) -> py_nif:channel_try_receive(Channel).

%% @doc Takes the oldest queued binary from Erlang, waiting for one: {@link recv/2} with no
%% time limit.
-spec recv(channel()) -> {ok, binary()} | {error, closed}.
recv(Channel) -> recv(Channel, infinity).

%% @doc Takes the oldest queued binary from Erlang, waiting up to Timeout ms for one (in a
%% `receive': the process waits, no scheduler does). `{error, closed}' once the channel is
%% closed and drained; `{error, timeout}'; no message is left in the mailbox either way.
-spec recv(channel(), timeout()) -> {ok, binary()} | {error, closed | timeout}.
recv(Channel, Timeout) when ?IS_TIMEOUT(Timeout) ->
    py_channel_wait:take(Channel, Timeout).

%% @doc No more sends: readers get what was queued, then ByteChannelClosed. Idempotent.
-spec close(channel()) -> ok.
close(Channel) -> py_nif:channel_close(Channel).

%% @doc `#{size => BytesQueued, max_size => Limit, closed => boolean()}'.
-spec info(channel()) -> #{size := non_neg_integer(), max_size := non_neg_integer(), closed := boolean()}.
info(Channel) -> py_nif:channel_info(Channel).

%% @doc Makes 4.1's byte channel callbacks callable from Python:
%% `erlang.call("_py_byte_channel_receive", ch)' and `"_py_byte_channel_try_receive"'
%% (handle_receive_bytes/1, handle_try_receive_bytes/1). `erlang.ByteChannel' does not need
%% them here (it reads the channel's queue itself), so only code that calls these names needs
%% this call; code written for 4.1 that calls it at start-up keeps working. Idempotent.
-spec register_callbacks() -> ok.
register_callbacks() ->
    ok = py_callback:register(<<"_py_byte_channel_receive">>, {?MODULE, handle_receive_bytes}),
    ok = py_callback:register(<<"_py_byte_channel_try_receive">>, {?MODULE, handle_try_receive_bytes}).

%% @doc `[Channel]': recv/1; run as a callback, no longer than the Python request that asked
%% for it may run (py_channel:handle_receive/1).
-spec handle_receive_bytes([channel()]) -> {ok, binary()} | {error, closed | timeout}.
handle_receive_bytes([Channel]) ->
    recv(Channel, py_request:remaining(py_request:callback_deadline())).

%% @doc `[Channel]': try_receive/1.
-spec handle_try_receive_bytes([channel()]) -> {ok, binary()} | {error, empty | closed}.
handle_try_receive_bytes([Channel]) -> try_receive(Channel).
