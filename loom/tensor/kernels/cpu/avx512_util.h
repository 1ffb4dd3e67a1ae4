// Small AVX-512 helpers shared by the translation units compiled with -mavx512f and friends
// (gemm_avx512.cpp, conv_direct_avx512.cpp). Include it from those files only.
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

#pragma GCC diagnostic pop

}  // namespace loom::cpu::simd512
