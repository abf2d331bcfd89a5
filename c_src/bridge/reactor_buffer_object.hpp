// erlang.ReactorBuffer: what the reactor (priv/_erlang_reactor.py) hands to
// Protocol.data_received. A subclass of bytes whose storage the kernel's read() fills directly:
// no intermediate buffer and no copy, and every bytes operation, the buffer protocol and
// isinstance(data, bytes) work. erlang_python 4.x's extra: data.memoryview().
// Precondition for every function: attached to the interpreter whose `erlang` module holds
// the type; erlang._reactor_read releases the GIL around read().
#pragma once

#include <Python.h>

namespace bridge {

// Creates the type and adds it to the erlang module as ReactorBuffer; -1 with an exception.
int add_reactor_buffer_type(PyObject* module);

// erlang._reactor_read(fd, size): one read() of at most size bytes into a new ReactorBuffer.
// b'' at end of stream, None when nothing is available (EAGAIN), OSError on an error.
PyObject* reactor_read(PyObject* module, PyObject* const* args, Py_ssize_t nargs);

}  // namespace bridge
