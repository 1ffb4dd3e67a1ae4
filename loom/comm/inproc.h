// In-process transport: ranks are threads of one process sharing an InProcWorld. A message
// is copied once, straight from the sender's buffer into the receiver's (rendezvous: a send
// completes when the matching receive has copied it), so there is no staging buffer.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "loom/comm/matcher.h"
#include "loom/comm/transport.h"

namespace loom::comm {

class InProcWorld {
 public:
  explicit InProcWorld(int size);
  int size() const { return static_cast<int>(boxes_.size()); }
  // The transport of one rank; call from that rank's thread. Owned by the world.
  Transport& transport(int rank);
  // Marks a rank as failed: every pending and future request that involves it fails with
  // `why` (a rank thread that throws calls this so that its peers do not wait forever).
  void fail_rank(int rank, const std::string& why);
  int first_failed() const { return first_failed_; }  // -1 while every rank is healthy

 private:
  friend class InProcTransport;
  struct Pending {
    int peer;  // sender (in a receiver's box) or receiver
    uint32_t tag;
    void* recv_data;        // for posted receives
    const void* send_data;  // for waiting sends
    size_t bytes;
    Request req;
    detail::Reduction red;  // posted receives: reduce instead of copy
  };
  struct Box {  // the mailbox of one receiving rank
    std::mutex mu;
    std::deque<Pending> sends;  // sends that arrived before their receive
    std::deque<Pending> recvs;  // receives posted before their send
  };
  std::vector<std::unique_ptr<Box>> boxes_;
  std::vector<std::unique_ptr<Transport>> transports_;
  std::mutex fail_mu_;
  std::vector<std::string> failed_;  // per rank; empty = alive
  std::atomic<bool> any_failed_{false};
  int first_failed_ = -1;
};

// Runs fn(transport) on `ranks` threads of one InProcWorld and rethrows the first error.
// A rank that throws fails its peers' pending requests, so nobody hangs.
void run_inproc(int ranks, const std::function<void(Transport&)>& fn);

}  // namespace loom::comm
