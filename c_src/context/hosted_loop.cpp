#include "context/hosted_loop.hpp"

#include <utility>

#include "py/ref.hpp"

namespace context {

void HostedLoop::set(PyObject* loop, aio::Poller* poller) {
    Py_XINCREF(loop);
    PyObject* old = std::exchange(loop_, loop);
    poller_ = loop ? aio::PollerPtr::share(poller) : aio::PollerPtr();
    deadline_ = Clock::time_point::min();  // step it at once
    Py_XDECREF(old);
}

bool HostedLoop::due() const {
    if (!loop_ || in_step_) return false;
    return poller_->has_ready() || poller_->step_requested() || tasks_abandoned_.load(std::memory_order_acquire) ||
           Clock::now() >= deadline_;
}

void HostedLoop::step() {
    poller_->take_step_request();
    in_step_ = true;
    py::Ref loop = py::Ref::borrow(loop_);  // the step may drop the context's reference
    if (tasks_abandoned_.exchange(false, std::memory_order_acq_rel)) {
        py::Ref done = py::Ref::steal(PyObject_CallMethod(loop.get(), "_erlang_cancel_abandoned", nullptr));
        if (!done) PyErr_WriteUnraisable(loop.get());
    }
    py::Ref next = py::Ref::steal(PyObject_CallMethod(loop.get(), "_erlang_step", nullptr));
    in_step_ = false;
    deadline_ = Clock::time_point::max();
    if (!next) {
        PyErr_WriteUnraisable(loop.get());
        return;
    }
    if (next.get() == Py_None) return;
    double when = PyFloat_AsDouble(next.get());
    if (when == -1.0 && PyErr_Occurred()) {
        PyErr_WriteUnraisable(loop.get());
        return;
    }
    // loop.time() is time.monotonic(), the clock steady_clock reads on Linux.
    deadline_ = Clock::time_point(from_seconds(when));
}

void HostedLoop::shutdown() {
    py::Ref loop = py::Ref::borrow(loop_);
    py::Ref done = py::Ref::steal(PyObject_CallMethod(loop.get(), "_erlang_shutdown", nullptr));
    if (!done) PyErr_WriteUnraisable(loop.get());
    set(nullptr, nullptr);
}

}  // namespace context
