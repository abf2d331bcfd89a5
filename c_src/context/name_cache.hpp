// Python strings for the atoms that name modules and functions in py:call requests, made once
// per context instead of once per call. Atoms live as long as the node, so the term itself is
// the key. Precondition: used and cleared on the context's worker thread, attached to its
// interpreter.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include <unordered_map>

#include "bridge/convert.hpp"

namespace context {

class NameCache {
public:
    NameCache() = default;
    NameCache(const NameCache&) = delete;
    NameCache& operator=(const NameCache&) = delete;
    ~NameCache() = default;  // clear() runs before, while attached

    // A new reference to the str for name (an atom, binary or string), or NULL with a Python
    // exception set.
    PyObject* get(ErlNifEnv* env, ERL_NIF_TERM name) {
        if (!enif_is_atom(env, name)) return bridge::name_to_python(env, name);
        auto found = names_.find(name);
        if (found != names_.end()) return Py_NewRef(found->second);
        PyObject* str = bridge::name_to_python(env, name);
        if (!str) return nullptr;
        if (names_.size() >= kMaxEntries) clear();
        PyUnicode_InternInPlace(&str);
        names_.emplace(name, Py_NewRef(str));
        return str;
    }

    void clear() {
        for (auto& entry : names_) Py_DECREF(entry.second);
        names_.clear();
    }

private:
    static constexpr size_t kMaxEntries = 4096;
    std::unordered_map<ERL_NIF_TERM, PyObject*> names_;
};

}  // namespace context
