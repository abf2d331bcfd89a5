#include "bridge/callback_names.hpp"

#include <mutex>
#include <unordered_set>

namespace bridge {
namespace {
std::mutex g_mutex;
std::unordered_set<std::string> g_names;  // guarded by g_mutex
}  // namespace

void callback_name_added(const std::string& name) {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_names.insert(name);
}

void callback_name_removed(const std::string& name) {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_names.erase(name);
}

void callback_names_cleared() {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_names.clear();
}

bool callback_name_known(const std::string& name) {
    std::lock_guard<std::mutex> lock(g_mutex);
    return g_names.contains(name);
}

}  // namespace bridge
