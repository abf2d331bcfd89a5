// A cheap look at whether a binary is UTF-8 text. Any thread; pure.
#pragma once

#include <cstddef>

namespace bridge {

// False when data[0..size) is certainly not well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF, which is what Python's strict decoder accepts): its first
// kUtf8Window bytes from the first non-ASCII byte on are not. True otherwise: the text may still
// be malformed further on, which only the decoder finds. Runs of ASCII are skipped 32 bytes at a
// time, so the look costs little beside the decoding it saves: a failed decode builds a
// UnicodeDecodeError that holds a copy of the whole binary.
bool may_be_utf8(const unsigned char* data, size_t size);

inline constexpr size_t kUtf8Window = 64;

}  // namespace bridge
