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
