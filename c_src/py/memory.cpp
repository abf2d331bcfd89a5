#include "py/memory.hpp"

#include <Python.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

// Exported by libpython 3.11-3.13 (PyAPI_FUNC) but declared only in an internal header
// (pycore_pymem.h, later pycore_obmalloc.h).
extern "C" int _PyObject_DebugMallocStats(FILE* out);  // NOLINT(bugprone-reserved-identifier): CPython's name

namespace py {
namespace {

// The number after '=' on the report's line that starts with `label`, digits grouped by ','.
int64_t figure_after(const std::string& report, const char* label) {
    size_t at = report.find(label);
    if (at == std::string::npos) return -1;
    size_t eq = report.find('=', at);
    size_t eol = report.find('\n', at + 1);
    if (eq == std::string::npos || (eol != std::string::npos && eq > eol)) return -1;
    int64_t value = 0;
    bool any = false;
    for (size_t i = eq + 1; i < report.size() && report[i] != '\n'; ++i) {
        char c = report[i];
        if (c >= '0' && c <= '9') {
            value = value * 10 + (c - '0');
            any = true;
        } else if (c != ',' && c != ' ') {
            break;
        }
    }
    return any ? value : -1;
}

}  // namespace

PymallocUsage pymalloc_usage() {
    // _PyObject_DebugMallocStats (what sys._debugmallocstats prints) is the only exported
    // entry to the per-interpreter pymalloc state (3.11-3.13); its report is parsed.
    char* text = nullptr;
    size_t size = 0;
    FILE* out = open_memstream(&text, &size);
    if (!out) return {};
    int used = _PyObject_DebugMallocStats(out);
    std::fclose(out);
    std::string report(text ? text : "", size);
    std::free(text);  // NOLINT(cppcoreguidelines-no-malloc): open_memstream's buffer is malloc'ed
    if (!used) return {};
    PymallocUsage usage;
    usage.allocated_bytes = figure_after(report, "# bytes in allocated blocks");
    // The first "Total" line sums the arenas (the second, if any, the arena map).
    usage.arena_bytes = figure_after(report, "\nTotal");
    return usage;
}

}  // namespace py
