// NIFs of py_channel and py_byte_channel: make, send to, close and describe a channel
// (chan/channel.hpp). Scheduler threads; none blocks: a full bounded channel answers `busy`.
#include "bridge/channel_object.hpp"
#include "erl/atoms.hpp"
#include "erl/nif_error.hpp"
#include "nifs/nifs.hpp"

namespace nifs {
namespace {

struct ChannelAtoms {
    ERL_NIF_TERM terms, bytes, busy, closed, empty, size, max_size, length, ready;
};
ChannelAtoms g_atoms;  // written once by the load callback, read-only afterwards

chan::Channel* channel_arg(ErlNifEnv* env, ERL_NIF_TERM term) {
    chan::Channel* channel = bridge::ChannelResource::get(env, term);
    if (!channel) throw erl::BadArg();
    return channel;
}

// The bytes a message counts against max_size: a binary's size for a byte channel, the size
// of the term's external format for a term channel.
size_t message_size(ErlNifEnv* env, chan::Kind kind, ERL_NIF_TERM term) {
    ErlNifBinary bin;
    if (kind == chan::Kind::bytes) {
        if (!enif_inspect_binary(env, term, &bin)) throw erl::BadArg();
        return bin.size;
    }
    if (!enif_term_to_binary(env, term, &bin)) throw std::bad_alloc();
    size_t size = bin.size;
    enif_release_binary(&bin);
    return size;
}

}  // namespace

bool open_channel_resources(ErlNifEnv* env) {
    g_atoms = {enif_make_atom(env, "terms"),    enif_make_atom(env, "bytes"),  enif_make_atom(env, "busy"),
               enif_make_atom(env, "closed"),   enif_make_atom(env, "empty"),  enif_make_atom(env, "size"),
               enif_make_atom(env, "max_size"), enif_make_atom(env, "length"), enif_make_atom(env, "ready")};
    return bridge::ChannelResource::open(env, "py_channel");
}

// channel_new(terms | bytes, MaxSize) -> {ok, Channel}. MaxSize 0: unbounded.
ERL_NIF_TERM channel_new(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        chan::Kind kind = chan::Kind::terms;
        if (argv[0] == g_atoms.terms) kind = chan::Kind::terms;
        else if (argv[0] == g_atoms.bytes) kind = chan::Kind::bytes;
        else throw erl::BadArg();
        ErlNifUInt64 max_size = 0;
        if (!enif_get_uint64(env, argv[1], &max_size)) throw erl::BadArg();
        auto channel =
            erl::ResourcePtr<chan::Channel>::adopt(bridge::ChannelResource::make(kind, static_cast<size_t>(max_size)));
        return enif_make_tuple2(env, erl::atoms().ok, bridge::ChannelResource::term(env, channel.get()));
    });
}

// channel_send(Channel, Term) -> ok | busy | {error, closed}. badarg for a byte channel and a
// Term that is not a binary.
ERL_NIF_TERM channel_send(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        chan::Channel* channel = channel_arg(env, argv[0]);
        size_t size = message_size(env, channel->kind(), argv[1]);
        switch (channel->send(argv[1], size, env)) {
            case chan::SendResult::ok: return erl::atoms().ok;
            case chan::SendResult::busy: return g_atoms.busy;
            case chan::SendResult::closed: throw erl::ErrorResult(g_atoms.closed);
            case chan::SendResult::no_memory: throw std::bad_alloc();
        }
        throw erl::BadArg();
    });
}

// channel_close(Channel) -> ok.
ERL_NIF_TERM channel_close(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        channel_arg(env, argv[0])->close(env);
        return erl::atoms().ok;
    });
}

// channel_info(Channel) -> #{size, max_size, closed}.
ERL_NIF_TERM channel_info(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        chan::Info info = channel_arg(env, argv[0])->info();
        ERL_NIF_TERM keys[] = {g_atoms.size, g_atoms.max_size, g_atoms.closed};
        ERL_NIF_TERM values[] = {enif_make_uint64(env, info.size), enif_make_uint64(env, info.max_size),
                                 info.closed ? erl::atoms().true_ : erl::atoms().false_};
        ERL_NIF_TERM map{};
        if (!enif_make_map_from_arrays(env, keys, values, 3, &map)) throw erl::BadArg();
        return map;
    });
}

// channel_try_receive(Channel) -> {ok, Term} | {error, empty} | {error, closed}: the oldest
// message, taken from Erlang (py_byte_channel:try_receive/1).
ERL_NIF_TERM channel_try_receive(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        chan::Channel* channel = channel_arg(env, argv[0]);
        chan::Message msg;
        switch (channel->try_pop(&msg)) {
            case chan::PopResult::empty: throw erl::ErrorResult(g_atoms.empty);
            case chan::PopResult::closed: throw erl::ErrorResult(g_atoms.closed);
            case chan::PopResult::message: break;
        }
        ERL_NIF_TERM term = enif_make_copy(env, msg.term);
        channel->release(msg);
        return enif_make_tuple2(env, erl::atoms().ok, term);
    });
}

// channel_notify(Channel, Msg) -> ok | ready: `ready` when a message or the close is there
// now; else `ok`, and the next send or close sends Msg to the caller, once.
ERL_NIF_TERM channel_notify(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        chan::Channel* channel = channel_arg(env, argv[0]);
        ErlNifPid self;
        if (!enif_self(env, &self)) throw erl::BadArg();
        return channel->arm_pid(self, argv[1]) ? g_atoms.ready : erl::atoms().ok;
    });
}

// channel_unnotify(Channel, Msg) -> ok: forgets the caller's channel_notify with Msg.
ERL_NIF_TERM channel_unnotify(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return erl::guarded(env, [&] {
        chan::Channel* channel = channel_arg(env, argv[0]);
        ErlNifPid self;
        if (!enif_self(env, &self)) throw erl::BadArg();
        channel->disarm_pid(self, argv[1]);
        return erl::atoms().ok;
    });
}

}  // namespace nifs
