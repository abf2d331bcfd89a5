// NIFs that create, use and stop contexts. They never wait for Python: they queue and return.
#include "context/context.hpp"
#include "context/request.hpp"
#include "context/request_handle.hpp"
#include "erl/atoms.hpp"
#include "erl/nif_error.hpp"
#include "erl/terms.hpp"
#include "nifs/nifs.hpp"
#include "py/runtime.hpp"
#include "py/version.hpp"

namespace nifs {
namespace {

using context::Context;
using context::ContextResource;
using context::Namespace;
using context::NamespaceResource;
using context::Request;
using context::RequestHandle;
using context::RequestHandleResource;
using context::RequestResource;

void context_down(ErlNifEnv*, void* obj, ErlNifPid*, ErlNifMonitor* mon) {
    // obj is the resource slot; the typed pointer sits inside it.
    ContextResource::from_slot(obj)->on_down(mon);
}

// The request behind a handle submit_* returned, or nullptr.
Request* get_request(ErlNifEnv* env, ERL_NIF_TERM term) {
    RequestHandle* handle = RequestHandleResource::get(env, term);
    return handle ? handle->get() : nullptr;
}

Context* get_context(ErlNifEnv* env, ERL_NIF_TERM term) {
    Context* ctx = ContextResource::get(env, term);
    if (!ctx) throw erl::BadArg();
    return ctx;
}

// `undefined` selects the context's shared namespace; otherwise a namespace of this context
// (by serial: the namespace of a stopped context is refused even when ctx took its address).
erl::ResourcePtr<Namespace> get_namespace(ErlNifEnv* env, ERL_NIF_TERM term, const Context* ctx) {
    if (term == erl::atoms().undefined) return {};
    Namespace* ns = NamespaceResource::get(env, term);
    if (!ns || ns->owner() != ctx->serial()) throw erl::BadArg();
    return erl::ResourcePtr<Namespace>::share(ns);
}

bool is_name(ErlNifEnv* env, ERL_NIF_TERM t) {
    return enif_is_atom(env, t) || enif_is_binary(env, t) || enif_is_list(env, t);
}
bool is_code(ErlNifEnv* env, ERL_NIF_TERM t) { return enif_is_binary(env, t) || enif_is_list(env, t); }
bool is_proper_list(ErlNifEnv* env, ERL_NIF_TERM t) {
    unsigned len = 0;
    return enif_get_list_length(env, t, &len) != 0;
}

// plain | async | stream | {stream, Max} | {stream_start, Pid, Window}: what the request does
// with its result. Max: the most items collected; Window: how many items may be sent and not
// acknowledged (stream_ack/3); 0 for no bound.
void set_result_mode(ErlNifEnv* env, ERL_NIF_TERM opt, Request& req) {
    const erl::Atoms& a = erl::atoms();
    int arity = 0;
    const ERL_NIF_TERM* parts = nullptr;
    ErlNifPid pid;
    unsigned window = 0;
    ErlNifUInt64 max_items = 0;
    if (opt == a.plain) req.set_mode(context::ResultMode::Plain);
    else if (opt == a.async) req.set_mode(context::ResultMode::Async);
    else if (opt == a.stream) req.set_mode(context::ResultMode::Stream);
    else if (enif_get_tuple(env, opt, &arity, &parts) && arity == 2 && parts[0] == a.stream &&
             enif_get_uint64(env, parts[1], &max_items)) {
        req.set_mode(context::ResultMode::Stream);
        req.set_stream_max_items(max_items);
    } else if (enif_get_tuple(env, opt, &arity, &parts) && arity == 3 && parts[0] == a.stream_start &&
               enif_get_local_pid(env, parts[1], &pid) && enif_get_uint(env, parts[2], &window)) {
        req.set_mode(context::ResultMode::StreamStart);
        req.set_reply_to(pid);
        req.set_stream_window(window);
    } else {
        throw erl::BadArg();
    }
}

// Arguments bigger than this (in heap words) are copied into the request on a dirty scheduler,
// not on the caller's normal one (the copy runs at roughly 1 ns a word: 64K words, 0.1 ms).
constexpr size_t kCopyOnSchedulerWords = size_t(1) << 16;

// The submit NIF being run, for running it again on a dirty scheduler.
struct SubmitNif {
    const char* name;
    ERL_NIF_TERM (*fun)(ErlNifEnv*, int, const ERL_NIF_TERM[]);
    int argc;
};

// A request's typed message (context/request.hpp) from its arguments, copied.
using MessageOf = context::Message (*)(const ERL_NIF_TERM* args);
context::Message call_message(const ERL_NIF_TERM* a) { return context::CallMessage{a[0], a[1], a[2], a[3]}; }
context::Message eval_message(const ERL_NIF_TERM* a) { return context::EvalMessage{a[0], a[1]}; }
context::Message exec_message(const ERL_NIF_TERM* a) { return context::ExecMessage{a[0]}; }
context::Message reset_message(const ERL_NIF_TERM*) { return context::ResetMessage{}; }

// Queues a request whose arguments are argv[3..3+nargs), made into its message by message_of
// (and, when given, whose result mode is *mode) and returns its handle. Big arguments make it
// run again on a dirty scheduler.
ERL_NIF_TERM submit(ErlNifEnv* env, const SubmitNif& nif, const ERL_NIF_TERM argv[], MessageOf message_of, int nargs,
                    const ERL_NIF_TERM* mode = nullptr) {
    Context* ctx = get_context(env, argv[0]);
    ERL_NIF_TERM tag_and_args = enif_make_tuple_from_array(env, &argv[2], unsigned(nargs) + 1);
    if (enif_thread_type() == ERL_NIF_THR_NORMAL_SCHEDULER &&
        !erl::smaller_than(env, tag_and_args, kCopyOnSchedulerWords))
        return enif_schedule_nif(env, nif.name, ERL_NIF_DIRTY_JOB_CPU_BOUND, nif.fun, nif.argc, argv);
    auto ns = get_namespace(env, argv[1], ctx);
    if (!enif_is_ref(env, argv[2])) throw erl::BadArg();
    ErlNifPid caller;
    if (!enif_self(env, &caller)) throw erl::BadArg();
    auto req = erl::ResourcePtr<Request>::adopt(RequestResource::make(caller, std::move(ns)));
    req->set_context_serial(ctx->serial());
    if (mode) set_result_mode(env, *mode, *req);
    // One copy of {Tag, Args...} into the request's environment (one allocation, not 1 + nargs).
    const ERL_NIF_TERM* copied = nullptr;
    int arity = 0;
    if (!enif_get_tuple(req->env(), req->copy(tag_and_args), &arity, &copied)) throw erl::BadArg();
    req->tag = copied[0];
    req->set_message(message_of(&copied[1]));
    Request* r = req.get();
    auto handle = erl::ResourcePtr<RequestHandle>::adopt(RequestHandleResource::make(req));
    r->submitted_at = context::RequestTimings::on() ? context::ticks_now() : 0;
    context::RequestQueue::Pushed pushed = ctx->submit(std::move(req));
    if (pushed == context::RequestQueue::Pushed::Refused) throw erl::ErrorResult(erl::atoms().context_stopped);
    ctx->stats().submitted();
    // Only the calling process reads the hint (the handle keeps the request alive).
    r->set_reply_soon(pushed == context::RequestQueue::Pushed::ToSpinner);
    return RequestHandleResource::term(env, handle.get());
}

context::ThreadPriority get_priority(ERL_NIF_TERM term) {
    const erl::Atoms& a = erl::atoms();
    if (term == a.normal) return context::ThreadPriority::Normal;
    if (term == a.low) return context::ThreadPriority::Low;
    if (term == a.idle) return context::ThreadPriority::Idle;
    if (term == a.batch) return context::ThreadPriority::Batch;
    if (term == a.auto_) return context::ThreadPriority::Auto;
    throw erl::BadArg();
}

}  // namespace

bool open_context_resources(ErlNifEnv* env) {
    return ContextResource::open(env, "py_context", &context_down) && NamespaceResource::open(env, "py_namespace") &&
           RequestResource::open(env, "py_request_state") && RequestHandleResource::open(env, "py_request");
}

// context_new(Mode, Priority) -> {ok, Ctx} | {error, Reason}. The calling process owns the
// context: when it exits, the context stops. Priority: normal | low | idle.
ERL_NIF_TERM context_new(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        const erl::Atoms& a = erl::atoms();
        if (!py::runtime_started()) throw erl::ErrorResult(enif_make_atom(env, "python_not_started"));
        context::Mode mode = context::Mode::Worker;
        if (argv[0] == a.worker) {
            mode = context::Mode::Worker;
        } else if (argv[0] == a.owngil) {
            if (!py::kHasOwnGil)
                throw erl::ErrorResult(
                    enif_make_tuple2(env, a.owngil_unsupported, erl::make_binary(env, py::runtime_version())));
            mode = context::Mode::OwnGil;
        } else {
            throw erl::ErrorResult(enif_make_tuple2(env, a.invalid_mode, argv[0]));
        }
        auto ctx = erl::ResourcePtr<Context>::adopt(ContextResource::make(mode, get_priority(argv[1])));
        ErlNifPid owner;
        ErlNifMonitor owner_mon;
        if (!enif_self(env, &owner) ||
            enif_monitor_process(env, ContextResource::slot_of(ctx.get()), &owner, &owner_mon) != 0)
            throw erl::BadArg();
        ctx->set_owner(owner, owner_mon);
        if (!ctx->start()) throw erl::ErrorResult(erl::atoms().thread_create_failed);
        return enif_make_tuple2(env, a.ok, ContextResource::term(env, ctx.get()));
    });
}

// context_stop(Ctx, Tag) -> ok. The caller later receives {py_context_exited, Tag, Status}.
ERL_NIF_TERM context_stop(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        Context* ctx = get_context(env, argv[0]);
        ErlNifPid self;
        if (!enif_self(env, &self)) throw erl::BadArg();
        ctx->stop(&self, argv[1]);
        return erl::atoms().ok;
    });
}

// context_stop_now(Ctx) -> ok: after context_stop/2, answer every request of the context and
// interrupt its running code (Context::stop_running_code).
ERL_NIF_TERM context_stop_now(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        get_context(env, argv[0])->stop_running_code();
        return erl::atoms().ok;
    });
}

// namespace_new(Ctx) -> Namespace: a fresh, empty namespace on that context.
ERL_NIF_TERM namespace_new(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        Context* ctx = get_context(env, argv[0]);
        auto ns = erl::ResourcePtr<Namespace>::adopt(NamespaceResource::make(ctx->serial()));
        return NamespaceResource::term(env, ns.get());
    });
}

// submit_call(Ctx, Ns, Tag, Module, Function, Args, Kwargs, Mode) -> Request
// Mode: plain | async | stream | {stream, Max} | {stream_start, Pid, Window} (context/request.hpp).
ERL_NIF_TERM submit_call(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        if (!is_name(env, argv[3]) || !is_name(env, argv[4]) || !is_proper_list(env, argv[5]) ||
            !enif_is_map(env, argv[6]))
            throw erl::BadArg();
        return submit(env, {"submit_call", &submit_call, 8}, argv, &call_message, 4, &argv[7]);
    });
}

// submit_eval(Ctx, Ns, Tag, Code, Locals, Mode) -> Request
ERL_NIF_TERM submit_eval(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        if (!is_code(env, argv[3]) || !enif_is_map(env, argv[4])) throw erl::BadArg();
        return submit(env, {"submit_eval", &submit_eval, 6}, argv, &eval_message, 2, &argv[5]);
    });
}

// submit_exec(Ctx, Ns, Tag, Code) -> Request
ERL_NIF_TERM submit_exec(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        if (!is_code(env, argv[3])) throw erl::BadArg();
        return submit(env, {"submit_exec", &submit_exec, 4}, argv, &exec_message, 1);
    });
}

// submit_reset(Ctx, undefined, Tag) -> Request
ERL_NIF_TERM submit_reset(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] { return submit(env, {"submit_reset", &submit_reset, 3}, argv, &reset_message, 0); });
}

// cancel(Ctx, Request) -> ok | replied | {in_callback, Id}. `replied`: the reply is in (or
// about to reach) the caller's mailbox. {in_callback, Id}: callback Id was sent to the caller
// (who may have answered it already). Code that was running is interrupted.
ERL_NIF_TERM cancel(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        Context* ctx = get_context(env, argv[0]);
        Request* req = get_request(env, argv[1]);
        if (!req || req->context_serial() != ctx->serial()) throw erl::BadArg();
        bool was_finished = req->finished();
        Request::CancelOutcome outcome = context::cancel_request(*ctx, erl::ResourcePtr<Request>::share(req));
        if (!was_finished && outcome != Request::CancelOutcome::AlreadyReplied) ctx->stats().timed_out();
        switch (outcome) {
            case Request::CancelOutcome::Cancelled:
            case Request::CancelOutcome::CancelledRunning: return erl::atoms().ok;
            case Request::CancelOutcome::AlreadyReplied: return erl::atoms().replied;
            case Request::CancelOutcome::CancelledInCallback:
                return enif_make_tuple2(env, erl::atoms().in_callback, enif_make_uint64(env, req->callback_id()));
        }
        throw erl::BadArg();
    });
}

// stream_ack(Ctx, Request, N) -> ok: the receiving side has taken N more items of a
// py:stream_start stream; a worker waiting for room in the stream's window goes on.
ERL_NIF_TERM stream_ack(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        Context* ctx = get_context(env, argv[0]);
        Request* req = get_request(env, argv[1]);
        ErlNifUInt64 n = 0;
        if (!req || req->context_serial() != ctx->serial() || !enif_get_uint64(env, argv[2], &n)) throw erl::BadArg();
        req->ack_items(n);
        ctx->wake();
        return erl::atoms().ok;
    });
}

// callback_reply(Ctx, Id, Result) -> ok | {error, context_stopped}: the answer to callback Id.
ERL_NIF_TERM callback_reply(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        Context* ctx = get_context(env, argv[0]);
        ErlNifUInt64 id = 0;
        if (!enif_get_uint64(env, argv[1], &id)) throw erl::BadArg();
        if (!ctx->push_callback_reply(id, argv[2])) throw erl::ErrorResult(erl::atoms().context_stopped);
        return erl::atoms().ok;
    });
}

}  // namespace nifs

namespace nifs {

// request_finished(Request) -> boolean(): whether it has replied or was cancelled.
ERL_NIF_TERM request_finished(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    Request* req = get_request(env, argv[0]);
    if (!req) return enif_make_badarg(env);
    return req->finished() ? erl::atoms().true_ : erl::atoms().false_;
}

// poll_reply(Request) -> Message | pending | wait: the final reply if the worker stored it for
// this (polling) caller; `wait` when polling is not worth it (the worker was busy or asleep when
// the request was queued). From the first `pending` on, the worker stores the reply instead of
// sending it, until stop_polling/1.
ERL_NIF_TERM poll_reply(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    Request* req = get_request(env, argv[0]);
    if (!req) return enif_make_badarg(env);
    if (!req->reply_soon()) return erl::atoms().wait;
    req->reply_slot().start_polling();
    ERL_NIF_TERM msg = req->reply_slot().take(env);
    return msg ? msg : erl::atoms().pending;
}

// stop_polling(Request) -> Message | pending: the stored reply, or `pending` when the reply
// will come as a message (it is sent, not stored, from now on).
ERL_NIF_TERM stop_polling(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    Request* req = get_request(env, argv[0]);
    if (!req) return enif_make_badarg(env);
    ERL_NIF_TERM msg = req->reply_slot().give_up(env);
    return msg ? msg : erl::atoms().pending;
}

}  // namespace nifs

namespace nifs {

// context_interrupt(Ctx) -> ok | not_running: raises erlang.Interrupted in the Python code the
// context runs now (py:interrupt/1); its caller gets {error, interrupted}.
ERL_NIF_TERM context_interrupt(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        Context* ctx = get_context(env, argv[0]);
        return ctx->interrupt_running() ? erl::atoms().ok : enif_make_atom(env, "not_running");
    });
}

}  // namespace nifs
