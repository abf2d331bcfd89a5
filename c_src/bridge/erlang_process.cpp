#include "bridge/erlang_process.hpp"

#include <string_view>

#include "erl/env.hpp"
#include "erl/terms.hpp"
#include "py/ref.hpp"

namespace bridge {
namespace {

// The Latin-1 text of a str or bytes name (atom names this NIF API can look up), held in
// *holder. False with no exception set for other objects or a str outside Latin-1.
bool name_text(PyObject* name, py::Ref* holder, std::string_view* out) {
    if (PyUnicode_Check(name)) {
        *holder = py::Ref::steal(PyUnicode_AsLatin1String(name));
        if (!*holder) {
            PyErr_Clear();
            return false;
        }
        name = holder->get();
    }
    if (PyBytes_Check(name)) {
        *out = {PyBytes_AS_STRING(name), static_cast<size_t>(PyBytes_GET_SIZE(name))};
        return true;
    }
    return false;
}

enum class NameAtom { Found, Missing, Failed };

// The existing atom a name stands for: from an erlang.Term holding an atom, a str or bytes.
// Missing when no such atom exists (so no process can be registered under it); Failed with
// a TypeError set for a name of another type.
NameAtom existing_atom(const ErlangTypes& types, PyObject* name, ErlNifEnv* env, ERL_NIF_TERM* out) {
    if (get_term(types, name, env, out)) {
        if (enif_is_atom(env, *out)) return NameAtom::Found;
    } else if (PyUnicode_Check(name) || PyBytes_Check(name)) {
        py::Ref holder;
        std::string_view text;
        if (!name_text(name, &holder, &text)) return NameAtom::Missing;  // not Latin-1: no such atom here
        return enif_make_existing_atom_len(env, text.data(), text.size(), out, ERL_NIF_LATIN1) ? NameAtom::Found
                                                                                               : NameAtom::Missing;
    }
    PyErr_Format(PyExc_TypeError, "a process name must be a str, bytes or erlang.atom(...), not %.100s",
                 Py_TYPE(name)->tp_name);
    return NameAtom::Failed;
}

// Raises erlang.<exception>(message): ProcessError, or NotRegistered (a ProcessError that is
// also the TypeError 4.1 raised for a name destination).
PyObject* process_error(const char* message, PyObject* target, const char* exception = "ProcessError") {
    py::Ref module = py::Ref::steal(PyImport_ImportModule("erlang"));
    py::Ref cls = py::Ref::steal(module ? PyObject_GetAttrString(module.get(), exception) : nullptr);
    if (!cls) return nullptr;
    PyErr_Format(cls.get(), message, target);
    return nullptr;
}

}  // namespace

PyObject* whereis(const ErlangTypes& types, PyObject* name) {
    erl::OwnedEnv env;
    ERL_NIF_TERM atom{};
    switch (existing_atom(types, name, env.get(), &atom)) {
        case NameAtom::Failed: return nullptr;
        case NameAtom::Missing: Py_RETURN_NONE;
        case NameAtom::Found: break;
    }
    ErlNifPid pid;
    // A null caller env: this is not a scheduler thread.
    if (!enif_whereis_pid(nullptr, atom, &pid)) Py_RETURN_NONE;
    return make_pid(types, pid);
}

PyObject* make_atom(const ErlangTypes& types, PyObject* name) {
    if (!PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "erlang.atom(name): name must be a str");
        return nullptr;
    }
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_AsUTF8AndSize(name, &size);
    if (!utf8) return nullptr;
    erl::OwnedEnv env;
    // Reuses an existing atom; else creates one within the budget of names from code.
    ERL_NIF_TERM atom = erl::make_code_name_atom(env.get(), {utf8, static_cast<size_t>(size)});
    if (!enif_is_atom(env.get(), atom)) {
        PyErr_SetString(PyExc_ValueError, "erlang.atom: too many new atoms made from Python, or not Latin-1");
        return nullptr;
    }
    ErlNifBinary etf;
    if (!enif_term_to_binary(env.get(), atom, &etf)) return PyErr_NoMemory();
    PyObject* result = make_term(types, etf.data, etf.size, atom);
    enif_release_binary(&etf);
    return result;
}

PyObject* send_message(const Converter& cv, PyObject* target, PyObject* message) {
    erl::OwnedEnv env;
    ErlNifPid to;
    if (!get_pid(cv.types, target, &to)) {
        ERL_NIF_TERM atom{};
        switch (existing_atom(cv.types, target, env.get(), &atom)) {
            case NameAtom::Failed:
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError,
                             "erlang.send(pid, term): pid must be an erlang.Pid or a registered name, not %.100s",
                             Py_TYPE(target)->tp_name);
                return nullptr;
            case NameAtom::Missing: return process_error("no process is registered as %R", target, "NotRegistered");
            case NameAtom::Found: break;
        }
        if (!enif_whereis_pid(nullptr, atom, &to))
            return process_error("no process is registered as %R", target, "NotRegistered");
    }
    ERL_NIF_TERM term{};
    if (!to_erlang(cv, env.get(), message, &term)) return nullptr;
    if (!erl::send_and_clear(env.get(), to, term)) return process_error("the process %R is not alive", target);
    Py_RETURN_NONE;
}

}  // namespace bridge
