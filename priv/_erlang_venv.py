"""A virtual environment's packages on sys.path (src/py_venv.erl, docs/venv.md).

activate() adds the venv's site-packages the way site.addsitedir does (its .pth files are
processed, so their paths and import lines take effect), then moves what that added in front
of the interpreter's own site-packages, so the venv's packages win over the base
installation's but never over the standard library. deactivate() removes exactly those
entries again. Modules already imported stay imported.

One copy per interpreter: worker contexts share the main interpreter's, each owngil context
has its own.
"""

import importlib
import site
import sys

_active = None  # (venv, site_packages, [entries added to sys.path])


def _is_site_dir(entry, site_dirs):
    return entry in site_dirs or entry.rstrip("/").endswith(("site-packages", "dist-packages"))


def activate(venv, site_packages):
    """Make `site_packages` (of the venv at `venv`) importable, replacing any venv before."""
    global _active
    deactivate()
    saved = list(sys.path)
    before = set(saved)
    try:
        site.addsitedir(site_packages)
    except BaseException:
        sys.path[:] = saved
        raise
    added = []
    for entry in sys.path:
        if entry not in before and entry not in added:
            added.append(entry)
    rest = [entry for entry in sys.path if entry not in added]
    try:
        site_dirs = set(site.getsitepackages())
    except AttributeError:
        site_dirs = set()
    at = next((i for i, entry in enumerate(rest) if _is_site_dir(entry, site_dirs)), len(rest))
    sys.path[:] = rest[:at] + added + rest[at:]
    importlib.invalidate_caches()
    _active = (venv, site_packages, added)


def deactivate():
    """Remove from sys.path what activate() added. Imported modules are not unloaded."""
    global _active
    if _active is None:
        return
    added = _active[2]
    _active = None
    sys.path[:] = [entry for entry in sys.path if entry not in added]
    for entry in added:
        sys.path_importer_cache.pop(entry, None)
    importlib.invalidate_caches()


def active():
    """(venv, site_packages) of the active venv in this interpreter, or None."""
    return None if _active is None else _active[:2]
