// erlang.SharedDict: the Python face of a SharedDict (shared/shared_dict.hpp), made from the
// handle py:shared_dict_new/0 returns. Keys and values cross as Erlang terms, so no Python
// object is shared between interpreters; a value with no Erlang equivalent is refused.
// Precondition for every function: attached to the interpreter whose `erlang` module made the
// type.
#pragma once

#include <Python.h>

#include "erl/resource.hpp"
#include "shared/shared_dict.hpp"

namespace bridge {

using SharedDictResource = erl::Resource<shared::SharedDict>;

extern PyType_Spec shared_dict_type_spec;

}  // namespace bridge
