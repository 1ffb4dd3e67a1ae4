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

#include <cstdint>
#include <utility>

#include "loom/tensor/kernels/cpu/gemm.h"

namespace loom::cpu::LOOM_GEMM_ISA {

template <int MR, int NV, int AS = MR>
void micro_kernel(int64_t K, const float* __restrict A, const float* __restrict B, int64_t ldb,
                  float* __restrict C, int64_t ldc, float alpha, float beta) {
  constexpr int W = sizeof(Vec) / sizeof(float);
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
    __builtin_prefetch(A + 8 * AS);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      Vec a = vbroadcast(A + i);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = vfmadd(a, b[j], acc[i][j]);
    }
    A += AS;
    B += ldb;
  }
  const Vec va = vset1(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) vstoreu(C + i * ldc + j * W, vmul(va, acc[i][j]));
  } else {
    const Vec vb = vset1(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        float* c = C + i * ldc + j * W;
        vstoreu(c, vfmadd(va, acc[i][j], vmul(vb, vloadu(c))));
      }
  }
}

}  // namespace loom::cpu::LOOM_GEMM_ISA

namespace loom::cpu::LOOM_GEMM_ISA {

// edge[r] = micro_kernel<r, NV, AS> for r = 1 .. MR - 1 (edge[0] stays null).
template <int MR, int NV, int AS, int... R>
void fill_edge_kernels(GemmKernel::Micro* edge, std::integer_sequence<int, R...>) {
  ((edge[R + 1] = &micro_kernel<R + 1, NV, AS>), ...);
}

}  // namespace loom::cpu::LOOM_GEMM_ISA
