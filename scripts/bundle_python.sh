#!/usr/bin/env bash
# Puts the Python that erlang_python was built against into a release, so that the release runs
# on a host without that Python (docs/installation.md). Run it after `rebar3 release` or
# `mix release`:
#   scripts/bundle_python.sh RELEASE_DIR [--venv VENV_DIR] [--keep-tests]
# It copies libpython and the standard library (without test/, idlelib, tkinter, turtledemo;
# --keep-tests keeps test/) into RELEASE_DIR/lib/erlang_python-*/priv/python/, where
# py_runtime finds it when the node starts, and with --venv the site-packages of that virtual
# environment. Then it lists the system libraries the bundled extension modules need (libssl,
# libffi, ...), which the target host must have. Exit status 0 when the bundle is complete.
set -euo pipefail

usage() { echo "usage: $0 RELEASE_DIR [--venv VENV_DIR] [--keep-tests]" >&2; exit 2; }
[ $# -ge 1 ] || usage
rel=$1; shift
venv=""; keep_tests=0
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) [ $# -ge 2 ] || usage; venv=$2; shift 2 ;;
        --keep-tests) keep_tests=1; shift ;;
        *) usage ;;
    esac
done

shopt -s nullglob
privs=("$rel"/lib/erlang_python-*/priv)
[ ${#privs[@]} -eq 1 ] || { echo "$0: no (or more than one) lib/erlang_python-*/priv in $rel" >&2; exit 1; }
priv=${privs[0]}
info="$priv/python_build.txt"
[ -f "$info" ] || { echo "$0: $info is missing (built by CMake with py_nif.so)" >&2; exit 1; }
get() { sed -n "s/^$1=//p" "$info"; }
version=$(get version); soname=$(get soname); libpython=$(get libpython); stdlib=$(get stdlib)
mm=${version%.*}
[ -f "$libpython" ] || { echo "$0: the build's libpython $libpython is not here" >&2; exit 1; }
[ -f "$stdlib/os.py" ] || { echo "$0: the build's standard library $stdlib is not here" >&2; exit 1; }

home="$priv/python"
rm -rf "$home"
mkdir -p "$home/lib"
cp -L "$libpython" "$home/lib/$soname"
excludes=(--exclude=idlelib --exclude=tkinter --exclude=turtledemo --exclude=site-packages
          --exclude=dist-packages --exclude='config-*' --exclude='_tkinter*')
[ "$keep_tests" = 1 ] || excludes+=(--exclude=./test)
mkdir -p "$home/lib/python$mm/site-packages"
tar -C "$stdlib" "${excludes[@]}" -cf - . | tar -C "$home/lib/python$mm" -xf -
# Debian keeps the extension modules of its system Python outside the standard library.
if [ ! -d "$home/lib/python$mm/lib-dynload" ] && [ -d "$(dirname "$stdlib")/python$mm/lib-dynload" ]; then
    cp -a "$(dirname "$stdlib")/python$mm/lib-dynload" "$home/lib/python$mm/"
fi
if [ -n "$venv" ]; then
    site=("$venv"/lib/python"$mm"/site-packages)
    [ -d "${site[0]:-}" ] || { echo "$0: $venv has no lib/python$mm/site-packages" >&2; exit 1; }
    cp -a "${site[0]}/." "$home/lib/python$mm/site-packages/"
fi

echo "bundled Python $version into $home ($(du -sh "$home" | cut -f1))"
# What the extension modules and libpython need from the host, beyond the C library.
needs=$(find "$home" -name '*.so*' -type f -print0 | xargs -0 ldd 2>/dev/null |
        awk '/=>/ {print $1}' | grep -v -E '^(libc|libm|libpthread|libdl|librt|libutil|ld-linux|linux-vdso|libpython)' |
        sort -u | tr '\n' ' ')
echo "the host needs these system libraries: ${needs:-none}"
