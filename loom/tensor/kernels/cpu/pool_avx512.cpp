// AVX-512 2x2/stride-2 max pooling of one output row (compiled with -mavx512*; chosen at run
// time by pool.cpp). 16 outputs per step: the two input rows are loaded 32 floats at a time
// and split into even and odd columns by permutes; the window's four candidates are compared
// with masks, so the random winner of real activations costs no branch. Semantics equal the
// scalar loop: the first maximum wins, the first NaN wins and propagates.
#include <immintrin.h>

#include <cstdint>

#include "loom/tensor/kernels/cpu/avx512_util.h"
#include "loom/tensor/kernels/cpu/pool_avx512.h"

namespace loom::cpu::detail {

// GCC 12's AVX-512 headers seed some conversions and max_ps with undefined registers, which
// -Wmaybe-uninitialized reports (GCC bug 105593); the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// One H x W plane into OH x OW outputs (y, idx with plane-local indices h*W + w). Each row
// of outputs is processed 16 at a time; a partial last vector uses masked loads and stores,
// so rows of 14 or 7 outputs (the cnn's) are one masked step.
void max_pool2x2_plane_avx512(const float* in, int64_t W, int64_t OH, int64_t n, float* y_plane, void* idx_plane,
                              bool idx32, bool relu) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i one = _mm512_set1_epi32(1), w = _mm512_set1_epi32(static_cast<int32_t>(W));
  for (int64_t oh = 0; oh < OH; ++oh) {
    const float* r0 = in + 2 * oh * W;
    const float* r1 = r0 + W;
    const int64_t base = 2 * oh * W;
    float* y = y_plane + oh * n;
    for (int64_t ow = 0; ow < n; ow += 16) {
      const int64_t valid = n - ow < 16 ? n - ow : 16;
      const __mmask16 out_m = static_cast<__mmask16>((1u << valid) - 1);
      const __mmask16 lo_m = static_cast<__mmask16>(valid >= 8 ? 0xFFFFu : (1u << (2 * valid)) - 1);
      const __mmask16 hi_m = static_cast<__mmask16>(valid > 8 ? (1u << (2 * valid - 16)) - 1 : 0);
      const __m512 a_lo = _mm512_maskz_loadu_ps(lo_m, r0 + 2 * ow),
                   a_hi = _mm512_maskz_loadu_ps(hi_m, r0 + 2 * ow + 16);
      const __m512 b_lo = _mm512_maskz_loadu_ps(lo_m, r1 + 2 * ow),
                   b_hi = _mm512_maskz_loadu_ps(hi_m, r1 + 2 * ow + 16);
      const __m512 cand[3] = {_mm512_permutex2var_ps(a_lo, odd, a_hi), _mm512_permutex2var_ps(b_lo, even, b_hi),
                              _mm512_permutex2var_ps(b_lo, odd, b_hi)};
      __m512 best = _mm512_permutex2var_ps(a_lo, even, a_hi);
      const __m512i at0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(base + 2 * ow)), even);
      const __m512i at[3] = {_mm512_add_epi32(at0, one), _mm512_add_epi32(at0, w),
                             _mm512_add_epi32(_mm512_add_epi32(at0, w), one)};
      __m512i arg = at0;
      for (int k = 0; k < 3; ++k) {
        const __mmask16 take = simd512::pool_replaces(cand[k], best);
        best = _mm512_mask_mov_ps(best, take, cand[k]);
        arg = _mm512_mask_mov_epi32(arg, take, at[k]);
      }
      // relu as max(best, 0): a NaN maximum becomes 0, as the relu op does.
      _mm512_mask_storeu_ps(y + ow, out_m, relu ? _mm512_max_ps(best, _mm512_setzero_ps()) : best);
      if (idx32) {
        _mm512_mask_storeu_epi32(static_cast<int32_t*>(idx_plane) + oh * n + ow, out_m, arg);
        continue;
      }
      int64_t* idx = static_cast<int64_t*>(idx_plane) + oh * n;
      // (masked forms: GCC 12's unmasked ones read an undefined register and warn)
      const __m512i i_lo = _mm512_maskz_cvtepi32_epi64(0xFF, _mm512_maskz_extracti64x4_epi64(0xF, arg, 0));
      const __m512i i_hi = _mm512_maskz_cvtepi32_epi64(0xFF, _mm512_maskz_extracti64x4_epi64(0xF, arg, 1));
      _mm512_mask_storeu_epi64(idx + ow, static_cast<__mmask8>(out_m & 0xFF), i_lo);
      _mm512_mask_storeu_epi64(idx + ow + 8, static_cast<__mmask8>(out_m >> 8), i_hi);
    }
  }
}

// Backward of the 2x2 / stride-2 window: every input element is written once (the gradient
// where it was its window's argmax, else zero), 16 windows per step: the index's offset
// inside its window picks one of four lanes patterns, which permutes interleave into the
// two input rows. Columns and a row left over by an odd width or height are zeroed. An
// index outside its own window returns false (the plane partly written; the caller
// rewrites it).
bool max_pool2x2_backward_plane_avx512(const float* g, const void* idx_plane, bool idx32, int64_t H, int64_t W,
                                       int64_t OH, int64_t OW, float* gx, int64_t ldx) {
  const __m512i lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i one = _mm512_set1_epi32(1), w = _mm512_set1_epi32(static_cast<int32_t>(W));
  const __m512i w1 = _mm512_add_epi32(w, one);
  // Interleave even (a) and odd (b) columns: low and high 16 of the 32.
  const __m512i lo_perm = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi_perm = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* top = gx + 2 * oh * ldx;
    float* bot = top + ldx;
    for (int64_t ow = 0; ow < OW; ow += 16) {
      const int64_t valid = OW - ow < 16 ? OW - ow : 16;
      const __mmask16 m = static_cast<__mmask16>((1u << valid) - 1);
      const __m512 gv = _mm512_maskz_loadu_ps(m, g + oh * OW + ow);
      __m512i iv;
      __mmask16 narrow_ok = 0xFFFF;
      if (idx32) {
        iv = _mm512_maskz_loadu_epi32(m, static_cast<const int32_t*>(idx_plane) + oh * OW + ow);
      } else {
        const int64_t* idx = static_cast<const int64_t*>(idx_plane) + oh * OW + ow;
        const __m512i i_lo64 = _mm512_maskz_loadu_epi64(static_cast<__mmask8>(m), idx);
        const __m512i i_hi64 = _mm512_maskz_loadu_epi64(static_cast<__mmask8>(m >> 8), idx + 8);
        // Indices in [0, 2^31) survive the narrowing to 32 bits unchanged.
        const __m512i limit = _mm512_set1_epi64(int64_t{1} << 31);
        narrow_ok = static_cast<__mmask16>(_mm512_cmplt_epu64_mask(i_lo64, limit) |
                                           (_mm512_cmplt_epu64_mask(i_hi64, limit) << 8));
        iv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(i_lo64)), _mm512_cvtepi64_epi32(i_hi64), 1);
      }
      const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(2 * oh * W + 2 * ow)), lane2);
      const __m512i rel = _mm512_sub_epi32(iv, base);
      const __mmask16 k0 = _mm512_cmpeq_epi32_mask(rel, _mm512_setzero_si512()), k1 = _mm512_cmpeq_epi32_mask(rel, one);
      const __mmask16 kw = _mm512_cmpeq_epi32_mask(rel, w), kw1 = _mm512_cmpeq_epi32_mask(rel, w1);
      // Every valid lane's index must lie in its own window; otherwise the caller redoes the
      // plane with the general loop (which also reports indices outside the plane).
      if (static_cast<__mmask16>((k0 | k1 | kw | kw1) & narrow_ok & m) != m) return false;
      const __m512 zero = _mm512_setzero_ps();
      const __m512 t0 = _mm512_mask_mov_ps(zero, k0, gv), t1 = _mm512_mask_mov_ps(zero, k1, gv);
      const __m512 b0 = _mm512_mask_mov_ps(zero, kw, gv), b1 = _mm512_mask_mov_ps(zero, kw1, gv);
      const int64_t cols = 2 * valid;  // input columns covered by these windows
      const __mmask16 m_lo = static_cast<__mmask16>(cols >= 16 ? 0xFFFFu : (1u << cols) - 1);
      const __mmask16 m_hi = static_cast<__mmask16>(cols > 16 ? (1u << (cols - 16)) - 1 : 0);
      _mm512_mask_storeu_ps(top + 2 * ow, m_lo, _mm512_permutex2var_ps(t0, lo_perm, t1));
      _mm512_mask_storeu_ps(top + 2 * ow + 16, m_hi, _mm512_permutex2var_ps(t0, hi_perm, t1));
      _mm512_mask_storeu_ps(bot + 2 * ow, m_lo, _mm512_permutex2var_ps(b0, lo_perm, b1));
      _mm512_mask_storeu_ps(bot + 2 * ow + 16, m_hi, _mm512_permutex2var_ps(b0, hi_perm, b1));
    }
    for (int64_t c = 2 * OW; c < W; ++c) top[c] = bot[c] = 0.0f;
  }
  for (int64_t r = 2 * OH; r < H; ++r)
    for (int64_t c = 0; c < W; ++c) gx[r * ldx + c] = 0.0f;
  return true;
}
#pragma GCC diagnostic pop

}  // namespace loom::cpu::detail
