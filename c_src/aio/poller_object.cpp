#include "aio/poller_object.hpp"

#include <cerrno>
#include <climits>
#include <new>

#include "aio/loop_host.hpp"
#include "aio/poller.hpp"
#include "aio/signal_router.hpp"
#include "py/guard.hpp"
#include "py/ref.hpp"

namespace aio {
namespace {

thread_local LoopHost* t_loop_host = nullptr;  // see loop_host.hpp

struct PollerObject {
    PyObject_HEAD
    PollerPtr* poller;  // heap-allocated: PyObject memory is not constructed; null once closed
    py::Serial host;    // the context whose thread made it (LoopHost::serial, never its address)
};

PollerObject* as_poller(PyObject* self) { return reinterpret_cast<PollerObject*>(self); }

// The poller, when called on its own context's thread and not closed; else nullptr with an
// error. *host_out: that context.
Poller* usable(PyObject* self, LoopHost** host_out = nullptr) {
    PollerObject* p = as_poller(self);
    LoopHost* host = require_loop_host();
    if (!host) return nullptr;
    if (host->serial() != p->host) {
        PyErr_SetString(PyExc_RuntimeError, "an ErlangEventLoop is used only on the context thread that made it");
        return nullptr;
    }
    if (!p->poller) {
        PyErr_SetString(PyExc_ValueError, "the poller is closed");
        return nullptr;
    }
    if (host_out) *host_out = host;
    return p->poller->get();
}

PyObject* errno_error(int err, int fd) {
    if (err == EEXIST) return PyErr_Format(PyExc_KeyError, "%d is already registered", fd);
    if (err == ENOENT) return PyErr_Format(PyExc_KeyError, "%d is not registered", fd);
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

PyObject* poller_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
    if (!PyArg_ParseTuple(args, ":_Poller") || (kwargs && PyDict_GET_SIZE(kwargs))) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_Poller() takes no arguments");
        return nullptr;
    }
    LoopHost* host = require_loop_host();
    if (!host) return nullptr;
    PollerPtr made = host->make_poller();
    if (!made) return nullptr;
    auto* self = reinterpret_cast<PollerObject*>(type->tp_alloc(type, 0));
    if (!self) return nullptr;
    self->host = host->serial();
    self->poller = new (std::nothrow) PollerPtr(std::move(made));
    if (!self->poller) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return reinterpret_cast<PyObject*>(self);
}

void close_poller(PollerObject* p) {
    if (!p->poller) return;
    unsubscribe_signals(p->poller->get());
    (*p->poller)->remove_all();
    delete p->poller;
    p->poller = nullptr;
}

void poller_dealloc(PyObject* self) {
    PyTypeObject* tp = Py_TYPE(self);
    close_poller(as_poller(self));
    tp->tp_free(self);
    Py_DECREF(tp);
}

// register(fd, events, persistent=False): persistent, the modes stay armed after they fired
// (level-triggered; see FdWatch), for a caller that reads or writes until EAGAIN or ignores what
// it no longer wants.
PyObject* poller_register(PyObject* self, PyObject* args) {
    int fd = -1, events = 0, persistent = 0;
    if (!PyArg_ParseTuple(args, "ii|p:register", &fd, &events, &persistent)) return nullptr;
    Poller* p = usable(self);
    if (!p) return nullptr;
    int err = p->add(fd, events, *as_poller(self)->poller, persistent != 0);
    if (err) return errno_error(err, fd);
    p->arm_pending();
    Py_RETURN_NONE;
}

// modify(fd, events)
PyObject* poller_modify(PyObject* self, PyObject* args) {
    int fd = -1, events = 0;
    if (!PyArg_ParseTuple(args, "ii:modify", &fd, &events)) return nullptr;
    Poller* p = usable(self);
    if (!p) return nullptr;
    int err = p->modify(fd, events);
    if (err) return errno_error(err, fd);
    p->arm_pending();
    Py_RETURN_NONE;
}

// unregister(fd)
PyObject* poller_unregister(PyObject* self, PyObject* arg) {
    long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred()) return nullptr;
    if (value < 0 || value > INT_MAX) return PyErr_Format(PyExc_KeyError, "%ld is not registered", value);
    int fd = static_cast<int>(value);
    Poller* p = usable(self);
    if (!p) return nullptr;
    int err = p->remove(fd);
    if (err) return errno_error(err, fd);
    Py_RETURN_NONE;
}

// [(fd, events)], then (-signum, 0) for each OS signal that arrived (the selector hands those
// to its loop's signal handlers).
PyObject* ready_list(Poller* p) {
    auto events = p->take_ready();
    for (uint64_t signals = p->take_signals(); signals; signals &= signals - 1)
        events.emplace_back(-__builtin_ctzll(signals), 0);
    py::Ref list = py::Ref::steal(PyList_New(static_cast<Py_ssize_t>(events.size())));
    if (!list) return nullptr;
    for (size_t i = 0; i < events.size(); ++i) {
        PyObject* pair = Py_BuildValue("(ii)", events[i].first, events[i].second);
        if (!pair) return nullptr;
        PyList_SET_ITEM(list.get(), static_cast<Py_ssize_t>(i), pair);
    }
    return list.release();
}

// wait(timeout) -> [(fd, events)]: blocks (serving the context's other work) until a
// descriptor is ready or timeout seconds pass; None waits without limit.
PyObject* poller_wait(PyObject* self, PyObject* arg) {
    double timeout = -1;
    if (arg != Py_None) {
        timeout = PyFloat_AsDouble(arg);
        if (timeout == -1.0 && PyErr_Occurred()) return nullptr;
        if (timeout < 0) timeout = 0;
    }
    LoopHost* host = nullptr;
    Poller* p = usable(self, &host);
    if (!p) return nullptr;
    p->arm_pending();
    if (!p->has_ready()) {
        if (timeout == 0) p->poll_now();
        else if (!p->poll_ready() && !host->wait_poller(*p, timeout)) return nullptr;  // nothing ready yet: wait
    }
    return ready_list(p);
}

// poll() -> [(fd, events)]: what is ready now, without waiting.
PyObject* poller_poll(PyObject* self, PyObject*) {
    Poller* p = usable(self);
    if (!p) return nullptr;
    if (!p->has_ready()) p->poll_now();
    return ready_list(p);
}

// arm(): hands the modes that fired back to the BEAM (the loop has consumed them).
PyObject* poller_arm(PyObject* self, PyObject*) {
    Poller* p = usable(self);
    if (!p) return nullptr;
    p->arm_pending();
    Py_RETURN_NONE;
}

// request_step(): the hosted loop has new work (a callback or timer scheduled outside a step).
PyObject* poller_request_step(PyObject* self, PyObject*) {
    Poller* p = usable(self);
    if (!p) return nullptr;
    p->request_step();
    Py_RETURN_NONE;
}

// host(loop | None): the context steps loop between requests from now on (None: no more).
PyObject* poller_host(PyObject* self, PyObject* loop) {
    LoopHost* host = nullptr;
    Poller* p = usable(self, &host);
    if (!p) return nullptr;
    host->set_hosted_loop(loop == Py_None ? nullptr : loop, loop == Py_None ? nullptr : p);
    Py_RETURN_NONE;
}

// subscribe_signal(signum): OS signal signum reaches this poller's ready list from now on
// (ValueError when OTP does not route it and it is not SIGCHLD; OSError when SIGCHLD's
// handler cannot be installed).
PyObject* poller_subscribe_signal(PyObject* self, PyObject* arg) {
    long signum = PyLong_AsLong(arg);
    if (signum == -1 && PyErr_Occurred()) return nullptr;
    if (!usable(self)) return nullptr;
    if (signum <= 0 || signum >= 64) return PyErr_Format(PyExc_ValueError, "invalid signal number %ld", signum);
    if (!is_loop_signal(static_cast<int>(signum)))
        return PyErr_Format(PyExc_ValueError, "signal %ld is not routed by OTP", signum);
    int err = 0;
    try {
        err = subscribe_signal(static_cast<int>(signum), *as_poller(self)->poller, as_poller(self)->host);
    } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
    }
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

// unsubscribe_signal(signum)
PyObject* poller_unsubscribe_signal(PyObject* self, PyObject* arg) {
    long signum = PyLong_AsLong(arg);
    if (signum == -1 && PyErr_Occurred()) return nullptr;
    PollerObject* p = as_poller(self);
    if (p->poller && signum > 0 && signum < 64) unsubscribe_signal(static_cast<int>(signum), p->poller->get());
    Py_RETURN_NONE;
}

PyObject* poller_close(PyObject* self, PyObject*) {
    close_poller(as_poller(self));
    Py_RETURN_NONE;
}

PyMethodDef poller_methods[] = {
    {"register", py::guarded<&poller_register>, METH_VARARGS, nullptr},
    {"modify", py::guarded<&poller_modify>, METH_VARARGS, nullptr},
    {"unregister", py::guarded<&poller_unregister>, METH_O, nullptr},
    {"wait", py::guarded<&poller_wait>, METH_O, nullptr},
    {"poll", py::guarded<&poller_poll>, METH_NOARGS, nullptr},
    {"arm", py::guarded<&poller_arm>, METH_NOARGS, nullptr},
    {"request_step", py::guarded<&poller_request_step>, METH_NOARGS, nullptr},
    {"host", py::guarded<&poller_host>, METH_O, nullptr},
    {"subscribe_signal", py::guarded<&poller_subscribe_signal>, METH_O, nullptr},
    {"unsubscribe_signal", py::guarded<&poller_unsubscribe_signal>, METH_O, nullptr},
    {"close", py::guarded<&poller_close>, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot poller_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(py::guarded<&poller_new>)},
    {Py_tp_dealloc, reinterpret_cast<void*>(py::guarded<&poller_dealloc>)},
    {Py_tp_methods, poller_methods},
    {Py_tp_doc, const_cast<char*>("Descriptor readiness from the context thread's epoll set, for ErlangEventLoop.")},
    {0, nullptr},
};

}  // namespace

void set_current_loop_host(LoopHost* host) { t_loop_host = host; }

LoopHost* require_loop_host() {
    LoopHost* host = t_loop_host;
    if (!host) PyErr_SetString(PyExc_RuntimeError, "not running in an erlang_python context thread");
    return host;
}

PyType_Spec poller_type_spec = {"erlang._Poller", sizeof(PollerObject), 0,
                                Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE, poller_slots};

}  // namespace aio
