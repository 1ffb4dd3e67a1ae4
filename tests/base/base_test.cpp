#include <gtest/gtest.h>

#include <sched.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "loom/base/error.h"
#include "loom/base/rng.h"
#include "loom/base/thread_pool.h"

namespace loom {
namespace {

TEST(Error, CheckThrowsWithMessageAndLocation) {
  try {
    LOOM_CHECK(1 == 2, "op: bad value {}", 42);
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("op: bad value 42"), std::string::npos);
    EXPECT_NE(m.find("base_test.cpp"), std::string::npos);
  }
}

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<std::atomic<int>> hits(10007);
    for (int rep = 0; rep < 20; ++rep) parallel_for(0, 10007, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) hits[i]++;
      });
    for (auto& h : hits) ASSERT_EQ(h.load(), 20);
  }
  set_num_threads(2);
}

TEST(ThreadPool, NestedParallelForRunsInline) {
  set_num_threads(2);
  std::atomic<int> total{0};
  parallel_for(0, 4, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      parallel_for(0, 100, 1, [&](int64_t a, int64_t b) { total += static_cast<int>(b - a); });
  });
  EXPECT_EQ(total.load(), 400);
}

TEST(ThreadPool, ExceptionsPropagateToTheCaller) {
  set_num_threads(2);
  EXPECT_THROW(parallel_for(0, 100, 1, [&](int64_t lo, int64_t) {
                 if (lo > 0) LOOM_THROW("task failed");
               }),
               Error);
  // The pool still works afterwards.
  std::atomic<int> n{0};
  parallel_for(0, 10, 1, [&](int64_t lo, int64_t hi) { n += static_cast<int>(hi - lo); });
  EXPECT_EQ(n.load(), 10);
}

TEST(ThreadPool, ManyShortJobsDoNotLoseTasks) {
  set_num_threads(2);
  for (int rep = 0; rep < 5000; ++rep) {
    std::atomic<int> n{0};
    parallel_for(0, 2, 1, [&](int64_t lo, int64_t hi) { n += static_cast<int>(hi - lo); });
    ASSERT_EQ(n.load(), 2);
  }
}

// Tasks are dealt in one block per thread (the home of one CPU); a thread that is done takes
// what is left of the others' blocks from their backs. Here the thread that runs task 0
// stalls, so the rest of task 0's block must be finished by the others -- and every task
// still runs exactly once.
TEST(ThreadPool, StalledBlockIsFinishedByTheOthers) {
  set_num_threads(3);
  for (int rep = 0; rep < 5; ++rep) {
    constexpr int kTasks = 300;
    std::vector<std::atomic<int>> hits(kTasks);
    std::vector<std::thread::id> ran_on(kTasks);
    parallel_tasks(kTasks, [&](int64_t i) {
      // Every task takes a while (5 ms a block: the workers are surely awake before one
      // thread could take everything), task 0 much longer.
      std::this_thread::sleep_for(std::chrono::microseconds(i == 0 ? 30000 : 50));
      ran_on[static_cast<size_t>(i)] = std::this_thread::get_id();
      hits[static_cast<size_t>(i)]++;
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    int others = 0;  // tasks of block 0 (tasks 0..99) that ran on another thread than task 0
    for (int i = 1; i < kTasks / 3; ++i) others += ran_on[static_cast<size_t>(i)] != ran_on[0];
    EXPECT_GT(others, 0) << "round " << rep;
  }
  set_num_threads(2);
}

TEST(ThreadPool, TooManyTasksIsAnError) {
  set_num_threads(2);
  EXPECT_THROW(global_pool().run(1 << 21, [](int) {}), Error);
}

// A dispatch narrows a sleeping worker's CPU mask to keep it off the caller's CPU while it
// wakes (thread_pool.cpp); the worker must be back on its full mask when it runs a task,
// or the pool would end up pinned. Each round lets the worker fall asleep first.
TEST(ThreadPool, WokenWorkersKeepTheirCpuMask) {
  set_num_threads(2);
  cpu_set_t process;
  ASSERT_EQ(sched_getaffinity(0, sizeof(process), &process), 0);
  const int allowed = CPU_COUNT(&process);
  for (int rep = 0; rep < 20; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // > the workers' 50 us spin
    std::atomic<int> counts[2] = {-1, -1};
    SpinBarrier both(2);  // task 1 then runs on the worker, not on the caller after task 0
    ASSERT_TRUE(global_pool().try_run_team(2, [&](int tid) {
      both.arrive_and_wait();
      cpu_set_t mine;
      if (sched_getaffinity(0, sizeof(mine), &mine) == 0) counts[tid] = CPU_COUNT(&mine);
    }));
    EXPECT_EQ(counts[0].load(), allowed);
    EXPECT_EQ(counts[1].load(), allowed) << "round " << rep;
  }
}

TEST(Philox, KnownAnswer) {
  // Random123's known-answer test for philox4x32-10 with zero counter and key.
  auto r = philox4x32(0, 0, 0);
  EXPECT_EQ(r[0], 0x6627e8d5u);
  EXPECT_EQ(r[1], 0xe169c58du);
  EXPECT_EQ(r[2], 0xbc57ac4cu);
  EXPECT_EQ(r[3], 0x9b00dbd8u);
}

TEST(Philox, ResultsDoNotDependOnThreadCount) {
  std::vector<float> a(100003), b(100003);
  set_num_threads(1);
  Philox(5).fill_normal(a.data(), static_cast<int64_t>(a.size()), 0.f, 1.f);
  set_num_threads(2);
  Philox(5).fill_normal(b.data(), static_cast<int64_t>(b.size()), 0.f, 1.f);
  EXPECT_EQ(a, b);
  double m = 0, v = 0;
  for (float x : a) m += x;
  m /= a.size();
  for (float x : a) v += (x - m) * (x - m);
  v /= a.size();
  EXPECT_NEAR(m, 0.0, 0.02);
  EXPECT_NEAR(v, 1.0, 0.02);
}

}  // namespace
}  // namespace loom
