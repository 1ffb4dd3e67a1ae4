// Rendezvous key-value stores: how the ranks of a process group find each other before any
// transport exists (the shm segment's name, each rank's TCP address). set() publishes, get()
// waits until the key exists or the timeout passes (a clear error naming the key).
//  - FileStore: a directory every rank can see (one file per key, written atomically).
//  - TcpStore: rank 0 serves the keys on host:port; every rank (0 included) is a client.
#pragma once

#include <memory>
#include <string>

namespace loom::comm {

class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::string& value) = 0;
  virtual std::string get(const std::string& key, double timeout_s) = 0;
};

class FileStore final : public Store {
 public:
  explicit FileStore(std::string dir);  // created if missing
  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key, double timeout_s) override;

 private:
  std::string dir_;
};

class TcpStore final : public Store {
 public:
  // is_server: this process serves the keys (in a background thread) on host:port; port 0
  // picks a free one (see port()). Clients connect to host:port, retrying until timeout_s.
  TcpStore(const std::string& host, int port, bool is_server, double timeout_s = 60);
  ~TcpStore() override;
  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key, double timeout_s) override;
  int port() const { return port_; }

 private:
  struct Server;
  std::unique_ptr<Server> server_;
  int fd_ = -1;
  int port_ = 0;
};

// "file:/dir" or "tcp:host:port" (rank 0 serves); used by `loom` from --store / LOOM_STORE.
std::unique_ptr<Store> open_store(const std::string& url, int rank, double timeout_s = 60);

}  // namespace loom::comm
