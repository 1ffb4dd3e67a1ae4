// TCP transport: a full mesh of connections (rank i connects to every j < i), found through a
// Store, driven by one epoll I/O thread per process. Sends are written straight from the
// caller's thread when the socket has room (the I/O thread finishes what does not fit);
// receives are read by the I/O thread directly into the posted buffer when one is waiting,
// else into a buffer of their own. A closed or reset connection fails every request on that
// peer with "rank 2 closed the connection".
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "loom/comm/matcher.h"
#include "loom/comm/store.h"
#include "loom/comm/transport.h"

namespace loom::comm {

class TcpTransport final : public Transport {
 public:
  // Collective: every rank constructs one with the same store and prefix. `host` is the
  // address this rank listens on and publishes (127.0.0.1 for one machine).
  TcpTransport(int rank, int size, Store& store, const std::string& host = "127.0.0.1",
               const std::string& prefix = "tcp");
  ~TcpTransport() override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* kind() const override { return "tcp"; }
  Request isend(int peer, uint32_t tag, const void* data, size_t bytes) override;
  Request irecv(int peer, uint32_t tag, void* data, size_t bytes) override;
  // The I/O thread reads through a small cache-resident buffer and reduces into data.
  Request irecv_reduce(int peer, uint32_t tag, void* data, size_t bytes, DType t, ReduceOp op) override;

 protected:
  int spin_iterations() const override { return 200; }

 private:
  struct Peer;
  void io_loop();
  void try_send(Peer& p);  // p.send_mu held
  void on_readable(int peer);
  void lose(int peer, const std::string& why);

  int rank_, size_;
  std::vector<std::unique_ptr<Peer>> peers_;
  int epfd_ = -1, evfd_ = -1;
  std::atomic<bool> stop_{false};
  detail::Matcher matcher_;
  std::thread io_;
};

}  // namespace loom::comm
