// SIGCHLD for event loops (loop.add_signal_handler(signal.SIGCHLD, ...): asyncio's child
// watchers). OTP does not route SIGCHLD to the loops (the BEAM ignores it; its port programs
// are reaped by its forker, erl_child_setup), so while some loop asks for it the process gets
// a handler of its own: async-signal-safe, it only bumps an eventfd (and calls the handler
// that was there before, if any); a relay thread reads the eventfd and calls the relay
// function given to catch_child_signal (aio/signal_router: pending in every loop that asked).
// The handler does not reap: whoever started a child still reads its status. When no loop
// asks any more, the disposition found at install is put back (unless someone replaced ours).
// Precondition: catch_child_signal / release_child_signal under one caller's lock (the
// router's); any thread. The relay thread blocks every signal and lives until the OS process
// ends (the library is never unloaded: upgrade is refused).
#pragma once

namespace aio {

// Installs the handler (SA_RESTART: the BEAM's and Python's system calls restart or retry on
// EINTR as they do for any signal). relay runs on the relay thread after each SIGCHLD (several
// may be coalesced into one). Returns 0 or an errno value; a second call while installed does
// nothing.
int catch_child_signal(void (*relay)());

// Puts the disposition found at install back (if ours is still the one installed).
void release_child_signal();

}  // namespace aio
