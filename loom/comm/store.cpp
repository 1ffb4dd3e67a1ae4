#include "loom/comm/store.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "loom/base/error.h"
#include "loom/comm/net.h"

namespace loom::comm {

namespace fs = std::filesystem;

FileStore::FileStore(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  LOOM_CHECK(fs::is_directory(dir_), "comm file store: cannot create directory {}: {}", dir_, ec.message());
}

namespace {
std::string key_file(const std::string& key) {
  std::string s;
  for (char c : key) s += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '.';
  return s;
}
}  // namespace

void FileStore::set(const std::string& key, const std::string& value) {
  const std::string path = dir_ + "/" + key_file(key);
  const std::string tmp = path + ".tmp" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    out << value;
    LOOM_CHECK(out.good(), "comm file store: cannot write {}", tmp);
  }
  fs::rename(tmp, path);  // atomic: readers see the whole value or nothing
}

std::string FileStore::get(const std::string& key, double timeout_s) {
  const std::string path = dir_ + "/" + key_file(key);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      return ss.str();
    }
    LOOM_CHECK(std::chrono::steady_clock::now() < deadline, "comm file store {}: key '{}' not set within {:.0f} s",
               dir_, key, timeout_s);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// ---- TcpStore -------------------------------------------------------------------------------
// Wire format: request = op (1 byte: 'S' set, 'G' get), key length (u32), key, then for 'S'
// the value length (u32) and value, for 'G' the timeout in ms (u32). Replies: 'S' -> 1 byte;
// 'G' -> status byte (1 found, 0 timed out), value length (u32), value.

struct TcpStore::Server {
  int listen_fd = -1;
  std::thread acceptor;
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::string> kv;
  std::vector<int> clients;
  std::vector<std::thread> handlers;
  bool stop = false;

  void serve(int fd) {
    for (;;) {
      char op;
      uint32_t klen;
      if (!net::read_all(fd, &op, 1) || !net::read_all(fd, &klen, 4) || klen > (1u << 20)) return;
      std::string key(klen, '\0');
      if (!net::read_all(fd, key.data(), klen)) return;
      if (op == 'S') {
        uint32_t vlen;
        if (!net::read_all(fd, &vlen, 4) || vlen > (64u << 20)) return;
        std::string v(vlen, '\0');
        if (!net::read_all(fd, v.data(), vlen)) return;
        {
          std::lock_guard g(mu);
          kv[key] = std::move(v);
        }
        cv.notify_all();
        const char ok = 1;
        if (!net::write_all(fd, &ok, 1)) return;
      } else if (op == 'G') {
        uint32_t ms;
        if (!net::read_all(fd, &ms, 4)) return;
        std::unique_lock lk(mu);
        const bool found =
            cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return stop || kv.count(key); }) && kv.count(key);
        const std::string v = found ? kv[key] : std::string();
        lk.unlock();
        const char st = found ? 1 : 0;
        const uint32_t vlen = static_cast<uint32_t>(v.size());
        if (!net::write_all(fd, &st, 1) || !net::write_all(fd, &vlen, 4) || !net::write_all(fd, v.data(), vlen)) return;
      } else {
        return;
      }
    }
  }
};

TcpStore::TcpStore(const std::string& host, int port, bool is_server, double timeout_s) {
  port_ = port;
  if (is_server) {
    server_ = std::make_unique<Server>();
    server_->listen_fd = net::listen_on(host, port, &port_);
    Server* s = server_.get();
    s->acceptor = std::thread([s] {
      for (;;) {
        const int fd = accept(s->listen_fd, nullptr, nullptr);
        if (fd < 0) return;  // listening socket shut down
        std::lock_guard g(s->mu);
        if (s->stop) {
          close(fd);
          return;
        }
        s->clients.push_back(fd);
        s->handlers.emplace_back([s, fd] { s->serve(fd); });
      }
    });
  }
  fd_ = net::connect_to(host, port_, timeout_s);
  net::set_nodelay(fd_);
}

TcpStore::~TcpStore() {
  if (fd_ >= 0) close(fd_);
  if (server_) {
    {
      std::lock_guard g(server_->mu);
      server_->stop = true;
      for (int fd : server_->clients) shutdown(fd, SHUT_RDWR);
    }
    server_->cv.notify_all();
    shutdown(server_->listen_fd, SHUT_RDWR);
    server_->acceptor.join();
    for (auto& t : server_->handlers) t.join();
    for (int fd : server_->clients) close(fd);
    close(server_->listen_fd);
  }
}

void TcpStore::set(const std::string& key, const std::string& value) {
  const char op = 'S';
  const uint32_t klen = static_cast<uint32_t>(key.size()), vlen = static_cast<uint32_t>(value.size());
  char ok = 0;
  LOOM_CHECK(net::write_all(fd_, &op, 1) && net::write_all(fd_, &klen, 4) && net::write_all(fd_, key.data(), klen) &&
                 net::write_all(fd_, &vlen, 4) && net::write_all(fd_, value.data(), vlen) && net::read_all(fd_, &ok, 1),
             "comm tcp store: lost the connection to the store server while setting '{}'", key);
}

std::string TcpStore::get(const std::string& key, double timeout_s) {
  const char op = 'G';
  const uint32_t klen = static_cast<uint32_t>(key.size());
  const uint32_t ms = static_cast<uint32_t>(std::min(timeout_s * 1000.0, 4.0e9));
  char st = 0;
  uint32_t vlen = 0;
  LOOM_CHECK(net::write_all(fd_, &op, 1) && net::write_all(fd_, &klen, 4) && net::write_all(fd_, key.data(), klen) &&
                 net::write_all(fd_, &ms, 4) && net::read_all(fd_, &st, 1) && net::read_all(fd_, &vlen, 4),
             "comm tcp store: lost the connection to the store server while getting '{}'", key);
  std::string v(vlen, '\0');
  LOOM_CHECK(net::read_all(fd_, v.data(), vlen), "comm tcp store: truncated reply for '{}'", key);
  LOOM_CHECK(st == 1, "comm tcp store: key '{}' not set within {:.0f} s", key, timeout_s);
  return v;
}

std::unique_ptr<Store> open_store(const std::string& url, int rank, double timeout_s) {
  if (url.rfind("file:", 0) == 0) return std::make_unique<FileStore>(url.substr(5));
  if (url.rfind("tcp:", 0) == 0) {
    std::string host;
    int port = 0;
    net::split_host_port(url.substr(4), &host, &port);
    LOOM_CHECK(port > 0, "comm: a tcp store needs a fixed port, got '{}'", url);
    return std::make_unique<TcpStore>(host, port, rank == 0, timeout_s);
  }
  LOOM_THROW("comm: unknown store '{}' (expected file:/dir or tcp:host:port)", url);
}

}  // namespace loom::comm
