#include "context/registry.hpp"

#include <mutex>
#include <unordered_map>
#include <utility>

#include "context/context.hpp"

namespace context {
namespace {

py::InterpreterPtr g_main_interp;  // set once at load

// Contexts whose worker thread runs, by serial (each thread holds a reference to its context
// meanwhile).
std::mutex g_running_mutex;
std::unordered_map<py::Serial, Context*> g_running;  // guarded by g_running_mutex

// owngil interpreter (by serial) -> the context that owns it, while it lives.
std::mutex g_owners_mutex;
std::unordered_map<py::Serial, Context*> g_owners;  // guarded by g_owners_mutex

}  // namespace

void set_main_interpreter(py::InterpreterPtr interp) { g_main_interp = std::move(interp); }
const py::Interpreter* main_interpreter_handle() { return g_main_interp.get(); }
const py::InterpreterPtr& main_interpreter_ptr() { return g_main_interp; }

void register_running(Context* ctx, bool running) {
    std::lock_guard<std::mutex> lock(g_running_mutex);
    if (running) g_running[ctx->serial()] = ctx;
    else g_running.erase(ctx->serial());
}

void register_owner(py::Serial interpreter, Context* ctx) {
    std::lock_guard<std::mutex> lock(g_owners_mutex);
    g_owners[interpreter] = ctx;
}

void forget_owner(py::Serial interpreter) {
    std::lock_guard<std::mutex> lock(g_owners_mutex);
    g_owners.erase(interpreter);
}

// The thread asking is attached to state, so state is a live interpreter: among the live ones
// (the main one and those in g_owners) its address is unique.
py::InterpreterPtr interpreter_of(PyInterpreterState* state) {
    if (g_main_interp && g_main_interp->state() == state) return g_main_interp;
    std::lock_guard<std::mutex> lock(g_owners_mutex);
    for (const auto& [serial, ctx] : g_owners)
        if (ctx->interpreter() && ctx->interpreter()->state() == state) return ctx->interpreter();
    return {};
}

Context* keep_if_running(py::Serial ctx) {
    std::lock_guard<std::mutex> lock(g_running_mutex);
    auto it = g_running.find(ctx);
    if (it == g_running.end()) return nullptr;
    ContextResource::keep(it->second);
    return it->second;
}

Context* keep_owner_of(py::Serial interpreter) {
    std::lock_guard<std::mutex> lock(g_owners_mutex);
    auto it = g_owners.find(interpreter);
    if (it == g_owners.end()) return nullptr;
    ContextResource::keep(it->second);
    return it->second;
}

}  // namespace context
