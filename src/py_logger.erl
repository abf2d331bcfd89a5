%% @doc Python `logging' forwarded to OTP `logger' (see docs/logging.md).
%%
%% {@link configure/1} installs a handler on the root logger of every interpreter, through
%% {@link py_setup} (so owngil contexts started later get it too). The handler sends each
%% record with `erlang.send' to this process, registered as `py_logger', which logs it with
%% `logger:log/4': Python never waits for Erlang. When this process restarts it installs the
%% handlers again, with its new pid.
-module(py_logger).
-behaviour(gen_server).

-export([configure/1, start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([options/0, level/0]).

-type level() :: debug | info | warning | error | critical.
-type options() :: #{level => level() | none, format => iodata(), capture_warnings => boolean(),
                     default_handler => boolean()}.

-define(SERVER, ?MODULE).
-define(DEFAULT_FILTER, erlang_python).

%% OTP's default handler logs events of no domain or of domain [otp | _] only; a filter on it
%% lets [python] through too.
default_handler(true) ->
    case logger:add_handler_filter(default, ?DEFAULT_FILTER, {fun logger_filters:domain/2, {log, sub, [python]}}) of
        ok -> ok;
        {error, {already_exist, _}} -> ok;
        {error, {not_found, default}} -> ok
    end;
default_handler(false) ->
    _ = logger:remove_handler_filter(default, ?DEFAULT_FILTER),
    ok.

%% @doc Forwards Python log records to `logger' from every interpreter, replacing the settings
%% of an earlier call (one handler per interpreter, whatever the number of calls).
%%
%% Options: `level' (default `debug'): the minimum Python level forwarded, also set on the root
%% logger; `none' removes the handlers and stops capturing warnings. `format' (default
%% `<<"%(message)s">>'): the `logging.Formatter' format of the message. `capture_warnings'
%% (default `true'): `logging.captureWarnings', so `warnings.warn' arrives as a `warning' from
%% the logger `py.warnings'. `default_handler' (default `true'): add a filter to OTP's `default'
%% handler so that it prints events of domain `[python]' (it drops events of any domain but
%% `[otp | _]' otherwise); `false' removes that filter.
%%
%% Returns `ok', `{error, {invalid_option, {Key, Value}}}', `{error, {unknown_option, Key}}',
%% `{error, not_started}' when the application is not running, or `{error, Reason}' when an
%% interpreter could not be configured.
-spec configure(options()) -> ok | {error, term()}.
configure(Opts) when is_map(Opts) ->
    case check_options(maps:to_list(Opts), #{}) of
        {ok, Checked} ->
            case whereis(?SERVER) of
                undefined -> {error, not_started};
                Pid -> install(Pid, Checked)
            end;
        {error, _} = Error ->
            Error
    end;
configure(_) ->
    erlang:error(badarg).

install(Pid, #{level := none} = Opts) ->
    _ = logger:remove_handler_filter(default, ?DEFAULT_FILTER),
    py_setup:set(logging, {'_erlang_logging', configure, [Pid, none, none, false]}, Opts);
install(Pid, #{level := Level, format := Format, capture_warnings := Capture} = Opts) ->
    ok = default_handler(maps:get(default_handler, Opts)),
    py_setup:set(logging, {'_erlang_logging', configure, [Pid, levelno(Level), Format, Capture]}, Opts).

check_options([], Acc) ->
    {ok, maps:merge(#{level => debug, format => <<"%(message)s">>, capture_warnings => true,
                      default_handler => true}, Acc)};
check_options([{level, L} | Rest], Acc) when L =:= debug; L =:= info; L =:= warning; L =:= error;
                                             L =:= critical; L =:= none ->
    check_options(Rest, Acc#{level => L});
check_options([{format, F} = Opt | Rest], Acc) when is_binary(F); is_list(F) ->
    case catch unicode:characters_to_binary(F) of
        Bin when is_binary(Bin) -> check_options(Rest, Acc#{format => Bin});
        _ -> {error, {invalid_option, Opt}}
    end;
check_options([{Key, B} | Rest], Acc) when (Key =:= capture_warnings orelse Key =:= default_handler),
                                           is_boolean(B) ->
    check_options(Rest, Acc#{Key => B});
check_options([{Key, _} = Opt | _], _Acc) when Key =:= level; Key =:= format; Key =:= capture_warnings;
                                               Key =:= default_handler ->
    {error, {invalid_option, Opt}};
check_options([{Key, _} | _], _Acc) ->
    {error, {unknown_option, Key}}.

levelno(debug) -> 10;
levelno(info) -> 20;
levelno(warning) -> 30;
levelno(error) -> 40;
levelno(critical) -> 50.

%% Python's numeric level to logger's; custom levels go to the standard one below them.
level(N) when N >= 50 -> critical;
level(N) when N >= 40 -> error;
level(N) when N >= 30 -> warning;
level(N) when N >= 20 -> info;
level(_) -> debug.

%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    case py_setup:lookup(logging) of
        {ok, #{level := Level} = Opts} when Level =/= none ->
            %% Restarted: the handlers still send to the pid that died. Not from init, which
            %% must not wait for contexts.
            Self = self(),
            _ = spawn(fun() -> install(Self, Opts) end),
            ok;
        _ ->
            ok
    end,
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), State) -> {reply, {error, unknown_call}, State}.
handle_call(_Msg, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), State) -> {noreply, State}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
%% A record from an interpreter's ErlangHandler (priv/_erlang_logging.py).
-spec handle_info(term(), State) -> {noreply, State}.
handle_info({<<"$py_log">>, LevelNo, Name, Msg, Path, Line, Func, Module, Created}, State) ->
    Meta = #{domain => [python],
             py_logger => Name,
             py_module => Module,
             py_func => Func,
             file => unicode:characters_to_list(Path),
             line => Line,
             time => round(Created * 1000000),
             py_meta => #{<<"module">> => Module, <<"lineno">> => Line, <<"funcName">> => Func}},
    logger:log(level(LevelNo), "~ts", [Msg], Meta),
    {noreply, State};
handle_info(_Msg, State) ->
    {noreply, State}.
