#!/bin/sh
# Prints the python3-config to build against, following the documented order:
#   1. $PYTHON_CONFIG if set;
#   2. the newest CPython >= 3.13 found under $(pyenv root)/versions/ or on PATH;
#   3. the system python3-config (Debian's python3-dev).
set -eu
if [ -n "${PYTHON_CONFIG:-}" ]; then
    echo "$PYTHON_CONFIG"; exit 0
fi
best=""; best_key=0
consider() {
    cfg="$1"
    [ -x "$cfg" ] || return 0
    py="${cfg%-config}"
    [ -x "$py" ] || return 0
    # Only shared-library builds can be embedded in a NIF.
    key=$("$py" -c 'import sys, sysconfig; v = sys.version_info
print(v[0]*10000 + v[1]*100 + v[2] if v >= (3, 13) and sysconfig.get_config_var("Py_ENABLE_SHARED") else 0)' 2>/dev/null || echo 0)
    if [ "$key" -gt "$best_key" ]; then best_key=$key; best=$cfg; fi
}
root=""
if command -v pyenv >/dev/null 2>&1; then root=$(pyenv root 2>/dev/null || true); fi
[ -n "$root" ] || root="${PYENV_ROOT:-$HOME/.pyenv}"
for d in "$root"/versions/*/bin; do
    for c in "$d"/python3.*-config; do consider "$c"; done
done
for c in /usr/local/bin/python3.*-config /usr/bin/python3.*-config; do consider "$c"; done
if [ -n "$best" ]; then echo "$best"; exit 0; fi
if [ -x /usr/bin/python3-config ]; then echo /usr/bin/python3-config; exit 0; fi
echo "no python3-config found: install python3-dev or set PYTHON_CONFIG" >&2
exit 1
