// The calling process's handle on a request: the term submit_* returns and poll_reply,
// stop_polling and cancel take. When the last copy of it goes (its process exited, or let go
// of a request it no longer waits for) the request is cancelled and its Python code
// interrupted, so that a dead caller does not keep a context busy.
// Any thread: the destructor runs wherever the handle is garbage collected and never blocks.
#pragma once

#include "context/request.hpp"
#include "erl/resource.hpp"

namespace context {

class RequestHandle {
public:
    explicit RequestHandle(RequestPtr req) : req_(std::move(req)) {}
    RequestHandle(const RequestHandle&) = delete;
    RequestHandle& operator=(const RequestHandle&) = delete;
    ~RequestHandle();

    Request* get() const { return req_.get(); }

private:
    RequestPtr req_;
};

using RequestHandleResource = erl::Resource<RequestHandle>;

// Cancels req on behalf of a caller that gave up on it (any thread, never blocks): a request
// whose code runs is interrupted, one waiting for an Erlang callback gets an abort.
// Returns what cancel() returned.
Request::CancelOutcome cancel_request(Context& ctx, const RequestPtr& req);

}  // namespace context
