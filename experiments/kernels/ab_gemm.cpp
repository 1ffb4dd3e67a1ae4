// ab_gemm M N K THREADS CALLS ROUNDS: the SGEMM with the committed AVX-512 micro-kernels
// ("base") against the same driver with a variant's kernels ("var", namespace loomB, built
// by ab_gemm.sh) and oneDNN, alternated in one process. Each round: CALLS timed calls of
// each after 3 warm-up calls; per-round medians paired across contenders.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "apps/loom/peers.h"
#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/gemm.h"
#include "loom/tensor/tensor.h"

namespace loomB::cpu {
struct GemmKernel;
const GemmKernel* sgemm_kernel_avx512();
}  // namespace loomB::cpu

using namespace loom;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: %s M N K THREADS CALLS ROUNDS\n", argv[0]);
    return 2;
  }
  const int64_t M = std::atoll(argv[1]), N = std::atoll(argv[2]), K = std::atoll(argv[3]);
  const int T = std::atoi(argv[4]), calls = std::atoi(argv[5]), rounds = std::atoi(argv[6]);
  set_num_threads(T);
  Tensor A = Tensor::randn({M, K}), B = Tensor::randn({K, N}), C = Tensor::empty({M, N}), C2 = Tensor::empty({M, N});
  float *a = A.data<float>(), *b = B.data<float>(), *c = C.data<float>();
  auto peer = peers::onednn();
  if (!peer.unavailable.empty()) {
    std::fprintf(stderr, "oneDNN unavailable: %s\n", peer.unavailable.c_str());
    return 1;
  }
  peer.set_threads(T);
  // The variant's GemmKernel has the same layout (same header, other namespace): swapped
  // into the active kernel for its rounds.
  auto& g = const_cast<cpu::GemmKernel&>(cpu::active_sgemm_kernel());
  const cpu::GemmKernel g0 = g;
  cpu::GemmKernel g1;
  std::memcpy(static_cast<void*>(&g1), loomB::cpu::sgemm_kernel_avx512(), sizeof g1);
  g1.name = g0.name;
  g1.fma_peak = g0.fma_peak;
  auto run = [&](float* out) { cpu::sgemm(M, N, K, 1.0f, {a, K, 1}, {b, N, 1}, 0.0f, out, N); };
  run(C2.data<float>());
  g = g1;
  run(c);
  g = g0;
  double maxdiff = 0;
  for (int64_t i = 0; i < M * N; ++i) maxdiff = std::max(maxdiff, double(std::abs(c[i] - C2.data<float>()[i])));
  const double flop = 2.0 * M * N * K;
  std::vector<double> med[3];
  for (int r = 0; r < rounds; ++r)
    for (int m = 0; m < 3; ++m) {
      g = m == 1 ? g1 : g0;
      auto f = [&] {
        if (m == 2)
          peer.sgemm(M, N, K, a, b, c);
        else
          run(c);
      };
      for (int i = 0; i < 3; ++i) f();
      std::vector<double> ts;
      for (int i = 0; i < calls; ++i) {
        const auto t0 = Clock::now();
        f();
        ts.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
      std::sort(ts.begin(), ts.end());
      med[m].push_back(flop / ts[ts.size() / 2] * 1e-9);
    }
  g = g0;
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::vector<double> var_base, base_peer;
  for (int r = 0; r < rounds; ++r) {
    var_base.push_back(med[1][r] / med[0][r]);
    base_peer.push_back(med[0][r] / med[2][r]);
  }
  std::printf("%ldx%ldx%ld T%d maxdiff %.2g: base %.1f var %.1f onednn %.1f GFLOP/s | var/base %.3f base/onednn %.3f\n",
              long(M), long(N), long(K), T, maxdiff, median(med[0]), median(med[1]), median(med[2]), median(var_base),
              median(base_peer));
}
