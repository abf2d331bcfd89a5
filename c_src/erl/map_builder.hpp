// Maps of more than 128 pairs, built on a scheduler thread. enif_make_map_from_arrays sorts the
// keys with erts_qsort, which crashes OTP 23.3.4.15+, 24.3.4.2+, 25.1+ and 26 (before the fix
// for erlang/otp#8208) on a thread that is not a scheduler once there are more than 128 keys.
// Another thread (a context's) hands the arrays to the map builder process, whose NIF runs on a
// dirty CPU scheduler, and waits. Any thread.
#pragma once

#include <erl_nif.h>

#include <chrono>
#include <cstddef>

namespace erl {

// Up to this many pairs enif_make_map_from_arrays is safe on any thread.
inline constexpr size_t kMaxPairsOffScheduler = 128;

// How long a thread waits for the builder to start on its map before building it another way:
// about what building 10,000 pairs by insertion costs, so that a busy node is never slower
// for waiting (schedulers are slow to take the job exactly when they are all busy).
inline constexpr std::chrono::milliseconds kMapBuilderWait{5};

bool open_map_builder_resources(ErlNifEnv* env);

// The process that builds maps for other threads: its messages are {py_map_job, Job}, for
// each of which it calls run_map_job (py_nif:build_map/1). nullptr: there is none.
void set_map_builder(const ErlNifPid* pid);

// Builds the map keys[i] => values[i] (n pairs whose keys are distinct terms) into env, on this
// thread when it is a scheduler, else through the map builder. False when it cannot be built so
// (no builder, or it did not take the job within kMapBuilderWait, or the keys were not distinct):
// the caller builds the map another way. Precondition: nobody else uses env meanwhile.
bool make_map_on_scheduler(ErlNifEnv* env, ERL_NIF_TERM* keys, ERL_NIF_TERM* values, size_t n, ERL_NIF_TERM* out);

// Jobs of more pairs than this go to a dirty CPU scheduler (about 0.1 ms per 1,000 pairs);
// smaller ones are built on the builder's own scheduler, which saves a thread hop (0.3 ms and
// more on a loaded machine).
inline constexpr size_t kMaxPairsOnNormalScheduler = 4096;

// The number of pairs of a job (0 for a term that is no job).
size_t map_job_pairs(ErlNifEnv* env, ERL_NIF_TERM job);

// The builder's side: builds the map of a job (the second element of its message) unless the
// thread that asked gave up waiting. Precondition: on a scheduler thread.
bool run_map_job(ErlNifEnv* env, ERL_NIF_TERM job);

}  // namespace erl
