// Erlang term -> Python object.
#include <cstring>
#include <string>

#include "bridge/buffer_object.hpp"
#include "bridge/channel_object.hpp"
#include "bridge/convert.hpp"
#include "bridge/object_ref.hpp"
#include "bridge/utf8.hpp"
#include "erl/atoms.hpp"
#include "py/ref.hpp"

namespace bridge {
namespace {

// External term format tags (erts/emulator/beam/external.h).
constexpr unsigned char kSmallBig = 110, kLargeBig = 111, kAtomUtf8 = 118, kSmallAtomUtf8 = 119;

// Serialises term in external format into bin; the caller releases bin.
bool external_form(ErlNifEnv* env, ERL_NIF_TERM term, ErlNifBinary* bin) {
    return enif_term_to_binary(env, term, bin) != 0;
}

PyObject* bignum_to_python(ErlNifEnv* env, ERL_NIF_TERM term) {
    ErlNifBinary bin;
    if (!external_form(env, term, &bin)) return PyErr_NoMemory();
    PyObject* result = nullptr;
    const unsigned char* p = bin.data;
    size_t n = 0, header = 0;
    if (bin.size >= 3 && p[1] == kSmallBig) {
        n = p[2];
        header = 3;
    } else if (bin.size >= 6 && p[1] == kLargeBig) {
        n = (size_t(p[2]) << 24) | (size_t(p[3]) << 16) | (size_t(p[4]) << 8) | size_t(p[5]);
        header = 6;
    }
    if (header && bin.size >= header + 1 + n) {
        bool negative = p[header] != 0;
        py::Ref digits = py::Ref::steal(
            PyBytes_FromStringAndSize(reinterpret_cast<const char*>(p + header + 1), static_cast<Py_ssize_t>(n)));
        py::Ref value = py::Ref::steal(digits ? PyObject_CallMethod(reinterpret_cast<PyObject*>(&PyLong_Type),
                                                                    "from_bytes", "Os", digits.get(), "little")
                                              : nullptr);
        result = (value && negative) ? PyNumber_Negative(value.get()) : value.release();
    } else {
        PyErr_SetString(PyExc_SystemError, "unexpected external format for an integer");
    }
    enif_release_binary(&bin);
    return result;
}

PyObject* integer_to_python(ErlNifEnv* env, ERL_NIF_TERM term) {
    ErlNifSInt64 i = 0;
    if (enif_get_int64(env, term, &i)) return PyLong_FromLongLong(i);
    ErlNifUInt64 u = 0;
    if (enif_get_uint64(env, term, &u)) return PyLong_FromUnsignedLongLong(u);
    return bignum_to_python(env, term);
}

PyObject* atom_text_to_python(ErlNifEnv* env, ERL_NIF_TERM term) {
    unsigned len = 0;
    if (enif_get_atom_length(env, term, &len, ERL_NIF_LATIN1)) {
        char buf[256 * 4 + 1];
        int got = enif_get_atom(env, term, buf, sizeof buf, ERL_NIF_LATIN1);
        if (got > 0) return PyUnicode_DecodeLatin1(buf, got - 1, nullptr);
    }
    // Atoms outside Latin-1 (OTP 20+): read the UTF-8 text from the external format.
    ErlNifBinary bin;
    if (!external_form(env, term, &bin)) return PyErr_NoMemory();
    PyObject* result = nullptr;
    if (bin.size >= 3 && bin.data[1] == kSmallAtomUtf8) {
        result = PyUnicode_DecodeUTF8(reinterpret_cast<const char*>(bin.data + 3), bin.data[2], "strict");
    } else if (bin.size >= 4 && bin.data[1] == kAtomUtf8) {
        size_t n = (size_t(bin.data[2]) << 8) | bin.data[3];
        result =
            PyUnicode_DecodeUTF8(reinterpret_cast<const char*>(bin.data + 4), static_cast<Py_ssize_t>(n), "strict");
    } else {
        PyErr_SetString(PyExc_SystemError, "unexpected external format for an atom");
    }
    enif_release_binary(&bin);
    return result;
}

PyObject* atom_to_python(ErlNifEnv* env, ERL_NIF_TERM term) {
    const erl::Atoms& a = erl::atoms();
    if (term == a.true_) Py_RETURN_TRUE;
    if (term == a.false_) Py_RETURN_FALSE;
    if (term == a.none || term == a.undefined || term == a.nil) Py_RETURN_NONE;
    return atom_text_to_python(env, term);
}

PyObject* binary_to_python(ErlNifEnv* env, ERL_NIF_TERM term) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, term, &bin)) {
        PyErr_SetString(PyExc_TypeError, "bitstrings whose size is not a whole number of bytes cannot be converted");
        return nullptr;
    }
    const char* data = reinterpret_cast<const char*>(bin.data);
    auto size = static_cast<Py_ssize_t>(bin.size);
    if (!may_be_utf8(bin.data, bin.size)) return PyBytes_FromStringAndSize(data, size);  // not UTF-8
    PyObject* s = PyUnicode_DecodeUTF8(data, size, "strict");
    if (s) return s;
    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return nullptr;
    PyErr_Clear();  // not UTF-8 after all: the binary arrives as bytes
    return PyBytes_FromStringAndSize(data, size);
}

PyObject* opaque_term_to_python(const Converter& cv, ErlNifEnv* env, ERL_NIF_TERM term) {
    if (ObjectRef* ref = ObjectRefResource::get(env, term)) {
        // By serial, never by address: an ended interpreter's state is often reused by a new one.
        const py::Interpreter& owner = ref->interpreter();
        if (owner.serial() != cv.interp->serial()) {
            PyErr_SetString(PyExc_ValueError,
                            owner.alive() ? "a Python object reference from another interpreter cannot be used here"
                                          : "a Python object reference whose interpreter has ended (its owngil "
                                            "context stopped) cannot be used");
            return nullptr;
        }
        PyObject* obj = ref->object();
        Py_INCREF(obj);
        return obj;
    }
    if (shared::ByteBuffer* buf = ByteBufferResource::get(env, term)) return make_buffer_object(cv.types, buf);
    if (chan::Channel* channel = ChannelResource::get(env, term)) return make_channel_object(cv, channel);
    ErlNifBinary bin;
    if (!external_form(env, term, &bin)) return PyErr_NoMemory();
    PyObject* result = make_term(cv.types, bin.data, bin.size, term);
    enif_release_binary(&bin);
    return result;
}

PyObject* convert(const Converter& cv, ErlNifEnv* env, ERL_NIF_TERM term, int depth);

PyObject* list_to_python(const Converter& cv, ErlNifEnv* env, ERL_NIF_TERM term, int depth) {
    unsigned len = 0;
    if (!enif_get_list_length(env, term, &len)) {
        PyErr_SetString(PyExc_TypeError, "improper lists cannot be converted");
        return nullptr;
    }
    py::Ref list = py::Ref::steal(PyList_New(len));
    if (!list) return nullptr;
    ERL_NIF_TERM head{}, tail = term;
    for (unsigned i = 0; i < len; ++i) {
        enif_get_list_cell(env, tail, &head, &tail);
        ErlNifSInt64 small = 0;  // the commonest item first: an integer of 64 bits (within the depth limit)
        PyObject* item = depth + 1 <= kMaxDepth && enif_get_int64(env, head, &small)
                             ? PyLong_FromLongLong(small)
                             : convert(cv, env, head, depth + 1);
        if (!item) return nullptr;
        PyList_SET_ITEM(list.get(), i, item);
    }
    return list.release();
}

PyObject* tuple_to_python(const Converter& cv, ErlNifEnv* env, ERL_NIF_TERM term, int depth) {
    int arity = 0;
    const ERL_NIF_TERM* elems = nullptr;
    enif_get_tuple(env, term, &arity, &elems);
    ErlNifBinary bytes;  // {bytes, Binary} -> bytes, whatever the binary holds (erlang_python 3.x)
    if (arity == 2 && elems[0] == erl::atoms().bytes && enif_inspect_binary(env, elems[1], &bytes))
        return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(bytes.data),
                                         static_cast<Py_ssize_t>(bytes.size));
    py::Ref tuple = py::Ref::steal(PyTuple_New(arity));
    if (!tuple) return nullptr;
    for (int i = 0; i < arity; ++i) {
        PyObject* item = convert(cv, env, elems[i], depth + 1);
        if (!item) return nullptr;
        PyTuple_SET_ITEM(tuple.get(), i, item);
    }
    return tuple.release();
}

PyObject* map_to_python(const Converter& cv, ErlNifEnv* env, ERL_NIF_TERM term, int depth) {
    py::Ref dict = py::Ref::steal(PyDict_New());
    if (!dict) return nullptr;
    ErlNifMapIterator it;
    if (!enif_map_iterator_create(env, term, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return PyErr_NoMemory();
    ERL_NIF_TERM k{}, v{};
    bool ok = true;
    while (ok && enif_map_iterator_get_pair(env, &it, &k, &v)) {
        py::Ref key = py::Ref::steal(convert(cv, env, k, depth + 1));
        py::Ref value = py::Ref::steal(key ? convert(cv, env, v, depth + 1) : nullptr);
        ok = value && PyDict_SetItem(dict.get(), key.get(), value.get()) == 0;
        enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    return ok ? dict.release() : nullptr;
}

PyObject* convert(const Converter& cv, ErlNifEnv* env, ERL_NIF_TERM term, int depth) {
    if (depth > kMaxDepth) {
        PyErr_Format(PyExc_RecursionError, "term nested deeper than %d levels", kMaxDepth);
        return nullptr;
    }
    switch (enif_term_type(env, term)) {
        case ERL_NIF_TERM_TYPE_INTEGER: return integer_to_python(env, term);
        case ERL_NIF_TERM_TYPE_FLOAT: {
            double d = 0;
            enif_get_double(env, term, &d);
            return PyFloat_FromDouble(d);
        }
        case ERL_NIF_TERM_TYPE_ATOM: return atom_to_python(env, term);
        case ERL_NIF_TERM_TYPE_BITSTRING: return binary_to_python(env, term);
        case ERL_NIF_TERM_TYPE_LIST: return list_to_python(cv, env, term, depth);
        case ERL_NIF_TERM_TYPE_TUPLE: return tuple_to_python(cv, env, term, depth);
        case ERL_NIF_TERM_TYPE_MAP: return map_to_python(cv, env, term, depth);
        case ERL_NIF_TERM_TYPE_PID: {
            ErlNifPid pid;
            if (enif_get_local_pid(env, term, &pid)) return make_pid(cv.types, pid);
            return opaque_term_to_python(cv, env, term);  // a pid of another node
        }
        default: return opaque_term_to_python(cv, env, term);  // reference, port, fun
    }
}

}  // namespace

PyObject* to_python(const Converter& cv, ErlNifEnv* env, ERL_NIF_TERM term) { return convert(cv, env, term, 0); }

PyObject* name_to_python(ErlNifEnv* env, ERL_NIF_TERM term) {
    if (enif_is_atom(env, term)) return atom_text_to_python(env, term);
    ErlNifBinary bin;
    if (enif_inspect_binary(env, term, &bin) || enif_inspect_iolist_as_binary(env, term, &bin)) {
        if (std::memchr(bin.data, 0, bin.size)) {
            PyErr_SetString(PyExc_ValueError, "name contains a NUL byte");
            return nullptr;
        }
        return PyUnicode_DecodeUTF8(reinterpret_cast<const char*>(bin.data), static_cast<Py_ssize_t>(bin.size),
                                    "strict");
    }
    PyErr_SetString(PyExc_TypeError, "a name must be an atom, a binary or a string");
    return nullptr;
}

}  // namespace bridge
