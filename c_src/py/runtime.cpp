#include "py/runtime.hpp"

#include <dlfcn.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX sigaction, which <csignal> need not declare

#include "config.hpp"
#include "py/arena_cache.hpp"
#include "py/ref.hpp"

namespace py {
namespace {

PyInterpreterState* g_main_interp = nullptr;  // set once in start_runtime (load callback)
std::string g_priv_dir;                       // set once in start_runtime (load callback)

bool set_config_string(PyConfig& config, wchar_t** field, const char* value, std::string& error) {
    PyStatus st = PyConfig_SetBytesString(&config, field, value);
    if (PyStatus_Exception(st)) {
        error = st.err_msg ? st.err_msg : "PyConfig_SetBytesString failed";
        return false;
    }
    return true;
}

bool add_to_sys_path(const std::string& dir) {
    PyObject* path = PySys_GetObject("path");  // borrowed
    if (!path) return false;
    Ref entry = Ref::steal(PyUnicode_DecodeFSDefault(dir.c_str()));
    if (!entry) return false;
    int present = PySequence_Contains(path, entry.get());
    if (present < 0) return false;
    return present == 1 || PyList_Insert(path, 0, entry.get()) == 0;
}

// Extension modules whose import in several OWN_GIL interpreters at once corrupts memory unless
// the main interpreter imported them first (docs/owngil.md has the stress test behind this).
//   _datetime: static types initialised concurrently (CPython gh-136421, gh-136423; 3.13.0).
constexpr const char* kImportFirstInMain[] = {"_datetime"};

void import_first_in_main() {
    for (const char* name : kImportFirstInMain) {
        Ref mod = Ref::steal(PyImport_ImportModule(name));
        if (!mod) PyErr_Clear();  // not built on this Python: nothing to protect
    }
}

// The BEAM ignores SIGCHLD, which makes the kernel reap every child at once: Python's
// subprocess then reports exit status 0 for any child and asyncio's watchers 255. The BEAM
// starts its own external programs through its forker process (erl_child_setup), so the
// default disposition only lets Python (subprocess, asyncio) read the status of what it
// started. Skipped if someone installed a handler.
void let_python_reap_its_children() {
    struct sigaction current {};
    if (sigaction(SIGCHLD, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) {
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        (void)sigaction(SIGCHLD, &dfl, nullptr);
    }
}

// "3.13.0 (main, ...)" and "3.13.1" are the same minor version.
bool same_minor(const std::string& version, const std::string& built) {
    const size_t first = built.find('.');
    const size_t second = built.find('.', first + 1);
    const std::string prefix = built.substr(0, second) + ".";
    return version.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

bool start_runtime(const std::string& priv_dir, PyObject* (*init_erlang)(), std::string& error,
                   const std::string& python_home) {
    if (g_main_interp) return true;
    // The NIF library itself is loaded RTLD_LOCAL; promote libpython to the global namespace.
    // By soname: the copy already loaded (py_boot.so loads the one chosen at run time, and it
    // met this library's dependency) is the one promoted; the build path is the fallback.
    if (!dlopen(pyconfig::kLibpythonSoname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) &&
        !dlopen(pyconfig::kLibpythonPath, RTLD_NOW | RTLD_GLOBAL)) {
        const char* why = dlerror();  // NOLINT(concurrency-mt-unsafe): glibc keeps dlerror's state per thread
        error = std::string("cannot load ") + pyconfig::kLibpythonPath + ": " + (why ? why : "?");
        return false;
    }
    // Py_GetVersion is resolved like every other symbol of this library: when another Python
    // was made global first (a py_boot.so of another build), it is that one's; refuse it.
    const std::string running = Py_GetVersion();
    if (!same_minor(running, pyconfig::kPythonVersion)) {
        error = std::string("this library was built against Python ") + pyconfig::kPythonVersion +
                " but the process has loaded Python " + running.substr(0, running.find(' ')) +
                " (py_boot.so and py_nif.so from different builds? rebuild erlang_python)";
        return false;
    }
    if (Py_IsInitialized()) {
        error = "Python was already initialised in this OS process by someone else";
        return false;
    }
    if (PyImport_AppendInittab("erlang", init_erlang) != 0) {
        error = "cannot register the erlang module";
        return false;
    }
    install_arena_cache();
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;  // the BEAM owns SIGINT/SIGCHLD
    config.parse_argv = 0;
    config.user_site_directory = 0;
    // A chosen home (a bundled or relocated Python) is where the standard library is; without
    // one, CPython finds it from the executable of the Python this library was built against.
    bool ok = python_home.empty() ? set_config_string(config, &config.program_name, pyconfig::kPythonExecutable, error)
                                  : set_config_string(config, &config.home, python_home.c_str(), error);
    if (ok) {
        PyStatus st = Py_InitializeFromConfig(&config);
        if (PyStatus_Exception(st)) {
            error = st.err_msg ? st.err_msg : "Py_InitializeFromConfig failed";
            ok = false;
        }
    }
    PyConfig_Clear(&config);
    if (!ok) return false;
    let_python_reap_its_children();

    g_priv_dir = priv_dir;
    if (!prepare_current_interpreter()) {
        PyErr_Clear();
        error = "cannot add priv dir to sys.path";
    }
    import_first_in_main();
    g_main_interp = PyInterpreterState_Main();
    // This (scheduler) thread gives up the GIL for good; contexts attach their own thread states.
    PyEval_SaveThread();
    return error.empty();
}

bool prepare_current_interpreter() { return g_priv_dir.empty() || add_to_sys_path(g_priv_dir); }

PyInterpreterState* main_interpreter() { return g_main_interp; }

bool runtime_started() { return g_main_interp != nullptr; }

const char* runtime_version() { return pyconfig::kPythonVersion; }

}  // namespace py
