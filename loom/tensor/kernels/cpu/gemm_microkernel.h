// The SIMD micro-kernel template, included by one translation unit per instruction set
// (gemm_avx512.cpp, gemm_avx2.cpp), each compiled with that set's flags.
//
// The MR x (NV vectors) tile of C lives in registers for the whole K loop; each k step
// loads NV vectors of the packed B panel, broadcasts MR values of the packed A panel, and
// issues MR*NV independent FMAs -- enough to cover FMA latency on two FMA pipes. AS is the
// A panel's row count (its stride per k): a kernel with MR < AS computes the first MR rows
// of a full-height panel (the edge of a matrix whose M is not a multiple of the panel's).
#pragma once

#include <immintrin.h>

#include <chrono>
#include <cstdint>
#include <utility>

#include "loom/tensor/kernels/cpu/gemm.h"

namespace loom::cpu::LOOM_GEMM_ISA {

// PACK: also store each k's B row into the packed panel Bp (NR floats per k, aligned), so
// that the first tile to use a panel of row-major B packs it while computing (sgemm's fill
// mode). ROWS: A is not a packed panel but MR rows of a row-major A read in place (row i at
// A + i * lda; AS unused), so that sgemm need not pack it. TAIL: only the first `cols`
// columns of C exist (cols > (NV - 1) * W): the last vector of each row is loaded and
// stored under a mask.
template <int MR, int NV, int AS, bool PACK, bool ROWS = false, bool TAIL = false>
inline void micro_kernel_body(int64_t K, const float* __restrict A, int64_t lda, const float* __restrict B, int64_t ldb,
                              float* __restrict Bp, float* __restrict C, int64_t ldc, float alpha, float beta,
                              int cols = 0) {
  constexpr int W = sizeof(Vec) / sizeof(float);
  const int tail = cols - (NV - 1) * W;  // TAIL: lanes of the last vector
  Vec acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = vzero();
  // Pull the C tile towards L1 while the K loop runs, so the final update does not stall.
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    __builtin_prefetch(C + i * ldc, 1);
    __builtin_prefetch(C + i * ldc + NV * W - 1, 1);
  }
#pragma GCC unroll 2
  for (int64_t k = 0; k < K; ++k) {
    Vec b[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) b[j] = vloadu(B + j * W);
    if constexpr (PACK) {
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) vstore(Bp + j * W, b[j]);
      Bp += NV * W;
      // B's rows are ldb apart (a new page every row or two): fetch 8 rows ahead.
#pragma GCC unroll 4
      for (int j = 0; j < NV * W; j += 16) __builtin_prefetch(B + 8 * ldb + j);
    }
    // In place, each of the MR rows is a stream of its own, sequential in k (the hardware
    // prefetchers follow them); a packed panel is one stream, prefetched 8 k steps ahead.
    if constexpr (!ROWS) __builtin_prefetch(A + 8 * AS);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      Vec a = vbroadcast(ROWS ? A + i * lda : A + i);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = vfmadd(a, b[j], acc[i][j]);
    }
    A += ROWS ? 1 : AS;
    B += ldb;
  }
  const Vec va = vset1(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        float* c = C + i * ldc + j * W;
        if (TAIL && j == NV - 1)
          vstoreu_n(c, vmul(va, acc[i][j]), tail);
        else
          vstoreu(c, vmul(va, acc[i][j]));
      }
  } else {
    const Vec vb = vset1(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        float* c = C + i * ldc + j * W;
        if (TAIL && j == NV - 1)
          vstoreu_n(c, vfmadd(va, acc[i][j], vmul(vb, vloadu_n(c, tail))), tail);
        else
          vstoreu(c, vfmadd(va, acc[i][j], vmul(vb, vloadu(c))));
      }
  }
}

template <int MR, int NV, int AS = MR>
void micro_kernel(int64_t K, const float* __restrict A, const float* __restrict B, int64_t ldb,
                  float* __restrict C, int64_t ldc, float alpha, float beta) {
  micro_kernel_body<MR, NV, AS, false>(K, A, 0, B, ldb, nullptr, C, ldc, alpha, beta);
}

template <int MR, int NV, int AS = MR>
void micro_kernel_pack(int64_t K, const float* __restrict A, const float* __restrict B, int64_t ldb,
                       float* __restrict Bp, float* __restrict C, int64_t ldc, float alpha, float beta) {
  micro_kernel_body<MR, NV, AS, true>(K, A, 0, B, ldb, Bp, C, ldc, alpha, beta);
}

// GemmKernel::rows (PACK false, Bp unused) and rows_pack.
template <int MR, int NV, bool PACK>
void micro_kernel_rows(int64_t K, const float* __restrict A, int64_t lda, const float* __restrict B, int64_t ldb,
                       float* __restrict Bp, float* __restrict C, int64_t ldc, float alpha, float beta) {
  micro_kernel_body<MR, NV, MR, PACK, true>(K, A, lda, B, ldb, Bp, C, ldc, alpha, beta);
}

// GemmKernel::col_edge (packed A) and col_edge_rows (A in place).
template <int MR, int NV, int AS>
void micro_kernel_cols(int64_t K, const float* __restrict A, int64_t, const float* __restrict B, int64_t ldb,
                       float* __restrict C, int64_t ldc, float alpha, float beta, int cols) {
  micro_kernel_body<MR, NV, AS, false, false, true>(K, A, 0, B, ldb, nullptr, C, ldc, alpha, beta, cols);
}

template <int MR, int NV>
void micro_kernel_rows_cols(int64_t K, const float* __restrict A, int64_t lda, const float* __restrict B, int64_t ldb,
                            float* __restrict C, int64_t ldc, float alpha, float beta, int cols) {
  micro_kernel_body<MR, NV, MR, false, true, true>(K, A, lda, B, ldb, nullptr, C, ldc, alpha, beta, cols);
}

}  // namespace loom::cpu::LOOM_GEMM_ISA

namespace loom::cpu::LOOM_GEMM_ISA {

// This instruction set's single-thread FP32 FMA rate in GFLOP/s: independent FMA chains held
// in registers for about `seconds`. It is the peak a kernel can reach on this core, which is
// not always the nominal one: AMD Zen 4 runs a 512-bit FMA as two 256-bit halves, so there
// AVX-512 and AVX2 loops both give 32 flops per cycle, Zen 5 and Intel server cores 64.
inline double fma_peak_gflops(double seconds) {
  constexpr int W = sizeof(Vec) / sizeof(float), kChains = 12;  // > FMA latency x pipes
  Vec a[kChains];
#pragma GCC unroll 12
  for (int i = 0; i < kChains; ++i) a[i] = vset1(1.0f + 0.001f * static_cast<float>(i));
  const Vec b = vset1(0.999999f), c = vset1(1e-6f);
  int64_t iters = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    for (int r = 0; r < 4096; ++r) {
#pragma GCC unroll 12
      for (int i = 0; i < kChains; ++i) a[i] = vfmadd(a[i], b, c);
    }
    iters += 4096;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  alignas(64) float out[W];
  Vec sum = a[0];
#pragma GCC unroll 12
  for (int i = 1; i < kChains; ++i) sum = vfmadd(a[i], b, sum);
  vstoreu(out, sum);
  volatile float sink = out[0];  // keeps the chains alive
  (void)sink;
  return 2.0 * W * kChains * static_cast<double>(iters) / elapsed / 1e9;
}

// edge[r] = micro_kernel<r, NV, AS> for r = 1 .. MR - 1 (edge[0] stays null).
template <int MR, int NV, int AS, int... R>
void fill_edge_kernels(GemmKernel::Micro* edge, std::integer_sequence<int, R...>) {
  ((edge[R + 1] = &micro_kernel<R + 1, NV, AS>), ...);
}

// col_edge[v - 1][r] for v = 1 .. NV, r = 1 .. MR, col_edge_rows[v - 1], and the vector
// width; R = 0 .. MR - 1.
template <int MR, int V, int AS, int... R>
void fill_col_edge_row(GemmKernel& g, std::integer_sequence<int, R...>) {
  ((g.col_edge[V - 1][R + 1] = &micro_kernel_cols<R + 1, V, AS>), ...);
  g.col_edge_rows[V - 1] = &micro_kernel_rows_cols<MR, V>;
}

template <int MR, int AS, int... V>
void fill_col_edge_vectors(GemmKernel& g, std::integer_sequence<int, V...>) {
  (fill_col_edge_row<MR, V + 1, AS>(g, std::make_integer_sequence<int, MR>{}), ...);
}

template <int MR, int NV, int AS>
void fill_col_edge_kernels(GemmKernel& g) {
  static_assert(NV >= 1 && NV <= 4 && MR <= 16, "GemmKernel::col_edge holds up to 4 vectors and 16 rows");
  fill_col_edge_vectors<MR, AS>(g, std::make_integer_sequence<int, NV>{});
  g.width = sizeof(Vec) / sizeof(float);
}

}  // namespace loom::cpu::LOOM_GEMM_ISA
