// `loom bench conv`: the two conv layers of the Fashion-MNIST CNN (batch 64 and 256),
// forward, backward-data and backward-weights, against oneDNN at its best in the same run.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/loom/bench_util.h"
#include "apps/loom/commands.h"
#include "apps/loom/peers.h"
#include "loom/base/error.h"
#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/conv.h"
#include "loom/tensor/tensor.h"

namespace loom::cli {
namespace {

int run_conv(const BenchCommon& o, const std::string& batches, const std::string& algos) {
  std::vector<int> threads = parse_int_list(o.threads, "--threads");
  // Loom's algorithm per row: "winograd" (F(4x4, 3x3) or F(2x2, 3x3) where it applies -- the default) or
  // "gemm" (the implicit-GEMM kernels only).
  const std::vector<std::string> algo_list = split_list(algos);
  for (const std::string& name : algo_list)
    LOOM_CHECK(name == "winograd" || name == "gemm", "--algo: '{}' is not one of winograd, gemm", name);
  std::vector<peers::ConvShape> shapes;
  for (int n : parse_int_list(batches, "--batch")) {
    shapes.push_back({n, 1, 28, 28, 32, 3, 1, 1});
    shapes.push_back({n, 32, 14, 14, 64, 3, 1, 1});
  }
  if (!o.no_peers && std::any_of(shapes.begin(), shapes.end(), [](const peers::ConvShape& s) { return s.N < 8; }))
    std::printf("# oneDNN's Winograd is not run below batch 8 (its weight gradient crashes there): direct only\n");
  std::printf("%-28s %3s %-8s %-8s %10s %10s %10s %-8s %7s %7s\n", "layer", "thr", "pass", "algo", "loom_ms",
              "loom_med", "onednn_ms", "its_algo", "ratio", "paired");
  nlohmann::json records = nlohmann::json::array();
  for (int t : threads) {
    set_num_threads(t);
    peers::onednn_set_threads(t);
    for (const auto& s : shapes) {
      cpu::Conv2dParams p;
      p.stride_h = p.stride_w = s.stride;
      p.pad_h = p.pad_w = s.pad;
      const int OH = (s.H + 2 * s.pad - s.K) / s.stride + 1, OW = (s.W + 2 * s.pad - s.K) / s.stride + 1;
      Tensor x = Tensor::randn({s.N, s.C, s.H, s.W}), w = Tensor::randn({s.O, s.C, s.K, s.K});
      Tensor y = Tensor::empty({s.N, s.O, OH, OW}), gy = Tensor::randn({s.N, s.O, OH, OW});
      Tensor gx = Tensor::empty(x.shape()), gw = Tensor::empty(w.shape());
      // oneDNN at its best: its direct and (where this build has one) Winograd algorithms,
      // the faster per pass. Winograd only from batch 8: oneDNN 2.6's Winograd weight
      // gradient crashes (segfault) on small batches -- 1-4 images of the 32 -> 64 layer,
      // 1-3 of the 1-channel one, on this machine -- and a crash cannot be caught.
      peers::ConvPeer peer, wpeer;
      if (!o.no_peers) {
        peer = peers::onednn_conv(s);
        try {
          if (s.N >= 8)
            wpeer = peers::onednn_conv(s, /*winograd=*/true);
          else
            wpeer.unavailable = "oneDNN's Winograd is not run below batch 8 (its weight gradient crashes there)";
        } catch (const std::exception& e) {
          wpeer.unavailable = e.what();
        }
      }
      if (!peer.unavailable.empty()) std::printf("# onednn unavailable: %s\n", peer.unavailable.c_str());
      const std::string name = fmt::format("{}x{}x{}x{}->{} k{}", s.N, s.C, s.H, s.W, s.O, s.K);
      struct Pass {
        const char* name;
        std::function<void()> loom, peer, wpeer;
      };
      std::vector<Pass> passes = {
          {"forward", [&] { cpu::conv2d_forward(x, w, p, y); }, peer.forward, wpeer.forward},
          {"bwd_data", [&] { cpu::conv2d_backward_input(gy, w, p, gx); }, peer.backward_data, wpeer.backward_data},
          {"bwd_wgt", [&] { cpu::conv2d_backward_weight(x, gy, p, gw); }, peer.backward_weights,
           wpeer.backward_weights},
      };
      for (auto& ps : passes)
      for (const std::string& algo : algo_list) {
        cpu::set_conv_winograd(algo == "winograd");
        auto tm = time_each({ps.loom, ps.peer, ps.wpeer}, o.repeats);
        double lm = tm[0].min() * 1e3, lmed = tm[0].median() * 1e3;
        double pm = tm[1].samples.empty() ? 0 : tm[1].min() * 1e3;
        const char* peer_algo = "direct";
        const Timing* peer_t = &tm[1];
        if (!tm[2].samples.empty() && (pm == 0 || tm[2].min() * 1e3 < pm)) {
          pm = tm[2].min() * 1e3;
          peer_algo = "winograd";
          peer_t = &tm[2];
        }
        double ratio = pm > 0 ? pm / lm : 0;  // > 1: Loom faster
        double paired = pm > 0 ? paired_ratio(tm[0], *peer_t) : 0;
        std::printf("%-28s %3d %-8s %-8s %10.3f %10.3f %10.3f %-8s %7.3f %7.3f\n", name.c_str(), t, ps.name,
                    algo.c_str(), lm, lmed, pm, pm > 0 ? peer_algo : "-", ratio, paired);
        std::fflush(stdout);
        records.push_back({{"case", name + " " + ps.name},
                           {"threads", t},
                           {"algo", algo},
                           {"loom_ms", lm},
                           {"loom_ms_median", lmed},
                           {"peer", "onednn"},
                           {"peer_algo", peer_algo},
                           {"peer_ms", pm},
                           {"ratio", ratio},
                           {"ratio_paired_median", paired}});
      }
    }
  }
  cpu::set_conv_winograd(true);
  write_json_records(o.json, records, "conv");
  return 0;
}

}  // namespace

void add_bench_conv(CLI::App& bench, Runner& run) {
  auto o = std::make_shared<BenchCommon>();
  auto batches = std::make_shared<std::string>("64,256");
  auto algos = std::make_shared<std::string>("winograd");
  auto* cmd = bench.add_subcommand("conv", "conv2d forward/backward of the CNN's layers vs oneDNN");
  add_common_bench_options(*cmd, *o);
  cmd->add_option("--batch", *batches, "comma-separated batch sizes")->capture_default_str();
  cmd->add_option("--algo", *algos,
                  "comma-separated Loom algorithms, each a row: winograd (F(4x4,3x3), or F(2x2,3x3) for "
                  "outputs under 4x4 or very large images, for 3x3 unit-stride layers with >= 8 channels, else "
                  "implicit GEMM; the default) or gemm (implicit GEMM only)")
      ->capture_default_str();
  cmd->footer(
      "Columns: loom_ms / onednn_ms the fastest of --repeats rounds, loom_med Loom's median; ratio = "
      "onednn_ms / loom_ms (> 1: Loom faster); paired = the median over rounds of oneDNN's time / Loom's in the "
      "same round (steadier on a shared machine).");
  cmd->callback([o, batches, algos, &run] { run = [o, batches, algos] { return run_conv(*o, *batches, *algos); }; });
}

}  // namespace loom::cli
