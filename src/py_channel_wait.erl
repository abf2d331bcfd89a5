%% @private
%% @doc Reading a channel (py_channel or py_byte_channel) from Erlang, waiting for a message.
%%
%% The wait is a `receive' in the calling process (no scheduler is held): the NIF sends a
%% message made for this wait when the channel gets data or is closed. Any number of Erlang
%% processes may wait on one channel at once; each takes its own message.
-module(py_channel_wait).

-include("py_timeout.hrl").

-export([take/2]).

%% The oldest queued message, waiting up to Timeout ms for one. `{error, closed}' once the
%% channel is closed and drained, `{error, timeout}'; no message is left in the mailbox.
-spec take(reference(), timeout()) -> {ok, term()} | {error, closed | timeout}.
take(Channel, Timeout) when ?IS_TIMEOUT(Timeout) ->
    Deadline = case Timeout of
                   infinity -> infinity;
                   _ -> erlang:monotonic_time(millisecond) + Timeout
               end,
    take_until(Channel, {py_channel_ready, make_ref()}, Deadline).

take_until(Channel, Wake, Deadline) ->
    case py_nif:channel_try_receive(Channel) of
        {error, empty} ->
            case py_nif:channel_notify(Channel, Wake) of
                ready ->
                    take_until(Channel, Wake, Deadline);
                ok ->
                    receive
                        Wake -> take_until(Channel, Wake, Deadline)
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
