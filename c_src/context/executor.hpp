// Running one request on a context's worker thread and building its reply.
// Precondition: on the context's worker thread, attached to scope.interp.
#pragma once

#include <erl_nif.h>

#include <string>
#include <vector>

#include "bridge/erlang_module.hpp"
#include "context/name_cache.hpp"
#include "context/namespace.hpp"
#include "context/request.hpp"
#include "py/interpreter.hpp"
#include "py/ref.hpp"

namespace context {

struct WorkerScope {
    const bridge::ErlangTypes& types;
    const py::InterpreterPtr& interp;
    Namespace& shared_ns;
    PyObject* code_cache;  // dict: (start symbol, source bytes) -> code object; bounded
    NameCache& names;      // module and function names of calls
    // Arguments and results released only after the reply is sent: freeing a big one (100,000
    // ints) takes as long as converting it, and the caller need not wait for that.
    std::vector<py::Ref>& after_reply;
};

// The reply payload, built in msg_env: {ok, Value} | ok | {error, Reason}. For a Python
// exception Reason is {TypeName, Message} and *traceback receives the formatted traceback.
// kDeferredReply (context/reply.hpp): a Python object will send the reply later.
ERL_NIF_TERM execute(const WorkerScope& scope, const RequestPtr& request, ErlNifEnv* msg_env, std::string* traceback);

}  // namespace context
