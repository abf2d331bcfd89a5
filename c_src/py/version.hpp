// Python version differences, in one place.
#pragma once

#include <Python.h>

namespace py {

inline constexpr bool kHasOwnGil = PY_VERSION_HEX >= 0x030D0000;  // 3.13+: see docs/owngil.md

}  // namespace py
