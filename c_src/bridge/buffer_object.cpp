#include "bridge/buffer_object.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>

#include "py/ref.hpp"

namespace bridge {
namespace {

using State = shared::ByteBuffer::State;

// How long a blocked read waits, with the GIL released, before it looks for an interrupt.
constexpr std::chrono::milliseconds kWaitSlice{20};

struct BufferObject {
    PyObject_HEAD
    shared::ByteBuffer* buf;  // holds a reference to the resource
};

shared::ByteBuffer& buffer_of(PyObject* self) { return *reinterpret_cast<BufferObject*>(self)->buf; }

// Runs a no-op Python function: its first instruction serves the interpreter's pending work,
// so an erlang.Interrupted raised in this thread (PyThreadState_SetAsyncExc) surfaces here.
bool let_interrupts_surface(PyObject* self) {
    auto* type = reinterpret_cast<PyObject*>(Py_TYPE(self));
    py::Ref tick = py::Ref::steal(PyObject_GetAttrString(type, "_tick"));
    if (!tick) {
        PyErr_Clear();
        py::Ref globals = py::Ref::steal(PyDict_New());
        if (!globals || PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins()) < 0) return false;
        tick = py::Ref::steal(PyRun_String("lambda: None", Py_eval_input, globals.get(), globals.get()));
        if (!tick || PyObject_SetAttrString(type, "_tick", tick.get()) < 0) return false;
    }
    py::Ref done = py::Ref::steal(PyObject_CallNoArgs(tick.get()));
    return static_cast<bool>(done);
}

// Waits until ready(state), EOF or close, with the GIL released in slices of kWaitSlice;
// between slices, signals and interrupts surface (false with the exception set).
template <class Ready>
bool wait_until(PyObject* self, Ready ready) {
    shared::ByteBuffer& buf = buffer_of(self);
    for (;;) {
        size_t seen = 0;
        bool done = buf.with_locked([&](const State& s) {
            seen = s.size;
            return s.eof || s.closed || ready(s);
        });
        if (done) return true;
        Py_BEGIN_ALLOW_THREADS buf.wait_for_more(seen, kWaitSlice);
        Py_END_ALLOW_THREADS if (PyErr_CheckSignals() < 0) return false;
        if (!let_interrupts_surface(self)) return false;
    }
}

// A range of unread bytes a reader has claimed (the read position moved past it).
struct Claim {
    size_t start = 0;
    size_t size = 0;
};

// Claims n unread bytes (n <= available). Precondition: the buffer's lock is held.
Claim claim(const State& s, size_t n) {
    Claim c{s.pos, n};
    s.pos += n;
    return c;
}

// The claimed bytes as a bytes object. They are copied in slices, each under the lock (the
// block may move between two slices when a write grows it; the bytes it holds never change), so
// that a writer on a scheduler never waits for more than one slice's copy.
constexpr size_t kCopySlice = size_t{256} * 1024;

PyObject* deliver(PyObject* self, const Claim& c) {
    PyObject* out = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(c.size));
    if (!out) {
        // give the bytes back when nobody moved the position since
        buffer_of(self).with_locked([&](const State& s) {
            if (s.pos == c.start + c.size) s.pos = c.start;
        });
        return nullptr;
    }
    char* dst = PyBytes_AS_STRING(out);
    for (size_t off = 0; off < c.size; off += kCopySlice) {
        size_t len = std::min(kCopySlice, c.size - off);
        buffer_of(self).with_locked([&](const State& s) { std::memcpy(dst + off, s.data + c.start + off, len); });
    }
    return out;
}

size_t available(const State& s) { return s.size - s.pos; }

bool parse_size(PyObject* args, const char* format, Py_ssize_t* size) {
    PyObject* arg = Py_None;
    if (!PyArg_ParseTuple(args, format, &arg)) return false;
    if (arg == Py_None) {
        *size = -1;
        return true;
    }
    *size = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    return !(*size == -1 && PyErr_Occurred());
}

PyObject* buffer_read(PyObject* self, PyObject* args) {
    Py_ssize_t size = -1;
    if (!parse_size(args, "|O:read", &size)) return nullptr;
    if (size == 0) return PyBytes_FromStringAndSize(nullptr, 0);
    // -1: everything up to EOF; n: at least one byte (or EOF), at most n.
    if (!wait_until(self, [&](const State& s) { return size > 0 && available(s) > 0; })) return nullptr;
    Claim c = buffer_of(self).with_locked([&](const State& s) {
        return claim(s, size < 0 ? available(s) : std::min(available(s), static_cast<size_t>(size)));
    });
    return deliver(self, c);
}

PyObject* buffer_read_nonblock(PyObject* self, PyObject* args) {
    Py_ssize_t size = -1;
    if (!parse_size(args, "|O:read_nonblock", &size)) return nullptr;
    Claim c = buffer_of(self).with_locked([&](const State& s) {
        return claim(s, size < 0 ? available(s) : std::min(available(s), static_cast<size_t>(size)));
    });
    return deliver(self, c);
}

PyObject* buffer_readable_amount(PyObject* self, PyObject*) {
    return buffer_of(self).with_locked([](const State& s) { return PyLong_FromSize_t(available(s)); });
}

PyObject* buffer_at_eof(PyObject* self, PyObject*) {
    return buffer_of(self).with_locked([](const State& s) { return PyBool_FromLong(s.eof && s.pos == s.size); });
}

// The length of the next line in the unread bytes (through its newline), or 0 when there is
// no complete line yet.
size_t line_length(const State& s) {
    const void* nl = std::memchr(s.data + s.pos, '\n', available(s));
    return nl ? static_cast<size_t>(static_cast<const unsigned char*>(nl) - (s.data + s.pos)) + 1 : 0;
}

PyObject* readline_of(PyObject* self, Py_ssize_t limit) {
    if (limit == 0) return PyBytes_FromStringAndSize(nullptr, 0);
    auto enough = [&](const State& s) {
        return line_length(s) > 0 || (limit > 0 && available(s) >= static_cast<size_t>(limit));
    };
    if (!wait_until(self, enough)) return nullptr;
    Claim c = buffer_of(self).with_locked([&](const State& s) {
        size_t n = line_length(s);
        if (n == 0) n = available(s);  // EOF: the last, unterminated line
        if (limit > 0) n = std::min(n, static_cast<size_t>(limit));
        return claim(s, n);
    });
    return deliver(self, c);
}

PyObject* buffer_readline(PyObject* self, PyObject* args) {
    Py_ssize_t limit = -1;
    if (!parse_size(args, "|O:readline", &limit)) return nullptr;
    return readline_of(self, limit);
}

PyObject* buffer_readlines(PyObject* self, PyObject* args) {
    Py_ssize_t hint = -1;
    if (!parse_size(args, "|O:readlines", &hint)) return nullptr;
    py::Ref lines = py::Ref::steal(PyList_New(0));
    if (!lines) return nullptr;
    Py_ssize_t total = 0;
    for (;;) {
        py::Ref line = py::Ref::steal(readline_of(self, -1));
        if (!line) return nullptr;
        Py_ssize_t n = PyBytes_GET_SIZE(line.get());
        if (n == 0) break;
        if (PyList_Append(lines.get(), line.get()) < 0) return nullptr;
        total += n;
        if (hint > 0 && total >= hint) break;
    }
    return lines.release();
}

PyObject* buffer_seek(PyObject* self, PyObject* args) {
    Py_ssize_t offset = 0;
    int whence = 0;
    if (!PyArg_ParseTuple(args, "n|i:seek", &offset, &whence)) return nullptr;
    return buffer_of(self).with_locked([&](const State& s) -> PyObject* {
        Py_ssize_t base = 0;
        if (whence == SEEK_CUR) {
            base = static_cast<Py_ssize_t>(s.pos);
        } else if (whence == SEEK_END) {
            if (!s.eof) {
                PyErr_SetString(PyExc_ValueError, "SEEK_END needs the end of the data (py_buffer:close/1)");
                return nullptr;
            }
            base = static_cast<Py_ssize_t>(s.size);
        } else if (whence != SEEK_SET) {
            PyErr_Format(PyExc_ValueError, "invalid whence (%d, should be 0, 1 or 2)", whence);
            return nullptr;
        }
        Py_ssize_t target = base + offset;
        if (target < 0 || static_cast<size_t>(target) > s.size) {
            PyErr_Format(PyExc_ValueError, "position %zd is outside the %zu bytes written", target, s.size);
            return nullptr;
        }
        s.pos = static_cast<size_t>(target);
        return PyLong_FromSsize_t(target);
    });
}

PyObject* buffer_tell(PyObject* self, PyObject*) {
    return buffer_of(self).with_locked([](const State& s) { return PyLong_FromSize_t(s.pos); });
}

// find(sub, start=0, end=None): in the unread bytes written so far; indices are relative to
// the read position (as are memoryview(buf) and read(n)).
PyObject* buffer_find(PyObject* self, PyObject* args) {
    Py_buffer sub;
    Py_ssize_t start = 0;
    PyObject* end_arg = Py_None;
    if (!PyArg_ParseTuple(args, "y*|nO:find", &sub, &start, &end_arg)) return nullptr;
    Py_ssize_t end = -1;
    if (end_arg != Py_None) {
        end = PyNumber_AsSsize_t(end_arg, PyExc_OverflowError);
        if (end == -1 && PyErr_Occurred()) {
            PyBuffer_Release(&sub);
            return nullptr;
        }
    }
    Py_ssize_t found = buffer_of(self).with_locked([&](const State& s) -> Py_ssize_t {
        auto avail = static_cast<Py_ssize_t>(available(s));
        Py_ssize_t lo = start < 0 ? std::max<Py_ssize_t>(0, avail + start) : std::min(start, avail);
        Py_ssize_t hi = end_arg == Py_None ? avail
                        : end < 0          ? std::max<Py_ssize_t>(0, avail + end)
                                           : std::min(end, avail);
        if (hi - lo < sub.len) return -1;
        const unsigned char* base = s.data + s.pos;
        const void* hit =
            sub.len == 1
                ? std::memchr(base + lo, static_cast<const unsigned char*>(sub.buf)[0], static_cast<size_t>(hi - lo))
                : memmem(base + lo, static_cast<size_t>(hi - lo), sub.buf, static_cast<size_t>(sub.len));
        return hit ? static_cast<const unsigned char*>(hit) - base : -1;
    });
    PyBuffer_Release(&sub);
    return PyLong_FromSsize_t(found);
}

PyObject* buffer_close(PyObject* self, PyObject*) {
    buffer_of(self).close();
    Py_RETURN_NONE;
}

PyObject* return_true(PyObject*, PyObject*) { Py_RETURN_TRUE; }
PyObject* return_false(PyObject*, PyObject*) { Py_RETURN_FALSE; }

PyObject* buffer_closed(PyObject* self, void*) {
    return buffer_of(self).with_locked([](const State& s) { return PyBool_FromLong(s.eof || s.closed); });
}

Py_ssize_t buffer_len(PyObject* self) {
    return buffer_of(self).with_locked([](const State& s) { return static_cast<Py_ssize_t>(available(s)); });
}

PyObject* buffer_iter(PyObject* self) {
    Py_INCREF(self);
    return self;
}

PyObject* buffer_next(PyObject* self) {
    PyObject* line = readline_of(self, -1);
    if (line && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return nullptr;  // StopIteration
    }
    return line;
}

int buffer_getbuffer(PyObject* self, Py_buffer* view, int flags) {
    if (flags & PyBUF_WRITABLE) {
        PyErr_SetString(PyExc_BufferError, "erlang.PyBuffer is read-only");
        view->obj = nullptr;
        return -1;
    }
    const unsigned char* data = nullptr;
    size_t size = 0;
    buffer_of(self).pin(&data, &size);
    if (PyBuffer_FillInfo(view, self, const_cast<unsigned char*>(data), static_cast<Py_ssize_t>(size), 1, flags) < 0) {
        buffer_of(self).unpin();
        return -1;
    }
    return 0;
}

void buffer_releasebuffer(PyObject* self, Py_buffer*) { buffer_of(self).unpin(); }

PyObject* buffer_repr(PyObject* self) {
    return buffer_of(self).with_locked([](const State& s) {
        return PyUnicode_FromFormat("<erlang.PyBuffer %zu of %zu bytes read%s%s>", s.pos, s.size, s.eof ? ", eof" : "",
                                    s.closed ? ", closed" : "");
    });
}

void buffer_dealloc(PyObject* self) {
    PyTypeObject* tp = Py_TYPE(self);
    ByteBufferResource::release(reinterpret_cast<BufferObject*>(self)->buf);
    tp->tp_free(self);
    Py_DECREF(tp);
}

// PyBuffer._test_create(data): a py_buffer holding a copy of data, written and ended (EOF), as
// if Erlang had written it (erlang_python 4.x's name): unit tests of code that reads a buffer
// need no Erlang side.
PyObject* buffer_test_create(PyObject* cls, PyObject* arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return nullptr;
    shared::ByteBuffer* buf = nullptr;
    try {
        buf = ByteBufferResource::make(std::max<size_t>(size_t(view.len), 1));
        buf->write(static_cast<const unsigned char*>(view.buf), size_t(view.len));
    } catch (const std::bad_alloc&) {
        if (buf) ByteBufferResource::release(buf);
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    PyBuffer_Release(&view);
    buf->end();
    auto* obj = PyObject_New(BufferObject, reinterpret_cast<PyTypeObject*>(cls));
    if (!obj) {
        ByteBufferResource::release(buf);
        return nullptr;
    }
    obj->buf = buf;  // takes the reference make() returned
    return reinterpret_cast<PyObject*>(obj);
}

// clang-format off
PyMethodDef buffer_methods[] = {
    {"read", buffer_read, METH_VARARGS, "read(size=-1): up to size bytes (all up to EOF when -1); blocks while none is there."},
    {"read_nonblock", buffer_read_nonblock, METH_VARARGS, "read_nonblock(size=-1): the bytes there now, at most size."},
    {"readable_amount", buffer_readable_amount, METH_NOARGS, "The number of bytes read() would return without blocking."},
    {"at_eof", buffer_at_eof, METH_NOARGS, "True when the writer closed the buffer and every byte was read."},
    {"readline", buffer_readline, METH_VARARGS, "readline(size=-1): one line, with its newline; b'' at EOF."},
    {"readlines", buffer_readlines, METH_VARARGS, "readlines(hint=-1): the remaining lines."},
    {"seek", buffer_seek, METH_VARARGS, "seek(offset, whence=0): move within the bytes written; SEEK_END after EOF."},
    {"tell", buffer_tell, METH_NOARGS, "The read position."},
    {"find", buffer_find, METH_VARARGS, "find(sub, start=0, end=None): index of sub in the unread bytes, or -1."},
    {"close", buffer_close, METH_NOARGS, "End of data, as py_buffer:close/1: reads go on to the end of what was written, Erlang writes get {error, closed}."},
    {"readable", return_true, METH_NOARGS, nullptr},
    {"writable", return_false, METH_NOARGS, nullptr},
    {"seekable", return_true, METH_NOARGS, nullptr},
    {"_test_create", buffer_test_create, METH_O | METH_CLASS, "_test_create(data): a buffer holding data, at EOF (for tests)."},
    {nullptr, nullptr, 0, nullptr},
};
// clang-format on

PyGetSetDef buffer_getset[] = {
    {"closed", buffer_closed, nullptr, "True once the end of data is marked (close() or py_buffer:close/1).", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot buffer_slots[] = {
    {Py_tp_methods, buffer_methods},
    {Py_tp_getset, buffer_getset},
    {Py_tp_iter, reinterpret_cast<void*>(&buffer_iter)},
    {Py_tp_iternext, reinterpret_cast<void*>(&buffer_next)},
    {Py_sq_length, reinterpret_cast<void*>(&buffer_len)},
    {Py_bf_getbuffer, reinterpret_cast<void*>(&buffer_getbuffer)},
    {Py_bf_releasebuffer, reinterpret_cast<void*>(&buffer_releasebuffer)},
    {Py_tp_repr, reinterpret_cast<void*>(&buffer_repr)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&buffer_dealloc)},
    {Py_tp_doc, const_cast<char*>("Bytes written by Erlang (py_buffer), read as a file or through memoryview.")},
    {0, nullptr},
};

}  // namespace

// Not immutable: the type caches its interrupt probe (_tick) as an attribute.
PyType_Spec buffer_type_spec = {"erlang.PyBuffer", sizeof(BufferObject), 0,
                                Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, buffer_slots};

PyObject* make_buffer_object(const ErlangTypes& types, shared::ByteBuffer* buf) {
    auto* obj = PyObject_New(BufferObject, types.buffer);
    if (!obj) return nullptr;
    ByteBufferResource::keep(buf);
    obj->buf = buf;
    return reinterpret_cast<PyObject*>(obj);
}

}  // namespace bridge
