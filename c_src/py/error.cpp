#include "py/error.hpp"

#include <Python.h>

#include "py/ref.hpp"

namespace py {
namespace {

std::string utf8_of(PyObject* s) {
    if (!s || !PyUnicode_Check(s)) return {};
    Py_ssize_t n = 0;
    const char* p = PyUnicode_AsUTF8AndSize(s, &n);
    if (!p) {
        PyErr_Clear();
        // Lone surrogates cannot be UTF-8 encoded; escape them instead of failing.
        Ref b = Ref::steal(PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace"));
        if (!b) {
            PyErr_Clear();
            return {};
        }
        return {PyBytes_AS_STRING(b.get()), static_cast<size_t>(PyBytes_GET_SIZE(b.get()))};
    }
    return {p, static_cast<size_t>(n)};
}

std::string format_traceback(PyObject* exc) {
    Ref mod = Ref::steal(PyImport_ImportModule("traceback"));
    if (!mod) {
        PyErr_Clear();
        return {};
    }
    Ref lines = Ref::steal(PyObject_CallMethod(mod.get(), "format_exception", "O", exc));
    if (!lines) {
        PyErr_Clear();
        return {};
    }
    Ref empty = Ref::steal(PyUnicode_FromString(""));
    Ref joined = Ref::steal(empty ? PyUnicode_Join(empty.get(), lines.get()) : nullptr);
    if (!joined) {
        PyErr_Clear();
        return {};
    }
    return utf8_of(joined.get());
}

PyObject* fetch_exception() {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

}  // namespace

ExceptionInfo take_exception() {
    ExceptionInfo info;
    Ref exc = Ref::steal(fetch_exception());
    if (!exc) {
        info.type_name = "SystemError";
        info.message = "error reported without an exception set";
        return info;
    }
    Ref name = Ref::steal(PyObject_GetAttrString(reinterpret_cast<PyObject*>(Py_TYPE(exc.get())), "__name__"));
    if (!name) PyErr_Clear();
    info.type_name = name ? utf8_of(name.get()) : std::string("Exception");
    Ref text = Ref::steal(PyObject_Str(exc.get()));
    if (!text) PyErr_Clear();
    info.message = utf8_of(text.get());
    info.traceback = format_traceback(exc.get());
    PyErr_Clear();
    return info;
}

}  // namespace py
