// AVX-512 SGEMM micro-kernel. Compiled with -mavx512f -mavx512dq -mfma; only called when
// the CPU reports those features.
#include <immintrin.h>

#include <cstdlib>

#include "loom/tensor/kernels/cpu/gemm.h"

namespace loom::cpu::avx512 {
using Vec = __m512;
inline Vec vzero() { return _mm512_setzero_ps(); }
inline Vec vload(const float* p) { return _mm512_load_ps(p); }
inline Vec vloadu(const float* p) { return _mm512_loadu_ps(p); }
inline void vstoreu(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline Vec vbroadcast(const float* p) { return _mm512_set1_ps(*p); }
inline Vec vset1(float x) { return _mm512_set1_ps(x); }
inline Vec vfmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec vmul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
}  // namespace loom::cpu::avx512

#define LOOM_GEMM_ISA avx512
#include "loom/tensor/kernels/cpu/gemm_microkernel.h"

namespace loom::cpu {

#ifndef LOOM_AVX512_MR
#define LOOM_AVX512_MR 14
#define LOOM_AVX512_NV 2
#endif

const GemmKernel* sgemm_kernel_avx512() {
  static const GemmKernel k = [] {
    GemmKernel g{"avx512", LOOM_AVX512_MR, 16 * LOOM_AVX512_NV, 0, 0, 0,
                 &avx512::micro_kernel<LOOM_AVX512_MR, LOOM_AVX512_NV>};
    // Blocking for a 48 KiB L1 / 1 MiB L2 core: an MR x KC A panel and a KC x NR B panel
    // stay in L1, the MC x KC A block in L2.
    g.kc = 384;
    g.mc = (336 / g.mr) * g.mr;
    g.nc = 3072;
    if (const char* e = std::getenv("LOOM_GEMM_KC")) g.kc = std::atoll(e);
    if (const char* e = std::getenv("LOOM_GEMM_MC")) g.mc = std::atoll(e) / g.mr * g.mr;
    if (const char* e = std::getenv("LOOM_GEMM_NC")) g.nc = std::atoll(e) / g.nr * g.nr;
    return g;
  }();
  return &k;
}

}  // namespace loom::cpu
