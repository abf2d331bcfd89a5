#!/bin/sh
# Builds priv/py_nif.so with CMake; run by rebar3's compile pre-hook.
#   CMAKE_BUILD_DIR   build directory (default _build/cmake)
#   CMAKE_BUILD_TYPE  Release (default) or Debug
#   CMAKE_EXTRA_ARGS  more arguments for the configure step (e.g. -DPY_SANITIZE=ON)
#   PYTHON_CONFIG     the python3.X-config to build against (see c_src/select_python.sh)
#   PY_WERROR         ON makes compiler warnings errors (this repository's Makefile sets it;
#                     a build as someone's dependency leaves it OFF)
set -eu
cd "$(dirname "$0")/.."
dir="${CMAKE_BUILD_DIR:-_build/cmake}"
# shellcheck disable=SC2086
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" -DPY_WERROR="${PY_WERROR:-OFF}" ${CMAKE_EXTRA_ARGS:-}
cmake --build "$dir" -j2
test -f priv/py_nif.so && test -f priv/py_boot.so && test -f priv/py_child
