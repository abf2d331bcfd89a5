%% @doc A byte buffer Erlang writes and Python reads (erlang_python 4.1's `py_buffer').
%%
%% Passed to Python in the arguments of a call, a buffer arrives as an `erlang.PyBuffer': a
%% read-only file (`read', `readline', iteration, `seek', `find', ...) whose reads block, with
%% the GIL released, until data or the end of data comes, and which `memoryview' reads without a
%% copy. See docs/buffers.md for what blocks what, pinning and the errors.
-module(py_buffer).

-export([new/0, new/1, write/2, write/3, close/1]).

-define(DEFAULT_CAPACITY, 65536).
%% Writes larger than this copy on a dirty CPU scheduler.
-define(DIRTY_WRITE, 1048576).

%% @doc A buffer for data of unknown length (64 KiB at first, growing as written).
-spec new() -> {ok, reference()}.
new() -> py_nif:buffer_new(?DEFAULT_CAPACITY).

%% @doc A buffer for ContentLength bytes (allocated at once; it still grows if more come), or
%% for data of unknown length (`undefined'). A map takes the length as `content_length'; the
%% shared-memory buffers of erlang_python 5.0 (`#{shared => true}', not part of 4.1) are not
%% implemented: `{error, shared_unsupported}' (docs/buffers.md).
-spec new(non_neg_integer() | undefined | map()) -> {ok, reference()} | {error, shared_unsupported}.
new(undefined) -> new();
new(ContentLength) when is_integer(ContentLength), ContentLength >= 0 -> py_nif:buffer_new(ContentLength);
new(#{shared := true}) -> {error, shared_unsupported};
new(Opts) when is_map(Opts) -> new(maps:get(content_length, Opts, undefined));
new(_) -> erlang:error(badarg).

%% @doc Appends Data and wakes the Python readers. `{error, closed}' after close/1 (or after the
%% Python side closed it); `{error, pinned}' when Data does not fit in the memory allocated and
%% a `memoryview' of the buffer is open in Python (growing would move the memory it shows).
-spec write(reference(), iodata()) -> ok | {error, closed | pinned | out_of_memory}.
write(Buffer, Data) when is_binary(Data), byte_size(Data) > ?DIRTY_WRITE -> py_nif:buffer_write_dirty(Buffer, Data);
write(Buffer, Data) when is_binary(Data) -> py_nif:buffer_write(Buffer, Data);
write(Buffer, Data) when is_list(Data) -> write(Buffer, iolist_to_binary(Data));
write(_, _) -> erlang:error(badarg).

%% @doc As write/2: a write never waits (the buffer grows), so the timeout is not used; it is
%% there for the signature of erlang_python 5.0's shared buffers, whose writes wait for room.
-spec write(reference(), iodata(), timeout()) -> ok | {error, closed | pinned | out_of_memory}.
write(Buffer, Data, _Timeout) -> write(Buffer, Data).

%% @doc Ends the data: Python's reads return what is left, then `b""'. Idempotent.
-spec close(reference()) -> ok.
close(Buffer) -> py_nif:buffer_close(Buffer).
