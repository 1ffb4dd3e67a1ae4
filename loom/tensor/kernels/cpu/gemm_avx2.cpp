// AVX2 + FMA SGEMM micro-kernel (6 x 16: 12 accumulators in 16 ymm registers).
#include <immintrin.h>

#include "loom/tensor/kernels/cpu/gemm.h"

namespace loom::cpu::avx2 {
using Vec = __m256;
inline Vec vzero() { return _mm256_setzero_ps(); }
inline Vec vload(const float* p) { return _mm256_load_ps(p); }
inline Vec vloadu(const float* p) { return _mm256_loadu_ps(p); }
inline void vstoreu(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline void vstore(float* p, Vec v) { _mm256_store_ps(p, v); }
inline Vec vbroadcast(const float* p) { return _mm256_broadcast_ss(p); }
inline Vec vset1(float x) { return _mm256_set1_ps(x); }
inline Vec vfmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec vmul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
// The first n (1 .. 8) lanes; the others are neither read nor written.
inline __m256i first_lanes(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline Vec vloadu_n(const float* p, int n) { return _mm256_maskload_ps(p, first_lanes(n)); }
inline void vstoreu_n(float* p, Vec v, int n) { _mm256_maskstore_ps(p, first_lanes(n), v); }
}  // namespace loom::cpu::avx2

#define LOOM_GEMM_ISA avx2
#include "loom/tensor/kernels/cpu/gemm_microkernel.h"

namespace loom::cpu {

const GemmKernel* sgemm_kernel_avx2() {
  static const GemmKernel k = [] {
    GemmKernel g{"avx2", 6, 16, 6, 144, 256, 3072, &avx2::micro_kernel<6, 2>};
    avx2::fill_edge_kernels<6, 2, 6>(g.edge, std::make_integer_sequence<int, 5>{});
    avx2::fill_col_edge_kernels<6, 2, 6>(g);
    g.micro_pack = &avx2::micro_kernel_pack<6, 2>;
    g.rows = &avx2::micro_kernel_rows<6, 2, false>;
    g.rows_pack = &avx2::micro_kernel_rows<6, 2, true>;
    g.fma_peak = &avx2::fma_peak_gflops;
    return g;
  }();
  return &k;
}

}  // namespace loom::cpu
