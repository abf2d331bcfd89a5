// A namespace (a globals dict) on one context: the context's shared one, or one per calling
// process. Created lazily by the context's worker thread; dropped from any thread (the dict
// goes to its interpreter's decref queue).
#pragma once

#include <Python.h>

#include "erl/resource.hpp"
#include "py/interpreter.hpp"
#include "py/serial.hpp"

namespace context {

class Namespace {
public:
    explicit Namespace(py::Serial owner) : owner_(owner) {}
    Namespace(const Namespace&) = delete;
    Namespace& operator=(const Namespace&) = delete;
    ~Namespace() {
        if (globals_) interp_->defer_decref(globals_);
    }

    // The serial of the context it belongs to (Context::serial): compared, never an address.
    py::Serial owner() const { return owner_; }

    // Precondition: on the owner's worker thread, attached to interp. Borrowed reference, or
    // nullptr with a Python exception set (also when the dict was made by another interpreter).
    // The caller holds its own reference across anything that can run Python: a reset (from a
    // callback) drops the namespace's.
    PyObject* globals(const py::InterpreterPtr& interp);

    // Precondition: as for globals(). Drops the dict now (used when the context stops).
    void clear_now() {
        Py_CLEAR(globals_);
        interp_.reset();
    }

private:
    const py::Serial owner_;
    PyObject* globals_ = nullptr;
    py::InterpreterPtr interp_;
};

using NamespaceResource = erl::Resource<Namespace>;

}  // namespace context
