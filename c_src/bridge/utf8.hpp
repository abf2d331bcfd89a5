// UTF-8 validation. Any thread; pure.
#pragma once

#include <cstddef>

namespace bridge {

// Whether data[0..size) is well-formed UTF-8 as RFC 3629 defines it (no overlong forms, no
// surrogates, nothing above U+10FFFF): exactly what Python's strict decoder accepts. Runs of
// ASCII are checked 8 bytes at a time.
bool is_utf8(const unsigned char* data, size_t size);

}  // namespace bridge
