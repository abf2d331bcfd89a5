// `erlang._Poller`: the Python face of aio::Poller, used by the selector of ErlangEventLoop
// (priv/_erlang_loop.py). Created and used only on the thread of the context that made it.
#pragma once

#include <Python.h>

namespace aio {

// The type's spec, for the erlang module.
extern PyType_Spec poller_type_spec;

}  // namespace aio
