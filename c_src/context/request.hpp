// One call/eval/exec request travelling from a calling process to a context's worker thread.
// Any thread: fields are written before the request is queued and read by the worker after;
// only `state_` is shared concurrently (caller cancels, worker starts and replies).
#pragma once

#include <erl_nif.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <variant>

#include "context/namespace.hpp"
#include "context/reply_slot.hpp"
#include "erl/env.hpp"
#include "erl/resource.hpp"
#include "py/serial.hpp"

namespace context {

class Context;

// What a request carries, one type per kind: terms copied into the request's env().
struct CallMessage {  // py:call: Module.Function(*Args, **Kwargs)
    ERL_NIF_TERM module, function, args, kwargs;
};
struct EvalMessage {  // py:eval: Code with Locals
    ERL_NIF_TERM code, locals;
};
struct ExecMessage {  // py:exec
    ERL_NIF_TERM code;
};
struct ResetMessage {};  // py_context:reset
// Not a request of a caller but the answer to one the context's code made (erlang.call): the
// id of the callback it answers and its result ({ok, V} | {error, {Class, Reason}} | atom).
// It has no caller, tag or namespace; it only travels the same queue.
struct CallbackReplyMessage {
    uint64_t id;
    ERL_NIF_TERM result;
};
using Message = std::variant<CallMessage, EvalMessage, ExecMessage, ResetMessage, CallbackReplyMessage>;

// What a Call or Eval does with the object its Python code returns.
//   Plain: converts it and replies. Async: an awaitable runs as a task on the context's event
//   loop and the reply follows when it finishes (any other value is replied at once). Stream:
//   a generator or async generator is collected into a list. StreamStart: each item is sent
//   to reply_to() as {py_stream, Tag, {data, V}} as it is produced, then done or {error, R};
//   with a stream window, the producer waits while that many items are not acknowledged.
enum class ResultMode { Plain, Async, Stream, StreamStart };

class Request {
public:
    // Sending: a StreamStart chunk is being sent (the canceller waits for it to be in the mailbox).
    enum class State : int { Pending, Running, InCallback, Sending, Replied, Cancelled };
    // CancelledRunning: its Python code was running (the canceller asks for an interrupt).
    // CancelledInCallback: the caller also has one {py_callback, ...} message to flush, and the
    // worker waits for a callback reply that will not come (the canceller must send an abort).
    enum class CancelOutcome { Cancelled, CancelledRunning, CancelledInCallback, AlreadyReplied };

    Request(const ErlNifPid& caller, erl::ResourcePtr<Namespace> ns)
        : caller_(caller), reply_to_(caller), ns_(std::move(ns)) {}

    // Set before the request is queued, its terms copied into env() first.
    const Message& message() const { return message_; }
    void set_message(const Message& message) { message_ = message; }
    bool is_callback_reply() const { return std::holds_alternative<CallbackReplyMessage>(message_); }
    const ErlNifPid& caller() const { return caller_; }
    // Where StreamStart items go (the caller unless set before the request is queued).
    const ErlNifPid& reply_to() const { return reply_to_; }
    void set_reply_to(const ErlNifPid& pid) { reply_to_ = pid; }
    ResultMode mode() const { return mode_; }
    void set_mode(ResultMode mode) { mode_ = mode; }
    Namespace* ns() const { return ns_.get(); }
    // The serial of the context it was queued to (set before queuing). An identity, not a
    // reference: the request may outlive the context, and another context may take its address.
    py::Serial context_serial() const { return context_serial_; }
    void set_context_serial(py::Serial ctx) { context_serial_ = ctx; }
    ErlNifEnv* env() const { return env_.get(); }

    // The reply tag, copied into env() (none for a CallbackReplyMessage).
    ERL_NIF_TERM tag = 0;
    // When it was queued, in ticks (context/stats.hpp: set before queuing, read by the context
    // thread for its queue-wait figure).
    uint64_t submitted_at = 0;
    ERL_NIF_TERM copy(ERL_NIF_TERM t) { return env_.copy(t); }

    // Where the final reply waits when the caller polls for it (py_request:wait).
    ReplySlot& reply_slot() { return reply_slot_; }
    // Caller only, after queuing: whether the worker was idle and awake, so that polling for
    // the reply is worth a few microseconds.
    bool reply_soon() const { return reply_soon_; }
    void set_reply_soon(bool soon) { reply_soon_ = soon; }

    // Worker: claims the request. False when the caller cancelled it first.
    bool try_start() { return transition(State::Pending, State::Running); }
    // Worker: claims the right to reply. False when the caller cancelled meanwhile.
    bool try_reply() { return transition(State::Running, State::Replied); }
    // Worker: about to send callback `id` to the caller. False when the caller cancelled.
    bool try_enter_callback(uint64_t id) {
        callback_id_.store(id, std::memory_order_relaxed);
        return transition(State::Running, State::InCallback);
    }
    // Worker: the callback's reply arrived. False when the caller cancelled meanwhile.
    bool try_leave_callback() { return transition(State::InCallback, State::Running); }
    uint64_t callback_id() const { return callback_id_.load(std::memory_order_relaxed); }
    // Worker: brackets the sending of one stream item. False when the caller cancelled.
    bool try_begin_chunk() { return transition(State::Running, State::Sending); }
    void end_chunk() {
        transition(State::Sending, State::Running);
        ++items_sent_;
    }

    // StreamStart backpressure: at most stream_window() items sent and not acknowledged
    // (0: no bound). Set before queuing; ack_items from any thread; room() on the worker.
    void set_stream_window(uint32_t window) { stream_window_ = window; }
    // Stream: the most items collected (0: no bound). Set before queuing.
    void set_stream_max_items(uint64_t n) { stream_max_items_ = n; }
    uint64_t stream_max_items() const { return stream_max_items_; }
    uint32_t stream_window() const { return stream_window_; }
    void ack_items(uint64_t n) { items_acked_.fetch_add(n, std::memory_order_acq_rel); }
    bool room() const {
        return stream_window_ == 0 || items_sent_ - items_acked_.load(std::memory_order_acquire) < stream_window_;
    }

    // Caller: gives up. AlreadyReplied means the reply is (or is about to be) in its mailbox.
    CancelOutcome cancel() {
        int s = state_.load(std::memory_order_acquire);
        for (;;) {  // a chunk being sent reaches the mailbox before the cancel takes effect
            while (s == int(State::Sending)) {
                std::this_thread::yield();
                s = state_.load(std::memory_order_acquire);
            }
            if (s != int(State::Pending) && s != int(State::Running) && s != int(State::InCallback)) break;
            int from = s;
            if (state_.compare_exchange_weak(s, int(State::Cancelled), std::memory_order_acq_rel)) {
                if (from == int(State::InCallback)) return CancelOutcome::CancelledInCallback;
                return from == int(State::Running) ? CancelOutcome::CancelledRunning : CancelOutcome::Cancelled;
            }
        }
        return s == int(State::Replied) ? CancelOutcome::AlreadyReplied : CancelOutcome::Cancelled;
    }
    // Any thread, the context stopping: claims the right to answer a request not answered yet
    // (queued, running or waiting for a callback). False when it was answered or cancelled.
    bool try_reply_stopped() {
        int s = state_.load(std::memory_order_acquire);
        for (;;) {  // a chunk being sent reaches the mailbox before the stop's answer
            while (s == int(State::Sending)) {
                std::this_thread::yield();
                s = state_.load(std::memory_order_acquire);
            }
            if (s != int(State::Pending) && s != int(State::Running) && s != int(State::InCallback)) return false;
            if (state_.compare_exchange_weak(s, int(State::Replied), std::memory_order_acq_rel)) return true;
        }
    }
    bool cancelled() const { return state_.load(std::memory_order_acquire) == int(State::Cancelled); }
    bool finished() const {
        int s = state_.load(std::memory_order_acquire);
        return s == int(State::Replied) || s == int(State::Cancelled);
    }

    // Worker: its code no longer runs on the context thread's stack (it replied, failed, was
    // dropped, or handed its reply to a Python object). Read by the interrupter.
    void mark_ended() { ended_.store(true, std::memory_order_release); }
    bool ended() const { return ended_.load(std::memory_order_acquire); }
    // Whether an interrupt was raised in (or is pending for) its code. Read and written only
    // with the context's interpreter attached (its GIL held).
    bool interrupt_sent = false;

private:
    bool transition(State from, State to) {
        int expected = int(from);
        return state_.compare_exchange_strong(expected, int(to), std::memory_order_acq_rel);
    }

    Message message_ = ResetMessage{};
    ErlNifPid caller_;
    ErlNifPid reply_to_;
    ResultMode mode_ = ResultMode::Plain;
    erl::ResourcePtr<Namespace> ns_;
    erl::OwnedEnv env_;
    std::atomic<int> state_{int(State::Pending)};
    std::atomic<uint64_t> callback_id_{0};
    std::atomic<bool> ended_{false};
    uint32_t stream_window_ = 0;
    uint64_t stream_max_items_ = 0;
    uint64_t items_sent_ = 0;  // the worker's
    std::atomic<uint64_t> items_acked_{0};
    ReplySlot reply_slot_;
    py::Serial context_serial_ = 0;

    friend class RequestQueue;
    Request* queue_next_ = nullptr;  // the link while queued (written by the pusher)
    bool reply_soon_ = false;        // the calling process's alone
};

using RequestResource = erl::Resource<Request>;
using RequestPtr = erl::ResourcePtr<Request>;

}  // namespace context
