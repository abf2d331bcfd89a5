// Decoding external term format into Python objects (see etf_codec.hpp for the rules).
// Thread: the child's main thread, attached.
#include <cstdint>
#include <cstring>

#include "etf_codec.hpp"
#include "etf_tags.hpp"

namespace etf {
namespace {

// Reads one term at a time from a buffer it never reads past.
class Decoder {
public:
    Decoder(const unsigned char* data, Py_ssize_t size) : pos_(data), end_(data + size) {}

    // The next term as a new reference, or nullptr with an exception.
    PyObject* term() {
        if (!need(1)) return nullptr;
        const unsigned char* start = pos_;
        std::uint8_t tag = *pos_++;
        switch (tag) {
            case kSmallInt: return need(1) ? PyLong_FromLong(*pos_++) : nullptr;
            case kInt: return need(4) ? PyLong_FromLong(static_cast<std::int32_t>(u32())) : nullptr;
            case kNewFloat: return new_float();
            case kBinary: return binary();
            case kAtom:
            case kAtomUtf8: return atom(tag, need(2) ? u16() : -1);
            case kSmallAtom:
            case kSmallAtomUtf8: return atom(tag, need(1) ? *pos_++ : -1);
            case kSmallTuple: return need(1) ? tuple(*pos_++) : nullptr;
            case kLargeTuple: return need(4) ? tuple(u32()) : nullptr;
            case kNil: return PyList_New(0);
            case kList: return list();
            case kMap: return map();
            case kString: return string();
            case kSmallBig: return need(1) ? big(*pos_++) : nullptr;
            case kLargeBig: return need(4) ? big(u32()) : nullptr;
            case kBitBinary: PyErr_SetString(PyExc_TypeError, "bitstring is not whole bytes"); return nullptr;
            default: return opaque(start, tag);
        }
    }

private:
    bool need(std::size_t n) {
        if (static_cast<std::size_t>(end_ - pos_) >= n) return true;
        PyErr_SetString(PyExc_ValueError, "truncated term");
        return false;
    }
    std::uint32_t u16() {
        std::uint32_t v = (std::uint32_t{pos_[0]} << 8) | pos_[1];
        pos_ += 2;
        return v;
    }
    std::uint32_t u32() {
        std::uint32_t v =
            (std::uint32_t{pos_[0]} << 24) | (std::uint32_t{pos_[1]} << 16) | (std::uint32_t{pos_[2]} << 8) | pos_[3];
        pos_ += 4;
        return v;
    }
    const char* take(std::size_t n) {
        if (!need(n)) return nullptr;
        const char* at = reinterpret_cast<const char*>(pos_);
        pos_ += n;
        return at;
    }

    PyObject* new_float() {
        if (!need(8)) return nullptr;
        std::uint64_t bits = (std::uint64_t{u32()} << 32);
        bits |= u32();
        double value = 0;
        std::memcpy(&value, &bits, sizeof value);
        return PyFloat_FromDouble(value);
    }

    // A UTF-8 binary becomes str, any other bytes.
    PyObject* binary() {
        if (!need(4)) return nullptr;
        std::uint32_t n = u32();
        const char* raw = take(n);
        if (!raw) return nullptr;
        PyObject* text = PyUnicode_DecodeUTF8(raw, n, "strict");
        if (text || !PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return text;
        PyErr_Clear();
        return PyBytes_FromStringAndSize(raw, n);
    }

    PyObject* atom(std::uint8_t tag, long n) {
        if (n < 0) return nullptr;
        const char* raw = take(static_cast<std::size_t>(n));
        if (!raw) return nullptr;
        if (is(raw, n, "true")) Py_RETURN_TRUE;
        if (is(raw, n, "false")) Py_RETURN_FALSE;
        if (is(raw, n, "none") || is(raw, n, "undefined") || is(raw, n, "nil")) Py_RETURN_NONE;
        bool latin1 = tag == kAtom || tag == kSmallAtom;
        return latin1 ? PyUnicode_DecodeLatin1(raw, n, "strict") : PyUnicode_DecodeUTF8(raw, n, "strict");
    }
    static bool is(const char* raw, long n, const char* word) {
        return static_cast<std::size_t>(n) == std::strlen(word) && std::memcmp(raw, word, n) == 0;
    }

    // The length of the atom word when the next term is that atom, else 0.
    std::size_t atom_next(const char* word) const {
        std::size_t n = std::strlen(word);
        std::size_t left = end_ - pos_;
        if (left >= 2 + n && (pos_[0] == kSmallAtomUtf8 || pos_[0] == kSmallAtom) && pos_[1] == n)
            return std::memcmp(pos_ + 2, word, n) == 0 ? 2 + n : 0;
        if (left >= 3 + n && (pos_[0] == kAtomUtf8 || pos_[0] == kAtom) && pos_[1] == 0 && pos_[2] == n)
            return std::memcmp(pos_ + 3, word, n) == 0 ? 3 + n : 0;
        return 0;
    }

    PyObject* tuple(std::uint32_t n) {
        if (n == 2) {
            if (std::size_t skip = atom_next("bytes")) {  // {bytes, Binary}: whatever the binary holds
                if (static_cast<std::size_t>(end_ - pos_) >= skip + 5 && pos_[skip] == kBinary) {
                    pos_ += skip + 1;
                    std::uint32_t size = u32();
                    const char* raw = take(size);
                    return raw ? PyBytes_FromStringAndSize(raw, size) : nullptr;
                }
            } else if (std::size_t skip = atom_next(kObjectTag)) {  // an object reference
                pos_ += skip;
                return object();
            }
        }
        if (!need(n)) return nullptr;  // each element takes at least a byte
        PyObject* out = PyTuple_New(n);
        if (!out || !items(out, n, [](PyObject* o, Py_ssize_t i, PyObject* v) { PyTuple_SET_ITEM(o, i, v); })) {
            Py_XDECREF(out);
            return nullptr;
        }
        return out;
    }

    // The object {'$py_isolated_object', Id} names: resolve(Id).
    PyObject* object() {
        PyObject* id = term();
        if (!id) return nullptr;
        PyObject* resolve = classes().resolve;
        PyObject* out = nullptr;
        if (!resolve) PyErr_SetString(PyExc_ValueError, "object references are not set up");
        else out = PyObject_CallOneArg(resolve, id);
        Py_DECREF(id);
        return out;
    }

    PyObject* list() {
        if (!need(4)) return nullptr;
        std::uint32_t n = u32();
        if (!need(n)) return nullptr;
        PyObject* out = PyList_New(n);
        if (!out || !items(out, n, [](PyObject* o, Py_ssize_t i, PyObject* v) { PyList_SET_ITEM(o, i, v); })) {
            Py_XDECREF(out);
            return nullptr;
        }
        if (!need(1) || *pos_ != kNil) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "improper lists cannot be converted");
            Py_DECREF(out);
            return nullptr;
        }
        ++pos_;
        return out;
    }

    // Fills the n slots of a new tuple or list (set steals the reference).
    template <typename Set>
    bool items(PyObject* out, std::uint32_t n, Set set) {
        if (Py_EnterRecursiveCall(" while decoding a term")) return false;
        bool ok = true;
        for (std::uint32_t i = 0; i < n && ok; ++i) {
            PyObject* item = term();
            if (item) set(out, i, item);
            else ok = false;
        }
        Py_LeaveRecursiveCall();
        return ok;
    }

    PyObject* map() {
        if (!need(4)) return nullptr;
        std::uint32_t n = u32();
        if (!need(n)) return nullptr;
        PyObject* out = PyDict_New();
        if (!out || Py_EnterRecursiveCall(" while decoding a term")) {
            Py_XDECREF(out);
            return nullptr;
        }
        bool ok = true;
        for (std::uint32_t i = 0; i < n && ok; ++i) {
            PyObject* key = term();
            PyObject* value = key ? term() : nullptr;
            ok = value && PyDict_SetItem(out, key, value) == 0;
            Py_XDECREF(key);
            Py_XDECREF(value);
        }
        Py_LeaveRecursiveCall();
        if (ok) return out;
        Py_DECREF(out);
        return nullptr;
    }

    // A list of small integers sent compactly: a list of int.
    PyObject* string() {
        if (!need(2)) return nullptr;
        std::uint32_t n = u16();
        const char* raw = take(n);
        PyObject* out = raw ? PyList_New(n) : nullptr;
        if (!out) return nullptr;
        for (std::uint32_t i = 0; i < n; ++i) {
            PyObject* item = PyLong_FromLong(static_cast<unsigned char>(raw[i]));
            if (!item) {
                Py_DECREF(out);
                return nullptr;
            }
            PyList_SET_ITEM(out, i, item);
        }
        return out;
    }

    // sign byte, then n bytes of magnitude, least significant first: int.from_bytes (rare).
    PyObject* big(std::uint32_t n) {
        if (!need(1)) return nullptr;
        bool negative = *pos_++ != 0;
        const char* raw = take(n);
        PyObject* bytes = raw ? PyBytes_FromStringAndSize(raw, n) : nullptr;
        PyObject* mag =
            bytes ? PyObject_CallMethod(reinterpret_cast<PyObject*>(&PyLong_Type), "from_bytes", "Os", bytes, "little")
                  : nullptr;
        Py_XDECREF(bytes);
        if (!mag || !negative) return mag;
        PyObject* out = PyNumber_Negative(mag);
        Py_DECREF(mag);
        return out;
    }

    // Skips a term (a node name inside a pid, a fun's module): true when it was whole.
    bool skip() {
        PyObject* t = term();
        Py_XDECREF(t);
        return t != nullptr;
    }

    // Pids, ports, references, funs: kept as their encoding, encoded back unchanged.
    PyObject* opaque(const unsigned char* start, std::uint8_t tag) {
        std::size_t tail = 0;
        switch (tag) {
            case kPid: tail = 9; break;
            case kNewPid: tail = 12; break;
            case kPort: tail = 5; break;
            case kNewPort: tail = 8; break;
            case kV4Port: tail = 12; break;
            case kNewRef:
            case kNewerRef: {
                if (!need(2)) return nullptr;
                std::uint32_t words = u16();
                tail = (tag == kNewRef ? 1 : 4) + std::size_t{4} * words;
                break;
            }
            case kNewFun: {
                if (!need(4)) return nullptr;
                std::uint32_t size = u32();  // counts itself, not the tag
                if (size < 4 || !take(size - 4)) {
                    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "truncated term");
                    return nullptr;
                }
                return wrap(start, false);
            }
            case kExport:
                if (!skip() || !skip() || !skip()) return nullptr;
                return wrap(start, false);
            default: PyErr_Format(PyExc_TypeError, "unsupported term tag %d", tag); return nullptr;
        }
        if (!skip() || !take(tail)) return nullptr;  // the node name, then the numbers
        return wrap(start, tag == kPid || tag == kNewPid);
    }

    PyObject* wrap(const unsigned char* start, bool pid) {
        PyObject* cls = pid ? classes().pid : classes().term;
        if (!cls) {
            PyErr_SetString(PyExc_RuntimeError, "_erlang_etf.setup was not called");
            return nullptr;
        }
        PyObject* raw = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(start), pos_ - start);
        PyObject* out = raw ? PyObject_CallOneArg(cls, raw) : nullptr;
        Py_XDECREF(raw);
        return out;
    }

    const unsigned char* pos_;
    const unsigned char* end_;
};

}  // namespace

PyObject* decode(const unsigned char* data, Py_ssize_t size) {
    if (size < 1 || data[0] != kVersion) {
        PyErr_SetString(PyExc_ValueError, "not an external term");
        return nullptr;
    }
    Decoder decoder(data + 1, size - 1);
    return decoder.term();
}

}  // namespace etf
