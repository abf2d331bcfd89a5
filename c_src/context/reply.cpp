#include "context/reply.hpp"

#include <new>
#include <utility>

#include "bridge/convert.hpp"
#include "context/context.hpp"
#include "erl/atoms.hpp"
#include "erl/env.hpp"
#include "erl/terms.hpp"
#include "py/error.hpp"
#include "py/guard.hpp"
#include "py/ref.hpp"

namespace context {

ERL_NIF_TERM take_python_error(ErlNifEnv* env, std::string* traceback) {
    py::ExceptionInfo info = py::take_exception();
    *traceback = std::move(info.traceback);
    ERL_NIF_TERM reason = enif_make_tuple2(env, erl::make_code_name_atom(env, info.type_name),
                                           erl::make_charlist_utf8(env, info.message));
    return enif_make_tuple2(env, erl::atoms().error, reason);
}

void send_final_reply(Request& req, std::unique_ptr<erl::OwnedEnv>& owned, ERL_NIF_TERM payload,
                      const std::string& traceback) {
    const erl::Atoms& a = erl::atoms();
    ErlNifEnv* env = owned->get();
    ERL_NIF_TERM tag = enif_make_copy(env, req.tag);
    if (req.mode() == ResultMode::StreamStart) {
        int arity = 0;
        const ERL_NIF_TERM* parts = nullptr;
        bool failed = enif_get_tuple(env, payload, &arity, &parts) && arity == 2 && parts[0] == a.error;
        ERL_NIF_TERM event = failed ? payload : a.done;
        erl::send_and_clear(env, req.reply_to(), enif_make_tuple3(env, a.py_stream, tag, event));
        return;
    }
    ERL_NIF_TERM msg = traceback.empty() ? enif_make_tuple2(env, tag, payload)
                                         : enif_make_tuple3(env, tag, payload, erl::make_binary(env, traceback));
    if (req.reply_slot().offer(owned, msg)) return;
    erl::send_and_clear(env, req.caller(), msg);
}

namespace {

struct ReplyObject {
    PyObject_HEAD
    Request* req;                // a reference held until dealloc
    py::InterpreterPtr* interp;  // heap-allocated: PyObject memory is not constructed
    bool deferred;
};

ReplyObject* as_reply(PyObject* self) { return reinterpret_cast<ReplyObject*>(self); }

// The types of the `erlang` module that made this object's type: the type holds that module,
// and the object its type, so they live as long as the object (even when user code dropped
// sys.modules['erlang']).
const bridge::ErlangTypes& types_of(PyObject* self) {
    return *static_cast<const bridge::ErlangTypes*>(PyType_GetModuleState(Py_TYPE(self)));
}

// Replies with payload built by build(env) unless the request was cancelled. Returns a Python
// bool: whether the reply was sent.
template <class Build>
PyObject* finish(ReplyObject* self, Build build) {
    if (!self->req->try_reply()) Py_RETURN_FALSE;
    auto env = std::make_unique<erl::OwnedEnv>();
    std::string traceback;
    ERL_NIF_TERM payload = build(env->get(), &traceback);
    send_final_reply(*self->req, env, payload, traceback);
    Py_RETURN_TRUE;
}

// ok(value): the result. A value that cannot be converted gives the caller the conversion error.
PyObject* reply_ok(PyObject* self, PyObject* value) {
    ReplyObject* r = as_reply(self);
    return finish(r, [&](ErlNifEnv* env, std::string* traceback) {
        ERL_NIF_TERM term{};
        bridge::Converter cv{types_of(self), *r->interp};
        if (r->req->mode() == ResultMode::StreamStart) return erl::atoms().ok;
        if (!bridge::to_erlang(cv, env, value, &term)) return take_python_error(env, traceback);
        return enif_make_tuple2(env, erl::atoms().ok, term);
    });
}

// error(exception): the call failed with this exception.
PyObject* reply_error(PyObject* self, PyObject* exc) {
    if (!PyExceptionInstance_Check(exc)) {
        PyErr_SetString(PyExc_TypeError, "error() takes an exception instance");
        return nullptr;
    }
    return finish(as_reply(self), [&](ErlNifEnv* env, std::string* traceback) {
        PyObject* tb = PyException_GetTraceback(exc);  // new reference or NULL
        Py_INCREF(exc);
        PyErr_Restore(reinterpret_cast<PyObject*>(Py_NewRef(Py_TYPE(exc))), exc, tb);
        return take_python_error(env, traceback);
    });
}

// chunk(value): one item of a py:stream_start stream. False once the stream was cancelled.
PyObject* reply_chunk(PyObject* self, PyObject* value) {
    ReplyObject* r = as_reply(self);
    if (r->req->mode() != ResultMode::StreamStart) {
        PyErr_SetString(PyExc_RuntimeError, "chunk() is only for py:stream_start requests");
        return nullptr;
    }
    erl::OwnedEnv env;
    ERL_NIF_TERM term{};
    bridge::Converter cv{types_of(self), *r->interp};
    if (!bridge::to_erlang(cv, env.get(), value, &term)) return nullptr;
    if (!r->req->try_begin_chunk()) Py_RETURN_FALSE;
    const erl::Atoms& a = erl::atoms();
    ErlNifEnv* e = env.get();
    ERL_NIF_TERM msg =
        enif_make_tuple3(e, a.py_stream, enif_make_copy(e, r->req->tag), enif_make_tuple2(e, a.data, term));
    erl::send_and_clear(e, r->req->reply_to(), msg);
    r->req->end_chunk();
    // Backpressure: the receiving side acknowledges items as its owner takes them.
    if (!r->req->room()) {
        // This runs on the context's own thread, so the context runs: found by its serial.
        Context* ctx = keep_if_running(r->req->context_serial());
        if (!ctx) Py_RETURN_FALSE;
        auto held = erl::ResourcePtr<Context>::adopt(ctx);
        if (!held->wait_stream_room(*r->req)) Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

PyObject* reply_cancelled(PyObject* self, void*) { return PyBool_FromLong(as_reply(self)->req->cancelled()); }

// max_items: the most items a collected stream may have, or None for no bound.
PyObject* reply_max_items(PyObject* self, void*) {
    uint64_t n = as_reply(self)->req->stream_max_items();
    if (n == 0) Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(n);
}

void reply_dealloc(PyObject* self) {
    ReplyObject* r = as_reply(self);
    PyTypeObject* tp = Py_TYPE(self);
    if (r->req) {
        if (r->deferred && r->req->try_reply()) {  // dropped before it replied
            auto env = std::make_unique<erl::OwnedEnv>();
            ERL_NIF_TERM payload = enif_make_tuple2(env->get(), erl::atoms().error, erl::atoms().cancelled);
            send_final_reply(*r->req, env, payload, {});
        }
        RequestResource::release(r->req);
    }
    delete r->interp;
    tp->tp_free(self);
    Py_DECREF(tp);
}

PyMethodDef reply_methods[] = {
    {"ok", py::guarded<&reply_ok>, METH_O, "ok(value): send value as the result."},
    {"error", py::guarded<&reply_error>, METH_O, "error(exc): send exc as the error."},
    {"chunk", py::guarded<&reply_chunk>, METH_O, "chunk(value): send one stream item; False once cancelled."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef reply_getset[] = {
    {"cancelled", py::guarded<&reply_cancelled>, nullptr, "Whether the caller gave up (timeout, stream_cancel).",
     nullptr},
    {"max_items", py::guarded<&reply_max_items>, nullptr, "The most items py:stream collects (None: no bound).",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot reply_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(py::guarded<&reply_dealloc>)},
    {Py_tp_methods, reply_methods},
    {Py_tp_getset, reply_getset},
    {Py_tp_doc, const_cast<char*>("Where the result of a request goes when it comes later.")},
    {0, nullptr},
};

}  // namespace

PyType_Spec reply_type_spec = {"erlang._Reply", sizeof(ReplyObject), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                               reply_slots};

PyObject* make_reply(const bridge::ErlangTypes& types, const py::InterpreterPtr& interp, const RequestPtr& req) {
    auto* obj = PyObject_New(ReplyObject, bridge::added_type(types, &reply_type_spec));
    if (!obj) return nullptr;
    obj->req = nullptr;
    obj->deferred = false;
    obj->interp = new (std::nothrow) py::InterpreterPtr(interp);
    if (!obj->interp) {
        Py_DECREF(obj);
        return PyErr_NoMemory();
    }
    obj->req = req.get();
    RequestResource::keep(obj->req);
    return reinterpret_cast<PyObject*>(obj);
}

void mark_deferred(PyObject* reply) { as_reply(reply)->deferred = true; }

}  // namespace context
