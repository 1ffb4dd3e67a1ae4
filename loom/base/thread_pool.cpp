#include "loom/base/thread_pool.h"

#include <pthread.h>

#include <chrono>
#include <string>
#include <cstdlib>

#include "loom/base/error.h"
#include "loom/base/request_context.h"

namespace loom {
namespace {

thread_local bool t_in_parallel = false;

struct RegionGuard {
  bool saved;
  RegionGuard() : saved(t_in_parallel) { t_in_parallel = true; }
  ~RegionGuard() { t_in_parallel = saved; }
};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How long a worker spins for the next job before it sleeps.
constexpr auto kSpin = std::chrono::microseconds(50);

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  LOOM_CHECK(num_threads >= 1, "ThreadPool: num_threads must be >= 1, got {}", num_threads);
  for (int i = 1; i < num_threads; ++i) {
    workers_.emplace_back([this] { worker_loop(); });
    // Named for profilers (the sampler's flame graphs, top, perf) before the constructor
    // returns, so a profiler armed right after sees the name, not the process's.
    pthread_setname_np(workers_.back().native_handle(), ("loom-pool-" + std::to_string(i)).c_str());
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work_on(uint32_t gen) {
  RegionGuard guard;
  for (;;) {
    uint64_t v = claim_.load(std::memory_order_acquire);
    if (static_cast<uint32_t>(v >> 32) != gen) break;
    int i = static_cast<int>(v & 0xffffffffu);
    int n = num_tasks_.load(std::memory_order_acquire);
    if (i >= n) break;
    if (!claim_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) continue;
    try {
      (*job_.load(std::memory_order_acquire))(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    if (done_tasks_.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
      done_tasks_.notify_all();
    }
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    auto start = std::chrono::steady_clock::now();
    uint64_t gen;
    int spins = 0;
    while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
      cpu_relax();
      if (++spins % 256 == 0 && std::chrono::steady_clock::now() - start > kSpin) {
        generation_.wait(seen, std::memory_order_acquire);
      }
    }
    seen = gen;
    if (stop_.load()) return;
    work_on(static_cast<uint32_t>(gen));
  }
}

void ThreadPool::run(int num_tasks, const std::function<void(int)>& fn) {
  if (num_tasks <= 0) return;
  std::unique_lock<std::mutex> lock(run_mutex_, std::try_to_lock);
  if (!lock.owns_lock() || workers_.empty() || t_in_parallel) {
    RegionGuard guard;
    for (int i = 0; i < num_tasks; ++i) fn(i);
    return;
  }
  dispatch_for_request(num_tasks, fn);
}

// Tasks run on behalf of the caller's request (request_context.h): a wrapper restores it on
// the workers. Without a request the function is dispatched as is (no copy).
void ThreadPool::dispatch_for_request(int num_tasks, const std::function<void(int)>& fn) {
  const uint64_t req = current_request();
  if (req == 0) return dispatch(num_tasks, fn);
  const std::function<void(int)> wrapped = [req, &fn](int i) {
    RequestScope scope(req);
    fn(i);
  };
  dispatch(num_tasks, wrapped);
}

void ThreadPool::dispatch(int num_tasks, const std::function<void(int)>& fn) {
  error_ = nullptr;
  const uint32_t gen = static_cast<uint32_t>(generation_.load(std::memory_order_relaxed) + 1);
  job_.store(&fn, std::memory_order_release);
  num_tasks_.store(num_tasks, std::memory_order_release);
  done_tasks_.store(0, std::memory_order_release);
  claim_.store(static_cast<uint64_t>(gen) << 32, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  work_on(gen);
  int done;
  int spins = 0;
  while ((done = done_tasks_.load(std::memory_order_acquire)) < num_tasks) {
    if (++spins < 4096) {
      cpu_relax();
    } else {
      done_tasks_.wait(done, std::memory_order_acquire);
    }
  }
  if (error_) std::rethrow_exception(error_);
}

bool ThreadPool::try_run_team(int team, const std::function<void(int)>& fn) {
  if (team <= 1) {
    if (team == 1) fn(0);
    return true;
  }
  if (team > size() || t_in_parallel) return false;
  std::unique_lock<std::mutex> lock(run_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return false;
  // Tasks are claimed dynamically; a task blocked in a barrier cannot claim another, so
  // with team <= size() each task necessarily lands on a distinct thread.
  dispatch_for_request(team, fn);
  return true;
}

void SpinBarrier::arrive_and_wait() {
  const int phase = phase_.load(std::memory_order_acquire);
  if (waiting_.fetch_add(1, std::memory_order_acq_rel) + 1 == count_) {
    waiting_.store(0, std::memory_order_relaxed);
    phase_.fetch_add(1, std::memory_order_acq_rel);
    phase_.notify_all();
    return;
  }
  // Spin briefly (teammates normally arrive within microseconds), then sleep: when the
  // machine is oversubscribed (a data-loader thread, another process) a teammate may be
  // descheduled, and spinning would only steal its core.
  for (int i = 0; i < 4000; ++i) {
    if (phase_.load(std::memory_order_acquire) != phase) return;
    cpu_relax();
  }
  while (phase_.load(std::memory_order_acquire) == phase) phase_.wait(phase, std::memory_order_acquire);
}

namespace {

int default_threads() {
  if (const char* env = std::getenv("LOOM_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

std::unique_ptr<ThreadPool>& pool_ref() {
  static std::unique_ptr<ThreadPool> pool = std::make_unique<ThreadPool>(default_threads());
  return pool;
}

}  // namespace

ThreadPool& global_pool() { return *pool_ref(); }
int num_threads() { return global_pool().size(); }

void set_num_threads(int n) {
  LOOM_CHECK(n >= 1 && n <= 1024, "set_num_threads: n must be in [1, 1024], got {}", n);
  if (pool_ref()->size() != n) pool_ref() = std::make_unique<ThreadPool>(n);
}

bool in_parallel_region() { return t_in_parallel; }

}  // namespace loom
