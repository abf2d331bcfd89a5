// Declarations of every NIF, grouped by area; the table lives in nif_main.cpp.
#pragma once

#include <erl_nif.h>

#include <string>

namespace nifs {

// context_nifs.cpp
ERL_NIF_TERM context_new(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM context_stop(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM context_stop_now(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM namespace_new(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM submit_call(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM submit_eval(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM submit_exec(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM submit_reset(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM cancel(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM callback_reply(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM request_finished(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM poll_reply(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM stop_polling(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM context_interrupt(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM stream_ack(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// stats_nifs.cpp
ERL_NIF_TERM context_stats(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM set_request_timings(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM context_backtrace(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// loop_nifs.cpp
ERL_NIF_TERM fd_ready(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM loop_signal(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// info_nifs.cpp
ERL_NIF_TERM python_version(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM is_ref(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM code_name_atom(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM object_owner(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM runtime_status(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
// Load callback only: why Python did not start (runtime_status/0 answers it).
void set_runtime_error(const std::string& reason);

// callback_nifs.cpp
ERL_NIF_TERM thread_callback_reply(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM callback_names(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// map_nifs.cpp
ERL_NIF_TERM set_map_builder(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM build_map(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// shared_nifs.cpp
ERL_NIF_TERM shared_dict_new(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM shared_dict_get(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM shared_dict_set(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM shared_dict_del(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM shared_dict_keys(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM shared_dict_destroy(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM buffer_new(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM buffer_write(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM buffer_close(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
// channel_nifs.cpp
ERL_NIF_TERM channel_new(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM channel_send(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM channel_close(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM channel_info(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM channel_try_receive(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM channel_notify(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM channel_unnotify(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
// fd_nifs.cpp
ERL_NIF_TERM dup_fd(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

// Resource types owned by each area, opened at load.
bool open_context_resources(ErlNifEnv* env);
bool open_info_resources(ErlNifEnv* env);
bool open_callback_resources(ErlNifEnv* env);
bool open_shared_resources(ErlNifEnv* env);
bool open_channel_resources(ErlNifEnv* env);
bool open_isolated_ref_resources(ErlNifEnv* env);

// isolated_ref_nifs.cpp
ERL_NIF_TERM isolated_ref_new(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM isolated_ref_info(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]);

}  // namespace nifs
