// Network isolation of an isolated context's child (priv/py_child): a network namespace of its
// own, with no interface up, entered before Python starts.
//
// Thread: called on the child's main thread before Python is initialised (single-threaded).
#pragma once

namespace child {

// Moves the calling process into a new, empty network namespace: unshare(CLONE_NEWNET), or, when
// that is not permitted (no CAP_SYS_ADMIN), a new user namespace with it that maps the caller's
// uid and gid to themselves. False, with errno set, when the kernel refuses both.
bool leave_network();

}  // namespace child
