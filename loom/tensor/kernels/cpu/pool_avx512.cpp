// AVX-512 2x2/stride-2 max pooling of one output row (compiled with -mavx512*; chosen at run
// time by pool.cpp). 16 outputs per step: the two input rows are loaded 32 floats at a time
// and split into even and odd columns by permutes; the window's four candidates are compared
// with masks, so the random winner of real activations costs no branch. Semantics equal the
// scalar loop: the first maximum wins, the first NaN wins and propagates.
#include <immintrin.h>

#include <cstdint>

namespace loom::cpu::detail {

// One H x W plane into OH x OW outputs (y, idx with plane-local indices h*W + w). Each row
// of outputs is processed 16 at a time; a partial last vector uses masked loads and stores,
// so rows of 14 or 7 outputs (the cnn's) are one masked step.
void max_pool2x2_plane_avx512(const float* in, int64_t W, int64_t OH, int64_t n, float* y_plane, int64_t* idx_plane) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i one = _mm512_set1_epi32(1), w = _mm512_set1_epi32(static_cast<int32_t>(W));
  for (int64_t oh = 0; oh < OH; ++oh) {
    const float* r0 = in + 2 * oh * W;
    const float* r1 = r0 + W;
    const int64_t base = 2 * oh * W;
    float* y = y_plane + oh * n;
    int64_t* idx = idx_plane + oh * n;
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
        const __mmask16 better = _mm512_cmp_ps_mask(cand[k], best, _CMP_GT_OQ);
        const __mmask16 nan = _mm512_cmp_ps_mask(cand[k], cand[k], _CMP_UNORD_Q);
        const __mmask16 best_ok = _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q);
        const __mmask16 take = _kand_mask16(_kor_mask16(better, nan), best_ok);
        best = _mm512_mask_mov_ps(best, take, cand[k]);
        arg = _mm512_mask_mov_epi32(arg, take, at[k]);
      }
      _mm512_mask_storeu_ps(y + ow, out_m, best);
      // (masked forms: GCC 12's unmasked ones read an undefined register and warn)
      const __m512i i_lo = _mm512_maskz_cvtepi32_epi64(0xFF, _mm512_maskz_extracti64x4_epi64(0xF, arg, 0));
      const __m512i i_hi = _mm512_maskz_cvtepi32_epi64(0xFF, _mm512_maskz_extracti64x4_epi64(0xF, arg, 1));
      _mm512_mask_storeu_epi64(idx + ow, static_cast<__mmask8>(out_m & 0xFF), i_lo);
      _mm512_mask_storeu_epi64(idx + ow + 8, static_cast<__mmask8>(out_m >> 8), i_hi);
    }
  }
}

}  // namespace loom::cpu::detail
