#include "bridge/shared_dict_object.hpp"

#include <memory>
#include <new>
#include <vector>

#include "bridge/convert.hpp"
#include "bridge/object_ref.hpp"
#include "py/ref.hpp"

namespace bridge {
namespace {

using Status = shared::SharedDict::Status;

struct SharedDictObject {
    PyObject_HEAD
    shared::SharedDict* dict;  // holds a reference to the resource
};

shared::SharedDict& dict_of(PyObject* self) { return *reinterpret_cast<SharedDictObject*>(self)->dict; }

// The terms of one operation: a scratch environment and a converter for the current
// interpreter. Opaque references a refused conversion made are dropped when it ends.
class Scratch {
public:
    explicit Scratch(PyObject* self)
        : env_(enif_alloc_env()),
          interp_(std::make_shared<py::Interpreter>(PyInterpreterState_Get())),
          types_(static_cast<const ErlangTypes*>(PyType_GetModuleState(Py_TYPE(self)))) {}
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    ~Scratch() {
        if (env_) enif_free_env(env_);
        interp_->drain();  // attached: drops what freeing the environment handed over
    }

    bool ready() const {
        if (env_ && types_) return true;
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return false;
    }
    ErlNifEnv* env() const { return env_; }
    Converter converter() const { return Converter{*types_, interp_}; }

    // obj as an Erlang term; false with TypeError when some part of it has no Erlang
    // equivalent (it would have become a reference to a Python object of this interpreter).
    bool term_of(PyObject* obj, const char* what, ERL_NIF_TERM* out) const {
        if (!to_erlang(converter(), env_, obj, out)) return false;
        if (holds_object_ref(*out)) {
            PyErr_Format(PyExc_TypeError,
                         "a SharedDict %s must convert to an Erlang term (numbers, str, bytes, bool, None, "
                         "lists, tuples, dicts, erlang.Pid, erlang.Term); %R has a part that does not",
                         what, obj);
            return false;
        }
        return true;
    }

private:
    bool holds_object_ref(ERL_NIF_TERM term) const {
        std::vector<ERL_NIF_TERM> todo{term};
        while (!todo.empty()) {
            ERL_NIF_TERM t = todo.back();
            todo.pop_back();
            switch (enif_term_type(env_, t)) {
                case ERL_NIF_TERM_TYPE_REFERENCE:
                    if (ObjectRefResource::get(env_, t)) return true;
                    break;
                case ERL_NIF_TERM_TYPE_LIST: {
                    ERL_NIF_TERM head{}, tail = t;
                    while (enif_get_list_cell(env_, tail, &head, &tail)) todo.push_back(head);
                    break;
                }
                case ERL_NIF_TERM_TYPE_TUPLE: {
                    int arity = 0;
                    const ERL_NIF_TERM* elems = nullptr;
                    enif_get_tuple(env_, t, &arity, &elems);
                    todo.insert(todo.end(), elems, elems + arity);
                    break;
                }
                case ERL_NIF_TERM_TYPE_MAP: {
                    ErlNifMapIterator it;
                    if (!enif_map_iterator_create(env_, t, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return true;
                    ERL_NIF_TERM k{}, v{};
                    while (enif_map_iterator_get_pair(env_, &it, &k, &v)) {
                        todo.push_back(k);
                        todo.push_back(v);
                        enif_map_iterator_next(env_, &it);
                    }
                    enif_map_iterator_destroy(env_, &it);
                    break;
                }
                default: break;
            }
        }
        return false;
    }

    ErlNifEnv* env_;
    py::InterpreterPtr interp_;
    const ErlangTypes* types_;
};

// Python's answer to a status other than ok (nullptr/-1 with the exception set).
void raise_for(Status status, PyObject* key) {
    if (status == Status::destroyed) {
        PyErr_SetString(PyExc_RuntimeError, "SharedDict has been destroyed");
    } else {
        PyErr_SetObject(PyExc_KeyError, key);
    }
}

// Runs op, turning std::bad_alloc into MemoryError.
template <class Op>
auto guarded(Op op) -> decltype(op()) {
    try {
        return op();
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
        return Status::destroyed;  // callers check PyErr_Occurred first
    }
}

// The value under key; default_value (may be nullptr: KeyError) when it is missing.
PyObject* lookup(PyObject* self, PyObject* key, PyObject* default_value) {
    Scratch s(self);
    ERL_NIF_TERM k{}, v{};
    if (!s.ready() || !s.term_of(key, "key", &k)) return nullptr;
    Status status = guarded([&] { return dict_of(self).get(s.env(), k, &v); });
    if (PyErr_Occurred()) return nullptr;
    if (status == Status::ok) return to_python(s.converter(), s.env(), v);
    if (status == Status::missing && default_value) return Py_NewRef(default_value);
    raise_for(status, key);
    return nullptr;
}

PyObject* sd_subscript(PyObject* self, PyObject* key) { return lookup(self, key, nullptr); }

int sd_ass_subscript(PyObject* self, PyObject* key, PyObject* value) {
    Scratch s(self);
    ERL_NIF_TERM k{}, v{};
    if (!s.ready() || !s.term_of(key, "key", &k)) return -1;
    if (value && !s.term_of(value, "value", &v)) return -1;
    Status status = guarded([&] { return value ? dict_of(self).set(s.env(), k, v) : dict_of(self).erase(s.env(), k); });
    if (PyErr_Occurred()) return -1;
    if (status == Status::ok) return 0;
    raise_for(status, key);
    return -1;
}

int sd_contains(PyObject* self, PyObject* key) {
    Scratch s(self);
    ERL_NIF_TERM k{};
    if (!s.ready()) return -1;
    if (!s.term_of(key, "key", &k)) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
        PyErr_Clear();  // a key no entry can have
        return 0;
    }
    Status status = guarded([&] { return dict_of(self).contains(s.env(), k); });
    if (PyErr_Occurred()) return -1;
    if (status == Status::destroyed) {
        raise_for(status, key);
        return -1;
    }
    return status == Status::ok ? 1 : 0;
}

PyObject* sd_get(PyObject* self, PyObject* args) {
    PyObject *key = nullptr, *default_value = Py_None;
    if (!PyArg_ParseTuple(args, "O|O:get", &key, &default_value)) return nullptr;
    return lookup(self, key, default_value);
}

PyObject* sd_keys(PyObject* self, PyObject*) {
    Scratch s(self);
    ERL_NIF_TERM list{};
    if (!s.ready()) return nullptr;
    Status status = guarded([&] { return dict_of(self).keys(s.env(), &list); });
    if (PyErr_Occurred()) return nullptr;
    if (status != Status::ok) {
        raise_for(status, Py_None);
        return nullptr;
    }
    return to_python(s.converter(), s.env(), list);
}

PyObject* sd_destroy(PyObject* self, PyObject*) {
    dict_of(self).destroy();
    Py_RETURN_NONE;
}

PyObject* sd_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
    PyObject* handle = nullptr;
    if ((kwargs && PyDict_GET_SIZE(kwargs) > 0) || !PyArg_ParseTuple(args, "O:SharedDict", &handle)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "SharedDict(handle) takes no keyword arguments");
        return nullptr;
    }
    shared::SharedDict* dict = nullptr;
    if (PyObject_TypeCheck(handle, type)) {
        dict = &dict_of(handle);
        SharedDictResource::keep(dict);
    } else {
        const auto* types = static_cast<const ErlangTypes*>(PyType_GetModuleState(type));
        ErlNifEnv* env = enif_alloc_env();
        if (!env) return PyErr_NoMemory();
        ERL_NIF_TERM term{};
        if (types && get_term(*types, handle, env, &term)) dict = SharedDictResource::get(env, term);
        if (dict) SharedDictResource::keep(dict);
        enif_free_env(env);
    }
    if (!dict) {
        PyErr_Format(PyExc_TypeError, "SharedDict(handle): %R is not a handle from py:shared_dict_new/0", handle);
        return nullptr;
    }
    auto* obj = reinterpret_cast<SharedDictObject*>(type->tp_alloc(type, 0));
    if (!obj) {
        SharedDictResource::release(dict);
        return nullptr;
    }
    obj->dict = dict;
    return reinterpret_cast<PyObject*>(obj);
}

void sd_dealloc(PyObject* self) {
    PyTypeObject* tp = Py_TYPE(self);
    if (auto* dict = reinterpret_cast<SharedDictObject*>(self)->dict) SharedDictResource::release(dict);
    tp->tp_free(self);
    Py_DECREF(tp);
}

// clang-format off
PyMethodDef sd_methods[] = {
    {"get", sd_get, METH_VARARGS, "get(key, default=None): the value under key, or default."},
    {"keys", sd_keys, METH_NOARGS, "Every key, as a list."},
    {"destroy", sd_destroy, METH_NOARGS, "Drop every entry; every later use, from anywhere, fails."},
    {nullptr, nullptr, 0, nullptr},
};
// clang-format on

PyType_Slot sd_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(&sd_new)},
    {Py_tp_methods, sd_methods},
    {Py_mp_subscript, reinterpret_cast<void*>(&sd_subscript)},
    {Py_mp_ass_subscript, reinterpret_cast<void*>(&sd_ass_subscript)},
    {Py_sq_contains, reinterpret_cast<void*>(&sd_contains)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&sd_dealloc)},
    {Py_tp_doc,
     const_cast<char*>("SharedDict(handle): the dictionary made by py:shared_dict_new/0, shared by Erlang and every "
                       "context; values are stored as Erlang terms.")},
    {0, nullptr},
};

}  // namespace

PyType_Spec shared_dict_type_spec = {"erlang.SharedDict", sizeof(SharedDictObject), 0,
                                     Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE, sd_slots};

}  // namespace bridge
