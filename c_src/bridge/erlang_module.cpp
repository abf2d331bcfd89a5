#include "bridge/erlang_module.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

#include "bridge/buffer_object.hpp"
#include "bridge/callback_names.hpp"
#include "bridge/channel_object.hpp"
#include "bridge/erlang_process.hpp"
#include "bridge/host.hpp"
#include "bridge/reactor_buffer_object.hpp"
#include "bridge/shared_dict_object.hpp"
#include "bridge/thread_call.hpp"
#include "py/guard.hpp"
#include "py/ref.hpp"

namespace bridge {
namespace {

struct PidObject {
    PyObject_HEAD
    ErlNifPid pid;
};

struct TermObject {
    PyObject_HEAD
    PyObject* etf;      // bytes: the external format, for equality and hashing
    ErlNifEnv* env;     // owns `term`
    ERL_NIF_TERM term;  // the term itself, copied back out on conversion (see make_term)
};

ErlangTypes* state_of(PyObject* module) { return static_cast<ErlangTypes*>(PyModule_GetState(module)); }

// --- erlang.Pid -------------------------------------------------------------

PyObject* pid_richcompare(PyObject* a, PyObject* b, int op) {
    if (Py_TYPE(a) != Py_TYPE(b) || (op != Py_EQ && op != Py_NE)) Py_RETURN_NOTIMPLEMENTED;
    int cmp = enif_compare_pids(&reinterpret_cast<PidObject*>(a)->pid, &reinterpret_cast<PidObject*>(b)->pid);
    return PyBool_FromLong((cmp == 0) == (op == Py_EQ));
}

Py_hash_t pid_hash(PyObject* self) {
    // A local pid is an immediate term: its word identifies it.
    auto h = static_cast<Py_hash_t>(enif_hash(ERL_NIF_INTERNAL_HASH, reinterpret_cast<PidObject*>(self)->pid.pid, 0));
    return h == -1 ? -2 : h;
}

PyObject* pid_repr(PyObject* self) {
    char buf[64];
    enif_snprintf(buf, sizeof buf, "<erlang.Pid %T>", reinterpret_cast<PidObject*>(self)->pid.pid);
    return PyUnicode_FromString(buf);
}

void pid_dealloc(PyObject* self) {
    PyTypeObject* tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

PyType_Slot pid_slots[] = {
    {Py_tp_richcompare, reinterpret_cast<void*>(py::guarded<&pid_richcompare>)},
    {Py_tp_hash, reinterpret_cast<void*>(py::guarded<&pid_hash>)},
    {Py_tp_repr, reinterpret_cast<void*>(py::guarded<&pid_repr>)},
    {Py_tp_dealloc, reinterpret_cast<void*>(py::guarded<&pid_dealloc>)},
    {Py_tp_doc, const_cast<char*>("An Erlang process identifier. Converts back to the same pid.")},
    {0, nullptr},
};

PyType_Spec pid_spec = {"erlang.Pid", sizeof(PidObject), 0,
                        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION, pid_slots};

// --- erlang.Term ------------------------------------------------------------

PyObject* term_richcompare(PyObject* a, PyObject* b, int op) {
    if (Py_TYPE(a) != Py_TYPE(b) || (op != Py_EQ && op != Py_NE)) Py_RETURN_NOTIMPLEMENTED;
    return PyObject_RichCompare(reinterpret_cast<TermObject*>(a)->etf, reinterpret_cast<TermObject*>(b)->etf, op);
}

Py_hash_t term_hash(PyObject* self) { return PyObject_Hash(reinterpret_cast<TermObject*>(self)->etf); }

PyObject* term_repr(PyObject* self) {
    return PyUnicode_FromFormat("<erlang.Term %zd bytes>", PyBytes_GET_SIZE(reinterpret_cast<TermObject*>(self)->etf));
}

int term_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(reinterpret_cast<TermObject*>(self)->etf);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

void term_dealloc(PyObject* self) {
    PyTypeObject* tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    auto* term = reinterpret_cast<TermObject*>(self);
    Py_CLEAR(term->etf);
    if (term->env) enif_free_env(std::exchange(term->env, nullptr));
    tp->tp_free(self);
    Py_DECREF(tp);
}

PyType_Slot term_slots[] = {
    {Py_tp_richcompare, reinterpret_cast<void*>(py::guarded<&term_richcompare>)},
    {Py_tp_hash, reinterpret_cast<void*>(py::guarded<&term_hash>)},
    {Py_tp_repr, reinterpret_cast<void*>(py::guarded<&term_repr>)},
    {Py_tp_traverse, reinterpret_cast<void*>(py::guarded<&term_traverse>)},
    {Py_tp_dealloc, reinterpret_cast<void*>(py::guarded<&term_dealloc>)},
    {Py_tp_doc, const_cast<char*>("An Erlang term with no Python equivalent (reference, port, fun, remote pid).")},
    {0, nullptr},
};

PyType_Spec term_spec = {
    "erlang.Term", sizeof(TermObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION, term_slots};

// --- the module -------------------------------------------------------------

int add_type(PyObject* module, PyType_Spec* spec, PyTypeObject** slot) {
    PyObject* type = PyType_FromModuleAndSpec(module, spec, nullptr);
    if (!type) return -1;
    *slot = reinterpret_cast<PyTypeObject*>(type);
    // PyModule_AddObjectRef keeps its own reference; the state keeps the one from FromSpec.
    const char* dot = std::strrchr(spec->name, '.');
    return PyModule_AddObjectRef(module, dot ? dot + 1 : spec->name, type);
}

// --- functions that reach Erlang through the context running this thread ----------------------

// add_module_type's table: written at load only, read by every interpreter's import of erlang.
PyType_Spec* g_added[kMaxAddedTypes] = {};
size_t g_added_count = 0;

thread_local Host* t_host = nullptr;       // see host.hpp
InterpreterResolver g_resolver = nullptr;  // see host.hpp

// Precondition: attached, on a thread that is no context's. The interpreter of this thread,
// or nullptr with a RuntimeError set.
py::InterpreterPtr current_interpreter() {
    py::InterpreterPtr interp = g_resolver ? g_resolver(PyInterpreterState_Get()) : nullptr;
    if (!interp) PyErr_SetString(PyExc_RuntimeError, "this interpreter is not one of erlang_python's");
    return interp;
}

PyObject* erlang_call(PyObject* module, PyObject* args) {
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 1 || !PyUnicode_Check(PyTuple_GET_ITEM(args, 0))) {
        PyErr_SetString(PyExc_TypeError, "erlang.call(name, *args): name must be a str");
        return nullptr;
    }
    py::Ref rest = py::Ref::steal(PyTuple_GetSlice(args, 1, n));
    if (!rest) return nullptr;
    if (Host* host = t_host) return host->call_erlang(PyTuple_GET_ITEM(args, 0), rest.get());
    py::InterpreterPtr interp = current_interpreter();
    if (!interp) return nullptr;
    return call_from_thread({*state_of(module), interp}, PyTuple_GET_ITEM(args, 0), rest.get());
}

PyObject* erlang_send(PyObject* module, PyObject* args) {
    PyObject *target = nullptr, *message = nullptr;
    if (!PyArg_ParseTuple(args, "OO:send", &target, &message)) return nullptr;
    if (Host* host = t_host) return host->send(target, message);
    py::InterpreterPtr interp = current_interpreter();
    if (!interp) return nullptr;
    return send_message({*state_of(module), interp}, target, message);
}

PyObject* erlang_whereis(PyObject* module, PyObject* name) { return whereis(*state_of(module), name); }

PyObject* erlang_atom(PyObject* module, PyObject* name) { return make_atom(*state_of(module), name); }

PyObject* erlang_self(PyObject*, PyObject*) {
    Host* host = require_host();
    return host ? host->self_pid() : nullptr;
}

// The asyncio entry points, defined in priv/_erlang_loop.py and imported at first use (so that
// importing erlang does not import asyncio).
// clang-format off
constexpr const char* kLoopNames[] = {"new_event_loop", "run", "install", "sleep", "ErlangEventLoop",
                                      "ErlangEventLoopPolicy", "EventLoopPolicy"};
// clang-format on

// The tracing API, defined in priv/_erlang_trace.py and imported at first use.
constexpr const char* kTraceNames[] = {"Span", "trace"};

// The channel classes, defined in priv/_erlang_channel.py and imported at first use.
constexpr const char* kChannelNames[] = {"Channel",           "ChannelClosed", "ByteChannel",
                                         "ByteChannelClosed", "ChannelBusy",   "reply"};

bool is_channel_name(PyObject* name) {
    return std::ranges::any_of(kChannelNames, [name](const char* channel_name) {
        return PyUnicode_CompareWithASCIIString(name, channel_name) == 0;
    });
}

bool is_trace_name(PyObject* name) {
    return std::ranges::any_of(kTraceNames, [name](const char* trace_name) {
        return PyUnicode_CompareWithASCIIString(name, trace_name) == 0;
    });
}

bool is_loop_name(PyObject* name) {
    return std::ranges::any_of(
        kLoopNames, [name](const char* loop_name) { return PyUnicode_CompareWithASCIIString(name, loop_name) == 0; });
}

// erlang.<name>(...) and `from erlang import name` (PEP 562): an asyncio entry point
// (kLoopNames), the tracing API (kTraceNames), else a function registered with
// py:register_function (callback_names.hpp); AttributeError for any other name, so that
// hasattr() tells whether a function is registered.
PyObject* erlang_getattr(PyObject* module, PyObject* name) {
    if (!PyUnicode_Check(name) || PyUnicode_READ_CHAR(name, 0) == '_') {
        PyErr_Format(PyExc_AttributeError, "module 'erlang' has no attribute %R", name);
        return nullptr;
    }
    if (is_loop_name(name)) {
        py::Ref loop_module = py::Ref::steal(PyImport_ImportModule("_erlang_loop"));
        return loop_module ? PyObject_GetAttr(loop_module.get(), name) : nullptr;
    }
    if (is_channel_name(name)) {
        py::Ref channel_module = py::Ref::steal(PyImport_ImportModule("_erlang_channel"));
        return channel_module ? PyObject_GetAttr(channel_module.get(), name) : nullptr;
    }
    if (is_trace_name(name)) {
        py::Ref trace_module = py::Ref::steal(PyImport_ImportModule("_erlang_trace"));
        return trace_module ? PyObject_GetAttr(trace_module.get(), name) : nullptr;
    }
    const char* text = PyUnicode_AsUTF8(name);
    if (!text) return nullptr;
    if (!callback_name_known(text)) {
        PyErr_Format(PyExc_AttributeError,
                     "module 'erlang' has no attribute %R (no Erlang function is registered "
                     "under that name: py:register_function/2)",
                     name);
        return nullptr;
    }
    py::Ref call = py::Ref::steal(PyObject_GetAttrString(module, "call"));
    py::Ref partial_mod = py::Ref::steal(call ? PyImport_ImportModule("functools") : nullptr);
    py::Ref partial = py::Ref::steal(partial_mod ? PyObject_GetAttrString(partial_mod.get(), "partial") : nullptr);
    return partial ? PyObject_CallFunctionObjArgs(partial.get(), call.get(), name, nullptr) : nullptr;
}

// _call_method(obj, name, *args, **kwargs): obj.name(*args, **kwargs), for py:call_method.
PyObject* erlang_call_method(PyObject*, PyObject* args, PyObject* kwargs) {
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 2) {
        PyErr_SetString(PyExc_TypeError, "_call_method(obj, name, *args, **kwargs)");
        return nullptr;
    }
    py::Ref method = py::Ref::steal(PyObject_GetAttr(PyTuple_GET_ITEM(args, 0), PyTuple_GET_ITEM(args, 1)));
    py::Ref rest = py::Ref::steal(method ? PyTuple_GetSlice(args, 2, n) : nullptr);
    return rest ? PyObject_Call(method.get(), rest.get(), kwargs) : nullptr;
}

PyMethodDef erlang_methods[] = {
    {"_call_method", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py::guarded<&erlang_call_method>)),
     METH_VARARGS | METH_KEYWORDS, nullptr},
    {"call", py::guarded<&erlang_call>, METH_VARARGS,
     "call(name, *args): run the Erlang function registered as name and return its result."},
    {"send", py::guarded<&erlang_send>, METH_VARARGS, "send(pid, term): send term to an Erlang process."},
    {"self", py::guarded<&erlang_self>, METH_NOARGS, "self(): the pid of the Erlang process this call came from."},
    {"whereis", py::guarded<&erlang_whereis>, METH_O, "whereis(name): the pid registered as name, or None."},
    {"atom", py::guarded<&erlang_atom>, METH_O, "atom(name): an Erlang atom (converts to the atom, not a binary)."},
    {"_atom", py::guarded<&erlang_atom>, METH_O, nullptr},
    {"__getattr__", py::guarded<&erlang_getattr>, METH_O, nullptr},
    {"_reactor_read", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py::guarded<&reactor_read>)),
     METH_FASTCALL, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

// Python-level helpers of the module: the node-wide shared state, kept in an ETS table and
// reached through the internal callback '$py_state' (src/py_state.erl).
constexpr const char* kPythonHelpers = R"PY(
class ProcessError(Exception):
    """erlang.send to a process that is not alive, or to a name nobody registered."""

class NotRegistered(ProcessError, TypeError):
    """erlang.send to a name nobody registered. Also a TypeError, what erlang_python 4.1 raised
    for any name destination, so `except TypeError` written for 4.1 still catches it."""

class SuspensionRequired(BaseException):
    """Named for code written for erlang_python 4.x (`except erlang.SuspensionRequired: raise`
    ahead of `except Exception`). Never raised here: erlang.call waits on its own thread."""

async def async_call(name, *args):
    """Awaitable erlang.call: runs the call on a thread of the loop's default executor, so the
    event loop keeps running meanwhile."""
    import asyncio
    return await asyncio.get_running_loop().run_in_executor(None, lambda: call(name, *args))

def state_set(key, value):
    """Store value under key in the state shared by every context of the node."""
    call('$py_state', 'set', key, value)

def state_get(key, default=None):
    """The value stored under key, or default."""
    return call('$py_state', 'get', key, default)

def state_delete(key):
    """Remove key from the shared state."""
    call('$py_state', 'delete', key)

def state_keys():
    """Every key of the shared state."""
    return call('$py_state', 'keys')

def state_incr(key, n=1):
    """Atomically add n to the integer counter key (created at 0); return the new value."""
    return call('$py_state', 'incr', key, n)

def state_decr(key, n=1):
    """Atomically subtract n from the counter key; return the new value."""
    return call('$py_state', 'incr', key, -n)

def _submodule(name, impl):
    # erlang.channel, erlang.byte_channel (`from erlang.channel import Channel`) and
    # erlang.reactor (`import erlang.reactor as reactor`, in every interpreter): modules whose
    # names resolve in priv/<impl>.py, imported at first use.
    import sys
    mod = type(sys)('erlang.' + name)
    def __getattr__(attr):
        import importlib
        return getattr(importlib.import_module(impl), attr)
    mod.__getattr__ = __getattr__
    return sys.modules.setdefault(mod.__name__, mod)

channel = _submodule('channel', '_erlang_channel')
byte_channel = _submodule('byte_channel', '_erlang_channel')
reactor = _submodule('reactor', '_erlang_reactor')
server = _submodule('server', '_erlang_server')
del _submodule
)PY";

int add_python_helpers(PyObject* module) {
    PyObject* dict = PyModule_GetDict(module);  // borrowed
    py::Ref done = py::Ref::steal(PyRun_String(kPythonHelpers, Py_file_input, dict, dict));
    return done ? 0 : -1;
}

int erlang_exec(PyObject* module) {
    ErlangTypes* st = state_of(module);
    if (add_type(module, &pid_spec, &st->pid) < 0) return -1;
    if (add_type(module, &term_spec, &st->term) < 0) return -1;
    st->error = PyErr_NewExceptionWithDoc(
        "erlang.ErlangError", "An Erlang exception in a function called with erlang.call: args are (class, reason).",
        PyExc_RuntimeError, nullptr);  // a RuntimeError, as erlang_python 3.x raised
    if (!st->error || PyModule_AddObjectRef(module, "ErlangError", st->error) < 0) return -1;
    // A KeyboardInterrupt (so a BaseException): `except Exception` does not swallow it, and
    // cleanup written as `except KeyboardInterrupt: ...; raise` runs.
    st->interrupted = PyErr_NewExceptionWithDoc(
        "erlang.Interrupted",
        "Raised in the Python code of a call whose caller timed out or exited (context/interrupter.hpp).",
        PyExc_KeyboardInterrupt, nullptr);
    if (!st->interrupted || PyModule_AddObjectRef(module, "Interrupted", st->interrupted) < 0) return -1;
    for (size_t i = 0; i < g_added_count; ++i)
        if (add_type(module, g_added[i], &st->added[i]) < 0) return -1;
    if (add_type(module, &buffer_type_spec, &st->buffer) < 0) return -1;
    if (add_type(module, &shared_dict_type_spec, &st->sdict) < 0) return -1;
    if (add_type(module, &channel_type_spec, &st->channel) < 0) return -1;
    if (add_reactor_buffer_type(module) < 0) return -1;
    if (PyModule_AddFunctions(module, erlang_methods) < 0) return -1;
    return add_python_helpers(module);
}

int erlang_traverse(PyObject* module, visitproc visit, void* arg) {
    ErlangTypes* st = state_of(module);
    Py_VISIT(st->pid);
    Py_VISIT(st->term);
    Py_VISIT(st->error);
    Py_VISIT(st->interrupted);
    for (PyTypeObject* type : st->added) Py_VISIT(type);
    Py_VISIT(st->buffer);
    Py_VISIT(st->sdict);
    Py_VISIT(st->channel);
    return 0;
}

int erlang_clear(PyObject* module) {
    ErlangTypes* st = state_of(module);
    Py_CLEAR(st->pid);
    Py_CLEAR(st->term);
    Py_CLEAR(st->error);
    Py_CLEAR(st->interrupted);
    for (PyTypeObject*& type : st->added) Py_CLEAR(type);
    Py_CLEAR(st->buffer);
    Py_CLEAR(st->sdict);
    Py_CLEAR(st->channel);
    return 0;
}

PyModuleDef_Slot erlang_slots[] = {
    {Py_mod_exec, reinterpret_cast<void*>(py::guarded<&erlang_exec>)},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, nullptr},
};

// clang-format off
PyModuleDef erlang_def = {
    PyModuleDef_HEAD_INIT,
    "erlang",
    "Access to the Erlang VM that embeds this interpreter.",
    sizeof(ErlangTypes),
    nullptr,
    erlang_slots,
    py::guarded<&erlang_traverse>,
    py::guarded<&erlang_clear>,
    nullptr,
};
// clang-format on

}  // namespace

PyObject* init_erlang_module() { return PyModuleDef_Init(&erlang_def); }

bool add_module_type(PyType_Spec* spec) {
    if (g_added_count == kMaxAddedTypes) return false;
    g_added[g_added_count++] = spec;
    return true;
}

PyTypeObject* added_type(const ErlangTypes& types, const PyType_Spec* spec) {
    for (size_t i = 0; i < g_added_count; ++i)
        if (g_added[i] == spec) return types.added[i];
    return nullptr;
}

void set_current_host(Host* host) { t_host = host; }

void set_interpreter_resolver(InterpreterResolver resolver) { g_resolver = resolver; }

Host* require_host() {
    Host* host = t_host;
    if (!host) PyErr_SetString(PyExc_RuntimeError, "not running in an erlang_python context thread");
    return host;
}

PyObject* import_erlang_module() { return PyImport_ImportModule("erlang"); }

const ErlangTypes* erlang_types_of(PyObject* module) { return state_of(module); }

PyObject* make_pid(const ErlangTypes& types, const ErlNifPid& pid) {
    auto* obj = PyObject_New(PidObject, types.pid);
    if (!obj) return nullptr;
    obj->pid = pid;
    return reinterpret_cast<PyObject*>(obj);
}

bool get_pid(const ErlangTypes& types, PyObject* obj, ErlNifPid* out) {
    if (Py_TYPE(obj) != types.pid) return false;
    *out = reinterpret_cast<PidObject*>(obj)->pid;
    return true;
}

PyObject* make_term(const ErlangTypes& types, const unsigned char* etf, size_t size, ERL_NIF_TERM term) {
    PyObject* bytes = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(etf), static_cast<Py_ssize_t>(size));
    if (!bytes) return nullptr;
    ErlNifEnv* env = enif_alloc_env();
    if (!env) {
        Py_DECREF(bytes);
        return PyErr_NoMemory();
    }
    auto* obj = PyObject_GC_New(TermObject, types.term);
    if (!obj) {
        Py_DECREF(bytes);
        enif_free_env(env);
        return nullptr;
    }
    obj->etf = bytes;
    obj->env = env;
    obj->term = enif_make_copy(env, term);
    PyObject_GC_Track(obj);
    return reinterpret_cast<PyObject*>(obj);
}

bool get_term(const ErlangTypes& types, PyObject* obj, ErlNifEnv* env, ERL_NIF_TERM* out) {
    if (Py_TYPE(obj) != types.term) return false;
    *out = enif_make_copy(env, reinterpret_cast<TermObject*>(obj)->term);
    return true;
}

}  // namespace bridge
