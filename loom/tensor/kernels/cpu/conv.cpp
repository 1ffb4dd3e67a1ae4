#include "loom/tensor/kernels/cpu/conv.h"

#include <cstring>
#include <vector>

#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/gemm.h"

namespace loom::cpu {

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

bool is_pointwise(const Geom& g, const Conv2dParams& p) {
  return g.KH == 1 && g.KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
         p.pad_w == 0;
}

// col[(c*KH + kh)*KW + kw, oh*OW + ow] = x[c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
template <typename T>
void im2col(const T* x, const Geom& g, const Conv2dParams& p, T* col) {
  for (int64_t c = 0; c < g.Cg; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        T* row = col + ((c * g.KH + kh) * g.KW + kw) * g.L;
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
            // Contiguous run with zero borders.
            int64_t lo = std::max<int64_t>(0, -iw0), hi = std::min<int64_t>(g.OW, g.W - iw0);
            for (int64_t ow = 0; ow < std::min(lo, g.OW); ++ow) r[ow] = T(0);
            if (hi > lo) std::memcpy(r + lo, src + iw0 + lo, sizeof(T) * (hi - lo));
            for (int64_t ow = std::max(hi, lo); ow < g.OW; ++ow) r[ow] = T(0);
          } else {
            for (int64_t ow = 0; ow < g.OW; ++ow) {
              int64_t iw = iw0 + ow * p.stride_w;
              r[ow] = (iw >= 0 && iw < g.W) ? src[iw] : T(0);
            }
          }
        }
      }
}

// Adjoint of im2col: x[c, ih, iw] += col[...]. x must be zeroed by the caller.
template <typename T>
void col2im(const T* col, const Geom& g, const Conv2dParams& p, T* x) {
  for (int64_t c = 0; c < g.Cg; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const T* row = col + ((c * g.KH + kh) * g.KW + kw) * g.L;
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

// C[M,N] = op(A) * op(B) + beta * C, with op = transpose when ta/tb.
template <typename T>
void gemm_t(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
            T beta, T* C, int64_t ldc, bool parallel) {
  gemm<T>(M, N, K, A, ta ? 1 : lda, ta ? lda : 1, B, tb ? 1 : ldb, tb ? ldb : 1, beta, C, ldc, parallel);
}

// Runs fn(n, col_buffer, parallel_gemm) for every image: images over threads when the
// batch can keep the pool busy, else one image at a time with threaded GEMMs.
template <typename T, typename F>
void for_each_image(int64_t N, int64_t col_elems, F fn) {
  const int threads = num_threads();
  if (N >= threads && threads > 1) {
    parallel_for(0, N, 1, [&](int64_t lo, int64_t hi) {
      std::vector<T> col(static_cast<size_t>(col_elems));
      for (int64_t n = lo; n < hi; ++n) fn(n, col.data(), false);
    });
  } else {
    std::vector<T> col(static_cast<size_t>(col_elems));
    for (int64_t n = 0; n < N; ++n) fn(n, col.data(), true);
  }
}

template <typename T>
void forward_impl(const Tensor& x, const Tensor& w, const Conv2dParams& p, Tensor& y) {
  Geom g = geometry(x.shape(), w.shape(), p);
  const T* px = x.data<T>();
  const T* pw = w.data<T>();
  T* py = y.data<T>();
  const bool pointwise = is_pointwise(g, p);
  for_each_image<T>(g.N, pointwise ? 0 : g.CKK * g.L, [&](int64_t n, T* col, bool par) {
    for (int64_t gi = 0; gi < g.G; ++gi) {
      const T* xin = px + (n * g.C + gi * g.Cg) * g.H * g.W;
      const T* b = xin;
      if (!pointwise) {
        im2col(xin, g, p, col);
        b = col;
      }
      gemm_t<T>(false, false, g.Og, g.L, g.CKK, pw + gi * g.Og * g.CKK, g.CKK, b, g.L, T(0),
              py + (n * g.O + gi * g.Og) * g.L, g.L, par);
    }
  });
}

template <typename T>
void backward_input_impl(const Tensor& gy, const Tensor& w, const Conv2dParams& p, Tensor& gx) {
  Geom g = geometry(gx.shape(), w.shape(), p);
  const T* pg = gy.data<T>();
  const T* pw = w.data<T>();
  T* px = gx.data<T>();
  const bool pointwise = is_pointwise(g, p);
  for_each_image<T>(g.N, pointwise ? 0 : g.CKK * g.L, [&](int64_t n, T* col, bool par) {
    for (int64_t gi = 0; gi < g.G; ++gi) {
      T* xout = px + (n * g.C + gi * g.Cg) * g.H * g.W;
      const T* gyn = pg + (n * g.O + gi * g.Og) * g.L;
      // col = W^T (CKK x Og) * gy (Og x L)
      T* dst = pointwise ? xout : col;
      gemm_t<T>(true, false, g.CKK, g.L, g.Og, pw + gi * g.Og * g.CKK, g.CKK, gyn, g.L, T(0), dst,
              g.L, par);
      if (!pointwise) {
        std::memset(xout, 0, sizeof(T) * g.Cg * g.H * g.W);
        col2im(col, g, p, xout);
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
  const bool pointwise = is_pointwise(g, p);
  const int64_t wsize = g.O * g.CKK;
  const int threads = num_threads();
  auto accumulate = [&](int64_t n, T* col, T* dst, bool par) {
    for (int64_t gi = 0; gi < g.G; ++gi) {
      const T* xin = px + (n * g.C + gi * g.Cg) * g.H * g.W;
      const T* b = xin;
      if (!pointwise) {
        im2col(xin, g, p, col);
        b = col;
      }
      // dW[g] (Og x CKK) += gy (Og x L) * col^T (L x CKK)
      gemm_t<T>(false, true, g.Og, g.CKK, g.L, pg + (n * g.O + gi * g.Og) * g.L, g.L, b, g.L, T(1),
              dst + gi * g.Og * g.CKK, g.CKK, par);
    }
  };
  std::memset(pw, 0, sizeof(T) * wsize);
  if (g.N >= threads && threads > 1) {
    // Each thread sums its images into a private copy of dW; the copies are added at the end
    // in a fixed order, so the result does not depend on scheduling.
    std::vector<std::vector<T>> partial(static_cast<size_t>(threads));
    parallel_for(0, threads, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        partial[t].assign(static_cast<size_t>(wsize), T(0));
        std::vector<T> col(pointwise ? 0 : static_cast<size_t>(g.CKK * g.L));
        for (int64_t n = g.N * t / threads; n < g.N * (t + 1) / threads; ++n)
          accumulate(n, col.data(), partial[t].data(), false);
      }
    });
    for (int t = 0; t < threads; ++t)
      for (int64_t i = 0; i < wsize; ++i) pw[i] += partial[t][i];
  } else {
    std::vector<T> col(pointwise ? 0 : static_cast<size_t>(g.CKK * g.L));
    for (int64_t n = 0; n < g.N; ++n) accumulate(n, col.data(), pw, true);
  }
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Conv2dParams& p, Tensor& y) {
  LOOM_DISPATCH_FLOAT(x.dtype(), "conv2d", [&] { forward_impl<scalar_t>(x, w, p, y); });
}

void conv2d_backward_input(const Tensor& gy, const Tensor& w, const Conv2dParams& p, Tensor& gx) {
  LOOM_DISPATCH_FLOAT(gy.dtype(), "conv2d_backward_input", [&] { backward_input_impl<scalar_t>(gy, w, p, gx); });
}

void conv2d_backward_weight(const Tensor& x, const Tensor& gy, const Conv2dParams& p, Tensor& gw) {
  LOOM_DISPATCH_FLOAT(x.dtype(), "conv2d_backward_weight", [&] { backward_weight_impl<scalar_t>(x, gy, p, gw); });
}

}  // namespace loom::cpu
