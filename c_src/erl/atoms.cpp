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
    g_atoms.bytes = a("bytes");
    g_atoms.infinity = a("infinity");
    g_atoms.neg_infinity = a("neg_infinity");
    g_atoms.nan = a("nan");
    g_atoms.worker = a("worker");
    g_atoms.owngil = a("owngil");
    g_atoms.replied = a("replied");
    g_atoms.pending = a("pending");
    g_atoms.wait = a("wait");
    g_atoms.context_stopped = a("context_stopped");
    g_atoms.py_context_exited = a("py_context_exited");
    g_atoms.invalid_mode = a("invalid_mode");
    g_atoms.owngil_unsupported = a("owngil_unsupported");
    g_atoms.thread_create_failed = a("thread_create_failed");
    g_atoms.out_of_memory = a("out_of_memory");
    g_atoms.internal_error = a("internal_error");
    g_atoms.normal = a("normal");
    g_atoms.low = a("low");
    g_atoms.idle = a("idle");
    g_atoms.batch = a("batch");
    g_atoms.auto_ = a("auto");
    g_atoms.py_callback = a("py_callback");
    g_atoms.unknown_function = a("unknown_function");
    g_atoms.aborted = a("aborted");
    g_atoms.in_callback = a("in_callback");
    g_atoms.py_stream = a("py_stream");
    g_atoms.py_map_job = a("py_map_job");
    g_atoms.data = a("data");
    g_atoms.done = a("done");
    g_atoms.cancelled = a("cancelled");
    g_atoms.plain = a("plain");
    g_atoms.async = a("async");
    g_atoms.stream = a("stream");
    g_atoms.stream_start = a("stream_start");
    g_atoms.ready_input = a("ready_input");
    g_atoms.ready_output = a("ready_output");
    g_atoms.main = a("main");
    g_atoms.context = a("context");
    g_atoms.gone = a("gone");
}

const Atoms& atoms() { return g_atoms; }

}  // namespace erl
