// The _erlang_etf built-in module of priv/py_child: setup, decode, encode, frame.
// Thread: the child's main thread, attached.
#include "etf_codec.hpp"
#include "input_wait.hpp"

namespace etf {

Classes& classes() {
    static Classes held;
    return held;
}

namespace {

PyObject* setup(PyObject* /*module*/, PyObject* args) {
    PyObject* atom = nullptr;
    PyObject* pid = nullptr;
    PyObject* term = nullptr;
    PyObject* wrap = nullptr;
    PyObject* resolve = nullptr;
    if (!PyArg_ParseTuple(args, "O!O!O!|OO:setup", &PyType_Type, &atom, &PyType_Type, &pid, &PyType_Type, &term, &wrap,
                          &resolve))
        return nullptr;
    if ((wrap && !PyCallable_Check(wrap)) || (resolve && !PyCallable_Check(resolve))) {
        PyErr_SetString(PyExc_TypeError, "setup: wrap and resolve must be callable");
        return nullptr;
    }
    Classes& held = classes();
    Py_XSETREF(held.atom, Py_NewRef(atom));
    Py_XSETREF(held.pid, Py_NewRef(pid));
    Py_XSETREF(held.term, Py_NewRef(term));
    Py_XSETREF(held.wrap, Py_XNewRef(wrap));
    Py_XSETREF(held.resolve, Py_XNewRef(resolve));
    Py_RETURN_NONE;
}

PyObject* decode_term(PyObject* /*module*/, PyObject* arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) != 0) return nullptr;
    PyObject* out = decode(static_cast<const unsigned char*>(view.buf), view.len);
    PyBuffer_Release(&view);
    return out;
}

PyObject* encode_term(PyObject* /*module*/, PyObject* arg) { return encode(arg, false); }

PyObject* encode_frame(PyObject* /*module*/, PyObject* arg) { return encode(arg, true); }

PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS,
     "setup(Atom, Pid, Term, wrap=None, resolve=None): what the codec makes and recognises."},
    {"decode", decode_term, METH_O, "decode(buffer): the term an external-term-format binary holds."},
    {"encode", encode_term, METH_O, "encode(value): value as an external-term-format binary."},
    {"frame", encode_frame, METH_O, "frame(value): encode(value) after its 4-byte big-endian length."},
    {"wait_readable", child::wait_readable, METH_O,
     "wait_readable(fd): returns once fd has input, after a short spin (input_wait.hpp)."},
    {"wait_stats", child::wait_stats, METH_NOARGS, "wait_stats(): the counters of wait_readable's spin."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef definition = {
    PyModuleDef_HEAD_INIT,
    "_erlang_etf",
    "The term codec of an isolated context's child process.",
    -1,
    methods,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

}  // namespace

PyObject* init_module() { return PyModule_Create(&definition); }

}  // namespace etf
