// The names of the Erlang functions registered with py:register_function, mirrored here so
// that `hasattr(erlang, name)` is true only for them (src/py_callback.erl keeps it in step).
// Any thread: guarded by a mutex; never touches Python.
#pragma once

#include <string>

namespace bridge {

void callback_name_added(const std::string& name);
void callback_name_removed(const std::string& name);
void callback_names_cleared();
bool callback_name_known(const std::string& name);

}  // namespace bridge
