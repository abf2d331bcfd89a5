// The final message of a request, and `erlang._Reply`: the Python object through which a
// request whose result comes later (a task on the event loop, a stream) sends that result.
// Precondition for all: on a thread attached to the request's interpreter.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include <memory>
#include <string>

#include "bridge/erlang_module.hpp"
#include "context/request.hpp"
#include "erl/env.hpp"
#include "py/interpreter.hpp"

namespace context {

// What execute() returns when a Python object will reply later (never a valid term).
inline constexpr ERL_NIF_TERM kDeferredReply = 0;

// {error, {TypeName, Message}} for the pending Python exception (taken and cleared); the
// formatted traceback goes to *traceback.
ERL_NIF_TERM take_python_error(ErlNifEnv* env, std::string* traceback);

// Delivers the final message for payload ({ok, V} | ok | {error, R}), built in *owned:
// {Tag, Payload} or {Tag, Payload, Traceback} to the caller, stored in the request's reply slot
// (taking *owned, which is then null) when the caller polls for it, else sent (and *owned cleared);
// for StreamStart requests {py_stream, Tag, done} or {py_stream, Tag, {error, R}} is sent to
// reply_to(). Precondition: the caller won req.try_reply().
void send_final_reply(Request& req, std::unique_ptr<erl::OwnedEnv>& owned, ERL_NIF_TERM payload,
                      const std::string& traceback);

// A new erlang._Reply for req (the type comes from types). The executor marks it deferred when
// the Python hook hands it back: from then on, if it is dropped without replying, the caller
// gets {error, cancelled}.
PyObject* make_reply(const bridge::ErlangTypes& types, const py::InterpreterPtr& interp, const RequestPtr& req);
void mark_deferred(PyObject* reply);

// The type's spec, for the erlang module.
extern PyType_Spec reply_type_spec;

}  // namespace context
