// Owning references to Python objects, and turning NULL-returning C-API calls into exceptions.
// Precondition for every member: the calling thread is attached to the object's interpreter.
#pragma once

#include <Python.h>

#include <exception>
#include <utility>

namespace py {

// Thrown when a C-API call failed and left a Python exception set on this thread.
struct ErrorPending : std::exception {
    const char* what() const noexcept override { return "python error pending"; }
};

// A move-only strong reference. Borrowing and stealing are explicit.
class Ref {
public:
    Ref() = default;
    static Ref steal(PyObject* p) { return Ref(p); }
    static Ref borrow(PyObject* p) {
        Py_XINCREF(p);
        return Ref(p);
    }
    // Steals p, throwing ErrorPending when the call that produced it failed (p == NULL).
    static Ref check(PyObject* p) {
        if (!p) throw ErrorPending();
        return Ref(p);
    }

    Ref(const Ref&) = delete;
    Ref& operator=(const Ref&) = delete;
    Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Ref& operator=(Ref&& o) noexcept {
        if (this != &o) {
            Py_XDECREF(p_);
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    ~Ref() { Py_XDECREF(p_); }

    PyObject* get() const { return p_; }
    PyObject* release() { return std::exchange(p_, nullptr); }
    explicit operator bool() const { return p_ != nullptr; }

private:
    explicit Ref(PyObject* p) : p_(p) {}
    PyObject* p_ = nullptr;
};

// Throws ErrorPending when a status-returning C-API call reported failure (-1).
inline void check_status(int rc) {
    if (rc < 0) throw ErrorPending();
}

}  // namespace py
