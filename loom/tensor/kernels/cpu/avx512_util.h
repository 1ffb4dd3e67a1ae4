// Small AVX-512 helpers shared by the translation units compiled with -mavx512f and friends
// (gemm_avx512.cpp, conv_direct_avx512.cpp, pool_avx512.cpp). Include it from those files only.
#pragma once

#include <immintrin.h>

namespace loom::cpu::simd512 {

// GCC 12's AVX-512 headers seed shuffles with _mm512_undefined_ps(), which -Wuninitialized
// reports at every inlined use (GCC bug 105593); the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Horizontal sum of the 16 lanes, by lane shuffles.
inline float hsum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4e));  // swap 256-bit halves
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xb1));  // swap 128-bit lanes
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4e));        // swap 64-bit pairs in a lane
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xb1));        // swap neighbours
  return _mm512_cvtss_f32(v);
}

// Max pooling's scan rule, lane by lane: does a later candidate c replace the best so far?
// It does when it is larger or NaN, unless the best is already NaN -- so the first maximum
// wins and the first NaN propagates, as max_pool2d's scalar loop.
inline __mmask16 pool_replaces(__m512 c, __m512 best) {
  return _kand_mask16(_kor_mask16(_mm512_cmp_ps_mask(c, best, _CMP_GT_OQ), _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q)),
                      _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q));
}

#pragma GCC diagnostic pop

}  // namespace loom::cpu::simd512
