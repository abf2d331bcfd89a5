%% @private
%% @doc What an isolated context says about a child that died (py_isolated's crash() map): its
%% exit status or signal, the limit it ran into, and the last lines it wrote to stderr.
-module(py_isolated_crash).

-export([reason/4, last_lines/1]).

-define(STDERR_LINES, 20).
-define(STDERR_TAIL_BYTES, 16384).

%% @doc Why the child died: its exit Status (above 128: killed by signal Status - 128), the last
%% lines of its stderr Log, the limit it ran into when that is known, and why it was killed when
%% the context killed it (WasKilled).
-spec reason(non_neg_integer(), file:filename(), py_isolated:limits(), false | atom()) -> py_isolated:crash().
reason(Status, Log, Limits, WasKilled) ->
    Base = case Status > 128 of
               true -> #{signal => signal_name(Status - 128)};
               false -> #{exit_status => Status}
           end,
    WithLimit = case Base of
                    #{signal := sigxcpu} -> Base#{limit => cpu_seconds};
                    #{signal := sigkill} when is_map_key(cpu_seconds, Limits) -> Base;
                    _ when is_map_key(memory, Limits) -> memory_named(Base, Log);
                    _ -> Base
                end,
    Killed = case WasKilled of
                 false -> WithLimit;
                 Why -> WithLimit#{killed => Why}
             end,
    Killed#{stderr => last_lines(Log)}.

%% A child that died under a memory limit with an allocation failure in its log.
memory_named(Crash, Log) ->
    Text = iolist_to_binary(last_lines(Log)),
    case re:run(Text, <<"MemoryError|Cannot allocate memory|out of memory|std::bad_alloc">>, [caseless]) of
        nomatch -> Crash;
        _ -> Crash#{limit => memory}
    end.

signal_name(6) -> sigabrt;
signal_name(9) -> sigkill;
signal_name(11) -> sigsegv;
signal_name(7) -> sigbus;
signal_name(8) -> sigfpe;
signal_name(15) -> sigterm;
signal_name(24) -> sigxcpu;
signal_name(2) -> sigint;
signal_name(N) -> N.

%% @doc The last lines (at most 20, from its last 16 KiB) the child wrote to its stderr log.
-spec last_lines(file:filename()) -> [binary()].
last_lines(Log) ->
    case file:open(Log, [read, raw, binary]) of
        {ok, Fd} ->
            {ok, Size} = file:position(Fd, eof),
            From = max(0, Size - ?STDERR_TAIL_BYTES),
            Data = case file:pread(Fd, From, Size - From) of
                       {ok, D} -> D;
                       _ -> <<>>
                   end,
            ok = file:close(Fd),
            Lines = [L || L <- binary:split(Data, <<"\n">>, [global]), L =/= <<>>],
            lists:nthtail(max(0, length(Lines) - ?STDERR_LINES), Lines);
        {error, _} ->
            []
    end.
