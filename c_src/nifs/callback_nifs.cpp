// NIFs of Erlang functions called from Python: answers to calls made from threads that are no
// context's (bridge/thread_call.hpp) and the names registered with py:register_function.
#include <string>

#include "bridge/callback_names.hpp"
#include "bridge/thread_call.hpp"
#include "erl/atoms.hpp"
#include "erl/nif_error.hpp"
#include "nifs/nifs.hpp"

namespace nifs {

bool open_callback_resources(ErlNifEnv* env) { return bridge::ThreadCallResource::open(env, "py_thread_call"); }

// thread_callback_reply(Call, Result) -> ok | already_answered: wakes the Python thread
// waiting in erlang.call with Result ({ok, V} | {error, {Class, Reason}} | unknown_function).
ERL_NIF_TERM thread_callback_reply(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        bridge::ThreadCall* call = bridge::ThreadCallResource::get(env, argv[0]);
        if (!call) throw erl::BadArg();
        return call->answer(argv[1]) ? erl::atoms().ok : enif_make_atom(env, "already_answered");
    });
}

// callback_names(Op, Name) -> ok: Op is add or remove (Name a binary), or clear (Name ignored).
ERL_NIF_TERM callback_names(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        char op[8];
        if (enif_get_atom(env, argv[0], op, sizeof op, ERL_NIF_LATIN1) <= 0) throw erl::BadArg();
        std::string which(op);
        if (which == "clear") {
            bridge::callback_names_cleared();
            return erl::atoms().ok;
        }
        ErlNifBinary name;
        if (!enif_inspect_binary(env, argv[1], &name)) throw erl::BadArg();
        std::string text(reinterpret_cast<const char*>(name.data), name.size);
        if (which == "add") bridge::callback_name_added(text);
        else if (which == "remove") bridge::callback_name_removed(text);
        else throw erl::BadArg();
        return erl::atoms().ok;
    });
}

}  // namespace nifs
