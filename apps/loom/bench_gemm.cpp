// `loom bench gemm`: SGEMM GFLOP/s of Loom's packed GEMM against OpenBLAS and oneDNN in
// the same run, for square sizes and transformer shapes, at 1 and 2 threads.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/loom/bench_util.h"
#include "loom/base/error.h"
#include "apps/loom/commands.h"
#include "apps/loom/peers.h"
#include "loom/base/cpu.h"
#include "loom/base/rng.h"
#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/gemm.h"
#include "loom/tensor/tensor.h"

namespace loom::cli {
namespace {

struct GemmCase {
  std::string name;
  int M, N, K;
};

struct GemmOptions : BenchCommon {
  std::string sizes = "64,128,256,512,1024,2048";
  bool no_transformer = false;
  double peak = 0;  // fp32 GFLOP/s per core; 0: measured (cpu::sgemm_fma_peak_gflops)
};

int run_gemm(const GemmOptions& o) {
  std::vector<int> threads = parse_int_list(o.threads, "--threads");
  std::vector<GemmCase> cases;
  for (int n : parse_int_list(o.sizes, "--sizes")) cases.push_back({fmt::format("{}x{}x{}", n, n, n), n, n, n});
  if (!o.no_transformer)
    for (auto [m, n, k] : {std::tuple{512, 768, 768}, {512, 3072, 768}, {512, 768, 3072}})
      cases.push_back({fmt::format("{}x{}x{}", m, n, k), m, n, k});

  std::vector<peers::SgemmPeer> peer_list;
  if (!o.no_peers) {
    for (auto p : {peers::openblas(), peers::onednn()}) {
      if (!p.unavailable.empty()) {
        std::printf("# peer %s unavailable: %s\n", p.name.c_str(), p.unavailable.c_str());
      } else {
        peer_list.push_back(p);
      }
    }
  }
  // The %peak column's reference: this core's FMA rate measured by a register-only loop
  // (its nominal peak can be twice that: AMD Zen 4 splits 512-bit FMAs in two), or --peak.
  const bool measured = o.peak <= 0;
  const double peak = measured ? cpu::sgemm_fma_peak_gflops(0.2) : o.peak;
  std::printf("# loom sgemm kernel: %s, cpu: %s, peak %.0f GFLOP/s per core (%s)\n", cpu::sgemm_kernel_name(),
              cpu_model_name().c_str(), peak, measured ? "measured: a register-only FMA loop" : "--peak");
  std::printf("%-16s %3s %10s %10s %6s", "case(MxNxK)", "thr", "loom_best", "loom_med", "%peak");
  for (auto& p : peer_list) std::printf(" %22s", (p.name + "_best").c_str());
  std::printf(" %8s %7s %6s\n", "ratio", "paired", "maxerr");

  nlohmann::json records = nlohmann::json::array();
  for (int t : threads) {
    set_num_threads(t);
    for (auto& p : peer_list) p.set_threads(t);
    for (const auto& c : cases) {
      // Operands as tensors hold them (64-byte aligned, from Loom's allocator), the same
      // buffers for every contender.
      Tensor At = Tensor::empty({c.M, c.K}), Bt = Tensor::empty({c.K, c.N});
      Tensor Ct = Tensor::empty({c.M, c.N}), Pt = Tensor::empty({c.M, c.N});
      float *A = At.data<float>(), *B = Bt.data<float>(), *C = Ct.data<float>(), *P = Pt.data<float>();
      Philox gen(1);
      gen.fill_uniform(A, At.numel(), -1.f, 1.f);
      gen.fill_uniform(B, Bt.numel(), -1.f, 1.f);
      std::vector<std::function<void()>> fns;
      fns.push_back([&] { cpu::sgemm(c.M, c.N, c.K, 1.0f, {A, c.K, 1}, {B, c.N, 1}, 0.0f, C, c.N); });
      for (auto& p : peer_list) fns.push_back([&] { p.sgemm(c.M, c.N, c.K, A, B, P); });
      auto timings = time_each(fns, o.repeats);
      const double flop = 2.0 * c.M * c.N * c.K;
      double loom_best = flop / timings[0].min() * 1e-9, loom_med = flop / timings[0].median() * 1e-9;
      double best_peer = 0;
      std::string best_name = "none";
      const Timing* best_t = nullptr;
      std::printf("%-16s %3d %10.1f %10.1f %5.0f%%", c.name.c_str(), t, loom_best, loom_med,
                  peak > 0 ? 100 * loom_best / (peak * t) : 0.0);
      nlohmann::json rec = {{"case", c.name}, {"threads", t}, {"loom_gflops", loom_best},
                            {"loom_gflops_median", loom_med}, {"peak_fraction", peak > 0 ? loom_best / (peak * t) : 0.0}};
      for (size_t i = 0; i < peer_list.size(); ++i) {
        double g = flop / timings[i + 1].min() * 1e-9;
        std::printf(" %22.1f", g);
        rec[peer_list[i].name + "_gflops"] = g;
        if (g > best_peer) best_peer = g, best_name = peer_list[i].name, best_t = &timings[i + 1];
      }
      // Loom's result against the last peer's (the same product): a wrong kernel shows here.
      double maxerr = 0;
      if (!peer_list.empty())
        for (int64_t i = 0; i < c.M * c.N; ++i) maxerr = std::max(maxerr, double(std::abs(C[i] - P[i])));
      double ratio = best_peer > 0 ? loom_best / best_peer : 0;
      double paired = best_t ? paired_ratio(timings[0], *best_t) : 0;
      std::printf(" %8.3f %7.3f %6.0e\n", ratio, paired, maxerr);
      std::fflush(stdout);
      rec["peer"] = best_name;
      rec["peer_gflops"] = best_peer;
      rec["ratio"] = ratio;
      rec["ratio_paired_median"] = paired;
      rec["max_abs_diff_vs_peer"] = maxerr;
      records.push_back(rec);
    }
  }
  write_json_records(o.json, records, "gemm");
  return 0;
}

}  // namespace

void add_bench_gemm(CLI::App& bench, Runner& run) {
  auto o = std::make_shared<GemmOptions>();
  auto* cmd = bench.add_subcommand("gemm", "SGEMM GFLOP/s vs OpenBLAS and oneDNN (square sizes + transformer shapes)");
  add_common_bench_options(*cmd, *o);
  cmd->add_option("--sizes", o->sizes, "comma-separated square sizes")->capture_default_str();
  cmd->add_flag("--no-transformer", o->no_transformer, "skip the transformer shapes");
  cmd->add_option("--peak", o->peak,
                  "fp32 peak GFLOP/s per core for the %peak column (default: measured by a register-only FMA loop)");
  cmd->footer(
      "Columns: GFLOP/s of the fastest of --repeats rounds (loom_med: Loom's median); ratio = Loom best / best "
      "peer's best; paired = the median over rounds of the best peer's time / Loom's in the same round (steadier "
      "on a shared machine); maxerr = largest |Loom - peer| element.");
  cmd->callback([o, &run] { run = [o] { return run_gemm(*o); }; });
}

}  // namespace loom::cli
