%% @doc Channels: streams of Erlang terms that Python code reads.
%%
%% A channel is a queue held by the NIF, outside every interpreter: `send/2' copies a term into
%% it and returns at once; Python code that received the channel as a call or eval argument
%% reads it with `erlang.channel.Channel' (`receive()', `try_receive()', `async_receive()',
%% iteration). A channel made with `#{max_size => Bytes}' answers `busy' to a send that would
%% queue more than that many bytes (the size of the terms' external format): the writer
%% decides when to retry, no scheduler ever blocks. See docs/channels.md.
-module(py_channel).

-export([new/0, new/1, send/2, close/1, info/1]).
%% erlang_python 4.1's names for reading a channel from Erlang (its Python class called them).
-export([register_callbacks/0, handle_receive/1, handle_try_receive/1, handle_info/1]).

-type channel() :: reference().
-type opts() :: #{max_size => non_neg_integer()}.
-export_type([channel/0, opts/0]).

%% @doc An unbounded channel.
-spec new() -> {ok, channel()}.
new() -> new(#{}).

%% @doc A channel; `max_size' (bytes, 0: unbounded, the default) bounds what it queues.
-spec new(opts()) -> {ok, channel()}.
new(Opts) when is_map(Opts) ->
    py_nif:channel_new(terms, maps:get(max_size, Opts, 0)).

%% @doc Queues a copy of Term: `ok', `busy' when a bounded channel is full (nothing was
%% queued), `{error, closed}' after close/1.
-spec send(channel(), term()) -> ok | busy | {error, closed}.
send(Channel, Term) -> py_nif:channel_send(Channel, Term).

%% @doc No more sends: readers get what was queued, then ChannelClosed. Idempotent.
-spec close(channel()) -> ok.
close(Channel) -> py_nif:channel_close(Channel).

%% @doc `#{size => BytesQueued, max_size => Limit, closed => boolean()}'.
-spec info(channel()) -> #{size := non_neg_integer(), max_size := non_neg_integer(), closed := boolean()}.
info(Channel) -> py_nif:channel_info(Channel).

%% @doc Makes 4.1's channel callbacks callable from Python: `erlang.call("_py_channel_receive",
%% ch)', `"_py_channel_try_receive"', `"_py_channel_info"' (handle_receive/1,
%% handle_try_receive/1, handle_info/1). `erlang.channel.Channel' does not need them here (it
%% reads the channel's queue itself), so only code that calls these names needs this call; code
%% written for 4.1 that calls it at start-up keeps working. Idempotent.
-spec register_callbacks() -> ok.
register_callbacks() ->
    ok = py_callback:register(<<"_py_channel_receive">>, {?MODULE, handle_receive}),
    ok = py_callback:register(<<"_py_channel_try_receive">>, {?MODULE, handle_try_receive}),
    ok = py_callback:register(<<"_py_channel_info">>, {?MODULE, handle_info}).

%% @doc `[Channel]': the oldest queued message, waiting for one in a `receive' of the calling
%% process (no scheduler is held; any number of processes may wait at once); `{error, closed}'
%% once the channel is closed and drained. Run as a callback (`erlang.call("_py_channel_receive",
%% ch)'), it waits no longer than the Python request that asked for it may run: `{error,
%% timeout}' at its deadline, which then ends that request as any timeout does.
-spec handle_receive([channel()]) -> {ok, term()} | {error, closed | timeout}.
handle_receive([Channel]) -> py_channel_wait:take(Channel, callback_time_left()).

%% @doc `[Channel]': the oldest queued message without waiting, `{error, empty}' or
%% `{error, closed}'.
-spec handle_try_receive([channel()]) -> {ok, term()} | {error, empty | closed}.
handle_try_receive([Channel]) -> py_nif:channel_try_receive(Channel).

%% @doc `[Channel]': info/1.
-spec handle_info([channel()]) -> #{size := non_neg_integer(), max_size := non_neg_integer(), closed := boolean()}.
handle_info([Channel]) -> info(Channel).

callback_time_left() -> py_request:remaining(py_request:callback_deadline()).
