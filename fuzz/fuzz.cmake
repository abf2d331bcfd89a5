# The libFuzzer harness (make fuzz; docs/fuzzing.md), included by CMakeLists.txt when PY_FUZZ is
# ON instead of the NIF target. It is a NIF library of its own, py_fuzz.so: every NIF source but
# the NIF's entry point (c_src/nifs/nif_main.cpp), plus fuzz/py_fuzz_nif.cpp, built with clang
# and AddressSanitizer + UndefinedBehaviorSanitizer. Only the conversion code and the harness are
# instrumented for coverage, so libFuzzer's coverage figures are about them.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "PY_FUZZ needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++-14")
endif()
set(PY_FUZZ_OUTPUT_DIR "${CMAKE_CURRENT_SOURCE_DIR}/_build/fuzz" CACHE PATH "Where py_fuzz.so goes")

# libFuzzer's runtime without its main(): the harness calls LLVMFuzzerRunDriver itself.
execute_process(
  COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libclang_rt.fuzzer_no_main-x86_64.a
  OUTPUT_VARIABLE FUZZER_NO_MAIN OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT EXISTS "${FUZZER_NO_MAIN}")
  message(FATAL_ERROR "libclang_rt.fuzzer_no_main-x86_64.a not found (install libclang-rt-14-dev)")
endif()

list(FILTER NIF_SOURCES EXCLUDE REGEX "/c_src/nifs/nif_main\\.cpp$")
set(FUZZ_HARNESS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/py_fuzz_nif.cpp)
add_library(py_fuzz SHARED ${NIF_SOURCES} ${FUZZ_HARNESS})
set_target_properties(py_fuzz PROPERTIES PREFIX "" OUTPUT_NAME "py_fuzz"
  LIBRARY_OUTPUT_DIRECTORY ${PY_FUZZ_OUTPUT_DIR}
  CXX_VISIBILITY_PRESET hidden
  BUILD_RPATH "${PYTHON_LIBDIR}")
target_include_directories(py_fuzz PRIVATE c_src ${CMAKE_CURRENT_BINARY_DIR}/generated)
target_include_directories(py_fuzz SYSTEM PRIVATE ${ERTS_INCLUDE_DIR} ${PYTHON_INCLUDE_DIR})
target_compile_definitions(py_fuzz PRIVATE PY_SSIZE_T_CLEAN)
target_compile_options(py_fuzz PRIVATE -Wall -Wextra -fno-strict-aliasing -g -O1
  -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
set_source_files_properties(
  ${CMAKE_CURRENT_SOURCE_DIR}/c_src/bridge/to_python.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/c_src/bridge/to_erlang.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/c_src/bridge/erlang_module.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/c_src/bridge/utf8.cpp
  ${FUZZ_HARNESS}
  PROPERTIES COMPILE_OPTIONS -fsanitize=fuzzer-no-link)
# -shared-libsan: the library expects the shared ASan runtime, which is preloaded into the BEAM.
# -Bsymbolic: the preloaded runtime has default (weak) __sanitizer_cov_* callbacks too, and would
# otherwise take the coverage that libFuzzer, linked in here, must receive.
target_link_options(py_fuzz PRIVATE -fsanitize=address,undefined -shared-libsan -Wl,-Bsymbolic)
target_link_libraries(py_fuzz PRIVATE ${FUZZER_NO_MAIN} ${PYTHON_LIBRARY} dl pthread)
