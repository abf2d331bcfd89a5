#!/usr/bin/env bash
# make check: the static checks. Runs every step, even after one failed, then prints one line
# per step (ok/FAILED and seconds) and exits 1 if any failed.
#   xref       rebar3 xref (rebar.config: undefined functions and calls, unused locals, deprecated)
#   dialyzer   rebar3 dialyzer (rebar.config: warnings unknown, unmatched_returns)
#   edoc       rebar3 edoc: fails on an edoc error, and on any warning it prints
#   specs      scripts/check_specs.escript: every exported function in src/*.erl has a -spec
#   layers     c_src/ folders include only lower layers (erl py < chan shared < bridge < aio
#              < context < nifs boot; a folder includes itself): no upward or sideways include
#   format     clang-format-14 --dry-run --Werror over c_src/ and fuzz/*.cpp (.clang-format)
#   tidy       clang-tidy-14 over c_src/*.cpp (.clang-tidy), with the compile database of a
#              CMake configure in _build/cmake-tidy
# CHECK_STEPS="xref specs ..." runs only those.
set -uo pipefail
cd "$(dirname "$0")/.."

REBAR=${REBAR:-rebar3}
CLANG_FORMAT=${CLANG_FORMAT:-clang-format-14}
RUN_CLANG_TIDY=${RUN_CLANG_TIDY:-run-clang-tidy-14}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy-14}
TIDY_DIR=_build/cmake-tidy
steps=${CHECK_STEPS:-xref dialyzer edoc specs layers format tidy}

step_xref() { "$REBAR" xref; }

step_dialyzer() { "$REBAR" dialyzer; }

step_edoc() {
    local out rc
    out=$("$REBAR" edoc 2>&1)
    rc=$?
    printf '%s\n' "$out"
    [ "$rc" -eq 0 ] || return "$rc"
    # edoc reports problems that do not stop it as "<where>: warning: ..." lines (edoc_report);
    # only its own output counts, not that of the NIF build rebar3 runs first.
    if sed -n '/Running edoc/,$p' <<<"$out" | grep -q 'warning: '; then
        echo "edoc printed warnings (above)"
        return 1
    fi
}

step_specs() { escript scripts/check_specs.escript; }

# The layer of each c_src/ folder (docs/internals.md): an include goes to a lower number only.
layer_of() {
    case "$1" in
    erl | py) echo 0 ;;
    chan | shared) echo 1 ;;
    bridge) echo 2 ;;
    aio) echo 3 ;;
    context) echo 4 ;;
    nifs | boot) echo 5 ;;
    *) echo "" ;;
    esac
}

step_layers() {
    local bad=0 file line from to included lf lt
    while IFS= read -r line; do
        file=${line%%:*}
        included=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"${line#*:*:}")
        [[ "$included" == */* ]] || continue
        from=$(cut -d/ -f2 <<<"$file")
        to=${included%%/*}
        [ "$from" = "$to" ] && continue
        lf=$(layer_of "$from")
        lt=$(layer_of "$to")
        if [ -z "$lf" ] || [ -z "$lt" ]; then
            echo "$line: a folder with no layer (scripts/check.sh layer_of)"
            bad=1
        elif [ "$lt" -ge "$lf" ]; then
            echo "$line: $from/ (layer $lf) includes $to/ (layer $lt)"
            bad=1
        fi
    done < <(git grep -n '^#include "' -- 'c_src/*.cpp' 'c_src/*.hpp')
    return "$bad"
}

cxx_sources() { git ls-files 'c_src/*.cpp' 'c_src/*.hpp' 'fuzz/*.cpp'; }

step_format() {
    # shellcheck disable=SC2046
    "$CLANG_FORMAT" --dry-run --Werror $(cxx_sources)
}

step_tidy() {
    cmake -S . -B "$TIDY_DIR" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$TIDY_DIR.log" 2>&1 ||
        { cat "$TIDY_DIR.log"; return 1; }
    # The NIF's sources only (the fuzz harness is built apart, with clang; see fuzz/fuzz.cmake).
    # -quiet drops the per-file banners; the findings and their exit status remain (.clang-tidy
    # makes every warning an error).
    # run-clang-tidy also prints each command line and clang's count of (suppressed) warnings
    # in system headers, in colour: dropped.
    "$RUN_CLANG_TIDY" -clang-tidy-binary "$(command -v "$CLANG_TIDY")" -p "$TIDY_DIR" -j 2 -quiet \
        "$(pwd)/c_src/" 2>&1 |
        sed 's/\x1b\[[0-9;]*m//g' | grep -vE '^[0-9]+ warnings? generated\.$|clang-tidy[-0-9]* --use-color '
    return "${PIPESTATUS[0]}"
}

results=()
failed=0
for s in $steps; do
    if ! declare -F "step_$s" >/dev/null; then
        echo "check: unknown step '$s'" >&2
        exit 2
    fi
    echo "== check: $s =="
    t0=$(date +%s)
    if "step_$s"; then r=ok; else r=FAILED; failed=1; fi
    results+=("$(printf '%-9s %-6s %4d s' "$s" "$r" $(( $(date +%s) - t0 )))")
    echo "== check: $s: $r =="
done
echo "== check: summary =="
printf '  %s\n' "${results[@]}"
if [ "$failed" -ne 0 ]; then
    echo "check: FAILED"
    exit 1
fi
echo "check: all passed"
