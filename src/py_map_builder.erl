%% @private
%% @doc Builds big maps for the contexts' threads (see docs/type-conversion.md, "Maps").
%%
%% A Python dict of more than 128 keys becomes a map through `enif_make_map_from_arrays', which
%% OTP 25.1+ (before the fix for erlang/otp#8208) can only run on a scheduler thread. A context
%% thread sends this process `{py_map_job, Job}' and waits; `py_nif:build_map/1' builds the map
%% (on a dirty CPU scheduler past 4,096 pairs). Without this process (or when it does not answer within 2 s) the
%% map is built by insertion, which is correct but slower.
-module(py_map_builder).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()}.
start_link() ->
    proc_lib:start_link(?MODULE, init, [self()]).

%% @private
-spec init(pid()) -> no_return().
init(Parent) ->
    %% A context thread waits for every job: serve them ahead of ordinary work.
    process_flag(priority, high),
    ok = py_nif:set_map_builder(self()),
    register(?MODULE, self()),
    proc_lib:init_ack(Parent, {ok, self()}),
    loop().

loop() ->
    receive
        {py_map_job, Job} ->
            _ = py_nif:build_map(Job),
            loop();
        _Other ->
            loop()
    end.
