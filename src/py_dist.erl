%% @doc Running Python on the contexts of another node: `py:call', `py:eval' and `py:exec'
%% across Erlang distribution, with errors as values.
%%
%% A target is a node name (the call goes to that node's default pool) or the pid of a context
%% on any node (made there with {@link new_context/2} or `py_context:new/1'). Each call is an
%% `erpc' call: on the target node a fresh process makes the `py' call and waits for it, so
%%
%% <ul>
%% <li>Erlang callbacks from its Python code (`erlang.call') run on the target node, in that
%%     process, with the functions registered <em>there</em>;</li>
%% <li>on a node's default pool every call gets a fresh namespace (the calls of one calling
%%     process all go to one pool context there, picked by its pid): use a context from
%%     {@link new_context/2} to keep definitions between calls;</li>
%% <li>the timeout bounds the call on the target node: when it expires the process making the
%%     call there is killed, which cancels the request and interrupts its Python code as for a
%%     local timeout, and the result is `{error, timeout}'; the same happens when the calling
%%     process exits or the two nodes lose their connection during the call.</li>
%% </ul>
%%
%% Failures of the link come back as values: `{error, {nodedown, Node}}' when the node is not
%% connected and cannot be reached (or goes down during the call), `{error, {not_started, Node}}'
%% when erlang_python is not running there, `{error, {not_loaded, Node}}' when its code is not
%% on that node's code path, `{error, {erpc, Reason}}' for other `erpc' failures (`timeout' when
%% the node does not answer 5 s after the call's own timeout, `notsup', ...). A target that is
%% neither a node name nor a pid, bad arguments (`badarg' raised by `py' on the target node) and
%% other exceptions raised there are raised in the caller, as the local call would raise them.
%% See docs/distributed.md.
-module(py_dist).

-include("py_timeout.hrl").

-export([call/4, call/5, eval/2, eval/3, eval/4, exec/2, exec/3,
         new_context/1, new_context/2]).
%% Run by erpc on the target node.
-export([serve/3]).

-export_type([target/0, dist_error/0]).

-type target() :: node() | py_context:context().
-type dist_error() :: {error, {nodedown | not_started | not_loaded, node()} | {erpc, term()}}.
-type opts() :: #{kwargs => map(), timeout => py:timeout_ms()}.
-type request() :: {call, target(), py:py_module(), py:py_func(), list(), map()}
                 | {eval, target(), iodata(), map()}
                 | {exec, target(), iodata()}.

%% How much longer than the call's own timeout the caller waits for the target node's answer.
-define(SLACK, 5000).
%% The longest finite timeout erpc takes.
-define(MAX_TIMEOUT, 4294967295).

%% @doc `py:call(Module, Function, Args)' on Target (timeout 30 s).
-spec call(target(), py:py_module(), py:py_func(), list()) -> py:py_result() | dist_error().
call(Target, Module, Function, Args) ->
    call(Target, Module, Function, Args, #{}).

%% @doc `py:call' on Target with options `kwargs' (a map of keyword arguments) and `timeout'
%% (ms or `infinity', default 30000).
-spec call(target(), py:py_module(), py:py_func(), list(), opts()) -> py:py_result() | dist_error().
call(Target, Module, Function, Args, Opts) when is_map(Opts) ->
    remote({call, Target, Module, Function, Args, maps:get(kwargs, Opts, #{})}, timeout(Opts));
call(_, _, _, _, _) ->
    erlang:error(badarg).

%% @doc `py:eval(Code)' on Target (timeout 30 s).
-spec eval(target(), iodata()) -> py:py_result() | dist_error().
eval(Target, Code) ->
    eval(Target, Code, #{}, #{}).

%% @doc `py:eval(Code, Locals)' on Target (timeout 30 s).
-spec eval(target(), iodata(), map()) -> py:py_result() | dist_error().
eval(Target, Code, Locals) ->
    eval(Target, Code, Locals, #{}).

%% @doc `py:eval(Code, Locals)' on Target with option `timeout' (ms or `infinity', default 30000).
-spec eval(target(), iodata(), map(), #{timeout => py:timeout_ms()}) -> py:py_result() | dist_error().
eval(Target, Code, Locals, Opts) when is_map(Opts) ->
    remote({eval, Target, Code, Locals}, timeout(Opts));
eval(_, _, _, _) ->
    erlang:error(badarg).

%% @doc `py:exec(Code)' on Target (timeout 30 s). On a node's default pool the definitions are
%% gone after the call; exec on a context to keep them.
-spec exec(target(), iodata()) -> ok | {error, term()}.
exec(Target, Code) ->
    exec(Target, Code, #{}).

%% @doc `py:exec(Code)' on Target with option `timeout' (ms or `infinity', default 30000).
-spec exec(target(), iodata(), #{timeout => py:timeout_ms()}) -> ok | {error, term()}.
exec(Target, Code, Opts) when is_map(Opts) ->
    remote({exec, Target, Code}, timeout(Opts));
exec(_, _, _) ->
    erlang:error(badarg).

%% @doc A new worker context on Node, owned by the calling process.
-spec new_context(node()) -> {ok, py_context:context()} | {error, term()}.
new_context(Node) ->
    new_context(Node, #{}).

%% @doc A new context on Node (options as for `py_context:new/1') owned by the calling
%% process: it stops when this process exits, when the two nodes lose their connection, or
%% with `py_context:stop/1'. Its shared namespace keeps what `exec' defines between calls.
-spec new_context(node(), #{mode => term()}) -> {ok, py_context:context()} | {error, term()}.
new_context(Node, Opts) when is_atom(Node), is_map(Opts) ->
    case maps:get(mode, Opts, worker) of
        Mode when Mode =:= worker; Mode =:= owngil ->
            Spec = #{mode => Mode, owner => self(), kind => own},
            erpc_call(Node, py_context_sup, start_context, [Spec], infinity);
        Mode ->
            {error, {invalid_mode, Mode}}
    end;
new_context(_, _) ->
    erlang:error(badarg).

%% @private
%% On the target node: makes the py call in a process of its own and waits for it at most
%% Timeout ms, or until Caller exits or its node is disconnected, then kills it (which cancels
%% the request and interrupts its Python code). An exception the call raises is
%% raised here again, for erpc to hand to the caller. Calls from one Caller to the default pool
%% go to one context, as a local process sticks to one.
-spec serve(request(), pid(), py:timeout_ms()) -> term().
serve(Request, Caller, Timeout) ->
    case whereis(erlang_python_sup) of
        undefined -> {error, {not_started, node()}};
        _ -> serve_started(Request, Caller, Timeout)
    end.

serve_started(Request, Caller, Timeout) ->
    {Pid, Mon} = spawn_monitor(fun() ->
                                       is_atom(element(2, Request)) andalso bind_pool_context(Caller),
                                       exit({?MODULE, run(Request)})
                               end),
    CallerMon = erlang:monitor(process, Caller),
    receive
        {'DOWN', Mon, process, Pid, {?MODULE, {value, Result}}} -> Result;
        {'DOWN', Mon, process, Pid, {?MODULE, {raise, Class, Reason, Stack}}} ->
            erlang:raise(Class, Reason, Stack);
        {'DOWN', Mon, process, Pid, Reason} -> {error, {exited, Reason}};
        {'DOWN', CallerMon, process, Caller, Reason} ->
            %% Nobody waits for the result: cancel the call, as a local caller's exit does.
            stop_call(Pid, Mon),
            {error, {caller_down, Reason}}
    after Timeout ->
        stop_call(Pid, Mon),
        {error, timeout}
    end.

%% --- internals ----------------------------------------------------------------------------------

stop_call(Pid, Mon) ->
    exit(Pid, kill),
    receive {'DOWN', Mon, process, Pid, _} -> ok end.

%% The pool context for Caller's calls: its pid's hash picks one, so that one caller's calls
%% find the same context (and its thread awake, when they come one after another).
bind_pool_context(Caller) ->
    case py_context_router:num_contexts() of
        0 -> false;
        N ->
            try py_context_router:bind_context(py_context_router:get_context(erlang:phash2(Caller, N) + 1))
            catch error:badarg -> false
            end
    end.

run(Request) ->
    try {value, apply_request(Request)}
    catch Class:Reason:Stack -> {raise, Class, Reason, Stack}
    end.

apply_request({call, Target, M, F, A, Kwargs}) when is_pid(Target) ->
    py:call(Target, M, F, A, #{kwargs => Kwargs});
apply_request({call, _Node, M, F, A, Kwargs}) ->
    py:call(M, F, A, Kwargs, infinity);
apply_request({eval, Target, Code, Locals}) when is_pid(Target) ->
    py:eval(Target, Code, Locals);
apply_request({eval, _Node, Code, Locals}) ->
    py:eval(Code, Locals, infinity);
apply_request({exec, Target, Code}) when is_pid(Target) ->
    py:exec(Target, Code);
apply_request({exec, _Node, Code}) ->
    py:exec(Code).

remote(Request, Timeout) ->
    Node = node_of(element(2, Request)),
    erpc_call(Node, ?MODULE, serve, [Request, self(), Timeout], caller_timeout(Timeout)).

node_of(Node) when is_atom(Node) -> Node;
node_of(Pid) when is_pid(Pid) -> node(Pid);
node_of(_) -> erlang:error(badarg).

timeout(Opts) ->
    case maps:get(timeout, Opts, py:default_timeout()) of
        T when ?IS_TIMEOUT(T) -> T;
        _ -> erlang:error(badarg)
    end.

caller_timeout(infinity) -> infinity;
caller_timeout(T) -> min(T + ?SLACK, ?MAX_TIMEOUT).

%% erpc's failures as values; exceptions raised on the other node raised again here.
erpc_call(Node, M, F, A, Timeout) ->
    try
        erpc:call(Node, M, F, A, Timeout)
    catch
        error:{erpc, noconnection} -> {error, {nodedown, Node}};
        error:{erpc, Reason} -> {error, {erpc, Reason}};
        error:{exception, undef, [{?MODULE, serve, _, _} | _]} -> {error, {not_loaded, Node}};
        error:{exception, Reason, Stack} -> erlang:raise(error, Reason, Stack);
        exit:{exception, Reason} -> exit(Reason);
        exit:{signal, Reason} -> {error, {erpc, {signal, Reason}}}
    end.
