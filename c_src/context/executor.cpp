#include "context/executor.hpp"

#include <Python.h>

#include <cstring>
#include <utility>

#include "bridge/convert.hpp"
#include "context/reply.hpp"
#include "erl/atoms.hpp"
#include "py/ref.hpp"

namespace context {
namespace {

using py::check_status;
using py::Ref;

struct Job {
    const WorkerScope& scope;
    const RequestPtr& request_ptr;
    Request& request;
    ErlNifEnv* msg_env;
    bridge::Converter cv;

    // A strong reference: converting arguments, hashing a key or a callback can run Python, and
    // through a callback Erlang can reset the context, which drops the namespace's own.
    Ref globals() {
        Namespace* ns = request.ns() ? request.ns() : &scope.shared_ns;
        PyObject* dict = ns->globals(scope.interp);
        if (!dict) throw py::ErrorPending();
        return Ref::borrow(dict);
    }
    Ref to_python(ERL_NIF_TERM term) const { return Ref::check(bridge::to_python(cv, request.env(), term)); }
    Ref name(ERL_NIF_TERM term) { return Ref::check(scope.names.get(request.env(), term)); }
    template <class... Refs>
    void release_after_reply(Refs&&... refs) {
        (scope.after_reply.push_back(std::forward<Refs>(refs)), ...);
    }
    ERL_NIF_TERM ok_value(PyObject* value) const {
        ERL_NIF_TERM term{};
        if (!bridge::to_erlang(cv, msg_env, value, &term)) throw py::ErrorPending();
        return enif_make_tuple2(msg_env, erl::atoms().ok, term);
    }
};

// Looks a module up in sys.modules before importing it (the common case is a cache hit).
Ref import_module(PyObject* name) {
    if (PyObject* mod = PyImport_GetModule(name)) return Ref::steal(mod);
    if (PyErr_Occurred()) throw py::ErrorPending();
    return Ref::check(PyImport_Import(name));
}

// "a.b.c" -> {"a", "b.c"}; a name without a dot -> {name, null}. Most names have no dot, and
// for them nothing is allocated.
std::pair<Ref, Ref> split_first(PyObject* path) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(path);
    Py_ssize_t dot = PyUnicode_FindChar(path, '.', 0, len, 1);
    if (dot == -2) throw py::ErrorPending();
    if (dot == -1) return {Ref::borrow(path), Ref()};
    return {Ref::check(PyUnicode_Substring(path, 0, dot)), Ref::check(PyUnicode_Substring(path, dot + 1, len))};
}

// Resolves "a.b.c" as successive attributes of base.
Ref resolve_attribute_path(Ref base, PyObject* path) {
    Ref current = std::move(base);
    Ref rest = Ref::borrow(path);
    while (rest) {
        auto [head, tail] = split_first(rest.get());
        current = Ref::check(PyObject_GetAttr(current.get(), head.get()));
        rest = std::move(tail);
    }
    return current;
}

Ref find_callable(Job& job, const CallMessage& call) {
    Ref module_name = job.name(call.module);
    Ref function_name = job.name(call.function);
    if (PyUnicode_CompareWithASCIIString(module_name.get(), "__main__") == 0) {
        // '__main__' is the namespace the request runs in (per process or per context).
        Ref globals = job.globals();
        auto [head, rest] = split_first(function_name.get());
        PyObject* found = PyDict_GetItemWithError(globals.get(), head.get());  // borrowed: held at once below
        if (!found) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_NameError, "name '%U' is not defined", head.get());
            throw py::ErrorPending();
        }
        return rest ? resolve_attribute_path(Ref::borrow(found), rest.get()) : Ref::borrow(found);
    }
    return resolve_attribute_path(import_module(module_name.get()), function_name.get());
}

// Plain results are converted at once. For the other modes priv/_erlang_async.py decides:
// dispatch(mode, result, reply) returns the value to reply with now, or `reply` itself when it
// will reply later (a task on the context's event loop).
ERL_NIF_TERM finish_result(Job& job, PyObject* result) {
    ResultMode mode = job.request.mode();
    if (mode == ResultMode::Plain) return job.ok_value(result);
    Ref module = import_module(Ref::check(PyUnicode_FromString("_erlang_async")).get());
    Ref reply = Ref::check(make_reply(job.scope.types, job.scope.interp, job.request_ptr));
    Ref value =
        Ref::check(PyObject_CallMethod(module.get(), "dispatch", "iOO", static_cast<int>(mode), result, reply.get()));
    if (value.get() == reply.get()) {
        mark_deferred(reply.get());
        return kDeferredReply;
    }
    return job.ok_value(value.get());
}

// Whether fn is builtins.eval or builtins.exec: called from C they have no calling frame to
// take their globals from ("SystemError: frame does not exist").
bool is_builtin_eval(PyObject* fn) {
    if (!PyCFunction_Check(fn)) return false;
    PyObject* self = PyCFunction_GET_SELF(fn);
    if (!self || !PyModule_Check(self)) return false;
    const char* module = PyModule_GetName(self);
    const char* name = reinterpret_cast<PyCFunctionObject*>(fn)->m_ml->ml_name;
    if (!module) {
        PyErr_Clear();
        return false;
    }
    return std::strcmp(module, "builtins") == 0 && (std::strcmp(name, "eval") == 0 || std::strcmp(name, "exec") == 0);
}

// eval(source) / exec(source) called by name run in the request's namespace, as they would in
// a module whose globals that namespace is.
Ref with_request_globals(Job& job, Ref args, PyObject* kwargs) {
    if (PyTuple_GET_SIZE(args.get()) != 1) return args;
    if (kwargs) {
        int has = PyDict_Contains(kwargs, Ref::check(PyUnicode_FromString("globals")).get());
        if (has < 0) throw py::ErrorPending();
        if (has) return args;
    }
    Ref globals = job.globals();  // a strong reference: the namespace may be reset meanwhile
    if (!globals) throw py::ErrorPending();
    return Ref::check(PyTuple_Pack(2, PyTuple_GET_ITEM(args.get(), 0), globals.get()));
}

ERL_NIF_TERM run_call(Job& job, const CallMessage& call) {
    Ref fn = find_callable(job, call);
    Ref arg_list = job.to_python(call.args);
    Ref args = Ref::check(PySequence_Tuple(arg_list.get()));
    Ref kwargs;
    size_t nkw = 0;
    if (enif_get_map_size(job.request.env(), call.kwargs, &nkw) && nkw > 0) kwargs = job.to_python(call.kwargs);
    if (is_builtin_eval(fn.get())) args = with_request_globals(job, std::move(args), kwargs.get());
    Ref result = Ref::check(PyObject_Call(fn.get(), args.get(), kwargs.get()));
    ERL_NIF_TERM reply = finish_result(job, result.get());
    job.release_after_reply(std::move(arg_list), std::move(args), std::move(kwargs), std::move(result));
    return reply;
}

// Compiled code is cached per context, keyed by the exact source: eval/exec of the same text
// (the common case: a fixed expression with different locals) skips the compiler.
constexpr Py_ssize_t kCodeCacheEntries = 512;

Ref compile_source(Job& job, ERL_NIF_TERM source, int start, const char* filename) {
    ErlNifBinary bin;
    if (!enif_inspect_iolist_as_binary(job.request.env(), source, &bin)) {
        PyErr_SetString(PyExc_TypeError, "code must be a binary or an iolist");
        throw py::ErrorPending();
    }
    if (std::memchr(bin.data, 0, bin.size)) {
        PyErr_SetString(PyExc_SyntaxError, "source code cannot contain NUL bytes");
        throw py::ErrorPending();
    }
    PyObject* cache = job.scope.code_cache;
    Ref key = Ref::check(
        Py_BuildValue("(iy#)", start, reinterpret_cast<const char*>(bin.data), static_cast<Py_ssize_t>(bin.size)));
    if (PyObject* code = PyDict_GetItemWithError(cache, key.get())) return Ref::borrow(code);
    if (PyErr_Occurred()) throw py::ErrorPending();
    // The key's bytes object is a NUL-terminated copy of the source: compile from it.
    Ref code = Ref::check(Py_CompileString(PyBytes_AS_STRING(PyTuple_GET_ITEM(key.get(), 1)), filename, start));
    if (PyDict_GET_SIZE(cache) >= kCodeCacheEntries) PyDict_Clear(cache);
    check_status(PyDict_SetItem(cache, key.get(), code.get()));
    return code;
}

ERL_NIF_TERM run_eval(Job& job, const EvalMessage& eval) {
    Ref code = compile_source(job, eval.code, Py_eval_input, "<eval>");
    Ref globals = job.globals();
    Ref locals;
    size_t nlocals = 0;
    if (enif_get_map_size(job.request.env(), eval.locals, &nlocals) && nlocals > 0)
        locals = job.to_python(eval.locals);  // can run Python (a key's __hash__), and so reset the context
    Ref result = Ref::check(PyEval_EvalCode(code.get(), globals.get(), locals ? locals.get() : globals.get()));
    ERL_NIF_TERM reply = finish_result(job, result.get());
    job.release_after_reply(std::move(locals), std::move(result));
    return reply;
}

ERL_NIF_TERM run_exec(Job& job, const ExecMessage& exec) {
    Ref code = compile_source(job, exec.code, Py_file_input, "<exec>");
    Ref globals = job.globals();
    Ref result = Ref::check(PyEval_EvalCode(code.get(), globals.get(), globals.get()));
    return erl::atoms().ok;
}

// Gives the context a fresh shared namespace and collects garbage, so that a long-lived
// interpreter can serve a new user. Imported modules stay loaded: removing them from
// sys.modules and importing them again leaked 5.6 MB per cycle on 3.13.0 (docs/owngil.md).
ERL_NIF_TERM run_reset(Job& job, const ResetMessage&) {
    job.scope.shared_ns.clear_now();
    Ref gc = import_module(Ref::check(PyUnicode_FromString("gc")).get());
    Ref collected = Ref::check(PyObject_CallMethod(gc.get(), "collect", nullptr));
    return erl::atoms().ok;
}

}  // namespace

ERL_NIF_TERM execute(const WorkerScope& scope, const RequestPtr& request_ptr, ErlNifEnv* msg_env,
                     std::string* traceback) {
    Request& request = *request_ptr;
    Job job{scope, request_ptr, request, msg_env, bridge::Converter{scope.types, scope.interp}};
    try {
        const Message& message = request.message();
        if (const auto* call = std::get_if<CallMessage>(&message)) return run_call(job, *call);
        if (const auto* eval = std::get_if<EvalMessage>(&message)) return run_eval(job, *eval);
        if (const auto* exec = std::get_if<ExecMessage>(&message)) return run_exec(job, *exec);
        if (const auto* reset = std::get_if<ResetMessage>(&message)) return run_reset(job, *reset);
        // A CallbackReplyMessage is consumed by Context::wait_callback_reply, never run.
        PyErr_SetString(PyExc_SystemError, "a callback reply run as a request");
    } catch (const py::ErrorPending&) {
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
    }
    return take_python_error(msg_env, traceback);
}

}  // namespace context
