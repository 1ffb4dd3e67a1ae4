// `loom bench pool`: what one parallel job costs on Loom's thread pool (dispatch, claiming the
// tasks, the join) with tasks that do (almost) nothing, against OpenMP -- the runtime oneDNN
// and PyTorch's CPU kernels run on -- for the same loop in the same run. Each task bumps its
// own cache line, so the cost measured is the runtime's alone.
#include <cstdio>
#include <memory>
#include <vector>

#ifdef LOOM_HAVE_OPENMP
#include <omp.h>
#endif

#include "apps/loom/bench_util.h"
#include "apps/loom/commands.h"
#include "loom/base/thread_pool.h"

namespace loom::cli {
namespace {

struct alignas(64) Slot {
  int64_t v = 0;
};
constexpr int kMaxTasks = 4096;

int run_pool(const BenchCommon& o, const std::string& task_list) {
  const std::vector<int> threads = parse_int_list(o.threads, "--threads");
  const std::vector<int> tasks_list = parse_int_list(task_list, "--tasks");
  for (int n : tasks_list) LOOM_CHECK(n <= kMaxTasks, "--tasks: {} is over {}", n, kMaxTasks);  // (parse: >= 1)
#ifndef LOOM_HAVE_OPENMP
  if (!o.no_peers) std::printf("# openmp unavailable: this build has no OpenMP (peer skipped)\n");
#endif
  std::printf("%-6s %4s %10s %10s %10s %8s\n", "tasks", "thr", "loom_us", "omp_st_us", "omp_dyn_us", "ratio");
  nlohmann::json records = nlohmann::json::array();
  std::vector<Slot> slots(kMaxTasks);
  for (int t : threads) {
    set_num_threads(t);
#ifdef LOOM_HAVE_OPENMP
    omp_set_num_threads(t);
#endif
    for (int n : tasks_list) {
      std::function<void()> loom_job = [&] { parallel_tasks(n, [&](int64_t i) { ++slots[static_cast<size_t>(i)].v; }); };
      std::function<void()> omp_static, omp_dynamic;
#ifdef LOOM_HAVE_OPENMP
      if (!o.no_peers) {
        omp_static = [&] {
#pragma omp parallel for schedule(static)
          for (int i = 0; i < n; ++i) ++slots[static_cast<size_t>(i)].v;
        };
        omp_dynamic = [&] {
#pragma omp parallel for schedule(dynamic, 1)
          for (int i = 0; i < n; ++i) ++slots[static_cast<size_t>(i)].v;
        };
      }
#endif
      const auto tm = time_each({loom_job, omp_static, omp_dynamic}, o.repeats);
      const double l = tm[0].min() * 1e6;
      const double st = omp_static ? tm[1].min() * 1e6 : 0.0, dy = omp_dynamic ? tm[2].min() * 1e6 : 0.0;
      const double best = omp_static ? std::min(st, dy) : 0.0;
      if (best > 0) std::printf("%-6d %4d %10.2f %10.2f %10.2f %8.3f\n", n, t, l, st, dy, best / l);
      else std::printf("%-6d %4d %10.2f %10s %10s %8s\n", n, t, l, "-", "-", "-");
      nlohmann::json rec = {{"case", "empty tasks " + std::to_string(n)}, {"threads", t}, {"loom_us", l}};
      if (best > 0) {
        rec["peer"] = "openmp";
        rec["peer_us"] = best;
        rec["peer_static_us"] = st;
        rec["peer_dynamic_us"] = dy;
        rec["ratio"] = best / l;
      }
      records.push_back(rec);
    }
  }
  write_json_records(o.json, records, "pool");
  return 0;
}

}  // namespace

void add_bench_pool(CLI::App& bench, Runner& run) {
  auto o = std::make_shared<BenchCommon>();
  o->threads = "2";
  auto tasks = std::make_shared<std::string>("2,16,64");
  auto* cmd = bench.add_subcommand("pool", "One parallel job of empty tasks: Loom's thread pool vs OpenMP");
  add_common_bench_options(*cmd, *o);
  cmd->add_option("--tasks", *tasks, "comma-separated task counts per job")->capture_default_str();
  cmd->callback([o, tasks, &run] { run = [o, tasks] { return run_pool(*o, *tasks); }; });
}

}  // namespace loom::cli
