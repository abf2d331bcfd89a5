// priv/py_child: the OS process an isolated context runs its Python in (docs/contexts.md).
//
// Started by py_isolated.erl with open_port({spawn_executable, ...}, [{packet, 4}, ...]): the
// port's pipes are this process's fds 0 and 1. Before Python starts, they move to private
// descriptors (Python's own stdin becomes /dev/null, its stdout and stderr the log file the
// parent reads after a crash), the process gets its own process group (so the parent can kill
// whatever it forks) and the limits it was given; then priv/_erlang_isolated.py serves requests.
//
// Thread: single-threaded program; Python runs on the main thread, with its signal handlers on
// (SIGINT raises KeyboardInterrupt in the running request).
//
// Arguments: PRIV_DIR PYTHON_HOME STDERR_FILE MEMORY_BYTES CPU_SECONDS OPEN_FILES PROCESSES
// (PYTHON_HOME "" for the build's Python; a limit 0 for none). The environment variable
// ERLANG_PYTHON_CHILD_NETWORK=none puts the process in an empty network namespace first
// (net_isolation.hpp); it exits with kExitNetwork when the kernel refuses.
#include <Python.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <csignal>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "config.hpp"
#include "etf_codec.hpp"
#include "net_isolation.hpp"

namespace {

constexpr int kArgCount = 8;
constexpr int kExitUsage = 64;    // bad arguments
constexpr int kExitSetup = 70;    // descriptors or limits could not be set up
constexpr int kExitPython = 71;   // Python did not start or the server raised
constexpr int kExitNetwork = 72;  // network isolation asked for and refused by the kernel

[[noreturn]] void fail(int code, const char* what) {
    std::perror(what);
    std::_Exit(code);
}

constexpr const char* kNetworkEnv = "ERLANG_PYTHON_CHILD_NETWORK";

// Leaves the network when the parent asked for it (the variable is not passed on to Python).
void isolate_network() {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): before Python starts, the program has one thread
    const char* network = std::getenv(kNetworkEnv);
    bool wanted = network != nullptr && std::string(network) == "none";
    unsetenv(kNetworkEnv);  // NOLINT(concurrency-mt-unsafe): as above
    if (wanted && !child::leave_network()) fail(kExitNetwork, "py_child: no network namespace");
}

// Moves fd to a descriptor above 2 that is closed on exec, and returns it.
int move_high(int fd) {
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (moved < 0) fail(kExitSetup, "py_child: F_DUPFD_CLOEXEC");
    return moved;
}

// The protocol pipes leave fds 0 and 1; Python's stdio goes to the log file.
void redirect_stdio(const char* stderr_file, int& proto_in, int& proto_out) {
    int log = open(stderr_file, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0) fail(kExitSetup, "py_child: open stderr file");
    proto_in = move_high(0);
    proto_out = move_high(1);
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0) fail(kExitSetup, "py_child: dup2");
    if (null > 2) close(null);
    close(log);
}

void set_limit(int resource, unsigned long long soft, unsigned long long hard, const char* name) {
    if (soft == 0) return;
    struct rlimit lim {};
    lim.rlim_cur = static_cast<rlim_t>(soft);
    lim.rlim_max = static_cast<rlim_t>(hard);
    if (setrlimit(resource, &lim) != 0) {
        std::fprintf(stderr, "py_child: setrlimit %s failed\n", name);
        std::_Exit(kExitSetup);
    }
}

unsigned long long number(const char* text) {
    char* end = nullptr;
    unsigned long long value = std::strtoull(text, &end, 10);
    if (end == text || *end != '\0') {
        std::fprintf(stderr, "py_child: not a number: %s\n", text);
        std::_Exit(kExitUsage);
    }
    return value;
}

void apply_limits(char** argv) {
    unsigned long long memory = number(argv[4]);
    unsigned long long cpu = number(argv[5]);
    // CPU: SIGXCPU at the soft limit, SIGKILL one second later if it is caught.
    set_limit(RLIMIT_AS, memory, memory, "memory");
    set_limit(RLIMIT_CPU, cpu, cpu + 1, "cpu_seconds");
    set_limit(RLIMIT_NOFILE, number(argv[6]), number(argv[6]), "open_files");
    set_limit(RLIMIT_NPROC, number(argv[7]), number(argv[7]), "processes");
}

bool start_python(const char* home) {
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 1;  // SIGINT -> KeyboardInterrupt: how a request is interrupted
    config.parse_argv = 0;
    config.user_site_directory = 0;
    config.buffered_stdio = 0;  // lines reach the log file before a crash
    if (PyImport_AppendInittab("_erlang_etf", &etf::init_module) != 0) return false;
    PyStatus st = home[0] == '\0' ? PyConfig_SetBytesString(&config, &config.program_name, pyconfig::kPythonExecutable)
                                  : PyConfig_SetBytesString(&config, &config.home, home);
    if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        std::fprintf(stderr, "py_child: Python did not start: %s\n", st.err_msg ? st.err_msg : "?");
        return false;
    }
    return true;
}

// sys.path[0:0] = [priv]; _erlang_isolated.serve(proto_in, proto_out). Attached (main thread).
int serve(const char* priv, int proto_in, int proto_out) {
    PyObject* path = PySys_GetObject("path");  // borrowed
    PyObject* dir = PyUnicode_DecodeFSDefault(priv);
    if (!path || !dir || PyList_Insert(path, 0, dir) != 0) {
        Py_XDECREF(dir);
        PyErr_Print();
        return kExitPython;
    }
    Py_DECREF(dir);
    PyObject* server = PyImport_ImportModule("_erlang_isolated");
    PyObject* result = server ? PyObject_CallMethod(server, "serve", "ii", proto_in, proto_out) : nullptr;
    Py_XDECREF(server);
    if (!result) {
        PyErr_Print();
        return kExitPython;
    }
    Py_DECREF(result);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != kArgCount) {
        std::fprintf(stderr, "usage: py_child PRIV HOME STDERR MEMORY CPU OPEN_FILES PROCESSES\n");
        return kExitUsage;
    }
    // Die with the node: the port's pipes close too, but a child stuck in C code never reads them.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return kExitSetup;
    setpgid(0, 0);  // the parent kills the whole group: what Python forks goes with it
    int proto_in = -1;
    int proto_out = -1;
    redirect_stdio(argv[3], proto_in, proto_out);
    isolate_network();
    apply_limits(argv);
    if (!start_python(argv[2])) return kExitPython;
    // Python's exit code: 0 when the parent closed the pipe. No Py_Finalize: the parent may be
    // gone, and extension modules may not finalise cleanly; the OS frees everything.
    int code = serve(argv[1], proto_in, proto_out);
    std::fflush(nullptr);
    std::_Exit(code);
}
