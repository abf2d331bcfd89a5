// The memory of the current interpreter as its small-object allocator (pymalloc) sees it.
// Precondition: attached to the interpreter in question.
#pragma once

#include <cstdint>

namespace py {

struct PymallocUsage {
    int64_t allocated_bytes = -1;  // bytes in blocks now allocated (objects of up to 512 bytes)
    int64_t arena_bytes = -1;      // bytes of the arenas those blocks live in
};

// Figures of the interpreter this thread is attached to (on 3.12+ an owngil interpreter has a
// pymalloc of its own; before, and for the main interpreter, they cover every interpreter that
// shares it). -1 when pymalloc is not in use (PYTHONMALLOC=malloc) or the report cannot be read.
// Costs a walk over the interpreter's arenas: tens of microseconds.
PymallocUsage pymalloc_usage();

}  // namespace py
