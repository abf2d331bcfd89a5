// Attachment to Python as a scoped type. A thread runs Python only while it holds a thread
// state (and, with it, its interpreter's GIL): an Attached is that holding, from its making to
// its end, and a function that needs the GIL takes `const Attached&` as proof. Released is the
// inverse scope (the GIL given up around a wait). Both are move-only or fixed; neither is ever
// shared between threads. Precondition: each guard is made and ended on one thread.
#pragma once

#include <Python.h>

#include <utility>

namespace py {

class Attached {
public:
    // Attaches ts (waiting for its interpreter's GIL). Precondition: the calling thread is
    // detached; ts is a thread state of it that no other thread uses.
    explicit Attached(PyThreadState* ts) : ts_(ts), end_(End::Detach) { PyEval_RestoreThread(ts); }

    // The calling thread is attached with ts already (a function attached it: creating an
    // interpreter does): the guard detaches it at its end.
    static Attached adopt(PyThreadState* ts) { return {ts, End::Detach}; }

    // Attaches ts, then clears and deletes it at the guard's end. Precondition: as the
    // constructor's.
    static Attached deleting(PyThreadState* ts) {
        PyEval_RestoreThread(ts);
        return {ts, End::Delete};
    }

    // A new thread state of interp attached for the guard's life, then cleared and deleted: a
    // thread visiting an interpreter it does not run (the interrupter, the stack probe).
    // Precondition: detached. Empty (false) when no thread state could be made.
    static Attached visiting(PyInterpreterState* interp) {
        PyThreadState* ts = PyThreadState_New(interp);
        if (!ts) return {nullptr, End::Nothing};
        return deleting(ts);
    }

    Attached(Attached&& other) noexcept
        : ts_(std::exchange(other.ts_, nullptr)), end_(std::exchange(other.end_, End::Nothing)) {}
    Attached(const Attached&) = delete;
    Attached& operator=(const Attached&) = delete;
    Attached& operator=(Attached&&) = delete;

    ~Attached() {
        switch (end_) {
            case End::Detach: PyEval_SaveThread(); break;
            case End::Delete:
                PyThreadState_Clear(ts_);
                PyThreadState_DeleteCurrent();
                break;
            case End::Nothing: break;
        }
    }

    explicit operator bool() const { return ts_ != nullptr; }
    PyThreadState* thread_state() const { return ts_; }

    // The guard's thread state is no longer attached by its doing: it was ended
    // (PyThreadState_DeleteCurrent, Py_EndInterpreter) or swapped for another
    // (Py_NewInterpreterFromConfig). The guard's end does nothing. Consumes the guard.
    static void dismiss(Attached&& attached) {
        attached.ts_ = nullptr;
        attached.end_ = End::Nothing;
    }

private:
    enum class End { Detach, Delete, Nothing };
    Attached(PyThreadState* ts, End end) : ts_(ts), end_(end) {}

    PyThreadState* ts_;
    End end_;
};

// Detached for the guard's life, attached again with the same thread state at its end.
// Precondition: attached (the proof, or without one: entered from Python or under an Attached
// further up the stack), on the thread that holds it.
class Released {
public:
    explicit Released(const Attached&) : ts_(PyEval_SaveThread()) {}
    Released() : ts_(PyEval_SaveThread()) {}
    ~Released() { PyEval_RestoreThread(ts_); }
    Released(const Released&) = delete;
    Released& operator=(const Released&) = delete;

private:
    PyThreadState* ts_;
};

}  // namespace py
