// Small term builders. Any thread with a valid env.
#pragma once

#include <erl_nif.h>

#include <string_view>

namespace erl {

// A list of Unicode code points from UTF-8 text (an Erlang string); bad bytes become U+FFFD.
ERL_NIF_TERM make_charlist_utf8(ErlNifEnv* env, std::string_view utf8);

// A binary holding a copy of text.
ERL_NIF_TERM make_binary(ErlNifEnv* env, std::string_view text);

// An atom for a name that comes from code, not data (an exception class name): an existing
// atom is reused; a new one is created only while fewer than kMaxCreatedAtoms have been made
// this way and the name is Latin-1; otherwise the name comes back as a binary.
ERL_NIF_TERM make_code_name_atom(ErlNifEnv* env, std::string_view name);
inline constexpr unsigned kMaxCreatedAtoms = 10000;

// Whether copying term takes fewer than `budget` heap words (roughly: a refc binary counts as
// its handle, a bignum as a few words). Looks at no more than about `budget` words, so it is
// cheap for small terms and bounded for big ones; a term nested deeper than 32 levels counts
// as big.
bool smaller_than(ErlNifEnv* env, ERL_NIF_TERM term, size_t budget);

}  // namespace erl
