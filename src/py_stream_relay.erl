%% @private
%% @doc Backpressure for `py:stream_start/3,4': a process between a stream's producer (the
%% context thread running the generator) and its owner.
%%
%% The producer sends each item to the relay, which forwards it unchanged to the owner
%% (`{py_stream, Ref, {data, Item}}', then `done' or `{error, Reason}'), so the owner sees the
%% documented messages in order. The producer may have at most `Window' items sent and not
%% acknowledged (app env `stream_window'); past that it waits, and its context serves other
%% requests meanwhile. The relay acknowledges forwarded items (py_nif:stream_ack/3) as the
%% owner consumes them: when the owner's mailbox holds fewer than `Window' messages. While the
%% owner lags, the relay looks again after 1, 2, 4 ... up to 64 ms. So the owner's mailbox holds
%% at most about 2 x Window stream messages, however fast the generator and however slow the
%% owner. When the owner exits, the relay cancels the stream: the generator stops.
-module(py_stream_relay).

-export([start/2, run/3, cancel/1]).

-define(MAX_BACKOFF, 64).

-record(relay, {owner :: pid(), owner_mon :: reference(), window :: pos_integer(),
                pending :: py_request:pending(), tag :: reference(),
                unacked = 0 :: non_neg_integer(), backoff = 1 :: pos_integer()}).

%% @private
%% A relay for the items of a stream whose messages go to Owner. run/3 hands it the stream.
-spec start(pid(), pos_integer()) -> pid().
start(Owner, Window) ->
    spawn(fun() -> wait_stream(Owner, Window) end).

%% @private
%% Hands the relay the stream it relays (or `failed': the stream did not start).
-spec run(pid(), py_request:pending() | failed, reference() | undefined) -> ok.
run(Relay, Pending, Tag) ->
    Relay ! {relay, Pending, Tag},
    ok.

%% @private
%% Stops the stream and the relay: no message of the stream reaches the owner after this
%% returns.
-spec cancel(pid()) -> ok.
cancel(Relay) ->
    Mon = erlang:monitor(process, Relay),
    Relay ! {cancel, self(), Mon},
    receive
        {cancelled, Mon} -> erlang:demonitor(Mon, [flush]), ok;
        {'DOWN', Mon, process, Relay, _} -> ok
    end.

wait_stream(Owner, Window) ->
    receive
        {relay, failed, _} -> ok;
        {relay, Pending, Tag} ->
            Mon = erlang:monitor(process, Owner),
            loop(#relay{owner = Owner, owner_mon = Mon, window = Window, pending = Pending, tag = Tag})
    end.

loop(#relay{tag = Tag, owner = Owner, owner_mon = Mon, unacked = Unacked} = R) ->
    Wait = case Unacked of 0 -> infinity; _ -> R#relay.backoff end,
    receive
        {py_stream, Tag, {data, _}} = Msg ->
            Owner ! Msg,
            loop(maybe_ack(R#relay{unacked = Unacked + 1}));
        {py_stream, Tag, _} = Final ->
            Owner ! Final;
        {'DOWN', Mon, process, Owner, _} ->
            py_request:cancel(R#relay.pending);
        {cancel, From, Ref} ->
            py_request:cancel(R#relay.pending),
            From ! {cancelled, Ref}
    after Wait ->
        loop(maybe_ack(R#relay{backoff = min(R#relay.backoff * 2, ?MAX_BACKOFF)}))
    end.

%% Acknowledges the forwarded items once the owner has room (a batch at a time: when half a
%% window is waiting, or the relay has nothing else to forward).
maybe_ack(#relay{unacked = Unacked, window = Window} = R) ->
    Batch = Unacked * 2 >= Window orelse element(2, process_info(self(), message_queue_len)) =:= 0,
    case Batch andalso owner_has_room(R) of
        true ->
            ok = py_request:ack_items(R#relay.pending, Unacked),
            R#relay{unacked = 0, backoff = 1};
        false ->
            R
    end.

owner_has_room(#relay{owner = Owner, window = Window}) ->
    case process_info(Owner, message_queue_len) of
        {message_queue_len, N} -> N < Window;
        undefined -> true  % gone: its DOWN is on the way
    end.
