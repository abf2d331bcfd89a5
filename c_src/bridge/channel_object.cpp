#include "bridge/channel_object.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <new>

#include "bridge/convert.hpp"
#include "erl/env.hpp"
#include "py/ref.hpp"

namespace bridge {
namespace {

struct ChannelObject {
    PyObject_HEAD
    chan::Channel* channel;      // a kept reference to the resource
    const ErlangTypes* types;    // the erlang module state of this interpreter
    py::InterpreterPtr* interp;  // heap-allocated: PyObject memory is not constructed
    int wake_read;               // the wake-up pipe, -1 until _wake_fd()
    int wake_write;
};

ChannelObject* as_channel(PyObject* self) { return reinterpret_cast<ChannelObject*>(self); }

// The Python value of a popped message; gives its environment back to the channel.
PyObject* message_to_python(ChannelObject* self, const chan::Message& msg) {
    PyObject* result = nullptr;
    if (self->channel->kind() == chan::Kind::bytes) {
        ErlNifBinary bin;
        if (enif_inspect_binary(msg.segment->env, msg.term, &bin))
            result = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(bin.data), Py_ssize_t(bin.size));
        else PyErr_SetString(PyExc_TypeError, "a byte channel message is not a binary");
    } else {
        result = to_python(Converter{*self->types, *self->interp}, msg.segment->env, msg.term);
    }
    self->channel->release(msg);
    return result;
}

// (msg,) for a message, None when empty, False when closed and drained.
PyObject* pop_result(ChannelObject* self, chan::PopResult got, const chan::Message& msg) {
    if (got == chan::PopResult::empty) Py_RETURN_NONE;
    if (got == chan::PopResult::closed) Py_RETURN_FALSE;
    py::Ref value = py::Ref::steal(message_to_python(self, msg));
    return value ? PyTuple_Pack(1, value.get()) : nullptr;
}

// _pop(timeout): the oldest message as (msg,), waiting up to timeout seconds (<= 0: no wait)
// with the GIL released; None when none came, False when the channel is closed and empty.
PyObject* channel_pop(PyObject* obj, PyObject* arg) {
    ChannelObject* self = as_channel(obj);
    double timeout = PyFloat_AsDouble(arg);
    if (timeout == -1.0 && PyErr_Occurred()) return nullptr;
    chan::Message msg;
    chan::PopResult got = self->channel->try_pop(&msg);
    if (got == chan::PopResult::empty && timeout > 0) {
        auto slice = std::chrono::milliseconds(static_cast<long long>(timeout * 1000.0) + 1);
        Py_BEGIN_ALLOW_THREADS;
        got = self->channel->wait_pop(&msg, slice);
        Py_END_ALLOW_THREADS;
    }
    // An interrupt (erlang.Interrupted, set by the context's interrupter) is pending: the
    // caller gave up, so the message goes back for the next reader instead of being lost with
    // this call's result. The exception surfaces at the caller's next bytecode.
    if (got == chan::PopResult::message && PyThreadState_Get()->async_exc) {
        self->channel->unpop(msg);
        Py_RETURN_NONE;
    }
    return pop_result(self, got, msg);
}

// _pop_many(n): up to n queued messages as a list, without waiting; False when the channel is
// closed and empty.
PyObject* channel_pop_many(PyObject* obj, PyObject* arg) {
    ChannelObject* self = as_channel(obj);
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) return nullptr;
    py::Ref list = py::Ref::steal(PyList_New(0));
    if (!list) return nullptr;
    for (Py_ssize_t i = 0; i < n; ++i) {
        chan::Message msg;
        chan::PopResult got = self->channel->try_pop(&msg);
        if (got == chan::PopResult::closed && i == 0) Py_RETURN_FALSE;
        if (got != chan::PopResult::message) break;
        py::Ref value = py::Ref::steal(message_to_python(self, msg));
        if (!value || PyList_Append(list.get(), value.get()) < 0) return nullptr;
    }
    return list.release();
}

// _send_bytes(data): queues a copy of a bytes-like object on a byte channel, as
// py_byte_channel:send/2 does from Erlang; 'ok', 'busy' (max_size reached) or 'closed'.
PyObject* channel_send_bytes(PyObject* obj, PyObject* arg) {
    ChannelObject* self = as_channel(obj);
    if (self->channel->kind() != chan::Kind::bytes) {
        PyErr_SetString(PyExc_TypeError, "send_bytes: not a py_byte_channel");
        return nullptr;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return nullptr;
    erl::OwnedEnv env;
    ERL_NIF_TERM term{};
    unsigned char* data = enif_make_new_binary(env.get(), size_t(view.len), &term);
    if (data && view.len > 0) std::memcpy(data, view.buf, size_t(view.len));
    PyBuffer_Release(&view);
    if (!data) return PyErr_NoMemory();
    chan::SendResult sent{};
    Py_BEGIN_ALLOW_THREADS;  // the queue's lock; wakes waiting Erlang processes (not a thread of ERTS)
    sent = self->channel->send(term, size_t(view.len), nullptr);
    Py_END_ALLOW_THREADS;
    switch (sent) {
        case chan::SendResult::ok: return PyUnicode_FromString("ok");
        case chan::SendResult::busy: return PyUnicode_FromString("busy");
        case chan::SendResult::closed: return PyUnicode_FromString("closed");
        case chan::SendResult::no_memory: break;
    }
    return PyErr_NoMemory();
}

// _wake_fd(): the read end of this object's wake-up pipe (made at first use).
PyObject* channel_wake_fd(PyObject* obj, PyObject*) {
    ChannelObject* self = as_channel(obj);
    if (self->wake_read < 0) {
        int fds[2];
        if (::pipe(fds) != 0) return PyErr_SetFromErrno(PyExc_OSError);
        for (int fd : fds) {
            ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
            ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        self->wake_read = fds[0];
        self->wake_write = fds[1];
    }
    return PyLong_FromLong(self->wake_read);
}

// _arm(): True when a message or the close is there now; else False, and the next send or
// close writes one byte to the wake-up pipe.
PyObject* channel_arm(PyObject* obj, PyObject*) {
    ChannelObject* self = as_channel(obj);
    if (self->wake_read < 0) {
        PyErr_SetString(PyExc_RuntimeError, "_wake_fd() first");
        return nullptr;
    }
    return PyBool_FromLong(self->channel->arm(self->wake_write));
}

// _drain(): empties the wake-up pipe.
PyObject* channel_drain(PyObject* obj, PyObject*) {
    ChannelObject* self = as_channel(obj);
    char buf[64];
    if (self->wake_read >= 0)
        while (::read(self->wake_read, buf, sizeof buf) > 0) {}
    Py_RETURN_NONE;
}

// _close(): py_channel:close/1 from Python.
PyObject* channel_close(PyObject* obj, PyObject*) {
    as_channel(obj)->channel->close(nullptr);  // not a thread of ERTS
    Py_RETURN_NONE;
}

// _disarm(): the wake-up pipe is no longer written to.
PyObject* channel_disarm(PyObject* obj, PyObject*) {
    ChannelObject* self = as_channel(obj);
    if (self->wake_write >= 0) self->channel->disarm(self->wake_write);
    Py_RETURN_NONE;
}

// _info(): {'size': bytes queued, 'max_size': limit (0: none), 'closed': bool}.
PyObject* channel_info(PyObject* obj, PyObject*) {
    chan::Info info = as_channel(obj)->channel->info();
    return Py_BuildValue("{s:n,s:n,s:n,s:O}", "size", Py_ssize_t(info.size), "max_size", Py_ssize_t(info.max_size),
                         "length", Py_ssize_t(info.length), "closed", info.closed ? Py_True : Py_False);
}

PyObject* channel_is_bytes(PyObject* obj, void*) {
    return PyBool_FromLong(as_channel(obj)->channel->kind() == chan::Kind::bytes);
}

PyObject* channel_repr(PyObject* obj) {
    ChannelObject* self = as_channel(obj);
    return PyUnicode_FromFormat("<erlang.ChannelRef %s %p>",
                                self->channel->kind() == chan::Kind::bytes ? "bytes" : "terms",
                                static_cast<void*>(self->channel));
}

void channel_dealloc(PyObject* obj) {
    ChannelObject* self = as_channel(obj);
    PyTypeObject* type = Py_TYPE(obj);
    if (self->wake_write >= 0 && self->channel) {
        self->channel->disarm(self->wake_write);
        ::close(self->wake_write);
        ::close(self->wake_read);
    }
    if (self->channel) ChannelResource::release(self->channel);
    delete self->interp;
    type->tp_free(obj);
    Py_DECREF(type);
}

PyMethodDef channel_methods[] = {
    {"_pop", channel_pop, METH_O, nullptr},
    {"_pop_many", channel_pop_many, METH_O, nullptr},
    {"_wake_fd", channel_wake_fd, METH_NOARGS, nullptr},
    {"_arm", channel_arm, METH_NOARGS, nullptr},
    {"_disarm", channel_disarm, METH_NOARGS, nullptr},
    {"_drain", channel_drain, METH_NOARGS, nullptr},
    {"_close", channel_close, METH_NOARGS, nullptr},
    {"_send_bytes", channel_send_bytes, METH_O, nullptr},
    {"_info", channel_info, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef channel_getset[] = {
    {"is_bytes", channel_is_bytes, nullptr, const_cast<char*>("True for a py_byte_channel."), nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot channel_slots[] = {
    {Py_tp_methods, channel_methods},
    {Py_tp_getset, channel_getset},
    {Py_tp_repr, reinterpret_cast<void*>(&channel_repr)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&channel_dealloc)},
    {Py_tp_doc, const_cast<char*>("A py_channel or py_byte_channel; wrap it in erlang.channel.Channel.")},
    {0, nullptr},
};

}  // namespace

PyType_Spec channel_type_spec = {"erlang.ChannelRef", sizeof(ChannelObject), 0,
                                 Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                                 channel_slots};

PyObject* make_channel_object(const Converter& cv, chan::Channel* channel) {
    PyTypeObject* type = cv.types.channel;
    auto* self = reinterpret_cast<ChannelObject*>(type->tp_alloc(type, 0));  // keeps a reference to type
    if (!self) return nullptr;
    self->channel = nullptr;
    self->types = &cv.types;
    self->wake_read = self->wake_write = -1;
    self->interp = new (std::nothrow) py::InterpreterPtr(cv.interp);
    if (!self->interp) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    ChannelResource::keep(channel);
    self->channel = channel;
    return reinterpret_cast<PyObject*>(self);
}

bool get_channel_term(const ErlangTypes& types, PyObject* obj, ErlNifEnv* env, ERL_NIF_TERM* out) {
    if (Py_TYPE(obj) != types.channel || !as_channel(obj)->channel) return false;
    *out = ChannelResource::term(env, as_channel(obj)->channel);
    return true;
}

}  // namespace bridge
