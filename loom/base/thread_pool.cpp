#include "loom/base/thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <cstdlib>

#include "loom/base/error.h"
#include "loom/base/request_context.h"

namespace loom {
namespace {

thread_local bool t_in_parallel = false;
// The pool and slot of the running thread while it works for a pool (slot 0: the caller).
thread_local ThreadPool* t_pool = nullptr;
thread_local int t_slot = -1;

struct SlotGuard {
  ThreadPool* saved_pool;
  int saved_slot;
  SlotGuard(ThreadPool* pool, int slot) : saved_pool(t_pool), saved_slot(t_slot) { t_pool = pool, t_slot = slot; }
  ~SlotGuard() { t_pool = saved_pool, t_slot = saved_slot; }
};

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
  slots_ = std::make_unique<Slot[]>(static_cast<size_t>(num_threads));
  blocks_ = std::make_unique<Block[]>(static_cast<size_t>(num_threads));
  cpu_rank_.assign(CPU_SETSIZE, 0);
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
    int16_t rank = 0;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &allowed)) cpu_rank_[static_cast<size_t>(c)] = rank++;
  } else {
    for (int c = 0; c < CPU_SETSIZE; ++c) cpu_rank_[static_cast<size_t>(c)] = static_cast<int16_t>(c);
  }
  for (int i = 1; i < num_threads; ++i) {
    workers_.emplace_back([this, i] { worker_loop(i); });
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

// Two threads of a team that share one CPU ping-pong -- one spins or sleeps in a barrier
// while the other runs, or the caller claims every task before the worker gets the CPU --
// and as they are never runnable at the same time, the scheduler's load balancer never
// separates them. It happens when a sleeping thread is woken: the wake-affine placement
// puts it on its waker's CPU, and where the CPUs share no last-level cache in the kernel's
// view (this VM's two vCPUs) nothing moves it to the idle one. Here a 2-thread 128^3 GEMM
// then took 306 us instead of 15 and 512^3 ran at one thread's speed, for whole 20 ms
// batches after an idle pause (docs/performance.md, 2026-11-28 third session). So a
// dispatch narrows each sleeping worker's CPU mask to exclude its own CPU before waking it
// (the worker restores its mask once awake: no pinning), and a thread woken from a wait
// that finds itself on a teammate's CPU moves off it the same way.
namespace {

// Sets thread `tid`'s CPU mask to `mask` without the CPUs in `drop` (0: the caller); false
// when that leaves no CPU or the call fails.
bool set_mask_without(pid_t tid, const cpu_set_t& mask, const cpu_set_t& drop) {
  cpu_set_t kept;
  CPU_XOR(&kept, &mask, &drop);
  CPU_AND(&kept, &kept, &mask);
  return CPU_COUNT(&kept) > 0 && sched_setaffinity(tid, sizeof(kept), &kept) == 0;
}

cpu_set_t one_cpu(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_SET(cpu, &s);
  return s;
}

}  // namespace

void ThreadPool::steer_sleepers(int caller_cpu) {
  if (caller_cpu < 0 || caller_cpu >= CPU_SETSIZE) return;
  const cpu_set_t caller = one_cpu(caller_cpu);
  for (int i = 1; i < size(); ++i) {
    Slot& w = slots_[i];
    const int tid = w.tid.load(std::memory_order_acquire);
    if (!w.asleep.load(std::memory_order_acquire) || tid == 0 || w.narrowed.load(std::memory_order_relaxed)) continue;
    if (sched_getaffinity(tid, sizeof(w.mask), &w.mask) != 0 || !CPU_ISSET(caller_cpu, &w.mask)) continue;
    if (set_mask_without(tid, w.mask, caller)) w.narrowed.store(true, std::memory_order_release);
  }
}

void ThreadPool::spread_after_wake() {
  if (t_slot < 0) return;
  const int cpu = sched_getcpu();
  if (cpu < 0) return;
  cpu_set_t teammates;  // the CPUs the others last ran on
  CPU_ZERO(&teammates);
  for (int j = 0; j < size(); ++j) {
    const int c = slots_[j].cpu.load(std::memory_order_relaxed);
    if (j != t_slot && c >= 0 && c < CPU_SETSIZE) CPU_SET(c, &teammates);
  }
  cpu_set_t allowed;
  if (CPU_ISSET(cpu, &teammates) && sched_getaffinity(0, sizeof(allowed), &allowed) == 0 &&
      set_mask_without(0, allowed, teammates))
    sched_setaffinity(0, sizeof(allowed), &allowed);  // moved: free again
  slots_[t_slot].cpu.store(sched_getcpu(), std::memory_order_relaxed);
}

namespace {
constexpr uint64_t kTaskBits = 20, kTaskMask = (uint64_t{1} << kTaskBits) - 1;
constexpr uint64_t pack_block(uint32_t gen, uint64_t front, uint64_t back) {
  return (static_cast<uint64_t>(gen & 0xffffffu) << (2 * kTaskBits)) | (front << kTaskBits) | back;
}
}  // namespace

int ThreadPool::take(int b, uint32_t gen, bool front) {
  std::atomic<uint64_t>& word = blocks_[b].v;
  uint64_t v = word.load(std::memory_order_acquire);
  for (;;) {
    if (static_cast<uint32_t>(v >> (2 * kTaskBits)) != (gen & 0xffffffu)) return -1;
    const uint64_t f = (v >> kTaskBits) & kTaskMask, k = v & kTaskMask;
    if (f >= k) return -1;
    const uint64_t next = front ? pack_block(gen, f + 1, k) : pack_block(gen, f, k - 1);
    if (word.compare_exchange_weak(v, next, std::memory_order_acq_rel, std::memory_order_acquire))
      return static_cast<int>(front ? f : k - 1);
  }
}

void ThreadPool::run_task(int i) {
  try {
    (*job_.load(std::memory_order_acquire))(i);
  } catch (...) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::work_on(uint32_t gen) {
  RegionGuard guard;
  const int cpu = sched_getcpu();
  slots_[t_slot].cpu.store(cpu, std::memory_order_relaxed);
  const int blocks = num_blocks_.load(std::memory_order_acquire);
  const int n = num_tasks_.load(std::memory_order_acquire);
  if (blocks <= 0) return;
  const int home = (cpu >= 0 && cpu < CPU_SETSIZE ? cpu_rank_[static_cast<size_t>(cpu)] : t_slot) % blocks;
  // Tasks done are counted here and published once: a shared counter bumped per task moved
  // its cache line between the cores at every task (`loom bench pool`, 16 empty tasks on 2
  // threads: 0.80-0.84 -> 0.36-0.43 us per job).
  int done = 0;
  for (int i; (i = take(home, gen, true)) >= 0; ++done) run_task(i);
  for (int k = 1; k < blocks; ++k)
    for (int i; (i = take((home + k) % blocks, gen, false)) >= 0; ++done) run_task(i);
  if (done > 0 && done_tasks_.fetch_add(done, std::memory_order_acq_rel) + done == n) done_tasks_.notify_all();
}

void ThreadPool::worker_loop(int slot) {
  SlotGuard slot_guard(this, slot);
  Slot& me = slots_[slot];
  me.tid.store(static_cast<int>(gettid()), std::memory_order_release);
  uint64_t seen = 0;
  for (;;) {
    auto start = std::chrono::steady_clock::now();
    uint64_t gen;
    int spins = 0;
    bool slept = false;
    while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
      cpu_relax();
      if (++spins % 256 == 0 && std::chrono::steady_clock::now() - start > kSpin) {
        me.asleep.store(true, std::memory_order_release);
        generation_.wait(seen, std::memory_order_acquire);
        me.asleep.store(false, std::memory_order_release);
        slept = true;
      }
    }
    seen = gen;
    if (stop_.load()) return;
    if (me.narrowed.load(std::memory_order_acquire)) {
      sched_setaffinity(0, sizeof(me.mask), &me.mask);  // awake off the caller's CPU: free again
      me.narrowed.store(false, std::memory_order_release);
    }
    if (slept) spread_after_wake();
    work_on(static_cast<uint32_t>(gen));
  }
}

void ThreadPool::run(int64_t tasks, const std::function<void(int)>& fn) {
  if (tasks <= 0) return;
  LOOM_CHECK(static_cast<uint64_t>(tasks) <= kTaskMask, "ThreadPool::run: {} tasks, at most {}", tasks, kTaskMask);
  const int num_tasks = static_cast<int>(tasks);
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
  SlotGuard slot_guard(this, 0);
  error_ = nullptr;
  const uint32_t gen = static_cast<uint32_t>(generation_.load(std::memory_order_relaxed) + 1);
  job_.store(&fn, std::memory_order_release);
  num_tasks_.store(num_tasks, std::memory_order_release);
  done_tasks_.store(0, std::memory_order_release);
  const int blocks = std::min(num_tasks, size());
  for (int b = 0; b < blocks; ++b) {
    const uint64_t lo = static_cast<uint64_t>(num_tasks) * b / blocks, hi = static_cast<uint64_t>(num_tasks) * (b + 1) / blocks;
    blocks_[b].v.store(pack_block(gen, lo, hi), std::memory_order_release);
  }
  num_blocks_.store(blocks, std::memory_order_release);
  steer_sleepers(sched_getcpu());
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
      spread_after_wake();
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
  if (t_pool) t_pool->spread_after_wake();
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
