// Atoms used by the NIF, created once when the library loads and read-only afterwards.
#pragma once

#include <erl_nif.h>

namespace erl {

struct Atoms {
    ERL_NIF_TERM ok;
    ERL_NIF_TERM error;
    ERL_NIF_TERM true_;
    ERL_NIF_TERM false_;
    ERL_NIF_TERM none;
    ERL_NIF_TERM undefined;
    ERL_NIF_TERM nil;
    ERL_NIF_TERM infinity;
    ERL_NIF_TERM neg_infinity;
    ERL_NIF_TERM nan;
    ERL_NIF_TERM worker;
    ERL_NIF_TERM owngil;
    ERL_NIF_TERM replied;
    ERL_NIF_TERM pending;
    ERL_NIF_TERM wait;
    ERL_NIF_TERM context_stopped;
    ERL_NIF_TERM py_context_exited;
    ERL_NIF_TERM invalid_mode;
    ERL_NIF_TERM owngil_unsupported;
    ERL_NIF_TERM thread_create_failed;
    ERL_NIF_TERM out_of_memory;
    ERL_NIF_TERM internal_error;
    // thread priorities
    ERL_NIF_TERM normal;
    ERL_NIF_TERM low;
    ERL_NIF_TERM idle;
    ERL_NIF_TERM batch;
    ERL_NIF_TERM auto_;
    // callbacks
    ERL_NIF_TERM py_callback;
    ERL_NIF_TERM unknown_function;
    ERL_NIF_TERM aborted;
    ERL_NIF_TERM in_callback;
    // results that come later (asyncio, streams) and event-loop readiness
    ERL_NIF_TERM py_stream;
    ERL_NIF_TERM py_map_job;
    ERL_NIF_TERM data;
    ERL_NIF_TERM done;
    ERL_NIF_TERM cancelled;
    ERL_NIF_TERM plain;
    ERL_NIF_TERM async;
    ERL_NIF_TERM stream;
    ERL_NIF_TERM stream_start;
    ERL_NIF_TERM ready_input;
    ERL_NIF_TERM ready_output;
    // object owners
    ERL_NIF_TERM main;
    ERL_NIF_TERM context;
    ERL_NIF_TERM gone;
    // {bytes, Binary}: a binary that arrives in Python as bytes
    ERL_NIF_TERM bytes;
};

// Creates every atom; called from the NIF's load callback before anything else runs.
void init_atoms(ErlNifEnv* env);

// The table filled by init_atoms.
const Atoms& atoms();

}  // namespace erl
