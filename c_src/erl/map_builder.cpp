#include "erl/map_builder.hpp"

#include <condition_variable>
#include <mutex>

#include "erl/atoms.hpp"
#include "erl/env.hpp"
#include "erl/resource.hpp"

namespace erl {
namespace {

// One map to build. The asking thread owns env, keys and values while it waits; the builder
// touches them only between Pending -> Building and Done, which the asking thread waits for.
struct MapJob {
    enum class State { Pending, Building, Done, Abandoned };

    MapJob(ErlNifEnv* env, ERL_NIF_TERM* keys, ERL_NIF_TERM* values, size_t n)
        : env(env), keys(keys), values(values), n(n) {}

    std::mutex mutex;
    std::condition_variable changed;
    State state = State::Pending;
    ErlNifEnv* env;
    ERL_NIF_TERM* keys;
    ERL_NIF_TERM* values;
    size_t n;
    ERL_NIF_TERM map = 0;
    bool built = false;
};

using MapJobResource = Resource<MapJob>;

std::mutex g_builder_mutex;
ErlNifPid g_builder;
bool g_has_builder = false;

bool builder(ErlNifPid* pid) {
    std::lock_guard<std::mutex> lock(g_builder_mutex);
    if (g_has_builder) *pid = g_builder;
    return g_has_builder;
}

}  // namespace

bool open_map_builder_resources(ErlNifEnv* env) { return MapJobResource::open(env, "py_map_job"); }

void set_map_builder(const ErlNifPid* pid) {
    std::lock_guard<std::mutex> lock(g_builder_mutex);
    g_has_builder = pid != nullptr;
    if (pid) g_builder = *pid;
}

bool make_map_on_scheduler(ErlNifEnv* env, ERL_NIF_TERM* keys, ERL_NIF_TERM* values, size_t n, ERL_NIF_TERM* out) {
    if (enif_thread_type() != ERL_NIF_THR_UNDEFINED) return enif_make_map_from_arrays(env, keys, values, n, out) != 0;
    ErlNifPid pid;
    if (!builder(&pid)) return false;
    auto job = ResourcePtr<MapJob>::adopt(MapJobResource::make(env, keys, values, n));
    OwnedEnv msg_env;
    ERL_NIF_TERM msg =
        enif_make_tuple2(msg_env.get(), atoms().py_map_job, MapJobResource::term(msg_env.get(), job.get()));
    if (!send_and_clear(msg_env.get(), pid, msg)) return false;  // the builder is gone
    std::unique_lock<std::mutex> lock(job->mutex);
    auto done = [&] { return job->state == MapJob::State::Done; };
    if (!job->changed.wait_for(lock, kMapBuilderWait, done)) {
        if (job->state == MapJob::State::Pending) {
            job->state = MapJob::State::Abandoned;  // the builder will leave it alone
            return false;
        }
        job->changed.wait(lock, done);  // it is being built: that ends soon
    }
    *out = job->map;
    return job->built;
}

size_t map_job_pairs(ErlNifEnv* env, ERL_NIF_TERM term) {
    MapJob* job = MapJobResource::get(env, term);
    return job ? job->n : 0;
}

bool run_map_job(ErlNifEnv* env, ERL_NIF_TERM term) {
    MapJob* job = MapJobResource::get(env, term);
    if (!job) return false;
    {
        std::lock_guard<std::mutex> lock(job->mutex);
        if (job->state != MapJob::State::Pending) return false;
        job->state = MapJob::State::Building;
    }
    ERL_NIF_TERM map = 0;
    bool built = enif_make_map_from_arrays(job->env, job->keys, job->values, job->n, &map) != 0;
    {
        std::lock_guard<std::mutex> lock(job->mutex);
        job->map = map;
        job->built = built;
        job->state = MapJob::State::Done;
    }
    job->changed.notify_all();
    return built;
}

}  // namespace erl
