// Handles for Python objects that live in an isolated context's child process (src/py_isolated.erl).
// A handle names its context process, the child incarnation's serial and the object's id in
// that child; when the last Erlang copy is garbage collected, the destructor tells the context
// process so the child drops the object.
//
// Thread: any scheduler (the NIFs) or whatever thread runs the destructor; no Python here.
#include <cstdint>

#include "nifs/nifs.hpp"

namespace nifs {
namespace {

struct IsolatedRef {
    ErlNifPid context;
    ErlNifUInt64 serial;
    ErlNifUInt64 id;
};

ErlNifResourceType* isolated_ref_type = nullptr;

// Sends {'$py_isolated_release', Serial, Id} to the context process (a dead pid drops it). The
// destructor's env is a callback environment, which enif_send takes as its caller.
void release_in_child(ErlNifEnv* env, void* obj) {
    const auto* ref = static_cast<const IsolatedRef*>(obj);
    ErlNifEnv* msg_env = enif_alloc_env();
    if (!msg_env) return;
    ERL_NIF_TERM msg = enif_make_tuple3(msg_env, enif_make_atom(msg_env, "$py_isolated_release"),
                                        enif_make_uint64(msg_env, ref->serial), enif_make_uint64(msg_env, ref->id));
    ErlNifPid to = ref->context;
    enif_send(env, &to, msg_env, msg);
    enif_free_env(msg_env);
}

}  // namespace

bool open_isolated_ref_resources(ErlNifEnv* env) {
    ErlNifResourceTypeInit init{};
    init.dtor = &release_in_child;
    init.members = 1;
    isolated_ref_type = enif_open_resource_type_x(env, "py_isolated_ref", &init, ERL_NIF_RT_CREATE, nullptr);
    return isolated_ref_type != nullptr;
}

// isolated_ref_new(ContextPid, Serial, Id) -> Handle.
ERL_NIF_TERM isolated_ref_new(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    IsolatedRef fields{};
    if (!enif_get_local_pid(env, argv[0], &fields.context) || !enif_get_uint64(env, argv[1], &fields.serial) ||
        !enif_get_uint64(env, argv[2], &fields.id))
        return enif_make_badarg(env);
    void* mem = enif_alloc_resource(isolated_ref_type, sizeof(IsolatedRef));
    if (!mem) return enif_make_badarg(env);
    *static_cast<IsolatedRef*>(mem) = fields;
    ERL_NIF_TERM term = enif_make_resource(env, mem);
    enif_release_resource(mem);
    return term;
}

// isolated_ref_info(Term) -> {ContextPid, Serial, Id} | false.
ERL_NIF_TERM isolated_ref_info(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    void* mem = nullptr;
    if (!enif_get_resource(env, argv[0], isolated_ref_type, &mem)) return enif_make_atom(env, "false");
    const auto* ref = static_cast<const IsolatedRef*>(mem);
    return enif_make_tuple3(env, enif_make_pid(env, &ref->context), enif_make_uint64(env, ref->serial),
                            enif_make_uint64(env, ref->id));
}

}  // namespace nifs
