%% @private
%% @doc Stubs of priv/py_boot.so, a small NIF library without libpython that py_runtime uses to
%% load the chosen libpython before py_nif.so (see py_runtime).
-module(py_boot).

-export([load/1, build_info/0, preload/2]).

-nifs([build_info/0, preload/2]).

%% Loads priv/py_boot.so from PrivDir; ok also when it is loaded already.
-spec load(file:filename()) -> ok | {error, term()}.
load(PrivDir) ->
    case erlang:load_nif(filename:join(PrivDir, "py_boot"), 0) of
        ok -> ok;
        {error, {reload, _}} -> ok;
        {error, _} = Error -> Error
    end.

%% The Python py_nif.so was built against: version, soname, libpython, stdlib, prefix and the
%% python3.X-config used, as binaries.
-spec build_info() -> #{version | soname | libpython | stdlib | prefix | python_config => binary()}.
build_info() -> erlang:nif_error(nif_not_loaded).

%% Loads the libpython at Path into the process (RTLD_GLOBAL) if its version starts with Wanted
%% (<<"3.13.">>); a library of another version is closed again and never made global.
-spec preload(binary(), binary()) -> {ok, binary()} | {wrong_version, binary()} | {error, binary()}.
preload(_Path, _Wanted) -> erlang:nif_error(nif_not_loaded).
