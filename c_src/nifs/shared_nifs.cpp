// NIFs of the SharedDict (py:shared_dict_*) and of py_buffer. Scheduler threads (the large
// writes on a dirty CPU scheduler); each takes a dict's or buffer's lock for a copy at most.
#include <limits>

#include "bridge/buffer_object.hpp"
#include "bridge/shared_dict_object.hpp"
#include "erl/atoms.hpp"
#include "erl/nif_error.hpp"
#include "nifs/nifs.hpp"

namespace nifs {
namespace {

using bridge::ByteBufferResource;
using bridge::SharedDictResource;
using Status = shared::SharedDict::Status;

ERL_NIF_TERM g_closed, g_pinned;

// The owner of a SharedDict died: the dict goes (docs/shared-dict.md).
void shared_dict_owner_down(ErlNifEnv*, void* obj, ErlNifPid*, ErlNifMonitor*) {
    SharedDictResource::from_slot(obj)->destroy();
}

// The live dict behind a term; badarg for anything else and for a destroyed dict (as
// erlang_python 4.1).
shared::SharedDict& live_dict(ErlNifEnv* env, ERL_NIF_TERM term) {
    shared::SharedDict* dict = SharedDictResource::get(env, term);
    if (!dict || dict->destroyed()) throw erl::BadArg();
    return *dict;
}

void check(Status status) {
    if (status == Status::destroyed) throw erl::BadArg();
}

shared::ByteBuffer& buffer(ErlNifEnv* env, ERL_NIF_TERM term) {
    shared::ByteBuffer* buf = ByteBufferResource::get(env, term);
    if (!buf) throw erl::BadArg();
    return *buf;
}

}  // namespace

bool open_shared_resources(ErlNifEnv* env) {
    g_closed = enif_make_atom(env, "closed");
    g_pinned = enif_make_atom(env, "pinned");
    return SharedDictResource::open(env, "py_shared_dict", &shared_dict_owner_down) &&
           ByteBufferResource::open(env, "py_buffer");
}

// shared_dict_new() -> {ok, Handle}: owned (and destroyed on exit) by the calling process.
ERL_NIF_TERM shared_dict_new(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
    return erl::guarded(env, [&] {
        auto dict = erl::ResourcePtr<shared::SharedDict>::adopt(SharedDictResource::make());
        ErlNifPid self;
        if (!enif_self(env, &self) ||
            enif_monitor_process(env, SharedDictResource::slot_of(dict.get()), &self, nullptr) != 0)
            throw erl::BadArg();
        return enif_make_tuple2(env, erl::atoms().ok, SharedDictResource::term(env, dict.get()));
    });
}

// shared_dict_get(Handle, Key, Default) -> Value | Default.
ERL_NIF_TERM shared_dict_get(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        ERL_NIF_TERM value{};
        Status status = live_dict(env, argv[0]).get(env, argv[1], &value);
        check(status);
        return status == Status::ok ? value : argv[2];
    });
}

// shared_dict_set(Handle, Key, Value) -> ok.
ERL_NIF_TERM shared_dict_set(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        check(live_dict(env, argv[0]).set(env, argv[1], argv[2]));
        return erl::atoms().ok;
    });
}

// shared_dict_del(Handle, Key) -> ok (also when Key was not there).
ERL_NIF_TERM shared_dict_del(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        check(live_dict(env, argv[0]).erase(env, argv[1]));
        return erl::atoms().ok;
    });
}

// shared_dict_keys(Handle) -> [Key].
ERL_NIF_TERM shared_dict_keys(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        ERL_NIF_TERM keys{};
        check(live_dict(env, argv[0]).keys(env, &keys));
        return keys;
    });
}

// shared_dict_destroy(Handle) -> ok; idempotent.
ERL_NIF_TERM shared_dict_destroy(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        shared::SharedDict* dict = SharedDictResource::get(env, argv[0]);
        if (!dict) throw erl::BadArg();
        dict->destroy();
        return erl::atoms().ok;
    });
}

// buffer_new(Capacity) -> {ok, Buffer}.
ERL_NIF_TERM buffer_new(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        ErlNifUInt64 capacity = 0;
        if (!enif_get_uint64(env, argv[0], &capacity) || capacity > std::numeric_limits<size_t>::max() / 2)
            throw erl::BadArg();
        auto buf = erl::ResourcePtr<shared::ByteBuffer>::adopt(ByteBufferResource::make(static_cast<size_t>(capacity)));
        return enif_make_tuple2(env, erl::atoms().ok, ByteBufferResource::term(env, buf.get()));
    });
}

// buffer_write(Buffer, Binary) -> ok | {error, closed | pinned}.
ERL_NIF_TERM buffer_write(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        shared::ByteBuffer& buf = buffer(env, argv[0]);
        ErlNifBinary bin;
        if (!enif_inspect_binary(env, argv[1], &bin)) throw erl::BadArg();
        switch (buf.write(bin.data, bin.size)) {
            case shared::ByteBuffer::WriteResult::ok: return erl::atoms().ok;
            case shared::ByteBuffer::WriteResult::closed: throw erl::ErrorResult(g_closed);
            case shared::ByteBuffer::WriteResult::pinned: throw erl::ErrorResult(g_pinned);
        }
        return erl::atoms().ok;
    });
}

// buffer_close(Buffer) -> ok: end of data; idempotent.
ERL_NIF_TERM buffer_close(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        buffer(env, argv[0]).end();
        return erl::atoms().ok;
    });
}

}  // namespace nifs
