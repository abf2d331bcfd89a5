#include "context/stack_probe.hpp"

#include <string>
#include <string_view>

#include "erl/atoms.hpp"
#include "erl/terms.hpp"
#include "py/attached.hpp"

namespace context {
namespace {

// Deeper stacks are cut (the innermost frames are kept): a runaway recursion is ~1,000 deep.
constexpr size_t kMaxFrames = 200;

struct Frame {
    std::string file;
    std::string function;
    int line;
};

std::string utf8_of(PyObject* text) {
    Py_ssize_t size = 0;
    const char* utf8 = text ? PyUnicode_AsUTF8AndSize(text, &size) : nullptr;
    if (!utf8) {
        PyErr_Clear();  // e.g. a lone surrogate in a file name
        return "?";
    }
    return {utf8, size_t(size)};
}

// Precondition: attached to ts's interpreter. ts's frames, innermost first.
std::vector<Frame> frames_of(const py::Attached&, PyThreadState* ts) {
    std::vector<Frame> frames;
    PyFrameObject* frame = PyThreadState_GetFrame(ts);  // new references, up the stack
    while (frame && frames.size() < kMaxFrames) {
        PyCodeObject* code = PyFrame_GetCode(frame);
        frames.push_back({utf8_of(code->co_filename), utf8_of(code->co_qualname), PyFrame_GetLineNumber(frame)});
        Py_DECREF(code);
        PyFrameObject* back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    Py_XDECREF(frame);
    PyErr_Clear();
    return frames;
}

ERL_NIF_TERM make_frames(ErlNifEnv* env, const std::vector<Frame>& frames) {
    ERL_NIF_TERM keys[3] = {enif_make_atom(env, "file"), enif_make_atom(env, "line"), enif_make_atom(env, "function")};
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (size_t i = frames.size(); i-- > 0;) {  // the list is built from its tail
        const Frame& frame = frames[i];
        ERL_NIF_TERM values[3] = {erl::make_binary(env, frame.file), enif_make_int(env, frame.line),
                                  erl::make_binary(env, frame.function)};
        ERL_NIF_TERM map{};
        if (!enif_make_map_from_arrays(env, keys, values, 3, &map)) map = erl::atoms().error;
        list = enif_make_list_cell(env, map, list);
    }
    return list;
}

// caller_env: nullptr on threads of our own, the calling NIF's environment on a scheduler.
void send_result(ErlNifEnv* env, const ErlNifPid& to, ERL_NIF_TERM tag, ERL_NIF_TERM result,
                 ErlNifEnv* caller_env = nullptr) {
    ErlNifPid pid = to;
    ERL_NIF_TERM msg = enif_make_tuple3(env, enif_make_atom(env, "py_backtrace"), tag, result);
    ErlNifEnv* msg_env = env;
    enif_send(caller_env, &pid, msg_env, msg);
    enif_clear_env(msg_env);
}

}  // namespace

void StackProbe::bind(PyThreadState* tstate) {
    std::lock_guard<std::mutex> lock(mutex_);
    tstate_ = tstate;
    interp_ = PyThreadState_GetInterpreter(tstate);
}

StackProbe::Added StackProbe::add(const ErlNifPid& to, ERL_NIF_TERM tag, RequestPtr about) {
    Ask ask{to, erl::OwnedEnv(), 0, std::move(about)};
    ask.tag = ask.env.copy(tag);
    std::lock_guard<std::mutex> lock(mutex_);
    if (closing_ || !interp_) return Added::Refused;  // ask goes with its request reference
    asks_.push_back(std::move(ask));
    changed_.notify_all();
    if (thread_running_) return Added::Queued;
    thread_running_ = true;
    return Added::Start;
}

void StackProbe::thread_failed(ErlNifEnv* caller_env) {
    std::vector<Ask> dropped;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        dropped.swap(asks_);
        thread_running_ = false;
        changed_.notify_all();
    }
    answer_stopped(dropped, caller_env);
}

void StackProbe::run() {
    std::vector<Ask> asks;
    for (;;) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            asks.swap(asks_);
            if (asks.empty()) {
                thread_running_ = false;
                changed_.notify_all();
                return;
            }
        }
        answer_all(asks);
        asks.clear();  // outside the lock: a request reference may be the last one
    }
}

// Attaches to the interpreter (waiting for its GIL) and reads the context thread's frames and
// its running request: both are stable while the GIL is held (the context thread changes them
// only while it holds the GIL itself). Terms are built after detaching.
void StackProbe::answer_all(std::vector<Ask>& asks) {
    std::vector<Frame> frames;
    std::vector<bool> is_running;
    Request* current = nullptr;  // compared with null only once detached
    {
        py::Attached attached = py::Attached::visiting(interp_);
        if (!attached) {
            answer_stopped(asks, nullptr);
            return;
        }
        current = running_.running();
        frames = frames_of(attached, tstate_);
        is_running.reserve(asks.size());
        for (const Ask& ask : asks) is_running.push_back(ask.about && ask.about.get() == current);
    }

    for (size_t i = 0; i < asks.size(); ++i) {
        Ask& ask = asks[i];
        ErlNifEnv* env = ask.env.get();
        ERL_NIF_TERM stack = frames.empty() && !current ? erl::atoms().idle : make_frames(env, frames);
        ERL_NIF_TERM result = stack;
        if (ask.about) {
            if (ask.about->finished() || ask.about->ended()) result = enif_make_atom(env, "finished");
            else if (is_running[i]) result = enif_make_tuple2(env, enif_make_atom(env, "running"), stack);
            else result = enif_make_tuple2(env, enif_make_atom(env, "not_running"), stack);
        }
        send_result(env, ask.to, ask.tag, result);
    }
}

void StackProbe::answer_stopped(std::vector<Ask>& asks, ErlNifEnv* caller_env) {
    for (Ask& ask : asks) {
        ErlNifEnv* env = ask.env.get();
        send_result(env, ask.to, ask.tag, enif_make_tuple2(env, erl::atoms().error, erl::atoms().context_stopped),
                    caller_env);
    }
    asks.clear();
}

void StackProbe::close() {
    std::vector<Ask> left;
    {
        std::unique_lock<std::mutex> lock(mutex_);
        closing_ = true;
        changed_.wait(lock, [&] { return !thread_running_; });
        left.swap(asks_);
    }
    answer_stopped(left, nullptr);
}

}  // namespace context
