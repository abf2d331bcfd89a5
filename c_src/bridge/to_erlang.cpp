// Python object -> Erlang term.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "bridge/channel_object.hpp"
#include "bridge/convert.hpp"
#include "bridge/object_ref.hpp"
#include "erl/atoms.hpp"
#include "erl/map_builder.hpp"
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
#if PY_VERSION_HEX >= 0x030C0000
    auto* as_long = reinterpret_cast<PyLongObject*>(obj);
    if (PyUnstable_Long_IsCompact(as_long)) {  // one digit: most ints, read in place
        *out = enif_make_int64(env, PyUnstable_Long_CompactValue(as_long));
        return true;
    }
#endif
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

// The terms of the containers being converted on this thread, innermost last: one buffer that
// keeps its memory from one conversion to the next (a fresh array for a 100,000-item list is
// 800 KB of new pages each time). A container converts its items onto the top and pops them;
// nested conversions (also from Python code a conversion runs) push above and pop back first.
class TermStack {
public:
    size_t size() const { return terms_.size(); }
    void push(ERL_NIF_TERM t) { terms_.push_back(t); }
    ERL_NIF_TERM* at(size_t i) { return terms_.data() + i; }
    // Pops back to size n; the memory is kept unless it grew past kKeptTerms.
    void pop_to(size_t n) {
        terms_.resize(n);
        if (n == 0 && terms_.capacity() > kKeptTerms) std::vector<ERL_NIF_TERM>().swap(terms_);
    }

private:
    static constexpr size_t kKeptTerms = size_t(1) << 18;  // 2 MiB
    std::vector<ERL_NIF_TERM> terms_;
};

thread_local TermStack t_stack;

// A container's part of this thread's stack, popped when the container is done (also on
// failure). Holds the stack by reference: one thread-local lookup per container, not per item.
class StackFrame {
public:
    StackFrame() : stack_(t_stack), base_(stack_.size()) {}
    StackFrame(const StackFrame&) = delete;
    StackFrame& operator=(const StackFrame&) = delete;
    ~StackFrame() { stack_.pop_to(base_); }
    void push(ERL_NIF_TERM t) { stack_.push(t); }
    size_t count() const { return stack_.size() - base_; }
    ERL_NIF_TERM* terms() const { return stack_.at(base_); }

private:
    TermStack& stack_;
    size_t base_;
};

// Items are read from the list one at a time, each held by a strong reference while it
// converts, and the length is read again before each: converting an item can run Python code
// (a finaliser during an allocation, a hook of an int subclass) that changes the list.
bool list_to_erlang(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out, int depth) {
    StackFrame frame;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(obj); ++i) {
        py::Ref item = py::Ref::borrow(PyList_GET_ITEM(obj, i));
        ERL_NIF_TERM term{};
        if (!convert(cv, env, item.get(), &term, depth + 1)) return false;
        frame.push(term);
    }
    *out = enif_make_list_from_array(env, frame.terms(), static_cast<unsigned>(frame.count()));
    return true;
}

// The largest tuple the BEAM can hold (MAX_ARITY: 2^24 - 1 elements).
constexpr Py_ssize_t kMaxTupleArity = (Py_ssize_t(1) << 24) - 1;

// A tuple cannot change, and its container holds it while its items convert.
bool tuple_to_erlang(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out, int depth) {
    if (PyTuple_GET_SIZE(obj) > kMaxTupleArity) {
        PyErr_Format(PyExc_ValueError, "a tuple of %zd elements cannot become an Erlang tuple (at most %zd)",
                     PyTuple_GET_SIZE(obj), kMaxTupleArity);
        return false;
    }
    StackFrame frame;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(obj); ++i) {
        ERL_NIF_TERM term{};
        if (!convert(cv, env, PyTuple_GET_ITEM(obj, i), &term, depth + 1)) return false;
        frame.push(term);
    }
    *out = enif_make_tuple_from_array(env, frame.terms(), static_cast<unsigned>(frame.count()));
    return true;
}

// enif_make_map_from_arrays has two limits on OTP 25. Past 32 pairs (a hash map) it drops
// duplicate keys silently instead of failing, leaving a malformed map (erlang/otp#10975, found
// by make fuzz): it is given more than 32 pairs only when the keys are known to be distinct.
// Past 128 pairs it crashes off a scheduler thread (erlang/otp#8208): such maps are built on a
// scheduler (erl/map_builder.hpp). Other maps of more than 32 pairs are built by insertion.
constexpr size_t kMaxMapFromArrays = 32;

ERL_NIF_TERM map_by_insertion(ErlNifEnv* env, ERL_NIF_TERM* keys, ERL_NIF_TERM* values, size_t n) {
    size_t head = std::min(n, kMaxMapFromArrays);
    ERL_NIF_TERM map{};
    if (!enif_make_map_from_arrays(env, keys, values, head, &map)) {
        // Distinct Python keys became equal terms ('a' and b'a' are both <<"a">>): the last one wins.
        map = enif_make_new_map(env);
        for (size_t i = 0; i < head; ++i) enif_make_map_put(env, map, keys[i], values[i], &map);
    }
    for (size_t i = head; i < n; ++i) enif_make_map_put(env, map, keys[i], values[i], &map);
    return map;
}

ERL_NIF_TERM map_from_pairs(ErlNifEnv* env, ERL_NIF_TERM* keys, ERL_NIF_TERM* values, size_t n, bool keys_distinct) {
    ERL_NIF_TERM map{};
    if (keys_distinct && n > kMaxMapFromArrays) {
        if (n <= erl::kMaxPairsOffScheduler && enif_make_map_from_arrays(env, keys, values, n, &map)) return map;
        if (n > erl::kMaxPairsOffScheduler) {
            // The GIL is released while a scheduler builds it: the terms are this request's
            // alone, and other contexts of the interpreter go on meanwhile.
            bool built = false;
            Py_BEGIN_ALLOW_THREADS;
            built = erl::make_map_on_scheduler(env, keys, values, n, &map);
            Py_END_ALLOW_THREADS;
            if (built) return map;
        }
    }
    return map_by_insertion(env, keys, values, n);
}

// Distinct exact str keys become distinct binaries (UTF-8 is one-to-one), distinct exact int
// keys distinct integers, and a binary never equals an integer. Anything else may collide
// ('a' and b'a', None and the atom none, NaNs, subclasses with their own __eq__).
bool key_keeps_distinct(PyObject* key) { return PyUnicode_CheckExact(key) || PyLong_CheckExact(key); }

// Holds strong references to a dict's keys and values, taken without running Python code, so
// that the pairs converted are the dict's at one moment whatever converting them runs.
class DictSnapshot {
public:
    explicit DictSnapshot(PyObject* dict) {
        objects_.reserve(2 * static_cast<size_t>(PyDict_GET_SIZE(dict)));
        Py_ssize_t pos = 0;
        PyObject *key = nullptr, *value = nullptr;
        while (PyDict_Next(dict, &pos, &key, &value)) {
            objects_.push_back(Py_NewRef(key));
            objects_.push_back(Py_NewRef(value));
        }
    }
    DictSnapshot(const DictSnapshot&) = delete;
    DictSnapshot& operator=(const DictSnapshot&) = delete;
    ~DictSnapshot() {
        for (PyObject* o : objects_) Py_DECREF(o);
    }
    size_t size() const { return objects_.size() / 2; }
    PyObject* key(size_t i) const { return objects_[2 * i]; }
    PyObject* value(size_t i) const { return objects_[2 * i + 1]; }

private:
    std::vector<PyObject*> objects_;
};

bool dict_to_erlang(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out, int depth) {
    DictSnapshot pairs(obj);
    size_t n = pairs.size();
    StackFrame frame;  // n keys, then n values
    bool keys_distinct = true;
    for (size_t i = 0; i < n; ++i) {
        ERL_NIF_TERM term{};
        if (!convert(cv, env, pairs.key(i), &term, depth + 1)) return false;
        keys_distinct = keys_distinct && key_keeps_distinct(pairs.key(i));
        frame.push(term);
    }
    for (size_t i = 0; i < n; ++i) {
        ERL_NIF_TERM term{};
        if (!convert(cv, env, pairs.value(i), &term, depth + 1)) return false;
        frame.push(term);
    }
    *out = map_from_pairs(env, frame.terms(), frame.terms() + n, n, keys_distinct);
    return true;
}

bool convert(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out, int depth) {
    if (depth > kMaxDepth) {
        PyErr_Format(PyExc_RecursionError, "value nested deeper than %d levels (or cyclic)", kMaxDepth);
        return false;
    }
    if (PyLong_CheckExact(obj)) return int_to_erlang(env, obj, out);  // the commonest item first
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
    if (get_channel_term(cv.types, obj, env, out)) return true;
    return opaque_to_erlang(cv, env, obj, out);
}

}  // namespace

bool to_erlang(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out) {
    return convert(cv, env, obj, out, 0);
}

}  // namespace bridge
