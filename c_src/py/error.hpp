// Capturing the pending Python exception as plain data.
// Precondition: the calling thread is attached and an exception is set.
#pragma once

#include <string>

namespace py {

struct ExceptionInfo {
    std::string type_name;  // type(exc).__name__
    std::string message;    // str(exc), UTF-8
    std::string traceback;  // traceback.format_exception(exc), joined; may be empty
};

// Takes (and clears) the current exception. Never throws; never leaves an exception set.
ExceptionInfo take_exception();

}  // namespace py
