// One Python interpreter as the NIF sees it: its state pointer, a serial that no other
// interpreter ever has (py/serial.hpp: a new interpreter often gets a dead one's state address),
// and a queue of references to drop. Any thread may push to the queue or read the serial and
// whether it is alive; only a thread attached to this interpreter drains the queue.
#pragma once

#include <Python.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "py/serial.hpp"

namespace py {

class Interpreter {
public:
    explicit Interpreter(PyInterpreterState* state) : state_(state) {}
    Interpreter(const Interpreter&) = delete;
    Interpreter& operator=(const Interpreter&) = delete;
    ~Interpreter() = default;

    // Only meaningful while alive(): after the interpreter ends the address may be reused.
    PyInterpreterState* state() const { return state_; }
    // The identity to compare: equal serials are the same, living or dead, interpreter.
    Serial serial() const { return serial_; }
    // False once the interpreter has been destroyed (mark_dead).
    bool alive() const { return !dead_.load(std::memory_order_acquire); }

    // Any thread, never blocks on Python: the reference is dropped by the next drain. After
    // the interpreter has been destroyed the pointer is forgotten (its memory went with it).
    void defer_decref(PyObject* obj) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (dead_.load(std::memory_order_relaxed)) return;
        pending_.push_back(obj);
        has_pending_.store(true, std::memory_order_release);
    }

    // Precondition: the calling thread is attached to this interpreter.
    void drain() {
        if (!has_pending_.load(std::memory_order_acquire)) return;
        std::vector<PyObject*> batch;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            batch.swap(pending_);
            has_pending_.store(false, std::memory_order_relaxed);
        }
        for (PyObject* obj : batch) Py_DECREF(obj);
    }

    // Called by the thread that destroys the interpreter, after it is gone.
    void mark_dead() {
        std::lock_guard<std::mutex> lock(mutex_);
        dead_.store(true, std::memory_order_release);
        pending_.clear();
    }

private:
    PyInterpreterState* state_;
    const Serial serial_ = next_serial();
    std::mutex mutex_;
    std::vector<PyObject*> pending_;
    std::atomic<bool> has_pending_{false};
    std::atomic<bool> dead_{false};  // written under mutex_
};

using InterpreterPtr = std::shared_ptr<Interpreter>;

}  // namespace py
