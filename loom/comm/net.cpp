#include "loom/comm/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "loom/base/error.h"

namespace loom::comm::net {

namespace {
sockaddr_in resolve(const std::string& host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) == 1) return a;
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  LOOM_CHECK(rc == 0 && res, "comm tcp: cannot resolve host '{}': {}", host, gai_strerror(rc));
  a.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  return a;
}
}  // namespace

int listen_on(const std::string& host, int port, int* bound_port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  LOOM_CHECK(fd >= 0, "comm tcp: socket(): {}", std::strerror(errno));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = resolve(host, port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 128) != 0) {
    const int e = errno;
    close(fd);
    LOOM_THROW("comm tcp: cannot listen on {}:{}: {}", host, port, std::strerror(e));
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  if (bound_port) *bound_port = ntohs(a.sin_port);
  return fd;
}

int connect_to(const std::string& host, int port, double timeout_s) {
  const sockaddr_in a = resolve(host, port);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    LOOM_CHECK(fd >= 0, "comm tcp: socket(): {}", std::strerror(errno));
    if (connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) return fd;
    const int e = errno;
    close(fd);
    if ((e != ECONNREFUSED && e != EAGAIN && e != ETIMEDOUT) || std::chrono::steady_clock::now() > deadline) {
      LOOM_THROW("comm tcp: cannot connect to {}:{}: {}", host, port, std::strerror(e));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w, n -= static_cast<size_t>(w);
  }
  return true;
}

bool read_all(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r, n -= static_cast<size_t>(r);
  }
  return true;
}

void set_nodelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void split_host_port(const std::string& s, std::string* host, int* port) {
  const auto colon = s.rfind(':');
  LOOM_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < s.size(), "comm: expected host:port, got '{}'", s);
  *host = s.substr(0, colon);
  try {
    size_t used = 0;
    *port = std::stoi(s.substr(colon + 1), &used);
    LOOM_CHECK(used == s.size() - colon - 1 && *port >= 0 && *port < 65536, "bad port");
  } catch (const std::exception&) {
    LOOM_THROW("comm: bad port in '{}'", s);
  }
}

}  // namespace loom::comm::net
