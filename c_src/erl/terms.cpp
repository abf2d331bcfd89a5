#include "erl/terms.hpp"

#include <atomic>
#include <cstring>
#include <vector>

namespace erl {
namespace {

std::atomic<unsigned> g_created_atoms{0};  // how many atoms make_code_name_atom has made

// Decodes one UTF-8 sequence at s[i]; advances i. Returns U+FFFD for malformed input.
unsigned decode_one(std::string_view s, size_t& i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
    ++i;
    if (extra < 0) return 0xFFFD;
    unsigned cp = extra == 0 ? c : (c & (0x3F >> extra));
    for (int k = 0; k < extra; ++k, ++i) {
        if (i >= s.size() || (static_cast<unsigned char>(s[i]) >> 6) != 0x2) return 0xFFFD;
        cp = (cp << 6) | (static_cast<unsigned char>(s[i]) & 0x3F);
    }
    return cp;
}

bool is_latin1(std::string_view s, std::string& out) {
    for (size_t i = 0; i < s.size();) {
        unsigned cp = decode_one(s, i);
        if (cp > 0xFF) return false;
        out.push_back(static_cast<char>(cp));
    }
    return true;
}

}  // namespace

ERL_NIF_TERM make_charlist_utf8(ErlNifEnv* env, std::string_view utf8) {
    std::vector<ERL_NIF_TERM> cps;
    cps.reserve(utf8.size());
    for (size_t i = 0; i < utf8.size();) cps.push_back(enif_make_uint(env, decode_one(utf8, i)));
    return enif_make_list_from_array(env, cps.data(), static_cast<unsigned>(cps.size()));
}

ERL_NIF_TERM make_binary(ErlNifEnv* env, std::string_view text) {
    ERL_NIF_TERM bin;
    unsigned char* p = enif_make_new_binary(env, text.size(), &bin);
    if (!text.empty()) std::memcpy(p, text.data(), text.size());
    return bin;
}

ERL_NIF_TERM make_code_name_atom(ErlNifEnv* env, std::string_view name) {
    std::string latin1;
    if (name.size() <= 255 && is_latin1(name, latin1) && latin1.size() <= 255) {
        ERL_NIF_TERM atom;
        if (enif_make_existing_atom_len(env, latin1.data(), latin1.size(), &atom, ERL_NIF_LATIN1)) return atom;
        if (g_created_atoms.fetch_add(1, std::memory_order_relaxed) < kMaxCreatedAtoms)
            return enif_make_atom_len(env, latin1.data(), latin1.size());
    }
    return make_binary(env, name);
}

}  // namespace erl
