#include "context/namespace.hpp"

#include "py/ref.hpp"

namespace context {
namespace {

// Precondition: attached. The module `name` if this interpreter imported it (a look-up in
// sys.modules, no import machinery); nullptr, with no exception set, if not.
py::Ref imported_module(const char* name) {
    py::Ref module_name = py::Ref::steal(PyUnicode_FromString(name));
    return py::Ref::steal(module_name ? PyImport_GetModule(module_name.get()) : nullptr);
}

// Precondition: attached. Copies into dict the globals the preload code made in this
// interpreter (priv/_erlang_setup.py, py_preload.erl), if any. The module is never imported
// here: an interpreter no setup step reached has nothing preloaded.
bool add_preloaded(PyObject* dict) {
    py::Ref setup = imported_module("_erlang_setup");
    if (!setup) return !PyErr_Occurred();
    py::Ref base = py::Ref::steal(PyObject_GetAttrString(setup.get(), "preloaded"));
    if (!base) return false;
    return !PyDict_Check(base.get()) || PyDict_Update(dict, base.get()) == 0;
}

}  // namespace

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
    // `erlang` without an import, as in erlang_python 3.x (imported when the context started).
    py::Ref erlang = imported_module("erlang");
    if (!erlang && !PyErr_Occurred()) erlang = py::Ref::steal(PyImport_ImportModule("erlang"));
    if (!erlang || PyDict_SetItemString(dict.get(), "erlang", erlang.get()) < 0) return nullptr;
    if (!add_preloaded(dict.get())) return nullptr;
    globals_ = dict.release();
    interp_ = interp;
    return globals_;
}

}  // namespace context
