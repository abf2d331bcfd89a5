%% @doc Modules imported and `sys.path' entries added in every interpreter of the node: the
%% main one (worker contexts) and each owngil context's, including owngil contexts that start
%% later (erlang_python 4.x's `py_import'). Both are applied through {@link py_setup}.
%%
%% App env (read when the application starts; a bad value stops it with
%% `{invalid_app_env, Key, Value}'):
%% ```
%% {erlang_python, [{imports, [json, {math, sqrt}]}, {paths, ["/opt/app/python"]}]}
%% '''
-module(py_import).

-export([init/0, ensure_imported/1, ensure_imported/2, is_imported/1, is_imported/2,
         all_imports/0, clear_imports/0, import_list/0, import_stats/0,
         add_path/1, add_paths/1, all_paths/0, clear_paths/0, is_path_added/1]).

-type name() :: atom() | binary() | string().

%% @doc Loads the `imports' and `paths' app env; called by erlang_python_sup as the
%% application starts. Exits with `{invalid_app_env, Key, Value}' on a bad value.
-spec init() -> ok.
init() ->
    Imports = application:get_env(erlang_python, imports, []),
    Paths = application:get_env(erlang_python, paths, []),
    ImportEntries = try [entry(I) || I <- Imports]
                    catch _:_ -> exit({invalid_app_env, imports, Imports})
                    end,
    PathBins = try [to_binary(P) || P <- Paths]
               catch _:_ -> exit({invalid_app_env, paths, Paths})
               end,
    _ = [set_imports(lists:usort(ImportEntries)) || ImportEntries =/= []],
    _ = [set_paths(dedup(PathBins)) || PathBins =/= []],
    ok.

entry({M, F}) -> {to_binary(M), to_binary(F)};
entry(M) -> {to_binary(M), all}.

%% @doc Registers Module for import in every interpreter: imported now in the running ones and
%% in every owngil context that starts later. `ok', or `{error, main_not_cacheable}' for
%% `__main__'. As in erlang_python 4.x a module that cannot be imported is registered all the
%% same (`ok'): interpreters where the import fails go on without it, and calling into it gives
%% the import's error then.
-spec ensure_imported(name()) -> ok | {error, term()}.
ensure_imported(Module) ->
    register_import(to_binary(Module), all).

%% @doc Like {@link ensure_imported/1}, also recording Function for {@link is_imported/2} and
%% {@link import_list/0}.
-spec ensure_imported(name(), name()) -> ok | {error, term()}.
ensure_imported(Module, Function) ->
    register_import(to_binary(Module), to_binary(Function)).

register_import(<<"__main__">>, _) ->
    {error, main_not_cacheable};
register_import(Module, What) ->
    locked(fun() -> set_imports(lists:usort([{Module, What} | all_imports()])) end).

%% A read-modify-write of a registry, one at a time: two at once could each set a list without
%% the other's entry, and the later set wins.
locked(Fun) ->
    global:trans({?MODULE, self()}, Fun, [node()]).

%% @doc Whether Module was registered with {@link ensure_imported/1} or {@link ensure_imported/2}.
-spec is_imported(name()) -> boolean().
is_imported(Module) ->
    M = to_binary(Module),
    lists:keymember(M, 1, all_imports()).

%% @doc Whether Module was registered as a whole, or with Function.
-spec is_imported(name(), name()) -> boolean().
is_imported(Module, Function) ->
    M = to_binary(Module),
    F = to_binary(Function),
    lists:member({M, all}, all_imports()) orelse lists:member({M, F}, all_imports()).

%% @doc Every registered import: `{Module, Function | all}'.
-spec all_imports() -> [{binary(), binary() | all}].
all_imports() ->
    case py_setup:lookup(imports) of
        {ok, Entries} -> Entries;
        error -> []
    end.

%% @doc Forgets every registered import (modules already imported stay in `sys.modules').
-spec clear_imports() -> ok.
clear_imports() ->
    _ = locked(fun() -> set_imports([]) end),
    ok.

%% @doc `{ok, #{count => N}}': the number of registered entries (modules and module/function
%% pairs).
-spec import_stats() -> {ok, #{count := non_neg_integer()}}.
import_stats() ->
    {ok, #{count => length(all_imports())}}.

%% @doc `{ok, #{Module => [Function]}}' (an empty list: the whole module).
-spec import_list() -> {ok, #{binary() => [binary()]}}.
import_list() ->
    {ok, lists:foldl(fun({M, all}, Acc) -> Acc#{M => maps:get(M, Acc, [])};
                        ({M, F}, Acc) -> Acc#{M => [F | maps:get(M, Acc, [])]}
                     end, #{}, lists:reverse(all_imports()))}.

%% @doc Adds Path to the front of `sys.path' in every interpreter, now and in owngil contexts
%% started later. Paths keep the order they were added in (the first added comes first).
-spec add_path(name()) -> ok | {error, term()}.
add_path(Path) ->
    add_paths([Path]).

%% @doc {@link add_path/1} for each path of the list, in order.
-spec add_paths([name()]) -> ok | {error, term()}.
add_paths(Paths) when is_list(Paths) ->
    New = [to_binary(P) || P <- Paths],
    locked(fun() ->
                   Old = all_paths(),
                   set_paths(Old ++ [P || P <- dedup(New), not lists:member(P, Old)])
           end);
add_paths(_) ->
    erlang:error(badarg).

%% @doc The added paths, in order.
-spec all_paths() -> [binary()].
all_paths() ->
    case py_setup:lookup(paths) of
        {ok, Paths} -> Paths;
        error -> []
    end.

%% @doc Removes the added paths from `sys.path' of every interpreter.
-spec clear_paths() -> ok.
clear_paths() ->
    _ = locked(fun() -> set_paths([]) end),
    ok.

%% @doc Whether Path was added with {@link add_path/1}.
-spec is_path_added(name()) -> boolean().
is_path_added(Path) ->
    lists:member(to_binary(Path), all_paths()).

set_imports(Entries) ->
    Modules = lists:usort([M || {M, _} <- Entries]),
    py_setup:set(imports, {'_erlang_setup', import_modules, [Modules]}, Entries).

set_paths(Paths) ->
    py_setup:set(paths, {'_erlang_setup', set_paths, [Paths]}, Paths).

dedup([]) -> [];
dedup([H | T]) -> [H | dedup([X || X <- T, X =/= H])].

to_binary(B) when is_binary(B) -> B;
to_binary(A) when is_atom(A) -> atom_to_binary(A, utf8);
to_binary(L) when is_list(L) ->
    case unicode:characters_to_binary(L) of
        B when is_binary(B) -> B;
        _ -> erlang:error(badarg)
    end;
to_binary(_) -> erlang:error(badarg).
