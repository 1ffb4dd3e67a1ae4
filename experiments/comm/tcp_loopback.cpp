// The ceiling of a 2-rank TCP collective on this machine: two processes send each other
// N MiB over one loopback connection at the same time (a sender thread and a receiving
// loop per process, as in a ring step), with the socket options Loom's TCP transport sets.
// A 2-rank allreduce sends and receives its whole buffer once per rank, so its busbw
// cannot exceed this per-direction throughput.
//
//   g++ -O2 -o /tmp/tcp_loopback experiments/comm/tcp_loopback.cpp -lpthread
//   /tmp/tcp_loopback [MiB each way, default 8] [send chunk bytes, default 512 KiB]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  const size_t bytes = (argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 8) << 20;
  const size_t chunk = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : size_t{512} << 10;
  const int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(lfd, 1) != 0 ||
      getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("tcp_loopback: listen");
    return 1;
  }
  const pid_t child = fork();
  int fd;
  if (child == 0) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    while (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) usleep(1000);
  } else {
    fd = accept(lfd, nullptr, nullptr);
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  std::vector<char> out(bytes, 1), in(bytes);
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    std::thread sender([&] {
      for (size_t s = 0; s < bytes;) {
        const ssize_t w = send(fd, out.data() + s, std::min(chunk, bytes - s), 0);
        if (w <= 0) return;
        s += static_cast<size_t>(w);
      }
    });
    for (size_t r = 0; r < bytes;) {
      const ssize_t g = recv(fd, in.data() + r, bytes - r, 0);
      if (g <= 0) break;
      r += static_cast<size_t>(g);
    }
    sender.join();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  close(fd);
  if (child != 0) {
    waitpid(child, nullptr, 0);
    std::printf("%zu MiB each way at once, best of 5: %.2f ms, %.2f GB/s per direction\n", bytes >> 20, best * 1e3,
                static_cast<double>(bytes) / best / 1e9);
  }
  return 0;
}
