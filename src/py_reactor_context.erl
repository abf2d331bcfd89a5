%% @doc Reactor contexts: sockets accepted in Erlang, served by Python protocol objects.
%%
%% A reactor context owns a Python context (worker or owngil). {@link handoff/3} gives it a
%% connected descriptor; the context keeps its own `dup()' of it (the caller keeps the one it
%% passed and closes its socket whenever it likes), makes a protocol with the factory set by
%% `erlang.reactor.set_protocol_factory' and registers the dup with the context's event loop:
%% readiness comes from `enif_select' (priv/_erlang_loop.py), the protocol's callbacks run on
%% the context's thread (priv/_erlang_reactor.py). The context closes its dup when the protocol
%% answers `"close"', raises, returns an unknown action, on end of stream, and when it stops.
%% See docs/reactor.md.
-module(py_reactor_context).
-behaviour(gen_server).

-export([start_link/2, start_link/3, stop/1, stats/1, handoff/2, handoff/3, context/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(DEFAULT_MAX_CONNECTIONS, 100).
-define(DEFAULT_NAME, py_reactor_context_default).

-type state() :: #{id := term(), ctx := pid()}.
-type opts() :: #{max_connections => pos_integer(), setup_code => iodata(), default => boolean(),
                  thread_priority => py_context:thread_priority(),
                  app_module => python_name(), app_callable => python_name()}.
%% A dotted module name or an attribute name, as a binary, string or atom.
-type python_name() :: binary() | string() | atom().
-export_type([opts/0]).

%% @doc {@link start_link/3} with no options.
-spec start_link(term(), worker | owngil | auto) -> {ok, pid()} | {error, term()}.
start_link(Id, Mode) ->
    start_link(Id, Mode, #{}).

%% @doc Starts a reactor context, linked to the caller. `Id' is reported by {@link stats/1};
%% `Mode' is `worker', `owngil' or `auto' (= `worker'). Options: `max_connections' (default
%% 100: a handoff beyond it is `{error, too_many_connections}'), `setup_code' (Python run on
%% the context before it serves, e.g. to set the protocol factory; if it raises, the start
%% fails with `{error, {setup_code, Error}}'), `default' (`true': the target of {@link handoff/2}),
%% `thread_priority' (the context thread's OS scheduling, as in {@link py_context:new/1};
%% default `normal', whatever the application's `thread_priority': a reactor's work is short
%% wake-ups whose latency counts, which `auto''s SCHED_IDLE start delays behind busy threads),
%% `app_module' and `app_callable' (given together, as in erlang_python 4.1: after `setup_code',
%% the context's working directory is put first on `sys.path' and `from AppModule import
%% AppCallable as _reactor_app' runs in the namespace `setup_code' ran in, so the protocols it
%% defined find the application as the global `_reactor_app'; if the import fails the start
%% fails with `{error, {app_module, Error}}').
-spec start_link(term(), worker | owngil | auto, opts()) -> {ok, pid()} | {error, term()}.
start_link(Id, Mode, Opts) when is_map(Opts) ->
    case check_opts(Opts) of
        ok -> start(Id, Mode, Opts);
        {error, _} = Error -> Error
    end;
start_link(_, _, _) ->
    erlang:error(badarg).

start(Id, Mode, Opts) ->
    case maps:get(default, Opts, false) of
        true -> gen_server:start({local, ?DEFAULT_NAME}, ?MODULE, {Id, Mode, Opts, self()}, []);
        false -> gen_server:start(?MODULE, {Id, Mode, Opts, self()}, [])
    end.

check_opts(Opts) ->
    Valid = fun(max_connections, N) -> is_integer(N) andalso N > 0;
               (setup_code, C) -> is_binary(C) orelse is_list(C);
               (default, B) -> is_boolean(B);
               (thread_priority, P) -> lists:member(P, [auto, normal, batch, low, idle]);
               (app_module, M) -> python_name(M, <<".">>);
               (app_callable, C) -> python_name(C, <<>>);
               (_, _) -> false
            end,
    case [K || {K, V} <- lists:sort(maps:to_list(Opts)), not Valid(K, V)] of
        [] -> check_app_pair(Opts);
        [Key | _] -> {error, {invalid_option, Key}}
    end.

%% app_module and app_callable come together or not at all.
check_app_pair(#{app_module := _, app_callable := _}) -> ok;
check_app_pair(#{app_module := _}) -> {error, {missing_option, app_callable}};
check_app_pair(#{app_callable := _}) -> {error, {missing_option, app_module}};
check_app_pair(_) -> ok.

%% A Python identifier, or identifiers joined by Separator (`.' for a module path): what goes into
%% the import statement cannot be anything but names.
python_name(Name, Separator) ->
    case name_binary(Name) of
        {ok, Bin} when Bin =/= <<>> ->
            Parts = case Separator of <<>> -> [Bin]; _ -> binary:split(Bin, Separator, [global]) end,
            lists:all(fun is_identifier/1, Parts);
        _ ->
            false
    end.

name_binary(A) when is_atom(A) -> {ok, atom_to_binary(A)};
name_binary(B) when is_binary(B) -> {ok, B};
name_binary(L) when is_list(L) ->
    case unicode:characters_to_binary(L) of
        B when is_binary(B) -> {ok, B};
        _ -> error
    end;
name_binary(_) -> error.

%% ASCII identifiers (Python's accept more; an application module named otherwise is rare).
is_identifier(<<First, Rest/binary>>) when First =:= $_; First >= $a, First =< $z; First >= $A, First =< $Z ->
    lists:all(fun(C) -> C =:= $_ orelse (C >= $a andalso C =< $z) orelse (C >= $A andalso C =< $Z)
                            orelse (C >= $0 andalso C =< $9) end, binary_to_list(Rest));
is_identifier(_) ->
    false.

%% @doc Stops the reactor context: every connection is closed (the protocols'
%% `connection_lost' runs), then its Python context stops.
-spec stop(pid() | atom()) -> ok.
stop(Reactor) ->
    check_reactor(Reactor),
    gen_server:stop(Reactor).

%% @doc `#{id, active_connections, total_connections, total_requests, max_connections,
%% protocol_errors}'. `total_requests' counts the `"write_pending"' answers of
%% `data_received'; `protocol_errors' the callbacks that raised or returned an unknown action.
-spec stats(pid() | atom()) -> map() | {error, term()}.
stats(Reactor) ->
    reactor_call(Reactor, stats).

%% @doc Hands `Fd' to the default reactor context (started with `#{default => true}').
-spec handoff(integer(), map()) -> ok | {error, term()}.
handoff(Fd, ClientInfo) ->
    case whereis(?DEFAULT_NAME) of
        undefined -> {error, no_reactor_context};
        Pid -> handoff(Pid, Fd, ClientInfo)
    end.

%% @doc Hands the connected descriptor `Fd' to a reactor context. On `ok' the context holds
%% its own duplicate of `Fd' and the protocol's `connection_made' ran; the caller still owns
%% `Fd' (close the socket it came from: the connection stays up). Errors: `ebadf' (not an open
%% descriptor), `too_many_connections', `no_protocol_factory', `{protocol, Reason}' (the factory or
%% `connection_made' raised: logged, nothing left open).
-spec handoff(pid() | atom(), integer(), map()) -> ok | {error, term()}.
handoff(Reactor, Fd, ClientInfo) when is_integer(Fd), is_map(ClientInfo) ->
    reactor_call(Reactor, {handoff, Fd, ClientInfo});
handoff(_, _, _) ->
    erlang:error(badarg).

%% @doc The Python context the reactor runs on (for `py:call/4', `py:eval/2' on it).
-spec context(pid() | atom()) -> pid().
context(Reactor) ->
    reactor_call(Reactor, context).

reactor_call(Reactor, Request) ->
    check_reactor(Reactor),
    gen_server:call(Reactor, Request, infinity).

%% badarg for a live local process that is not a reactor context (it would never answer); a
%% name nobody has or a process that is gone exits the caller with noproc, as gen_server does.
check_reactor(Name) when is_atom(Name) ->
    case whereis(Name) of
        undefined -> ok;
        Pid -> check_reactor(Pid)
    end;
check_reactor(Pid) when is_pid(Pid), node(Pid) =:= node() ->
    case {proc_lib:initial_call(Pid), is_process_alive(Pid)} of
        {{?MODULE, init, _}, _} -> ok;
        {_, false} -> ok;   % gone
        _ -> erlang:error(badarg)
    end;
check_reactor(Pid) when is_pid(Pid) ->
    ok;
check_reactor(_) ->
    erlang:error(badarg).

%% gen_server

%% @private
%% Linked to the caller once started: a start that fails returns its error and sends the
%% caller no exit signal.
-spec init({term(), worker | owngil | auto, opts(), pid()}) -> {ok, state()} | {stop, term()}.
init({Id, Mode0, Opts, Caller}) ->
    process_flag(trap_exit, true),
    Mode = case Mode0 of auto -> worker; _ -> Mode0 end,
    case py_context:new(#{mode => Mode, thread_priority => maps:get(thread_priority, Opts, normal)}) of
        {ok, Ctx} ->
            Max = maps:get(max_connections, Opts, ?DEFAULT_MAX_CONNECTIONS),
            case setup(Ctx, Max, Opts) of
                ok ->
                    link(Caller),
                    {ok, #{id => Id, ctx => Ctx}};
                {error, Reason} ->
                    _ = py_context:stop(Ctx),
                    {stop, Reason}
            end;
        {error, Reason} ->
            {stop, Reason}
    end.

%% The reactor module, then setup_code, then the application import (4.1's order: setup_code can
%% put the application's directory on sys.path).
setup(Ctx, Max, Opts) ->
    case py:call(Ctx, '_erlang_reactor', '_start', [Max]) of
        {ok, true} ->
            case run_setup_code(Ctx, maps:get(setup_code, Opts, undefined)) of
                ok -> import_app(Ctx, Opts);
                {error, _} = Error -> Error
            end;
        {error, Reason} -> {error, {reactor_module, Reason}}
    end.

run_setup_code(_Ctx, undefined) ->
    ok;
run_setup_code(Ctx, SetupCode) ->
    case py:exec(Ctx, SetupCode) of
        ok -> ok;
        {error, Reason} -> {error, {setup_code, Reason}}
    end.

%% check_opts/1 made sure both names are identifiers, so the statement is only names.
import_app(Ctx, #{app_module := Module, app_callable := Callable}) ->
    {ok, M} = name_binary(Module),
    {ok, C} = name_binary(Callable),
    Code = <<"import sys as _reactor_sys\n"
             "if '.' not in _reactor_sys.path:\n"
             "    _reactor_sys.path.insert(0, '.')\n"
             "del _reactor_sys\n"
             "from ", M/binary, " import ", C/binary, " as _reactor_app\n">>,
    case py:exec(Ctx, Code) of
        ok -> ok;
        {error, Reason} -> {error, {app_module, Reason}}
    end;
import_app(_Ctx, _Opts) ->
    ok.

%% @private
-spec handle_call(term(), gen_server:from(), state()) -> {reply, term(), state()}.
handle_call({handoff, Fd, ClientInfo}, _From, #{ctx := Ctx} = State) ->
    Reply = case py:call(Ctx, '_erlang_reactor', '_handoff', [Fd, ClientInfo]) of
                {ok, {<<"ok">>, _DupFd}} -> ok;
                {ok, {<<"error">>, Reason}} -> {error, reason(Reason)};
                {error, _} = Error -> Error
            end,
    {reply, Reply, State};
handle_call(stats, _From, #{ctx := Ctx, id := Id} = State) ->
    Reply = case py:call(Ctx, '_erlang_reactor', '_stats', []) of
                {ok, {Active, Total, Requests, Max, Errors}} ->
                    #{id => Id, active_connections => Active, total_connections => Total,
                      total_requests => Requests, max_connections => Max, protocol_errors => Errors};
                {error, _} = Error ->
                    Error
            end,
    {reply, Reply, State};
handle_call(context, _From, #{ctx := Ctx} = State) ->
    {reply, Ctx, State};
handle_call(_, _From, State) ->
    {reply, {error, unknown_request}, State}.

%% @private
-spec handle_cast(term(), state()) -> {noreply, state()}.
handle_cast(_, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), state()) -> {noreply, state()} | {stop, term(), state()}.
handle_info({'EXIT', _, Reason}, State) when Reason =/= normal ->
    {stop, Reason, State};
handle_info(_, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), state()) -> ok.
terminate(_Reason, #{ctx := Ctx}) ->
    _ = py:call(Ctx, '_erlang_reactor', '_close_all', []),
    _ = py_context:stop(Ctx),
    ok.

%% The reasons of priv/_erlang_reactor.py, as atoms when they are errno names or ours.
reason(<<"connection_made raised">>) -> {protocol, connection_made};
reason(<<"protocol_factory: ", What/binary>>) -> {protocol, What};
reason(<<"e", _/binary>> = Errno) -> binary_to_atom(Errno);  % an errno name: a bounded set
reason(Name) when is_binary(Name) ->
    try binary_to_existing_atom(Name) catch error:badarg -> Name end;
reason(Other) ->
    Other.
