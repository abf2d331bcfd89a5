// The NIF library entry: load (atoms, resource types, CPython), the function table, and a
// refusal to upgrade (extension modules cannot be re-initialised; see architecture notes).
#include <erl_nif.h>

#include <memory>
#include <string>

#include "aio/poller.hpp"
#include "aio/poller_object.hpp"
#include "bridge/erlang_module.hpp"
#include "bridge/host.hpp"
#include "context/context.hpp"
#include "context/reply.hpp"
#include "erl/atoms.hpp"
#include "erl/map_builder.hpp"
#include "nifs/nifs.hpp"
#include "py/runtime.hpp"

namespace {

std::string iolist_string(ErlNifEnv* env, ERL_NIF_TERM info) {
    ErlNifBinary bin;
    if (enif_inspect_iolist_as_binary(env, info, &bin)) return {reinterpret_cast<char*>(bin.data), bin.size};
    return {};
}

// load_info is {PrivDir, PythonHome} (PythonHome <<>> for the build's own Python; see
// py_runtime.erl) or, as before, PrivDir alone. A Python that fails to start does not fail the
// load: the reason is kept for runtime_status/0 and context_new refuses to start contexts, so
// the application reports it as {error, Reason} instead of "load-call unsuccessful".
int load(ErlNifEnv* env, void**, ERL_NIF_TERM load_info) {
    erl::init_atoms(env);
    context::TickRate::start();
    if (!nifs::open_context_resources(env) || !nifs::open_info_resources(env) || !nifs::open_callback_resources(env) ||
        !nifs::open_channel_resources(env) || !aio::open_resources(env) || !erl::open_map_builder_resources(env))
        return 1;
    if (!nifs::open_shared_resources(env)) return 1;
    if (!nifs::open_isolated_ref_resources(env)) return 1;
    // The upper layers' types in the `erlang` module (bridge/ does not include them).
    if (!bridge::add_module_type(&context::reply_type_spec) || !bridge::add_module_type(&aio::poller_type_spec))
        return 1;
    int arity = 0;
    const ERL_NIF_TERM* parts = nullptr;
    std::string priv_dir;
    std::string python_home;
    if (enif_get_tuple(env, load_info, &arity, &parts) && arity == 2) {
        priv_dir = iolist_string(env, parts[0]);
        python_home = iolist_string(env, parts[1]);
    } else {
        priv_dir = iolist_string(env, load_info);
    }
    std::string error;
    if (py::start_runtime(priv_dir, &bridge::init_erlang_module, error, python_home)) {
        context::set_main_interpreter(std::make_shared<py::Interpreter>(py::main_interpreter()));
        bridge::set_interpreter_resolver(&context::interpreter_of);
    } else {
        nifs::set_runtime_error(error);
    }
    return 0;
}

int upgrade(ErlNifEnv*, void**, void**, ERL_NIF_TERM) { return 1; }

ErlNifFunc nif_funcs[] = {
    {"context_new", 2, nifs::context_new, 0},
    {"context_stop", 2, nifs::context_stop, 0},
    {"context_stop_now", 1, nifs::context_stop_now, 0},
    {"namespace_new", 1, nifs::namespace_new, 0},
    {"submit_call", 8, nifs::submit_call, 0},
    {"submit_eval", 6, nifs::submit_eval, 0},
    {"submit_exec", 4, nifs::submit_exec, 0},
    {"submit_reset", 3, nifs::submit_reset, 0},
    {"cancel", 2, nifs::cancel, 0},
    {"fd_ready", 2, nifs::fd_ready, 0},
    {"request_finished", 1, nifs::request_finished, 0},
    {"poll_reply", 1, nifs::poll_reply, 0},
    {"stop_polling", 1, nifs::stop_polling, 0},
    {"stream_ack", 3, nifs::stream_ack, 0},
    {"callback_reply", 3, nifs::callback_reply, 0},
    {"python_version", 0, nifs::python_version, 0},
    {"runtime_status", 0, nifs::runtime_status, 0},
    {"is_ref", 1, nifs::is_ref, 0},
    {"code_name_atom", 1, nifs::code_name_atom, 0},
    {"object_owner", 1, nifs::object_owner, 0},
    {"thread_callback_reply", 2, nifs::thread_callback_reply, 0},
    {"callback_names", 2, nifs::callback_names, 0},
    {"context_interrupt", 1, nifs::context_interrupt, 0},
    {"context_stats", 1, nifs::context_stats, 0},
    {"set_request_timings", 1, nifs::set_request_timings, 0},
    {"context_backtrace", 3, nifs::context_backtrace, 0},
    {"set_map_builder", 1, nifs::set_map_builder, 0},
    {"build_map", 1, nifs::build_map, 0},
    {"shared_dict_new", 0, nifs::shared_dict_new, 0},
    {"shared_dict_get", 3, nifs::shared_dict_get, 0},
    {"shared_dict_set", 3, nifs::shared_dict_set, 0},
    {"shared_dict_del", 2, nifs::shared_dict_del, 0},
    {"shared_dict_keys", 1, nifs::shared_dict_keys, 0},
    {"shared_dict_destroy", 1, nifs::shared_dict_destroy, 0},
    {"buffer_new", 1, nifs::buffer_new, 0},
    {"buffer_write", 2, nifs::buffer_write, 0},
    {"buffer_write_dirty", 2, nifs::buffer_write, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"buffer_close", 1, nifs::buffer_close, 0},
    {"channel_new", 2, nifs::channel_new, 0},
    {"channel_send", 2, nifs::channel_send, 0},
    {"channel_close", 1, nifs::channel_close, 0},
    {"channel_info", 1, nifs::channel_info, 0},
    {"channel_try_receive", 1, nifs::channel_try_receive, 0},
    {"channel_notify", 2, nifs::channel_notify, 0},
    {"channel_unnotify", 2, nifs::channel_unnotify, 0},
    {"dup_fd", 1, nifs::dup_fd, 0},
    {"loop_signal", 1, nifs::loop_signal, 0},
    {"isolated_ref_new", 3, nifs::isolated_ref_new, 0},
    {"isolated_ref_info", 1, nifs::isolated_ref_info, 0},
};

}  // namespace

ERL_NIF_INIT(py_nif, nif_funcs, load, nullptr, upgrade, nullptr)
