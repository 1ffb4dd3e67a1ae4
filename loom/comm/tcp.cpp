#include "loom/comm/tcp.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "loom/base/error.h"
#include "loom/comm/net.h"
#include "loom/profile/trace.h"

namespace loom::comm {

namespace {
constexpr uint32_t kHello = 0x4c4f4f4d;  // "LOOM"
struct WireHeader {
  uint32_t tag;
  uint32_t pad;
  uint64_t bytes;
};
}  // namespace

struct TcpTransport::Peer {
  int fd = -1;
  int index = 0;
  // Send side (callers and the I/O thread, under send_mu).
  std::mutex send_mu;
  struct SendOp {
    WireHeader hdr;
    const char* data;
    size_t sent;  // header + payload bytes written
    Request req;
  };
  std::deque<SendOp> q;
  bool want_out = false;
  std::string dead;  // under send_mu
  // Receive side (I/O thread only).
  WireHeader hdr{};
  size_t hdr_got = 0, payload_got = 0;
  bool in_payload = false;
  detail::Matcher::Incoming in;
  std::vector<char> bounce;  // reducing receives: bytes read but not yet reduced
  size_t fill = 0;
  bool lost = false;
};

TcpTransport::TcpTransport(int rank, int size, Store& store, const std::string& host, const std::string& prefix)
    : rank_(rank), size_(size), matcher_(size) {
  set_timeout(default_timeout_s());
  LOOM_CHECK(size >= 1 && rank >= 0 && rank < size, "comm tcp: rank {} out of range for {} ranks", rank, size);
  for (int i = 0; i < size; ++i) {
    peers_.push_back(std::make_unique<Peer>());
    peers_.back()->index = i;
  }
  const double timeout = timeout_s();
  int port = 0;
  const int lfd = net::listen_on(host, 0, &port);
  store.set(fmt::format("{}/addr/{}", prefix, rank), fmt::format("{}:{}", host, port));
  try {
    for (int j = 0; j < rank; ++j) {  // connect to lower ranks
      std::string h;
      int pt = 0;
      net::split_host_port(store.get(fmt::format("{}/addr/{}", prefix, j), timeout), &h, &pt);
      const int fd = net::connect_to(h, pt, timeout);
      const uint32_t hello[2] = {kHello, static_cast<uint32_t>(rank)};
      LOOM_CHECK(net::write_all(fd, hello, sizeof hello), "comm tcp: rank {} lost rank {} during the handshake", rank,
                 j);
      peers_[j]->fd = fd;
    }
    for (int k = rank + 1; k < size; ++k) {  // accept the higher ranks, in any order
      pollfd pfd{lfd, POLLIN, 0};
      const int ready = poll(&pfd, 1, static_cast<int>(timeout * 1000));
      LOOM_CHECK(ready == 1, "comm tcp: rank {}: only {} of the {} higher ranks connected within {:.0f} s", rank,
                 k - rank - 1, size - rank - 1, timeout);
      const int fd = accept(lfd, nullptr, nullptr);
      LOOM_CHECK(fd >= 0, "comm tcp: accept: {}", std::strerror(errno));
      uint32_t hello[2] = {0, 0};
      LOOM_CHECK(net::read_all(fd, hello, sizeof hello) && hello[0] == kHello &&
                     hello[1] < static_cast<uint32_t>(size) && static_cast<int>(hello[1]) > rank &&
                     peers_[hello[1]]->fd < 0,
                 "comm tcp: rank {}: bad handshake from a connecting peer", rank);
      peers_[hello[1]]->fd = fd;
    }
  } catch (...) {
    close(lfd);
    for (auto& p : peers_) {
      if (p->fd >= 0) close(p->fd);
    }
    throw;
  }
  close(lfd);
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = static_cast<uint32_t>(size);
  epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev);
  for (int j = 0; j < size; ++j) {
    if (j == rank) continue;
    const int fd = peers_[j]->fd;
    net::set_nodelay(fd);
    const int buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    net::set_nonblocking(fd);
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(j);
    epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  }
  io_ = std::thread([this] { io_loop(); });
}

TcpTransport::~TcpTransport() {
  stop_.store(true);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t w = write(evfd_, &one, sizeof one);
  if (io_.joinable()) io_.join();
  for (auto& p : peers_) {
    if (p->fd >= 0) close(p->fd);
  }
  close(epfd_);
  close(evfd_);
}

Request TcpTransport::isend(int peer, uint32_t tag, const void* data, size_t bytes) {
  check_peer_arg("isend", peer, bytes, data);
  Request req = make_request(peer, tag, bytes, true);
  Peer& p = *peers_[peer];
  std::lock_guard g(p.send_mu);
  if (!p.dead.empty()) {
    req->fail(p.dead);
    return req;
  }
  p.q.push_back({WireHeader{tag, 0, bytes}, static_cast<const char*>(data), 0, req});
  if (p.q.size() == 1) try_send(p);
  return req;
}

Request TcpTransport::irecv_reduce(int peer, uint32_t tag, void* data, size_t bytes, DType t, ReduceOp op) {
  Request req = make_reduce_request(peer, tag, data, bytes, t);
  matcher_.post_recv(peer, tag, data, bytes, req, detail::Reduction{true, t, op});
  return req;
}

Request TcpTransport::irecv(int peer, uint32_t tag, void* data, size_t bytes) {
  check_peer_arg("irecv", peer, bytes, data);
  Request req = make_request(peer, tag, bytes, false);
  matcher_.post_recv(peer, tag, data, bytes, req);
  return req;
}

void TcpTransport::try_send(Peer& p) {
  while (!p.q.empty()) {
    Peer::SendOp& op = p.q.front();
    const size_t total = sizeof(WireHeader) + op.hdr.bytes;
    iovec iov[2];
    int n = 0;
    if (op.sent < sizeof(WireHeader)) {
      iov[n++] = {reinterpret_cast<char*>(&op.hdr) + op.sent, sizeof(WireHeader) - op.sent};
      if (op.hdr.bytes) iov[n++] = {const_cast<char*>(op.data), op.hdr.bytes};
    } else {
      iov[n++] = {const_cast<char*>(op.data) + (op.sent - sizeof(WireHeader)), total - op.sent};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    const ssize_t w = sendmsg(p.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!p.want_out) {
          p.want_out = true;
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLOUT;
          ev.data.u32 = static_cast<uint32_t>(p.index);
          epoll_ctl(epfd_, EPOLL_CTL_MOD, p.fd, &ev);
        }
        return;
      }
      const std::string why = fmt::format("connection lost while sending: {}", std::strerror(errno));
      p.dead = why;
      for (auto& o : p.q) o.req->fail(why);
      p.q.clear();
      return;
    }
    op.sent += static_cast<size_t>(w);
    if (op.sent == total) {
      op.req->complete();
      p.q.pop_front();
    }
  }
  if (p.want_out) {
    p.want_out = false;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(p.index);
    epoll_ctl(epfd_, EPOLL_CTL_MOD, p.fd, &ev);
  }
}

void TcpTransport::lose(int peer, const std::string& why) {
  Peer& p = *peers_[peer];
  if (p.lost) return;
  p.lost = true;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, p.fd, nullptr);
  matcher_.fail_peer(peer, why);
  if (p.in_payload && p.in.req) p.in.req->fail(why);
  if (p.in_payload && p.in.u && p.in.u->req) p.in.u->req->fail(why);
  std::lock_guard g(p.send_mu);
  if (p.dead.empty()) p.dead = why;
  for (auto& o : p.q) o.req->fail(why);
  p.q.clear();
}

void TcpTransport::on_readable(int peer) {
  Peer& p = *peers_[peer];
  for (;;) {
    ssize_t r;
    const bool reducing = p.in_payload && p.in.red.on;
    if (!p.in_payload) {
      r = ::recv(p.fd, reinterpret_cast<char*>(&p.hdr) + p.hdr_got, sizeof(WireHeader) - p.hdr_got, 0);
    } else if (reducing) {
      if (p.bounce.empty()) p.bounce.resize(256 << 10);
      const size_t want = std::min(p.bounce.size() - p.fill, p.hdr.bytes - p.payload_got - p.fill);
      r = ::recv(p.fd, p.bounce.data() + p.fill, want, 0);
    } else {
      r = ::recv(p.fd, p.in.dst + p.payload_got, p.hdr.bytes - p.payload_got, 0);
    }
    if (r == 0) {
      lose(peer, fmt::format("rank {} closed the connection (exited?)", peer));
      return;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      lose(peer, fmt::format("connection to rank {} failed: {}", peer, std::strerror(errno)));
      return;
    }
    if (!p.in_payload) {
      p.hdr_got += static_cast<size_t>(r);
      if (p.hdr_got < sizeof(WireHeader)) continue;
      p.hdr_got = 0;
      p.in = matcher_.begin_message(peer, p.hdr.tag, p.hdr.bytes);
      p.payload_got = 0;
      p.in_payload = true;
    } else if (reducing) {
      // Reduce the whole elements read so far; keep a partial element for the next read.
      p.fill += static_cast<size_t>(r);
      const size_t es = dtype_size(p.in.red.t), whole = p.fill / es * es;
      p.in.red.apply(p.in.dst + p.payload_got, p.bounce.data(), whole);
      p.payload_got += whole;
      if (p.fill > whole) std::memmove(p.bounce.data(), p.bounce.data() + whole, p.fill - whole);
      p.fill -= whole;
    } else {
      p.payload_got += static_cast<size_t>(r);
    }
    if (p.payload_got == p.hdr.bytes) {
      p.in_payload = false;
      matcher_.end_message(peer, p.in);
      p.in = {};
    }
  }
}

void TcpTransport::io_loop() {
  profile::set_thread_name(fmt::format("loom-tcp-{}", rank_));
  epoll_event evs[64];
  while (!stop_.load(std::memory_order_acquire)) {
    const int n = epoll_wait(epfd_, evs, 64, -1);
    for (int i = 0; i < n; ++i) {
      const uint32_t who = evs[i].data.u32;
      if (who == static_cast<uint32_t>(size_)) continue;  // the wake-up eventfd
      Peer& p = *peers_[who];
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(static_cast<int>(who));
      if (evs[i].events & EPOLLOUT) {
        std::lock_guard g(p.send_mu);
        try_send(p);
      }
    }
  }
}

}  // namespace loom::comm
