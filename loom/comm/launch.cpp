#include "loom/comm/launch.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "loom/base/error.h"
#include "loom/comm/shm.h"
#include "loom/comm/tcp.h"
#if LOOM_HAVE_MPI
#include "loom/comm/mpi.h"
#endif

namespace loom::comm {

void fork_ranks(int ranks, const std::function<void(int rank)>& fn) {
  LOOM_CHECK(ranks >= 1, "comm: need at least 1 rank, got {}", ranks);
  std::fflush(nullptr);
  std::vector<pid_t> kids;
  for (int r = 1; r < ranks; ++r) {
    const pid_t pid = fork();
    LOOM_CHECK(pid >= 0, "comm: fork: {}", std::strerror(errno));
    if (pid == 0) {
      int code = 0;
      try {
        fn(r);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
        code = 1;
      }
      std::fflush(nullptr);
      _exit(code);
    }
    kids.push_back(pid);
  }
  std::exception_ptr err;
  try {
    fn(0);
  } catch (...) {
    err = std::current_exception();
  }
  std::string failed;
  for (size_t i = 0; i < kids.size(); ++i) {
    int st = 0;
    while (waitpid(kids[i], &st, 0) < 0 && errno == EINTR) {
    }
    if (!failed.empty()) continue;
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
      failed = fmt::format("rank {} exited with status {}", i + 1, WEXITSTATUS(st));
    } else if (WIFSIGNALED(st)) {
      failed = fmt::format("rank {} was killed by signal {}", i + 1, WTERMSIG(st));
    }
  }
  if (err) std::rethrow_exception(err);
  LOOM_CHECK(failed.empty(), "comm: {}", failed);
}

std::unique_ptr<Transport> open_transport(const std::string& kind, int rank, int size, Store* store,
                                          const std::string& host) {
  if (kind == "mpi") {
#if LOOM_HAVE_MPI
    return std::make_unique<MpiTransport>();
#else
    LOOM_THROW("comm: this build has no MPI transport (install libopenmpi-dev and rebuild)");
#endif
  }
  LOOM_CHECK(store != nullptr, "comm {}: needs a rendezvous store", kind);
  if (kind == "shm") return std::make_unique<ShmTransport>(rank, size, *store);
  if (kind == "tcp") return std::make_unique<TcpTransport>(rank, size, *store, host);
  LOOM_THROW("comm: unknown transport '{}' (expected inproc, shm, tcp or mpi)", kind);
}

}  // namespace loom::comm
