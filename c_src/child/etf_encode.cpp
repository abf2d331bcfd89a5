// Encoding Python values as external term format (see etf_codec.hpp for the rules).
// Thread: the child's main thread, attached.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "etf_codec.hpp"
#include "etf_tags.hpp"

namespace etf {
namespace {

constexpr std::size_t kFrameHeader = 4;

class Encoder {
public:
    explicit Encoder(bool framed) : framed_(framed) {
        out_.reserve(128);
        if (framed_) out_.append(kFrameHeader, '\0');
        out_.push_back(static_cast<char>(kVersion));
    }

    bool value(PyObject* v) {
        PyTypeObject* type = Py_TYPE(v);
        if (reinterpret_cast<PyObject*>(type) == classes().atom) return atom(v);
        if (PyUnicode_Check(v)) return text(v);
        if (v == Py_None) return word("none");
        if (v == Py_True) return word("true");
        if (v == Py_False) return word("false");
        if (PyLong_Check(v)) return integer(v);
        if (PyFloat_Check(v)) return real(PyFloat_AS_DOUBLE(v));
        if (PyBytes_Check(v)) return binary(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
        if (PyByteArray_Check(v)) return binary(PyByteArray_AS_STRING(v), PyByteArray_GET_SIZE(v));
        if (PyTuple_Check(v)) return tuple(v);
        if (PyList_Check(v)) return list(v);
        if (PyDict_Check(v)) return dict(v);
        int opaque = classes().pid ? PyObject_IsInstance(v, classes().pid) : 0;
        if (opaque < 0) return false;
        if (opaque) return raw_term(v);
        if (classes().wrap) return wrapped(v);
        PyErr_Format(PyExc_TypeError, "isolated contexts cannot return a %s yet (no object references)", type->tp_name);
        return false;
    }

    PyObject* finish() {
        if (framed_) {
            auto size = static_cast<std::uint32_t>(out_.size() - kFrameHeader);
            put32_at(0, size);
        }
        return PyBytes_FromStringAndSize(out_.data(), static_cast<Py_ssize_t>(out_.size()));
    }

private:
    void tag(std::uint8_t t) { out_.push_back(static_cast<char>(t)); }
    void put32(std::uint32_t v) {
        out_.append(4, '\0');
        put32_at(out_.size() - 4, v);
    }
    void put32_at(std::size_t at, std::uint32_t v) {
        out_[at] = static_cast<char>(v >> 24);
        out_[at + 1] = static_cast<char>(v >> 16);
        out_[at + 2] = static_cast<char>(v >> 8);
        out_[at + 3] = static_cast<char>(v);
    }
    static bool fits_u32(Py_ssize_t n) {
        if (static_cast<unsigned long long>(n) <= 0xFFFFFFFFULL) return true;
        PyErr_SetString(PyExc_ValueError, "too large for a term");
        return false;
    }

    // {W, ...}: a 2-tuple's header, then the atom W.
    bool word(const char* w, std::uint8_t tuple_tag) {
        tag(tuple_tag);
        tag(2);
        return word(w);
    }
    bool word(const char* w) {
        std::size_t n = std::strlen(w);
        tag(kSmallAtomUtf8);
        tag(static_cast<std::uint8_t>(n));
        out_.append(w, n);
        return true;
    }
    bool atom(PyObject* v) {
        Py_ssize_t n = 0;
        const char* raw = PyUnicode_AsUTF8AndSize(v, &n);
        if (!raw) return false;
        if (n > 255) {
            PyErr_SetString(PyExc_ValueError, "atom too long");
            return false;
        }
        tag(kSmallAtomUtf8);
        tag(static_cast<std::uint8_t>(n));
        out_.append(raw, n);
        return true;
    }
    bool text(PyObject* v) {
        Py_ssize_t n = 0;
        const char* raw = PyUnicode_AsUTF8AndSize(v, &n);  // UnicodeEncodeError on a lone surrogate
        return raw && binary(raw, n);
    }
    bool binary(const char* raw, Py_ssize_t n) {
        if (!fits_u32(n)) return false;
        tag(kBinary);
        put32(static_cast<std::uint32_t>(n));
        out_.append(raw, n);
        return true;
    }

    bool integer(PyObject* v) {
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (n == -1 && PyErr_Occurred()) return false;
        if (overflow == 0 && n >= 0 && n < 256) {
            tag(kSmallInt);
            tag(static_cast<std::uint8_t>(n));
            return true;
        }
        if (overflow == 0 && n >= INT32_MIN && n <= INT32_MAX) {
            tag(kInt);
            put32(static_cast<std::uint32_t>(static_cast<std::int32_t>(n)));
            return true;
        }
        return big(v);
    }
    // abs(v).to_bytes(..., "little") after the sign: rare, so through Python.
    bool big(PyObject* v) {
        int negative = PyObject_RichCompareBool(v, zero(), Py_LT);
        if (negative < 0) return false;
        PyObject* mag = PyNumber_Absolute(v);
        PyObject* bits = mag ? PyObject_CallMethod(mag, "bit_length", nullptr) : nullptr;
        Py_ssize_t nbits = bits ? PyLong_AsSsize_t(bits) : -1;
        Py_XDECREF(bits);
        PyObject* raw = nbits < 0 ? nullptr : PyObject_CallMethod(mag, "to_bytes", "ns", (nbits + 7) / 8, "little");
        Py_XDECREF(mag);
        if (!raw) return false;
        Py_ssize_t n = PyBytes_GET_SIZE(raw);
        if (n < 256) {
            tag(kSmallBig);
            tag(static_cast<std::uint8_t>(n));
        } else {
            tag(kLargeBig);
            put32(static_cast<std::uint32_t>(n));
        }
        tag(negative ? 1 : 0);
        out_.append(PyBytes_AS_STRING(raw), n);
        Py_DECREF(raw);
        return true;
    }
    static PyObject* zero() {
        static PyObject* z = PyLong_FromLong(0);  // immortal small int; never freed
        return z;
    }

    bool real(double d) {
        if (std::isnan(d)) return word("nan");
        if (std::isinf(d)) return word(d > 0 ? "infinity" : "neg_infinity");
        std::uint64_t bits = 0;
        std::memcpy(&bits, &d, sizeof bits);
        tag(kNewFloat);
        put32(static_cast<std::uint32_t>(bits >> 32));
        put32(static_cast<std::uint32_t>(bits));
        return true;
    }

    bool tuple(PyObject* v) {
        Py_ssize_t n = PyTuple_GET_SIZE(v);
        if (n < 256) {
            tag(kSmallTuple);
            tag(static_cast<std::uint8_t>(n));
        } else {
            if (!fits_u32(n)) return false;
            tag(kLargeTuple);
            put32(static_cast<std::uint32_t>(n));
        }
        return nested([&] {
            for (Py_ssize_t i = 0; i < n; ++i)
                if (!value(PyTuple_GET_ITEM(v, i))) return false;
            return true;
        });
    }

    // The count is written after the items: code an item runs (a __class__ property that
    // isinstance consults) could change the list's length meanwhile.
    bool list(PyObject* v) {
        if (PyList_GET_SIZE(v) == 0) {
            tag(kNil);
            return true;
        }
        tag(kList);
        std::size_t count_at = out_.size();
        put32(0);
        std::uint32_t count = 0;
        bool ok = nested([&] {
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); ++i) {
                PyObject* item = PyList_GET_ITEM(v, i);
                Py_INCREF(item);
                bool done = value(item);
                Py_DECREF(item);
                if (!done) return false;
                ++count;
            }
            return true;
        });
        put32_at(count_at, count);
        tag(kNil);
        return ok;
    }

    bool dict(PyObject* v) {
        tag(kMap);
        std::size_t count_at = out_.size();
        put32(0);
        std::uint32_t count = 0;
        bool ok = nested([&] {
            Py_ssize_t pos = 0;
            PyObject* key = nullptr;
            PyObject* item = nullptr;
            while (PyDict_Next(v, &pos, &key, &item)) {
                Py_INCREF(key);
                Py_INCREF(item);
                bool done = value(key) && value(item);
                Py_DECREF(key);
                Py_DECREF(item);
                if (!done) return false;
                ++count;
            }
            return true;
        });
        put32_at(count_at, count);
        return ok;
    }

    template <typename Body>
    bool nested(Body body) {
        if (Py_EnterRecursiveCall(" while encoding a term")) return false;
        bool ok = body();
        Py_LeaveRecursiveCall();
        return ok;
    }

    // A value with no Erlang form: wrap(v) keeps it and gives its id; {'$py_isolated_object', Id}.
    bool wrapped(PyObject* v) {
        PyObject* id = PyObject_CallOneArg(classes().wrap, v);
        if (!id) return false;
        bool ok = PyLong_CheckExact(id);
        if (ok) ok = word(kObjectTag, kSmallTuple) && integer(id);
        else PyErr_SetString(PyExc_TypeError, "wrap must return an int");
        Py_DECREF(id);
        return ok;
    }

    // A Pid or Term: its _ext bytes are already a whole term.
    bool raw_term(PyObject* v) {
        PyObject* ext = PyObject_GetAttrString(v, "_ext");
        if (!ext) return false;
        bool ok = PyBytes_Check(ext) && PyBytes_GET_SIZE(ext) > 0;
        if (ok) out_.append(PyBytes_AS_STRING(ext), PyBytes_GET_SIZE(ext));
        else PyErr_SetString(PyExc_TypeError, "an erlang.Pid or erlang.Term without its term");
        Py_DECREF(ext);
        return ok;
    }

    bool framed_;
    std::string out_;
};

}  // namespace

PyObject* encode(PyObject* value, bool framed) {
    Encoder encoder(framed);
    if (!encoder.value(value)) return nullptr;
    return encoder.finish();
}

}  // namespace etf
