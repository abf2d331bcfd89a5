#include "py/subinterpreter.hpp"

#include <mutex>
#include <utility>

#include "py/attached.hpp"
#include "py/runtime.hpp"

namespace py {
namespace {
std::mutex g_lifecycle_mutex;  // serialises interpreter creation and destruction
}

#if PY_VERSION_HEX >= 0x030D0000

bool create_owngil_interpreter(OwnGilInterpreter& out, std::string& error) {
    std::lock_guard<std::mutex> lock(g_lifecycle_mutex);
    out.main_tstate = PyThreadState_New(main_interpreter());
    if (!out.main_tstate) {
        error = "cannot create a thread state";
        return false;
    }
    // Deleted at the guard's end unless the new interpreter took its place (dismissed below).
    Attached main = Attached::deleting(out.main_tstate);
    PyInterpreterConfig config = {};
    config.use_main_obmalloc = 0;
    config.allow_fork = 0;  // os.fork() raises RuntimeError
    config.allow_exec = 1;  // subprocess works
    config.allow_threads = 1;
    config.allow_daemon_threads = 0;           // Py_EndInterpreter must be able to join them
    config.check_multi_interp_extensions = 1;  // unsafe extension modules raise ImportError
    config.gil = PyInterpreterConfig_OWN_GIL;
    PyThreadState* sub = nullptr;
    PyStatus status = Py_NewInterpreterFromConfig(&sub, &config);
    if (PyStatus_Exception(status) || !sub) {
        // On failure the main thread state is current again: main's end deletes it.
        error = status.err_msg ? status.err_msg : "Py_NewInterpreterFromConfig failed";
        out.main_tstate = nullptr;
        return false;
    }
    // Creating an OWN_GIL interpreter detached main_tstate (releasing the main GIL) and
    // attached sub; main_tstate is kept for end_owngil_interpreter.
    Attached::dismiss(std::move(main));
    out.tstate = sub;
    return true;
}

void end_owngil_interpreter(OwnGilInterpreter& interp) {
    std::lock_guard<std::mutex> lock(g_lifecycle_mutex);
    Py_EndInterpreter(interp.tstate);  // leaves no thread state attached
    interp.tstate = nullptr;
    { Attached main = Attached::deleting(interp.main_tstate); }  // attached only to be deleted
    interp.main_tstate = nullptr;
}

#else

bool create_owngil_interpreter(OwnGilInterpreter&, std::string& error) {
    // 3.12.1 aborts later after importing _asyncio/hashlib/datetime in an isolated
    // interpreter (CPython gh-119213 family); 3.11 has no per-interpreter GIL.
    error = "OWN_GIL contexts need Python 3.13 or newer";
    return false;
}

void end_owngil_interpreter(OwnGilInterpreter&) {}

#endif

}  // namespace py
