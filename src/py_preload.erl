%% @doc Preload code: Python run once in every interpreter, whose globals (imports, functions,
%% constants) every new namespace starts with (erlang_python 4.x's `py_preload').
%%
%% The code is kept in `persistent_term' and applied through {@link py_setup}: on every
%% running interpreter when it is set, on every owngil context that starts later, and at
%% application start when it was set before. Namespaces that exist already (a context's shared
%% one once used, a process's own one on a pool context) keep the globals they have; namespaces
%% made afterwards get a copy of the new ones. See docs/contexts.md.
-module(py_preload).

-export([set_code/1, get_code/0, clear_code/0, has_preload/0, apply_on_start/0]).

-define(KEY, {?MODULE, code}).

%% @doc Sets the preload code (a binary or iolist of Python statements). When the application
%% runs, the code runs at once on every interpreter: `ok', or `{error, Reason}' with the first
%% failure (a Python exception as `{error, {Type, Message}}'); the code stays set either way and
%% the interpreters that failed keep their previous preload.
-spec set_code(iodata()) -> ok | {error, term()}.
set_code(Code) when is_binary(Code); is_list(Code) ->
    Bin = iolist_to_binary(Code),
    persistent_term:put(?KEY, Bin),
    apply_code(Bin);
set_code(_) ->
    erlang:error(badarg).

%% @doc The preload code, or `undefined'.
-spec get_code() -> binary() | undefined.
get_code() ->
    persistent_term:get(?KEY, undefined).

%% @doc Removes the preload code: namespaces made afterwards start empty.
-spec clear_code() -> ok.
clear_code() ->
    _ = persistent_term:erase(?KEY),
    _ = apply_code(none),
    ok.

%% @doc Whether preload code is set.
-spec has_preload() -> boolean().
has_preload() ->
    get_code() =/= undefined.

%% @private
%% Called by erlang_python_sup as the application starts: code set before it is applied to
%% the contexts that start now.
-spec apply_on_start() -> ok.
apply_on_start() ->
    case get_code() of
        undefined -> ok;
        Code ->
            _ = apply_code(Code),
            ok
    end.

apply_code(Code) ->
    case py_setup:set(preload, {'_erlang_setup', set_preload, [Code]}, undefined) of
        {error, not_started} -> ok;  % applied when the application starts
        Result -> Result
    end.
