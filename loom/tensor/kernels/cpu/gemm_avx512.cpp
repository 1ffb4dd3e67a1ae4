// AVX-512 SGEMM micro-kernel. Compiled with -mavx512f -mavx512dq -mfma; only called when
// the CPU reports those features.
#include <immintrin.h>

#include <cstdlib>

#include "loom/tensor/kernels/cpu/avx512_util.h"
#include "loom/tensor/kernels/cpu/gemm.h"

namespace loom::cpu::avx512 {
using Vec = __m512;
inline Vec vzero() { return _mm512_setzero_ps(); }
inline Vec vload(const float* p) { return _mm512_load_ps(p); }
inline Vec vloadu(const float* p) { return _mm512_loadu_ps(p); }
inline void vstoreu(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline void vstore(float* p, Vec v) { _mm512_store_ps(p, v); }
inline Vec vbroadcast(const float* p) { return _mm512_set1_ps(*p); }
inline Vec vset1(float x) { return _mm512_set1_ps(x); }
inline Vec vfmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec vmul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
// The first n (1 .. 16) lanes; the others are neither read nor written.
inline __mmask16 first_lanes(int n) { return static_cast<__mmask16>((1u << n) - 1); }
inline Vec vloadu_n(const float* p, int n) { return _mm512_maskz_loadu_ps(first_lanes(n), p); }
inline void vstoreu_n(float* p, Vec v, int n) { _mm512_mask_storeu_ps(p, first_lanes(n), v); }
}  // namespace loom::cpu::avx512

#define LOOM_GEMM_ISA avx512
#include "loom/tensor/kernels/cpu/gemm_microkernel.h"

namespace loom::cpu {

#ifndef LOOM_AVX512_MR
#define LOOM_AVX512_MR 14
#define LOOM_AVX512_NV 2
#endif
#ifndef LOOM_AVX512_AS
#define LOOM_AVX512_AS 16
#endif

const GemmKernel* sgemm_kernel_avx512() {
  static const GemmKernel k = [] {
    GemmKernel g{"avx512", LOOM_AVX512_MR, 16 * LOOM_AVX512_NV, LOOM_AVX512_AS, 0, 0, 0,
                 &avx512::micro_kernel<LOOM_AVX512_MR, LOOM_AVX512_NV, LOOM_AVX512_AS>};
    avx512::fill_edge_kernels<LOOM_AVX512_MR, LOOM_AVX512_NV, LOOM_AVX512_AS>(
        g.edge, std::make_integer_sequence<int, LOOM_AVX512_MR - 1>{});
    avx512::fill_col_edge_kernels<LOOM_AVX512_MR, LOOM_AVX512_NV, LOOM_AVX512_AS>(g);
    // Blocking for a 48 KiB L1 / 1 MiB L2 core: the MC x KC A block stays in L2 (at most
    // 768 KiB: 336 rows up to KC 512, 224 rows at KC 768), a KC x NR B panel is reused
    // from L1/L2 by every micro-tile of the block, the KC x NC B block (at most 6 MiB)
    // by every row block. A deep KC means fewer passes over C (docs/performance.md,
    // 2026-11-28 third session: KC 768 against 384, 1 thread +1-3%, 2 threads +1-5%).
    g.micro_pack = &avx512::micro_kernel_pack<LOOM_AVX512_MR, LOOM_AVX512_NV, LOOM_AVX512_AS>;
    g.rows = &avx512::micro_kernel_rows<LOOM_AVX512_MR, LOOM_AVX512_NV, false>;
    g.rows_pack = &avx512::micro_kernel_rows<LOOM_AVX512_MR, LOOM_AVX512_NV, true>;
    g.fma_peak = &avx512::fma_peak_gflops;
    g.kc = 768;
    g.mc = (336 / g.mr) * g.mr;
    g.nc = 3072;
    g.a_block_bytes = 768 << 10;
    g.b_block_bytes = 6 << 20;
    if (const char* e = std::getenv("LOOM_GEMM_KC")) g.kc = std::atoll(e);
    if (const char* e = std::getenv("LOOM_GEMM_MC")) g.mc = std::atoll(e) / g.mr * g.mr;
    if (const char* e = std::getenv("LOOM_GEMM_NC")) g.nc = std::atoll(e) / g.nr * g.nr;
    if (const char* e = std::getenv("LOOM_GEMM_ABYTES")) g.a_block_bytes = std::atoll(e);
    if (const char* e = std::getenv("LOOM_GEMM_BBYTES")) g.b_block_bytes = std::atoll(e);
    if (const char* e = std::getenv("LOOM_GEMM_AROWS"); e && *e == '0') g.rows = g.rows_pack = nullptr;
    return g;
  }();
  return &k;
}

namespace {

// GCC 12's AVX-512 headers seed shuffles with _mm512_undefined_ps(), which -Wuninitialized
// reports at every inlined use (GCC bug 105593); the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

using simd512::hsum;

// An MB x NB block of dot products over K: MB*NB zmm accumulators, K consumed 16 at a time
// (a masked load for the tail), horizontal sums at the end.
template <int MB, int NB>
void nt_block(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  __m512 acc[MB][NB];
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 b[NB];
    for (int j = 0; j < NB; ++j) b[j] = _mm512_loadu_ps(B + j * ldb + k);
    for (int i = 0; i < MB; ++i) {
      __m512 a = _mm512_loadu_ps(A + i * lda + k);
      for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_fmadd_ps(a, b[j], acc[i][j]);
    }
  }
  if (k < K) {
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
    __m512 b[NB];
    for (int j = 0; j < NB; ++j) b[j] = _mm512_maskz_loadu_ps(m, B + j * ldb + k);
    for (int i = 0; i < MB; ++i) {
      __m512 a = _mm512_maskz_loadu_ps(m, A + i * lda + k);
      for (int j = 0; j < NB; ++j) acc[i][j] = _mm512_fmadd_ps(a, b[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < NB; ++j) {
      float v = hsum(acc[i][j]);
      float* c = C + i * ldc + j;
      *c = beta == 0.0f ? v : v + beta * *c;
    }
}

template <int MB>
void nt_row_block(int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                  float* C, int64_t ldc) {
  int64_t j = 0;
  for (; j + 8 <= N; j += 8) nt_block<MB, 8>(K, A, lda, B + j * ldb, ldb, beta, C + j, ldc);
  switch (N - j) {
    case 7: return nt_block<MB, 7>(K, A, lda, B + j * ldb, ldb, beta, C + j, ldc);
    case 6: return nt_block<MB, 6>(K, A, lda, B + j * ldb, ldb, beta, C + j, ldc);
    case 5: return nt_block<MB, 5>(K, A, lda, B + j * ldb, ldb, beta, C + j, ldc);
    case 4: return nt_block<MB, 4>(K, A, lda, B + j * ldb, ldb, beta, C + j, ldc);
    case 3: return nt_block<MB, 3>(K, A, lda, B + j * ldb, ldb, beta, C + j, ldc);
    case 2: return nt_block<MB, 2>(K, A, lda, B + j * ldb, ldb, beta, C + j, ldc);
    case 1: return nt_block<MB, 1>(K, A, lda, B + j * ldb, ldb, beta, C + j, ldc);
    default: return;
  }
}

}  // namespace

bool sgemm_nt_small_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                           int64_t ldb, float beta, float* C, int64_t ldc) {
  int64_t i = 0;
  for (; i + 2 <= M; i += 2) nt_row_block<2>(N, K, A + i * lda, lda, B, ldb, beta, C + i * ldc, ldc);
  if (i < M) nt_row_block<1>(N, K, A + i * lda, lda, B, ldb, beta, C + i * ldc, ldc);
  return true;
}

#pragma GCC diagnostic pop

}  // namespace loom::cpu
