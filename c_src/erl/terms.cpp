#include "erl/terms.hpp"

#include <atomic>
#include <cstring>
#include <vector>

namespace erl {
namespace {

std::atomic<unsigned> g_created_atoms{0};  // how many atoms make_code_name_atom has made

// Decodes one UTF-8 sequence at s[i]; advances i. Returns U+FFFD for malformed input.
unsigned decode_one(std::string_view s, size_t& i) {
    auto c = static_cast<unsigned char>(s[i]);
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
    ERL_NIF_TERM bin{};
    unsigned char* p = enif_make_new_binary(env, text.size(), &bin);
    if (!text.empty()) std::memcpy(p, text.data(), text.size());
    return bin;
}

ERL_NIF_TERM make_code_name_atom(ErlNifEnv* env, std::string_view name) {
    std::string latin1;
    if (name.size() <= 255 && is_latin1(name, latin1) && latin1.size() <= 255) {
        ERL_NIF_TERM atom{};
        if (enif_make_existing_atom_len(env, latin1.data(), latin1.size(), &atom, ERL_NIF_LATIN1)) return atom;
        if (g_created_atoms.fetch_add(1, std::memory_order_relaxed) < kMaxCreatedAtoms)
            return enif_make_atom_len(env, latin1.data(), latin1.size());
    }
    return make_binary(env, name);
}

}  // namespace erl

namespace erl {

namespace {

// Adds what copying t costs to words; false once that reaches budget or t nests too deep.
bool add_size(ErlNifEnv* env, ERL_NIF_TERM t, size_t& words, size_t budget, int depth) {
    if (depth > 32) return false;
    ERL_NIF_TERM head{};
    int arity = 0;
    const ERL_NIF_TERM* elems = nullptr;
    size_t size = 0;
    switch (enif_term_type(env, t)) {
        case ERL_NIF_TERM_TYPE_LIST:
            while (enif_get_list_cell(env, t, &head, &t)) {
                words += 2;
                if (!add_size(env, head, words, budget, depth + 1)) return false;
            }
            if (!enif_is_empty_list(env, t)) return add_size(env, t, words, budget, depth + 1);  // improper
            break;
        case ERL_NIF_TERM_TYPE_TUPLE:
            enif_get_tuple(env, t, &arity, &elems);
            words += size_t(arity) + 1;
            for (int i = 0; i < arity; ++i)
                if (!add_size(env, elems[i], words, budget, depth + 1)) return false;
            break;
        case ERL_NIF_TERM_TYPE_MAP: {
            enif_get_map_size(env, t, &size);
            words += 3 * size + 2;
            ErlNifMapIterator it;
            if (words >= budget || size == 0 || !enif_map_iterator_create(env, t, &it, ERL_NIF_MAP_ITERATOR_FIRST))
                break;
            ERL_NIF_TERM key{}, value{};
            bool fits = true;
            while (fits && enif_map_iterator_get_pair(env, &it, &key, &value)) {
                fits = add_size(env, key, words, budget, depth + 1) && add_size(env, value, words, budget, depth + 1);
                enif_map_iterator_next(env, &it);
            }
            enif_map_iterator_destroy(env, &it);
            if (!fits) return false;
            break;
        }
        case ERL_NIF_TERM_TYPE_BITSTRING: {
            ErlNifBinary bin;
            words += 3;
            if (enif_inspect_binary(env, t, &bin) && bin.size <= 64) words += bin.size / 8 + 1;  // a heap binary
            break;
        }
        case ERL_NIF_TERM_TYPE_FUN:
            words += 16;  // its environment is not looked at
            break;
        default:  // atoms and small integers take no word; bignums, floats, pids, refs a few
            words += 4;
            break;
    }
    return words < budget;
}

}  // namespace

bool smaller_than(ErlNifEnv* env, ERL_NIF_TERM term, size_t budget) {
    size_t words = 0;
    return add_size(env, term, words, budget, 0);
}

}  // namespace erl
