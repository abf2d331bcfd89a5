// libFuzzer harness for the term <-> object conversion (c_src/bridge/to_python.cpp and
// to_erlang.cpp; the mapping is docs/type-conversion.md). See docs/fuzzing.md.
//
// The conversion code calls erl_nif functions, which exist only inside the BEAM, so the fuzzer
// runs inside it: this file is a NIF library of its own (module py_fuzz, fuzz/py_fuzz.erl), built
// with every NIF source except the NIF's entry point. Its load callback starts CPython as the NIF
// does; start/3 starts a thread that attaches to the main interpreter as a worker context's
// thread does (a thread of our own, not a scheduler: see kMaxDecodedMap) and hands it to
// libFuzzer's LLVMFuzzerRunDriver, which calls one_input() for each input and ends the OS
// process: status 0 when the time is up, non-zero with a crash artifact on a finding.
//
// The first byte of an input chooses what the rest is:
//   0  a term in the external format (enif_binary_to_term, after the check in etf_prefix)
//   1  a binary (the UTF-8 / bytes decision)
//   2  marshal.loads input (no code objects): the Python side first
//   3  a program for build_term(): terms the external format cannot carry (references to Python
//      objects, nesting past the depth limit) and always-valid terms
//   4  a program for fuzz/py_build.py: Python objects marshal cannot make (subclasses, cycles,
//      lone surrogates, opaque objects, ints whose hooks run code during conversion)
// Beyond "no sanitizer report", each input is checked against the documented mapping: see
// erlang_first() and python_first(). A failed check prints why and aborts (a crash for libFuzzer).
#include <Python.h>
#include <erl_nif.h>
#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bridge/convert.hpp"
#include "bridge/erlang_module.hpp"
#include "bridge/object_ref.hpp"
#include "erl/atoms.hpp"
#include "nifs/nifs.hpp"
#include "py/ref.hpp"
#include "py/runtime.hpp"

extern "C" int LLVMFuzzerRunDriver(int* argc, char*** argv, int (*callback)(const uint8_t* data, size_t size));

namespace {

using bridge::ObjectRefResource;

// The fuzz thread's stack: a worker context's 8 MiB (kWorkerStackBytes in
// c_src/context/context.cpp) times 4, for ASan's frames. The conversion recurses up to
// bridge::kMaxDepth levels: nested maps take ~1.8 MB of stack in the release build (gcc -O2,
// 176 bytes a level) and more than 8 MiB under ASan. PY_FUZZ_STACK_MIB overrides it.
constexpr size_t kThreadStackMiB = 32;
// Recursion bound of build_term() (its deep-nesting op does not recurse).
constexpr int kMaxBuildDepth = 2000;

struct Harness {
    PyObject* erlang_module = nullptr;  // held: types lives in its state
    const bridge::ErlangTypes* types = nullptr;
    py::InterpreterPtr interp;
    // An ended interpreter that had interp's state address (as a new owngil interpreter often
    // takes a dead one's): references made with it must be refused, never read (issue 14).
    py::InterpreterPtr dead_interp;
    ErlNifEnv* env = nullptr;              // the terms of one input; cleared after each
    ErlNifEnv* fixed = nullptr;            // samples, atoms, references to Python objects: for the whole run
    std::vector<ERL_NIF_TERM> samples;     // pids, references, ports, funs, ... from py_fuzz:samples/0
    std::vector<ERL_NIF_TERM> atoms;       // the atoms build_term() picks from (it never makes new ones)
    std::vector<ERL_NIF_TERM> refs;        // opaque references to Python objects (py_build.OPAQUE)
    std::vector<ERL_NIF_TERM> stale_refs;  // the same objects, as references of dead_interp
    PyObject* marshal_loads = nullptr;
    PyObject* marshal_kwargs = nullptr;  // {"allow_code": False} on 3.13+, else nullptr
    PyObject* build_object = nullptr;    // py_build.build
    std::vector<std::string> args;       // libFuzzer's command line
    std::string builder_source;          // fuzz/py_build.py
};
Harness g;

bridge::Converter converter() { return bridge::Converter{*g.types, g.interp}; }

// --- reporting -------------------------------------------------------------------------------

std::string g_why;  // what the last failed check found

bool mismatch(std::string why) {
    g_why = std::move(why);
    return false;
}

// Reports a failed check and aborts: libFuzzer writes the input as a crash artifact.
[[noreturn]] void fail(const std::string& what, ERL_NIF_TERM term = 0) {
    std::fprintf(stderr, "\n==py_fuzz== check failed: %s\n", what.c_str());
    if (term) {
        std::vector<char> text(1024);
        enif_snprintf(text.data(), text.size(), "%T", term);
        std::fprintf(stderr, "==py_fuzz== term (at most %zu characters): %s\n", text.size() - 1, text.data());
    }
    if (PyErr_Occurred()) PyErr_Print();
    std::fflush(stderr);
    std::abort();
}

// Known, reported findings that PY_FUZZ_KNOWN (comma-separated ids) lets a run go past, so that
// it can look for others: a failed check with such a finding's signature is counted and reported
// at exit instead of failing; py_build.py stops making the inputs behind a memory error (it reads
// the same list as py_build.KNOWN). The ids are listed in docs/fuzzing.md; fuzz/regressions/
// holds an input for each.
bool allowed(const char* id) {
    const char* list = std::getenv("PY_FUZZ_KNOWN");
    if (!list) return false;
    std::string all = std::string(",") + list + ",";
    return all.find(std::string(",") + id + ",") != std::string::npos;
}

std::vector<std::pair<std::string, size_t>> g_known;  // id -> times seen

void report_known() {
    for (auto& [id, count] : g_known)
        std::fprintf(stderr, "==py_fuzz== known issue %s (PY_FUZZ_KNOWN) hit %zu times\n", id.c_str(), count);
}

void note_known(const char* id) {
    for (auto& [known, count] : g_known)
        if (known == id) {
            ++count;
            return;
        }
    if (g_known.empty()) std::atexit(report_known);
    g_known.emplace_back(id, 1);
    std::fprintf(stderr, "==py_fuzz== known issue %s: first hit (further hits are counted)\n", id);
}

// The conversion functions' contract (convert.hpp): a result and no exception, or no result and
// an exception.
PyObject* to_python(ErlNifEnv* env, ERL_NIF_TERM t) {
    PyObject* o = bridge::to_python(converter(), env, t);
    if (o && PyErr_Occurred()) fail("to_python returned an object with an exception set", t);
    if (!o && !PyErr_Occurred()) fail("to_python failed without setting an exception", t);
    return o;
}

bool to_erlang(ErlNifEnv* env, PyObject* o, ERL_NIF_TERM* out) {
    bool ok = bridge::to_erlang(converter(), env, o, out);
    if (ok && PyErr_Occurred()) fail("to_erlang succeeded with an exception set");
    if (!ok && !PyErr_Occurred()) fail("to_erlang failed without setting an exception");
    return ok;
}

// --- the external format ---------------------------------------------------------------------

// Decoding a map of more than 128 pairs off a scheduler thread crashes OTP 25.1+ before the fix
// for erlang/otp#8208 (c_src/bridge/erlang_module.hpp); this thread, like a context's, is not a
// scheduler. Such inputs are not decoded.
constexpr uint64_t kMaxDecodedMap = 128;

// The length of the one term at the start of p (version byte 131 first) that the harness lets
// enif_binary_to_term decode, or 0. Walks OTP 25's external format without building anything and
// refuses: a map of more than kMaxDecodedMap pairs; compressed terms (they could hide such a map,
// and fuzzing zlib is not the point); atom cache references, the old FUN_EXT and unknown tags.
// Only the counted prefix is decoded, so a walk that went astray cannot reach a map it did not see.
size_t etf_prefix(const uint8_t* p, size_t n) {
    if (n < 2 || p[0] != 131) return 0;
    size_t i = 1;
    uint64_t pending = 1;  // terms still to read
    auto have = [&](uint64_t k) { return n - i >= k; };
    auto u8 = [&]() -> uint64_t { return p[i++]; };
    auto u16 = [&]() -> uint64_t {
        uint64_t v = (uint64_t(p[i]) << 8) | p[i + 1];
        i += 2;
        return v;
    };
    auto u32 = [&]() -> uint64_t {
        uint64_t v = (uint64_t(p[i]) << 24) | (uint64_t(p[i + 1]) << 16) | (uint64_t(p[i + 2]) << 8) | p[i + 3];
        i += 4;
        return v;
    };
    auto skip = [&](uint64_t k) {
        if (!have(k)) return false;
        i += k;
        return true;
    };
    auto node = [&]() {  // the node name in a pid, port or reference: an atom
        if (!have(1)) return false;
        uint64_t tag = u8();
        if ((tag == 100 || tag == 118) && have(2)) return skip(u16());
        if ((tag == 115 || tag == 119) && have(1)) return skip(u8());
        return false;
    };
    while (pending > 0) {
        if (!have(1)) return 0;
        --pending;
        bool ok = true;
        switch (u8()) {
            // clang-format off
            case 97: ok = skip(1); break;   // SMALL_INTEGER_EXT
            case 98: ok = skip(4); break;   // INTEGER_EXT
            case 70: ok = skip(8); break;   // NEW_FLOAT_EXT
            case 99: ok = skip(31); break;  // FLOAT_EXT
            case 106: break;                // NIL_EXT
            case 100: case 118: case 107:   // ATOM_EXT, ATOM_UTF8_EXT, STRING_EXT
                ok = have(2) && skip(u16());
                break;
            case 115: case 119:  // SMALL_ATOM_EXT, SMALL_ATOM_UTF8_EXT
                ok = have(1) && skip(u8());
                break;
            case 109: ok = have(4) && skip(u32()); break;      // BINARY_EXT
            case 77: ok = have(5) && skip(u32() + 1); break;   // BIT_BINARY_EXT: Len, Bits, Data
            case 110: ok = have(1) && skip(u8() + 1); break;   // SMALL_BIG_EXT: N, Sign, Digits
            case 111: ok = have(4) && skip(u32() + 1); break;  // LARGE_BIG_EXT
            case 104: ok = have(1); if (ok) pending += u8(); break;   // SMALL_TUPLE_EXT
            case 105: ok = have(4); if (ok) pending += u32(); break;  // LARGE_TUPLE_EXT
            case 108: ok = have(4); if (ok) pending += u32() + 1; break;  // LIST_EXT: elements, tail
            case 116: {  // MAP_EXT
                ok = have(4);
                uint64_t pairs = ok ? u32() : 0;
                ok = ok && pairs <= kMaxDecodedMap;
                pending += 2 * pairs;
                break;
            }
            case 103: ok = node() && skip(9); break;   // PID_EXT
            case 88: ok = node() && skip(12); break;   // NEW_PID_EXT
            case 102: ok = node() && skip(5); break;   // PORT_EXT
            case 89: ok = node() && skip(8); break;    // NEW_PORT_EXT
            case 120: ok = node() && skip(12); break;  // V4_PORT_EXT
            case 101: ok = node() && skip(5); break;   // REFERENCE_EXT
            case 114: case 90: {  // NEW_REFERENCE_EXT (Creation:1), NEWER_REFERENCE_EXT (Creation:4)
                bool newer = p[i - 1] == 90;
                ok = have(2);
                uint64_t words = ok ? u16() : 0;
                ok = ok && node() && skip((newer ? 4 : 1) + 4 * words);
                break;
            }
            case 113: pending += 3; break;  // EXPORT_EXT: module, function, arity
            case 112:  // NEW_FUN_EXT: Size, Arity, Uniq, Index, NumFree; Module, OldIndex, OldUniq, Pid, free variables
                ok = skip(4 + 1 + 16 + 4) && have(4);
                if (ok) pending += 4 + u32();
                break;
            default: return 0;
        }
        // clang-format on
        if (!ok || pending > n - i) return 0;  // every term takes at least one byte
    }
    return i;
}

// --- marshal ---------------------------------------------------------------------------------

// Whether marshal.loads may read one object from p[i..n): a walk over the marshal format (3.13,
// versions 0-4) that refuses what makes marshal allocate for counts the input cannot back (a
// list, tuple or set announcing more items than bytes left, an int of more digits than bytes
// left: marshal allocates for them before reading), code objects and unknown types. marshal's
// own depth limit is 2000.
bool marshal_ok(const uint8_t* p, size_t n, size_t& i, int depth) {
    if (depth > 2000 || i >= n) return false;
    auto have = [&](uint64_t k) { return n - i >= k; };
    auto skip = [&](uint64_t k) {
        if (!have(k)) return false;
        i += k;
        return true;
    };
    auto u32 = [&]() -> uint64_t {
        uint64_t v = p[i] | (uint64_t(p[i + 1]) << 8) | (uint64_t(p[i + 2]) << 16) | (uint64_t(p[i + 3]) << 24);
        i += 4;
        return v;
    };
    // clang-format off
    switch (p[i++] & 0x7F) {  // the high bit asks for a back-reference slot
        case '0': case 'N': case 'F': case 'T': case 'S': case '.': return true;
        case 'i': case 'r': return skip(4);
        case 'I': case 'g': return skip(8);
        case 'y': return skip(16);
        case 'l': {  // Size:4 (signed) 15-bit digits of 2 bytes
            if (!have(4)) return false;
            int64_t size = int32_t(uint32_t(u32()));
            return skip(2 * uint64_t(size < 0 ? -size : size));
        }
        case 'f': return have(1) && skip(p[i++]);
        case 'x': return have(1) && skip(p[i++]) && have(1) && skip(p[i++]);
        case 's': case 't': case 'u': case 'a': case 'A': return have(4) && skip(u32());
        case 'z': case 'Z': return have(1) && skip(p[i++]);
        case ')': {
            if (!have(1)) return false;
            for (unsigned k = p[i++]; k > 0; --k)
                if (!marshal_ok(p, n, i, depth + 1)) return false;
            return true;
        }
        case '(': case '[': case '<': case '>': {
            if (!have(4)) return false;
            uint64_t count = u32();
            if (count > n - i) return false;
            for (; count > 0; --count)
                if (!marshal_ok(p, n, i, depth + 1)) return false;
            return true;
        }
        case '{':  // key, value pairs up to a NULL key
            while (true) {
                if (!have(1)) return false;
                if ((p[i] & 0x7F) == '0') return ++i, true;
                if (!marshal_ok(p, n, i, depth + 1) || !marshal_ok(p, n, i, depth + 1)) return false;
            }
        default: return false;
    }
    // clang-format on
}

// --- what the mapping says -------------------------------------------------------------------

// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
bool valid_utf8(const unsigned char* s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            ++i;
            continue;
        }
        // clang-format off
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return false;
        // clang-format on
        if (n - i < len) return false;
        for (size_t k = 1; k < len; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

// The walks below over whole terms keep their own stack: a term may be nested 65535 deep
// (build_term) and this thread has a worker's 8 MiB. Only matches() and same_term() recurse,
// over what converted, so at most bridge::kMaxDepth levels, with the map cases out of line.

// Appends the elements of a list or tuple, or the keys and values of a map, to out. A list's
// tail is appended after its elements when it is not [].
void push_children(ErlNifEnv* env, ERL_NIF_TERM t, std::vector<ERL_NIF_TERM>& out) {
    switch (enif_term_type(env, t)) {
        case ERL_NIF_TERM_TYPE_LIST: {
            ERL_NIF_TERM head, tail = t;
            while (enif_get_list_cell(env, tail, &head, &tail)) out.push_back(head);
            if (!enif_is_empty_list(env, tail)) out.push_back(tail);
            break;
        }
        case ERL_NIF_TERM_TYPE_TUPLE: {
            int arity = 0;
            const ERL_NIF_TERM* elems = nullptr;
            enif_get_tuple(env, t, &arity, &elems);
            out.insert(out.end(), elems, elems + arity);
            break;
        }
        case ERL_NIF_TERM_TYPE_MAP: {
            ErlNifMapIterator it;
            if (!enif_map_iterator_create(env, t, &it, ERL_NIF_MAP_ITERATOR_FIRST)) fail("map iterator", t);
            ERL_NIF_TERM k, v;
            while (enif_map_iterator_get_pair(env, &it, &k, &v)) {
                out.push_back(k);
                out.push_back(v);
                enif_map_iterator_next(env, &it);
            }
            enif_map_iterator_destroy(env, &it);
            break;
        }
        default: break;
    }
}

// Whether what a (convertible) term becomes can be a dict key: not a list, not a dict, not a
// tuple holding one, not a Python object without a hash.
bool is_hashable(ErlNifEnv* env, ERL_NIF_TERM key) {
    std::vector<ERL_NIF_TERM> todo{key};
    while (!todo.empty()) {
        ERL_NIF_TERM t = todo.back();
        todo.pop_back();
        switch (enif_term_type(env, t)) {
            case ERL_NIF_TERM_TYPE_LIST:
            case ERL_NIF_TERM_TYPE_MAP: return false;
            case ERL_NIF_TERM_TYPE_TUPLE: push_children(env, t, todo); break;
            default:
                if (bridge::ObjectRef* ref = ObjectRefResource::get(env, t)) {
                    if (PyObject_Hash(ref->object()) == -1) {
                        PyErr_Clear();
                        return false;
                    }
                }
        }
    }
    return true;
}

bool is_stale_reference(ErlNifEnv* env, ERL_NIF_TERM t) {
    bridge::ObjectRef* ref = ObjectRefResource::get(env, t);
    return ref && ref->interpreter().serial() == g.dead_interp->serial();
}

// Whether to_python must succeed on t. It refuses (TypeError or RecursionError) a bitstring that
// is not whole bytes, an improper list, a map key Python cannot hash, and nesting deeper than
// bridge::kMaxDepth; and (ValueError) a reference to an object of an ended interpreter.
bool convertible(ErlNifEnv* env, ERL_NIF_TERM term) {
    std::vector<std::pair<ERL_NIF_TERM, int>> todo{{term, 0}};
    std::vector<ERL_NIF_TERM> children;
    while (!todo.empty()) {
        auto [t, depth] = todo.back();
        todo.pop_back();
        if (depth > bridge::kMaxDepth) return false;
        ErlNifBinary bin;
        unsigned len = 0;
        switch (enif_term_type(env, t)) {
            case ERL_NIF_TERM_TYPE_BITSTRING:
                if (!enif_inspect_binary(env, t, &bin)) return false;
                break;
            case ERL_NIF_TERM_TYPE_LIST:
                if (!enif_get_list_length(env, t, &len)) return false;
                break;
            default:
                if (is_stale_reference(env, t)) return false;
                break;
        }
        children.clear();
        push_children(env, t, children);
        bool is_map = enif_is_map(env, t);
        for (size_t i = 0; i < children.size(); ++i) {
            if (is_map && i % 2 == 0 && !is_hashable(env, children[i])) return false;
            todo.emplace_back(children[i], depth + 1);
        }
    }
    return true;
}

// Decimal text of an integer term (erts's own printing, independent of the conversion code).
[[gnu::noinline]] std::string erlang_decimal(ERL_NIF_TERM t) {
    static std::vector<char> text(1 << 16);  // this thread only
    int n = enif_snprintf(text.data(), text.size(), "%T", t);
    if (n < 0 || size_t(n) >= text.size()) fail("integer too long to print", t);
    return std::string(text.data(), size_t(n));
}

[[gnu::noinline]] bool integer_matches(ErlNifEnv* env, ERL_NIF_TERM t, PyObject* o) {
    if (!PyLong_CheckExact(o)) return mismatch("an integer did not become an int");
    ErlNifSInt64 i;
    if (enif_get_int64(env, t, &i)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow || v != i) return mismatch("a 64-bit integer became another int");
        return true;
    }
    py::Ref text = py::Ref::steal(PyObject_Str(o));
    const char* s = text ? PyUnicode_AsUTF8(text.get()) : nullptr;
    if (!s) fail("str(int) failed");
    if (erlang_decimal(t) != s) return mismatch(std::string("an integer became the int ") + s);
    return true;
}

// An atom other than true/false/none/undefined/nil becomes a str whose UTF-8 text names it: the
// check decodes that text as ATOM_UTF8_EXT and expects the same atom back.
[[gnu::noinline]] bool atom_matches(ErlNifEnv* env, ERL_NIF_TERM t, PyObject* o) {
    if (!PyUnicode_CheckExact(o)) return mismatch("an atom did not become a str");
    Py_ssize_t size = 0;
    const char* s = PyUnicode_AsUTF8AndSize(o, &size);
    if (!s) {
        PyErr_Clear();
        return mismatch("an atom became a str with a lone surrogate");
    }
    if (size > 0xFFFF) return mismatch("an atom became a str too long for an atom");
    std::vector<unsigned char> etf = {131, 118, static_cast<unsigned char>(size >> 8),
                                      static_cast<unsigned char>(size)};
    etf.insert(etf.end(), s, s + size);
    ERL_NIF_TERM back;
    if (!enif_binary_to_term(env, etf.data(), etf.size(), &back, ERL_NIF_BIN2TERM_SAFE) || !enif_is_identical(back, t))
        return mismatch("an atom became a str that names another atom");
    return true;
}

[[gnu::noinline]] bool binary_matches(ErlNifEnv* env, ERL_NIF_TERM t, PyObject* o) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, t, &bin)) return mismatch("a bitstring that is not whole bytes was converted");
    if (valid_utf8(bin.data, bin.size)) {
        if (!PyUnicode_CheckExact(o)) return mismatch("a UTF-8 binary did not become a str");
        Py_ssize_t size = 0;
        const char* s = PyUnicode_AsUTF8AndSize(o, &size);
        if (!s) {
            PyErr_Clear();
            return mismatch("a UTF-8 binary became a str with a lone surrogate");
        }
        if (size_t(size) != bin.size || std::memcmp(s, bin.data, bin.size) != 0)
            return mismatch("a UTF-8 binary became a str with other text");
        return true;
    }
    if (!PyBytes_CheckExact(o)) return mismatch("a binary that is not UTF-8 did not become bytes");
    if (size_t(PyBytes_GET_SIZE(o)) != bin.size || std::memcmp(PyBytes_AS_STRING(o), bin.data, bin.size) != 0)
        return mismatch("a binary became bytes with other content");
    return true;
}

bool matches(ErlNifEnv* env, ERL_NIF_TERM t, PyObject* o, bool& same);

// The map case of matches: each key converted alone must be in the dict, with the value its
// value becomes (unless keys collided in Python, when the last one won).
[[gnu::noinline]] bool map_matches(ErlNifEnv* env, ERL_NIF_TERM t, PyObject* o, bool& same) {
    size_t size = 0;
    enif_get_map_size(env, t, &size);
    if (!PyDict_CheckExact(o)) return mismatch("a map did not become a dict");
    size_t got = size_t(PyDict_GET_SIZE(o));
    if (got > size) return mismatch("a map became a dict with more keys");
    if (got < size) same = false;  // keys equal in Python: the last one won
    ErlNifMapIterator it;
    if (!enif_map_iterator_create(env, t, &it, ERL_NIF_MAP_ITERATOR_FIRST)) fail("map iterator", t);
    bool ok = true;
    ERL_NIF_TERM k, v;
    while (ok && enif_map_iterator_get_pair(env, &it, &k, &v)) {
        py::Ref key = py::Ref::steal(to_python(env, k));
        if (!key) fail("a map key converted alone failed", k);
        ok = matches(env, k, key.get(), same);
        PyObject* value = ok ? PyDict_GetItemWithError(o, key.get()) : nullptr;  // borrowed
        if (ok && !value) {
            PyErr_Clear();
            ok = mismatch("a map key is missing from the dict");
        }
        if (ok && got == size) ok = matches(env, v, value, same);
        enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    return ok;
}

// Whether o is what t becomes (docs/type-conversion.md, Erlang to Python). Clears same when
// converting o back cannot give t itself: atoms other than true/false/none, keys that became
// equal in Python (1 and 1.0, a and <<"a">>), references to Python objects (a new term each time).
bool matches(ErlNifEnv* env, ERL_NIF_TERM t, PyObject* o, bool& same) {
    const erl::Atoms& a = erl::atoms();
    switch (enif_term_type(env, t)) {
        case ERL_NIF_TERM_TYPE_INTEGER: return integer_matches(env, t, o);
        case ERL_NIF_TERM_TYPE_FLOAT: {
            double d = 0;
            enif_get_double(env, t, &d);
            if (!PyFloat_CheckExact(o)) return mismatch("a float did not become a float");
            double got = PyFloat_AS_DOUBLE(o);
            if (std::memcmp(&d, &got, sizeof d) != 0) return mismatch("a float changed value");
            return true;
        }
        case ERL_NIF_TERM_TYPE_ATOM:
            if (t == a.true_) return o == Py_True || mismatch("true did not become True");
            if (t == a.false_) return o == Py_False || mismatch("false did not become False");
            if (t == a.none) return o == Py_None || mismatch("none did not become None");
            same = false;
            if (t == a.undefined || t == a.nil) return o == Py_None || mismatch("undefined/nil did not become None");
            return atom_matches(env, t, o);
        case ERL_NIF_TERM_TYPE_BITSTRING: return binary_matches(env, t, o);
        case ERL_NIF_TERM_TYPE_LIST: {
            unsigned len = 0;
            if (!enif_get_list_length(env, t, &len)) return mismatch("an improper list was converted");
            if (!PyList_CheckExact(o) || PyList_GET_SIZE(o) != Py_ssize_t(len))
                return mismatch("a list did not become a list of its length");
            ERL_NIF_TERM head, tail = t;
            for (Py_ssize_t i = 0; enif_get_list_cell(env, tail, &head, &tail); ++i)
                if (!matches(env, head, PyList_GET_ITEM(o, i), same)) return false;
            return true;
        }
        case ERL_NIF_TERM_TYPE_TUPLE: {
            int arity = 0;
            const ERL_NIF_TERM* elems = nullptr;
            enif_get_tuple(env, t, &arity, &elems);
            if (!PyTuple_CheckExact(o) || PyTuple_GET_SIZE(o) != arity)
                return mismatch("a tuple did not become a tuple of its size");
            for (int i = 0; i < arity; ++i)
                if (!matches(env, elems[i], PyTuple_GET_ITEM(o, i), same)) return false;
            return true;
        }
        case ERL_NIF_TERM_TYPE_MAP: return map_matches(env, t, o, same);
        case ERL_NIF_TERM_TYPE_PID: {
            ErlNifPid pid, back;
            if (enif_get_local_pid(env, t, &pid)) {
                if (!bridge::get_pid(*g.types, o, &back)) return mismatch("a local pid did not become an erlang.Pid");
                if (enif_compare_pids(&pid, &back) != 0) return mismatch("a local pid became another erlang.Pid");
                return true;
            }
            break;  // a remote pid: opaque
        }
        default: break;
    }
    if (bridge::ObjectRef* ref = ObjectRefResource::get(env, t)) {
        same = false;
        return o == ref->object() || mismatch("a reference to a Python object did not become that object");
    }
    ERL_NIF_TERM back;
    if (!bridge::get_term(*g.types, o, env, &back)) return mismatch("an opaque term did not become an erlang.Term");
    if (!enif_is_identical(back, t)) return mismatch("an opaque term became an erlang.Term of another term");
    return true;
}

bool holds_reference(ErlNifEnv* env, ERL_NIF_TERM term) {
    std::vector<ERL_NIF_TERM> todo{term};
    while (!todo.empty()) {
        ERL_NIF_TERM t = todo.back();
        todo.pop_back();
        if (ObjectRefResource::get(env, t)) return true;
        push_children(env, t, todo);
    }
    return false;
}

bool holds_stale_reference(ErlNifEnv* env, ERL_NIF_TERM term) {
    std::vector<ERL_NIF_TERM> todo{term};
    while (!todo.empty()) {
        ERL_NIF_TERM t = todo.back();
        todo.pop_back();
        if (is_stale_reference(env, t)) return true;
        push_children(env, t, todo);
    }
    return false;
}

bool same_term(ErlNifEnv* env, ERL_NIF_TERM a, ERL_NIF_TERM b);

[[gnu::noinline]] bool same_map(ErlNifEnv* env, ERL_NIF_TERM a, ERL_NIF_TERM b) {
    size_t na = 0, nb = 0;
    enif_get_map_size(env, a, &na);
    enif_get_map_size(env, b, &nb);
    if (na != nb) return false;
    ErlNifMapIterator it;
    if (!enif_map_iterator_create(env, a, &it, ERL_NIF_MAP_ITERATOR_FIRST)) fail("map iterator", a);
    bool ok = true;
    ERL_NIF_TERM k, v, vb;
    while (ok && enif_map_iterator_get_pair(env, &it, &k, &v)) {
        // A key holding a reference is another term in b: its value is not looked for.
        if (enif_get_map_value(env, b, k, &vb)) ok = same_term(env, v, vb);
        else ok = holds_reference(env, k);
        enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    return ok;
}

// Whether a and b are the same term, two references to the same Python object counting as the
// same (converting an object again makes a new reference term).
bool same_term(ErlNifEnv* env, ERL_NIF_TERM a, ERL_NIF_TERM b) {
    if (a == b) return true;  // the same word: an immediate, or the same boxed term
    bridge::ObjectRef* ra = ObjectRefResource::get(env, a);
    bridge::ObjectRef* rb = ObjectRefResource::get(env, b);
    if (ra || rb) return ra && rb && ra->object() == rb->object();
    ErlNifTermType type = enif_term_type(env, a);
    if (type != enif_term_type(env, b)) return false;
    switch (type) {  // containers walked here (comparing whole subterms at each level is quadratic)
        case ERL_NIF_TERM_TYPE_LIST: {
            ERL_NIF_TERM ha, hb;
            while (enif_get_list_cell(env, a, &ha, &a)) {
                if (!enif_get_list_cell(env, b, &hb, &b) || !same_term(env, ha, hb)) return false;
            }
            return same_term(env, a, b);
        }
        case ERL_NIF_TERM_TYPE_TUPLE: {
            int na = 0, nb = 0;
            const ERL_NIF_TERM *ea = nullptr, *eb = nullptr;
            enif_get_tuple(env, a, &na, &ea);
            enif_get_tuple(env, b, &nb, &eb);
            if (na != nb) return false;
            for (int i = 0; i < na; ++i)
                if (!same_term(env, ea[i], eb[i])) return false;
            return true;
        }
        case ERL_NIF_TERM_TYPE_MAP: return same_map(env, a, b);
        default: return enif_is_identical(a, b);
    }
}

// Whether t comes back identical from the external format (true when it cannot be decoded here).
bool survives_external_format(ErlNifEnv* env, ERL_NIF_TERM t) {
    ErlNifBinary bin;
    if (!enif_term_to_binary(env, t, &bin)) fail("term_to_binary failed", t);
    ERL_NIF_TERM back;
    bool same =
        etf_prefix(bin.data, bin.size) != bin.size ||
        (enif_binary_to_term(env, bin.data, bin.size, &back, ERL_NIF_BIN2TERM_SAFE) && enif_is_identical(back, t));
    enif_release_binary(&bin);
    return same;
}

// The signature of known issue otp10975 (docs/fuzzing.md): a map of at most 32 pairs, each of
// whose keys and values survives the external format, while the map itself does not (OTP made a
// hash map of it, which only happens through enif_make_map_from_arrays given duplicate keys).
bool holds_malformed_small_map(ErlNifEnv* env, ERL_NIF_TERM term) {
    std::vector<ERL_NIF_TERM> todo{term};
    while (!todo.empty()) {
        ERL_NIF_TERM t = todo.back();
        todo.pop_back();
        size_t start = todo.size(), size = 0;
        push_children(env, t, todo);
        if (!enif_get_map_size(env, t, &size) || size > 32 || survives_external_format(env, t)) continue;
        bool parts_survive = true;
        for (size_t i = start; i < todo.size() && parts_survive; ++i)
            parts_survive = survives_external_format(env, todo[i]);
        if (parts_survive) {
            note_known("otp10975");
            return true;
        }
    }
    return false;
}

// The invariants of the maps in a term made by to_erlang (the size is the number of pairs, every
// key finds its value) and, when it can be decoded here, that it survives the external format.
void check_wellformed(ErlNifEnv* env, ERL_NIF_TERM term) {
    std::vector<ERL_NIF_TERM> todo{term};
    while (!todo.empty()) {
        ERL_NIF_TERM t = todo.back();
        todo.pop_back();
        size_t start = todo.size();
        push_children(env, t, todo);
        if (!enif_is_map(env, t)) continue;
        size_t size = 0, pairs = (todo.size() - start) / 2;
        enif_get_map_size(env, t, &size);
        if (pairs != size) fail("to_erlang made a map whose size is not its number of pairs", t);
        for (size_t i = start; i < todo.size(); i += 2) {
            ERL_NIF_TERM found;
            if (!enif_get_map_value(env, t, todo[i], &found) || !enif_is_identical(found, todo[i + 1]))
                fail("to_erlang made a map in which a key does not find its value", t);
        }
    }
    if (holds_reference(env, term)) return;  // references do not survive the external format
    ErlNifBinary bin;
    if (!enif_term_to_binary(env, term, &bin)) fail("term_to_binary failed", term);
    if (etf_prefix(bin.data, bin.size) == bin.size) {
        ERL_NIF_TERM back;
        if (!enif_binary_to_term(env, bin.data, bin.size, &back, ERL_NIF_BIN2TERM_SAFE) ||
            !enif_is_identical(back, term)) {
            if (!(allowed("otp10975") && holds_malformed_small_map(env, term)))
                fail("a term made by to_erlang is not the same after term_to_binary/binary_to_term", term);
        }
    }
    enif_release_binary(&bin);
}

// --- the two directions ----------------------------------------------------------------------

// a == b in Python; true when Python cannot tell (its comparison recurses, and gives up with
// RecursionError on objects nested some thousands deep: the terms are compared instead).
bool python_equal(PyObject* a, PyObject* b) {
    int eq = PyObject_RichCompareBool(a, b, Py_EQ);
    if (eq < 0 && PyErr_ExceptionMatches(PyExc_RecursionError)) {
        PyErr_Clear();
        return true;
    }
    return eq == 1;
}

// Erlang first (modes 0, 1, 3): t -> o -> t1 -> o1 -> t2. to_python succeeds exactly when the
// mapping converts t, o is what the mapping says, t1 is t itself unless the mapping loses
// something (see matches), and the result is a fixed point: o1 == o and t2 is t1.
void erlang_first(ErlNifEnv* env, ERL_NIF_TERM t) {
    bool expected = convertible(env, t);
    py::Ref o = py::Ref::steal(to_python(env, t));
    if (!o) {
        if (expected) fail("to_python refused a term the mapping converts", t);
        if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_RecursionError) &&
            !(PyErr_ExceptionMatches(PyExc_ValueError) && holds_stale_reference(env, t)))
            fail("to_python refused a term with an unexpected exception", t);
        PyErr_Clear();
        return;
    }
    if (!expected) fail("to_python converted a term the mapping refuses", t);
    bool same = true;
    if (!matches(env, t, o.get(), same)) fail("to_python: " + g_why, t);
    ERL_NIF_TERM t1;
    if (!to_erlang(env, o.get(), &t1)) fail("to_erlang refused what to_python made", t);
    if (same && !enif_is_identical(t1, t)) fail("a term did not come back the same", t);
    check_wellformed(env, t1);
    py::Ref o1 = py::Ref::steal(to_python(env, t1));
    if (!o1) fail("to_python refused a term to_erlang made", t1);
    if (!python_equal(o1.get(), o.get())) fail("converting twice gave an object unequal to converting once", t);
    ERL_NIF_TERM t2;
    if (!to_erlang(env, o1.get(), &t2)) fail("to_erlang refused what to_python made (2nd round)", t1);
    if (!same_term(env, t1, t2)) fail("the second round trip changed the term", t1);
}

// Python first (modes 2, 4): o -> t1 -> o1 -> t2 -> o2. to_erlang fails only as documented
// (unless hooks ran Python code that may raise anything); t1 is well formed; what to_erlang
// makes always converts back; the result is a fixed point: o2 == o1 and t2 is what o2 gives.
void python_first(ErlNifEnv* env, PyObject* o, bool hooks) {
    ERL_NIF_TERM t1;
    if (!to_erlang(env, o, &t1)) {
        if (!hooks && !PyErr_ExceptionMatches(PyExc_UnicodeEncodeError) &&
            !PyErr_ExceptionMatches(PyExc_RecursionError) && !PyErr_ExceptionMatches(PyExc_OverflowError) &&
            !PyErr_ExceptionMatches(PyExc_MemoryError))
            fail("to_erlang failed with an exception the mapping does not document");
        PyErr_Clear();
        return;
    }
    check_wellformed(env, t1);
    py::Ref o1 = py::Ref::steal(to_python(env, t1));
    if (!o1) fail("to_python refused a term to_erlang made", t1);
    ERL_NIF_TERM t2;
    if (!to_erlang(env, o1.get(), &t2)) fail("to_erlang refused what to_python made", t1);
    check_wellformed(env, t2);
    py::Ref o2 = py::Ref::steal(to_python(env, t2));
    if (!o2) fail("to_python refused a term to_erlang made (2nd round)", t2);
    if (!python_equal(o2.get(), o1.get())) fail("the second round trip gave an unequal object", t2);
    ERL_NIF_TERM t3;
    if (!to_erlang(env, o2.get(), &t3)) fail("to_erlang refused what to_python made (3rd round)", t2);
    if (!same_term(env, t2, t3)) fail("the third round trip changed the term", t2);
}

// --- mode 3: terms built by a little program -------------------------------------------------

struct Reader {
    const uint8_t* p;
    size_t n;
    size_t i = 0;
    bool empty() const { return i >= n; }
    size_t left() const { return n - i; }
    unsigned u8() { return i < n ? p[i++] : 0; }
    uint64_t u64() {
        uint64_t v = 0;
        for (int k = 0; k < 8; ++k) v = (v << 8) | u8();
        return v;
    }
    // Up to k bytes (fewer at the end of the input).
    const uint8_t* take(size_t& k) {
        k = std::min(k, left());
        const uint8_t* s = p + i;
        i += k;
        return s;
    }
};

ERL_NIF_TERM decode_or(ErlNifEnv* env, const std::vector<unsigned char>& etf, ERL_NIF_TERM fallback) {
    ERL_NIF_TERM t;
    return enif_binary_to_term(env, etf.data(), etf.size(), &t, ERL_NIF_BIN2TERM_SAFE) ? t : fallback;
}

ERL_NIF_TERM special(ErlNifEnv* env, unsigned which) {
    switch (which) {
        case 0: return enif_make_list(env, 0);
        case 1: return enif_make_tuple(env, 0);
        case 2: return enif_make_new_map(env);
        case 3: {
            ERL_NIF_TERM t;
            enif_make_new_binary(env, 0, &t);
            return t;
        }
        case 4: return enif_make_int64(env, INT64_MIN);
        case 5: return enif_make_int64(env, INT64_MAX);
        case 6: return enif_make_uint64(env, UINT64_MAX);
        case 7: return decode_or(env, {131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, enif_make_int(env, 0));  // 2^64
        case 8:
            return decode_or(env, {131, 110, 8, 1, 1, 0, 0, 0, 0, 0, 0, 128}, enif_make_int(env, 0));  // -(2^63) - 1
        case 9: return enif_make_double(env, -0.0);
        case 10: return enif_make_double(env, 1.7976931348623157e308);
        case 11: return enif_make_double(env, 4.9e-324);
        case 12: return enif_make_double(env, 9007199254740993.0);
        case 13: return enif_make_int64(env, int64_t(1) << 59);  // around the small/big boundary
        case 14: return enif_make_int64(env, -(int64_t(1) << 59) - 1);
        default: return enif_make_double(env, 0.1);
    }
}

// What build_term() made so far for one input. Terms share subterms, the Python objects they
// become do not: `expanded` counts the nodes of the terms as trees, and reuse stops at
// kBuildBudget so that a few bytes cannot ask for an exponential amount of conversion. Only the
// first deep nesting of an input is deep.
constexpr size_t kBuildBudget = 50000;

struct Built {
    std::vector<ERL_NIF_TERM> terms;
    std::vector<size_t> sizes;  // tree size of each of terms
    size_t expanded = 0;
    bool deep_done = false;
};

// Builds a term from r: one op byte (low nibble: what, high nibble: a variant), then its operands.
// Past the end of the input everything is []. New atoms are never made. size: the term's tree size.
ERL_NIF_TERM build_term(ErlNifEnv* env, Reader& r, Built& made, int depth, size_t& size) {
    size = 1;
    if (r.empty() || depth > kMaxBuildDepth) return enif_make_list(env, 0);
    size_t child = 0;
    unsigned op = r.u8();
    unsigned arg = op >> 4;
    ERL_NIF_TERM t;
    switch (op & 15) {
        case 0:  // integer
            t = (arg & 1) ? enif_make_int64(env, int64_t(r.u64())) : enif_make_int(env, int8_t(r.u8()));
            break;
        case 1: {  // bignum in the external format (the decoder normalises it)
            size_t len = r.u8();
            if (arg & 2) len = (len << 8) | r.u8();
            const uint8_t* digits = r.take(len);
            std::vector<unsigned char> etf = {131,
                                              111,
                                              0,
                                              0,
                                              static_cast<unsigned char>(len >> 8),
                                              static_cast<unsigned char>(len),
                                              static_cast<unsigned char>(arg & 1)};
            etf.insert(etf.end(), digits, digits + len);
            t = decode_or(env, etf, enif_make_int(env, 0));
            break;
        }
        case 2: {  // float (the VM has no NaN or infinity)
            uint64_t bits = r.u64();
            double d;
            std::memcpy(&d, &bits, sizeof d);
            t = enif_make_double(env, std::isfinite(d) ? d : double(arg));
            break;
        }
        case 3: t = g.atoms[r.u8() % g.atoms.size()]; break;
        case 4: {  // binary
            size_t len = r.u8();
            if (arg & 1) len = (len << 8) | r.u8();
            const uint8_t* s = r.take(len);
            std::memcpy(enif_make_new_binary(env, len, &t), s, len);
            break;
        }
        case 5: {  // bitstring that is not whole bytes
            size_t len = 1 + r.u8() % 64;
            size_t got = len;
            const uint8_t* s = r.take(got);
            std::vector<unsigned char> etf = {
                131, 77, 0, 0, 0, static_cast<unsigned char>(len), static_cast<unsigned char>(1 + arg % 7)};
            etf.insert(etf.end(), s, s + got);
            etf.resize(7 + len, 0);
            t = decode_or(env, etf, enif_make_list(env, 0));
            break;
        }
        case 6:    // proper list
        case 8: {  // tuple
            size_t n = r.u8();
            if (arg & 1) n = (n << 8) | r.u8();
            std::vector<ERL_NIF_TERM> elems;
            for (size_t k = 0; k < n && !r.empty(); ++k) {
                elems.push_back(build_term(env, r, made, depth + 1, child));
                size += child;
            }
            t = (op & 15) == 6 ? enif_make_list_from_array(env, elems.data(), unsigned(elems.size()))
                               : enif_make_tuple_from_array(env, elems.data(), unsigned(elems.size()));
            break;
        }
        case 7: {  // list with a tail of any kind (proper when the tail is a list)
            size_t n = 1 + r.u8() % 8;
            std::vector<ERL_NIF_TERM> elems;
            for (size_t k = 0; k < n; ++k) {
                elems.push_back(build_term(env, r, made, depth + 1, child));
                size += child;
            }
            t = build_term(env, r, made, depth + 1, child);
            size += child;
            for (size_t k = elems.size(); k-- > 0;) t = enif_make_list_cell(env, elems[k], t);
            break;
        }
        case 9: {  // map, possibly of more than 128 keys (made by insertion, never decoded)
            size_t n = r.u8() | (arg << 8);
            t = enif_make_new_map(env);
            for (size_t k = 0; k < n && !r.empty(); ++k) {
                ERL_NIF_TERM key = build_term(env, r, made, depth + 1, child);
                size += child;
                ERL_NIF_TERM value = build_term(env, r, made, depth + 1, child);
                size += child;
                enif_make_map_put(env, t, key, value, &t);
            }
            break;
        }
        case 10: {  // charlist
            size_t len = r.u8();
            const uint8_t* s = r.take(len);
            t = enif_make_string_len(env, reinterpret_cast<const char*>(s), len, ERL_NIF_LATIN1);
            break;
        }
        case 11: t = enif_make_copy(env, g.samples[r.u8() % g.samples.size()]); break;
        case 12: {  // nesting (no recursion here): up to 255 levels, or around the conversion's
                    // limit (variant & 4): bridge::kMaxDepth - 10 + 0..255
            bool deep = (arg & 4) && !made.deep_done;
            made.deep_done = made.deep_done || deep;
            unsigned levels = deep ? bridge::kMaxDepth - 10 + r.u8() : r.u8();
            t = build_term(env, r, made, depth + 1, child);
            size = child + levels;
            ERL_NIF_TERM one = enif_make_int(env, 1);
            for (unsigned k = 0; k < levels; ++k) {
                switch (arg % 4) {
                    case 0: t = enif_make_list1(env, t); break;
                    case 1: t = enif_make_tuple1(env, t); break;
                    case 2: enif_make_map_put(env, enif_make_new_map(env), one, t, &t); break;
                    default: enif_make_map_put(env, enif_make_new_map(env), t, one, &t); break;  // a key
                }
            }
            break;
        }
        case 13: {  // a term made before (shared), within the budget
            size_t i = made.terms.empty() ? 0 : r.u8() % made.terms.size();
            if (made.terms.empty() || made.expanded + made.sizes[i] > kBuildBudget) {
                t = enif_make_list(env, 0);
            } else {
                t = made.terms[i];
                size = made.sizes[i];
                made.expanded += size;
            }
            break;
        }
        case 14: {  // a reference to a Python object: of the live interpreter, or of a dead one
            unsigned k = r.u8();
            const std::vector<ERL_NIF_TERM>& from = (k & 0x80) ? g.stale_refs : g.refs;
            t = enif_make_copy(env, from[k % from.size()]);
            break;
        }
        default: t = special(env, arg); break;
    }
    made.terms.push_back(t);
    made.sizes.push_back(size);
    ++made.expanded;
    return t;
}

// --- one input -------------------------------------------------------------------------------

int one_input(const uint8_t* data, size_t size) {
    if (size < 1) return -1;
    ErlNifEnv* env = g.env;
    const uint8_t* rest = data + 1;
    size_t n = size - 1;
    int result = 0;
    switch (data[0] % 5) {
        case 0: {
            size_t len = etf_prefix(rest, n);
            ERL_NIF_TERM t;
            if (len == 0 || enif_binary_to_term(env, rest, len, &t, ERL_NIF_BIN2TERM_SAFE) == 0) {
                result = -1;  // not for the corpus
                break;
            }
            erlang_first(env, t);
            break;
        }
        case 1: {
            ERL_NIF_TERM t;
            if (n) std::memcpy(enif_make_new_binary(env, n, &t), rest, n);
            else enif_make_new_binary(env, 0, &t);
            erlang_first(env, t);
            break;
        }
        case 2: {
            size_t at = 0;
            if (!marshal_ok(rest, n, at, 0)) {
                result = -1;
                break;
            }
            py::Ref bytes =
                py::Ref::steal(PyBytes_FromStringAndSize(reinterpret_cast<const char*>(rest), Py_ssize_t(n)));
            py::Ref args = py::Ref::steal(bytes ? PyTuple_Pack(1, bytes.get()) : nullptr);
            py::Ref o = py::Ref::steal(args ? PyObject_Call(g.marshal_loads, args.get(), g.marshal_kwargs) : nullptr);
            if (!o) {
                PyErr_Clear();
                result = -1;
                break;
            }
            python_first(env, o.get(), false);
            break;
        }
        case 3: {
            Reader r{rest, n};
            Built made;
            size_t size = 0;
            erlang_first(env, build_term(env, r, made, 0, size));
            break;
        }
        default: {
            py::Ref bytes =
                py::Ref::steal(PyBytes_FromStringAndSize(reinterpret_cast<const char*>(rest), Py_ssize_t(n)));
            py::Ref o = py::Ref::steal(bytes ? PyObject_CallOneArg(g.build_object, bytes.get()) : nullptr);
            if (!o) fail("py_build.build raised");
            python_first(env, o.get(), true);
            break;
        }
    }
    if (PyErr_Occurred()) fail("an exception was left set");
    enif_clear_env(env);
    g.interp->drain();  // references to Python objects dropped with the environment
    return result;
}

// --- start-up --------------------------------------------------------------------------------

PyObject* import_attr(const char* module, const char* name) {
    py::Ref mod = py::Ref::steal(PyImport_ImportModule(module));
    return mod ? PyObject_GetAttrString(mod.get(), name) : nullptr;
}

// On the fuzz thread: attach to the main interpreter as a worker context does
// (Context::attach_thread), then the objects and terms the modes use.
bool set_up(std::string& error) {
    PyThreadState* tstate = PyThreadState_New(py::main_interpreter());
    if (!tstate) {
        error = "cannot create a thread state";
        return false;
    }
    PyEval_RestoreThread(tstate);  // attached for the rest of the run
    g.interp = std::make_shared<py::Interpreter>(py::main_interpreter());
    g.erlang_module = bridge::import_erlang_module();
    g.types = g.erlang_module ? bridge::erlang_types_of(g.erlang_module) : nullptr;
    g.env = enif_alloc_env();
    if (!g.types || !g.env) {
        error = "cannot import the erlang module";
        return false;
    }

    // integer_matches() compares decimal text; bignums of the input's size pass CPython's default
    // limit of 4300 digits for str(int). (The conversion itself never goes through text.)
    if (PyRun_SimpleString("import sys\nif hasattr(sys, \"set_int_max_str_digits\"): sys.set_int_max_str_digits(0)") !=
        0) {
        error = "cannot lift the int/str digit limit";
        return false;
    }
    g.marshal_loads = import_attr("marshal", "loads");
    if (!g.marshal_loads) {
        error = "cannot import marshal";
        return false;
    }
    // 3.13+: no code objects (marshal builds them without validating the bytecode).
    g.marshal_kwargs = Py_BuildValue("{s:O}", "allow_code", Py_False);
    py::Ref probe = py::Ref::steal(PyObject_Call(
        g.marshal_loads, py::Ref::steal(Py_BuildValue("(y#)", "N", Py_ssize_t(1))).get(), g.marshal_kwargs));
    if (!probe) {
        PyErr_Clear();
        Py_CLEAR(g.marshal_kwargs);
        // Python < 3.13: marshal_ok() refuses code objects anyway.
    }

    // fuzz/py_build.py, run as a module of its own.
    py::Ref module = py::Ref::steal(PyModule_New("py_build"));
    PyObject* dict = module ? PyModule_GetDict(module.get()) : nullptr;
    if (!dict || PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) < 0) {
        error = "cannot make the py_build module";
        return false;
    }
    py::Ref code = py::Ref::steal(Py_CompileString(g.builder_source.c_str(), "py_build.py", Py_file_input));
    py::Ref done = py::Ref::steal(code ? PyEval_EvalCode(code.get(), dict, dict) : nullptr);
    g.build_object = done ? PyDict_GetItemString(dict, "build") : nullptr;
    PyObject* opaque = done ? PyDict_GetItemString(dict, "OPAQUE") : nullptr;
    PyObject* samples = done ? PyDict_GetItemString(dict, "SAMPLES") : nullptr;
    if (!g.build_object || !opaque || !PyList_Check(opaque) || !samples || !PyList_Check(samples)) {
        PyErr_Print();
        error = "cannot run fuzz/py_build.py";
        return false;
    }
    Py_INCREF(g.build_object);
    const char* known = std::getenv("PY_FUZZ_KNOWN");
    py::Ref known_str = py::Ref::steal(PyUnicode_FromString(known ? known : ""));
    if (!known_str || PyDict_SetItemString(dict, "KNOWN", known_str.get()) < 0) return false;
    // References to opaque objects, for build_term(); the samples as Python objects, for py_build.
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(opaque); ++i) {
        ERL_NIF_TERM t;
        if (!to_erlang(g.fixed, PyList_GET_ITEM(opaque, i), &t)) {
            PyErr_Print();
            error = "cannot convert py_build.OPAQUE";
            return false;
        }
        g.refs.push_back(t);
    }
    g.dead_interp = std::make_shared<py::Interpreter>(py::main_interpreter());
    g.dead_interp->mark_dead();
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(opaque); ++i) {
        bridge::ObjectRef* ref = ObjectRefResource::make(PyList_GET_ITEM(opaque, i), g.dead_interp);
        g.stale_refs.push_back(ObjectRefResource::term(g.fixed, ref));
        ObjectRefResource::release(ref);  // the term holds it (its object's reference is dropped unread)
    }
    for (ERL_NIF_TERM t : g.samples) {
        py::Ref o = py::Ref::steal(bridge::to_python(converter(), g.fixed, t));
        if (!o) PyErr_Clear();  // bitstrings and the like
        else if (PyList_Append(samples, o.get()) < 0) return false;
    }
    module.release();  // kept for the run
    if (g.refs.empty()) {
        error = "py_build.OPAQUE is empty";
        return false;
    }
    return true;
}

void* fuzz_thread(void*) {
    pthread_setname_np(pthread_self(), "py_fuzz");
    std::string error;
    if (!set_up(error)) {
        std::fprintf(stderr, "py_fuzz: %s\n", error.c_str());
        std::fflush(stderr);
        std::_Exit(3);
    }
    std::vector<char*> argv;
    static char name[] = "py_fuzz";
    argv.push_back(name);
    for (std::string& a : g.args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int argc = int(argv.size()) - 1;
    char** av = argv.data();
    int rc = LLVMFuzzerRunDriver(&argc, &av, &one_input);  // normally ends the process itself
    std::fflush(nullptr);
    std::_Exit(rc);
}

ERL_NIF_TERM error_tuple(ErlNifEnv* env, const char* why) {
    return enif_make_tuple2(env, erl::atoms().error, enif_make_atom(env, why));
}

// start(Args, Samples, BuilderSource): libFuzzer's arguments (binaries), terms for build_term()
// (a list), fuzz/py_build.py (a binary). Starts the fuzz thread and returns ok; once only.
ERL_NIF_TERM start(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    static bool started = false;
    if (started) return error_tuple(env, "already_started");
    ERL_NIF_TERM head, tail = argv[0];
    ErlNifBinary bin;
    std::vector<std::string> args;
    while (enif_get_list_cell(env, tail, &head, &tail)) {
        if (!enif_inspect_binary(env, head, &bin)) return enif_make_badarg(env);
        args.emplace_back(reinterpret_cast<char*>(bin.data), bin.size);
    }
    if (!enif_inspect_binary(env, argv[2], &bin)) return enif_make_badarg(env);
    g.builder_source.assign(reinterpret_cast<char*>(bin.data), bin.size);
    g.args = std::move(args);
    g.fixed = enif_alloc_env();
    for (tail = argv[1]; enif_get_list_cell(env, tail, &head, &tail);)
        g.samples.push_back(enif_make_copy(g.fixed, head));
    if (g.samples.empty()) return enif_make_badarg(env);

    // The atoms build_term() uses: those the mapping treats apart, and text of every width.
    // clang-format off
    const char* latin1[] = {"true", "false", "none", "undefined", "nil", "nan", "infinity", "neg_infinity", "ok", "",
                            "a", "A b", "\xe4rger", "erlang", "nonode@nohost", "'quoted'\n"};
    // clang-format on
    for (const char* a : latin1) g.atoms.push_back(enif_make_atom(g.fixed, a));
    g.atoms.push_back(enif_make_atom(g.fixed, std::string(255, 'x').c_str()));
    // Outside Latin-1 (created from the external format: OTP 25 has no enif UTF-8 atoms).
    const char* utf8[] = {"\xce\xbb", "\xf0\x9f\x98\x80", "caf\xc3\xa9\xe2\x82\xac", "\xe6\x97\xa5\xe6\x9c\xac"};
    std::vector<std::string> texts(std::begin(utf8), std::end(utf8));
    std::string wide;
    for (int k = 0; k < 255; ++k) wide += "\xf0\x9f\x98\x80";  // 255 characters, 1020 bytes
    texts.push_back(wide);
    for (const std::string& text : texts) {
        std::vector<unsigned char> etf = {131, 118, static_cast<unsigned char>(text.size() >> 8),
                                          static_cast<unsigned char>(text.size())};
        etf.insert(etf.end(), text.begin(), text.end());
        ERL_NIF_TERM atom;
        if (!enif_binary_to_term(g.fixed, etf.data(), etf.size(), &atom, 0)) return error_tuple(env, "utf8_atom");
        g.atoms.push_back(atom);
    }

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    size_t stack_mib = kThreadStackMiB;
    if (const char* v = std::getenv("PY_FUZZ_STACK_MIB")) stack_mib = std::strtoul(v, nullptr, 10);
    pthread_attr_setstacksize(&attr, stack_mib << 20);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, &fuzz_thread, nullptr);
    pthread_attr_destroy(&attr);
    if (rc != 0) return error_tuple(env, "thread_create_failed");
    started = true;
    return erl::atoms().ok;
}

int load(ErlNifEnv* env, void**, ERL_NIF_TERM) {
    erl::init_atoms(env);
    if (!nifs::open_info_resources(env)) return 1;  // references to Python objects
    std::string error;
    if (!py::start_runtime("", &bridge::init_erlang_module, error)) {
        enif_fprintf(stderr, "py_fuzz: cannot start Python: %s\n", error.c_str());
        return 2;
    }
    return 0;
}

ErlNifFunc nif_funcs[] = {
    {"start", 3, start, 0},
};

}  // namespace

ERL_NIF_INIT(py_fuzz, nif_funcs, load, nullptr, nullptr, nullptr)
