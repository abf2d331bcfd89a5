#include "bridge/thread_call.hpp"

#include "erl/atoms.hpp"
#include "py/ref.hpp"

namespace bridge {

ThreadCall::~ThreadCall() { answer(erl::atoms().aborted); }

bool ThreadCall::answer(ERL_NIF_TERM result) {
    std::lock_guard<std::mutex> lock(slot_->mutex);
    if (slot_->answered) return false;
    slot_->result = slot_->env.copy(result);
    slot_->answered = true;
    slot_->answered_cv.notify_all();
    return true;
}

PyObject* call_from_thread(const Converter& cv, PyObject* name, PyObject* args) {
    auto slot = std::make_shared<ThreadCallSlot>();
    {
        erl::OwnedEnv env;
        ERL_NIF_TERM name_term{}, args_term{};
        py::Ref arg_list = py::Ref::steal(PySequence_List(args));
        if (!arg_list || !to_erlang(cv, env.get(), name, &name_term) ||
            !to_erlang(cv, env.get(), arg_list.get(), &args_term))
            return nullptr;
        ErlNifPid runner;
        if (!enif_whereis_pid(nullptr, enif_make_atom(env.get(), "py_thread_callback"), &runner)) {
            PyErr_SetString(PyExc_RuntimeError, "erlang.call from this thread: erlang_python is not running");
            return nullptr;
        }
        ThreadCall* call = nullptr;
        try {
            call = ThreadCallResource::make(slot);
        } catch (const std::bad_alloc&) {
            return PyErr_NoMemory();
        }
        ERL_NIF_TERM call_term = ThreadCallResource::term(env.get(), call);
        ThreadCallResource::release(call);  // the term in env (then the message) holds it now
        ERL_NIF_TERM msg = enif_make_tuple4(env.get(), enif_make_atom(env.get(), "py_thread_callback"), call_term,
                                            name_term, args_term);
        // A lost message frees the resource, whose destructor answers `aborted`.
        (void)erl::send_and_clear(env.get(), runner, msg);
    }
    Py_BEGIN_ALLOW_THREADS;
    {
        std::unique_lock<std::mutex> lock(slot->mutex);
        slot->answered_cv.wait(lock, [&] { return slot->answered; });
    }
    Py_END_ALLOW_THREADS;
    return callback_result_to_python(cv, slot->env.get(), slot->result, name);
}

PyObject* callback_result_to_python(const Converter& cv, ErlNifEnv* env, ERL_NIF_TERM result, PyObject* name) {
    int arity = 0;
    const ERL_NIF_TERM* parts = nullptr;
    if (enif_get_tuple(env, result, &arity, &parts) && arity == 2 && parts[0] == erl::atoms().ok)
        return to_python(cv, env, parts[1]);
    const ERL_NIF_TERM* detail = nullptr;
    if (arity == 2 && parts[0] == erl::atoms().error && enif_get_tuple(env, parts[1], &arity, &detail) && arity == 2) {
        py::Ref cls = py::Ref::steal(to_python(cv, env, detail[0]));
        py::Ref reason = py::Ref::steal(cls ? to_python(cv, env, detail[1]) : nullptr);
        if (!reason) return nullptr;
        py::Ref exc_args = py::Ref::steal(PyTuple_Pack(2, cls.get(), reason.get()));
        if (!exc_args) return nullptr;
        PyErr_SetObject(cv.types.error, exc_args.get());
        return nullptr;
    }
    if (result == erl::atoms().unknown_function) {
        PyErr_Format(PyExc_NameError, "no Erlang function is registered as %R (py:register_function/2)", name);
        return nullptr;
    }
    PyErr_SetString(PyExc_RuntimeError, "the Erlang process that was to run this callback exited");
    return nullptr;
}

}  // namespace bridge
