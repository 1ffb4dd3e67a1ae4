// The packed SGEMM against a naive triple loop: every edge size around the register tile,
// odd K, transposed and strided operands, alpha/beta, each micro-kernel and thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "loom/base/cpu.h"
#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/gemm.h"

namespace loom::cpu {
namespace {

struct Mat {
  std::vector<float> data;
  int64_t rs, cs;
  int64_t off = 0;  // first element's index in data
  const float* p() const { return data.data() + off; }
  float at(int64_t i, int64_t j) const { return p()[i * rs + j * cs]; }
};

// An M x N matrix stored row-major, column-major, with padding between rows, (layout 3)
// row-major with 64-byte aligned rows (as tensors are: sgemm then packs a row-major B inside
// the macro-kernel), or (layout 4) row-major with rows a multiple of 4 KiB apart.
Mat make(int64_t M, int64_t N, int layout, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  Mat m;
  if (layout == 0) m = {std::vector<float>(M * N), N, 1};
  else if (layout == 1) m = {std::vector<float>(M * N), 1, M};
  else if (layout == 2) m = {std::vector<float>(M * (N + 3) * 2), 2 * (N + 3), 2};  // strided rows and columns
  else if (layout == 4)
    m = {std::vector<float>(M * ((N + 1023) / 1024 * 1024)), (N + 1023) / 1024 * 1024, 1};
  else {
    const int64_t rs = (N + 15) / 16 * 16;
    m = {std::vector<float>(M * rs + 16), rs, 1};
    m.off = static_cast<int64_t>((64 - reinterpret_cast<uintptr_t>(m.data.data()) % 64) % 64 / sizeof(float));
  }
  for (auto& v : m.data) v = u(rng);
  return m;
}

// C has 3 columns of padding per row (ldc = N + 3), which must keep their values: sgemm
// writes C[0:M, 0:N] only (the column-edge kernels store under a mask).
void check(int64_t M, int64_t N, int64_t K, int la, int lb, float alpha, float beta, std::mt19937& rng) {
  Mat A = make(M, K, la, rng), B = make(K, N, lb, rng);
  const int64_t ldc = N + 3;
  constexpr float kPad = 12345.0f;
  std::vector<float> C(M * ldc, kPad), R(M * N);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = R[i * N + j] = u(rng);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += double(A.at(i, k)) * B.at(k, j);
      R[i * N + j] = float(alpha * acc + (beta == 0 ? 0.0 : beta * R[i * N + j]));
    }
  if (beta == 0)  // beta == 0 must not read C
    for (int64_t i = 0; i < M; ++i) std::fill(C.begin() + i * ldc, C.begin() + i * ldc + N, NAN);
  sgemm(M, N, K, alpha, {A.p(), A.rs, A.cs}, {B.p(), B.rs, B.cs}, beta, C.data(), ldc);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j)
      ASSERT_NEAR(C[i * ldc + j], R[i * N + j], 1e-4 * (1 + std::sqrt(double(K))))
          << "M=" << M << " N=" << N << " K=" << K << " la=" << la << " lb=" << lb << " at " << i << "," << j;
    for (int64_t j = N; j < ldc; ++j)
      ASSERT_EQ(C[i * ldc + j], kPad) << "M=" << M << " N=" << N << " K=" << K << ": wrote padding at " << i << ","
                                      << j;
  }
}

class GemmTest : public ::testing::TestWithParam<std::tuple<Isa, int>> {
 protected:
  void SetUp() override {
    set_isa_override(std::get<0>(GetParam()));
    set_num_threads(std::get<1>(GetParam()));
  }
  void TearDown() override {
    set_isa_override(Isa::kAvx512);
    set_num_threads(2);
  }
};

TEST_P(GemmTest, EdgeSizesAroundTheRegisterTile) {
  std::mt19937 rng(7);
  const int mr = active_sgemm_kernel().mr, nr = active_sgemm_kernel().nr;
  for (int64_t M = 1; M <= mr + 1; ++M)
    for (int64_t N : {int64_t(1), int64_t(nr / 2 - 1), int64_t(nr / 2), int64_t(nr / 2 + 1), int64_t(nr - 1),
                      int64_t(nr), int64_t(nr + 1), int64_t(2 * nr + nr / 2)})
      for (int64_t K : {1, 7, 16}) {
        check(M, N, K, 0, 0, 1.0f, 0.0f, rng);
        check(M, N, K, 0, 0, 0.5f, 1.5f, rng);  // partial panels' own kernels scale and accumulate
      }
}

TEST_P(GemmTest, TransposedStridedOperandsAndScaling) {
  std::mt19937 rng(11);
  for (int la = 0; la < 3; ++la)
    for (int lb = 0; lb < 3; ++lb) check(37, 45, 51, la, lb, 0.5f, 1.5f, rng);
}

// A few rows against a transposed B (a Linear layer at batch <= 4) take the dot-product path.
TEST_P(GemmTest, FewRowsTimesTransposedB) {
  std::mt19937 rng(19);
  for (int64_t M = 1; M <= 5; ++M)
    for (int64_t N : {1, 33, 130})
      for (int64_t K : {1, 17, 300}) {
        check(M, N, K, 0, 1, 1.0f, 0.0f, rng);
        check(M, N, K, 0, 1, 1.0f, 1.5f, rng);
        check(M, N, K, 2, 1, 1.0f, 0.0f, rng);  // strided A rows
      }
}

TEST_P(GemmTest, BlockBoundaries) {
  std::mt19937 rng(13);
  // K above KC (several K blocks, beta applied once), M above MC, N above NC for some kernels.
  check(300, 70, 700, 0, 0, 1.0f, 0.0f, rng);
  check(33, 3100, 40, 0, 1, 1.0f, 2.0f, rng);
  check(513, 65, 257, 1, 0, -1.0f, 0.0f, rng);
  // K cut into even blocks (785 = 400 + 385 for KC 768), beta on the first only.
  check(40, 50, 785, 1, 1, 0.5f, 2.0f, rng);
  // A deep K block: fewer rows per block (the A block's L2 budget: 2 row blocks of 300) and
  // fewer columns per packed B block (its budget at KC 768: 2100 = 1056 + 1044).
  check(300, 70, 700, 1, 0, 1.0f, 0.0f, rng);
  check(20, 2100, 768, 0, 1, 1.0f, 0.5f, rng);
  // Packed row-major B (M above MC per thread), copied row by row across the panels: two NC
  // blocks for the AVX-512 kernel, the second of 3 full panels and a 2-column edge panel.
  check(700, 3170, 20, 0, 0, 1.0f, 0.5f, rng);
  // Row-major B with aligned rows, packed by the first row block's tiles as they compute:
  // two K blocks (beta on the first only), full panels and an edge panel packed beforehand;
  // on 2 threads each thread's column range (N >= 4 panels per thread) does the same.
  check(400, 100, 1000, 0, 3, 0.5f, 1.5f, rng);
  check(350, 600, 40, 2, 3, 1.0f, 0.0f, rng);
  // Row-major A is read in place by the tiles (a partial last row panel packed), in every
  // B mode above; with rows 4 KiB apart it is packed instead.
  check(45, 70, 300, 4, 0, 0.5f, 1.5f, rng);
  check(400, 100, 1000, 4, 3, 0.5f, 1.5f, rng);
}

// How 2 threads share a product: small ones (0.3 - 20 MFLOP) by whole NR panels, each its
// own product, the last with the edge panel; where the panels divide unevenly, by whole
// MR-row panels (the last with M's edge rows); with too few rows for that, as one team.
TEST_P(GemmTest, ProductsSplitByColumnsRowsOrAsATeam) {
  std::mt19937 rng(29);
  for (int la = 0; la < 3; ++la)
    for (int lb = 0; lb < 3; ++lb) {
      check(64, 64, 64, la, lb, 1.0f, 0.0f, rng);
      check(40, 70, 90, la, lb, 0.5f, 1.5f, rng);   // columns: a panel, then a panel and a 6-column edge
      check(70, 40, 120, la, lb, 1.0f, 0.5f, rng);  // rows: 2 panels, then 3 and 0 edge rows
      check(75, 96, 80, la, lb, 0.5f, 0.0f, rng);   // rows: 2 panels, then 3 and 5 edge rows
      check(50, 96, 80, la, lb, 1.0f, 0.5f, rng);   // the team: 3 column panels, 50 rows
      check(20, 40, 600, la, lb, 1.0f, 0.5f, rng);  // the team: a panel and an edge, 20 rows
    }
}

TEST_P(GemmTest, DegenerateSizes) {
  std::mt19937 rng(17);
  check(0, 5, 3, 0, 0, 1.0f, 0.0f, rng);
  check(4, 5, 0, 0, 0, 1.0f, 0.5f, rng);  // K = 0: C = beta * C
}

INSTANTIATE_TEST_SUITE_P(Kernels, GemmTest,
                         ::testing::Combine(::testing::Values(Isa::kAvx512, Isa::kAvx2, Isa::kGeneric),
                                            ::testing::Values(1, 2)),
                         [](const auto& info) {
                           return std::string(isa_name(std::get<0>(info.param))) + "_t" +
                                  std::to_string(std::get<1>(info.param));
                         });

// The %peak reference of `loom bench gemm`: a positive, finite rate for the SIMD kernels
// (the value itself is this machine's, not checked).
TEST(Gemm, FmaPeakIsMeasuredForSimdKernels) {
  const double g = cpu::sgemm_fma_peak_gflops(0.005);
  if (std::string(cpu::sgemm_kernel_name()).rfind("avx", 0) == 0) {
    EXPECT_GT(g, 0.0);
    EXPECT_TRUE(std::isfinite(g));
  } else {
    EXPECT_EQ(g, 0.0);
  }
}

TEST(Gemm, DgemmMatchesNaive) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(-1, 1);
  const int64_t M = 9, N = 11, K = 13;
  std::vector<double> A(M * K), B(K * N), C(M * N, 0);
  for (auto& v : A) v = u(rng);
  for (auto& v : B) v = u(rng);
  dgemm(M, N, K, 1.0, A.data(), 1, M, B.data(), N, 1, 0.0, C.data(), N);  // A column-major
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += A[i + k * M] * B[k * N + j];
      EXPECT_NEAR(C[i * N + j], acc, 1e-12);
    }
}

}  // namespace
}  // namespace loom::cpu

namespace loom::cpu {
namespace {

TEST(Gemm, SmallNtMatchesNaiveOnEveryBlockRemainder) {
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> u(-1, 1);
  for (Isa isa : {Isa::kAvx512, Isa::kGeneric}) {
    set_isa_override(isa);
    for (int64_t M : {1, 2, 3, 5}) {
      for (int64_t N = 1; N <= 17; N += 3) {
        for (int64_t K : {1, 15, 16, 17, 100}) {
          const int64_t lda = K + 3, ldb = K + 5;
          std::vector<float> A(M * lda), B(N * ldb), C(M * N), R(M * N);
          for (auto& v : A) v = u(rng);
          for (auto& v : B) v = u(rng);
          for (int64_t i = 0; i < M * N; ++i) C[i] = R[i] = u(rng);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double acc = 0;
              for (int64_t k = 0; k < K; ++k) acc += double(A[i * lda + k]) * B[j * ldb + k];
              R[i * N + j] = float(acc + 0.5 * R[i * N + j]);
            }
          sgemm_nt_small(M, N, K, A.data(), lda, B.data(), ldb, 0.5f, C.data(), N);
          for (int64_t i = 0; i < M * N; ++i) ASSERT_NEAR(C[i], R[i], 1e-4) << M << "x" << N << "x" << K;
        }
      }
    }
  }
  set_isa_override(Isa::kAvx512);
}

}  // namespace
}  // namespace loom::cpu
