// 16 x 16 register transposes of f32 blocks (AVX-512; compiled with -mavx512f and friends).
#include <immintrin.h>

#include <algorithm>

#include "loom/tensor/kernels/cpu/transpose.h"

namespace loom::cpu {

// GCC 12's AVX-512 headers seed shuffles with _mm512_undefined_ps(), which -Wuninitialized
// reports at every inlined use (GCC bug 105593); the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols, by 16 x 16 register
// transposes. With full_rows, each destination row is written 16 lanes wide (zeros past
// `rows`): used to fill a zero-padded vector layout.
void transpose_f32_avx512(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd,
                          bool full_rows) {
  for (int64_t r0 = 0; r0 < rows; r0 += 16) {
    const int64_t nr = std::min<int64_t>(16, rows - r0);
    const __mmask16 rmask = full_rows ? 0xFFFF : static_cast<__mmask16>((1u << nr) - 1);
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
      const int64_t nc = std::min<int64_t>(16, cols - c0);
      const __mmask16 cmask = static_cast<__mmask16>((1u << nc) - 1);
      __m512 s[16], t[16];
      for (int i = 0; i < 16; ++i)
        s[i] = i < nr ? _mm512_maskz_loadu_ps(cmask, src + (r0 + i) * lds + c0) : _mm512_setzero_ps();
      // 32-bit then 64-bit interleaves: s[4q + m] holds column 4k + m of rows 4q..4q+3 in
      // 128-bit lane k.
      for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(s[i], s[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(s[i], s[i + 1]);
      }
      for (int q = 0; q < 4; ++q) {
        const __m512d a = _mm512_castps_pd(t[4 * q]), b = _mm512_castps_pd(t[4 * q + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * q + 2]), d = _mm512_castps_pd(t[4 * q + 3]);
        s[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        s[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        s[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        s[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
      }
      // 128-bit lane shuffles gather the four row groups of each column.
      for (int m = 0; m < 4; ++m) {
        const __m512 u0 = _mm512_shuffle_f32x4(s[m], s[4 + m], 0x88), u4 = _mm512_shuffle_f32x4(s[m], s[4 + m], 0xdd);
        const __m512 u8 = _mm512_shuffle_f32x4(s[8 + m], s[12 + m], 0x88),
                     u12 = _mm512_shuffle_f32x4(s[8 + m], s[12 + m], 0xdd);
        t[m] = _mm512_shuffle_f32x4(u0, u8, 0x88);
        t[8 + m] = _mm512_shuffle_f32x4(u0, u8, 0xdd);
        t[4 + m] = _mm512_shuffle_f32x4(u4, u12, 0x88);
        t[12 + m] = _mm512_shuffle_f32x4(u4, u12, 0xdd);
      }
      for (int c = 0; c < nc; ++c) _mm512_mask_storeu_ps(dst + (c0 + c) * ldd + r0, rmask, t[c]);
    }
  }
}

void copy_runs_f32_avx512(const float* src, int64_t lds, int64_t n, int64_t count, float* dst, int width) {
  const __mmask16 in = static_cast<__mmask16>((1u << n) - 1), out = static_cast<__mmask16>((1u << width) - 1);
  for (int64_t k = 0; k < count; ++k) _mm512_mask_storeu_ps(dst + k * width, out, _mm512_maskz_loadu_ps(in, src + k * lds));
}

#pragma GCC diagnostic pop

}  // namespace loom::cpu
