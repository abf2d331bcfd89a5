// The one place where C++ exceptions become Erlang results. Scheduler threads only.
#pragma once

#include <erl_nif.h>

#include <exception>

#include "erl/atoms.hpp"

namespace erl {

// Thrown for misuse of an API (wrong argument types): becomes badarg.
struct BadArg : std::exception {
    const char* what() const noexcept override { return "badarg"; }
};

// Thrown for an expected failure: becomes {error, Reason}.
struct ErrorResult : std::exception {
    explicit ErrorResult(ERL_NIF_TERM r) : reason(r) {}
    ERL_NIF_TERM reason;
    const char* what() const noexcept override { return "error result"; }
};

// Runs body(env, argc, argv); converts BadArg, ErrorResult and anything else (a bug or
// std::bad_alloc) into badarg / {error, Reason} / {error, internal}.
template <class Body>
ERL_NIF_TERM guarded(ErlNifEnv* env, Body&& body) {
    try {
        return body();
    } catch (const BadArg&) {
        return enif_make_badarg(env);
    } catch (const ErrorResult& e) {
        return enif_make_tuple2(env, atoms().error, e.reason);
    } catch (const std::bad_alloc&) {
        return enif_make_tuple2(env, atoms().error, atoms().out_of_memory);
    } catch (...) {
        return enif_make_tuple2(env, atoms().error, atoms().internal_error);
    }
}

}  // namespace erl
