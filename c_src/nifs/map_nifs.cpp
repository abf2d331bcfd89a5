// NIFs of the map builder process (py_map_builder): big maps built on a scheduler thread for
// the contexts' threads (erl/map_builder.hpp).
#include "erl/atoms.hpp"
#include "erl/map_builder.hpp"
#include "nifs/nifs.hpp"

namespace nifs {

// set_map_builder(Pid | undefined) -> ok: the process that builds maps from now on.
ERL_NIF_TERM set_map_builder(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ErlNifPid pid;
    if (argv[0] == erl::atoms().undefined) {
        erl::set_map_builder(nullptr);
    } else {
        if (!enif_get_local_pid(env, argv[0], &pid)) return enif_make_badarg(env);
        erl::set_map_builder(&pid);
    }
    return erl::atoms().ok;
}

// build_map(Job) -> boolean(): builds the map of a {py_map_job, Job} message (a big one on a
// dirty CPU scheduler); false when the job was given up or its keys were not distinct.
ERL_NIF_TERM build_map(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    if (enif_thread_type() == ERL_NIF_THR_NORMAL_SCHEDULER &&
        erl::map_job_pairs(env, argv[0]) > erl::kMaxPairsOnNormalScheduler)
        return enif_schedule_nif(env, "build_map", ERL_NIF_DIRTY_JOB_CPU_BOUND, &build_map, argc, argv);
    return erl::run_map_job(env, argv[0]) ? erl::atoms().true_ : erl::atoms().false_;
}

}  // namespace nifs
