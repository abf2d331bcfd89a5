// Thread: the child's main thread, before Python starts (single-threaded).
#include "net_isolation.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace child {
namespace {

// Writes text to a /proc/self file; false when it cannot.
bool write_proc(const char* path, const char* text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    auto len = static_cast<ssize_t>(std::strlen(text));
    bool ok = write(fd, text, static_cast<size_t>(len)) == len;
    int saved = errno;
    close(fd);
    errno = saved;
    return ok;
}

// In a new user namespace the process keeps its uid and gid (mapped to themselves): files it
// creates and os.getuid() look as they do outside.
bool map_ids(uid_t uid, gid_t gid) {
    char line[64];
    std::snprintf(line, sizeof line, "%u %u 1\n", static_cast<unsigned>(uid), static_cast<unsigned>(uid));
    if (!write_proc("/proc/self/uid_map", line)) return false;
    // An unprivileged process may write gid_map only once setgroups(2) is denied.
    if (!write_proc("/proc/self/setgroups", "deny") && errno != ENOENT) return false;
    std::snprintf(line, sizeof line, "%u %u 1\n", static_cast<unsigned>(gid), static_cast<unsigned>(gid));
    return write_proc("/proc/self/gid_map", line);
}

}  // namespace

bool leave_network() {
    if (unshare(CLONE_NEWNET) == 0) return true;
    if (errno != EPERM) return false;
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) return false;
    return map_ids(uid, gid);
}

}  // namespace child
