// py_boot.so: the NIF library of module py_boot. It does not link libpython: it loads the
// libpython chosen at run time (py_runtime.erl) into the process with RTLD_GLOBAL before
// py_nif.so is loaded, so that py_nif.so's dependency on the soname is met by that copy and a
// missing or wrong Python is an {error, Reason} instead of a library that cannot load.
// Runs on scheduler threads; touches no Python state (Py_GetVersion is documented as safe
// before initialisation).
#include <dlfcn.h>
#include <erl_nif.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "config.hpp"

namespace {

ERL_NIF_TERM make_binary(ErlNifEnv* env, const char* text) {
    ERL_NIF_TERM term{};
    const size_t size = std::strlen(text);
    unsigned char* data = enif_make_new_binary(env, size, &term);
    std::copy_n(text, size, data);
    return term;
}

ERL_NIF_TERM error_tuple(ErlNifEnv* env, const char* reason) {
    return enif_make_tuple2(env, enif_make_atom(env, "error"), make_binary(env, reason));
}

// build_info() -> #{version, soname, libpython, stdlib, prefix, python_config}: the Python
// py_nif.so was built against, as binaries.
ERL_NIF_TERM build_info(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
    const char* keys[] = {"version", "soname", "libpython", "stdlib", "prefix", "python_config"};
    const char* values[] = {pyconfig::kPythonVersion, pyconfig::kLibpythonSoname, pyconfig::kLibpythonPath,
                            pyconfig::kPythonStdlib,  pyconfig::kPythonPrefix,    pyconfig::kPythonConfig};
    ERL_NIF_TERM map = enif_make_new_map(env);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; ++i) {
        (void)enif_make_map_put(env, map, enif_make_atom(env, keys[i]), make_binary(env, values[i]), &map);
    }
    return map;
}

bool binary_arg(ErlNifEnv* env, ERL_NIF_TERM term, std::string& out) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, term, &bin) || std::memchr(bin.data, 0, bin.size)) return false;
    out.assign(reinterpret_cast<const char*>(bin.data), bin.size);
    return true;
}

// preload(Path, Wanted) -> {ok, Version} | {error, Reason} | {wrong_version, Version}: loads
// the libpython at Path and answers the version it reports (Py_GetVersion, e.g. "3.13.0 (main,
// ...)"). It is first opened privately (RTLD_LOCAL) to read that version; only when it starts
// with Wanted ("3.13.") is it promoted to RTLD_GLOBAL, so a refused Python never puts its
// symbols in the process's global scope.
ERL_NIF_TERM preload(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    std::string path;
    std::string wanted;
    if (!binary_arg(env, argv[0], path) || path.empty() || !binary_arg(env, argv[1], wanted)) {
        return enif_make_badarg(env);
    }
    void* local = dlopen(path.c_str(), RTLD_LAZY | RTLD_LOCAL);
    if (!local) {
        const char* why = dlerror();  // NOLINT(concurrency-mt-unsafe): glibc keeps dlerror's state per thread
        return error_tuple(env, why ? why : "dlopen failed");
    }
    using VersionFn = const char* (*)();
    auto* version_fn = reinterpret_cast<VersionFn>(dlsym(local, "Py_GetVersion"));
    if (!version_fn) {
        (void)dlclose(local);  // nothing of it has run
        return error_tuple(env, "not a libpython (no Py_GetVersion)");
    }
    const std::string version = version_fn();
    if (version.compare(0, wanted.size(), wanted) != 0) {
        (void)dlclose(local);
        return enif_make_tuple2(env, enif_make_atom(env, "wrong_version"), make_binary(env, version.c_str()));
    }
    void* global = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    if (!global) global = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!global) {
        const char* why = dlerror();  // NOLINT(concurrency-mt-unsafe): as above
        (void)dlclose(local);
        return error_tuple(env, why ? why : "dlopen failed");
    }
    // Both handles are kept for the life of the process: the runtime is never unloaded.
    return enif_make_tuple2(env, enif_make_atom(env, "ok"), make_binary(env, version.c_str()));
}

ErlNifFunc boot_funcs[] = {
    {"build_info", 0, build_info, 0},
    {"preload", 2, preload, 0},
};

int upgrade(ErlNifEnv*, void**, void**, ERL_NIF_TERM) { return 0; }

}  // namespace

ERL_NIF_INIT(py_boot, boot_funcs, nullptr, nullptr, upgrade, nullptr)
