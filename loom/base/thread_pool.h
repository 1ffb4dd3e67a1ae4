// A persistent thread pool and parallel_for, without OpenMP.
//
// The calling thread always takes part in the work, so a pool of size n owns n-1 workers.
// Workers spin briefly after a job, then sleep on an atomic wait, so back-to-back kernels
// (a GEMM per layer) pay no wake-up cost while an idle process burns no CPU.
// parallel_for is thread-safe; a parallel_for issued from inside a pool task, or while
// another thread holds the pool, runs inline on the caller (no nesting, no deadlock).
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace loom {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Total threads that execute work, the caller included.
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(i) for every i in [0, num_tasks), spread over the pool; returns when all are
  // done. The first exception thrown by a task is rethrown here.
  // At most 2^20 - 1 tasks (more: loom::Error).
  void run(int64_t num_tasks, const std::function<void(int)>& fn);

  // Runs fn(0..team-1) with every task on its own thread at the same time (the caller is
  // task 0), so tasks may wait for each other (a barrier). Returns false without running
  // anything when that cannot be guaranteed: team larger than the pool, the pool busy with
  // another caller, or a call from inside a pool task. Tasks must not throw while a
  // teammate waits for them.
  bool try_run_team(int team, const std::function<void(int)>& fn);

 private:
  friend class SpinBarrier;
  void worker_loop(int slot);
  // After a thread of this pool slept and was woken: if it now shares a CPU with a teammate,
  // it moves to a free one (see thread_pool.cpp).
  void spread_after_wake();
  // Before a dispatch wakes sleeping workers: keeps them off the dispatcher's CPU.
  void steer_sleepers(int caller_cpu);
  void dispatch(int num_tasks, const std::function<void(int)>& fn);  // run_mutex_ held
  void dispatch_for_request(int num_tasks, const std::function<void(int)>& fn);
  void work_on(uint32_t gen);
  void run_task(int i);  // (an exception is kept for run to rethrow)
  // Claims the first (front) or last task left in block b of job `gen`; -1 when none.
  int take(int b, uint32_t gen, bool front);

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;
  std::atomic<uint64_t> generation_{0};
  // A job's tasks in contiguous blocks, one per thread (at most), each block the home of the
  // CPUs of one rank (cpu_rank_): a thread takes its CPU's block from the front, then takes
  // what is left of the others from their backs. So task i runs on the same CPU call after
  // call (its data stays in that core's caches) unless that CPU falls behind. Each block is
  // one word, (generation << 40) | (front << 20) | back: a worker that wakes late for an old
  // job can never claim a task of a newer one, because its compare-and-swap sees the new
  // generation.
  struct alignas(64) Block {
    std::atomic<uint64_t> v{0};
  };
  std::unique_ptr<Block[]> blocks_;
  std::atomic<int> num_blocks_{0};
  std::vector<int16_t> cpu_rank_;  // per CPU number: its rank among the CPUs this process may use
  std::atomic<int> done_tasks_{0};
  std::atomic<int> num_tasks_{0};
  std::atomic<const std::function<void(int)>*> job_{nullptr};
  std::atomic<bool> stop_{false};
  // Per thread (slot 0: the dispatching caller, i: worker i): where it last ran a job, and
  // for workers whether it sleeps and whether a dispatch narrowed its CPU mask to wake it
  // (see thread_pool.cpp).
  struct Slot {
    std::atomic<int> cpu{-1};
    std::atomic<int> tid{0};
    std::atomic<bool> asleep{false};
    std::atomic<bool> narrowed{false};
    cpu_set_t mask;  // its mask before narrowing (written by the dispatcher, read after the wake)
  };
  std::unique_ptr<Slot[]> slots_;
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

// The process-wide pool. Its size comes from set_num_threads(), else LOOM_NUM_THREADS,
// else the number of hardware threads.
ThreadPool& global_pool();
int num_threads();
// Resizes the global pool. Not safe to call while another thread runs parallel work.
void set_num_threads(int n);
// True inside a pool task (where parallel_for runs inline).
bool in_parallel_region();

// A spinning barrier for a team started by try_run_team (short waits between phases).
class SpinBarrier {
 public:
  explicit SpinBarrier(int count) : count_(count) {}
  void arrive_and_wait();

 private:
  const int count_;
  std::atomic<int> waiting_{0};
  std::atomic<int> phase_{0};
};

// Runs fn(i) for every i in [0, tasks) on the pool, the caller included. The tasks are dealt
// in one contiguous block per CPU and a thread that is done with its block takes what is left
// of the others from their ends (ThreadPool::run), so with several tasks per thread a slower
// CPU ends up with fewer. What a task does must not depend on which thread runs it.
template <typename F>
void parallel_tasks(int64_t tasks, F&& fn) {
  if (tasks <= 0) return;
  if (tasks == 1 || num_threads() <= 1 || in_parallel_region()) {
    for (int64_t i = 0; i < tasks; ++i) fn(i);
    return;
  }
  const std::function<void(int)> task = [&](int i) { fn(static_cast<int64_t>(i)); };
  global_pool().run(tasks, task);
}

// Splits [begin, end) into at most num_threads() contiguous chunks of at least `grain`
// iterations and calls fn(lo, hi) on each, in parallel.
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& fn) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t chunks = std::min<int64_t>(num_threads(), (n + grain - 1) / grain);
  if (chunks <= 1 || in_parallel_region()) {
    fn(begin, end);
    return;
  }
  parallel_tasks(chunks, [&](int64_t i) {
    const int64_t lo = begin + n * i / chunks, hi = begin + n * (i + 1) / chunks;
    if (lo < hi) fn(lo, hi);
  });
}

}  // namespace loom
