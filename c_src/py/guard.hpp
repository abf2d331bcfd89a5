// The one place where C++ exceptions become Python exceptions, as erl::guarded is on the NIF
// side. Every C function that Python calls (module functions, methods, getters and type slots)
// is registered as py::guarded<&fn>: a C++ exception (std::bad_alloc from a container, a bug)
// never unwinds through CPython's C frames, which is undefined behaviour (std::terminate when
// a frame is noexcept). Precondition: called by Python, attached.
#pragma once

#include <Python.h>

#include <new>
#include <type_traits>

#include "py/ref.hpp"

namespace py {
namespace detail {

// Sets the Python exception for the C++ exception being handled (call inside a catch block).
inline void set_error_from_cpp_exception() {
    try {
        throw;
    } catch (const ErrorPending&) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "error reported without an exception set");
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
    } catch (...) {
        PyErr_SetString(PyExc_SystemError, "internal error in erlang_python (a C++ exception)");
    }
}

template <auto Fn>
struct Guard;

template <class R, class... Args, R (*Fn)(Args...)>
struct Guard<Fn> {
    static R call(Args... args) noexcept {
        try {
            return Fn(args...);
        } catch (...) {
            set_error_from_cpp_exception();
        }
        if constexpr (std::is_void_v<R>) {
            PyErr_WriteUnraisable(nullptr);  // a slot with no way to report (tp_dealloc)
        } else if constexpr (std::is_pointer_v<R>) {
            return nullptr;
        } else {
            return static_cast<R>(-1);  // int and Py_hash_t slots: -1 with an exception set
        }
    }
};

}  // namespace detail

// &fn wrapped: same signature, noexcept, C++ exceptions turned into Python ones.
template <auto Fn>
inline constexpr auto guarded = &detail::Guard<Fn>::call;

}  // namespace py
