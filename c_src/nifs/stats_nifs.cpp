// NIFs that observe a context: its counters and histograms (a snapshot of relaxed atomics,
// never waits) and the Python stack of the code it runs (answered by a thread of its own).
#include <utility>
#include <vector>

#include "context/context.hpp"
#include "context/request_handle.hpp"
#include "erl/atoms.hpp"
#include "erl/nif_error.hpp"
#include "nifs/nifs.hpp"

namespace nifs {
namespace {

using context::Context;
using context::ContextResource;
using context::ContextStats;
using context::LatencyHistogram;

ERL_NIF_TERM atom(ErlNifEnv* env, const char* name) { return enif_make_atom(env, name); }

uint64_t to_ns(uint64_t ticks, double ns_per_tick) {
    double ns = double(ticks) * ns_per_tick;
    return ns >= 1.8e19 ? UINT64_MAX : uint64_t(ns);
}

// [{UpperNs, Count}] for the buckets that counted something, shortest first.
ERL_NIF_TERM histogram_term(ErlNifEnv* env, const LatencyHistogram& h, double ns_per_tick) {
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (int i = LatencyHistogram::kBuckets - 1; i >= 0; --i) {
        uint64_t n = h.count(i);
        if (n == 0) continue;
        uint64_t upper = to_ns(LatencyHistogram::upper_bound(i), ns_per_tick);
        ERL_NIF_TERM bucket = enif_make_tuple2(env, enif_make_uint64(env, upper), enif_make_uint64(env, n));
        list = enif_make_list_cell(env, bucket, list);
    }
    return list;
}

ERL_NIF_TERM memory_term(ErlNifEnv* env, Context& ctx) {
    ContextStats& s = ctx.stats();
    if (ctx.mode() != context::Mode::OwnGil || s.allocated_bytes() < 0) return erl::atoms().undefined;
    ERL_NIF_TERM keys[3] = {atom(env, "allocated_bytes"), atom(env, "arena_bytes"), atom(env, "age_ms")};
    ERL_NIF_TERM values[3] = {enif_make_int64(env, s.allocated_bytes()), enif_make_int64(env, s.arena_bytes()),
                              enif_make_int64(env, s.memory_age_ms())};
    ERL_NIF_TERM map{};
    if (!enif_make_map_from_arrays(env, keys, values, 3, &map)) throw erl::BadArg();
    return map;
}

}  // namespace

// context_stats(Ctx) -> #{...}: see py_context:stats/1 for the keys; the histograms come as
// [{UpperNs, Count}] lists, the py_stats module turns them into percentiles.
ERL_NIF_TERM context_stats(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        Context* ctx = ContextResource::get(env, argv[0]);
        if (!ctx) throw erl::BadArg();
        ContextStats& s = ctx->stats();
        double ns_per_tick = context::TickRate::ns_per_tick();
        std::pair<const char*, ERL_NIF_TERM> fields[] = {
            {"mode", ctx->mode() == context::Mode::OwnGil ? erl::atoms().owngil : erl::atoms().worker},
            {"queue_depth", enif_make_uint64(env, s.queue_depth())},
            {"running", enif_make_uint64(env, s.running())},
            {"submitted", enif_make_uint64(env, s.submitted_count())},
            {"served", enif_make_uint64(env, s.served())},
            {"errors", enif_make_uint64(env, s.errors())},
            {"timeouts", enif_make_uint64(env, s.timeouts())},
            {"abandoned", enif_make_uint64(env, s.abandoned_count())},
            {"interrupts", enif_make_uint64(env, ctx->interrupts())},
            {"callbacks", enif_make_uint64(env, s.callbacks())},
            {"queue_wait", histogram_term(env, s.queue_wait(), ns_per_tick)},
            {"queue_wait_max", enif_make_uint64(env, to_ns(s.queue_wait().max(), ns_per_tick))},
            {"run_time", histogram_term(env, s.run_time(), ns_per_tick)},
            {"run_time_max", enif_make_uint64(env, to_ns(s.run_time().max(), ns_per_tick))},
            {"memory", memory_term(env, *ctx)},
        };
        std::vector<ERL_NIF_TERM> keys, values;
        for (auto& [key, value] : fields) {
            keys.push_back(atom(env, key));
            values.push_back(value);
        }
        ERL_NIF_TERM map{};
        if (!enif_make_map_from_arrays(env, keys.data(), values.data(), keys.size(), &map)) throw erl::BadArg();
        return map;
    });
}

// set_request_timings(Bool) -> ok: whether requests are timed from now on (see
// context::RequestTimings).
ERL_NIF_TERM set_request_timings(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        const erl::Atoms& a = erl::atoms();
        if (argv[0] != a.true_ && argv[0] != a.false_) throw erl::BadArg();
        context::RequestTimings::set(argv[0] == a.true_);
        return a.ok;
    });
}

// context_backtrace(Ctx, Tag, Request | undefined) -> ok | {error, context_stopped}. After ok
// the caller receives {py_backtrace, Tag, Result} (see context/stack_probe.hpp); with a Request
// (a handle that submit_* returned, for this context) Result says whether that request is the
// one running.
ERL_NIF_TERM context_backtrace(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        Context* ctx = ContextResource::get(env, argv[0]);
        if (!ctx || !enif_is_ref(env, argv[1])) throw erl::BadArg();
        context::RequestPtr about;
        if (argv[2] != erl::atoms().undefined) {
            context::RequestHandle* handle = context::RequestHandleResource::get(env, argv[2]);
            if (!handle || !handle->get() || handle->get()->context_serial() != ctx->serial()) throw erl::BadArg();
            about = context::RequestPtr::share(handle->get());
        }
        ErlNifPid self;
        if (!enif_self(env, &self)) throw erl::BadArg();
        if (!ctx->backtrace(env, self, argv[1], std::move(about))) throw erl::ErrorResult(erl::atoms().context_stopped);
        return erl::atoms().ok;
    });
}

}  // namespace nifs
