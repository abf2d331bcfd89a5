%% @doc OS signals for asyncio: `loop.add_signal_handler' on an ErlangEventLoop.
%%
%% OTP owns the node's signal handling: a signal reaches Erlang only when `os:set_signal(Sig,
%% handle)' routes it to `erl_signal_server', a gen_event manager. This module is a handler of
%% that manager, added when the application starts: it forwards each signal event to every
%% event loop that asked for it (through the `loop_signal' NIF, which wakes their contexts).
%% OTP's own handler (`erl_signal_handler') stays: on `sigterm' it still calls `init:stop()'
%% and on `sigusr1' or `sigquit' it still halts the node, after the loops were told.
%%
%% A loop's `add_signal_handler(sig, ...)' routes the signal with `os:set_signal(Sig, handle)'
%% before it returns when it runs inside a request (`py:call', `erlang.run(...)'); in a task of
%% a context's own loop it asks this handler to do so (a message) and {@link routed/0} shows
%% when it is done. The signals routed are those of `os:set_signal/2' less `sigchld' (which the
%% library catches itself while a loop asks for it: c_src/aio/child_signal.hpp) and `sigstop'
%% (nobody can catch it): see {@link routable/0}.
-module(py_signal).
-behaviour(gen_event).

-export([install/0, uninstall/0, route/1, routed/0, routable/0]).
-export([init/1, handle_event/2, handle_call/2, handle_info/2, terminate/2]).

-define(ROUTE_CALLBACK, '_py_signal_route').
-define(ROUTABLE, [sighup, sigquit, sigabrt, sigalrm, sigterm, sigusr1, sigusr2, sigtstp]).

%% @doc Adds the handler to `erl_signal_server' and registers the callback a loop routes a
%% signal with. Called by the application's supervisor; does nothing the second time.
-spec install() -> ok.
install() ->
    ok = py_callback:register(?ROUTE_CALLBACK, fun([Signal]) -> route(Signal) end),
    case whereis(erl_signal_server) of
        undefined ->
            ok;  % a minimal node without one: no signal reaches Erlang
        _ ->
            case lists:member(?MODULE, gen_event:which_handlers(erl_signal_server)) of
                true -> ok;
                false -> gen_event:add_handler(erl_signal_server, ?MODULE, [])
            end
    end.

%% @doc Removes the handler and the callback (the application stops). The signals routed stay
%% routed (`handle'): OTP's own handler ignores those it does not know.
-spec uninstall() -> ok.
uninstall() ->
    _ = (catch py_callback:unregister(?ROUTE_CALLBACK)),  % its table may have gone with the supervisor
    _ = (catch gen_event:delete_handler(erl_signal_server, ?MODULE, [])),
    ok.

%% @doc Routes Signal to `erl_signal_server' (`os:set_signal(Signal, handle)'), so that the
%% loops that asked for it get it. `{error, not_routable}' for a signal a loop may not handle.
-spec route(atom()) -> ok | {error, not_routable}.
route(Signal) ->
    case lists:member(Signal, ?ROUTABLE) of
        true ->
            ok = os:set_signal(Signal, handle),
            persistent_term:put({?MODULE, Signal}, routed),
            ok;
        false ->
            {error, not_routable}
    end.

%% @doc The signals routed for event loops so far.
-spec routed() -> [atom()].
routed() ->
    [S || S <- ?ROUTABLE, persistent_term:get({?MODULE, S}, undefined) =:= routed].

%% @doc The signals an event loop may handle.
-spec routable() -> [atom()].
routable() ->
    ?ROUTABLE.

%% @private
-spec init(term()) -> {ok, undefined}.
init(_) ->
    {ok, undefined}.

%% @private
-spec handle_event(term(), State) -> {ok, State}.
handle_event(Signal, State) when is_atom(Signal) ->
    _ = case lists:member(Signal, ?ROUTABLE) of
            true -> py_nif:loop_signal(Signal);
            false -> ok
        end,
    {ok, State};
handle_event(_, State) ->
    {ok, State}.

%% @private
-spec handle_call(term(), State) -> {ok, ok, State}.
handle_call(_, State) ->
    {ok, ok, State}.

%% @private
%% {py_signal_route, Signal}: a loop's request made outside a request (erlang.send).
-spec handle_info(term(), State) -> {ok, State}.
handle_info({py_signal_route, Signal}, State) ->
    _ = route(Signal),
    {ok, State};
handle_info(_, State) ->
    {ok, State}.

%% @private
-spec terminate(term(), term()) -> ok.
terminate(_, _) ->
    ok.
