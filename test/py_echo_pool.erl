%% @doc The supervisor of py_worker_SUITE's echo servers: Size py_echo_worker children, each a
%% context whose worker loop accepts on a copy of one Erlang listening socket. A crashed
%% worker is restarted; reload/1 replaces them one at a time with the code of a new version.
-module(py_echo_pool).
-behaviour(supervisor).

-export([start_link/3, workers/1, reload/2]).
-export([init/1]).

-spec start_link(gen_tcp:socket(), py_context:mode(), pos_integer()) -> {ok, pid()}.
start_link(LSock, Mode, Size) ->
    supervisor:start_link(?MODULE, {LSock, Mode, Size}).

%% The running workers: [{Id, Pid}], by id.
-spec workers(pid()) -> [{integer(), pid()}].
workers(Sup) ->
    lists:sort([{Id, Pid} || {Id, Pid, worker, _} <- supervisor:which_children(Sup), is_pid(Pid)]).

%% Rolling reload: each worker in turn stops accepting, finishes its connections and is
%% restarted with the Python code of Version, while the others keep serving.
-spec reload(pid(), binary()) -> ok.
reload(Sup, Version) ->
    persistent_term:put(py_echo_worker_version, Version),
    lists:foreach(fun({Id, _}) ->
                          ok = supervisor:terminate_child(Sup, Id),
                          {ok, _} = supervisor:restart_child(Sup, Id)
                  end, workers(Sup)).

%% @private
-spec init({gen_tcp:socket(), py_context:mode(), pos_integer()}) ->
          {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init({LSock, Mode, Size}) ->
    Children = [#{id => I, start => {py_echo_worker, start_link, [LSock, Mode]},
                  restart => permanent, shutdown => 15000, type => worker}
                || I <- lists:seq(1, Size)],
    {ok, {#{strategy => one_for_one, intensity => 20, period => 10}, Children}}.
