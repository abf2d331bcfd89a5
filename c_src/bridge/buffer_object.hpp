// erlang.PyBuffer: the Python face of a py_buffer (shared/byte_buffer.hpp). A py_buffer term
// converts to one (to_python.cpp); the object keeps the buffer's resource alive, so a
// memoryview of it never outlives its memory.
// Precondition for every function: attached to the interpreter whose `erlang` module made the
// type.
#pragma once

#include <Python.h>

#include "bridge/erlang_module.hpp"
#include "erl/resource.hpp"
#include "shared/byte_buffer.hpp"

namespace bridge {

using ByteBufferResource = erl::Resource<shared::ByteBuffer>;

extern PyType_Spec buffer_type_spec;

// A new erlang.PyBuffer for buf (takes a reference to its resource).
PyObject* make_buffer_object(const ErlangTypes& types, shared::ByteBuffer* buf);

}  // namespace bridge
