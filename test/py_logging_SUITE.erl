%% @doc py:configure_logging/0,1: Python `logging' records and `warnings' reach OTP `logger'
%% from pool contexts and owngil contexts (skipped before Python 3.13), with the level mapped,
%% the formatted message and the logger name; records below the configured level do not.
%%
%% The suite is itself a logger handler (log/2): it forwards the events of domain [python] to
%% the test process.
-module(py_logging_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([log/2]).
-export([pool_context/1, owngil_context/1, levels/1, warnings/1, below_level/1, format/1,
         configure_twice/1, python_threads/1, sink_gone/1, logger_restart/1, level_none/1,
         bad_options/1, app_restart/1]).

-define(HANDLER, py_logging_suite).

suite() -> [{timetrap, {minutes, 2}}].

all() ->
    [pool_context, owngil_context, levels, warnings, below_level, format, configure_twice,
     python_threads, sink_gone, logger_restart, level_none, bad_options, app_restart].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    #{level := Primary} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    [{primary_level, Primary} | Config].

end_per_suite(Config) ->
    ok = py:configure_logging(#{level => none}),
    ok = logger:set_primary_config(level, ?config(primary_level, Config)),
    application:stop(erlang_python).

init_per_testcase(_Case, Config) ->
    ok = logger:add_handler(?HANDLER, ?MODULE,
                            #{level => all, config => #{pid => self()}, filter_default => stop,
                              filters => [{python, {fun logger_filters:domain/2, {log, sub, [python]}}}]}),
    Config.

end_per_testcase(_Case, _Config) ->
    ok = logger:remove_handler(?HANDLER),
    flush().

%% logger handler callback: runs in the process that logs (py_logger).
log(Event, #{config := #{pid := Pid}}) ->
    Pid ! {logged, Event},
    ok.

flush() ->
    receive {logged, _} -> flush() after 0 -> ok end.

%% The next event: {Level, Message, Meta}.
next() ->
    receive
        {logged, #{level := Level, msg := {Format, Args}, meta := Meta}} ->
            {Level, unicode:characters_to_binary(io_lib:format(Format, Args)), Meta}
    after 5000 ->
        ct:fail(no_log_event)
    end.

nothing_more() ->
    receive {logged, E} -> ct:fail({unexpected, E}) after 300 -> ok end.

owngil() ->
    case py_context:new(#{mode => owngil}) of
        {ok, Ctx} -> Ctx;
        {error, {owngil_unsupported, V}} -> {skip, "owngil contexts need Python 3.13+, this is " ++ binary_to_list(V)}
    end.

hello(Ctx) ->
    ok = py:exec(Ctx, <<"import logging\nlogging.getLogger('x.y').warning('hello %s', 'there')\n">>).

check_hello(Name) ->
    {warning, <<"hello there">>, Meta} = next(),
    #{domain := [python], py_logger := Name, line := 2, file := "<exec>"} = Meta,
    ok.

%% --- cases ----------------------------------------------------------------------------------

pool_context(_Config) ->
    ok = py:configure_logging(),
    [begin hello(Ctx), check_hello(<<"x.y">>) end || Ctx <- py_context_router:contexts()],
    %% A function in a module: module, function and line in the metadata; time of the record.
    ok = py:exec(<<"import logging\ndef f():\n    logging.getLogger('x.y').info('in f')\n">>),
    Before = os:system_time(microsecond),
    {ok, none} = py:call('__main__', f, []),
    {info, <<"in f">>, #{py_logger := <<"x.y">>, py_func := <<"f">>, line := 3, time := T,
                         py_meta := #{<<"funcName">> := <<"f">>, <<"lineno">> := 3}}} = next(),
    true = T >= Before andalso T =< os:system_time(microsecond),
    nothing_more().

owngil_context(_Config) ->
    case owngil() of
        {skip, _} = Skip ->
            Skip;
        Before ->
            ok = py:configure_logging(),
            hello(Before),
            check_hello(<<"x.y">>),
            After = owngil(),
            hello(After),
            check_hello(<<"x.y">>),
            ok = py:exec(After, <<"import logging\nlogging.getLogger('own').error('only here')\n">>),
            {error, <<"only here">>, #{py_logger := <<"own">>}} = next(),
            ok = py_context:stop(Before),
            ok = py_context:stop(After),
            nothing_more()
    end.

levels(_Config) ->
    ok = py:configure_logging(#{level => debug}),
    ok = py:exec(<<"
import logging
log = logging.getLogger('levels')
log.debug('d')
log.info('i')
log.warning('w')
log.error('e')
log.critical('c')
log.log(25, 'between info and warning')
log.log(5, 'below debug')
">>),
    {debug, <<"d">>, _} = next(),
    {info, <<"i">>, _} = next(),
    {warning, <<"w">>, _} = next(),
    {error, <<"e">>, _} = next(),
    {critical, <<"c">>, _} = next(),
    {info, <<"between info and warning">>, _} = next(),
    %% Below DEBUG: not forwarded (the root logger's level is DEBUG).
    nothing_more().

warnings(_Config) ->
    ok = py:configure_logging(),
    N = integer_to_binary(erlang:unique_integer([positive])),
    ok = py:exec(<<"import warnings\nwarnings.warn('careful ", N/binary, "', UserWarning)\n">>),
    {warning, Msg, #{py_logger := <<"py.warnings">>}} = next(),
    {match, _} = re:run(Msg, <<"UserWarning: careful ", N/binary>>),
    ok = py:configure_logging(#{capture_warnings => false}),
    {ok, false} = py:eval(<<"__import__('logging')._warnings_showwarning is not None">>),
    nothing_more().

below_level(_Config) ->
    ok = py:configure_logging(#{level => error}),
    ok = py:exec(<<"
import logging
log = logging.getLogger('x.y')
log.debug('no')
log.info('no')
log.warning('no')
log.error('yes')
">>),
    {error, <<"yes">>, _} = next(),
    %% warnings are WARNING: below error.
    ok = py:exec(<<"import warnings\nwarnings.warn('not forwarded', UserWarning)\n">>),
    nothing_more().

format(_Config) ->
    ok = py:configure_logging(#{format => <<"%(name)s|%(levelname)s|%(message)s">>}),
    ok = py:exec(<<"import logging\nlogging.getLogger('fmt').warning('x=%d', 7)\n">>),
    {warning, <<"fmt|WARNING|x=7">>, _} = next(),
    %% Exceptions: the traceback follows the message.
    ok = py:configure_logging(),
    ok = py:exec(<<"
import logging
try:
    1/0
except ZeroDivisionError:
    logging.getLogger('exc').exception('failed')
">>),
    {error, Msg, _} = next(),
    {match, _} = re:run(Msg, <<"^failed\nTraceback.*ZeroDivisionError">>, [dotall]),
    nothing_more().

configure_twice(_Config) ->
    Owngil = case owngil() of {skip, _} -> []; O -> [O] end,
    ok = py:configure_logging(),
    ok = py:configure_logging(#{level => info}),
    Count = <<"sum(type(h).__name__ == 'ErlangHandler' for h in __import__('logging').getLogger().handlers)">>,
    [{ok, 1} = py:eval(Ctx, Count) || Ctx <- [py:context() | Owngil]],
    [begin hello(Ctx), check_hello(<<"x.y">>) end || Ctx <- [py:context() | Owngil]],
    [ok = py_context:stop(Ctx) || Ctx <- Owngil],
    nothing_more().

%% A record logged by a thread Python started (where erlang.send cannot run) is sent after the
%% next record logged on the context's thread.
python_threads(_Config) ->
    ok = py:configure_logging(),
    ok = py:exec(<<"
import logging, threading
t = threading.Thread(target=lambda: logging.getLogger('thread').warning('from a thread'))
t.start()
t.join()
logging.getLogger('ctx').warning('from the context')
">>),
    %% Sent from the thread itself, so in the order logged.
    {warning, <<"from a thread">>, #{py_logger := <<"thread">>}} = next(),
    {warning, <<"from the context">>, #{py_logger := <<"ctx">>}} = next(),
    nothing_more().

%% A handler whose Erlang process is dead: logging goes on without an error.
sink_gone(_Config) ->
    Dead = spawn(fun() -> ok end),
    Mon = monitor(process, Dead),
    receive {'DOWN', Mon, process, Dead, _} -> ok end,
    {ok, none} = py:call('_erlang_logging', configure, [Dead, 10, <<"%(message)s">>, true]),
    ok = py:exec(<<"import logging\nfor i in range(100): logging.getLogger('x').error('lost %d', i)\n">>),
    ok = py:configure_logging(),
    hello(py:context()),
    check_hello(<<"x.y">>),
    nothing_more().

%% py_logger restarted by its supervisor installs the handlers again, with its new pid.
logger_restart(_Config) ->
    ok = py:configure_logging(),
    Old = whereis(py_logger),
    exit(Old, kill),
    wait_new_logger(Old, 1500),  % polls for up to 30 s
    wait_forwarded(300),  % up to 30 s
    flush(),
    hello(py:context()),
    check_hello(<<"x.y">>),
    nothing_more().

wait_new_logger(_Old, 0) -> ct:fail(py_logger_not_restarted);
wait_new_logger(Old, N) ->
    case whereis(py_logger) of
        Pid when is_pid(Pid), Pid =/= Old -> ok;
        _ -> timer:sleep(20), wait_new_logger(Old, N - 1)
    end.

wait_forwarded(0) -> ct:fail(handlers_not_reinstalled);
wait_forwarded(N) ->
    ok = py:exec(<<"import logging\nlogging.getLogger('probe').warning('probe')\n">>),
    receive {logged, _} -> ok after 100 -> wait_forwarded(N - 1) end.

level_none(_Config) ->
    ok = py:configure_logging(),
    ok = py:configure_logging(#{level => none}),
    {ok, 0} = py:eval(<<"len(__import__('logging').getLogger().handlers)">>),
    hello(py:context()),
    nothing_more().

bad_options(_Config) ->
    {error, {invalid_option, {level, loud}}} = py:configure_logging(#{level => loud}),
    {error, {invalid_option, {format, 42}}} = py:configure_logging(#{format => 42}),
    {error, {invalid_option, {capture_warnings, yes}}} = py:configure_logging(#{capture_warnings => yes}),
    {error, {unknown_option, colour}} = py:configure_logging(#{colour => red}),
    {'EXIT', {badarg, _}} = catch py:configure_logging([]),
    ok.

%% The main interpreter outlives an application restart, and so do the versions of the setup
%% steps it has run: a configure_logging after the restart must still reach it (py_setup's
%% versions once restarted at 1 with the application, and were skipped as already run).
app_restart(_Config) ->
    ok = py:configure_logging(#{level => info}),
    ok = py:configure_logging(),
    ok = application:stop(erlang_python),
    {ok, _} = application:ensure_all_started(erlang_python),
    ok = py:configure_logging(),
    [begin hello(Ctx), check_hello(<<"x.y">>) end || Ctx <- py_context_router:contexts()],
    nothing_more().
