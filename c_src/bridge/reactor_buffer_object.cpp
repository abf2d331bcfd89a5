#include "bridge/reactor_buffer_object.hpp"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "py/ref.hpp"

namespace bridge {
namespace {

constexpr const char* kTypeName = "ReactorBuffer";
// A read that leaves more than this unused gives the memory back (the object shrinks).
constexpr Py_ssize_t kSlack = 256;

// data.memoryview(): a read-only view of the same memory (no copy).
PyObject* reactor_buffer_memoryview(PyObject* self, PyObject*) { return PyMemoryView_FromObject(self); }

// tp_alloc zeroes the object; a bytes' cached hash must start as "not computed" (-1), as
// bytes' own constructors set it. The field is deprecated for reading, not gone.
void reset_cached_hash(PyObject* obj) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    reinterpret_cast<PyBytesObject*>(obj)->ob_shash = -1;
#pragma GCC diagnostic pop
}

PyObject* reactor_buffer_repr(PyObject* self) {
    py::Ref copy = py::Ref::steal(PyBytes_FromStringAndSize(PyBytes_AS_STRING(self), PyBytes_GET_SIZE(self)));
    if (!copy) return nullptr;
    return PyUnicode_FromFormat("ReactorBuffer(%R)", copy.get());
}

// A heap type's instances hold a reference to it; bytes' own dealloc does not give it back.
void reactor_buffer_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

// ReactorBuffer._test_create(data): a ReactorBuffer holding a copy of data (erlang_python 4.x's
// name), to unit-test a protocol's data_received without a socket.
PyObject* reactor_buffer_test_create(PyObject* cls, PyObject* arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return nullptr;
    auto* type = reinterpret_cast<PyTypeObject*>(cls);
    PyObject* obj = type->tp_alloc(type, view.len);
    if (obj) {
        reset_cached_hash(obj);
        if (view.len > 0) std::memcpy(PyBytes_AS_STRING(obj), view.buf, size_t(view.len));
    }
    PyBuffer_Release(&view);
    return obj;
}

PyMethodDef reactor_buffer_methods[] = {
    {"memoryview", reactor_buffer_memoryview, METH_NOARGS,
     "memoryview(): a read-only memoryview of the data, without a copy."},
    {"_test_create", reactor_buffer_test_create, METH_O | METH_CLASS,
     "_test_create(data): a ReactorBuffer holding a copy of data (for tests)."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot reactor_buffer_slots[] = {
    {Py_tp_methods, reactor_buffer_methods},
    {Py_tp_repr, reinterpret_cast<void*>(reactor_buffer_repr)},
    {Py_tp_dealloc, reinterpret_cast<void*>(reactor_buffer_dealloc)},
    {Py_tp_doc, const_cast<char*>("bytes read by the reactor straight into this object (no copy); "
                                  "memoryview() gives a view of it.")},
    {0, nullptr},
};

PyType_Spec reactor_buffer_spec = {"erlang.ReactorBuffer", 0, 0,
                                   Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                                   reactor_buffer_slots};

}  // namespace

int add_reactor_buffer_type(PyObject* module) {
    py::Ref bases = py::Ref::steal(PyTuple_Pack(1, reinterpret_cast<PyObject*>(&PyBytes_Type)));
    if (!bases) return -1;
    py::Ref type = py::Ref::steal(PyType_FromModuleAndSpec(module, &reactor_buffer_spec, bases.get()));
    if (!type) return -1;
    return PyModule_AddObjectRef(module, kTypeName, type.get());
}

PyObject* reactor_read(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_reactor_read(fd, size)");
        return nullptr;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred()) return nullptr;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "_reactor_read: not a file descriptor");
        return nullptr;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred()) return nullptr;
    if (size <= 0) {
        PyErr_SetString(PyExc_ValueError, "_reactor_read: size must be positive");
        return nullptr;
    }
    py::Ref type = py::Ref::steal(PyObject_GetAttrString(module, kTypeName));
    if (!type) return nullptr;
    auto* cls = reinterpret_cast<PyTypeObject*>(type.get());
    // size bytes for the kernel to fill; what the read left unused is given back below, so a
    // 64-byte message costs a 64-byte object (asking the kernel first, FIONREAD, costs a system
    // call per read).
    Py_ssize_t want = size;
    py::Ref buf = py::Ref::steal(cls->tp_alloc(cls, want));  // zeroed, with room for the final NUL
    if (!buf) return nullptr;
    reset_cached_hash(buf.get());
    char* data = PyBytes_AS_STRING(buf.get());
    ssize_t got = 0;
    int err = 0;
    Py_BEGIN_ALLOW_THREADS;
    do {
        got = ::read(int(fd), data, size_t(want));
    } while (got < 0 && errno == EINTR);
    if (got < 0) err = errno;
    Py_END_ALLOW_THREADS;
    if (got < 0) {
        if (err == EAGAIN || err == EWOULDBLOCK) Py_RETURN_NONE;
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (got == 0) return PyBytes_FromStringAndSize(nullptr, 0);  // end of stream
    if (want - got > kSlack) {
        // Shrinks in place or moves the bytes read (a copy of what is small, only here).
        PyObject* obj = buf.release();
        if (_PyBytes_Resize(&obj, Py_ssize_t(got)) < 0) return nullptr;  // obj freed, error set
        return obj;
    }
    Py_SET_SIZE(buf.get(), got);  // a few unused bytes stay allocated
    data[got] = '\0';
    return buf.release();
}

}  // namespace bridge
