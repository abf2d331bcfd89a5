#include "context/interrupter.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include "py/attached.hpp"

namespace context {
namespace {

using Clock = std::chrono::steady_clock;

// How often a target that could not be interrupted yet (its code was not the one running,
// e.g. the thread was stepping its event loop) is looked at again.
constexpr std::chrono::milliseconds kRetry{10};
// How long code that caught erlang.Interrupted and went on runs before the next one.
constexpr std::chrono::milliseconds kResend{100};

// Precondition: attached to ts's interpreter. Whether ts runs code of the import machinery.
bool importing(PyThreadState* ts) {
    PyFrameObject* frame = PyThreadState_GetFrame(ts);  // new references, up the stack
    while (frame) {
        PyCodeObject* code = PyFrame_GetCode(frame);
        const char* file = PyUnicode_AsUTF8(code->co_filename);
        bool in_import = file && std::strstr(file, "importlib") && std::strstr(file, "_bootstrap");
        Py_DECREF(code);
        if (in_import) {
            Py_DECREF(frame);
            return true;
        }
        PyFrameObject* back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    PyErr_Clear();
    return false;
}

}  // namespace

void Interrupter::bind(PyThreadState* tstate, unsigned long thread_id, PyObject* exception) {
    tstate_ = tstate;
    interp_ = PyThreadState_GetInterpreter(tstate);
    thread_id_ = thread_id;
    exception_ = exception;
}

void Interrupter::settle(Request& req) const {
    if (!req.interrupt_sent) return;
    req.interrupt_sent = false;
    PyThreadState_SetAsyncExc(thread_id_, nullptr);  // clears a pending one, if any
}

bool Interrupter::add(RequestPtr req) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closing_ || !interp_) return false;
    targets_.push_back({std::move(req), Clock::now()});
    changed_.notify_all();
    if (thread_running_) return false;
    thread_running_ = true;
    return true;
}

bool Interrupter::add_running() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closing_ || !interp_) return false;
    interrupt_running_ = true;
    changed_.notify_all();
    if (thread_running_) return false;
    thread_running_ = true;
    return true;
}

bool Interrupter::stop(StopHandler& handler) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closing_ || !interp_ || stopping_) return false;
    stopping_ = &handler;
    next_stop_ = Clock::now();
    changed_.notify_all();
    if (thread_running_) return false;
    thread_running_ = true;
    return true;
}

void Interrupter::thread_failed() {
    std::vector<Target> dropped;
    std::lock_guard<std::mutex> lock(mutex_);
    dropped.swap(targets_);
    interrupt_running_ = false;
    thread_running_ = false;
    changed_.notify_all();
}

void Interrupter::run() {
    std::unique_lock<std::mutex> lock(mutex_);
    std::vector<Request*> due;
    std::vector<bool> sent;
    for (;;) {
        if (drop_ended(lock)) continue;
        if (closing_ || (targets_.empty() && !interrupt_running_ && !stopping_)) {
            std::vector<Target> dropped;
            dropped.swap(targets_);
            interrupt_running_ = false;
            thread_running_ = false;
            changed_.notify_all();
            lock.unlock();
            return;
        }
        auto now = Clock::now();
        if (stopping_ && now >= next_stop_) {
            lock.unlock();
            stop_now();
            lock.lock();
            next_stop_ = Clock::now() + kResend;
            continue;
        }
        due.clear();
        for (const Target& t : targets_)
            if (now >= t.next_try) due.push_back(t.req.get());
        bool take_running = std::exchange(interrupt_running_, false);
        if (due.empty() && !take_running) {
            auto until = stopping_ ? next_stop_ : Clock::time_point::max();
            for (const Target& t : targets_) until = std::min(until, t.next_try);  // a copy: add() may move them
            changed_.wait_until(lock, until);
            continue;
        }
        sent.assign(due.size(), false);
        RequestPtr running;
        lock.unlock();
        interrupt_now(due, sent,
                      take_running ? &running : nullptr);  // the targets stay alive: only this thread erases them
        lock.lock();
        reschedule(due, sent, std::move(running));
    }
}

// Precondition: mutex_ held by lock. Drops the targets whose request ended, outside the lock
// (their memory may go with them); true when there were some.
bool Interrupter::drop_ended(std::unique_lock<std::mutex>& lock) {
    auto live =
        std::stable_partition(targets_.begin(), targets_.end(), [](const Target& t) { return !t.req->ended(); });
    if (live == targets_.end()) return false;
    std::vector<Target> ended(std::make_move_iterator(live), std::make_move_iterator(targets_.end()));
    targets_.erase(live, targets_.end());
    lock.unlock();
    ended.clear();
    lock.lock();
    return true;
}

// Precondition: mutex_ held. After an attempt: an interrupted target is tried again in kResend
// (if its code goes on), one that was not the running code in kRetry; `running' (interrupted
// by py:interrupt/1) becomes a target.
void Interrupter::reschedule(const std::vector<Request*>& due, const std::vector<bool>& sent, RequestPtr running) {
    auto now = Clock::now();
    if (running) targets_.push_back({std::move(running), now + kResend});
    for (Target& t : targets_) {
        auto it = std::find(due.begin(), due.end(), t.req.get());
        if (it != due.end()) t.next_try = now + (sent[size_t(it - due.begin())] ? kResend : kRetry);
    }
}

// Attaches to the interpreter (waiting for its GIL) and raises the exception in the context
// thread if one of the due requests is the one it runs. With the GIL held, running_ is stable:
// the context thread changes it only while it holds the GIL itself. With `running`, also
// interrupts the request running now, if any, and returns it there (alive: the context thread
// is inside it and cannot leave while this holds the GIL).
void Interrupter::interrupt_now(std::vector<Request*>& due, std::vector<bool>& sent, RequestPtr* running) {
    {
        py::Attached attached = py::Attached::visiting(interp_);
        if (!attached) return;
        Request* current = this->running();
        if (running && current && !current->ended()) {
            *running = RequestPtr::share(current);  // a target from now on (tried again if importing)
            if (!importing(tstate_) && PyThreadState_SetAsyncExc(thread_id_, exception_) > 0)
                current->interrupt_sent = true;
        }
        for (size_t i = 0; i < due.size(); ++i) {
            if (due[i] != current || due[i]->ended() || importing(tstate_)) continue;
            if (PyThreadState_SetAsyncExc(thread_id_, exception_) > 0) {
                due[i]->interrupt_sent = true;
                sent[i] = true;
                raised_.fetch_add(1, std::memory_order_relaxed);
            }
        }
    }
    // A context thread waiting for its event loop's descriptors goes back to the code.
    if (std::find(sent.begin(), sent.end(), true) != sent.end() || (running && *running)) queue_.wake();
}

// The context is stopping: its queued requests are answered, then (attached, so that what the
// context thread holds is stable) those it has taken, and the code that runs is interrupted.
void Interrupter::stop_now() {
    StopHandler* handler = nullptr;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        handler = stopping_;
    }
    handler->answer_queued();
    bool sent = false;
    {
        py::Attached attached = py::Attached::visiting(interp_);
        if (!attached) return;
        handler->answer_held();
        Request* current = running();
        if (current && !current->ended() && !importing(tstate_) &&
            PyThreadState_SetAsyncExc(thread_id_, exception_) > 0) {
            current->interrupt_sent = true;
            sent = true;
        }
    }
    if (sent) queue_.wake();
}

void Interrupter::close() {
    std::unique_lock<std::mutex> lock(mutex_);
    closing_ = true;
    changed_.notify_all();
    changed_.wait(lock, [&] { return !thread_running_; });
}

}  // namespace context
