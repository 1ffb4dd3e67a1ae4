// Winograd F(2x2, 3x3) and F(4x4, 3x3) on AVX-512 (see conv_winograd.h for the
// formulation). Compiled with -mavx512f and friends; only reached when the CPU reports
// AVX-512.
//
// Layouts, per image, F(2x2): V[xi][c][tile] (input transform; tiles contiguous, so the
// GEMMs broadcast them), M[xi][tile][o] and DY[xi][tile][o] (output channels in lanes, as
// the implicit-GEMM register tiles produce and read them), U[xi][c][o] and the
// weight-gradient accumulator acc[xi][c][o]. F(4x4) transforms 16 channels per vector from a
// channels-last copy of the image into V[xi][tile][c]; M, DY, U and acc as above.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

#include "loom/base/error.h"
#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/conv.h"
#include "loom/tensor/kernels/cpu/conv_winograd.h"
#include "loom/tensor/kernels/cpu/transpose.h"

namespace loom::cpu::detail {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace {

// Per-image transform buffers (floats): V plus M (forward) or DY (weight gradient).
// V's and M's (or DY's) strides from one position xi to the next, a line more than their
// contents, so that a tile's 16 positions do not all fall in one L1 set when the contents
// are a multiple of 4 KiB (7 x 7 outputs, 64 channels: 16 tiles x 64 floats). The weight
// gradient of such a layer ran at half speed without.
int64_t v2_stride(const WinogradGeom& g) { return g.C * g.T + 16; }
int64_t m2_stride(const WinogradGeom& g) { return g.T * g.Opad + 16; }
int64_t image_floats(const WinogradGeom& g) { return 16 * (v2_stride(g) + m2_stride(g)); }

// F(4x4, 3x3) per image: the channels-last input copy (H x W pixels of Cpad floats),
// V[36][T][Cpad] and M[36][T][Opad].
int64_t cpad(const WinogradGeom& g) { return (g.C + 15) / 16 * 16; }
// V's and M's strides from one position xi to the next: a line more than their T tiles, so
// that the 36 positions of a tile do not all fall in one L1 set when T * 16 floats is a
// multiple of 4 KiB (a 14 x 14 image: 16 tiles).
int64_t v4_stride(const WinogradGeom& g) { return g.T * cpad(g) + 16; }
int64_t m4_stride(const WinogradGeom& g) { return g.T * g.Opad + 16; }
int64_t image4_floats(const WinogradGeom& g) {
  return g.H * g.W * cpad(g) + 36 * (v4_stride(g) + m4_stride(g));
}

// The GEMMs' item offsets: base[j] = j * stride for j < n.
const int64_t* ramp(std::vector<int64_t>& v, int64_t n, int64_t stride) {
  v.resize(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) v[static_cast<size_t>(j)] = j * stride;
  return v.data();
}

// Lanes [lo, hi) of a 16-lane mask (empty when hi <= lo).
__mmask16 lanes(int64_t lo, int64_t hi) {
  lo = std::clamp<int64_t>(lo, 0, 16), hi = std::clamp<int64_t>(hi, 0, 16);
  return hi <= lo ? 0 : static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// 16 floats from p + i, lanes outside `m` zero and never read (p + i may point outside
// the image there: the address is formed as an integer).
__m512 load_masked(const float* p, int64_t i, __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + i * 4));
}

// V[xi][c][tile] = B^T d B for every 4 x 4 input block d (tile (th, tw) reads input rows
// 2th - ph .. 2th - ph + 3, columns 2tw - pw .. 2tw - pw + 3; outside the image counts as
// zero: masked loads read the unpadded planes). Rows are combined first, 16 columns per
// vector; the columns of up to 8 neighbouring tiles are then gathered from two vectors by
// permutes (tile m of the group reads columns 2m .. 2m+3 of the pair), one tile per lane.
void input_transform(const WinogradGeom& g, const float* img, float* V) {
  const int64_t plane = g.H * g.W;
  __m512i sel[4];
  for (int k = 0; k < 4; ++k) {
    alignas(64) int32_t ix[16];
    for (int m = 0; m < 16; ++m) ix[m] = std::min(2 * m + k, 31);
    sel[k] = _mm512_load_si512(ix);
  }
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t tw0 = 0; tw0 < g.TW; tw0 += 8) {
    const __mmask16 keep = lanes(0, g.TW - tw0);
    const int64_t c0 = 2 * tw0 - g.pw;  // first input column of the group
    const __mmask16 ma = lanes(-c0, g.W - c0), mb = lanes(-c0 - 16, g.W - c0 - 16);
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t th = 0; th < g.TH; ++th) {
        __m512 a[4], b[4];
        for (int i = 0; i < 4; ++i) {
          const int64_t row = 2 * th - g.ph + i;
          const bool inside = row >= 0 && row < g.H;
          const int64_t at = c * plane + row * g.W + c0;
          a[i] = inside ? load_masked(img, at, ma) : zero;
          b[i] = inside ? load_masked(img, at + 16, mb) : zero;
        }
        // B^T over rows: (d0 - d2, d1 + d2, d2 - d1, d1 - d3).
        const __m512 ta[4] = {_mm512_sub_ps(a[0], a[2]), _mm512_add_ps(a[1], a[2]), _mm512_sub_ps(a[2], a[1]),
                              _mm512_sub_ps(a[1], a[3])};
        const __m512 tb[4] = {_mm512_sub_ps(b[0], b[2]), _mm512_add_ps(b[1], b[2]), _mm512_sub_ps(b[2], b[1]),
                              _mm512_sub_ps(b[1], b[3])};
        float* out = V + (c * g.T + th * g.TW + tw0);
        const int64_t xs = v2_stride(g);  // one position xi to the next
        for (int i = 0; i < 4; ++i) {
          const __m512 e0 = _mm512_permutex2var_ps(ta[i], sel[0], tb[i]);
          const __m512 o0 = _mm512_permutex2var_ps(ta[i], sel[1], tb[i]);
          const __m512 e1 = _mm512_permutex2var_ps(ta[i], sel[2], tb[i]);
          const __m512 o1 = _mm512_permutex2var_ps(ta[i], sel[3], tb[i]);
          // ... and over columns.
          _mm512_mask_storeu_ps(out + (4 * i + 0) * xs, keep, _mm512_sub_ps(e0, e1));
          _mm512_mask_storeu_ps(out + (4 * i + 1) * xs, keep, _mm512_add_ps(o0, e1));
          _mm512_mask_storeu_ps(out + (4 * i + 2) * xs, keep, _mm512_sub_ps(e1, o0));
          _mm512_mask_storeu_ps(out + (4 * i + 3) * xs, keep, _mm512_sub_ps(o0, o1));
        }
      }
  }
}

// The output pixels of tile t: p[a * 2 + b] = (2th + a) * OW + 2tw + b, -1 when outside.
void tile_pixels(const WinogradGeom& g, int64_t t, int64_t p[4]) {
  const int64_t th = t / g.TW, tw = t % g.TW;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) {
      const int64_t oh = 2 * th + a, ow = 2 * tw + b;
      p[a * 2 + b] = oh < g.OH && ow < g.OW ? oh * g.OW + ow : -1;
    }
}

// ---- F(4x4, 3x3) ------------------------------------------------------------------------
// B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
inline void bt6(const __m512 d[6], __m512 r[6]) {
  const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
  const __m512 s12 = _mm512_add_ps(d[1], d[2]), s34 = _mm512_add_ps(d[3], d[4]);
  const __m512 d12 = _mm512_sub_ps(d[1], d[2]), d43 = _mm512_sub_ps(d[4], d[3]);
  const __m512 d31 = _mm512_sub_ps(d[3], d[1]), d42 = _mm512_sub_ps(d[4], d[2]);
  r[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
  r[1] = _mm512_fnmadd_ps(four, s12, s34);
  r[2] = _mm512_fmadd_ps(four, d12, d43);
  r[3] = _mm512_fmadd_ps(two, d31, d42);
  r[4] = _mm512_fnmadd_ps(two, d31, d42);
  r[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

// A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
inline void at6(const __m512 m[6], __m512 o[4]) {
  const __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
  const __m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
  o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
  o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
  o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), m[5]);
}

// G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
inline void g3(__m512 a, __m512 b, __m512 c, __m512 r[6]) {
  const __m512 ac = _mm512_add_ps(a, c);
  const __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 24), a, _mm512_mul_ps(_mm512_set1_ps(1.0f / 6), c));
  const __m512 b12 = _mm512_mul_ps(_mm512_set1_ps(1.0f / 12), b);
  r[0] = _mm512_mul_ps(_mm512_set1_ps(0.25f), a);
  r[1] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), _mm512_add_ps(ac, b));
  r[2] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), _mm512_sub_ps(ac, b));
  r[3] = _mm512_add_ps(q, b12);
  r[4] = _mm512_sub_ps(q, b12);
  r[5] = c;
}

// G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] (F(2x2, 3x3)) applied to a column (a, b, c).
inline void g2(__m512 a, __m512 b, __m512 c, __m512 r[4]) {
  const __m512 half = _mm512_set1_ps(0.5f);
  r[0] = a;
  r[1] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(a, b), c));
  r[2] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(a, b), c));
  r[3] = c;
}

// U[P * i + j][c][o] = (G k G^T)[i][j] for the P x 3 matrix G that gmul applies: 16 output
// channels per vector -- their 9 taps of channel c read from a transposed copy of w (lanes
// past O are zero) -- then G over the kernel's rows and over its columns. Blocks of 8 input
// channels are staged in an L1 buffer and copied out position by position: stored straight
// away, a kernel's P * P vectors went to lines C * Opad floats apart (8 KB for the 32 -> 64
// layer), all in one L1 set. Split over the threads by (channel block, input channels).
// (With gathers and direct stores the 32 -> 64 layer's 2048 kernels took ~44% of a 1-image
// forward on 1 thread: 53.5 -> 44.5 us with the staging and the transposed copy.)
template <int P, void (*gmul)(__m512, __m512, __m512, __m512*)>
void pack_weights_by(const WinogradGeom& g, const float* w, float* U, bool flipped, int64_t o0, int64_t o1) {
  static constexpr int64_t kCB = 8;
  const int64_t C = g.C, O = g.O, Opad = g.Opad, ncb = (C + kCB - 1) / kCB, rows = std::min(o1, O) - o0;
  thread_local std::vector<float> wt_buf;  // wT[c * 9 + t][o], columns [o0, o1)
  float* wT = scratch(wt_buf, static_cast<size_t>(C * 9 * Opad));
  if (!flipped) {
    transpose_f32_avx512(w + o0 * C * 9, C * 9, rows, C * 9, wT + o0, Opad, /*full_rows=*/true);
  } else {
    // wT[c * 9 + t][o] = w[c][o][8 - t]: each input channel's O x 9 block transposed into
    // its 9 rows bottom-up (a negative row stride).
    for (int64_t c = 0; c < C; ++c)
      transpose_f32_avx512(w + (c * O + o0) * 9, 9, rows, 9, wT + (c * 9 + 8) * Opad + o0, -Opad, /*full_rows=*/true);
  }
  // (captures by value: the vector stores may alias anything read through a reference)
  parallel_for(0, (o1 - o0) / 16 * ncb, 1, [C, Opad, ncb, o0, wT, U](int64_t lo, int64_t hi) {
    alignas(64) float tmp[P * P][kCB][16];
    for (int64_t q = lo; q < hi; ++q) {
      const int64_t ob = o0 + q / ncb * 16, c0 = q % ncb * kCB, nc = std::min(kCB, C - c0);
      for (int64_t cc = 0; cc < nc; ++cc) {
        const float* k = wT + (c0 + cc) * 9 * Opad + ob;
        __m512 tap[9];
        for (int t = 0; t < 9; ++t) tap[t] = _mm512_loadu_ps(k + t * Opad);
        __m512 gk[P][3];  // G k: rows
        for (int s = 0; s < 3; ++s) {
          __m512 r[P];
          gmul(tap[s], tap[3 + s], tap[6 + s], r);
          for (int i = 0; i < P; ++i) gk[i][s] = r[i];
        }
        for (int i = 0; i < P; ++i) {
          __m512 u[P];
          gmul(gk[i][0], gk[i][1], gk[i][2], u);
          for (int j = 0; j < P; ++j) _mm512_store_ps(tmp[P * i + j][cc], u[j]);
        }
      }
      for (int x = 0; x < P * P; ++x)
        for (int64_t cc = 0; cc < nc; ++cc)
          _mm512_storeu_ps(U + (x * C + c0 + cc) * Opad + ob, _mm512_load_ps(tmp[x][cc]));
    }
  });
}

// The channels-last copy of one image, X[(r * W + s) * Cp + c] = img[c][r][s] (zero for
// c >= C): one transpose of the C x HW planes.
const float* channels_last4(const WinogradGeom& g, const float* img) {
  thread_local std::vector<float> buf;
  float* X = scratch(buf, static_cast<size_t>(g.H * g.W * cpad(g)));
  transpose_f32_avx512(img, g.H * g.W, g.C, g.H * g.W, X, cpad(g), /*full_rows=*/true);
  return X;
}

// V[xi][tile][c] = B^T d B for every tile's 6 x 6 input block d, 16 channels per vector
// (rows, then columns), from the image's channels-last copy.
void input_transform4(const WinogradGeom& g, const float* img, float* V) {
  const int64_t Cp = cpad(g), vx = v4_stride(g);  // vx: one position xi to the next
  const float* X = channels_last4(g, img);
  for (int64_t th = 0; th < g.TH; ++th)
    for (int64_t tw = 0; tw < g.TW; ++tw) {
      const int64_t t = th * g.TW + tw;
      // The 6 x 6 input block under the tile: rows 4 th - ph .., columns 4 tw - pw ..;
      // pixels outside the image (the padding, the last tiles' overhang) are zero.
      const int64_t r0 = 4 * th - g.ph, s0 = 4 * tw - g.pw;
      bool row_in[6], col_in[6];
      for (int i = 0; i < 6; ++i) row_in[i] = r0 + i >= 0 && r0 + i < g.H, col_in[i] = s0 + i >= 0 && s0 + i < g.W;
      for (int64_t cb = 0; cb < Cp; cb += 16) {
        // (an integer address: it may lie outside X where the pixel is)
        const uintptr_t x = reinterpret_cast<uintptr_t>(X + cb) + static_cast<uintptr_t>((r0 * g.W + s0) * Cp * 4);
        __m512 r[6][6];  // r[i][j]: B^T over the rows of column j
        for (int j = 0; j < 6; ++j) {
          __m512 d[6], o[6];
          for (int i = 0; i < 6; ++i)
            d[i] = row_in[i] && col_in[j]
                       ? _mm512_loadu_ps(reinterpret_cast<const float*>(x + static_cast<uintptr_t>((i * g.W + j) * Cp * 4)))
                       : _mm512_setzero_ps();
          bt6(d, o);
          for (int i = 0; i < 6; ++i) r[i][j] = o[i];
        }
        float* v = V + t * Cp + cb;
        for (int i = 0; i < 6; ++i) {
          __m512 o[6];
          bt6(r[i], o);
          for (int j = 0; j < 6; ++j) _mm512_storeu_ps(v + (6 * i + j) * vx, o[j]);
        }
      }
    }
}

// One image, output channels [o0, o1).
void forward_image4(const WinogradGeom& g, const float* U, const float* bias, const float* img, float* yt, bool relu,
                    int64_t o0, int64_t o1) {
  thread_local std::vector<float> buf;
  thread_local std::vector<int64_t> base_buf, off_buf;
  const int64_t Cp = cpad(g), vx = v4_stride(g), mx = m4_stride(g);  // one position xi to the next
  float* V = scratch(buf, static_cast<size_t>(36 * (vx + mx)));
  float* M = V + 36 * vx;
  input_transform4(g, img, V);
  // M[xi][tile][o] = sum_c V[xi][tile][c] * U[xi][c][o].
  const int64_t* base = ramp(base_buf, g.T, Cp);
  const int64_t* off = ramp(off_buf, g.C, 1);
  for (int xi = 0; xi < 36; ++xi)
    for (int64_t ob = o0; ob < o1; ob += 64) {
      const int nv = static_cast<int>(std::min<int64_t>(4, (o1 - ob) / 16));
      conv_register_tiles(nv, g.T, g.C, U + xi * g.C * g.Opad + ob, g.Opad, V + xi * vx, base, off, M + xi * mx + ob,
                          g.Opad, false, nullptr, false);
    }
  // y = A^T m A per tile, plus bias, into the output pixels it covers.
  for (int64_t th = 0; th < g.TH; ++th)
    for (int64_t tw = 0; tw < g.TW; ++tw) {
      const int64_t t = th * g.TW + tw;
      const int64_t rows = std::min<int64_t>(4, g.OH - 4 * th), cols = std::min<int64_t>(4, g.OW - 4 * tw);
      for (int64_t v = o0; v < o1; v += 16) {
        const float* m = M + t * g.Opad + v;
        __m512 s[4][6];  // s[a][j]: A^T over the rows of column j
        for (int j = 0; j < 6; ++j) {
          __m512 c[6], o[4];
          for (int i = 0; i < 6; ++i) c[i] = _mm512_loadu_ps(m + (6 * i + j) * mx);
          at6(c, o);
          for (int a = 0; a < 4; ++a) s[a][j] = o[a];
        }
        const __m512 bv = bias ? _mm512_loadu_ps(bias + v) : _mm512_setzero_ps();
        for (int64_t a = 0; a < rows; ++a) {
          __m512 y[4];
          at6(s[a], y);
          float* out = yt + ((4 * th + a) * g.OW + 4 * tw) * g.Opad + v;
          for (int64_t b = 0; b < cols; ++b) {
            __m512 q = _mm512_add_ps(y[b], bv);
            if (relu) q = _mm512_max_ps(q, _mm512_setzero_ps());  // NaN -> 0, as the relu op
            _mm512_storeu_ps(out + b * g.Opad, q);
          }
        }
      }
    }
}

// The adjoint of at6: the 4 values y spread over 6 positions, A y with A = (A^T)^T.
inline void a6(const __m512 y[4], __m512 o[6]) {
  const __m512 s02 = _mm512_add_ps(y[0], y[2]), s13 = _mm512_add_ps(y[1], y[3]);
  const __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), y[2], y[0]);
  const __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), y[3], y[1]);  // (2 y1 + 8 y3) / 2
  o[0] = y[0];
  o[1] = _mm512_add_ps(s02, s13);
  o[2] = _mm512_sub_ps(s02, s13);
  o[3] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), q, p);
  o[4] = _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), q, p);
  o[5] = y[3];
}

// acc[xi][c][o] += sum over tiles V[xi][tile][c] * DY[xi][tile][o], DY = A dy A^T, for o in
// [o0, o1).
void wgrad_image4(const WinogradGeom& g, const float* img, const float* gyt, float* acc, int64_t o0, int64_t o1) {
  thread_local std::vector<float> buf;
  thread_local std::vector<int64_t> base_buf, off_buf;
  const int64_t Cp = cpad(g), vx = v4_stride(g), mx = m4_stride(g);
  float* V = scratch(buf, static_cast<size_t>(36 * (vx + mx)));
  float* DY = V + 36 * vx;
  input_transform4(g, img, V);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t th = 0; th < g.TH; ++th)
    for (int64_t tw = 0; tw < g.TW; ++tw) {
      const int64_t t = th * g.TW + tw;
      const int64_t rows = std::min<int64_t>(4, g.OH - 4 * th), cols = std::min<int64_t>(4, g.OW - 4 * tw);
      for (int64_t v = o0; v < o1; v += 16) {
        // Pixels outside the output count as zero.
        __m512 z[4][6];  // z[a][j]: A over the columns of row a
        for (int a = 0; a < 4; ++a) {
          __m512 y[4];
          for (int b = 0; b < 4; ++b)
            y[b] = a < rows && b < cols ? _mm512_loadu_ps(gyt + ((4 * th + a) * g.OW + 4 * tw + b) * g.Opad + v) : zero;
          a6(y, z[a]);
        }
        float* out = DY + t * g.Opad + v;
        for (int j = 0; j < 6; ++j) {
          const __m512 y[4] = {z[0][j], z[1][j], z[2][j], z[3][j]};
          __m512 o[6];
          a6(y, o);
          for (int i = 0; i < 6; ++i) _mm512_storeu_ps(out + (6 * i + j) * mx, o[i]);
        }
      }
    }
  const int64_t* base = ramp(base_buf, g.C, 1);
  const int64_t* off = ramp(off_buf, g.T, Cp);
  for (int xi = 0; xi < 36; ++xi)
    for (int64_t ob = o0; ob < o1; ob += 64) {
      const int nv = static_cast<int>(std::min<int64_t>(4, (o1 - ob) / 16));
      conv_register_tiles(nv, g.C, g.T, DY + xi * mx + ob, g.Opad, V + xi * vx, base, off,
                          acc + xi * g.acc_stride() + ob, g.Opad, true, nullptr, false);
    }
}

// gw[o][c] = G^T acc[.][c][o] G (3 x 6 . 6 x 6 . 6 x 3), 16 output channels per vector.
void wgrad_finish4(const WinogradGeom& g, const float* acc, float* gw, int64_t o0, int64_t o1) {
  // G^T's rows: (1/4, -1/6, -1/6, 1/24, 1/24, 0), (0, -1/6, 1/6, 1/12, -1/12, 0),
  // (0, -1/6, -1/6, 1/6, 1/6, 1).
  auto gt = [](const __m512 a[6], __m512 r[3]) {
    const __m512 s12 = _mm512_add_ps(a[1], a[2]), d12 = _mm512_sub_ps(a[2], a[1]);
    const __m512 s34 = _mm512_add_ps(a[3], a[4]), d34 = _mm512_sub_ps(a[3], a[4]);
    const __m512 sixth = _mm512_set1_ps(1.0f / 6);
    r[0] = _mm512_fmadd_ps(_mm512_set1_ps(0.25f), a[0],
                           _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 24), s34, _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), s12)));
    r[1] = _mm512_fmadd_ps(sixth, d12, _mm512_mul_ps(_mm512_set1_ps(1.0f / 12), d34));
    r[2] = _mm512_add_ps(_mm512_mul_ps(sixth, _mm512_sub_ps(s34, s12)), a[5]);
  };
  alignas(64) float k[9][16];
  for (int64_t ob = o0; ob < o1; ob += 16) {
    const int64_t lanes_valid = std::min<int64_t>(16, g.O - ob);
    for (int64_t c = 0; c < g.C; ++c) {
      __m512 r[3][6];  // r[k][j]: G^T over the rows of column j
      for (int j = 0; j < 6; ++j) {
        __m512 a[6], o[3];
        for (int i = 0; i < 6; ++i) a[i] = _mm512_loadu_ps(acc + (6 * i + j) * g.acc_stride() + c * g.Opad + ob);
        gt(a, o);
        for (int q = 0; q < 3; ++q) r[q][j] = o[q];
      }
      for (int q = 0; q < 3; ++q) {
        __m512 o[3];
        gt(r[q], o);
        for (int l = 0; l < 3; ++l) _mm512_store_ps(k[q * 3 + l], o[l]);
      }
      for (int64_t lane = 0; lane < lanes_valid; ++lane)
        for (int t = 0; t < 9; ++t) gw[((ob + lane) * g.C + c) * 9 + t] = k[t][lane];
    }
  }
}
}  // namespace

WinogradGeom::WinogradGeom(const ConvDims& d, int tile) : m(tile) {
  C = d.C, O = d.O, Opad = (d.O + 15) / 16 * 16;
  H = d.H, W = d.W, ph = d.ph, pw = d.pw;
  OH = d.OH, OW = d.OW, TH = (d.OH + m - 1) / m, TW = (d.OW + m - 1) / m, T = TH * TW;
}

int winograd_tile(const ConvDims& d) {
  if (d.OH < 4 || d.OW < 4) return 2;
  const WinogradGeom g(d, 4);
  return image4_floats(g) * 4 <= (int64_t{4} << 20) ? 4 : 2;
}

bool winograd_applies(const ConvDims& d) {
  if (!conv_winograd_enabled() || d.KH != 3 || d.KW != 3 || d.sh != 1 || d.sw != 1 || d.dh != 1 || d.dw != 1 ||
      d.G != 1 || d.C < 8 || d.O < 8 || d.OH < 1 || d.OW < 1)
    return false;
  const WinogradGeom g(d);
  return image_floats(g) * 4 <= (int64_t{4} << 20);
}

void winograd_pack_weights(const WinogradGeom& g, const float* w, float* U, bool flipped, int64_t o0, int64_t o1) {
  if (o1 < 0) o1 = g.Opad;
  if (g.m == 4) return pack_weights_by<6, g3>(g, w, U, flipped, o0, o1);
  pack_weights_by<4, g2>(g, w, U, flipped, o0, o1);
}

void winograd_forward_image(const WinogradGeom& g, const float* U, const float* bias, const float* img, float* yt,
                            bool relu, int64_t o0, int64_t o1) {
  if (o1 < 0) o1 = g.Opad;
  if (g.m == 4) return forward_image4(g, U, bias, img, yt, relu, o0, o1);
  thread_local std::vector<float> buf;
  thread_local std::vector<int64_t> base_buf, off_buf;
  float* V = scratch(buf, static_cast<size_t>(image_floats(g)));
  float* M = V + 16 * v2_stride(g);
  input_transform(g, img, V);
  const int64_t* base = ramp(base_buf, g.T, 1);
  const int64_t* off = ramp(off_buf, g.C, g.T);
  for (int xi = 0; xi < 16; ++xi)
    for (int64_t ob = o0; ob < o1; ob += 64) {
      const int nv = static_cast<int>(std::min<int64_t>(4, (o1 - ob) / 16));
      conv_register_tiles(nv, g.T, g.C, U + xi * g.C * g.Opad + ob, g.Opad, V + xi * v2_stride(g), base, off,
                          M + xi * m2_stride(g) + ob, g.Opad, false, nullptr, false);
    }
  // A^T m A per tile (A^T = [1 1 1 0; 0 1 -1 -1]), plus bias, into the pixels it covers.
  const int64_t xs = m2_stride(g);
  for (int64_t t = 0; t < g.T; ++t) {
    int64_t p[4];
    tile_pixels(g, t, p);
    for (int64_t v = o0; v < o1; v += 16) {
      const float* m = M + t * g.Opad + v;
      __m512 s[2][4];
      for (int j = 0; j < 4; ++j) {
        const __m512 m0 = _mm512_loadu_ps(m + j * xs), m1 = _mm512_loadu_ps(m + (4 + j) * xs);
        const __m512 m2 = _mm512_loadu_ps(m + (8 + j) * xs), m3 = _mm512_loadu_ps(m + (12 + j) * xs);
        s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
      }
      const __m512 bv = bias ? _mm512_loadu_ps(bias + v) : _mm512_setzero_ps();
      for (int a = 0; a < 2; ++a) {
        __m512 y[2] = {_mm512_add_ps(_mm512_add_ps(s[a][0], s[a][1]), s[a][2]),
                       _mm512_sub_ps(_mm512_sub_ps(s[a][1], s[a][2]), s[a][3])};
        for (int b = 0; b < 2; ++b) {
          if (p[a * 2 + b] < 0) continue;
          __m512 r = _mm512_add_ps(y[b], bv);
          if (relu) r = _mm512_max_ps(r, _mm512_setzero_ps());  // NaN -> 0, as the relu op
          _mm512_storeu_ps(yt + p[a * 2 + b] * g.Opad + v, r);
        }
      }
    }
  }
}

void winograd_wgrad_image(const WinogradGeom& g, const float* img, const float* gyt, float* acc, int64_t o0,
                          int64_t o1) {
  if (o1 < 0) o1 = g.Opad;
  if (g.m == 4) return wgrad_image4(g, img, gyt, acc, o0, o1);
  thread_local std::vector<float> buf;
  thread_local std::vector<int64_t> base_buf, off_buf;
  float* V = scratch(buf, static_cast<size_t>(image_floats(g)));
  float* DY = V + 16 * v2_stride(g);
  input_transform(g, img, V);
  // DY[xi][tile][o] = A dy A^T (A = [1 0; 1 1; 1 -1; 0 -1]): rows (r0, r0 + r1, r0 - r1, -r1),
  // then the same over columns. Pixels outside the output count as zero.
  const int64_t xs = m2_stride(g);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t t = 0; t < g.T; ++t) {
    int64_t p[4];
    tile_pixels(g, t, p);
    for (int64_t v = o0; v < o1; v += 16) {
      __m512 d[4];
      for (int k = 0; k < 4; ++k) d[k] = p[k] < 0 ? zero : _mm512_loadu_ps(gyt + p[k] * g.Opad + v);
      // z[i][b] for b = 0, 1 (d[0], d[1]: row 0; d[2], d[3]: row 1).
      __m512 z[4][2];
      for (int b = 0; b < 2; ++b) {
        z[0][b] = d[b];
        z[1][b] = _mm512_add_ps(d[b], d[2 + b]);
        z[2][b] = _mm512_sub_ps(d[b], d[2 + b]);
        z[3][b] = _mm512_sub_ps(zero, d[2 + b]);
      }
      float* out = DY + t * g.Opad + v;
      for (int i = 0; i < 4; ++i) {
        _mm512_storeu_ps(out + (4 * i + 0) * xs, z[i][0]);
        _mm512_storeu_ps(out + (4 * i + 1) * xs, _mm512_add_ps(z[i][0], z[i][1]));
        _mm512_storeu_ps(out + (4 * i + 2) * xs, _mm512_sub_ps(z[i][0], z[i][1]));
        _mm512_storeu_ps(out + (4 * i + 3) * xs, _mm512_sub_ps(zero, z[i][1]));
      }
    }
  }
  // acc[xi][c][o] += sum over tiles V[xi][c][tile] * DY[xi][tile][o].
  const int64_t* base = ramp(base_buf, g.C, g.T);
  const int64_t* off = ramp(off_buf, g.T, 1);
  for (int xi = 0; xi < 16; ++xi)
    for (int64_t ob = o0; ob < o1; ob += 64) {
      const int nv = static_cast<int>(std::min<int64_t>(4, (o1 - ob) / 16));
      conv_register_tiles(nv, g.C, g.T, DY + xi * xs + ob, g.Opad, V + xi * v2_stride(g), base, off,
                          acc + xi * g.acc_stride() + ob, g.Opad, true, nullptr, false);
    }
}

void winograd_wgrad_finish(const WinogradGeom& g, const float* acc, float* gw, int64_t o0, int64_t o1) {
  if (o1 < 0) o1 = g.Opad;
  if (g.m == 4) return wgrad_finish4(g, acc, gw, o0, o1);
  // G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1], over rows then columns.
  for (int64_t o = o0; o < std::min(o1, g.O); ++o)
    for (int64_t c = 0; c < g.C; ++c) {
      float a[4][4];
      for (int xi = 0; xi < 16; ++xi) a[xi / 4][xi % 4] = acc[xi * g.acc_stride() + c * g.Opad + o];
      float r[3][4];
      for (int j = 0; j < 4; ++j) {
        r[0][j] = a[0][j] + 0.5f * (a[1][j] + a[2][j]);
        r[1][j] = 0.5f * (a[1][j] - a[2][j]);
        r[2][j] = 0.5f * (a[1][j] + a[2][j]) + a[3][j];
      }
      float* k = gw + (o * g.C + c) * 9;
      for (int i = 0; i < 3; ++i) {
        k[i * 3 + 0] = r[i][0] + 0.5f * (r[i][1] + r[i][2]);
        k[i * 3 + 1] = 0.5f * (r[i][1] - r[i][2]);
        k[i * 3 + 2] = 0.5f * (r[i][1] + r[i][2]) + r[i][3];
      }
    }
}

#pragma GCC diagnostic pop

}  // namespace loom::cpu::detail
