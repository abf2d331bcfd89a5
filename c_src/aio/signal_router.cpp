#include "aio/signal_router.hpp"

#include "aio/child_signal.hpp"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <iterator>
#include <mutex>
#include <utility>
#include <vector>

namespace aio {
namespace {

struct Routable {
    const char* name;
    int signum;
};

// os:set_signal/2's signals, less those a loop must not take over: sigchld (the BEAM's
// port programs) and sigstop (no process can catch it).
constexpr Routable kRoutable[] = {
    {"sighup", SIGHUP},   {"sigquit", SIGQUIT}, {"sigabrt", SIGABRT}, {"sigalrm", SIGALRM},
    {"sigterm", SIGTERM}, {"sigusr1", SIGUSR1}, {"sigusr2", SIGUSR2}, {"sigtstp", SIGTSTP},
};

std::mutex& router_mutex() {
    static std::mutex m;
    return m;
}

struct Subscription {
    int signum;
    PollerPtr poller;
    py::Serial context;
};

// Guarded by router_mutex(). Few entries: a linear list.
std::vector<Subscription>& subscriptions() {
    static std::vector<Subscription> subs;
    return subs;
}

// Router mutex held.
bool has_subscriber(int signum) {
    const auto& subs = subscriptions();
    return std::any_of(subs.begin(), subs.end(), [signum](const Subscription& sub) { return sub.signum == signum; });
}

// Relay thread of aio/child_signal: SIGCHLD arrived.
void relay_child_signal() { (void)deliver_signal(SIGCHLD); }

// Removes the subscriptions that match, and releases their pollers after the lock. The last
// loop that asked for SIGCHLD gone, its handler goes too.
template <class Match>
void unsubscribe_if(Match match) {
    std::vector<PollerPtr> dropped;
    {
        std::lock_guard<std::mutex> lock(router_mutex());
        auto& subs = subscriptions();
        bool dropped_child = false;
        for (auto it = subs.begin(); it != subs.end();)
            if (match(*it)) {
                dropped_child = dropped_child || it->signum == SIGCHLD;
                dropped.push_back(std::move(it->poller));
                it = subs.erase(it);
            } else {
                ++it;
            }
        if (dropped_child && !has_subscriber(SIGCHLD)) release_child_signal();
    }
}

}  // namespace

int routable_signal(const char* erlang_name) {
    for (const Routable& r : kRoutable)
        if (std::strcmp(r.name, erlang_name) == 0) return r.signum;
    return 0;
}

bool is_routable(int signum) {
    return std::any_of(std::begin(kRoutable), std::end(kRoutable),
                       [signum](const Routable& r) { return r.signum == signum; });
}

bool is_loop_signal(int signum) { return signum == SIGCHLD || is_routable(signum); }

int loop_signal_number(const char* erlang_name) {
    return std::strcmp(erlang_name, "sigchld") == 0 ? SIGCHLD : routable_signal(erlang_name);
}

int subscribe_signal(int signum, const PollerPtr& poller, py::Serial context) {
    std::lock_guard<std::mutex> lock(router_mutex());
    for (const Subscription& sub : subscriptions())
        if (sub.signum == signum && sub.poller.get() == poller.get()) return 0;
    if (signum == SIGCHLD && !has_subscriber(SIGCHLD))
        if (int err = catch_child_signal(&relay_child_signal)) return err;
    try {
        subscriptions().push_back(Subscription{signum, poller, context});
    } catch (...) {
        if (signum == SIGCHLD && !has_subscriber(SIGCHLD)) release_child_signal();
        throw;
    }
    return 0;
}

void unsubscribe_signal(int signum, const Poller* poller) {
    unsubscribe_if([&](const Subscription& sub) { return sub.signum == signum && sub.poller.get() == poller; });
}

void unsubscribe_signals(const Poller* poller) {
    unsubscribe_if([&](const Subscription& sub) { return sub.poller.get() == poller; });
}

void unsubscribe_signals_of(py::Serial context) {
    unsubscribe_if([&](const Subscription& sub) { return sub.context == context; });
}

unsigned deliver_signal(int signum) {
    std::vector<PollerPtr> targets;
    {
        std::lock_guard<std::mutex> lock(router_mutex());
        for (const Subscription& sub : subscriptions())
            if (sub.signum == signum) targets.push_back(sub.poller);
    }
    for (PollerPtr& p : targets) p->on_signal(signum);
    return static_cast<unsigned>(targets.size());
}

}  // namespace aio
