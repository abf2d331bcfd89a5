// NIFs on plain file descriptors: py:dup_fd/1 hands Python a copy of a descriptor an Erlang
// port or socket owns. Scheduler threads only; no Python involved.
#include <fcntl.h>

#include <cerrno>

#include "erl/atoms.hpp"
#include "erl/nif_error.hpp"
#include "nifs/nifs.hpp"

namespace nifs {

namespace {

// The errno name in lower case (ebadf, emfile, ...), as inet and file report them.
ERL_NIF_TERM errno_atom(ErlNifEnv* env, int err) {
    switch (err) {
        case EBADF: return enif_make_atom(env, "ebadf");
        case EMFILE: return enif_make_atom(env, "emfile");
        case ENFILE: return enif_make_atom(env, "enfile");
        case EINVAL: return enif_make_atom(env, "einval");
        case ENOMEM: return enif_make_atom(env, "enomem");
        default: return enif_make_int(env, err);
    }
}

}  // namespace

// dup_fd(Fd) -> {ok, NewFd} | {error, Reason}: a close-on-exec duplicate of Fd, owned by
// whoever receives it (Python's socket.socket(fileno=NewFd) closes it).
ERL_NIF_TERM dup_fd(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        int fd = -1;
        if (!enif_get_int(env, argv[0], &fd)) throw erl::BadArg();
        if (fd < 0) throw erl::ErrorResult(enif_make_atom(env, "ebadf"));
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (copy < 0) throw erl::ErrorResult(errno_atom(env, errno));
        return enif_make_tuple2(env, erl::atoms().ok, enif_make_int(env, copy));
    });
}

}  // namespace nifs
