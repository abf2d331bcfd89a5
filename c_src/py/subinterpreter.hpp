// Creating and ending OWN_GIL subinterpreters (PEP 684), Python 3.13+.
// Precondition for both functions: called on the thread that will own (or owns) the
// interpreter, with no thread state attached. Creation and destruction are serialised by one
// process-wide mutex (concurrent creation corrupted memory on 3.12). Lock order: that mutex
// first, then the main interpreter's GIL.
#pragma once

#include <Python.h>

#include <string>

namespace py {

struct OwnGilInterpreter {
    PyThreadState* main_tstate = nullptr;  // this thread's state on the main interpreter
    PyThreadState* tstate = nullptr;       // this thread's state on the new interpreter
};

// Creates an isolated interpreter with its own GIL and leaves its thread state attached.
// False with a reason when this Python cannot (before 3.13) or creation failed.
bool create_owngil_interpreter(OwnGilInterpreter& out, std::string& error);

// Ends the interpreter whose thread state is attached (out.tstate) and releases main_tstate.
// Leaves no thread state attached.
void end_owngil_interpreter(OwnGilInterpreter& interp);

}  // namespace py
