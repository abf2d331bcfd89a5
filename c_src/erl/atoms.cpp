#include "erl/atoms.hpp"

namespace erl {
namespace {
Atoms g_atoms;  // written once in init_atoms (load callback), then only read
}

void init_atoms(ErlNifEnv* env) {
    auto a = [env](const char* name) { return enif_make_atom(env, name); };
    g_atoms.ok = a("ok");
    g_atoms.error = a("error");
    g_atoms.true_ = a("true");
    g_atoms.false_ = a("false");
    g_atoms.none = a("none");
    g_atoms.undefined = a("undefined");
    g_atoms.nil = a("nil");
    g_atoms.infinity = a("infinity");
    g_atoms.neg_infinity = a("neg_infinity");
    g_atoms.nan = a("nan");
    g_atoms.worker = a("worker");
    g_atoms.owngil = a("owngil");
    g_atoms.replied = a("replied");
    g_atoms.context_stopped = a("context_stopped");
    g_atoms.cancelled = a("cancelled");
    g_atoms.py_context_exited = a("py_context_exited");
    g_atoms.python_init_failed = a("python_init_failed");
    g_atoms.invalid_mode = a("invalid_mode");
    g_atoms.owngil_unsupported = a("owngil_unsupported");
}

const Atoms& atoms() { return g_atoms; }

}  // namespace erl
