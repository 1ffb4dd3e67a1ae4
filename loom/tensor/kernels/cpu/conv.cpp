#include "loom/tensor/kernels/cpu/conv.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "loom/base/cpu.h"
#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/conv_direct.h"
#include "loom/tensor/kernels/cpu/gemm.h"

namespace loom::cpu {

namespace {
// LOOM_CONV_WINOGRAD=0 starts with Winograd off (A/B runs of whole programs).
bool winograd_default() {
  const char* env = std::getenv("LOOM_CONV_WINOGRAD");
  return !(env && (std::strcmp(env, "0") == 0 || std::strcmp(env, "off") == 0));
}
std::atomic<bool> g_winograd{winograd_default()};
}  // namespace

void set_conv_winograd(bool enabled) { g_winograd = enabled; }
bool conv_winograd_enabled() { return g_winograd; }

int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                      const char* op) {
  LOOM_CHECK(stride >= 1 && dilation >= 1 && pad >= 0 && k >= 1,
             "{}: stride {}, dilation {}, padding {}, kernel {} must be positive (padding >= 0)",
             op, stride, dilation, pad, k);
  int64_t eff = dilation * (k - 1) + 1;
  LOOM_CHECK(in + 2 * pad >= eff, "{}: kernel of extent {} does not fit input of size {} with padding {}",
             op, eff, in, pad);
  return (in + 2 * pad - eff) / stride + 1;
}

namespace {

struct Geom {
  int64_t N, C, H, W, O, KH, KW, OH, OW, G, Cg, Og, CKK, L;
};

Geom geometry(const Shape& xs, const Shape& ws, const Conv2dParams& p) {
  Geom g;
  g.N = xs[0], g.C = xs[1], g.H = xs[2], g.W = xs[3];
  g.O = ws[0], g.KH = ws[2], g.KW = ws[3];
  g.G = p.groups;
  g.Cg = g.C / g.G, g.Og = g.O / g.G;
  g.OH = conv_out_size(g.H, g.KH, p.stride_h, p.pad_h, p.dilation_h, "conv2d");
  g.OW = conv_out_size(g.W, g.KW, p.stride_w, p.pad_w, p.dilation_w, "conv2d");
  g.CKK = g.Cg * g.KH * g.KW;
  g.L = g.OH * g.OW;
  return g;
}

// col[(c*KH + kh)*KW + kw, oh*OW + ow] = x[c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
// Unit stride and dilation (the common 3x3 "same" case): copy each plane once into a
// zero-padded buffer, after which every patch row is a plain shifted copy with no bounds
// checks -- the general version below spends most of its time on border logic.
template <typename T>
void im2col_unit_stride(const T* x, const Geom& g, const Conv2dParams& p, T* col, int64_t ld) {
  const int64_t Hp = g.H + 2 * p.pad_h, Wp = g.W + 2 * p.pad_w;
  thread_local std::vector<T> padded;
  padded.assign(static_cast<size_t>(Hp * Wp), T(0));
  for (int64_t c = 0; c < g.Cg; ++c) {
    const T* plane = x + c * g.H * g.W;
    for (int64_t h = 0; h < g.H; ++h) {
      T* dst = padded.data() + (h + p.pad_h) * Wp + p.pad_w;
      const T* src = plane + h * g.W;
      for (int64_t w = 0; w < g.W; ++w) dst[w] = src[w];
    }
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        T* row = col + ((c * g.KH + kh) * g.KW + kw) * ld;
        const T* src = padded.data() + kh * Wp + kw;
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          T* r = row + oh * g.OW;
          const T* s = src + oh * Wp;
          for (int64_t ow = 0; ow < g.OW; ++ow) r[ow] = s[ow];
        }
      }
  }
}

template <typename T>
void im2col(const T* x, const Geom& g, const Conv2dParams& p, T* col, int64_t ld) {
  if (p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 && p.dilation_w == 1) {
    return im2col_unit_stride(x, g, p, col, ld);
  }
  for (int64_t c = 0; c < g.Cg; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        T* row = col + ((c * g.KH + kh) * g.KW + kw) * ld;
        const T* plane = x + c * g.H * g.W;
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dilation_h;
          T* r = row + oh * g.OW;
          if (ih < 0 || ih >= g.H) {
            std::memset(r, 0, sizeof(T) * g.OW);
            continue;
          }
          const T* src = plane + ih * g.W;
          int64_t iw0 = -p.pad_w + kw * p.dilation_w;
          if (p.stride_w == 1) {
            // Contiguous run with zero borders. Runs are short (a feature-map row), so an
            // inline loop beats a memcpy call per run.
            const int64_t lo = std::min(g.OW, std::max<int64_t>(0, -iw0));
            const int64_t hi = std::max(lo, std::min<int64_t>(g.OW, g.W - iw0));
            for (int64_t ow = 0; ow < lo; ++ow) r[ow] = T(0);
            const T* s = src + iw0;
            for (int64_t ow = lo; ow < hi; ++ow) r[ow] = s[ow];
            for (int64_t ow = hi; ow < g.OW; ++ow) r[ow] = T(0);
          } else {
            for (int64_t ow = 0; ow < g.OW; ++ow) {
              int64_t iw = iw0 + ow * p.stride_w;
              r[ow] = (iw >= 0 && iw < g.W) ? src[iw] : T(0);
            }
          }
        }
      }
}

// Adjoint of im2col_unit_stride: accumulate into a zero-padded plane, copy the interior.
template <typename T>
void col2im_unit_stride(const T* col, const Geom& g, const Conv2dParams& p, T* x, int64_t ld) {
  const int64_t Hp = g.H + 2 * p.pad_h, Wp = g.W + 2 * p.pad_w;
  thread_local std::vector<T> padded;
  for (int64_t c = 0; c < g.Cg; ++c) {
    padded.assign(static_cast<size_t>(Hp * Wp), T(0));
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const T* row = col + ((c * g.KH + kh) * g.KW + kw) * ld;
        T* dst = padded.data() + kh * Wp + kw;
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          const T* r = row + oh * g.OW;
          T* d = dst + oh * Wp;
          for (int64_t ow = 0; ow < g.OW; ++ow) d[ow] += r[ow];
        }
      }
    T* plane = x + c * g.H * g.W;
    for (int64_t h = 0; h < g.H; ++h) {
      const T* src = padded.data() + (h + p.pad_h) * Wp + p.pad_w;
      for (int64_t w = 0; w < g.W; ++w) plane[h * g.W + w] = src[w];
    }
  }
}

// Adjoint of im2col: x[c, ih, iw] += col[...]. x must be zeroed by the caller.
template <typename T>
void col2im(const T* col, const Geom& g, const Conv2dParams& p, T* x, int64_t ld) {
  if (p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 && p.dilation_w == 1) {
    return col2im_unit_stride(col, g, p, x, ld);  // overwrites x
  }
  for (int64_t c = 0; c < g.Cg; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const T* row = col + ((c * g.KH + kh) * g.KW + kw) * ld;
        T* plane = x + c * g.H * g.W;
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dilation_h;
          if (ih < 0 || ih >= g.H) continue;
          const T* r = row + oh * g.OW;
          T* dst = plane + ih * g.W;
          int64_t iw0 = -p.pad_w + kw * p.dilation_w;
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            int64_t iw = iw0 + ow * p.stride_w;
            if (iw >= 0 && iw < g.W) dst[iw] += r[ow];
          }
        }
      }
}

// The implicit-GEMM kernels (f32, AVX-512) take the place of im2col + GEMM when present.
// Their vectors run over the produced channels (16 per register), so a pass producing
// fewer than 8 channels per group (a 1-channel layer's input gradient) stays on im2col.
bool use_direct(DType dtype, int64_t channels_out) {
  return dtype == DType::kF32 && channels_out >= 8 && active_isa() >= Isa::kAvx512;
}

detail::ConvDims dims(const Geom& g, const Conv2dParams& p) {
  return {g.N, g.C, g.H, g.W, g.O, g.KH, g.KW, g.OH, g.OW, g.G,
          p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w};
}

// C[M,N] = op(A) * op(B) + beta * C, with op = transpose when ta/tb.
template <typename T>
void gemm_t(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
            T beta, T* C, int64_t ldc, bool parallel) {
  gemm<T>(M, N, K, A, ta ? 1 : lda, ta ? lda : 1, B, tb ? 1 : ldb, tb ? ldb : 1, beta, C, ldc, parallel);
}

// Images are processed in chunks of `nb` side by side, so each GEMM has N = nb * OH * OW
// columns (a few thousand) instead of one image's OH * OW: small feature maps (14 x 14,
// 28 x 28) would otherwise leave the GEMM dominated by packing and edge tiles. Chunks go to
// threads, each with its own buffers and a single-threaded GEMM; when there are fewer
// chunks than threads, the chunks run one by one with threaded GEMMs.
struct Chunking {
  int64_t nb, chunks;
  bool parallel_gemm;
};

// Chunks of about `nb` of N images; when there are at least as many chunks as threads,
// their count is made a multiple of the thread count (equal work per thread).
Chunking balanced_chunks(int64_t N, int64_t nb, int64_t threads) {
  nb = std::max<int64_t>(1, std::min(nb, (N + threads - 1) / threads));
  int64_t chunks = (N + nb - 1) / nb;
  if (chunks >= threads) {
    chunks = (chunks + threads - 1) / threads * threads;
    nb = std::max<int64_t>(1, (N + chunks - 1) / chunks);
    chunks = (N + nb - 1) / nb;
  }
  return {nb, chunks, chunks < threads};
}

Chunking chunking(const Geom& g) {
  // Few patch rows (CKK, e.g. 9 for a 1-channel 3x3 layer) make the GEMM store-bound
  // whatever its width: one image per chunk then lets it write straight into the output.
  const int64_t target_cols = g.CKK < 64 ? 1 : 2048;
  return balanced_chunks(g.N, target_cols / std::max<int64_t>(g.L, 1), num_threads());
}

template <typename F>
void for_each_chunk(const Geom& g, const Chunking& ch, F fn) {
  auto body = [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) fn(c * ch.nb, std::min(g.N, (c + 1) * ch.nb), ch.parallel_gemm);
  };
  if (ch.parallel_gemm) {
    body(0, ch.chunks);
  } else {
    parallel_for(0, ch.chunks, 1, body);
  }
}

// Thread-local scratch that only grows.
template <typename T>
T* buffer(int slot, size_t n) {
  thread_local std::vector<T> bufs[3];
  if (bufs[slot].size() < n) bufs[slot].resize(n);
  return bufs[slot].data();
}

// Unfolds images [n0, n0 + nb), group gi, side by side into col [CKK, nb * L].
template <typename T>
void im2col_chunk(const T* px, const Geom& g, const Conv2dParams& p, int64_t n0, int64_t nb, int64_t gi, T* col) {
  for (int64_t j = 0; j < nb; ++j) im2col(px + ((n0 + j) * g.C + gi * g.Cg) * g.H * g.W, g, p, col + j * g.L, nb * g.L);
}

template <typename T>
void forward_impl(const Tensor& x, const Tensor& w, const Conv2dParams& p, Tensor& y, const T* bias, bool relu) {
  Geom g = geometry(x.shape(), w.shape(), p);
  const T* px = x.data<T>();
  const T* pw = w.data<T>();
  T* py = y.data<T>();
  if constexpr (std::is_same_v<T, float>) {
    if (use_direct(x.dtype(), g.Og)) return detail::conv_direct_forward_avx512(dims(g, p), px, pw, py, bias, relu);
  }
  Chunking ch = chunking(g);
  for_each_chunk(g, ch, [&](int64_t n0, int64_t n1, bool par) {
    const int64_t nb = n1 - n0, cols = nb * g.L;
    T* col = buffer<T>(0, static_cast<size_t>(g.CKK * cols));
    T* out = nb == 1 ? nullptr : buffer<T>(1, static_cast<size_t>(g.Og * cols));
    for (int64_t gi = 0; gi < g.G; ++gi) {
      im2col_chunk(px, g, p, n0, nb, gi, col);
      T* dst = nb == 1 ? py + (n0 * g.O + gi * g.Og) * g.L : out;  // one image: its output block directly
      gemm_t<T>(false, false, g.Og, cols, g.CKK, pw + gi * g.Og * g.CKK, g.CKK, col, cols, T(0), dst, cols, par);
      if (nb > 1)
        for (int64_t j = 0; j < nb; ++j)
        for (int64_t o = 0; o < g.Og; ++o)
          std::memcpy(py + ((n0 + j) * g.O + gi * g.Og + o) * g.L, out + o * cols + j * g.L, sizeof(T) * g.L);
    }
    if (bias || relu)
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t o = 0; o < g.O; ++o) {
          T* plane = py + (n * g.O + o) * g.L;
          const T b = bias ? bias[o] : T(0);
          for (int64_t l = 0; l < g.L; ++l) {
            const T v = plane[l] + b;
            plane[l] = relu ? (v > T(0) ? v : T(0)) : v;
          }
        }
  });
}

// Copies dY of images [n0, n0 + nb), group gi, into a [Og, nb * L] matrix.
template <typename T>
void gather_dy(const T* pg, const Geom& g, int64_t n0, int64_t nb, int64_t gi, T* dst) {
  const int64_t cols = nb * g.L;
  for (int64_t j = 0; j < nb; ++j)
    for (int64_t o = 0; o < g.Og; ++o)
      std::memcpy(dst + o * cols + j * g.L, pg + ((n0 + j) * g.O + gi * g.Og + o) * g.L, sizeof(T) * g.L);
}

template <typename T>
void backward_input_impl(const Tensor& gy, const Tensor& w, const Conv2dParams& p, Tensor& gx) {
  Geom g = geometry(gx.shape(), w.shape(), p);
  const T* pg = gy.data<T>();
  const T* pw = w.data<T>();
  T* px = gx.data<T>();
  if constexpr (std::is_same_v<T, float>) {
    if (use_direct(gy.dtype(), g.Cg) && detail::conv_direct_backward_input_avx512(dims(g, p), pg, pw, px)) return;
  }
  Chunking ch = chunking(g);
  for_each_chunk(g, ch, [&](int64_t n0, int64_t n1, bool par) {
    const int64_t nb = n1 - n0, cols = nb * g.L;
    T* col = buffer<T>(0, static_cast<size_t>(g.CKK * cols));
    T* dy = buffer<T>(1, static_cast<size_t>(g.Og * cols));
    for (int64_t gi = 0; gi < g.G; ++gi) {
      gather_dy(pg, g, n0, nb, gi, dy);
      // dcol (CKK x cols) = W^T (CKK x Og) * dY (Og x cols), then scattered back per image.
      gemm_t<T>(true, false, g.CKK, cols, g.Og, pw + gi * g.Og * g.CKK, g.CKK, dy, cols, T(0), col, cols, par);
      for (int64_t j = 0; j < nb; ++j) {
        T* xout = px + ((n0 + j) * g.C + gi * g.Cg) * g.H * g.W;
        std::memset(xout, 0, sizeof(T) * g.Cg * g.H * g.W);
        col2im(col + j * g.L, g, p, xout, cols);
      }
    }
  });
}

template <typename T>
void backward_weight_impl(const Tensor& x, const Tensor& gy, const Conv2dParams& p, Tensor& gw) {
  Geom g = geometry(x.shape(), gw.shape(), p);
  const T* px = x.data<T>();
  const T* pg = gy.data<T>();
  T* pw = gw.data<T>();
  if constexpr (std::is_same_v<T, float>) {
    if (use_direct(x.dtype(), g.Og)) return detail::conv_direct_backward_weight_avx512(dims(g, p), px, pg, pw);
  }
  const int64_t wsize = g.O * g.CKK;
  Chunking ch = chunking(g);
  // With few rows of patches (CKK < one register tile of columns), computing dW^T keeps
  // the micro-kernel's wide dimension busy: [CKK x Og] = col * dY^T.
  const bool transposed = g.CKK < 32 && g.Og > g.CKK;
  // Few outputs (a 1-channel layer's 9 x Og weights): vectorized dot products, no packing.
  const bool small_nt = std::is_same_v<T, float> && g.CKK < 64 && g.Og * g.CKK <= 4096;
  // Each chunk adds into the partial sum of its slot; slots are added in a fixed order at
  // the end, so the result does not depend on which thread ran which chunk.
  const int64_t slots = ch.parallel_gemm ? 1 : std::min<int64_t>(ch.chunks, num_threads());
  std::vector<std::vector<T>> partial(static_cast<size_t>(slots), std::vector<T>(static_cast<size_t>(wsize), T(0)));
  auto run_chunk = [&](int64_t n0, int64_t n1, bool par, T* acc) {
    const int64_t nb = n1 - n0, cols = nb * g.L;
    T* col = buffer<T>(0, static_cast<size_t>(g.CKK * cols));
    T* dy = buffer<T>(1, static_cast<size_t>(g.Og * cols));
    for (int64_t gi = 0; gi < g.G; ++gi) {
      im2col_chunk(px, g, p, n0, nb, gi, col);
      gather_dy(pg, g, n0, nb, gi, dy);
      T* dst = acc + gi * g.Og * g.CKK;
      if constexpr (std::is_same_v<T, float>) {
        if (small_nt) {
          // dW (Og x CKK) += dY (Og x cols) . col (CKK x cols)^T, dot products along cols.
          sgemm_nt_small(g.Og, g.CKK, cols, dy, cols, col, cols, 1.0f, dst, g.CKK);
          continue;
        }
      }
      if (transposed) {
        gemm_t<T>(false, true, g.CKK, g.Og, cols, col, cols, dy, cols, T(1), dst, g.Og, par);
      } else {
        gemm_t<T>(false, true, g.Og, g.CKK, cols, dy, cols, col, cols, T(1), dst, g.CKK, par);
      }
    }
  };
  if (ch.parallel_gemm) {
    for (int64_t c = 0; c < ch.chunks; ++c) run_chunk(c * ch.nb, std::min(g.N, (c + 1) * ch.nb), true, partial[0].data());
  } else {
    parallel_for(0, slots, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t s = lo; s < hi; ++s)
        for (int64_t c = ch.chunks * s / slots; c < ch.chunks * (s + 1) / slots; ++c)
          run_chunk(c * ch.nb, std::min(g.N, (c + 1) * ch.nb), false, partial[s].data());
    });
  }
  std::memset(pw, 0, sizeof(T) * wsize);
  for (int64_t s = 0; s < slots; ++s) {
    const T* src = partial[s].data();
    if (transposed && !small_nt) {
      for (int64_t gi = 0; gi < g.G; ++gi)
        for (int64_t k = 0; k < g.CKK; ++k)
          for (int64_t o = 0; o < g.Og; ++o)
            pw[gi * g.Og * g.CKK + o * g.CKK + k] += src[gi * g.Og * g.CKK + k * g.Og + o];
    } else {
      for (int64_t i = 0; i < wsize; ++i) pw[i] += src[i];
    }
  }
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Conv2dParams& p, Tensor& y, const Tensor& bias,
                    bool relu) {
  LOOM_DISPATCH_FLOAT(x.dtype(), "conv2d", [&] {
    forward_impl<scalar_t>(x, w, p, y, bias.defined() ? bias.data<scalar_t>() : nullptr, relu);
  });
}

void conv2d_backward_input(const Tensor& gy, const Tensor& w, const Conv2dParams& p, Tensor& gx) {
  LOOM_DISPATCH_FLOAT(gy.dtype(), "conv2d_backward_input", [&] { backward_input_impl<scalar_t>(gy, w, p, gx); });
}

void conv2d_backward_weight(const Tensor& x, const Tensor& gy, const Conv2dParams& p, Tensor& gw) {
  LOOM_DISPATCH_FLOAT(x.dtype(), "conv2d_backward_weight", [&] { backward_weight_impl<scalar_t>(x, gy, p, gw); });
}

// ---- convolution + max pooling, image chunk by image chunk ----------------------------------

namespace {

// Conv output kept per chunk: small enough that it is still in L2 when the pooling (or, in
// the backward passes, the convolution) reads it back.
constexpr int64_t kPoolChunkBytes = 256 << 10;

// Images [n0, n1) of a contiguous NCHW tensor, as a view.
Tensor batch_view(const Tensor& t, int64_t n0, int64_t n1) {
  Shape s = t.shape();
  s[0] = n1 - n0;
  return t.as_strided(s, t.strides(), t.offset() + n0 * t.strides()[0]);
}

struct ConvPoolGeom {
  Shape conv;  // [N, O, OH, OW] before pooling
  Chunking ch;
};

ConvPoolGeom conv_pool_geometry(const Shape& xs, const Shape& ws, const Conv2dParams& p, DType dtype) {
  Geom g = geometry(xs, ws, p);
  const int64_t per_image = std::max<int64_t>(1, g.O * g.L * static_cast<int64_t>(dtype_size(dtype)));
  return {{g.N, g.O, g.OH, g.OW}, balanced_chunks(g.N, kPoolChunkBytes / per_image, num_threads())};
}

// fn(chunk, n0, n1, scratch) for every chunk; scratch is a per-thread [nb, O, OH, OW]
// buffer. Chunks are spread over the threads (the kernels inside then run on the calling
// thread), unless there are fewer chunks than threads: then chunk by chunk, each kernel
// using all threads.
template <typename F>
void for_conv_pool_chunks(const ConvPoolGeom& cg, DType dtype, F fn) {
  const int64_t N = cg.conv[0], nb = cg.ch.nb;
  auto body = [&](int64_t lo, int64_t hi) {
    Shape s = cg.conv;
    s[0] = nb;
    Tensor scratch = Tensor::empty(s, dtype);
    for (int64_t c = lo; c < hi; ++c) {
      const int64_t n0 = c * nb, n1 = std::min(N, n0 + nb);
      fn(c, n0, n1, n1 - n0 == nb ? scratch : batch_view(scratch, 0, n1 - n0));
    }
  };
  if (cg.ch.parallel_gemm) {
    body(0, cg.ch.chunks);
  } else {
    parallel_for(0, cg.ch.chunks, 1, body);
  }
}

// The adjoints' fallback: fn(chunk, n0, n1, dz) with dz = max_pool2d_backward of the chunk's
// pooled gradient, in the per-thread buffer.
template <typename F>
void for_pooled_gradient_chunks(const ConvPoolGeom& cg, const Tensor& g, const Tensor& idx, const Pool2dParams& pp,
                                F fn) {
  for_conv_pool_chunks(cg, g.dtype(), [&](int64_t c, int64_t n0, int64_t n1, Tensor dz) {
    max_pool2d_backward(batch_view(g, n0, n1), batch_view(idx, n0, n1), pp, dz);
    fn(c, n0, n1, dz);
  });
}

// The fused AVX-512 kernels (conv_direct.h) take f32, i32 indices and 2 x 2 / stride-2
// windows without padding.
bool fused_pool2x2(const Tensor& t, const Tensor& idx, const Pool2dParams& pp) {
  return t.dtype() == DType::kF32 && idx.dtype() == DType::kI32 && active_isa() >= Isa::kAvx512 &&
         pp.kernel_h == 2 && pp.kernel_w == 2 && pp.stride_h == 2 && pp.stride_w == 2 && pp.pad_h == 0 &&
         pp.pad_w == 0;
}

}  // namespace

void conv2d_max_pool2d(const Tensor& x, const Tensor& w, const Conv2dParams& cp, const Tensor& bias,
                       const Pool2dParams& pp, bool relu, Tensor& y, Tensor& idx) {
  if (fused_pool2x2(x, idx, pp) &&
      detail::conv_direct_forward_pool2x2_avx512(dims(geometry(x.shape(), w.shape(), cp), cp), x.data<float>(),
                                                 w.data<float>(), bias.defined() ? bias.data<float>() : nullptr, relu,
                                                 y.data<float>(), idx.data<int32_t>()))
    return;
  const ConvPoolGeom cg = conv_pool_geometry(x.shape(), w.shape(), cp, x.dtype());
  for_conv_pool_chunks(cg, x.dtype(), [&](int64_t, int64_t n0, int64_t n1, Tensor z) {
    conv2d_forward(batch_view(x, n0, n1), w, cp, z, bias);
    Tensor yv = batch_view(y, n0, n1), iv = batch_view(idx, n0, n1);
    max_pool2d(z, pp, yv, iv, relu);
  });
}

void conv2d_pooled_backward_input(const Tensor& g, const Tensor& idx, const Pool2dParams& pp, const Tensor& w,
                                  const Conv2dParams& cp, Tensor& gx) {
  if (fused_pool2x2(g, idx, pp) &&
      detail::conv_direct_backward_input_pool2x2_avx512(dims(geometry(gx.shape(), w.shape(), cp), cp), g.data<float>(),
                                                        idx.data<int32_t>(), w.data<float>(), gx.data<float>()))
    return;
  const ConvPoolGeom cg = conv_pool_geometry(gx.shape(), w.shape(), cp, g.dtype());
  for_pooled_gradient_chunks(cg, g, idx, pp, [&](int64_t, int64_t n0, int64_t n1, const Tensor& dz) {
    Tensor gxv = batch_view(gx, n0, n1);
    conv2d_backward_input(dz, w, cp, gxv);
  });
}

void conv2d_pooled_backward_weight(const Tensor& x, const Tensor& g, const Tensor& idx, const Pool2dParams& pp,
                                   const Conv2dParams& cp, Tensor& gw) {
  if (fused_pool2x2(x, idx, pp) &&
      detail::conv_direct_backward_weight_pool2x2_avx512(dims(geometry(x.shape(), gw.shape(), cp), cp), x.data<float>(),
                                                         g.data<float>(), idx.data<int32_t>(), gw.data<float>()))
    return;
  const ConvPoolGeom cg = conv_pool_geometry(x.shape(), gw.shape(), cp, x.dtype());
  // One weight gradient per chunk, added in chunk order: the result does not depend on
  // which thread ran which chunk.
  Shape ps = gw.shape();
  ps.insert(ps.begin(), std::max<int64_t>(1, cg.ch.chunks));
  Tensor parts = Tensor::zeros(ps, gw.dtype());
  for_pooled_gradient_chunks(cg, g, idx, pp, [&](int64_t c, int64_t n0, int64_t n1, const Tensor& dz) {
    Tensor part = parts.as_strided(gw.shape(), gw.strides(), c * gw.numel());
    conv2d_backward_weight(batch_view(x, n0, n1), dz, cp, part);
  });
  LOOM_DISPATCH_FLOAT(gw.dtype(), "conv2d_pooled_backward_weight", [&] {
    scalar_t* out = gw.data<scalar_t>();
    const scalar_t* src = parts.data<scalar_t>();
    const int64_t n = gw.numel();
    std::copy(src, src + n, out);
    for (int64_t c = 1; c < cg.ch.chunks; ++c)
      for (int64_t i = 0; i < n; ++i) out[i] += src[c * n + i];
  });
}

}  // namespace loom::cpu
