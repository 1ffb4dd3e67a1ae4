// The process transports (shared memory, TCP) with real processes: collectives against a
// reference, multi-fragment and early messages, rendezvous stores, and a killed peer that
// must make the others fail with an error naming it instead of hanging.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "loom/base/error.h"
#include "loom/comm/collectives.h"
#include "loom/comm/launch.h"
#include "loom/comm/store.h"

namespace loom::comm {
namespace {

std::string temp_dir(const std::string& what) {
  static int n = 0;
  auto d = std::filesystem::temp_directory_path() / fmt::format("loom-{}-{}-{}", what, getpid(), n++);
  std::filesystem::remove_all(d);
  return d.string();
}

class ProcessTransport : public ::testing::TestWithParam<std::string> {};

TEST_P(ProcessTransport, CollectivesMatchTheReference) {
  for (int p : {2, 3, 4}) {
    const std::string dir = temp_dir("store");
    fork_ranks(p, [&](int r) {
      FileStore store(dir);
      auto t = open_transport(GetParam(), r, p, &store);
      Communicator comm(*t);
      comm.set_chunk_bytes(256 << 10);
      for (size_t n : {size_t{0}, size_t{1}, size_t{1000}, size_t{600'000}}) {  // 600k floats: many fragments
        for (Algo a : {Algo::ring, Algo::recursive_doubling, Algo::rabenseifner, Algo::tree}) {
          std::vector<float> buf(n);
          for (size_t i = 0; i < n; ++i) buf[i] = static_cast<float>((r + 1) * (i % 7));
          comm.allreduce(buf.data(), n, DType::f32, ReduceOp::sum, a);
          const float ranks_sum = static_cast<float>(p * (p + 1) / 2);
          for (size_t i = 0; i < n; ++i) {
            LOOM_CHECK(buf[i] == ranks_sum * static_cast<float>(i % 7), "{} allreduce {} n={} i={}: got {}", GetParam(),
                       algo_name(a), n, i, buf[i]);
          }
        }
        std::vector<int64_t> in(n), out(n * p);
        for (size_t i = 0; i < n; ++i) in[i] = static_cast<int64_t>(r * 1000000 + i);
        comm.allgather(in.data(), out.data(), n, DType::i64, Algo::bruck);
        for (size_t i = 0; i < n * p; ++i) {
          LOOM_CHECK(out[i] == static_cast<int64_t>((i / n) * 1000000 + i % n), "allgather i={}", i);
        }
        std::vector<double> b(n, r == p - 1 ? 2.5 : 0.0);
        comm.broadcast(b.data(), n, DType::f64, p - 1, Algo::chain);
        for (double x : b) LOOM_CHECK(x == 2.5, "bcast");
        comm.barrier();
      }
    });
  }
}

TEST_P(ProcessTransport, EarlyAndReorderedMessages) {
  const std::string dir = temp_dir("store");
  fork_ranks(2, [&](int r) {
    FileStore store(dir);
    auto t = open_transport(GetParam(), r, 2, &store);
    std::vector<char> big(3 << 20);
    if (r == 0) {
      for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
      int a = 1, b = 2;
      auto r1 = t->isend(1, 10, &a, sizeof a);
      auto r2 = t->isend(1, 20, &b, sizeof b);
      auto r3 = t->isend(1, 30, big.data(), big.size());
      t->wait_all({r1, r2, r3});
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let them arrive first
      int a = 0, b = 0;
      t->recv(0, 30, big.data(), big.size());  // posted in another order than sent
      t->recv(0, 20, &b, sizeof b);
      t->recv(0, 10, &a, sizeof a);
      LOOM_CHECK(a == 1 && b == 2, "values {} {}", a, b);
      for (size_t i = 0; i < big.size(); ++i) LOOM_CHECK(big[i] == static_cast<char>(i * 7), "byte {}", i);
    }
    Communicator(*t).barrier();
  });
}

TEST_P(ProcessTransport, AKilledPeerFailsTheOthersWithAClearError) {
  const std::string dir = temp_dir("store");
  try {
    fork_ranks(3, [&](int r) {
      FileStore store(dir);
      auto t = open_transport(GetParam(), r, 3, &store);
      t->set_timeout(30);
      Communicator comm(*t);
      if (r == 1) raise(SIGKILL);
      std::vector<float> v(1000, 1.0f);
      comm.allreduce(v.data(), v.size(), DType::f32, ReduceOp::sum, Algo::ring);
    });
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    // Rank 0 sees either rank 1's death or rank 2's failure that followed it; never a timeout.
    EXPECT_EQ(m.find("timed out"), std::string::npos) << m;
    EXPECT_TRUE(m.find("rank 1") != std::string::npos || m.find("rank 2") != std::string::npos) << m;
  }
}

INSTANTIATE_TEST_SUITE_P(Comm, ProcessTransport, ::testing::Values("shm", "tcp"));

TEST(CommStore, FileAndTcpStoresSetGetAndTimeOut) {
  FileStore fs(temp_dir("fs"));
  fs.set("a/b", "hello");
  EXPECT_EQ(fs.get("a/b", 1), "hello");
  EXPECT_THROW(fs.get("missing", 0.05), Error);
  TcpStore server("127.0.0.1", 0, true);
  TcpStore client("127.0.0.1", server.port(), false);
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    server.set("k", std::string("v\0w", 3));
  });
  EXPECT_EQ(client.get("k", 5), std::string("v\0w", 3));
  late.join();
  try {
    client.get("never", 0.05);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("never"), std::string::npos);
  }
  EXPECT_THROW(open_store("http://x", 0), Error);
  EXPECT_THROW(open_transport("carrier-pigeon", 0, 1, &fs), Error);
}

}  // namespace
}  // namespace loom::comm
