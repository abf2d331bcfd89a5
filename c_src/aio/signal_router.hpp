// Which event loops asked for which OS signal (loop.add_signal_handler). OTP owns the node's
// signal handling: a signal routed with os:set_signal(Sig, handle) reaches erl_signal_server,
// whose py_signal_handler calls the loop_signal NIF, which marks the signal pending in every
// poller that asked and wakes its context (Poller::on_signal). SIGCHLD, which OTP leaves to the
// BEAM, is caught by a handler of our own while some loop asks for it (aio/child_signal.hpp).
// Process-wide; any thread.
#pragma once

#include "aio/poller.hpp"
#include "py/serial.hpp"

namespace aio {

// The signals OTP routes (os:set_signal/2) that a loop may handle; the signal's number for an
// Erlang name (sigterm...), 0 when OTP does not route it.
int routable_signal(const char* erlang_name);
bool is_routable(int signum);
// The signals a loop may handle: those OTP routes, and SIGCHLD (caught here).
bool is_loop_signal(int signum);
// The number of a signal a loop may handle, by Erlang name (sigchld too); 0 if none.
int loop_signal_number(const char* erlang_name);

// A poller's interest in signum (is_loop_signal); context: the context whose thread made the
// poller. Returns 0 or an errno value (SIGCHLD's handler could not be installed); may throw
// std::bad_alloc.
int subscribe_signal(int signum, const PollerPtr& poller, py::Serial context);
void unsubscribe_signal(int signum, const Poller* poller);
void unsubscribe_signals(const Poller* poller);
// The context's thread is exiting: its loops (closed or not) ask for nothing any more.
void unsubscribe_signals_of(py::Serial context);

// Marks signum pending in every poller that asked for it; returns how many.
unsigned deliver_signal(int signum);

}  // namespace aio
