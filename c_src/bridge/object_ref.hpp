// An Erlang resource that keeps a Python object alive: the opaque reference handed to Erlang
// for objects with no Erlang equivalent. Any thread may drop it: the destructor hands the
// object to its interpreter's decref queue and never touches Python.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include "erl/resource.hpp"
#include "py/interpreter.hpp"

namespace bridge {

class ObjectRef {
public:
    // Precondition: attached to interp; takes a new reference to obj.
    ObjectRef(PyObject* obj, py::InterpreterPtr interp) : obj_(obj), interp_(std::move(interp)) { Py_INCREF(obj_); }
    ObjectRef(const ObjectRef&) = delete;
    ObjectRef& operator=(const ObjectRef&) = delete;
    ~ObjectRef() { interp_->defer_decref(obj_); }

    // Borrowed; only valid on a thread attached to interpreter(), which the caller checks by
    // serial (py::Interpreter::serial), never by state address.
    PyObject* object() const { return obj_; }
    const py::Interpreter& interpreter() const { return *interp_; }

private:
    PyObject* obj_;
    py::InterpreterPtr interp_;
};

using ObjectRefResource = erl::Resource<ObjectRef>;

}  // namespace bridge
