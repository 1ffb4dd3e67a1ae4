// conv2d forward, input gradient and weight gradient against a naive loop in double
// precision, on the three f32 paths: AVX-512 Winograd F(2x2, 3x3) (conv_winograd_avx512.cpp:
// 3x3 unit-stride ungrouped layers with >= 8 channels), the AVX-512 implicit GEMM
// (conv_direct_avx512.cpp; Winograd switched off) and im2col + GEMM (forced by capping the
// ISA at AVX2). Shapes cover unit and larger strides,
// dilation, groups, no padding, padding beyond the kernel, channel counts that are not a
// multiple of the 16-lane vector, one image on several threads and uneven batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <string>

#include "loom/base/cpu.h"
#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/conv.h"

namespace loom {
namespace {

struct Case {
  int64_t N, C, H, W, O, K;
  int64_t stride = 1, pad = 1, dil = 1, groups = 1;
  int64_t KW = 0;  // 0: square kernel
  int64_t SW = 0;  // width stride; 0: `stride`
};

struct Ref {
  std::vector<double> y, gx, gw;
};

Ref naive(const Case& c, int64_t OH, int64_t OW, const std::vector<float>& x, const std::vector<float>& w,
          const std::vector<float>& gy) {
  const int64_t KH = c.K, KW = c.KW ? c.KW : c.K, Cg = c.C / c.groups, Og = c.O / c.groups;
  const int64_t SW = c.SW ? c.SW : c.stride;
  Ref r;
  r.y.assign(static_cast<size_t>(c.N * c.O * OH * OW), 0.0);
  r.gx.assign(x.size(), 0.0);
  r.gw.assign(w.size(), 0.0);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.O; ++o) {
      const int64_t gi = o / Og;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const size_t yi = static_cast<size_t>(((n * c.O + o) * OH + oh) * OW + ow);
          for (int64_t ci = 0; ci < Cg; ++ci)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t ih = oh * c.stride - c.pad + kh * c.dil, iw = ow * SW - c.pad + kw * c.dil;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                const size_t xi = static_cast<size_t>(((n * c.C + gi * Cg + ci) * c.H + ih) * c.W + iw);
                const size_t wi = static_cast<size_t>(((o * Cg + ci) * KH + kh) * KW + kw);
                r.y[yi] += double(x[xi]) * w[wi];
                r.gx[xi] += double(gy[yi]) * w[wi];
                r.gw[wi] += double(gy[yi]) * x[xi];
              }
        }
    }
  return r;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 1e-6;
  for (double v : want) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 2e-5 * scale + 1e-5) << what << " at flat index " << i;
}

void check(const Case& c, Isa isa, int threads, bool winograd) {
  const int64_t KH = c.K, KW = c.KW ? c.KW : c.K;
  const int64_t OH = (c.H + 2 * c.pad - c.dil * (KH - 1) - 1) / c.stride + 1;
  const int64_t SW = c.SW ? c.SW : c.stride;
  const int64_t OW = (c.W + 2 * c.pad - c.dil * (KW - 1) - 1) / SW + 1;
  std::mt19937 rng(static_cast<unsigned>(c.N * 131 + c.C * 17 + c.O * 7 + c.H));
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto fill = [&](int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& e : v) e = u(rng);
    return v;
  };
  const Shape xs{c.N, c.C, c.H, c.W}, ws{c.O, c.C / c.groups, KH, KW}, ys{c.N, c.O, OH, OW};
  const auto x = fill(numel(xs)), w = fill(numel(ws)), gy = fill(numel(ys));
  const Ref ref = naive(c, OH, OW, x, w, gy);
  cpu::Conv2dParams p;
  p.stride_h = c.stride;
  p.stride_w = SW;
  p.pad_h = p.pad_w = c.pad;
  p.dilation_h = p.dilation_w = c.dil;
  p.groups = c.groups;
  set_isa_override(isa);
  set_num_threads(threads);
  cpu::set_conv_winograd(winograd);
  Tensor y = Tensor::empty(ys), gx = Tensor::empty(xs), gw = Tensor::empty(ws);
  cpu::conv2d_forward(Tensor::from_vector(x, xs), Tensor::from_vector(w, ws), p, y);
  cpu::conv2d_backward_input(Tensor::from_vector(gy, ys), Tensor::from_vector(w, ws), p, gx);
  cpu::conv2d_backward_weight(Tensor::from_vector(x, xs), Tensor::from_vector(gy, ys), p, gw);
  // With a bias (added by the kernel): the same plus bias[o].
  const auto bias = fill(c.O);
  Tensor yb = Tensor::empty(ys);
  cpu::conv2d_forward(Tensor::from_vector(x, xs), Tensor::from_vector(w, ws), p, yb, Tensor::from_vector(bias, {c.O}));
  // And with the fused relu.
  Tensor yr = Tensor::empty(ys);
  cpu::conv2d_forward(Tensor::from_vector(x, xs), Tensor::from_vector(w, ws), p, yr, Tensor::from_vector(bias, {c.O}),
                      /*relu=*/true);
  set_isa_override(Isa::kAvx512);
  cpu::set_conv_winograd(true);
  std::vector<double> ref_b = ref.y;
  for (size_t i = 0; i < ref_b.size(); ++i) ref_b[i] += bias[(i / static_cast<size_t>(OH * OW)) % static_cast<size_t>(c.O)];
  expect_close(yb.to_vector<float>(), ref_b, "forward with bias");
  for (double& v : ref_b) v = std::max(v, 0.0);
  expect_close(yr.to_vector<float>(), ref_b, "forward with bias and relu");
  expect_close(y.to_vector<float>(), ref.y, "forward");
  expect_close(gx.to_vector<float>(), ref.gx, "backward_input");
  expect_close(gw.to_vector<float>(), ref.gw, "backward_weight");
}

const std::vector<Case>& cases() {
  static const std::vector<Case> cs = {
      {2, 32, 14, 14, 64, 3},                        // the cnn's second layer
      {3, 1, 28, 28, 32, 3},                         // its first layer, odd batch
      {1, 16, 9, 11, 20, 3},                         // 20 outputs: a part-filled vector; one image
      {2, 24, 7, 5, 8, 3},                           // 8 outputs (the direct path's minimum)
      {2, 5, 6, 6, 3, 3},                            // few outputs: im2col path
      {2, 70, 6, 7, 72, 3},                          // > 64 outputs (two channel blocks), > 96 taps
      {2, 16, 10, 10, 16, 3, 2, 1},                  // stride 2 (input gradient via col2im)
      {1, 16, 11, 9, 32, 3, 1, 2, 2},                // dilation 2
      {2, 32, 8, 8, 32, 3, 1, 1, 1, 2},              // groups 2
      {2, 16, 6, 6, 16, 1, 1, 0},                    // 1x1, no padding: no copy
      {1, 16, 5, 5, 16, 1, 1, 1},                    // padding beyond a 1x1 kernel
      {2, 8, 9, 7, 16, 5, 1, 2, 1, 1, 3},            // 5x3 kernel
      {5, 16, 4, 4, 16, 3, 1, 0},                    // valid convolution, 2x2 output
      {0, 16, 6, 6, 16, 3},                          // empty batch
      // Winograd-only geometries: padding 2 (backward-data's flipped problem has none),
      // a 1 x 1 image (one tile, three quarters outside), odd sides, 8 channels.
      {2, 8, 5, 3, 9, 3, 1, 2},
      {3, 9, 1, 1, 8, 3},
      {2, 8, 17, 3, 24, 3},
      // Rows of 11 and 17 tiles: the input transform's groups of 8 tiles, the last partial.
      {2, 8, 6, 21, 16, 3},
      {1, 9, 5, 33, 8, 3},
      // Few taps (<= 32): the row-vector path.
      {2, 3, 9, 20, 10, 3},                          // RGB-like, rows of 16 + 4
      {1, 2, 11, 9, 12, 3, 1, 2, 2},                 // dilation 2, one image
      {3, 4, 8, 8, 16, 3, 1, 1, 1, 2},               // groups 2
      {2, 1, 33, 40, 9, 5, 1, 2, 1, 1, 3},           // 5x3 kernel, wide rows (output wider than input)
      // "Same" convolutions take flat vectors across row ends (one image copy per kernel
      // column, wrapped columns zeroed): planes of one partial vector, a 5-wide kernel on
      // 3-pixel rows, dilation 3 on 5-pixel rows, and padding as wide as the row (rows again).
      {2, 2, 5, 3, 8, 3},
      {2, 1, 6, 3, 8, 5, 1, 2},
      {1, 1, 4, 5, 8, 3, 1, 3, 3},
      {1, 1, 5, 2, 8, 3, 1, 2, 2},
      // Other widths on the flat path take "wide" copies (rows of OW pixels, each kernel
      // column's shift built in): a valid 1-channel layer (7 x 11 output, 77 pixels: a partial
      // last vector) and a 3-channel one with dilation 2. Height stride 2 keeps padded rows.
      {2, 1, 9, 13, 8, 3, 1, 0},
      {3, 3, 10, 12, 16, 3, 1, 0, 2},
      {2, 1, 11, 20, 8, 3, 2, 1, 1, 1, 0, 1},
      // Batches smaller than the threads' parts: each image's channel tiles dealt out (one
      // image of 32 channels, three of 20, groups of 12 channels).
      {1, 1, 7, 9, 32, 3},
      {3, 1, 6, 6, 20, 3},
      {1, 2, 6, 6, 24, 3, 1, 1, 1, 2},
      // One image on several threads: the Winograd weight gradient split by output channels
      // (40 outputs: three vectors, the last part-filled), F(4x4) and F(2x2) (3 x 3 output).
      {1, 8, 6, 7, 40, 3},
      {1, 8, 3, 3, 40, 3},
  };
  return cs;
}

// The case as a trace line: "N2 C1 9x13 O8 K3x3 s1 sw1 p0 d1 g1".
std::string describe(const Case& c) {
  std::ostringstream o;
  o << "N" << c.N << " C" << c.C << " " << c.H << "x" << c.W << " O" << c.O << " K" << c.K << "x" << (c.KW ? c.KW : c.K)
    << " s" << c.stride << " sw" << (c.SW ? c.SW : c.stride) << " p" << c.pad << " d" << c.dil << " g" << c.groups;
  return o.str();
}

class ConvPaths : public ::testing::TestWithParam<std::tuple<int, int, bool>> {};

TEST_P(ConvPaths, MatchesNaiveLoop) {
  const auto [isa, threads, winograd] = GetParam();
  if (static_cast<Isa>(isa) == Isa::kAvx512 && active_isa() < Isa::kAvx512) GTEST_SKIP() << "no AVX-512";
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    check(c, static_cast<Isa>(isa), threads, winograd);
  }
  set_num_threads(2);
}

INSTANTIATE_TEST_SUITE_P(IsaAndThreads, ConvPaths,
                         ::testing::Combine(::testing::Values(static_cast<int>(Isa::kAvx512), static_cast<int>(Isa::kAvx2)),
                                            ::testing::Values(1, 2, 3), ::testing::Bool()));

// Random few-tap layers (the row-vector paths: flat "same" and wide copies, padded rows
// under a height stride) against the naive loop: kernel sides 1-5, padding up to 3 (wider
// than some rows), dilation 1-2, 1-3 threads.
TEST(ConvRows, RandomShapesMatchNaiveLoop) {
  std::mt19937 rng(11);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  int checked = 0;
  while (checked < 150) {
    Case c{pick(1, 3), pick(1, 3), pick(1, 12), pick(1, 36), pick(1, 20), pick(1, 5)};
    c.stride = pick(1, 2), c.pad = pick(0, 3), c.dil = pick(1, 2), c.KW = pick(1, 5), c.SW = 1;
    if (c.C * c.K * c.KW > 32 || c.H + 2 * c.pad < c.dil * (c.K - 1) + 1 || c.W + 2 * c.pad < c.dil * (c.KW - 1) + 1)
      continue;
    SCOPED_TRACE(describe(c));
    check(c, Isa::kAvx512, static_cast<int>(pick(1, 3)), true);
    ++checked;
  }
  set_num_threads(2);
}

// An output too big for the caches (> 4 MiB) is prefetched for writing an image ahead on the
// flat row-vector path; image by image (no prefetch) must give the same bits, with and
// without bias/relu. Past 16 MiB of output per thread it is written with streaming stores
// instead (1 thread, 170 images: 17 MB).
class LargeOutput : public ::testing::TestWithParam<std::tuple<int, int64_t>> {};

TEST_P(LargeOutput, EqualsImageByImage) {
  if (active_isa() < Isa::kAvx512) GTEST_SKIP() << "no AVX-512";
  const auto [threads, N] = GetParam();
  set_num_threads(threads);
  Tensor x = Tensor::randn({N, 1, 28, 28}), w = Tensor::randn({32, 1, 3, 3}), b = Tensor::randn({32});
  cpu::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  for (bool relu : {false, true}) {
    Tensor y = Tensor::empty({N, 32, 28, 28});
    cpu::conv2d_forward(x, w, p, y, b, relu);
    const std::vector<float> all = y.to_vector<float>(), xs = x.to_vector<float>();
    for (int64_t n = 0; n < N; ++n) {
      Tensor yn = Tensor::empty({1, 32, 28, 28});
      const std::vector<float> xn(xs.begin() + n * 784, xs.begin() + (n + 1) * 784);
      cpu::conv2d_forward(Tensor::from_vector(xn, {1, 1, 28, 28}), w, p, yn, b, relu);
      const std::vector<float> one = yn.to_vector<float>();
      ASSERT_TRUE(std::equal(one.begin(), one.end(), all.begin() + n * 32 * 784)) << "image " << n << " relu " << relu;
    }
  }
  set_num_threads(2);
}

INSTANTIATE_TEST_SUITE_P(PrefetchedAndStreamed, LargeOutput,
                         ::testing::Values(std::make_tuple(2, int64_t{48}), std::make_tuple(1, int64_t{170})));

// The weight gradient sums per-thread partials in a fixed order: repeated calls agree bitwise.
TEST(ConvDirect, WeightGradientIsDeterministic) {
  set_num_threads(2);
  Tensor x = Tensor::randn({7, 32, 14, 14}), gy = Tensor::randn({7, 64, 14, 14});
  cpu::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  Tensor a = Tensor::empty({64, 32, 3, 3}), b = Tensor::empty({64, 32, 3, 3});
  cpu::conv2d_backward_weight(x, gy, p, a);
  cpu::conv2d_backward_weight(x, gy, p, b);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  set_num_threads(2);
}

// Each thread keeps its own plan, row geometry and packed (or Winograd-transformed) weights,
// remade per call: three layers called in turn, their weights overwritten in place between
// rounds (same pointer, same dims), must give on 2 and 3 threads exactly what one thread
// gives -- for the row path, Winograd and the o-vector path, in the batch split and the
// one-image split, forward and backward-data (a forward of the flipped problem).
TEST(ConvDirect, PerThreadWeightsFollowEveryCall) {
  if (active_isa() < Isa::kAvx512) GTEST_SKIP() << "no AVX-512";
  cpu::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  struct Layer {
    int64_t C, H, O;
  };
  // The row path; Winograd; the o-vector path (6 channels: no Winograd, 54 taps; its
  // backward-data's 6 outputs neither).
  const Layer layers[3] = {{1, 12, 32}, {32, 14, 64}, {6, 10, 24}};
  for (int64_t N : {1, 5}) {
    Tensor x[3], w[3], gy[3];
    for (int l = 0; l < 3; ++l) {
      x[l] = Tensor::randn({N, layers[l].C, layers[l].H, layers[l].H});
      w[l] = Tensor::randn({layers[l].O, layers[l].C, 3, 3});
      gy[l] = Tensor::randn({N, layers[l].O, layers[l].H, layers[l].H});
    }
    const Tensor w_next[3] = {Tensor::randn(w[0].shape()), Tensor::randn(w[1].shape()), Tensor::randn(w[2].shape())};
    // Round r: layer 0, layer 1, then both weights overwritten in place for round r + 1.
    auto run = [&](int threads) {
      set_num_threads(threads);
      Tensor wl[3] = {w[0].clone(), w[1].clone(), w[2].clone()};
      std::vector<std::vector<float>> out;
      for (int round = 0; round < 2; ++round) {
        for (int l = 0; l < 3; ++l) {
          Tensor y = Tensor::empty(gy[l].shape()), gx = Tensor::empty(x[l].shape());
          cpu::conv2d_forward(x[l], wl[l], p, y);
          cpu::conv2d_backward_input(gy[l], wl[l], p, gx);
          out.push_back(y.to_vector<float>());
          out.push_back(gx.to_vector<float>());
        }
        for (int l = 0; l < 3; ++l) wl[l].copy_from(w_next[l]);
      }
      return out;
    };
    const auto one = run(1);
    for (int threads : {2, 3}) {
      const auto many = run(threads);
      ASSERT_EQ(many.size(), one.size());
      for (size_t i = 0; i < one.size(); ++i)
        EXPECT_EQ(many[i], one[i]) << "N " << N << ", " << threads << " threads, result " << i
                                   << " (round, layer, forward/backward-data)";
    }
  }
  set_num_threads(2);
}

// conv2d_max_pool2d and its adjoints -- the fused AVX-512 kernels (pooling on the transposed
// output tile), or chunks of a few images through the unfused kernels -- must equal conv2d
// then max_pool2d (and the unfused adjoints) on any thread count,
// with uneven last chunks, one image per chunk (a 28 x 28 x 32 output fills a chunk), a
// batch smaller than the thread count, overlapping windows with padding, groups, f32 on
// every path (Winograd, implicit GEMM, im2col) and f64.
struct PoolCase {
  int64_t N, C, H, W, O, K, pad, groups, pool, pool_stride, pool_pad;
};

void check_conv_pool(const PoolCase& c, DType dt) {
  cpu::Conv2dParams cp;
  cp.pad_h = cp.pad_w = c.pad;
  cp.groups = c.groups;
  const cpu::Pool2dParams pp{c.pool, c.pool, c.pool_stride, c.pool_stride, c.pool_pad, c.pool_pad};
  Tensor x = Tensor::randn({c.N, c.C, c.H, c.W}, dt), w = Tensor::randn({c.O, c.C / c.groups, c.K, c.K}, dt);
  Tensor b = Tensor::randn({c.O}, dt);
  const int64_t OH = cpu::conv_out_size(c.H, c.K, 1, c.pad, 1, "t"), OW = cpu::conv_out_size(c.W, c.K, 1, c.pad, 1, "t");
  const int64_t PH = cpu::conv_out_size(OH, c.pool, c.pool_stride, c.pool_pad, 1, "t");
  const int64_t PW = cpu::conv_out_size(OW, c.pool, c.pool_stride, c.pool_pad, 1, "t");
  // Reference: the ops one by one.
  Tensor z = Tensor::empty({c.N, c.O, OH, OW}, dt), y_ref = Tensor::empty({c.N, c.O, PH, PW}, dt);
  Tensor idx_ref = Tensor::empty({c.N, c.O, PH, PW}, DType::kI64);
  cpu::conv2d_forward(x, w, cp, z, b);
  cpu::max_pool2d(z, pp, y_ref, idx_ref, /*relu=*/true);
  // i32 indices, as the conv2d_max_pool2d op keeps them (the reference records i64).
  Tensor y = Tensor::empty(y_ref.shape(), dt), idx = Tensor::empty(idx_ref.shape(), DType::kI32);
  cpu::conv2d_max_pool2d(x, w, cp, b, pp, /*relu=*/true, y, idx);
  // Each image's convolution is computed the same way whatever the chunk: equal bitwise.
  EXPECT_EQ(y.to_vector<double>(), y_ref.to_vector<double>());
  EXPECT_EQ(idx.to_vector<int64_t>(), idx_ref.to_vector<int64_t>());
  Tensor g = Tensor::randn(y.shape(), dt), dz = Tensor::empty(z.shape(), dt);
  cpu::max_pool2d_backward(g, idx_ref, pp, dz);
  Tensor gx_ref = Tensor::empty(x.shape(), dt), gx = Tensor::empty(x.shape(), dt);
  cpu::conv2d_backward_input(dz, w, cp, gx_ref);
  cpu::conv2d_pooled_backward_input(g, idx, pp, w, cp, gx);
  // (equal but for rounding where the unfused backward-data takes im2col: < 8 channels per group)
  const auto xa = gx.to_vector<double>(), xr = gx_ref.to_vector<double>();
  for (size_t i = 0; i < xa.size(); ++i) EXPECT_NEAR(xa[i], xr[i], 1e-5 * (1.0 + std::abs(xr[i]))) << "gx " << i;
  Tensor gw_ref = Tensor::empty(w.shape(), dt), gw = Tensor::empty(w.shape(), dt);
  cpu::conv2d_backward_weight(x, dz, cp, gw_ref);
  cpu::conv2d_pooled_backward_weight(x, g, idx, pp, cp, gw);
  // Summed chunk by chunk instead of per thread: equal up to rounding.
  const auto a = gw.to_vector<double>(), r = gw_ref.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], r[i], 1e-4 * (1.0 + std::abs(r[i]))) << "gw " << i;
}

TEST(ConvPool, ChunkedEqualsConvThenPoolAndTheirAdjoints) {
  const std::vector<PoolCase> cases = {
      {7, 1, 28, 28, 32, 3, 1, 1, 2, 2, 0},  // the cnn's first layer: one image per chunk
      {9, 32, 14, 14, 64, 3, 1, 1, 2, 2, 0},  // the second: several, the last one short
      {1, 8, 10, 9, 16, 3, 1, 1, 2, 2, 0},    // one image, odd width
      {5, 4, 9, 9, 8, 3, 0, 2, 3, 2, 1},      // groups, overlapping padded windows
      {8, 16, 9, 11, 20, 3, 1, 1, 2, 2, 0},   // odd output sides (a row and a column unpooled), 20 channels
      {6, 8, 8, 8, 32, 3, 1, 2, 2, 2, 0},     // groups on the fused kernels
  };
  for (int threads : {1, 2, 3})
    for (Isa isa : {Isa::kAvx512, Isa::kAvx2})
      for (DType dt : {DType::kF32, DType::kF64})
        for (bool winograd : {true, false}) {
          if ((isa == Isa::kAvx512 && active_isa() < Isa::kAvx512) || (dt == DType::kF64 && isa == Isa::kAvx2) ||
              (!winograd && (isa != Isa::kAvx512 || dt != DType::kF32)))
            continue;
          set_isa_override(isa);
          set_num_threads(threads);
          cpu::set_conv_winograd(winograd);
          for (const PoolCase& c : cases) {
            SCOPED_TRACE(testing::Message() << "threads " << threads << " isa " << static_cast<int>(isa) << " "
                                            << dtype_name(dt) << " winograd " << winograd << " N" << c.N << " C" << c.C
                                            << " O" << c.O);
            check_conv_pool(c, dt);
          }
        }
  set_isa_override(Isa::kAvx512);
  cpu::set_conv_winograd(true);
  set_num_threads(2);
}

// Ties and NaNs: every fused path (row vectors for few taps, Winograd and the implicit GEMM
// for more) must pick the same window element as max_pool2d's scan -- the first maximum in
// the order TL, TR, BL, BR, a NaN as soon as one appears.
TEST(ConvPool, TiesAndNaNsPickWhatMaxPoolPicks) {
  set_num_threads(2);
  cpu::Conv2dParams cp;
  cp.pad_h = cp.pad_w = 1;
  const cpu::Pool2dParams pp{2, 2, 2, 2, 0, 0};
  for (int64_t C : {1, 16})
    for (bool winograd : {true, false})
      for (int pattern = 0; pattern < 3; ++pattern) {
        SCOPED_TRACE(testing::Message() << "C " << C << " winograd " << winograd << " pattern " << pattern);
        cpu::set_conv_winograd(winograd);
        const int64_t N = 4, H = 10, W = 14, O = 16;
        Tensor x = Tensor::randn({N, C, H, W}), w = Tensor::randn({O, C, 3, 3}), b = Tensor::randn({O});
        if (pattern == 0) w = Tensor::zeros(w.shape());  // every output equals its bias: ties everywhere
        if (pattern == 1) {  // a few NaN inputs: windows with one, two or four NaNs
          float* px = x.data<float>();
          for (int64_t i = 0; i < x.numel(); i += 37) px[i] = std::nanf("");
        }
        if (pattern == 2) {  // coarse values: many exact ties between neighbours
          float* px = x.data<float>();
          for (int64_t i = 0; i < x.numel(); ++i) px[i] = std::round(px[i]);
          float* pw = w.data<float>();
          for (int64_t i = 0; i < w.numel(); ++i) pw[i] = std::round(pw[i]);
        }
        Tensor z = Tensor::empty({N, O, H, W}), y_ref = Tensor::empty({N, O, H / 2, W / 2});
        Tensor idx_ref = Tensor::empty(y_ref.shape(), DType::kI64);
        cpu::conv2d_forward(x, w, cp, z, b);
        cpu::max_pool2d(z, pp, y_ref, idx_ref, /*relu=*/false);
        Tensor y = Tensor::empty(y_ref.shape()), idx = Tensor::empty(y_ref.shape(), DType::kI32);
        cpu::conv2d_max_pool2d(x, w, cp, b, pp, /*relu=*/false, y, idx);
        const auto a = y.to_vector<float>(), r = y_ref.to_vector<float>();
        for (size_t i = 0; i < a.size(); ++i)
          ASSERT_TRUE(a[i] == r[i] || (std::isnan(a[i]) && std::isnan(r[i]))) << i << ": " << a[i] << " vs " << r[i];
        ASSERT_EQ(idx.to_vector<int64_t>(), idx_ref.to_vector<int64_t>());
      }
  cpu::set_conv_winograd(true);
}

// Indices the fused kernels cannot take (outside their window) go to the general path:
// same result as the unfused adjoints; outside the plane, an error naming the op.
TEST(ConvPool, IndicesOutsideTheirWindowTakeTheGeneralPath) {
  set_num_threads(2);
  cpu::Conv2dParams cp;
  cp.pad_h = cp.pad_w = 1;
  const cpu::Pool2dParams pp{2, 2, 2, 2, 0, 0};
  Tensor x = Tensor::randn({8, 16, 8, 8}), w = Tensor::randn({32, 16, 3, 3}), g = Tensor::randn({8, 32, 4, 4});
  Tensor y = Tensor::empty({8, 32, 4, 4}), idx = Tensor::empty({8, 32, 4, 4}, DType::kI32);
  cpu::conv2d_max_pool2d(x, w, cp, Tensor(), pp, false, y, idx);
  idx.data<int32_t>()[5 * 16 + 3] = 63;  // a pixel of another window, still in the 8 x 8 plane
  Tensor idx64 = idx.to(DType::kI64), dz = Tensor::empty({8, 32, 8, 8});
  cpu::max_pool2d_backward(g, idx64, pp, dz);
  Tensor gx_ref = Tensor::empty(x.shape()), gx = Tensor::empty(x.shape());
  cpu::conv2d_backward_input(dz, w, cp, gx_ref);
  cpu::conv2d_pooled_backward_input(g, idx, pp, w, cp, gx);
  const auto a = gx.to_vector<double>(), r = gx_ref.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], r[i], 1e-5 * (1.0 + std::abs(r[i]))) << i;
  Tensor gw_ref = Tensor::empty(w.shape()), gw = Tensor::empty(w.shape());
  cpu::conv2d_backward_weight(x, dz, cp, gw_ref);
  cpu::conv2d_pooled_backward_weight(x, g, idx, pp, cp, gw);
  const auto b = gw.to_vector<double>(), rb = gw_ref.to_vector<double>();
  for (size_t i = 0; i < b.size(); ++i) ASSERT_NEAR(b[i], rb[i], 1e-4 * (1.0 + std::abs(rb[i]))) << i;
  idx.data<int32_t>()[7] = 64;  // outside the plane
  EXPECT_THROW(cpu::conv2d_pooled_backward_input(g, idx, pp, w, cp, gx), Error);
  EXPECT_THROW(cpu::conv2d_pooled_backward_weight(x, g, idx, pp, cp, gw), Error);
}

}  // namespace
}  // namespace loom
