// NIFs that describe the runtime and classify terms.
#include "bridge/object_ref.hpp"
#include "erl/atoms.hpp"
#include "erl/terms.hpp"
#include "nifs/nifs.hpp"
#include "py/runtime.hpp"

namespace nifs {

bool open_info_resources(ErlNifEnv* env) { return bridge::ObjectRefResource::open(env, "py_object"); }

// python_version() -> <<"3.13.0">>: the Python this library was built against and runs.
ERL_NIF_TERM python_version(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
    return erl::make_binary(env, py::runtime_version());
}

// is_ref(Term) -> boolean(): whether Term is an opaque reference to a Python object.
ERL_NIF_TERM is_ref(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    return bridge::ObjectRefResource::get(env, argv[0]) ? erl::atoms().true_ : erl::atoms().false_;
}

}  // namespace nifs
