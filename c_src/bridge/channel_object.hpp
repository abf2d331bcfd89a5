// `erlang.ChannelRef`: what a py_channel / py_byte_channel resource becomes when it is passed
// to Python (to_python.cpp). The Python classes of priv/_erlang_channel.py (Channel,
// ByteChannel) wrap it. Each object keeps its channel alive and owns, once an event loop asks
// for it, a non-blocking wake-up pipe. Precondition for every function and method: attached
// to the interpreter the object was made in; blocking waits release the GIL.
#pragma once

#include <Python.h>

#include "chan/channel.hpp"
#include "erl/resource.hpp"

namespace bridge {

struct Converter;
struct ErlangTypes;

using ChannelResource = erl::Resource<chan::Channel>;

// The type's spec, for the erlang module.
extern PyType_Spec channel_type_spec;

// A new erlang.ChannelRef for channel, or nullptr with an exception set.
PyObject* make_channel_object(const Converter& cv, chan::Channel* channel);

// When obj is an erlang.ChannelRef: its channel's term (the reference py_channel:new/0,1 gave)
// in *out, and true. False, with no exception set, for any other object.
bool get_channel_term(const ErlangTypes& types, PyObject* obj, ErlNifEnv* env, ERL_NIF_TERM* out);

}  // namespace bridge
