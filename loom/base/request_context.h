// The request a thread is working for (Magpie-style request tracing, loom/profile).
//
// A request id is explicit context: whoever hands work to another thread (a queue, the
// thread pool, a server stage) captures current_request() and the receiving side restores it
// with a RequestScope. The thread pool does this for its tasks. 0 means "no request".
#pragma once

#include <atomic>
#include <cstdint>

namespace loom {

namespace detail {
inline thread_local uint64_t t_current_request = 0;
inline std::atomic<uint64_t> g_next_request{1};
}  // namespace detail

inline uint64_t current_request() { return detail::t_current_request; }
inline uint64_t new_request_id() { return detail::g_next_request.fetch_add(1, std::memory_order_relaxed); }

// Sets the current request for a scope and restores the previous one on exit.
class RequestScope {
 public:
  explicit RequestScope(uint64_t id) : prev_(detail::t_current_request) { detail::t_current_request = id; }
  ~RequestScope() { detail::t_current_request = prev_; }
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;

 private:
  uint64_t prev_;
};

}  // namespace loom
