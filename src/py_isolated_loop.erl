%% @private
%% @doc Worker loops on isolated contexts (`py_context:start_loop/1,2' and `stop_loop/1,2' when
%% the context runs in a child process). The worker loop is the child's own event loop
%% (priv/_erlang_isolated_loop.py), on which `py_context:submit/4,5' tasks and async calls
%% run between requests; marking it a worker loop gives it an owner, which is sent
%% `{py_loop_exit, Ctx, Result}' when it ends: `ok' after stop_loop, `{error, loop_stopped}'
%% after `py_event_loop:stop/1', `{error, context_stopped}' when the context stops, and
%% `{error, {python_crashed, Reason}}' when the child dies (the loop dies with it). As in the
%% other modes, the loop is stopped when its owner exits.
%%
%% Runs in the calling process: the start and the stop are requests of the context, queued
%% behind the requests before them; the context process (py_isolated) keeps the loop's owner.
-module(py_isolated_loop).

-export([start/2, stop/3]).

%% How long a start waits for the child (it may be running a request).
-define(START_TIMEOUT, 15000).
%% A stop's request may run past its grace period by this much before it is interrupted.
-define(STOP_MARGIN, 2000).

%% @doc Makes the event loop of isolated context Ctx a worker loop owned by Owner: `ok',
%% `{error, loop_running}', or the error of the start request (the context stays without one).
-spec start(pid(), pid()) -> ok | {error, term()}.
start(Ctx, Owner) ->
    case py_isolated:context_call(Ctx, {claim_loop, Owner}) of
        {ok, Serial} ->
            case py_isolated:request(Ctx, {call, '_erlang_isolated_loop', start_worker, [Ctx, Serial], #{}},
                                     ?START_TIMEOUT) of
                {ok, true} ->
                    py_isolated:context_call(Ctx, {loop_started, Serial});
                {error, _} = Error ->
                    _ = py_isolated:context_call(Ctx, {loop_failed, Serial}),
                    Error
            end;
        {error, _} = Error ->
            Error
    end.

%% @doc Stops worker loop Serial of Ctx (its state already set to stopped by the context
%% process): the child cancels its tasks, gives them Grace ms and closes the loop; the owner is
%% told the result. `ok', or the error of the stop request (`{error, timeout}' when a task kept
%% the child busy past Grace: the stop's own code is interrupted then).
-spec stop(pid(), pos_integer(), non_neg_integer()) -> ok | {error, term()}.
stop(Ctx, Serial, Grace) ->
    Result = case py_isolated:request(Ctx, {call, '_erlang_isolated_loop', stop_worker, [Serial, Grace / 1000], #{}},
                                      Grace + ?STOP_MARGIN) of
                 {ok, _} -> ok;
                 {error, _} = Error -> Error
             end,
    _ = py_isolated:context_call(Ctx, {loop_ended, Serial, Result}),
    Result.
