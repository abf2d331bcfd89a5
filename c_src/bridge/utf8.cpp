#include "bridge/utf8.hpp"

#include <cstdint>
#include <cstring>

namespace bridge {
namespace {

constexpr uint64_t kHighBits = 0x8080808080808080ULL;

uint64_t load8(const unsigned char* p) {
    uint64_t word = 0;
    std::memcpy(&word, p, sizeof word);
    return word;
}

// The length of the ASCII run at the start of [p, end).
size_t ascii_prefix(const unsigned char* p, const unsigned char* end) {
    const unsigned char* start = p;
    while (end - p >= 32 && ((load8(p) | load8(p + 8) | load8(p + 16) | load8(p + 24)) & kHighBits) == 0) p += 32;
    while (end - p >= 8 && (load8(p) & kHighBits) == 0) p += 8;
    while (p < end && *p < 0x80) ++p;
    return static_cast<size_t>(p - start);
}

bool continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// The length of the well-formed multi-byte sequence at p (p[0] >= 0x80), or 0.
size_t sequence_length(const unsigned char* p, const unsigned char* end) {
    unsigned char c = p[0];
    auto avail = static_cast<size_t>(end - p);
    if (c >= 0xC2 && c <= 0xDF) return avail >= 2 && continuation(p[1]) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || !continuation(p[2])) return 0;
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;  // E0: no overlong forms
        unsigned char hi = c == 0xED ? 0x9F : 0xBF;  // ED: no surrogates
        return p[1] >= lo && p[1] <= hi ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || !continuation(p[2]) || !continuation(p[3])) return 0;
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80;  // F0: no overlong forms
        unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;  // F4: nothing above U+10FFFF
        return p[1] >= lo && p[1] <= hi ? 4 : 0;
    }
    return 0;  // a continuation byte, C0, C1 or F5..FF
}

}  // namespace

bool may_be_utf8(const unsigned char* data, size_t size) {
    const unsigned char* end = data + size;
    const unsigned char* p = data + ascii_prefix(data, end);
    const unsigned char* window_end = end - p > static_cast<std::ptrdiff_t>(kUtf8Window) ? p + kUtf8Window : end;
    while (p < window_end) {  // a sequence that starts in the window is checked whole
        if (*p < 0x80) {
            ++p;
            continue;
        }
        size_t n = sequence_length(p, end);
        if (n == 0) return false;
        p += n;
    }
    return true;
}

}  // namespace bridge
