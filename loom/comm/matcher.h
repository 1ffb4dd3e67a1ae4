// Receive-side message matching shared by the shm and TCP transports (internal to comm):
// posted receives and early ("unexpected") messages per peer, matched in order per
// (peer, tag), as MPI does. Thread-safe.
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "loom/comm/transport.h"

namespace loom::comm::detail {

// A receive that reduces into its buffer instead of overwriting it.
struct Reduction {
  bool on = false;
  DType t = DType::f32;
  ReduceOp op = ReduceOp::sum;
  // Writes n bytes of a message at dst: copy, or reduce element-wise.
  void apply(char* dst, const char* src, size_t n) const;
};

class Matcher {
 public:
  explicit Matcher(int size) : peers_(size) {}

  struct Unexpected {
    uint32_t tag = 0;
    std::vector<char> data;
    bool complete = false;
    void* user = nullptr;  // a receive posted while the message was still arriving
    size_t user_bytes = 0;
    Reduction red;
    Request req;
  };
  // Where an arriving message goes: a posted receive's buffer, or a buffer of its own.
  struct Incoming {
    char* dst = nullptr;
    Request req;  // the matched receive (null: unexpected)
    Unexpected* u = nullptr;
    std::unique_ptr<std::vector<char>> discard;  // size mismatch: the bytes are read and dropped
    std::string mismatch;
    Reduction red;  // how to write into dst (a reducing receive matched directly)
  };

  Incoming begin_message(int peer, uint32_t tag, size_t bytes);
  // begin_message only when a posted receive matches (no early-message buffer): false and
  // nothing changed otherwise. Lets a transport leave unmatched messages where they are.
  bool begin_posted(int peer, uint32_t tag, size_t bytes, Incoming* in);
  void end_message(int peer, Incoming& in);
  // Matches an early message or queues the receive.
  void post_recv(int peer, uint32_t tag, void* data, size_t bytes, const Request& req, Reduction red = {});
  // Fails every pending receive from peer and every later one.
  void fail_peer(int peer, const std::string& why);

 private:
  struct Posted {
    uint32_t tag;
    void* data;
    size_t bytes;
    Request req;
    Reduction red;
  };
  struct Peer {
    std::deque<Posted> posted;
    std::deque<std::unique_ptr<Unexpected>> unexpected;
    std::string failed;
  };
  // Buffers of consumed early messages, reused so that steady-state traffic does not page-fault
  // fresh memory (~12 us per 4 KiB page on this VM). At most kPoolBytes are kept.
  bool match(Peer& p, uint32_t tag, size_t bytes, bool buffer_early, Incoming* in);  // mu_ held
  std::vector<char> take_buffer(size_t bytes);                                       // mu_ held
  void give_buffer(std::vector<char>&& b);                                           // mu_ held
  static constexpr size_t kPoolBytes = size_t{512} << 20;
  std::vector<std::vector<char>> pool_;
  size_t pool_bytes_ = 0;

  std::mutex mu_;
  std::vector<Peer> peers_;
};

std::string size_mismatch(size_t sent, size_t posted);

}  // namespace loom::comm::detail
