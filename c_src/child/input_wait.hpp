// How the child waits for its next frame: a short, self-limiting spin before it blocks.
//
// A round trip to the parent wakes two sleeping threads (this process in read, a BEAM scheduler
// in its poll). On an idle virtual machine a sleeping CPU takes tens of microseconds to wake,
// more than the work of a small call; a child that polls its pipe for a few microseconds after
// it answered finds the next request of a caller that calls in a loop without sleeping, and its
// CPU stays awake for the parent's next write. The spin stops as soon as the CPU is contended
// (another thread ran when the child yielded) and is switched off while requests arrive too late
// for it to catch them, so that it costs a loaded or a quiet node nothing.
//
// Thread: the child's main thread, attached (Python calls wait_readable).
#pragma once

#include <Python.h>

namespace child {

// _erlang_etf.wait_readable(fd): returns None once fd has input (or end of file), after the
// spin and then a blocking poll. Signals run their Python handlers while it blocks; an exception
// they raise (KeyboardInterrupt) is raised here. OSError when poll fails.
PyObject* wait_readable(PyObject* module, PyObject* fd);

// The spin's counters as a dict (for tests and tuning): spins that found input, spins that
// gave up, spins cut short by a contended CPU, blocking waits, and the budget in ns now.
PyObject* wait_stats(PyObject* module, PyObject* unused);

}  // namespace child
