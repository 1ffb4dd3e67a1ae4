// ab_conv N THREADS CALLS ROUNDS PASS [C H O PAD]: two builds of conv_direct_avx512.cpp
// (entry points renamed A_* and B_* by ab_conv.sh) against each other and oneDNN in one
// process. PASS f: forward, w: weight gradient. Each round runs CALLS timed calls of A, of
// B, then of oneDNN (3 warm-up calls each); per-round medians are paired across contenders.
// Default layer: 1 -> 32 channels, 28 x 28, 3 x 3, padding 1 (the CNN's first).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "apps/loom/peers.h"
#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/conv_direct.h"
#include "loom/tensor/tensor.h"

namespace loom::cpu::detail {
void A_fwd(const ConvDims&, const float*, const float*, float*, const float*, bool);
void B_fwd(const ConvDims&, const float*, const float*, float*, const float*, bool);
void A_wgt(const ConvDims&, const float*, const float*, float*);
void B_wgt(const ConvDims&, const float*, const float*, float*);
}  // namespace loom::cpu::detail

using namespace loom;
using namespace loom::cpu::detail;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s N THREADS CALLS ROUNDS f|w [C H O PAD]\n", argv[0]);
    return 2;
  }
  const int64_t N = std::atoll(argv[1]), T = std::atoll(argv[2]), calls = std::atoll(argv[3]),
                rounds = std::atoll(argv[4]);
  const bool wgt = argv[5][0] == 'w';
  const int64_t C = argc > 6 ? std::atoll(argv[6]) : 1, H = argc > 7 ? std::atoll(argv[7]) : 28,
                O = argc > 8 ? std::atoll(argv[8]) : 32, pad = argc > 9 ? std::atoll(argv[9]) : 1;
  const int64_t OH = H + 2 * pad - 2;
  set_num_threads(static_cast<int>(T));
  peers::onednn_set_threads(static_cast<int>(T));
  const ConvDims d{N, C, H, H, O, 3, 3, OH, OH, 1, 1, 1, pad, pad, 1, 1};
  Tensor x = Tensor::randn({N, C, H, H}), w = Tensor::randn({O, C, 3, 3}), gy = Tensor::randn({N, O, OH, OH});
  Tensor ya = Tensor::empty({N, O, OH, OH}), yb = Tensor::empty({N, O, OH, OH});
  Tensor gwa = Tensor::empty({O, C, 3, 3}), gwb = Tensor::empty({O, C, 3, 3});
  auto peer = peers::onednn_conv({int(N), int(C), int(H), int(H), int(O), 3, 1, int(pad)});
  std::function<void()> fa = [&] {
    if (wgt)
      A_wgt(d, x.data<float>(), gy.data<float>(), gwa.data<float>());
    else
      A_fwd(d, x.data<float>(), w.data<float>(), ya.data<float>(), nullptr, false);
  };
  std::function<void()> fb = [&] {
    if (wgt)
      B_wgt(d, x.data<float>(), gy.data<float>(), gwb.data<float>());
    else
      B_fwd(d, x.data<float>(), w.data<float>(), yb.data<float>(), nullptr, false);
  };
  std::function<void()> fp = wgt ? peer.backward_weights : peer.forward;
  if (!fp) {
    std::fprintf(stderr, "oneDNN unavailable: %s\n", peer.unavailable.c_str());
    return 1;
  }
  fa();
  fb();
  const Tensor& ra = wgt ? gwa : ya;
  const Tensor& rb = wgt ? gwb : yb;
  double maxdiff = 0;
  for (int64_t i = 0; i < ra.numel(); ++i)
    maxdiff = std::max(maxdiff, double(std::abs(ra.data<float>()[i] - rb.data<float>()[i])));
  std::vector<double> med[3];
  std::function<void()>* fs[3] = {&fa, &fb, &fp};
  for (int64_t r = 0; r < rounds; ++r)
    for (int m = 0; m < 3; ++m) {
      for (int i = 0; i < 3; ++i) (*fs[m])();
      std::vector<double> ts;
      for (int64_t i = 0; i < calls; ++i) {
        const auto t0 = Clock::now();
        (*fs[m])();
        ts.push_back(std::chrono::duration<double>(Clock::now() - t0).count() * 1e6);
      }
      std::sort(ts.begin(), ts.end());
      med[m].push_back(ts[ts.size() / 2]);
    }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  auto paired = [&](int slow, int fast) {  // median over rounds of time[slow] / time[fast]
    std::vector<double> v;
    for (size_t r = 0; r < med[0].size(); ++r) v.push_back(med[slow][r] / med[fast][r]);
    return median(v);
  };
  std::printf(
      "%s N %ld T %ld (C %ld H %ld O %ld pad %ld) maxdiff A-B %g: A %.1f B %.1f onednn %.1f us | "
      "speedup B/A %.3f; onednn/A %.3f onednn/B %.3f\n",
      wgt ? "wgt" : "fwd", long(N), long(T), long(C), long(H), long(O), long(pad), maxdiff, median(med[0]),
      median(med[1]), median(med[2]), paired(0, 1), paired(2, 0), paired(2, 1));
}
