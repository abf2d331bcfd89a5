// NIFs that describe the runtime and classify terms.
#include "bridge/object_ref.hpp"
#include "context/context.hpp"
#include "erl/atoms.hpp"
#include "erl/nif_error.hpp"
#include "erl/terms.hpp"
#include "nifs/nifs.hpp"
#include "py/runtime.hpp"

namespace nifs {

bool open_info_resources(ErlNifEnv* env) { return bridge::ObjectRefResource::open(env, "py_object"); }

// python_version() -> <<"3.13.0">>: the Python this library was built against and runs.
ERL_NIF_TERM python_version(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
    return erl::make_binary(env, py::runtime_version());
}

namespace {
std::string g_runtime_error;  // written once by the load callback, read-only afterwards
}  // namespace

void set_runtime_error(const std::string& reason) { g_runtime_error = reason; }

// runtime_status() -> ok | {error, Reason}: whether CPython started when the library loaded.
ERL_NIF_TERM runtime_status(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
    if (py::runtime_started()) return erl::atoms().ok;
    const std::string& why = g_runtime_error.empty() ? std::string("Python did not start") : g_runtime_error;
    return enif_make_tuple2(env, erl::atoms().error, erl::make_binary(env, why.c_str()));
}

// object_owner(Ref) -> main | {context, Ctx} | gone: where the object of an opaque reference
// lives: the main interpreter (any worker context), an owngil context, or an ended interpreter.
ERL_NIF_TERM object_owner(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        bridge::ObjectRef* ref = bridge::ObjectRefResource::get(env, argv[0]);
        if (!ref) throw erl::BadArg();
        py::Serial serial = ref->interpreter().serial();
        if (serial == context::main_interpreter_handle()->serial()) return erl::atoms().main;
        context::Context* owner = context::keep_owner_of(serial);
        if (!owner) return erl::atoms().gone;
        auto held = erl::ResourcePtr<context::Context>::adopt(owner);
        return enif_make_tuple2(env, erl::atoms().context, context::ContextResource::term(env, owner));
    });
}

// code_name_atom(Binary) -> atom() | binary(): an exception class name (UTF-8) as the
// in-process modes give it (erl::make_code_name_atom: an existing atom, a new one while the
// node's budget lasts, else the binary). For isolated contexts, whose names arrive as binaries.
ERL_NIF_TERM code_name_atom(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, argv[0], &bin)) return enif_make_badarg(env);
    return erl::make_code_name_atom(env, std::string_view(reinterpret_cast<const char*>(bin.data), bin.size));
}

// is_ref(Term) -> boolean(): whether Term is an opaque reference to a Python object.
ERL_NIF_TERM is_ref(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return bridge::ObjectRefResource::get(env, argv[0]) ? erl::atoms().true_ : erl::atoms().false_;
}

}  // namespace nifs
