%% @doc Byte channels: streams of raw binaries that Python code reads as `bytes'.
%%
%% The same queue as `py_channel' without term encoding: a binary is queued as it is (a
%% reference-counted binary is shared, not copied) and arrives in Python as `bytes' through
%% `erlang.ByteChannel' (`receive_bytes()', `try_receive_bytes()', `async_receive_bytes()',
%% iteration). `max_size' counts binary bytes. See docs/channels.md.
-module(py_byte_channel).

-export([new/0, new/1, send/2, try_receive/1, recv/1, recv/2, close/1, info/1]).

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
recv(Channel, Timeout) when Timeout =:= infinity; is_integer(Timeout), Timeout >= 0 ->
    Deadline = case Timeout of
                   infinity -> infinity;
                   _ -> erlang:monotonic_time(millisecond) + Timeout
               end,
    recv_until(Channel, {py_byte_channel_ready, make_ref()}, Deadline).

recv_until(Channel, Wake, Deadline) ->
    case py_nif:channel_try_receive(Channel) of
        {error, empty} ->
            case py_nif:channel_notify(Channel, Wake) of
                ready ->
                    recv_until(Channel, Wake, Deadline);
                ok ->
                    receive
                        Wake -> recv_until(Channel, Wake, Deadline)
                    after remaining(Deadline) ->
                        ok = py_nif:channel_unnotify(Channel, Wake),
                        receive Wake -> ok after 0 -> ok end,
                        {error, timeout}
                    end
            end;
        Result ->
            Result
    end.

remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

%% @doc No more sends: readers get what was queued, then ByteChannelClosed. Idempotent.
-spec close(channel()) -> ok.
close(Channel) -> py_nif:channel_close(Channel).

%% @doc `#{size => BytesQueued, max_size => Limit, closed => boolean()}'.
-spec info(channel()) -> #{size := non_neg_integer(), max_size := non_neg_integer(), closed := boolean()}.
info(Channel) -> py_nif:channel_info(Channel).
