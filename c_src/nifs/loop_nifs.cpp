// NIFs of the event loop support: the context's owner process hands enif_select
// notifications back to the poller that asked for them.
#include "aio/poller.hpp"
#include "aio/signal_router.hpp"
#include "erl/atoms.hpp"
#include "erl/nif_error.hpp"
#include "nifs/nifs.hpp"

namespace nifs {

// fd_ready(Watch, ready_input | ready_output) -> ok: from {select, Watch, _, Mode}.
ERL_NIF_TERM fd_ready(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        aio::FdWatch* w = aio::FdWatchResource::get(env, argv[0]);
        if (!w) throw erl::BadArg();
        const erl::Atoms& a = erl::atoms();
        int mode = argv[1] == a.ready_input ? aio::kRead : argv[1] == a.ready_output ? aio::kWrite : 0;
        if (!mode) throw erl::BadArg();
        w->poller->on_ready(w, mode);
        return a.ok;
    });
}

// loop_signal(SignalName) -> N: OS signal SignalName (sigterm...) arrived (py_signal_handler,
// from erl_signal_server); N loops asked for it. sigchld too (as if the node had received one;
// child watchers only poll their children on it). badarg for another signal.
ERL_NIF_TERM loop_signal(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        char name[16];
        if (enif_get_atom(env, argv[0], name, sizeof name, ERL_NIF_LATIN1) <= 0) throw erl::BadArg();
        int signum = aio::loop_signal_number(name);
        if (!signum) throw erl::BadArg();
        return enif_make_uint(env, aio::deliver_signal(signum));
    });
}

}  // namespace nifs
