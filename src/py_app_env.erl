%% @private
%% @doc The application variables this library reads, checked before it starts: a value it
%% cannot take fails the start with `{invalid_env, Key, Value}' rather than starting an
%% application that does not work. Variables not listed here are not checked.
-module(py_app_env).

-export([check/0, valid/2]).

%% `ok', or the first variable whose value is wrong.
-spec check() -> ok | {error, {invalid_env, atom(), term()}}.
check() ->
    Checked = [num_contexts, context_mode, thread_priority, max_concurrent, python_home, libpython,
               request_timings],
    Wrong = [{invalid_env, Key, Value}
             || Key <- Checked, {ok, Value} <- [application:get_env(erlang_python, Key)],
                not valid(Key, Value)],
    case Wrong of
        [] -> ok;
        [First | _] -> {error, First}
    end.

%% Whether Value is one Key can take.
-spec valid(atom(), term()) -> boolean().
valid(num_contexts, N) -> py_context_router:valid_size(N);
valid(context_mode, Mode) -> Mode =:= worker orelse Mode =:= owngil;
valid(thread_priority, P) -> lists:member(P, [auto, normal, batch, low, idle]);
valid(max_concurrent, M) -> M =:= infinity orelse (is_integer(M) andalso M >= 1);
valid(request_timings, On) -> is_boolean(On);
valid(python_home, Dir) -> is_path(Dir);
valid(libpython, File) -> is_path(File);
valid(_, _) -> true.

is_path(P) -> (is_list(P) orelse is_binary(P)) andalso is_list(unicode:characters_to_list(P)).
