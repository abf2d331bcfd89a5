// NIFs of the event loop support: the context's owner process hands enif_select
// notifications back to the poller that asked for them.
#include "aio/poller.hpp"
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

}  // namespace nifs
