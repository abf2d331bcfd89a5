// A cache of freed pymalloc arenas. Any thread (Python calls the hooks with an interpreter's
// object allocator locked; OWN_GIL interpreters may call them at the same time).
#pragma once

#include <cstddef>

namespace py {

// pymalloc hands an arena (1 MiB on 64-bit builds) back to the OS as soon as it is empty, and
// maps a fresh one when it needs memory again: converting a 100,000-element list (3.2 MB of int
// objects) and freeing it costs about 800 page faults each time, a third of the conversion.
// Freed arenas are kept mapped for reuse, up to kMaxCachedArenaBytes in all; beyond that they
// are unmapped as before. Installs the hooks; call before Py_Initialize.
void install_arena_cache();

inline constexpr size_t kMaxCachedArenaBytes = size_t(16) << 20;

}  // namespace py
