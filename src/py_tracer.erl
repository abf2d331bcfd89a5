%% @doc Collects the spans Python code opens with `erlang.Span' (and `@erlang.trace()') while
%% tracing is enabled; `py:enable_tracing/0', `py:disable_tracing/0', `py:get_traces/0' and
%% `py:clear_traces/0' call this module (erlang_python 4.x's tracing API, docs/logging.md).
%%
%% Enabling gives every interpreter (owngil contexts started later included, through
%% {@link py_setup}) this process's pid; Python sends `{span_start, Id, ParentId, Name, Attrs,
%% T}', `{span_event, Id, Name, Attrs, T}' and `{span_end, Id, Status, EndAttrs, T}' (times in
%% microseconds of a monotonic clock) with `erlang.send' and never waits. A completed span is
%% `#{name, span_id, parent_id (undefined for a root span), start_time, end_time,
%% duration_us, status ("ok" | "error", strings as in 4.x), attributes, end_attrs, events}',
%% events newest first (as in 4.x) as `#{name, attrs, time}'. At most 10000 completed spans are kept (the oldest are dropped).
-module(py_tracer).
-behaviour(gen_server).

-export([start_link/0, enable/0, disable/0, get_spans/0, clear/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(MAX_SPANS, 10000).

-record(state, {open = #{} :: #{integer() => map()},
                done = [] :: [map()],  % newest first
                count = 0 :: non_neg_integer()}).

%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Starts collecting spans from every interpreter: `ok', or the first interpreter's failure.
-spec enable() -> ok | {error, term()}.
enable() ->
    py_setup:set(tracing, {'_erlang_trace', enable, [whereis(?MODULE)]}, enabled).

%% @doc Stops collecting: Python's spans send nothing afterwards. Collected spans are kept.
-spec disable() -> ok | {error, term()}.
disable() ->
    py_setup:set(tracing, {'_erlang_trace', disable, []}, undefined).

%% @doc `{ok, Spans}': every completed span, oldest first.
-spec get_spans() -> {ok, [map()]}.
get_spans() ->
    gen_server:call(?MODULE, get_spans).

%% @doc Forgets the collected spans (and the open ones).
-spec clear() -> ok.
clear() ->
    gen_server:call(?MODULE, clear).

%% @private
-spec init([]) -> {ok, #state{}}.
init([]) ->
    %% A restart of this process: interpreters that had the old pid get the new one.
    _ = case py_setup:lookup(tracing) of
            {ok, enabled} -> spawn(fun enable/0);
            error -> ok
        end,
    {ok, #state{}}.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(get_spans, _From, #state{done = Done} = State) ->
    {reply, {ok, lists:reverse(Done)}, State};
handle_call(clear, _From, _State) ->
    {reply, ok, #state{}};
handle_call(_Msg, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({span_start, Id, Parent, Name, Attrs, T}, #state{open = Open} = State) ->
    Span = #{span_id => Id, parent_id => parent(Parent), name => Name, attributes => Attrs,
             start_time => T, events => []},
    {noreply, State#state{open = Open#{Id => Span}}};
handle_info({span_event, Id, Name, Attrs, T}, #state{open = Open} = State) ->
    case Open of
        #{Id := #{events := Events} = Span} ->
            Event = #{name => Name, attrs => Attrs, time => T},
            {noreply, State#state{open = Open#{Id := Span#{events := [Event | Events]}}}};
        _ ->
            {noreply, State}
    end;
handle_info({span_end, Id, Status, EndAttrs, T}, #state{open = Open} = State) ->
    case maps:take(Id, Open) of
        {#{start_time := Start, events := Events} = Span, Rest} ->
            Done = Span#{status => status_string(Status), end_attrs => EndAttrs, end_time => T,
                         duration_us => T - Start, events => Events},
            {noreply, keep(Done, State#state{open = Rest})};
        error ->
            {noreply, State}
    end;
handle_info(_Msg, State) ->
    {noreply, State}.

%% 4.x gives a span's status as a string.
status_string(Status) when is_atom(Status) -> atom_to_list(Status);
status_string(Status) when is_binary(Status) -> binary_to_list(Status);
status_string(Status) -> Status.

parent(none) -> undefined;
parent(Id) -> Id.

keep(Span, #state{done = Done, count = N} = State) when N < ?MAX_SPANS ->
    State#state{done = [Span | Done], count = N + 1};
keep(Span, #state{done = Done} = State) ->
    State#state{done = [Span | lists:droplast(Done)]}.
