// The transport interface every collective runs on: tagged, non-blocking point-to-point
// messages between the ranks of one group, with timeouts and errors that name the peer.
//
// Semantics (the subset of MPI the algorithms need):
//  - isend/irecv return at once; the buffer must stay untouched until the request completes.
//  - Messages between one (sender, receiver, tag) triple are matched in order.
//  - A receive must be posted with exactly the size that is sent; a mismatch is an error.
//  - wait() returns when the request completes and throws loom::Error when the peer is lost
//    or nothing happens for timeout_s seconds -- never hangs.
// Implementations: inproc.h (threads), shm.h (processes on one machine), tcp.h (sockets,
// epoll), mpi.h (OpenMPI).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loom/comm/types.h"

namespace loom::comm {

// Completion state shared by a transport and the caller. The transport calls complete() or
// fail(); waiters spin briefly, then sleep on a futex.
class RequestState {
 public:
  bool done() const { return state_.load(std::memory_order_acquire) != 0; }
  void complete();
  void fail(std::string why);
  // Waits up to timeout_ns; returns done().
  bool wait_for(int64_t timeout_ns);
  const std::string& error() const { return error_; }  // set when failed (after done())
  bool failed() const { return state_.load(std::memory_order_acquire) == 2; }

  // Bookkeeping for error messages.
  int peer = -1;
  uint32_t tag = 0;
  size_t bytes = 0;
  bool is_send = false;

 private:
  std::atomic<uint32_t> state_{0};  // 0 pending, 1 done, 2 failed
  std::atomic<uint32_t> sleepers_{0};
  std::string error_;
};

using Request = std::shared_ptr<RequestState>;

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* kind() const = 0;  // "inproc", "shm", "tcp", "mpi"

  virtual Request isend(int peer, uint32_t tag, const void* data, size_t bytes) = 0;
  virtual Request irecv(int peer, uint32_t tag, void* data, size_t bytes) = 0;
  // A receive that reduces into data (data[i] = data[i] op message[i]) as the bytes arrive,
  // saving the staging copy; null when the transport cannot (the caller then receives into
  // scratch memory and reduces itself).
  virtual Request irecv_reduce(int /*peer*/, uint32_t /*tag*/, void* /*data*/, size_t /*bytes*/, DType /*t*/,
                               ReduceOp /*op*/) {
    return nullptr;
  }

  // Waits for one request; throws loom::Error naming the peer on failure or timeout.
  void wait(const Request& r);
  void wait_all(const std::vector<Request>& rs);

  void send(int peer, uint32_t tag, const void* data, size_t bytes) { wait(isend(peer, tag, data, bytes)); }
  void recv(int peer, uint32_t tag, void* data, size_t bytes) { wait(irecv(peer, tag, data, bytes)); }

  double timeout_s() const { return timeout_s_; }
  void set_timeout(double seconds) { timeout_s_ = seconds; }

 protected:
  // Called repeatedly by wait() for transports whose progress is driven by the waiting thread
  // (shm); returns true if it moved anything. Transports with their own I/O thread keep the
  // default.
  virtual bool progress() { return false; }
  // Called by wait() every ~100 ms while blocked: a transport checks that its peers are alive
  // and fails their requests if not.
  virtual void check_peers() {}
  // Whether wait() may sleep on the request (false: the caller must keep calling progress()).
  virtual bool can_sleep() const { return true; }
  // For transports that cannot sleep on the request: block up to max_ns until something may
  // have arrived (shm sleeps on a doorbell its peers ring); idle_ns is how long this wait has
  // gone without progress. The default yields the CPU.
  virtual void idle_wait(int64_t max_ns, int64_t idle_ns);
  // How long wait() spins before it sleeps (transports whose progress needs another thread of
  // this process spin less, so that thread gets the CPU).
  virtual int spin_iterations() const { return 4000; }
  // For transports that cannot sleep on the request: idle progress polls before idle_wait().
  virtual int idle_polls() const { return 256; }
  Request make_request(int peer, uint32_t tag, size_t bytes, bool is_send);
  // The request of a reducing receive, after checking its arguments (bytes must be a whole
  // number of elements: fragments are reduced as they arrive).
  Request make_reduce_request(int peer, uint32_t tag, const void* data, size_t bytes, DType t);
  void check_peer_arg(const char* what, int peer, size_t bytes, const void* data) const;

 private:
  double timeout_s_ = 60.0;
};

// Default timeout from LOOM_COMM_TIMEOUT (seconds), else 60.
double default_timeout_s();

}  // namespace loom::comm
