// Shared-memory transport between processes on one machine. One POSIX shared-memory segment
// holds a single-producer single-consumer ring of fixed-size slots for every ordered pair of
// ranks; a message is cut into slot-sized fragments (eager: a send completes once its data is
// in the ring). Progress is made by the waiting thread (no helper thread: a waiter polls its
// incoming rings and pushes its queued sends), so an 8-byte message costs one cache-line
// handoff. Ranks find the segment through a Store; a rank whose process exits fails its
// peers' requests ("rank 1 (pid 1234) exited") instead of leaving them to hang.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "loom/comm/matcher.h"
#include "loom/comm/store.h"
#include "loom/comm/transport.h"

namespace loom::comm {

class ShmTransport final : public Transport {
 public:
  static constexpr int kMaxRanks = 64;
  // Collective: every rank of the group constructs one with the same store and prefix.
  ShmTransport(int rank, int size, Store& store, const std::string& prefix = "shm");
  ~ShmTransport() override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* kind() const override { return "shm"; }
  Request isend(int peer, uint32_t tag, const void* data, size_t bytes) override;
  Request irecv(int peer, uint32_t tag, void* data, size_t bytes) override;
  // Reduces each fragment straight out of the ring into data.
  Request irecv_reduce(int peer, uint32_t tag, void* data, size_t bytes, DType t, ReduceOp op) override;

 protected:
  bool progress() override;
  void check_peers() override;
  bool can_sleep() const override { return false; }
  // Sleeps on this rank's doorbell (a futex in the segment) until a peer writes to or frees
  // space in one of its rings, so oversubscribed ranks do not burn each other's CPU.
  void idle_wait(int64_t max_ns, int64_t idle_ns) override;
  // More ranks than CPUs: spinning only delays the rank we wait for, so yield at once.
  int spin_iterations() const override { return oversubscribed_ ? 8 : 4000; }
  int idle_polls() const override { return oversubscribed_ ? 0 : 256; }

 private:
  struct Header;
  struct Channel;
  struct SendOp {
    const char* data;
    size_t bytes, done;
    uint32_t tag;
    Request req;
  };
  Channel* channel(int from, int to) const;
  bool push_sends(int peer);
  // Moves messages out of the ring from `peer`. Lazy (eager=false): stops at a message no
  // posted receive wants, leaving it in its slot so that the receive, once posted, reads it
  // straight from there; eager: buffers such messages (needed when the one we wait for is
  // behind them, or the sender waits for slots).
  bool pull(int peer, bool eager = false);
  int lazy_misses_ = 0;
  bool peer_dead(int peer, std::string* why) const;
  void ring_bell(int peer);
  std::vector<uint64_t> cached_tail_;  // per peer: the last tail read of our ring to it
  std::atomic<int> queued_sends_{0};   // messages in sendq_ (read without the lock)
  std::vector<uint64_t> cached_head_;  // per peer: the head of our ring to it (we own it)
  bool oversubscribed_ = false;

  int rank_, size_;
  std::string name_;
  char* base_ = nullptr;
  size_t bytes_ = 0;
  Header* hdr_ = nullptr;
  size_t slots_ = 0, slot_bytes_ = 0, channel_bytes_ = 0;
  std::recursive_mutex mu_;
  std::vector<std::deque<SendOp>> sendq_;
  std::vector<detail::Matcher::Incoming> incoming_;
  std::vector<bool> arriving_;
  detail::Matcher matcher_;
  std::vector<std::string> dead_;
};

}  // namespace loom::comm
