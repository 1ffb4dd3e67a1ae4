// Implicit-GEMM convolution on AVX-512 (see conv_direct.h for the formulation). Compiled
// with -mavx512f and friends; conv.cpp calls it only when the CPU reports AVX-512.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/avx512_util.h"
#include "loom/tensor/kernels/cpu/conv_direct.h"
#include "loom/tensor/kernels/cpu/conv_winograd.h"
#include "loom/tensor/kernels/cpu/pool_avx512.h"
#include "loom/tensor/kernels/cpu/transpose.h"

namespace loom::cpu::detail {
namespace {

// GCC 12's AVX-512 headers seed shuffles and max with _mm512_undefined_ps(), which
// -Wuninitialized reports at every inlined use (GCC bug 105593); the values are never read.
// (For the whole file.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Loops over a tile's registers are unrolled completely, so the accumulators stay in
// registers: left to itself GCC kept a 6 x 4 row tile's in a stack array (the cnn's 1 -> 32
// forward: 0.31 -> 0.24 ms with the pragma).
#define LOOM_UNROLL _Pragma("GCC unroll 32")

// The register tile: acc[j][v] (+)= sum_r vec[r * vs + 16 v ..] * x[base[j] + off[r]],
// written to out[j * ldo + 16 v ..]. NJ * NV zmm accumulators; per r: NV vector loads and
// NJ broadcasts for NJ * NV FMAs. Without `accumulate` the sums start from init[16 v ..]
// (a bias) or from zero when init is null; with relu the stored sums are max(sum, 0).
using TileFn = void (*)(int64_t R, const float* vec, int64_t vs, const float* x, const int64_t* base,
                        const int64_t* off, float* out, int64_t ldo, bool accumulate, const float* init, bool relu);

template <int NV, int NJ>
void tile(int64_t R, const float* vec, int64_t vs, const float* x, const int64_t* base, const int64_t* off,
          float* out, int64_t ldo, bool accumulate, const float* init, bool relu) {
  __m512 acc[NJ][NV];
  const float* xp[NJ];
  LOOM_UNROLL
  for (int j = 0; j < NJ; ++j) {
    xp[j] = x + base[j];
    LOOM_UNROLL
    for (int v = 0; v < NV; ++v)
      acc[j][v] = accumulate ? _mm512_loadu_ps(out + j * ldo + 16 * v)
                  : init     ? _mm512_loadu_ps(init + 16 * v)
                             : _mm512_setzero_ps();
  }
  for (int64_t r = 0; r < R; ++r) {
    const int64_t o = off[r];
    const float* vr = vec + r * vs;
    __m512 w[NV];
    LOOM_UNROLL
    for (int v = 0; v < NV; ++v) w[v] = _mm512_loadu_ps(vr + 16 * v);
    LOOM_UNROLL
    for (int j = 0; j < NJ; ++j) {
      const __m512 b = _mm512_set1_ps(xp[j][o]);
      LOOM_UNROLL
      for (int v = 0; v < NV; ++v) acc[j][v] = _mm512_fmadd_ps(w[v], b, acc[j][v]);
    }
  }
  if (relu) {  // max(sum, 0) with the sum first: a NaN sum gives 0, as the relu op
    LOOM_UNROLL
    for (int j = 0; j < NJ; ++j)
      LOOM_UNROLL
      for (int v = 0; v < NV; ++v) acc[j][v] = _mm512_max_ps(acc[j][v], _mm512_setzero_ps());
  }
  LOOM_UNROLL
  for (int j = 0; j < NJ; ++j)
    LOOM_UNROLL
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(out + j * ldo + 16 * v, acc[j][v]);
}

constexpr int kMaxJ = 8;
// Largest tile width per vector count: NV * NJ <= 24 accumulators, NJ pointers in registers.
constexpr int kTileJ[5] = {0, 8, 8, 8, 6};

template <int NV, int... J>
constexpr std::array<TileFn, kMaxJ> row_of(std::integer_sequence<int, J...>) {
  return {&tile<NV, J + 1>...};
}
const std::array<std::array<TileFn, kMaxJ>, 4> kTiles = {
    row_of<1>(std::make_integer_sequence<int, kMaxJ>{}), row_of<2>(std::make_integer_sequence<int, kMaxJ>{}),
    row_of<3>(std::make_integer_sequence<int, kMaxJ>{}), row_of<4>(std::make_integer_sequence<int, kMaxJ>{})};

// Runs the tile kernel over items [0, n) of `base`, in the fewest tiles of at most
// kTileJ[NV] items, sized evenly (13 items -> 7 + 6, not 8 + 5).
void tiles_over(int NV, int64_t n, int64_t R, const float* vec, int64_t vs, const float* x, const int64_t* base,
                const int64_t* off, float* out, int64_t ldo, bool accumulate, const float* init = nullptr,
                bool relu = false) {
  const int64_t tiles = (n + kTileJ[NV] - 1) / kTileJ[NV];
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t j0 = n * t / tiles, j1 = n * (t + 1) / tiles;
    kTiles[NV - 1][j1 - j0 - 1](R, vec, vs, x, base + j0, off, out + j0 * ldo, ldo, accumulate, init, relu);
  }
}

}  // namespace

void conv_register_tiles(int NV, int64_t n, int64_t R, const float* vec, int64_t vs, const float* x,
                         const int64_t* base, const int64_t* off, float* out, int64_t ldo, bool accumulate,
                         const float* init, bool relu) {
  tiles_over(NV, n, R, vec, vs, x, base, off, out, ldo, accumulate, init, relu);
}

namespace {

using simd512::hsum;

// Shapes shared by both passes: padded planes, tap offsets and pixel bases. Problems the
// Winograd kernels take (conv_winograd.h) keep their geometry in `wino`; those kernels
// read unpadded planes (the padding is masked), so their images are never copied.
struct Plan {
  int64_t Cg, Og, Opad, CKK, L, Hp, Wp, plane;
  bool pad;
  std::optional<WinogradGeom> wino;
  std::vector<int64_t> taps, pix;  // pix: empty unless asked for and not Winograd

  explicit Plan(const ConvDims& d, bool pixels = true) {
    Cg = d.C / d.G, Og = d.O / d.G, Opad = (Og + 15) / 16 * 16;
    CKK = Cg * d.KH * d.KW, L = d.OH * d.OW;
    pad = d.ph > 0 || d.pw > 0;
    if (winograd_applies(d)) {
      wino.emplace(d, winograd_tile(d));
      pad = false;
    }
    Hp = pad ? d.H + 2 * d.ph : d.H, Wp = pad ? d.W + 2 * d.pw : d.W, plane = Hp * Wp;
    taps.resize(static_cast<size_t>(CKK));
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t kh = 0; kh < d.KH; ++kh)
        for (int64_t kw = 0; kw < d.KW; ++kw)
          taps[static_cast<size_t>((c * d.KH + kh) * d.KW + kw)] = c * plane + kh * d.dh * Wp + kw * d.dw;
    // Only the o-vector kernels read the pixel bases (Winograd has its own tiles). Built
    // for every call, they were 20% of a 1-image 1 -> 32 forward on 1 thread (6.2 -> 5.0 us).
    if (pixels && !wino) {
      pix.resize(static_cast<size_t>(L));
      for (int64_t oh = 0; oh < d.OH; ++oh)
        for (int64_t ow = 0; ow < d.OW; ++ow) pix[static_cast<size_t>(oh * d.OW + ow)] = oh * d.sh * Wp + ow * d.sw;
    }
  }

  // Where an image's pixel (0, 0) is in its (padded) plane.
  int64_t origin(const ConvDims& d) const { return pad ? d.ph * Wp + d.pw : 0; }

  // Copies the Cg planes of group gi of image n into dst, zero-padded, followed by `slack`
  // zeroed floats.
  void copy_padded(const ConvDims& d, const float* x, int64_t n, int64_t gi, float* dst, int64_t slack = 0) const {
    const float* src = x + (n * d.C + gi * Cg) * d.H * d.W;
    std::memset(dst, 0, sizeof(float) * static_cast<size_t>(Cg * plane + slack));
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t h = 0; h < d.H; ++h)
        std::memcpy(dst + c * plane + (h + d.ph) * Wp + d.pw, src + (c * d.H + h) * d.W, sizeof(float) * d.W);
  }

  // The planes of group gi of image n, zero-padded into buf (or in place when unpadded).
  const float* image(const ConvDims& d, const float* x, int64_t n, int64_t gi, std::vector<float>& buf) const {
    if (!pad) return x + (n * d.C + gi * Cg) * d.H * d.W;
    float* p = scratch(buf, static_cast<size_t>(Cg * plane));
    copy_padded(d, x, n, gi, p);
    return p;
  }
};

// Calls fn(n, l0, l1) for each image piece of part p of the N * L output pixels cut into
// `parts` contiguous ranges.
template <typename F>
void part_pieces(int64_t N, int64_t L, int64_t parts, int64_t p, F fn) {
  const int64_t a = N * L * p / parts, b = N * L * (p + 1) / parts;
  for (int64_t n = a / std::max<int64_t>(L, 1); n * L < b; ++n) {
    const int64_t l0 = std::max(a, n * L) - n * L, l1 = std::min(b, (n + 1) * L) - n * L;
    if (l0 < l1) fn(n, l0, l1);
  }
}

// fn(part, n, l0, l1) for each image piece of each part, the parts spread over the threads
// by parallel_tasks.
template <typename F>
void for_pixel_ranges(int64_t N, int64_t L, int64_t parts, F fn) {
  parallel_tasks(parts, [&](int64_t p) {
    part_pieces(N, L, parts, p, [&](int64_t n, int64_t l0, int64_t l1) { fn(p, n, l0, l1); });
  });
}

// How many pixel ranges the forward kernels cut a batch into: 8 per thread. The pool deals
// each thread one contiguous block of them and lets a thread that is done take the others'
// last ones, so a core that lags (this VM's vCPUs do, for seconds at a time) hands work
// over instead of holding up the call. The 1-channel forward on 2 threads, batch means
// interleaved in one process during such phases: 1 -> 4 parts per thread, medians 265 -> 230
// us (batch 64) and 1090 -> 977 us (batch 256); 4 -> 8, 184-243 -> 178-222 us in four of
// five runs and 1043 -> 912 us; minima equal throughout (16: as 8). The Winograd forward +-3%.
int64_t forward_parts() {
  const int t = num_threads();
  return t == 1 ? 1 : 8 * int64_t{t};
}

// A number unique to one kernel call, for the thread-local "done for this call" marks of the
// tasks that several pieces of an image or call share (copies, transformed weights).
uint64_t next_call_id() {
  static std::atomic<uint64_t> calls{0};
  return calls.fetch_add(1, std::memory_order_relaxed) + 1;
}

// One past the last image that part p of part_pieces(N, L, parts, p, ..) touches: the
// next image is worth prefetching only below it. Beyond it the image may be another
// thread's, and a write prefetch there pulls that thread's freshly written lines over to this
// core, which it then takes back on the next call (the 1 -> 32 forward at batch 64 on 2
// threads, one part per thread: 4-20% faster without, in three in-process A/B runs).
// Prefetching on to the end of the thread's block of parts instead (usually its own next
// part) measured the same at 4 and 8 parts per thread.
int64_t part_image_end(int64_t N, int64_t L, int64_t parts, int64_t p) {
  const int64_t b = N * L * (p + 1) / parts;
  return L > 0 ? (b + L - 1) / L : N;
}

// ---- Row-vector path: few taps per output and unit width stride ----------------------
// With few taps (a 1-channel 3x3 layer has 9), the o-vector path's transposes cost as much
// as its arithmetic. Here vectors run along output rows instead (16 pixels, a row's tail
// masked) and the weights are broadcast, so results are stored straight into y.
struct RowVec {
  int64_t in, out;  // first pixel's offset in the padded plane / in the output plane
  __mmask16 mask;   // valid lanes
};

// acc[j][v] = init[j] + sum_r w[r * ws + j] * x[rv[v].in + off[r] ..16] (every lane; the
// caller masks what it stores).
template <int NJ, int NV>
inline void row_accumulate(int64_t R, const float* w, int64_t ws, const float* x, const RowVec* rv, const int64_t* off,
                           const float* init, __m512 (&acc)[NJ][NV]) {
  const float* xp[NV];
  LOOM_UNROLL
  for (int v = 0; v < NV; ++v) xp[v] = x + rv[v].in;
  LOOM_UNROLL
  for (int j = 0; j < NJ; ++j) {
    const __m512 b = init ? _mm512_set1_ps(init[j]) : _mm512_setzero_ps();
    LOOM_UNROLL
    for (int v = 0; v < NV; ++v) acc[j][v] = b;
  }
  auto tap = [&](int64_t r) __attribute__((always_inline)) {
    const int64_t o = off[r];
    __m512 xv[NV];
    LOOM_UNROLL
    for (int v = 0; v < NV; ++v) xv[v] = _mm512_loadu_ps(xp[v] + o);
    const float* wr = w + r * ws;
    LOOM_UNROLL
    for (int j = 0; j < NJ; ++j) {
      const __m512 b = _mm512_set1_ps(wr[j]);
      LOOM_UNROLL
      for (int v = 0; v < NV; ++v) acc[j][v] = _mm512_fmadd_ps(xv[v], b, acc[j][v]);
    }
  };
  // A 1-channel 3 x 3 layer's 9 taps unrolled: the 1 -> 32 forward on 1 thread 19.7 -> 18.9 us
  // for 4 images in cache, 323-327 -> 318-322 us at batch 64, 2 threads 164-167 -> 161-162
  // (separate builds alternated, 2026-11-28).
  if (R == 9) {
    LOOM_UNROLL
    for (int r = 0; r < 9; ++r) tap(r);
  } else {
    for (int64_t r = 0; r < R; ++r) tap(r);
  }
}

// row_accumulate, stored to y[j * ldy + rv[v].out] under rv[v].mask. pf > 0: prefetch the
// spot pf floats ahead for writing; pf < 0: store whole, 64-byte aligned vectors with
// streaming stores (the caller fences).
template <int NJ, int NV>
void row_tile(int64_t R, const float* w, int64_t ws, const float* x, const RowVec* rv, const int64_t* off, float* y,
              int64_t ldy, const float* init, int64_t pf, bool relu) {
  __m512 acc[NJ][NV];
  row_accumulate<NJ, NV>(R, w, ws, x, rv, off, init, acc);
  if (relu) {
    LOOM_UNROLL
    for (int j = 0; j < NJ; ++j)
      LOOM_UNROLL
      for (int v = 0; v < NV; ++v) acc[j][v] = _mm512_max_ps(acc[j][v], _mm512_setzero_ps());
  }
  LOOM_UNROLL
  for (int j = 0; j < NJ; ++j)
    LOOM_UNROLL
    for (int v = 0; v < NV; ++v) {
      float* dst = y + j * ldy + rv[v].out;
      if (pf < 0 && rv[v].mask == 0xFFFF && (reinterpret_cast<uintptr_t>(dst) & 63) == 0) {
        _mm512_stream_ps(dst, acc[j][v]);
        continue;
      }
      // A masked store costs more than a plain one even with every lane set (4 images in
      // cache, 1 thread: 0.0235 -> 0.0219 ms with plain stores for whole vectors).
      if (rv[v].mask == 0xFFFF) _mm512_storeu_ps(dst, acc[j][v]);
      else _mm512_mask_storeu_ps(dst, rv[v].mask, acc[j][v]);
      // The same spot of the next image's output, fetched for writing well ahead: output
      // rows are short streams that the hardware prefetcher does not pick up in time. A
      // PREFETCHW (-mprfchw): batch 64 / 256 on 2 threads 8-11% faster than a read prefetch.
      if (pf > 0) __builtin_prefetch(dst + pf, 1, 2);
    }
}

// 2 x 2 / stride-2 max pooling of conv rows 2ph and 2ph + 1 (output rows of at most 32
// pixels: rv = {top 0-15, top 16-31, bottom 0-15, bottom 16-31}) straight from the
// accumulators -- vertical maxima, then the even and odd columns gathered by permutes -- so
// neither the convolution's output nor a transpose is ever written. Same winner as
// max_pool2d's scan of a window (TL, TR, BL, BR: the first maximum wins, NaN propagates):
// candidates compare by value and, for ties and NaN pairs, by plane index, which grows in
// that order. Pooled row of channel j: yp[j * ldp ..], ip (i32 plane offsets), lanes `keep`.
template <int NJ>
void row_pool_tile(int64_t R, const float* w, int64_t ws, const float* x, const RowVec* rv, const int64_t* off,
                   const float* init, int64_t top_pixel, int64_t OW, __mmask16 keep, bool relu, float* yp, int32_t* ip,
                   int64_t ldp) {
  __m512 acc[NJ][4];
  row_accumulate<NJ, 4>(R, w, ws, x, rv, off, init, acc);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i even = _mm512_add_epi32(lane, lane), odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i top[2] = {_mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(top_pixel))),
                          _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(top_pixel + 16)))};
  const __m512i down = _mm512_set1_epi32(static_cast<int32_t>(OW));
  LOOM_UNROLL
  for (int j = 0; j < NJ; ++j) {
    __m512 v[2];
    __m512i iv[2];
    LOOM_UNROLL
    for (int h = 0; h < 2; ++h) {
      const __m512 t = acc[j][h], b = acc[j][2 + h];
      const __mmask16 take = simd512::pool_replaces(b, t);
      v[h] = _mm512_mask_mov_ps(t, take, b);
      iv[h] = _mm512_mask_add_epi32(top[h], take, top[h], down);
    }
    const __m512 l = _mm512_permutex2var_ps(v[0], even, v[1]), r = _mm512_permutex2var_ps(v[0], odd, v[1]);
    const __m512i il = _mm512_permutex2var_epi32(iv[0], even, iv[1]), ir = _mm512_permutex2var_epi32(iv[0], odd, iv[1]);
    const __mmask16 nan_l = _mm512_cmp_ps_mask(l, l, _CMP_UNORD_Q), nan_r = _mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q);
    const __mmask16 first = _mm512_cmplt_epi32_mask(ir, il);
    // (ordered compares are false when either side is NaN)
    const __mmask16 take_r = static_cast<__mmask16>((nan_r & (~nan_l | first)) | _mm512_cmp_ps_mask(r, l, _CMP_GT_OQ) |
                                                    (_mm512_cmp_ps_mask(r, l, _CMP_EQ_OQ) & first));
    __m512 best = _mm512_mask_mov_ps(l, take_r, r);
    if (relu) best = _mm512_max_ps(best, _mm512_setzero_ps());  // NaN -> 0, as max_pool2d's relu
    _mm512_mask_storeu_ps(yp + j * ldp, keep, best);
    _mm512_mask_storeu_epi32(ip + j * ldp, keep, _mm512_mask_mov_epi32(il, take_r, ir));
  }
}

using RowPoolTileFn = void (*)(int64_t, const float*, int64_t, const float*, const RowVec*, const int64_t*,
                               const float*, int64_t, int64_t, __mmask16, bool, float*, int32_t*, int64_t);

// Weight-gradient partial sums for NJ outputs x NT taps over the row vectors of one image:
// acc[j][t] += gy[j * ldg + rv.out ..16] * x[rv.in + off[t] ..16], lanes past the row
// masked to zero. The NJ * NT vectors live in acc_mem between calls (one call per image);
// `first`: they start from zero instead (a part's first image). FLAT: a flat geometry
// (RowGeom::flat), where vector v is pixels 16v.. of both planes and only the last one may
// be partial -- one running index for every stream, no per-vector descriptors to load (the
// 1 -> 32 weight gradient on 1 thread 3-5% faster).
template <int NJ, int NT, bool FLAT>
void row_wgrad_tile(int64_t nvec, const RowVec* rv, const float* gy, int64_t ldg, const float* x, const int64_t* off,
                    float* acc_mem, int64_t pf, bool first) {
  __m512 acc[NJ][NT];
  LOOM_UNROLL
  for (int j = 0; j < NJ; ++j)
    LOOM_UNROLL
    for (int t = 0; t < NT; ++t) acc[j][t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(acc_mem + (j * NT + t) * 16);
  const float* xt[NT];  // (FLAT) each tap's first pixel
  LOOM_UNROLL
  for (int t = 0; t < NT; ++t) xt[t] = x + off[t];
  auto step = [&](int64_t in, int64_t out, auto load) __attribute__((always_inline)) {
    __m512 g[NJ];
    LOOM_UNROLL
    for (int j = 0; j < NJ; ++j) {
      const float* src = gy + j * ldg + out;
      g[j] = load(src);
      if (pf) __builtin_prefetch(src + pf, 0, 2);  // the next image's rows, into L2
    }
    LOOM_UNROLL
    for (int t = 0; t < NT; ++t) {
      __m512 xv;
      if constexpr (FLAT) {
        xv = load(xt[t] + in);
        // In a register: with 27 accumulators GCC otherwise folds the load into each of the
        // NJ FMAs, loading it NJ times (the flat tile 1.6x slower).
        asm("" : "+v"(xv));
      } else {
        xv = load(x + in + off[t]);  // (the flat form here: 4-5% slower on padded rows)
      }
      LOOM_UNROLL
      for (int j = 0; j < NJ; ++j) acc[j][t] = _mm512_fmadd_ps(g[j], xv, acc[j][t]);
    }
  };
  auto whole = [](const float* p) { return _mm512_loadu_ps(p); };
  if constexpr (FLAT) {
    const __mmask16 tail = nvec > 0 ? rv[nvec - 1].mask : 0xFFFF;
    const int64_t full = tail == 0xFFFF ? nvec : nvec - 1;
    for (int64_t p = 0; p < 16 * full; p += 16) step(p, p, whole);
    if (full < nvec) step(16 * full, 16 * full, [tail](const float* p) { return _mm512_maskz_loadu_ps(tail, p); });
  } else {
    for (int64_t v = 0; v < nvec; ++v) {
      const __mmask16 m = rv[v].mask;
      if (m == 0xFFFF)  // whole vectors (all but row ends): plain loads
        step(rv[v].in, rv[v].out, whole);
      else
        step(rv[v].in, rv[v].out, [m](const float* p) { return _mm512_maskz_loadu_ps(m, p); });
    }
  }
  LOOM_UNROLL
  for (int j = 0; j < NJ; ++j)
    LOOM_UNROLL
    for (int t = 0; t < NT; ++t) _mm512_storeu_ps(acc_mem + (j * NT + t) * 16, acc[j][t]);
}

using RowTileFn = void (*)(int64_t, const float*, int64_t, const float*, const RowVec*, const int64_t*, float*, int64_t,
                           const float*, int64_t, bool);
using RowWgradFn = void (*)(int64_t, const RowVec*, const float*, int64_t, const float*, const int64_t*, float*,
                            int64_t, bool);
// Forward tiles of up to 8 channels x 2 vectors: on a Zen 4 host (512-bit FMAs at half rate,
// 2026-11-28) 5-17% faster than 6 x 4 on 1 thread (batch 256: 1.93 -> 1.60 ms), equal on 2;
// 8 x 3 and 11 x 2 in between. The pooling tile holds 2 rows x 2 vectors per channel, so
// at most 6 channels (24 accumulators).
constexpr int kRowJ = 8, kRowV = 2, kPoolJ = 6, kWgradJ = 3, kWgradT = 9;

template <int NJ, int... V>
constexpr std::array<RowTileFn, kRowV> row_tiles_of(std::integer_sequence<int, V...>) {
  return {&row_tile<NJ, V + 1>...};
}
template <int... J>
constexpr std::array<std::array<RowTileFn, kRowV>, kRowJ> row_table(std::integer_sequence<int, J...>) {
  return {row_tiles_of<J + 1>(std::make_integer_sequence<int, kRowV>{})...};
}
const auto kRowTiles = row_table(std::make_integer_sequence<int, kRowJ>{});

template <int... J>
constexpr std::array<RowPoolTileFn, kPoolJ> row_pool_table(std::integer_sequence<int, J...>) {
  return {&row_pool_tile<J + 1>...};
}
const auto kRowPoolTiles = row_pool_table(std::make_integer_sequence<int, kPoolJ>{});

template <int NJ, bool FLAT, int... T>
constexpr std::array<RowWgradFn, kWgradT> wgrad_tiles_of(std::integer_sequence<int, T...>) {
  return {&row_wgrad_tile<NJ, T + 1, FLAT>...};
}
template <bool FLAT>
constexpr std::array<std::array<RowWgradFn, kWgradT>, kWgradJ> wgrad_table() {
  return {wgrad_tiles_of<1, FLAT>(std::make_integer_sequence<int, kWgradT>{}),
          wgrad_tiles_of<2, FLAT>(std::make_integer_sequence<int, kWgradT>{}),
          wgrad_tiles_of<3, FLAT>(std::make_integer_sequence<int, kWgradT>{})};
}
// [flat geometry][NJ - 1][NT - 1]
const std::array<std::array<std::array<RowWgradFn, kWgradT>, kWgradJ>, 2> kWgradTiles = {wgrad_table<false>(),
                                                                                         wgrad_table<true>()};

// [0, n) cut into the fewest even pieces of at most `most`: how many, and where piece i of
// `pieces` starts (piece i is [piece_start(n, pieces, i), piece_start(n, pieces, i + 1))).
int64_t piece_count(int64_t n, int64_t most) { return (n + most - 1) / most; }
int64_t piece_start(int64_t n, int64_t pieces, int64_t i) { return n * i / pieces; }

// Calls fn(lo, hi) for each of those pieces.
template <typename F>
void even_pieces(int64_t n, int64_t most, F fn) {
  const int64_t k = piece_count(n, most);
  for (int64_t i = 0; i < k; ++i) fn(piece_start(n, k, i), piece_start(n, k, i + 1));
}

// The row vectors of one output plane.
std::vector<RowVec> row_vectors(const ConvDims& d, const Plan& pl) {
  std::vector<RowVec> rv;
  for (int64_t oh = 0; oh < d.OH; ++oh)
    for (int64_t c0 = 0; c0 < d.OW; c0 += 16) {
      const int64_t n = std::min<int64_t>(16, d.OW - c0);
      rv.push_back({oh * d.sh * pl.Wp + c0, oh * d.OW + c0, static_cast<__mmask16>((1u << n) - 1)});
    }
  return rv;
}

// Full vector loads may run up to 15 floats past a plane's last row: padded copies of the
// image get this much zeroed slack.
constexpr int64_t kRowSlack = 16;

// Where the row-vector kernels read an image from and which pixels their vectors cover.
//
// Padded rows (strided rows, or images whose flat copies would be too large): the image
// zero-padded on all sides, a vector per 16 pixels of an output row (a 28-pixel row: 16 + 12
// lanes).
//
// Flat (unit row stride, small images): vectors run over 16 consecutive pixels of the output
// plane, across row ends, so every lane but the last vector's works and the stores are whole
// vectors (the cnn's 28 x 28 planes are 49 of them). Output pixel p = oh * OW + ow reads, for tap
// (kh, kw), input row oh + kh * dh - ph at column ow + kw * dw - pw; one copy of the image per
// kernel column kw makes that one constant offset from p:
//  - "same" layers (output as wide as the input): the plane itself, padded only above and
//    below, at offset p + kh * dh * W + dx (dx = kw * dw - pw) -- except where ow + dx leaves
//    the row and the flat index wraps into the neighbouring row, so in the copy for kw the
//    columns such a wrap lands on are zero (the last -dx for dx < 0, the first dx for dx > 0);
//  - any other width ("wide" copies): rows of OW pixels, copy kw's row r holding input row
//    r - ph from column kw * dw - pw on (zeros outside the image), read at p + kh * dh * OW.
struct RowGeom {
  bool flat;
  bool same = false;                        // flat: the "same" copies (else wide ones)
  int64_t fplane = 0, front = 0, copy = 0;  // flat: floats per plane, before each copy, per copy
  int64_t size;                             // floats of the image buffer
  std::vector<RowVec> rv;
  std::vector<int64_t> taps;
  std::vector<__mmask16> lanes_kept;  // same: per kernel column, per vector of a plane: lanes kept

  // Flat when the KW copies take at most 16 KiB (a third of L1): a 3-channel 32 x 32 layer's
  // (35-39 KiB) ran its forward 2-10% slower than on padded rows, a 1-channel 28 x 28 layer's
  // (9-10 KiB) 10-13% faster on the wide copies.
  static constexpr int64_t kFlatFloats = 4096;
  static bool flat_applies(const ConvDims& d) {
    return d.sh == 1 && d.sw == 1 && d.KW * (d.C / d.G) * (d.H + 2 * d.ph) * d.OW <= kFlatFloats;
  }
  static bool same_applies(const ConvDims& d) {
    return flat_applies(d) && d.OW == d.W && d.pw < d.W && (d.KW - 1) * d.dw - d.pw < d.W;
  }

  RowGeom(const ConvDims& d, const Plan& pl) : flat(flat_applies(d)), same(same_applies(d)) {
    if (!flat) {
      rv = row_vectors(d, pl);
      taps = pl.taps;
      size = pl.Cg * pl.plane + kRowSlack;
      return;
    }
    for (int64_t p = 0; p < pl.L; p += 16)
      rv.push_back({p, p, static_cast<__mmask16>(pl.L - p >= 16 ? 0xFFFF : (1u << (pl.L - p)) - 1)});
    taps.resize(static_cast<size_t>(pl.CKK));
    if (!same) {
      // Rows -ph .. H + ph - 1 of the input hold every row a tap reads; the last vector's
      // dead lanes read up to 15 floats past a plane: zeroed slack after the last.
      fplane = (d.H + 2 * d.ph) * d.OW;
      copy = pl.Cg * fplane + kRowSlack;
      size = d.KW * copy;
      for (int64_t c = 0; c < pl.Cg; ++c)
        for (int64_t kh = 0; kh < d.KH; ++kh)
          for (int64_t kw = 0; kw < d.KW; ++kw)
            taps[static_cast<size_t>((c * d.KH + kh) * d.KW + kw)] = kw * copy + c * fplane + kh * d.dh * d.OW;
      return;
    }
    fplane = (d.H + 2 * d.ph) * d.W;
    // Reads reach pw floats before a plane and, from the last vector's dead lanes, up to
    // 15 + (KW - 1) * dw - pw floats past it: zeroed margins of W + 16 on both sides.
    front = d.W + 16;
    copy = front + pl.Cg * fplane + d.W + 16;
    size = d.KW * copy;
    const int64_t HW = d.H * d.W, nv = (HW + 15) / 16;
    lanes_kept.assign(static_cast<size_t>(d.KW * nv), 0xFFFF);
    for (int64_t kw = 0; kw < d.KW; ++kw) {
      const int64_t dx = kw * d.dw - d.pw;
      const int64_t lo = std::max<int64_t>(0, dx), hi = std::min(d.W, d.W + dx);  // columns kept
      auto clear = [&](int64_t q) { lanes_kept[static_cast<size_t>(kw * nv + q / 16)] &= static_cast<__mmask16>(~(1u << (q % 16))); };
      for (int64_t h = 0; h < d.H; ++h) {
        for (int64_t col = 0; col < lo; ++col) clear(h * d.W + col);
        for (int64_t col = hi; col < d.W; ++col) clear(h * d.W + col);
      }
    }
    for (int64_t c = 0; c < pl.Cg; ++c)
      for (int64_t kh = 0; kh < d.KH; ++kh)
        for (int64_t kw = 0; kw < d.KW; ++kw)
          taps[static_cast<size_t>((c * d.KH + kh) * d.KW + kw)] =
              kw * copy + front + c * fplane + kh * d.dh * d.W + kw * d.dw - d.pw;
  }

  // The image buffer of group gi of image n.
  void fill(const ConvDims& d, const Plan& pl, const float* x, int64_t n, int64_t gi, float* dst) const {
    if (!flat) return pl.copy_padded(d, x, n, gi, dst, kRowSlack);
    const float* src = x + (n * d.C + gi * pl.Cg) * d.H * d.W;
    if (!same) return fill_wide(d, pl, src, dst);
    const int64_t HW = d.H * d.W, pad = d.ph * d.W;
    const int64_t nv = (HW + 15) / 16;
    for (int64_t kw = 0; kw < d.KW; ++kw) {
      // Each copy is one contiguous run: zeros, then per plane its H x W pixels between pad
      // rows, then zeros. The planes are copied flat in whole vectors, the wrap columns
      // cleared in registers by a precomputed mask per vector (row-by-row masked moves and
      // memset calls: fill and its caller's loop 10-12% of the 1 -> 32 forward's samples, now 8%).
      float* base = dst + kw * copy;
      const __mmask16* keep = lanes_kept.data() + kw * nv;
      zero_floats(base, front + pad);
      for (int64_t c = 0; c < pl.Cg; ++c) {
        float* plane = base + front + c * fplane + pad;
        const float* s = src + c * HW;
        if (nv > 0) {  // (none: H or W zero, the plane is all padding)
          for (int64_t v = 0; v + 1 < nv; ++v)
            _mm512_storeu_ps(plane + 16 * v, _mm512_maskz_mov_ps(keep[v], _mm512_loadu_ps(s + 16 * v)));
          const int64_t last = 16 * (nv - 1);
          const __mmask16 tail = static_cast<__mmask16>((1u << (HW - last)) - 1);  // 1..16 lanes
          _mm512_mask_storeu_ps(plane + last, tail, _mm512_maskz_loadu_ps(keep[nv - 1] & tail, s + last));
        }
        zero_floats(plane + HW, c + 1 < pl.Cg ? 2 * pad : copy - front - c * fplane - pad - HW);
      }
    }
  }

 private:
  // The wide copies: row r of copy kw, plane c = input row r - ph from column kw * dw - pw,
  // OW floats, zero outside the image. Rows are written in order with whole vectors (a
  // row's last vector spills into the next row, which then overwrites it; the last one
  // into the slack, zeroed last).
  void fill_wide(const ConvDims& d, const Plan& pl, const float* src, float* dst) const {
    for (int64_t kw = 0; kw < d.KW; ++kw) {
      float* base = dst + kw * copy;
      const int64_t dx = kw * d.dw - d.pw;
      for (int64_t c = 0; c < pl.Cg; ++c)
        for (int64_t r = 0; r < d.H + 2 * d.ph; ++r) {
          float* row = base + c * fplane + r * d.OW;
          const int64_t ih = r - d.ph;
          if (ih < 0 || ih >= d.H) {
            zero_floats(row, d.OW);
            continue;
          }
          const float* s = src + (c * d.H + ih) * d.W + dx;  // column ow reads s[ow]
          for (int64_t ow = 0; ow < d.OW; ow += 16) {
            // lanes whose input column dx + ow + lane lies in [0, W)
            const int64_t lo = std::clamp<int64_t>(-dx - ow, 0, 16), hi = std::clamp<int64_t>(d.W - dx - ow, 0, 16);
            const __mmask16 m = hi > lo ? static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1)) : 0;
            _mm512_storeu_ps(row + ow, _mm512_maskz_loadu_ps(m, s + ow));
          }
        }
      zero_floats(base + pl.Cg * fplane, kRowSlack);
    }
  }

  static void zero_floats(float* p, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(p + i, _mm512_setzero_ps());
    if (i < n) _mm512_mask_storeu_ps(p + i, static_cast<__mmask16>((1u << (n - i)) - 1), _mm512_setzero_ps());
  }
};

// This thread's plan and row geometry for dims d: those of the last layer it ran, rebuilt
// when the dims change. Each task of a call looks up its own (see RowJob); built afresh
// every call, the geometry's vectors were new memory, written on the caller's core and then
// fetched from it by every other thread (the 1 -> 32 forward on 2 threads: 24.2-24.7 ->
// 23.4-23.7 us for 8 images with a cache). The reference is valid until this thread's next
// row-path call.
struct RowLayer {
  ConvDims at;
  Plan pl;
  RowGeom geo;
  explicit RowLayer(const ConvDims& d) : at(d), pl(d, false), geo(d, pl) {}
};

const RowLayer& row_layer(const ConvDims& d) {
  static_assert(std::has_unique_object_representations_v<ConvDims>, "dims compared bytewise");
  thread_local std::optional<RowLayer> layer;
  if (!layer || std::memcmp(&layer->at, &d, sizeof d) != 0) layer.emplace(d);
  return *layer;
}

bool use_rows(const ConvDims& d) { return d.sw == 1 && d.C / d.G * d.KH * d.KW <= 32; }

// Prefetching the next image's rows pays when the streamed tensor comes from DRAM (a 25 MB
// output: 1.7x faster here) and costs up to ~15% when it is cache-resident; in training
// (other tensors in between) it was neutral-to-better from a few MB.
bool stream_from_memory(int64_t floats) { return floats * 4 > (int64_t{4} << 20); }

// An output of more than 16 MiB per thread is written with streaming stores (no read for
// ownership of each line) instead of prefetched and cached. Measured on this project's
// 2-vCPU Zen 4 VM (32 MiB L3), the 1 -> 32 forward, Loom against itself in one process:
// 1 thread, 256 images (25.7 MB) 1.51 -> 1.35 ms (1.08-1.13x, 1.13x with a memory-bound
// neighbour on the other core); 2 threads, 384 and 512 images 1.09x and 1.24x. Below the
// threshold cached stores win -- the output partly stays in L3 from call to call, while
// streamed lines all go to DRAM: 1 thread, 64 and 128 images 0.97x and 0.98x, 2 threads,
// 256 images 0.78x (28 GB/s, this VM's DRAM write rate, against 36 from L3). (On the Zen 5
// host of 2026-11-28 streaming stores were slower at every size: docs/performance.md.)
bool stream_past_cache(int64_t floats) { return floats * 4 > (int64_t{16} << 20) * num_threads(); }

// The row kernels' prefetch distance for image n: one image's output planes ahead, 0 when
// prefetching is off or n + 1 is not the caller's (n_end: one past its last image).
int64_t next_image_distance(const ConvDims& d, const Plan& pl, bool pf, int64_t n, int64_t n_end) {
  return pf && n + 1 < n_end ? d.O * pl.L : 0;
}

// wr[gi][tap][o]: the Og weights of one tap side by side, broadcast one at a time, in a
// thread-local buffer of the calling thread; packed again unless this thread already packed
// them for call `call` (0: always).
const float* pack_row_weights(const ConvDims& d, const Plan& pl, const float* w, uint64_t call = 0) {
  thread_local std::vector<float> w_buf;
  thread_local uint64_t packed_for = 0;
  float* wr = scratch(w_buf, static_cast<size_t>(d.G * pl.CKK * pl.Og));
  if (call != 0 && call == packed_for) return wr;
  for (int64_t gi = 0; gi < d.G; ++gi)
    for (int64_t t = 0; t < pl.CKK; ++t)
      for (int64_t o = 0; o < pl.Og; ++o) wr[(gi * pl.CKK + t) * pl.Og + o] = w[(gi * pl.Og + o) * pl.CKK + t];
  packed_for = call;
  return wr;
}

// What a task of a row-path call needs from its caller, which each task copies before it
// starts: its own lines, written once before the tasks start. Everything else a task reads
// -- plan, geometry, packed weights, image copies -- is its thread's own (row_layer,
// pack_row_weights with the call's id). Tasks that read the caller's plan, geometry and
// packed weights through references ran the 1 -> 32 forward at batch 64 on 2 threads in
// ~187 us in this VM's slow phases (~166 in others) where two threads each running one
// half of the batch through the serial path took ~164: lines the caller had written (its
// stack, its thread-local buffers, and whatever shares their cache lines) crossed between
// the cores all call long (docs/performance.md, eighth session).
struct alignas(64) RowJob {
  ConvDims d;
  const float *x, *w, *bias;
  float* y;
  uint64_t call;
  int64_t parts;
  bool pf, nt, relu;
};

void forward_rows(const ConvDims& d, const float* x, const float* w, float* y, const float* bias, bool relu) {
  const int64_t parts = forward_parts();
  // An output bound for memory is prefetched for writing one image ahead, or, far beyond
  // the caches on the "same" flat geometry (whole aligned vectors), streamed (stream_past_cache).
  const int64_t out_floats = d.N * d.O * d.OH * d.OW;
  const bool nt = stream_past_cache(out_floats) && RowGeom::same_applies(d);
  const RowJob job{d, x, w, bias, y, next_call_id(), parts, stream_from_memory(out_floats), nt, relu};
  if (d.N < parts) {
    // Fewer images than parts: each image's channel tiles are dealt out in chunks, never
    // its pixels. Two threads writing the two halves of the same output planes take the
    // lines from each other (one core's prefetcher pulls in the lines past its half, which
    // the other is writing): one image on 2 threads took 6.6-7.5 us by pixel halves, 4.5 us
    // by channel halves. A thread that takes the next chunk of an image keeps its copies.
    const int64_t tiles = piece_count(d.O / d.G, kRowJ), chunks = std::min(tiles, (parts + d.N - 1) / d.N);
    parallel_tasks(d.N * chunks, [&job, tiles, chunks](int64_t t) {
      const RowJob j = job;
      const RowLayer& rl = row_layer(j.d);
      const Plan& pl = rl.pl;
      const RowGeom& geo = rl.geo;
      const float* wr = pack_row_weights(j.d, pl, j.w, j.call);
      const int64_t n = t / chunks, c = t % chunks, nvec = static_cast<int64_t>(geo.rv.size());
      thread_local std::vector<float> xbuf;
      thread_local uint64_t copied_call = 0;  // the copies hold image copied_n of call copied_call
      thread_local int64_t copied_n = -1;
      float* xi = scratch(xbuf, static_cast<size_t>(geo.size));
      for (int64_t gi = 0; gi < j.d.G; ++gi) {
        if (j.d.G > 1 || copied_call != j.call || copied_n != n) geo.fill(j.d, pl, j.x, n, gi, xi);
        copied_call = j.call, copied_n = j.d.G == 1 ? n : -1;
        // (The tile call is written out here and below rather than shared through a lambda:
        // the shared version compiled the batch path 5-9% slower.)
        for (int64_t tile = piece_start(tiles, chunks, c); tile < piece_start(tiles, chunks, c + 1); ++tile) {
          const int64_t j0 = piece_start(pl.Og, tiles, tile), j1 = piece_start(pl.Og, tiles, tile + 1);
          even_pieces(nvec, kRowV, [&](int64_t a, int64_t b) {
            kRowTiles[j1 - j0 - 1][b - a - 1](pl.CKK, wr + gi * pl.CKK * pl.Og + j0, pl.Og, xi, geo.rv.data() + a,
                                              geo.taps.data(), j.y + (n * j.d.O + gi * pl.Og + j0) * pl.L, pl.L,
                                              j.bias ? j.bias + gi * pl.Og + j0 : nullptr, 0, j.relu);
          });
        }
      }
    });
    return;
  }
  // The N * nvec vectors of the batch cut into `parts` contiguous ranges.
  parallel_tasks(parts, [&job](int64_t p) {
    const RowJob j = job;
    const RowLayer& rl = row_layer(j.d);
    const Plan& pl = rl.pl;
    const RowGeom& geo = rl.geo;
    const float* wr = pack_row_weights(j.d, pl, j.w, j.call);
    const int64_t nvec = static_cast<int64_t>(geo.rv.size()), CKK = pl.CKK, Og = pl.Og, L = pl.L;
    thread_local std::vector<float> xbuf;
    float* xi = scratch(xbuf, static_cast<size_t>(geo.size));
    const int64_t n_end = part_image_end(j.d.N, nvec, j.parts, p);
    part_pieces(j.d.N, nvec, j.parts, p, [&](int64_t n, int64_t v0, int64_t v1) {
      const int64_t ahead = j.nt ? -1 : next_image_distance(j.d, pl, j.pf, n, n_end);
      for (int64_t gi = 0; gi < j.d.G; ++gi) {
        geo.fill(j.d, pl, j.x, n, gi, xi);
        float* yg = j.y + (n * j.d.O + gi * Og) * L;
        // Channel tiles outer: each writes its few output planes front to back (a handful of
        // store streams, which matters once y no longer fits in the caches).
        even_pieces(Og, kRowJ, [&](int64_t j0, int64_t j1) {
          even_pieces(v1 - v0, kRowV, [&](int64_t a2, int64_t b2) {
            kRowTiles[j1 - j0 - 1][b2 - a2 - 1](CKK, wr + gi * CKK * Og + j0, Og, xi, geo.rv.data() + v0 + a2,
                                                geo.taps.data(), yg + j0 * L, L,
                                                j.bias ? j.bias + gi * Og + j0 : nullptr, ahead, j.relu);
          });
        });
      }
    });
    if (j.nt) _mm_sfence();  // streaming stores are weakly ordered: drained before the task ends
  });
}

// The fused convolution + 2 x 2 max pooling on row vectors (row_pool_tile): layers with few
// taps and output rows of at most 32 pixels. Images are spread over the threads; each pooled
// row is computed from its two convolution rows and stored with its indices.
bool rows_pool_applies(const ConvDims& d) { return use_rows(d) && d.OH >= 2 && d.OW >= 2 && d.OW <= 32; }

// Zeroed floats after a padded image for row_pool_tile's second vectors of a row (up to
// column 31 + the kernel's reach, past the last row).
constexpr int64_t kRowPoolSlack = 64;

void forward_rows_pool2x2(const ConvDims& d, const Plan& pl, const float* x, const float* w, const float* bias,
                          bool relu, float* y, int32_t* idx) {
  const int64_t PH = d.OH / 2, PW = d.OW / 2, PL = PH * PW;
  const float* wr = pack_row_weights(d, pl, w);
  const __mmask16 keep = static_cast<__mmask16>((1u << PW) - 1);
  parallel_for(0, d.N, 1, [&](int64_t lo, int64_t hi) {
    thread_local std::vector<float> xbuf;
    float* xi = scratch(xbuf, static_cast<size_t>(pl.Cg * pl.plane + kRowPoolSlack));
    for (int64_t n = lo; n < hi; ++n)
      for (int64_t gi = 0; gi < d.G; ++gi) {
        pl.copy_padded(d, x, n, gi, xi, kRowPoolSlack);
        const int64_t at = (n * d.O + gi * pl.Og) * PL;
        for (int64_t ph = 0; ph < PH; ++ph) {
          const int64_t r0 = 2 * ph * d.sh * pl.Wp, r1 = (2 * ph + 1) * d.sh * pl.Wp;
          const RowVec rv[4] = {{r0, 0, 0}, {r0 + 16, 0, 0}, {r1, 0, 0}, {r1 + 16, 0, 0}};  // (masks unused)
          even_pieces(pl.Og, kPoolJ, [&](int64_t j0, int64_t j1) {
            kRowPoolTiles[j1 - j0 - 1](pl.CKK, wr + gi * pl.CKK * pl.Og + j0, pl.Og, xi, rv, pl.taps.data(),
                                       bias ? bias + gi * pl.Og + j0 : nullptr, 2 * ph * d.OW, d.OW, keep, relu,
                                       y + at + j0 * PL + ph * PW, idx + at + j0 * PL + ph * PW, PL);
          });
        }
      }
  });
}

void backward_weight_rows(const ConvDims& d, const Plan& pl, const float* x, const float* gy, float* gw) {
  const RowGeom& geo = row_layer(d).geo;  // (the caller's, read by every task: per-task lookups measured the same)
  const int64_t nvec = static_cast<int64_t>(geo.rv.size());
  const int64_t threads = num_threads(), gsize = d.G * pl.Og * pl.CKK;
  const int64_t jpieces = piece_count(pl.Og, kWgradJ);  // the channel tiles of even_pieces(Og, kWgradJ)
  // Images split over the parts, every part all the weights -- or, with fewer images than
  // threads, every part all the images and a range of output channels (whole weights, so
  // nothing to add up across parts): one image on 2 threads took 6 us on one thread while
  // the other waited.
  const bool by_channels = d.N < threads && jpieces > 1;
  const int64_t parts = by_channels ? std::min(threads, jpieces) : std::max<int64_t>(1, std::min(threads, d.N));
  // Per part: one 16-lane partial sum per weight in a buffer of the thread that runs it,
  // reduced across lanes there; only the totals, a float per weight, cross to the caller. (The
  // 16-lane sums used to live in the caller's buffer, so the worker's part moved ~600 lines
  // between the cores every call: the 1 -> 32 layer on 2 threads ran 164-171 -> 156-158 us at
  // batch 64 and 25-31 -> 23-24 us at batch 8 without that; 1 thread unchanged.)
  thread_local std::vector<float> part_buf;
  float* partial = scratch(part_buf, static_cast<size_t>((by_channels ? 1 : parts) * gsize));
  const bool pf = stream_from_memory(d.N * d.O * pl.L);
  parallel_tasks(parts, [&](int64_t p) {
    thread_local std::vector<float> xbuf, acc_buf;
    float* xi = scratch(xbuf, static_cast<size_t>(geo.size));
    float* acc = scratch(acc_buf, static_cast<size_t>(gsize * 16));
    const int64_t n_begin = by_channels ? 0 : d.N * p / parts, n_end = by_channels ? d.N : d.N * (p + 1) / parts;
    const int64_t jp_begin = by_channels ? piece_start(jpieces, parts, p) : 0,
                  jp_end = by_channels ? piece_start(jpieces, parts, p + 1) : jpieces;
    float* out = partial + (by_channels ? 0 : p * gsize);
    for (int64_t gi = 0; gi < d.G; ++gi) {
      // Output channels [j_begin, j_end) of group gi: this part's weights, `weights` slots
      // from (gi * Og + j_begin) * CKK on (the tiles' own order inside).
      const int64_t j_begin = piece_start(pl.Og, jpieces, jp_begin), j_end = piece_start(pl.Og, jpieces, jp_end);
      float* slots = acc + (gi * pl.Og + j_begin) * pl.CKK * 16;
      const int64_t weights = (j_end - j_begin) * pl.CKK;
      if (n_begin == n_end) std::memset(slots, 0, sizeof(float) * static_cast<size_t>(weights * 16));  // (N == 0)
      // Image by image: gy of one image is read front to back, its padded input stays in L1.
      for (int64_t n = n_begin; n < n_end; ++n) {
        geo.fill(d, pl, x, n, gi, xi);
        for (int64_t jp = jp_begin; jp < jp_end; ++jp) {
          const int64_t j0 = piece_start(pl.Og, jpieces, jp), j1 = piece_start(pl.Og, jpieces, jp + 1);
          even_pieces(pl.CKK, kWgradT, [&](int64_t t0, int64_t t1) {
            // Tile (j0.., t0..) keeps its (j1-j0) x (t1-t0) vectors contiguous at its own slot.
            float* slot = acc + ((gi * pl.Og + j0) * pl.CKK + t0 * (j1 - j0)) * 16;
            kWgradTiles[geo.flat][j1 - j0 - 1][t1 - t0 - 1](
                nvec, geo.rv.data(), gy + (n * d.O + gi * pl.Og + j0) * pl.L, pl.L, xi, geo.taps.data() + t0, slot,
                next_image_distance(d, pl, pf, n, n_end), n == n_begin);
          });
        }
      }
      const int64_t at = (gi * pl.Og + j_begin) * pl.CKK;
      for (int64_t i = 0; i < weights; ++i) out[at + i] = hsum(_mm512_loadu_ps(slots + i * 16));
    }
  });
  const int64_t sums = by_channels ? 1 : parts;
  for (int64_t gi = 0; gi < d.G; ++gi)
    even_pieces(pl.Og, kWgradJ, [&](int64_t j0, int64_t j1) {
      even_pieces(pl.CKK, kWgradT, [&](int64_t t0, int64_t t1) {
        const int64_t nj = j1 - j0, nt = t1 - t0;
        for (int64_t j = 0; j < nj; ++j)
          for (int64_t t = 0; t < nt; ++t) {
            float sum = 0.0f;  // parts in a fixed order: the result depends on the thread count only
            for (int64_t q = 0; q < sums; ++q)
              sum += partial[q * gsize + (gi * pl.Og + j0) * pl.CKK + t0 * nj + j * nt + t];
            gw[(gi * pl.Og + j0 + j) * pl.CKK + t0 + t] = sum;
          }
      });
    });
}

// Taps per block so that a block of packed weights (taps x 64 channels) stays in L1.
constexpr int64_t kTapBlock = 96;
// Pixels per block of the weight gradient's reduction (a 16 KiB slice of gy^T).
constexpr int64_t kPixBlock = 64;

}  // namespace

namespace {

// Backward-data as a forward convolution: the dims of the transformed problem. False when it
// does not apply (stride > 1, padding beyond the kernel).
bool flipped_dims(const ConvDims& d, ConvDims& t) {
  const int64_t eh = (d.KH - 1) * d.dh, ew = (d.KW - 1) * d.dw;
  if (d.sh != 1 || d.sw != 1 || eh < d.ph || ew < d.pw) return false;
  t = d;
  t.C = d.O, t.H = d.OH, t.W = d.OW;
  t.O = d.C, t.OH = d.H, t.OW = d.W;
  t.ph = eh - d.ph, t.pw = ew - d.pw;
  return true;
}

// Its kernel: w of problem d flipped and transposed, w'[c][o][kh][kw] = w[o][c][KH-1-kh][KW-1-kw]
// within each group, in a thread-local buffer of the calling thread.
const float* flipped_kernel(const ConvDims& d, const float* w) {
  const int64_t Cg = d.C / d.G, Og = d.O / d.G, KK = d.KH * d.KW;
  thread_local std::vector<float> wf_buf;
  float* wf = scratch(wf_buf, static_cast<size_t>(d.C * Og * KK));
  for (int64_t gi = 0; gi < d.G; ++gi)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t o = 0; o < Og; ++o)
        for (int64_t k = 0; k < KK; ++k)
          wf[((gi * Cg + c) * Og + o) * KK + k] = w[((gi * Og + o) * Cg + c) * KK + (KK - 1 - k)];
  return wf;
}

// The o-vector forward's packed weights wt[gi][tap][o] (o zero-padded to a multiple of 16)
// -- for Winograd problems the transformed weights U[xi][c][o] -- and bias bt[gi][o] (null
// without a bias), in a thread-local buffer of the calling thread.
struct PackedForward {
  const float* wt;  // null: every thread packs w_raw for itself (thread_weights)
  const float* bt;
  const float* w_raw = nullptr;
  uint64_t call = 0;  // (the call's id: a thread transforms w_raw once per call)
  const ConvDims* flip_of = nullptr;  // w_raw is the kernel of this backward-data problem (pack_forward)
  int64_t groups = 1;
};

// A Winograd forward with fewer images than threads splits each image by output channels
// (forward_vectors).
bool winograd_splits_images(const ConvDims& d, const Plan& pl) {
  return pl.wino && d.N < num_threads() && pl.Opad >= 32;
}

// Floats of the kernels' weights for G groups: Winograd's U[xi][c][o], or wt[gi][tap][o].
int64_t weight_floats(const Plan& pl, int64_t G) {
  return pl.wino ? pl.wino->positions() * pl.Cg * pl.Opad : G * pl.CKK * pl.Opad;
}

// The kernels' weights from w into dst: Winograd-transformed (output channels [o0, o1) only;
// o1 < 0: all), else wt[gi][tap][o] = w[gi * Og + o][tap], zero for o >= Og. flip_of: w is
// the kernel of the backward-data problem *flip_of, flipped here (flipped_kernel) or, for
// Winograd, as it is transformed.
void pack_weights(const Plan& pl, int64_t G, const float* w, const ConvDims* flip_of, float* dst, int64_t o0 = 0,
                  int64_t o1 = -1) {
  if (pl.wino) return winograd_pack_weights(*pl.wino, w, dst, flip_of != nullptr, o0, o1);
  if (flip_of) w = flipped_kernel(*flip_of, w);
  for (int64_t gi = 0; gi < G; ++gi)
    for (int64_t t = 0; t < pl.CKK; ++t) {
      float* row = dst + (gi * pl.CKK + t) * pl.Opad;
      for (int64_t o = 0; o < pl.Opad; ++o) row[o] = o < pl.Og ? w[(gi * pl.Og + o) * pl.CKK + t] : 0.0f;
    }
}

// On more than one thread every thread transforms the Winograd weights (or packs the o-vector
// weights) for itself, once per call in its first task: every tile reads all of them, and
// shared -- each thread transforming its share, then reading the others', or the caller's
// packing read by the others -- they crossed between the cores every call. In this VM's
// slow phases that cost ~100 us a call: the 32 -> 64 forward on 2 threads took 147-156 us
// for 2 images against 50-56 with per-thread weights, 4 images 181-188 -> 80-84, 16 images
// 372-390 -> 267-274, batch 64 1045-1246 -> 1000-1058 (docs/performance.md, eighth
// session). The split of images by tile rows (since replaced) showed it first (one image on
// 2 threads: forward 43-44 -> 33-34 us, backward-data 68-70 -> 50-57 us).
// flip_of: as pack_weights.
PackedForward pack_forward(const ConvDims& d, const Plan& pl, const float* w, const float* bias,
                           const ConvDims* flip_of = nullptr) {
  thread_local std::vector<float> wt_buf;
  const bool per_thread = num_threads() > 1 && !in_parallel_region();
  const int64_t wsize = per_thread ? 0 : weight_floats(pl, d.G);
  float* wt = scratch(wt_buf, static_cast<size_t>(wsize + d.G * pl.Opad));
  float* bt = bias ? wt + wsize : nullptr;
  if (bt)
    for (int64_t gi = 0; gi < d.G; ++gi)
      for (int64_t o = 0; o < pl.Opad; ++o) bt[gi * pl.Opad + o] = o < pl.Og ? bias[gi * pl.Og + o] : 0.0f;
  if (per_thread) return {nullptr, bt, w, next_call_id(), flip_of, d.G};
  pack_weights(pl, d.G, w, flip_of, wt);
  return {wt, bt};
}

// The weights the calling thread uses: pk.wt, or its own packing of pk.w_raw (for Winograd,
// output channels [o0, o1) only; o1 < 0: all), made on its first use in call pk.call. (The
// flip too, from the caller's kernel: the caller's flipped copy, written on its core every
// call, was read from every other core. The 32 -> 64 backward-data on 2 threads: 1 image
// 49-51 -> 37 us, 2 images 63 -> 51, 4 images 94 -> 82, 16 images 277-279 -> 267; with the
// flip folded into the transform's transpose, 1 image -> 34 us, 4 images -> 79.)
const float* thread_weights(const Plan& pl, const PackedForward& pk, int64_t o0 = 0, int64_t o1 = -1) {
  if (pk.wt) return pk.wt;
  thread_local std::vector<float> buf;
  thread_local uint64_t packed_for = 0;
  thread_local int64_t packed_o0 = 0, packed_o1 = 0;
  float* u = scratch(buf, static_cast<size_t>(weight_floats(pl, pk.groups)));
  if (packed_for != pk.call || packed_o0 != o0 || packed_o1 != o1) {
    pack_weights(pl, pk.groups, pk.w_raw, pk.flip_of, u, o0, o1);
    packed_for = pk.call, packed_o0 = o0, packed_o1 = o1;
  }
  return u;
}

// yt[pixel - l0][o] for output pixels [l0, l1) of group gi, from its padded image xi (the
// Winograd kernels compute whole images: [0, L) only).
void forward_pixels(const Plan& pl, const PackedForward& pk, int64_t gi, const float* xi, int64_t l0, int64_t l1,
                    float* yt, bool relu) {
  const float* wt = thread_weights(pl, pk);
  if (pl.wino) return winograd_forward_image(*pl.wino, wt, pk.bt, xi, yt, relu);
  const float* wg = wt + gi * pl.CKK * pl.Opad;
  for (int64_t ob = 0; ob < pl.Opad; ob += 64) {
    const int nv = static_cast<int>(std::min<int64_t>(4, (pl.Opad - ob) / 16));
    for (int64_t t0 = 0; t0 < pl.CKK; t0 += kTapBlock) {
      const int64_t t1 = std::min(pl.CKK, t0 + kTapBlock);
      tiles_over(nv, l1 - l0, t1 - t0, wg + t0 * pl.Opad + ob, pl.Opad, xi, pl.pix.data() + l0, pl.taps.data() + t0,
                 yt + ob, pl.Opad, t0 > 0, pk.bt ? pk.bt + gi * pl.Opad + ob : nullptr, relu && t1 == pl.CKK);
    }
  }
}

// The o-vector forward with the padded image of (n, gi) supplied by image(n, gi, buf).
// src: the input tensor whose image n image() reads (null when image() builds it otherwise).
template <typename Image>
void forward_vectors(const ConvDims& d, const Plan& pl, const PackedForward& pk, float* y, bool relu, Image image,
                     const float* src) {
  const bool pf = stream_from_memory(d.N * d.O * pl.L) || stream_from_memory(d.N * d.C * d.H * d.W);
  // Threads split the N * L pixels (whole images for Winograd: units of L pixels).
  const int64_t unit = pl.wino ? pl.L : 1;
  const int64_t parts = forward_parts();
  if (winograd_splits_images(d, pl)) {
    // Fewer images than threads: each image's output channels are dealt out in ranges of
    // whole vectors. A task transforms the whole input and its channels of the weights for
    // itself, computes its channels and transposes them into y. Against a split by tile rows,
    // where every thread transformed all of the weights: one image of the 32 -> 64 layer on 2
    // threads, forward 31.5-32 -> 26 us, backward-data 34 -> 30.5 (oneDNN: 29 and 29).
    const int64_t vecs = pl.Opad / 16, chunks = std::min(vecs, (num_threads() + d.N - 1) / d.N);
    parallel_tasks(d.N * chunks, [&](int64_t t) {
      const int64_t n = t / chunks, k = t % chunks;
      const int64_t o0 = 16 * (vecs * k / chunks), o1 = 16 * (vecs * (k + 1) / chunks);
      thread_local std::vector<float> xbuf, ybuf;
      float* yt = scratch(ybuf, static_cast<size_t>(pl.L * pl.Opad));
      winograd_forward_image(*pl.wino, thread_weights(pl, pk, o0, o1), pk.bt, image(n, 0, xbuf), yt, relu, o0, o1);
      transpose_f32_avx512(yt + o0, pl.Opad, pl.L, std::min(o1, pl.Og) - o0, y + (n * d.O + o0) * pl.L, pl.L);
    });
    return;
  }
  for_pixel_ranges(d.N, pl.L / unit, parts, [&](int64_t p, int64_t n, int64_t u0, int64_t u1) {
    const int64_t l0 = u0 * unit, l1 = u1 * unit;
    thread_local std::vector<float> xbuf, ybuf;
    float* yt = scratch(ybuf, static_cast<size_t>((l1 - l0) * pl.Opad));  // yT[pixel][o]
    if (pf && l0 == 0 && n + 1 < part_image_end(d.N, pl.L / unit, parts, p)) {
      // Tensors bound for memory: the next image's input and output, fetched into L2 while
      // this one computes (its output for writing: no read-for-ownership stall later). The
      // 32 -> 64 layer at batch 256 on 1 thread: forward 0-8%, backward-data 2-11% faster
      // (4 A/B pairs); on 2 threads within noise.
      if (src)
        for (int64_t i = 0; i < d.C * d.H * d.W; i += 16) __builtin_prefetch(src + (n + 1) * d.C * d.H * d.W + i, 0, 2);
      for (int64_t i = 0; i < d.O * pl.L; i += 16) __builtin_prefetch(y + (n + 1) * d.O * pl.L + i, 1, 2);
    }
    // The image of the last piece this thread ran in this call, kept when the next piece is of
    // the same image and group (only calls with an id: those on more than one thread). Made
    // for every piece, one image of the 32 -> 64 layer (Winograd off) on 2 threads copied its
    // 32 padded planes 16 times: 63-64 -> 53 us; 4 images' backward-data 176-178 -> 157-159.
    thread_local uint64_t img_call = 0;
    thread_local int64_t img_n = -1, img_g = -1;
    thread_local const float* img = nullptr;
    for (int64_t gi = 0; gi < d.G; ++gi) {
      if (pk.call == 0 || img_call != pk.call || img_n != n || img_g != gi)
        img = image(n, gi, xbuf), img_call = pk.call, img_n = n, img_g = gi;
      forward_pixels(pl, pk, gi, img, l0, l1, yt, relu);
      transpose_f32_avx512(yt, pl.Opad, l1 - l0, pl.Og, y + (n * d.O + gi * pl.Og) * pl.L + l0, pl.L);
    }
  });
}

// 2 x 2 / stride-2 max pooling of yt[pixel][o] (an OH x OW image, channels in lanes):
// every window is four rows of vectors, so the pooling is vertical maxima, no shuffles.
// ypt[q][o] and ipt[q][o] (the winner's pixel, h * OW + w) for the PH x PW windows; same
// order of candidates and NaN rule as max_pool2d (the first maximum wins, NaN propagates).
void pool_vectors(const float* yt, int64_t ld, int64_t OW, int64_t PH, int64_t PW, bool relu, float* ypt,
                  int32_t* ipt) {
  const int64_t nv = ld / 16;
  for (int64_t ph = 0; ph < PH; ++ph)
    for (int64_t pw = 0; pw < PW; ++pw) {
      const int64_t q = ph * PW + pw, p = 2 * ph * OW + 2 * pw;
      const int64_t at[3] = {p + 1, p + OW, p + OW + 1};
      for (int64_t v = 0; v < nv; ++v) {
        __m512 best = _mm512_loadu_ps(yt + p * ld + 16 * v);
        __m512i arg = _mm512_set1_epi32(static_cast<int32_t>(p));
        for (int k = 0; k < 3; ++k) {
          const __m512 c = _mm512_loadu_ps(yt + at[k] * ld + 16 * v);
          const __mmask16 take = simd512::pool_replaces(c, best);
          best = _mm512_mask_mov_ps(best, take, c);
          arg = _mm512_mask_mov_epi32(arg, take, _mm512_set1_epi32(static_cast<int32_t>(at[k])));
        }
        _mm512_storeu_ps(ypt + q * ld + 16 * v, relu ? _mm512_max_ps(best, _mm512_setzero_ps()) : best);
        _mm512_storeu_si512(ipt + q * ld + 16 * v, arg);
      }
    }
}

// The adjoint of pool_vectors: gyt[pixel][o] (an OH x OW image) gets gt[q][o] at the pixel
// it[q][o], zero elsewhere. False when a valid lane's (o < valid) index is not inside its
// own window (the caller then takes the general path, which also reports bad indices).
bool unpool_vectors(const float* gt, const int32_t* it, int64_t ld, int64_t valid, int64_t OH, int64_t OW, int64_t PH,
                    int64_t PW, float* gyt) {
  if (OH % 2 || OW % 2) std::memset(gyt, 0, sizeof(float) * static_cast<size_t>(OH * OW * ld));
  const int64_t nv = ld / 16;
  for (int64_t ph = 0; ph < PH; ++ph)
    for (int64_t pw = 0; pw < PW; ++pw) {
      const int64_t q = ph * PW + pw, p = 2 * ph * OW + 2 * pw;
      const int64_t at[4] = {p, p + 1, p + OW, p + OW + 1};
      for (int64_t v = 0; v < nv; ++v) {
        const __m512 g = _mm512_loadu_ps(gt + q * ld + 16 * v);
        const __m512i i = _mm512_loadu_si512(it + q * ld + 16 * v);
        const int64_t lanes = std::clamp<int64_t>(valid - 16 * v, 0, 16);
        const __mmask16 need = static_cast<__mmask16>((1u << lanes) - 1);
        __mmask16 hit = 0;
        for (int k = 0; k < 4; ++k) {
          const __mmask16 m = _mm512_cmpeq_epi32_mask(i, _mm512_set1_epi32(static_cast<int32_t>(at[k])));
          hit = _kor_mask16(hit, m);
          _mm512_storeu_ps(gyt + at[k] * ld + 16 * v, _mm512_maskz_mov_ps(m, g));
        }
        if ((hit & need) != need) return false;
      }
    }
  return true;
}

// The calling thread's buffers for the fused kernels: one image's transposed output tile
// (L x Opad) and a pooled tile's values and indices (PL x Opad).
struct PoolTiles {
  float *full, *pooled;
  int32_t* index;
  PoolTiles(const Plan& pl, int64_t PL) {
    thread_local std::vector<float> full_buf, pooled_buf;
    thread_local std::vector<int32_t> index_buf;
    full = scratch(full_buf, static_cast<size_t>(pl.L * pl.Opad));
    pooled = scratch(pooled_buf, static_cast<size_t>(PL * pl.Opad));
    index = scratch(index_buf, static_cast<size_t>(PL * pl.Opad));
  }
};

// Use the fused pooling kernels: a 2 x 2 output at least, one image's transposed output
// tile within 1 MiB (it is kept whole per thread), and enough images to give every thread
// a few (they split the batch by images). Layers with few taps take them too: the row path
// avoids the o-vector path's transposes, but here only the pooled quarter is transposed
// (the cnn's 1 -> 32 layer: forward 0.57 -> 0.45 ms, weight gradient 0.46 -> 0.38 ms).
bool fused_pool_applies(const ConvDims& d, const Plan& pl) {
  return d.OH >= 2 && d.OW >= 2 && d.N >= 2 * num_threads() && pl.L * pl.Opad * 4 <= (int64_t{1} << 20);
}

// The forward convolution; flip_of: w is the kernel of backward-data problem *flip_of (see
// pack_forward).
void forward(const ConvDims& d, const float* x, const float* w, float* y, const float* bias, bool relu,
             const ConvDims* flip_of) {
  if (d.N == 0 || d.OH * d.OW == 0) return;
  if (use_rows(d)) return forward_rows(d, x, flip_of ? flipped_kernel(*flip_of, w) : w, y, bias, relu);
  const Plan pl(d);
  const PackedForward pk = pack_forward(d, pl, w, bias, flip_of);
  forward_vectors(d, pl, pk, y, relu,
                  [&](int64_t n, int64_t gi, std::vector<float>& buf) { return pl.image(d, x, n, gi, buf); }, x);
}

}  // namespace

void conv_direct_forward_avx512(const ConvDims& d, const float* x, const float* w, float* y, const float* bias,
                                bool relu) {
  forward(d, x, w, y, bias, relu, nullptr);
}

bool conv_direct_forward_pool2x2_avx512(const ConvDims& d, const float* x, const float* w, const float* bias,
                                        bool relu, float* y, int32_t* idx) {
  const Plan pl(d, !rows_pool_applies(d));
  if (rows_pool_applies(d)) {
    forward_rows_pool2x2(d, pl, x, w, bias, relu, y, idx);
    return true;
  }
  if (!fused_pool_applies(d, pl)) return false;
  const int64_t PH = d.OH / 2, PW = d.OW / 2, PL = PH * PW;
  const PackedForward pk = pack_forward(d, pl, w, bias);
  parallel_for(0, d.N, 1, [&](int64_t lo, int64_t hi) {
    thread_local std::vector<float> xbuf;
    const PoolTiles tiles(pl, PL);
    float *yt = tiles.full, *ypt = tiles.pooled;
    int32_t* ipt = tiles.index;
    for (int64_t n = lo; n < hi; ++n)
      for (int64_t gi = 0; gi < d.G; ++gi) {
        forward_pixels(pl, pk, gi, pl.image(d, x, n, gi, xbuf), 0, pl.L, yt, false);
        pool_vectors(yt, pl.Opad, d.OW, PH, PW, relu, ypt, ipt);
        const int64_t at = (n * d.O + gi * pl.Og) * PL;
        transpose_f32_avx512(ypt, pl.Opad, PL, pl.Og, y + at, PL);
        // (the transpose moves bits: it carries the i32 indices unchanged)
        transpose_f32_avx512(reinterpret_cast<const float*>(ipt), pl.Opad, PL, pl.Og,
                             reinterpret_cast<float*>(idx + at), PL);
      }
  });
  return true;
}

namespace {

// Parts of a weight gradient over `units` (images for Winograd and the pooled kernels,
// pixels otherwise): two per thread from 4 units per thread (a 2-thread 32 -> 64 weight
// gradient at batch 64 ran 1.55 -> 1.33 ms and 1.65 -> 1.54 ms in two A/B runs against one
// per thread), one per thread below that, never more than there are units. Each part's
// partial (295 KB for the 32 -> 64 Winograd layer) is zeroed and summed whether it got work or
// not: 2 threads on that layer, 1 image 108 -> 64 us (1 thread: 65), 2 images 122 -> 76-90, 4
// images 158 -> 120. Fixed for a given thread count and batch, so results do not depend on
// scheduling.
int64_t wgrad_part_count(int64_t units) {
  const int64_t t = num_threads();
  return std::max<int64_t>(1, std::min<int64_t>(units, t > 1 && units >= 4 * t ? 2 * t : t));
}

// Partial weight gradients gW^T [gi][tap][o], one per part, summed in part order at the end
// (wgrad_finish): the result depends on the thread count and batch only, not on scheduling.
// Each part zeroes its own partial on the thread that fills it (zero_part), and the sum runs
// on all threads: done by the caller alone, zeroing and summing 4 x 295 KB of Winograd
// partials took half of a 4-image weight gradient of the 32 -> 64 layer on 2 threads.
float* wgrad_parts(int64_t parts, int64_t part_size) {
  thread_local std::vector<float> part_buf;
  return scratch(part_buf, static_cast<size_t>(parts * part_size));
}

void zero_part(float* parts_ptr, int64_t p, int64_t part_size) {
  std::memset(parts_ptr + p * part_size, 0, sizeof(float) * static_cast<size_t>(part_size));
}

// Floats of one group's partial weight gradient: gW^T[tap][o], or the Winograd
// accumulator [xi][c][o].
int64_t wgrad_group_size(const Plan& pl) { return pl.wino ? pl.wino->acc_floats() : pl.CKK * pl.Opad; }

// acc[tap][o] += sum over pixels [l0, l0 + np) of gyt[pixel - l0][o] * xi[pixel + tap]
// (Winograd: whole images only, l0 = 0 and np = L).
void wgrad_pixels(const Plan& pl, const float* xi, const float* gyt, int64_t l0, int64_t np, float* acc) {
  if (pl.wino) return winograd_wgrad_image(*pl.wino, xi, gyt, acc);
  for (int64_t r0 = 0; r0 < np; r0 += kPixBlock) {
    const int64_t r1 = std::min(np, r0 + kPixBlock);
    for (int64_t ob = 0; ob < pl.Opad; ob += 64) {
      const int nv = static_cast<int>(std::min<int64_t>(4, (pl.Opad - ob) / 16));
      tiles_over(nv, pl.CKK, r1 - r0, gyt + r0 * pl.Opad + ob, pl.Opad, xi, pl.taps.data(), pl.pix.data() + l0 + r0,
                 acc + ob, pl.Opad, true);
    }
  }
}

void wgrad_finish(const ConvDims& d, const Plan& pl, float* parts_ptr, int64_t parts, int64_t part_size, float* gw) {
  if (parts > 1) {
    auto sum = [&](int64_t lo, int64_t hi) {
      for (int64_t p = 1; p < parts; ++p) {  // part order for every element
        const float* src = parts_ptr + p * part_size;
        for (int64_t i = lo; i < hi; ++i) parts_ptr[i] += src[i];
      }
    };
    // On all threads from 3 parts (a 4-image Winograd gradient on 2 threads 131-150 -> 122-132
    // us, batch 64 1278 -> 1250 us); 2 parts are one pass the caller does faster alone (78-92
    // against 90-106 us for 2 images).
    if (parts > 2)
      parallel_for(0, part_size, 4096, sum);
    else
      sum(0, part_size);
  }
  if (pl.wino) return winograd_wgrad_finish(*pl.wino, parts_ptr, gw);
  for (int64_t gi = 0; gi < d.G; ++gi)
    transpose_f32_avx512(parts_ptr + gi * pl.CKK * pl.Opad, pl.Opad, pl.CKK, pl.Og, gw + gi * pl.Og * pl.CKK, pl.CKK);
}

// One image's Winograd weight gradient on several threads: each takes a range of output
// channels (whole vectors) -- transforms the input for itself, transposes and transforms its
// channels of the output gradient, accumulates and finishes its rows of gw -- so no partial
// sums are zeroed, summed or passed between threads. (Split by images, one image ran on one
// thread: the 32 -> 64 layer on 2 threads took 48 us, as on 1; split by channels, 30.)
void winograd_wgrad_by_channels(const ConvDims& d, const Plan& pl, const float* x, const float* gy, float* gw) {
  const WinogradGeom& g = *pl.wino;
  const int64_t vecs = pl.Opad / 16, chunks = std::min<int64_t>(vecs, num_threads());
  parallel_tasks(chunks, [&](int64_t k) {
    const int64_t o0 = 16 * (vecs * k / chunks), o1 = 16 * (vecs * (k + 1) / chunks);
    thread_local std::vector<float> xbuf, gbuf, abuf;
    float* acc = scratch(abuf, static_cast<size_t>(g.acc_floats()));
    for (int64_t xi = 0; xi < g.positions(); ++xi)
      for (int64_t c = 0; c < g.C; ++c)
        std::memset(acc + xi * g.acc_stride() + c * g.Opad + o0, 0, sizeof(float) * static_cast<size_t>(o1 - o0));
    float* gyt = scratch(gbuf, static_cast<size_t>(pl.L * pl.Opad));  // columns [o0, o1) of gy^T[pixel][o]
    transpose_f32_avx512(gy + o0 * pl.L, pl.L, std::min(o1, pl.Og) - o0, pl.L, gyt + o0, pl.Opad, /*full_rows=*/true);
    winograd_wgrad_image(g, pl.image(d, x, 0, 0, xbuf), gyt, acc, o0, o1);
    winograd_wgrad_finish(g, acc, gw, o0, o1);
  });
}

}  // namespace

void conv_direct_backward_weight_avx512(const ConvDims& d, const float* x, const float* gy, float* gw) {
  const Plan pl(d, !use_rows(d));
  if (use_rows(d)) return backward_weight_rows(d, pl, x, gy, gw);
  if (pl.wino && d.N == 1 && pl.Opad >= 32 && num_threads() > 1 && !in_parallel_region())
    return winograd_wgrad_by_channels(d, pl, x, gy, gw);
  // Parts split the N * L pixels (whole images for Winograd: units of L pixels).
  const int64_t unit = pl.wino ? pl.L : 1;
  const int64_t parts = wgrad_part_count(unit > 0 ? d.N * (pl.L / unit) : 0), gsize = wgrad_group_size(pl),
                part_size = d.G * gsize;
  float* parts_ptr = wgrad_parts(parts, part_size);
  if (pl.L > 0 && d.N > 0) {
    const int64_t Lu = pl.L / unit;
    for_pixel_ranges(d.N, Lu, parts, [&](int64_t p, int64_t n, int64_t u0, int64_t u1) {
      if (n * Lu + u0 == d.N * Lu * p / parts) zero_part(parts_ptr, p, part_size);  // the part's first piece
      thread_local std::vector<float> xbuf, gbuf;
      const int64_t l0 = u0 * unit, np = (u1 - u0) * unit;
      float* gyt = scratch(gbuf, static_cast<size_t>(np * pl.Opad));  // gy^T[pixel][o], zero past Og
      for (int64_t gi = 0; gi < d.G; ++gi) {
        transpose_f32_avx512(gy + (n * d.O + gi * pl.Og) * pl.L + l0, pl.L, pl.Og, np, gyt, pl.Opad, /*full_rows=*/true);
        wgrad_pixels(pl, pl.image(d, x, n, gi, xbuf), gyt, l0, np, parts_ptr + p * part_size + gi * gsize);
      }
    });
  } else {
    zero_part(parts_ptr, 0, part_size);  // (one part: nothing to sum, a zero gradient)
  }
  wgrad_finish(d, pl, parts_ptr, parts, part_size, gw);
}

bool conv_direct_backward_weight_pool2x2_avx512(const ConvDims& d, const float* x, const float* g, const int32_t* idx,
                                                float* gw) {
  const Plan pl(d);
  if (!fused_pool_applies(d, pl)) return false;
  const int64_t PH = d.OH / 2, PW = d.OW / 2, PL = PH * PW;
  const int64_t parts = wgrad_part_count(d.N), gsize = wgrad_group_size(pl), part_size = d.G * gsize;
  float* parts_ptr = wgrad_parts(parts, part_size);
  std::atomic<bool> bad{false};
  parallel_for(0, parts, 1, [&](int64_t lo, int64_t hi) {
    thread_local std::vector<float> xbuf;
    const PoolTiles tiles(pl, PL);
    float *gyt = tiles.full, *gt = tiles.pooled;
    int32_t* it = tiles.index;
    for (int64_t p = lo; p < hi; ++p) {
      zero_part(parts_ptr, p, part_size);
      for (int64_t n = d.N * p / parts; n < d.N * (p + 1) / parts; ++n)
        for (int64_t gi = 0; gi < d.G; ++gi) {
          // The pooled gradient and indices transposed (channels in lanes), then spread over
          // the windows: the output gradient's transpose, without the output gradient.
          const int64_t at = (n * d.O + gi * pl.Og) * PL;
          transpose_f32_avx512(g + at, PL, pl.Og, PL, gt, pl.Opad, /*full_rows=*/true);
          transpose_f32_avx512(reinterpret_cast<const float*>(idx + at), PL, pl.Og, PL, reinterpret_cast<float*>(it),
                               pl.Opad, /*full_rows=*/true);
          if (!unpool_vectors(gt, it, pl.Opad, pl.Og, d.OH, d.OW, PH, PW, gyt)) {
            bad = true;
            return;
          }
          wgrad_pixels(pl, pl.image(d, x, n, gi, xbuf), gyt, 0, pl.L, parts_ptr + p * part_size + gi * gsize);
        }
    }
  });
  if (bad) return false;
  wgrad_finish(d, pl, parts_ptr, parts, part_size, gw);
  return true;
}

bool conv_direct_backward_input_avx512(const ConvDims& d, const float* gy, const float* w, float* gx) {
  ConvDims t;
  if (!flipped_dims(d, t)) return false;
  forward(t, gy, w, gx, nullptr, false, &d);
  return true;
}

bool conv_direct_backward_input_pool2x2_avx512(const ConvDims& d, const float* g, const int32_t* idx, const float* w,
                                               float* gx) {
  if (!fused_pool_applies(d, Plan(d))) return false;
  ConvDims t;
  if (!flipped_dims(d, t)) return false;
  const Plan pl(t);
  const int64_t PH = d.OH / 2, PW = d.OW / 2, PL = PH * PW;
  const PackedForward pk = pack_forward(t, pl, w, nullptr, &d);
  std::atomic<bool> bad{false};
  // The transformed problem's input is the output gradient: each padded plane is written
  // straight from the pooled gradient and indices.
  forward_vectors(t, pl, pk, gx, false, [&](int64_t n, int64_t gi, std::vector<float>& buf) -> const float* {
    float* p = scratch(buf, static_cast<size_t>(pl.Cg * pl.plane));
    // (unpadded planes -- Winograd -- are written whole below)
    if (pl.pad) std::memset(p, 0, sizeof(float) * static_cast<size_t>(pl.Cg * pl.plane));
    for (int64_t c = 0; c < pl.Cg; ++c) {
      const int64_t at = (n * d.O + gi * pl.Cg + c) * PL;
      if (!max_pool2x2_backward_plane_avx512(g + at, idx + at, true, d.OH, d.OW, PH, PW,
                                             p + c * pl.plane + pl.origin(t), pl.Wp))
        bad = true;
    }
    return p;
  }, /*src=*/nullptr);
  return !bad;
}

#pragma GCC diagnostic pop

}  // namespace loom::cpu::detail
