%% @private
%% @doc The frames of an isolated context's pipe (py_isolated): a request as the external term
%% the child reads, and the object handles (references to Python objects living in a child)
%% in both directions. A handle crossing to the child becomes `{\'$py_isolated_object\', Id}';
%% one coming back becomes a reference again, tagged with the serial of the child that made it,
%% so that a handle of an earlier child (or of another context) is refused rather than misread.
%% Pure functions: no process state, callable from any process.
-module(py_isolated_frame).

-export([encode/3, request_binary/2, objects_out/3, stale_handles/2, frame_binary/1, objects_in/2]).
-export_type([request_frame/0]).

%% A request's frame; with the serials of the children its object handles name, and the
%% handles themselves (held until the request ends, so none is released before the child
%% has read the request).
-type request_frame() :: binary() | {binary(), [pos_integer() | other_context], [reference()]}.

%% @doc Request for context Ctx as the frame its context process sends on, answered under Id.
%% badarg for a module or function name that is not a name.
-spec encode(py_isolated:request() | py_isolated:async_request(), pid(), reference()) -> request_frame().
encode(Request, Ctx, Id) ->
    {Plain, Held} = objects_out(Request, Ctx),
    with_held(term_to_binary(frame(Plain, Id)), Held).

%% @doc A request with no object handles as the bytes of its frame (the context's own set-up
%% requests).
-spec request_binary(py_isolated:request(), term()) -> binary().
request_binary(Request, Id) ->
    term_to_binary(frame(Request, Id)).

%% Object handles in a request's arguments, kwargs or locals become {'$py_isolated_object', Id}
%% for the child; a handle of another context is refused here, one of an earlier child of this
%% context when the request is sent (pump/1).
objects_out(Request, Ctx) ->
    case has_reference(Request) of
        false -> {Request, []};   %% nothing to rebuild (the common case)
        true -> objects_out_request(Request, Ctx)
    end.

objects_out_request({call, M, F, Args, Kwargs}, Ctx) ->
    {[Args1, Kwargs1], Held} = objects_out_list([Args, Kwargs], Ctx, []),
    {{call, M, F, Args1, Kwargs1}, Held};
objects_out_request({async, M, F, Args, Kwargs}, Ctx) ->
    {[Args1, Kwargs1], Held} = objects_out_list([Args, Kwargs], Ctx, []),
    {{async, M, F, Args1, Kwargs1}, Held};
objects_out_request({eval, Code, Locals}, Ctx) ->
    {Locals1, Held} = objects_out(Locals, Ctx, []),
    {{eval, Code, Locals1}, Held};
objects_out_request(Request, _Ctx) ->
    {Request, []}.

has_reference(T) when is_reference(T) -> true;
has_reference([H | T]) -> has_reference(H) orelse has_reference(T);
has_reference(T) when is_tuple(T) -> has_reference(tuple_to_list(T));
has_reference(T) when is_map(T) -> has_reference(maps:to_list(T));
has_reference(_) -> false.

%% @doc Term with every object handle of context Ctx replaced by what the child reads, and the
%% handles found (as {Serial, Handle}, or {other_context, Handle}) added to Held.
-spec objects_out(term(), pid(), [{pos_integer() | other_context, reference()}]) ->
          {term(), [{pos_integer() | other_context, reference()}]}.
objects_out(T, Ctx, Held) when is_reference(T) ->
    case py_nif:isolated_ref_info(T) of
        {Ctx, Serial, Id} -> {{'$py_isolated_object', Id}, [{Serial, T} | Held]};
        {_Other, _, _} -> {T, [{other_context, T} | Held]};
        false -> {T, Held}
    end;
objects_out(T, Ctx, Held) when is_list(T) ->
    objects_out_list(T, Ctx, Held);
objects_out(T, Ctx, Held) when is_tuple(T) ->
    {Items, Held1} = objects_out_list(tuple_to_list(T), Ctx, Held),
    {list_to_tuple(Items), Held1};
objects_out(T, Ctx, Held) when is_map(T) ->
    {Pairs, Held1} = objects_out_list(maps:to_list(T), Ctx, Held),
    {maps:from_list(Pairs), Held1};
objects_out(T, _Ctx, Held) ->
    {T, Held}.

%% Proper lists only (an improper one reaches the child as it is and is refused there).
objects_out_list(List, Ctx, Held) ->
    try lists:mapfoldl(fun(T, H) -> objects_out(T, Ctx, H) end, Held, List)
    catch error:function_clause -> {List, Held}
    end.

with_held(Frame, []) -> Frame;
with_held(Frame, Held) -> {Frame, [S || {S, _} <- Held], [H || {_, H} <- Held]}.

%% The body is a binary of its own, so that the child can always read the frame's id and answer
%% it, even when the body holds a term Python cannot take.
frame({call, Module, Function, Args, Kwargs}, Id) ->
    {call, Id, term_to_binary({name(Module), name(Function), Args, Kwargs})};
frame({async, Module, Function, Args, Kwargs}, Id) ->
    {async, Id, term_to_binary({name(Module), name(Function), Args, Kwargs})};
frame({eval, Code, Locals}, Id) -> {eval, Id, term_to_binary({iolist_to_binary(Code), Locals})};
frame({exec, Code}, Id) -> {exec, Id, term_to_binary({iolist_to_binary(Code)})}.

name(N) when is_atom(N) -> atom_to_binary(N, utf8);
name(N) when is_binary(N) -> N;
name(N) when is_list(N) ->
    case unicode:characters_to_binary(N) of
        B when is_binary(B) -> B;
        _ -> erlang:error(badarg)
    end.

%% @doc Why a request's object handles cannot be used by the child now running (serial
%% Serial), or false.
-spec stale_handles(request_frame(), pos_integer()) -> false | string().
stale_handles(Frame, _Serial) when is_binary(Frame) ->
    false;
stale_handles({_, Serials, _}, Serial) ->
    case lists:usort(Serials) of
        [Serial] -> false;
        Other ->
            case lists:member(other_context, Other) of
                true -> "a Python object reference from another context cannot be used here";
                false -> "a Python object reference whose isolated process has ended (crashed, "
                         "restarted or stopped) cannot be used"
            end
    end.

%% @doc The bytes of a frame, without its handles.
-spec frame_binary(request_frame()) -> binary().
frame_binary({Frame, _, _}) -> Frame;
frame_binary(Frame) -> Frame.

%% @doc A term from the child of serial Serial, with each object it names as a handle.
-spec objects_in(term(), pos_integer()) -> term().
objects_in({'$py_isolated_object', Id}, Serial) when is_integer(Id), Id > 0 ->
    py_nif:isolated_ref_new(self(), Serial, Id);
objects_in(T, Serial) when is_list(T) ->
    objects_in_list(T, Serial);
objects_in(T, Serial) when is_tuple(T) ->
    list_to_tuple(objects_in_list(tuple_to_list(T), Serial));
objects_in(T, Serial) when is_map(T) ->
    maps:from_list(objects_in_list(maps:to_list(T), Serial));
objects_in(T, _Serial) ->
    T.

objects_in_list([H | T], Serial) -> [objects_in(H, Serial) | objects_in_list(T, Serial)];
objects_in_list([], _Serial) -> [];
objects_in_list(Tail, Serial) -> objects_in(Tail, Serial).
