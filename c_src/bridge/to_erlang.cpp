// Python object -> Erlang term.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "bridge/convert.hpp"
#include "bridge/object_ref.hpp"
#include "erl/atoms.hpp"
#include "py/ref.hpp"

namespace bridge {
namespace {

constexpr unsigned char kVersionMagic = 131, kLargeBig = 111;

// Reads the value through int's own slots, never through methods a subclass may override (an
// __abs__ or bit_length that lies would make the copy below read past the digits).
bool bignum_to_erlang(ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out) {
    py::Ref zero = py::Ref::steal(PyLong_FromLong(0));
    py::Ref below = py::Ref::steal(zero ? PyLong_Type.tp_richcompare(obj, zero.get(), Py_LT) : nullptr);
    if (!below) return false;
    bool negative = below.get() == Py_True;
    py::Ref magnitude = py::Ref::steal(PyLong_Type.tp_as_number->nb_absolute(obj));  // an exact int
    if (!magnitude || !PyLong_CheckExact(magnitude.get())) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "int's abs() gave no int");
        return false;
    }
    py::Ref bits = py::Ref::steal(PyObject_CallMethod(magnitude.get(), "bit_length", nullptr));
    if (!bits) return false;
    size_t nbytes = (PyLong_AsSize_t(bits.get()) + 7) / 8;
    if (PyErr_Occurred()) return false;
    py::Ref digits = py::Ref::steal(
        PyObject_CallMethod(magnitude.get(), "to_bytes", "ns", static_cast<Py_ssize_t>(nbytes), "little"));
    if (!digits) return false;
    if (!PyBytes_Check(digits.get()) || static_cast<size_t>(PyBytes_GET_SIZE(digits.get())) != nbytes) {
        PyErr_SetString(PyExc_SystemError, "int.to_bytes gave an unexpected result");
        return false;
    }
    // LARGE_BIG_EXT: 131, 111, N:32/big, Sign:8, Digits:N/little
    std::vector<unsigned char> etf(7 + nbytes);
    etf[0] = kVersionMagic;
    etf[1] = kLargeBig;
    etf[2] = static_cast<unsigned char>(nbytes >> 24);
    etf[3] = static_cast<unsigned char>(nbytes >> 16);
    etf[4] = static_cast<unsigned char>(nbytes >> 8);
    etf[5] = static_cast<unsigned char>(nbytes);
    etf[6] = negative ? 1 : 0;
    std::memcpy(etf.data() + 7, PyBytes_AS_STRING(digits.get()), nbytes);
    if (enif_binary_to_term(env, etf.data(), etf.size(), out, ERL_NIF_BIN2TERM_SAFE) == 0) {
        PyErr_SetString(PyExc_OverflowError, "integer too large for the Erlang VM");
        return false;
    }
    return true;
}

bool int_to_erlang(ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) return false;
    if (!overflow) {
        *out = enif_make_int64(env, v);
        return true;
    }
    return bignum_to_erlang(env, obj, out);
}

ERL_NIF_TERM float_to_erlang(ErlNifEnv* env, double d) {
    const erl::Atoms& a = erl::atoms();
    if (std::isnan(d)) return a.nan;
    if (std::isinf(d)) return d > 0 ? a.infinity : a.neg_infinity;
    return enif_make_double(env, d);
}

bool str_to_erlang(ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(obj, &size);  // fails on lone surrogates
    if (!data) return false;
    unsigned char* dst = enif_make_new_binary(env, static_cast<size_t>(size), out);
    if (!dst) {
        PyErr_NoMemory();
        return false;
    }
    std::memcpy(dst, data, static_cast<size_t>(size));
    return true;
}

bool bytes_to_erlang(ErlNifEnv* env, const char* data, Py_ssize_t size, ERL_NIF_TERM* out) {
    unsigned char* dst = enif_make_new_binary(env, static_cast<size_t>(size), out);
    if (!dst) {
        PyErr_NoMemory();
        return false;
    }
    std::memcpy(dst, data, static_cast<size_t>(size));
    return true;
}

bool opaque_to_erlang(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out) {
    ObjectRef* ref = ObjectRefResource::make(obj, cv.interp);
    *out = ObjectRefResource::term(env, ref);
    ObjectRefResource::release(ref);  // the term now holds the only reference
    return true;
}

bool convert(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out, int depth);

bool sequence_items(const Converter& cv, ErlNifEnv* env, PyObject* const* items, Py_ssize_t n,
                    std::vector<ERL_NIF_TERM>& terms, int depth) {
    terms.resize(static_cast<size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) {
        if (!convert(cv, env, items[i], &terms[static_cast<size_t>(i)], depth + 1)) return false;
    }
    return true;
}

bool list_to_erlang(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out, int depth) {
    // Convert from a snapshot: Python code run by a conversion hook cannot resize it under us.
    // A copy of a list's items: converting an item can run Python code (a finaliser during an
    // allocation) that changes the list.
    py::Ref snapshot = py::Ref::steal(PyList_Check(obj) ? PyList_GetSlice(obj, 0, PY_SSIZE_T_MAX)
                                                        : PySequence_Fast(obj, "not a sequence"));
    if (!snapshot) return false;
    std::vector<ERL_NIF_TERM> terms;
    if (!sequence_items(cv, env, PySequence_Fast_ITEMS(snapshot.get()), PySequence_Fast_GET_SIZE(snapshot.get()), terms,
                        depth))
        return false;
    *out = enif_make_list_from_array(env, terms.data(), static_cast<unsigned>(terms.size()));
    return true;
}

// The largest tuple the BEAM can hold (MAX_ARITY: 2^24 - 1 elements).
constexpr Py_ssize_t kMaxTupleArity = (Py_ssize_t(1) << 24) - 1;

bool tuple_to_erlang(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out, int depth) {
    if (PyTuple_GET_SIZE(obj) > kMaxTupleArity) {
        PyErr_Format(PyExc_ValueError, "a tuple of %zd elements cannot become an Erlang tuple (at most %zd)",
                     PyTuple_GET_SIZE(obj), kMaxTupleArity);
        return false;
    }
    std::vector<ERL_NIF_TERM> terms;
    if (!sequence_items(cv, env, &PyTuple_GET_ITEM(obj, 0), PyTuple_GET_SIZE(obj), terms, depth)) return false;
    *out = enif_make_tuple_from_array(env, terms.data(), static_cast<unsigned>(terms.size()));
    return true;
}

// enif_make_map_from_arrays sorts the keys with erts_qsort, which on OTP 23.3.4.15+, 24.3.4.2+,
// 25.1+ and 26 (before the fix for erlang/otp#8208) assumes a scheduler thread once there are
// more than 128 keys, and crashes the VM on a context's thread. And past 32 pairs (a hash map)
// OTP 25 drops duplicate keys silently instead of failing, leaving a malformed map
// (erlang/otp#10975, found by make fuzz). Past 32 entries the map is built by insertion.
constexpr size_t kMaxMapFromArrays = 32;

ERL_NIF_TERM map_from_pairs(ErlNifEnv* env, std::vector<ERL_NIF_TERM>& keys, std::vector<ERL_NIF_TERM>& values) {
    size_t head = std::min(keys.size(), kMaxMapFromArrays);
    ERL_NIF_TERM map{};
    if (!enif_make_map_from_arrays(env, keys.data(), values.data(), head, &map)) {
        // Distinct Python keys became equal terms ('a' and b'a' are both <<"a">>): the last one wins.
        map = enif_make_new_map(env);
        for (size_t i = 0; i < head; ++i) enif_make_map_put(env, map, keys[i], values[i], &map);
    }
    for (size_t i = head; i < keys.size(); ++i) enif_make_map_put(env, map, keys[i], values[i], &map);
    return map;
}

bool dict_to_erlang(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out, int depth) {
    py::Ref items = py::Ref::steal(PyDict_Items(obj));  // snapshot
    if (!items) return false;
    Py_ssize_t n = PyList_GET_SIZE(items.get());
    std::vector<ERL_NIF_TERM> keys(static_cast<size_t>(n)), values(static_cast<size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* pair = PyList_GET_ITEM(items.get(), i);
        if (!convert(cv, env, PyTuple_GET_ITEM(pair, 0), &keys[static_cast<size_t>(i)], depth + 1)) return false;
        if (!convert(cv, env, PyTuple_GET_ITEM(pair, 1), &values[static_cast<size_t>(i)], depth + 1)) return false;
    }
    *out = map_from_pairs(env, keys, values);
    return true;
}

bool convert(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out, int depth) {
    if (depth > kMaxDepth) {
        PyErr_Format(PyExc_RecursionError, "value nested deeper than %d levels (or cyclic)", kMaxDepth);
        return false;
    }
    const erl::Atoms& a = erl::atoms();
    if (obj == Py_None) {
        *out = a.none;
        return true;
    }
    if (obj == Py_True) {
        *out = a.true_;
        return true;
    }
    if (obj == Py_False) {
        *out = a.false_;
        return true;
    }
    if (PyLong_Check(obj)) return int_to_erlang(env, obj, out);
    if (PyFloat_Check(obj)) {
        *out = float_to_erlang(env, PyFloat_AS_DOUBLE(obj));
        return true;
    }
    if (PyUnicode_Check(obj)) return str_to_erlang(env, obj, out);
    if (PyBytes_Check(obj)) return bytes_to_erlang(env, PyBytes_AS_STRING(obj), PyBytes_GET_SIZE(obj), out);
    if (PyByteArray_Check(obj)) return bytes_to_erlang(env, PyByteArray_AS_STRING(obj), PyByteArray_GET_SIZE(obj), out);
    if (PyList_Check(obj)) return list_to_erlang(cv, env, obj, out, depth);
    if (PyTuple_Check(obj)) return tuple_to_erlang(cv, env, obj, out, depth);
    if (PyDict_Check(obj)) return dict_to_erlang(cv, env, obj, out, depth);
    ErlNifPid pid;
    if (get_pid(cv.types, obj, &pid)) {
        *out = enif_make_pid(env, &pid);
        return true;
    }
    if (get_term(cv.types, obj, env, out)) return true;
    return opaque_to_erlang(cv, env, obj, out);
}

}  // namespace

bool to_erlang(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out) {
    return convert(cv, env, obj, out, 0);
}

}  // namespace bridge
