// `loom bench alloc`: what the caching allocator saves. A "step" allocates a tensor, writes
// every element once (as a kernel's output would) and frees it; with the cache the second
// step reuses warm pages, without it every step takes fresh pages from the OS.
#include <cstdio>

#include "apps/loom/bench_util.h"
#include "apps/loom/commands.h"
#include "loom/tensor/allocator.h"
#include "loom/tensor/tensor.h"

namespace loom::cli {
namespace {

int run_alloc(int repeats) {
  auto& alloc = CachingAllocator::instance();
  const size_t old_limit = alloc.cache_limit();
  std::printf("%-10s %14s %14s %9s %14s\n", "size", "cached_us", "uncached_us", "speedup", "us_per_4k_page");
  for (int64_t mib : {1, 8, 64}) {
    const int64_t n = mib * (1 << 20) / 4;
    auto step = [n] {
      Tensor t = Tensor::empty({n});
      t.fill(1.0);
    };
    alloc.set_cache_limit(old_limit);
    auto cached = time_each({step}, repeats);
    alloc.set_cache_limit(0);
    auto uncached = time_each({step}, repeats);
    alloc.set_cache_limit(old_limit);
    double c = cached[0].min() * 1e6, u = uncached[0].min() * 1e6;
    double pages = static_cast<double>(mib) * 256;
    std::printf("%-10s %14.1f %14.1f %9.1f %14.2f\n", (std::to_string(mib) + "MiB").c_str(), c, u, u / c,
                (u - c) / pages);
  }
  return 0;
}

}  // namespace

void add_bench_alloc(CLI::App& bench, Runner& run) {
  auto repeats = std::make_shared<int>(5);
  auto* cmd = bench.add_subcommand("alloc", "Allocate-write-free steps with and without the caching allocator");
  cmd->add_option("--repeats", *repeats, "timed repetitions (min reported)")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->callback([repeats, &run] { run = [repeats] { return run_alloc(*repeats); }; });
}

}  // namespace loom::cli
