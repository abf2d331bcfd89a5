#include "context/namespace.hpp"

#include "py/ref.hpp"

namespace context {

PyObject* Namespace::globals(const py::InterpreterPtr& interp) {
    if (globals_) {
        if (interp_->serial() == interp->serial()) return globals_;
        PyErr_SetString(PyExc_RuntimeError, "this namespace belongs to another interpreter");
        return nullptr;
    }
    py::Ref dict = py::Ref::steal(PyDict_New());
    if (!dict) return nullptr;
    PyObject* builtins = PyEval_GetBuiltins();  // borrowed
    if (!builtins || PyDict_SetItemString(dict.get(), "__builtins__", builtins) < 0) return nullptr;
    py::Ref name = py::Ref::steal(PyUnicode_FromString("__main__"));
    if (!name || PyDict_SetItemString(dict.get(), "__name__", name.get()) < 0) return nullptr;
    globals_ = dict.release();
    interp_ = interp;
    return globals_;
}

}  // namespace context
