#include "loom/comm/transport.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "loom/base/error.h"

namespace loom::comm {
namespace {

int64_t mono_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

long futex(std::atomic<uint32_t>* addr, int op, uint32_t val, const timespec* ts) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), op, val, ts, nullptr, 0);
}

}  // namespace

void RequestState::complete() {
  state_.store(1, std::memory_order_release);
  if (sleepers_.load(std::memory_order_acquire) != 0) futex(&state_, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr);
}

void RequestState::fail(std::string why) {
  if (state_.load(std::memory_order_acquire) != 0) return;
  error_ = std::move(why);
  state_.store(2, std::memory_order_release);
  if (sleepers_.load(std::memory_order_acquire) != 0) futex(&state_, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr);
}

bool RequestState::wait_for(int64_t timeout_ns) {
  if (done()) return true;
  sleepers_.fetch_add(1, std::memory_order_acq_rel);
  const int64_t deadline = mono_ns() + timeout_ns;
  while (!done()) {
    const int64_t left = deadline - mono_ns();
    if (left <= 0) break;
    timespec ts{static_cast<time_t>(left / 1000000000), static_cast<long>(left % 1000000000)};
    futex(&state_, FUTEX_WAIT_PRIVATE, 0, &ts);
  }
  sleepers_.fetch_sub(1, std::memory_order_acq_rel);
  return done();
}

double default_timeout_s() {
  if (const char* e = std::getenv("LOOM_COMM_TIMEOUT")) {
    char* end = nullptr;
    const double v = std::strtod(e, &end);
    if (end != e && v > 0) return v;
  }
  return 60.0;
}

void Transport::idle_wait(int64_t, int64_t) { sched_yield(); }

Request Transport::make_request(int peer, uint32_t tag, size_t bytes, bool is_send) {
  auto r = std::make_shared<RequestState>();
  r->peer = peer;
  r->tag = tag;
  r->bytes = bytes;
  r->is_send = is_send;
  return r;
}

Request Transport::make_reduce_request(int peer, uint32_t tag, const void* data, size_t bytes, DType t) {
  check_peer_arg("irecv", peer, bytes, data);
  LOOM_CHECK(bytes % dtype_size(t) == 0, "comm {}: reducing receive of {} bytes is not a whole number of {}", kind(),
             bytes, dtype_name(t));
  return make_request(peer, tag, bytes, false);
}

void Transport::check_peer_arg(const char* what, int peer, size_t bytes, const void* data) const {
  LOOM_CHECK(peer >= 0 && peer < size() && peer != rank(), "comm {}: rank {} of {}: invalid peer {}", what, rank(),
             size(), peer);
  LOOM_CHECK(bytes == 0 || data != nullptr, "comm {}: rank {}: null buffer of {} bytes", what, rank(), bytes);
}

void Transport::wait(const Request& r) {
  if (!r->done()) {
    const int64_t start = mono_ns();
    const int64_t timeout_ns = static_cast<int64_t>(timeout_s_ * 1e9);
    int64_t last_check = start;
    // Spin first: a reply within a few microseconds is the common case on one machine.
    for (int i = 0, n = spin_iterations(); i < n && !r->done(); ++i) {
      if (!progress()) cpu_relax();
    }
    int idle = 0;
    int64_t idle_start = mono_ns();  // start of the current stretch without progress
    while (!r->done()) {
      const int64_t now = mono_ns();
      if (now - start > timeout_ns) {
        LOOM_THROW(
            "comm {}: rank {} timed out after {:.0f} s waiting to {} {} bytes {} rank {} (tag {}); is rank {} "
            "alive?",
            kind(), rank(), timeout_s_, r->is_send ? "send" : "receive", r->bytes, r->is_send ? "to" : "from", r->peer,
            r->tag, r->peer);
      }
      if (now - last_check > 100'000'000) {
        check_peers();
        last_check = now;
        continue;
      }
      if (can_sleep()) {
        r->wait_for(std::min<int64_t>(100'000'000, timeout_ns));
      } else if (progress()) {
        idle = 0;
        idle_start = now;
      } else if (++idle > idle_polls()) {
        idle_wait(std::min<int64_t>(50'000'000, timeout_ns), now - idle_start);
      } else {
        cpu_relax();
      }
    }
  }
  if (r->failed()) {
    LOOM_THROW("comm {}: rank {} could not {} {} bytes {} rank {} (tag {}): {}", kind(), rank(),
               r->is_send ? "send" : "receive", r->bytes, r->is_send ? "to" : "from", r->peer, r->tag, r->error());
  }
}

void Transport::wait_all(const std::vector<Request>& rs) {
  for (const auto& r : rs) wait(r);
}

}  // namespace loom::comm
