#!/usr/bin/env bash
# make fuzz: builds the conversion fuzzer and runs it inside the BEAM (docs/fuzzing.md).
#   FUZZ_SECONDS  how long libFuzzer runs (default 60)
#   FUZZ_ARGS     more libFuzzer arguments (e.g. -runs=1000, -seed=1, -jobs is not supported)
#   FUZZ_REPLAY   input files to run once each instead of fuzzing (e.g. a crash artifact)
#   PY_FUZZ_KNOWN known findings to go past (docs/fuzzing.md), e.g. otp10975,hook-mutates-list
#   FUZZ_ERL_FLAGS emulator flags instead of +Mea min
#   FUZZ_ASAN_OPTIONS more ASAN_OPTIONS
#   PYTHON_CONFIG the python3.X-config to build against (see c_src/select_python.sh)
# Exit status: 0 when libFuzzer found nothing, else libFuzzer's (the crash input is kept in
# _build/fuzz/artifacts/ and its path printed).
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/_build/fuzz"
mkdir -p "$out/corpus" "$out/artifacts"

cmake -S . -B _build/cmake-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DPY_FUZZ=ON -DPY_FUZZ_OUTPUT_DIR="$out" >"$out/cmake.log" || { cat "$out/cmake.log"; exit 1; }
cmake --build _build/cmake-fuzz -j2
erlc -o "$out" fuzz/py_fuzz.erl

# The NIF expects clang's shared ASan runtime (UBSan's handlers are in it), which must come first
# in the process: preloaded. PYTHONMALLOC=malloc lets ASan see Python's allocations. Leak checking
# is off: CPython keeps its arenas and interned strings for the life of the process. +Mea min
# makes the BEAM allocate through malloc too, so ASan also sees its binaries and heaps. A 64 MB
# quarantine (ASan's default is 256) keeps a 10-minute run under libFuzzer's 2 GB RSS limit.
# The symbolizer ASan starts must not inherit the preload (it hangs when the fuzzer exits under
# it, and the pipe to tee stays open): ASan runs it through a wrapper that drops LD_PRELOAD.
mkdir -p "$out/bin"
printf '#!/bin/sh\nunset LD_PRELOAD\nexec /usr/lib/llvm-14/bin/llvm-symbolizer "$@"\n' >"$out/bin/llvm-symbolizer"
chmod +x "$out/bin/llvm-symbolizer"
export ASAN_SYMBOLIZER_PATH="$out/bin/llvm-symbolizer"
export LD_PRELOAD="$(clang-14 -print-file-name=libclang_rt.asan-x86_64.so)"
export ASAN_OPTIONS="detect_leaks=0:quarantine_size_mb=64${FUZZ_ASAN_OPTIONS:+:$FUZZ_ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONMALLOC=malloc

log="$out/last-run.log"
if [ -n "${FUZZ_REPLAY:-}" ]; then
  inputs="$FUZZ_REPLAY"
else
  # New inputs go to the first corpus directory (in _build); the checked-in seeds and the inputs
  # of past findings (fuzz/regressions) are only read. At exit libFuzzer lists the coverage of
  # every instrumented function (in the log; summed per file below).
  inputs="-max_total_time=${FUZZ_SECONDS:-60} -print_coverage=1 $out/corpus $root/fuzz/corpus $root/fuzz/regressions"
fi
set +e
# shellcheck disable=SC2086
erl -noinput ${FUZZ_ERL_FLAGS-+Mea min} +S 1 -pa "$out" -py_fuzz_builder "$root/fuzz/py_build.py" \
  -eval 'try py_fuzz:main() catch C:R -> io:format(standard_error, "py_fuzz: ~p:~p~n", [C, R]), halt(4) end' \
  -extra -timeout=30 -print_final_stats=1 -artifact_prefix="$out/artifacts/" ${FUZZ_ARGS:-} $inputs \
  2>&1 | tee "$log" | grep -v -E '^(COVERED_FUNC|UNCOVERED_FUNC|  UNCOVERED_PC)'
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -ne 0 ] || grep -E '^(UN)?COVERED_FUNC' "$log" | grep -E '/c_src/bridge/[a-z_]+\.cpp:' | awk '
  { split($5, e, "/"); n = split($NF, p, "/"); f = p[n]; sub(/:[0-9]+$/, "", f); c[f] += e[1]; t[f] += e[2] }
  END { for (f in c) printf "fuzz: coverage of c_src/bridge/%s: %d of %d edges\n", f, c[f], t[f] }' | sort
if [ "$rc" -ne 0 ]; then
  echo "fuzz: libFuzzer exited with status $rc; log: $log"
  grep -o "Test unit written to .*" "$log" | sed 's/^Test unit written to /fuzz: crash input kept in /' || true
fi
exit "$rc"
