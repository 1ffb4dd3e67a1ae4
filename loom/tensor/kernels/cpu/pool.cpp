// Max and average pooling over NCHW planes; each (n, c) plane is independent work.
#include <bit>
#include <limits>
#include <type_traits>

#include "loom/base/cpu.h"
#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/conv.h"
#include "loom/tensor/kernels/cpu/pool_avx512.h"

namespace loom::cpu {
namespace {

// m all-ones -> a, m zero -> b, without a branch.
template <typename T>
inline T select_bits(int64_t m, T a, T b) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  const Bits mb = static_cast<Bits>(m);
  return std::bit_cast<T>(static_cast<Bits>((std::bit_cast<Bits>(a) & mb) | (std::bit_cast<Bits>(b) & ~mb)));
}

struct PoolGeom {
  int64_t planes, H, W, OH, OW;
};

PoolGeom pool_geometry(const Shape& xs, const Pool2dParams& p, const char* op) {
  LOOM_CHECK(p.pad_h * 2 <= p.kernel_h && p.pad_w * 2 <= p.kernel_w,
             "{}: padding ({}, {}) must be at most half the kernel ({}, {})", op, p.pad_h,
             p.pad_w, p.kernel_h, p.kernel_w);
  PoolGeom g;
  g.planes = xs[0] * xs[1];
  g.H = xs[2], g.W = xs[3];
  g.OH = conv_out_size(g.H, p.kernel_h, p.stride_h, p.pad_h, 1, op);
  g.OW = conv_out_size(g.W, p.kernel_w, p.stride_w, p.pad_w, 1, op);
  return g;
}

// A whole 2x2 plane by the vector kernel (f32 only); false when it does not apply.
template <typename I>
inline bool pool2x2_plane_fast(const float* in, const PoolGeom& g, float* y, I* idx, bool relu) {
  detail::max_pool2x2_plane_avx512(in, g.W, g.OH, g.OW, y, idx, sizeof(I) == 4, relu);
  return true;
}
template <typename I>
inline bool pool2x2_plane_fast(const double*, const PoolGeom&, double*, I*, bool) { return false; }

template <typename I>
inline bool pool2x2_backward_fast(const float* g, const I* idx, const PoolGeom& pg, float* gx) {
  return detail::max_pool2x2_backward_plane_avx512(g, idx, sizeof(I) == 4, pg.H, pg.W, pg.OH, pg.OW, gx, pg.W);
}
template <typename I>
inline bool pool2x2_backward_fast(const double*, const I*, const PoolGeom&, double*) { return false; }

// Runs fn with index_t = the indices' type (i64, or i32 as conv2d_max_pool2d stores them).
template <typename F>
void dispatch_index(const Tensor& idx, const char* op, F fn) {
  if (idx.dtype() == DType::kI64) return fn(int64_t{});
  LOOM_CHECK(idx.dtype() == DType::kI32, "{}: indices must be i64 or i32, got {}", op, dtype_name(idx.dtype()));
  fn(int32_t{});
}

}  // namespace

void max_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& y, Tensor& idx, bool relu) {
  PoolGeom g = pool_geometry(x.shape(), p, "max_pool2d");
  if (idx.dtype() == DType::kI32)
    LOOM_CHECK(g.H * g.W <= (int64_t{1} << 31), "max_pool2d: i32 indices cannot address a {}x{} plane", g.H, g.W);
  dispatch_index(idx, "max_pool2d", [&](auto index_tag) {
  using index_t = decltype(index_tag);
  index_t* pi = idx.data<index_t>();
  LOOM_DISPATCH_FLOAT(x.dtype(), "max_pool2d", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    const bool k2 = p.kernel_h == 2 && p.kernel_w == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 0 &&
                    p.pad_w == 0;
    const bool use_avx512 = active_isa() >= Isa::kAvx512 && g.H * g.W < (int64_t{1} << 31);
    // One plane; true when the relu was applied too (the vector kernel does it as it stores).
    auto plane = [&](int64_t pl) -> bool {
        const scalar_t* in = px + pl * g.H * g.W;
        if (k2 && use_avx512 && pool2x2_plane_fast(in, g, py + pl * g.OH * g.OW, pi + pl * g.OH * g.OW, relu))
          return true;
        if (k2) {
          // The common 2x2/2 window: no bounds checks, first maximum wins, NaN propagates.
          for (int64_t oh = 0; oh < g.OH; ++oh) {
            const scalar_t* r0 = in + 2 * oh * g.W;
            const scalar_t* r1 = r0 + g.W;
            scalar_t* yo = py + (pl * g.OH + oh) * g.OW;
            index_t* io = pi + (pl * g.OH + oh) * g.OW;
            for (int64_t ow = 0; ow < g.OW; ++ow) {
              const int64_t c = 2 * ow;
              // Branch-free selects: on real activations the winner is random, and a
              // mispredicted branch per comparison cost more than the loads.
              const int64_t base = 2 * oh * g.W + c;
              scalar_t best = r0[c];
              int64_t arg = base;
              auto take = [&](scalar_t v, int64_t at) {
                // Integer masks force selects (the compiler turns ternaries back into jumps).
                const int64_t m = -static_cast<int64_t>(((v > best) | (v != v)) & (best == best));
                best = select_bits(m, v, best);
                arg = (at & m) | (arg & ~m);
              };
              take(r0[c + 1], base + 1);
              take(r1[c], base + g.W);
              take(r1[c + 1], base + g.W + 1);
              yo[ow] = best;
              io[ow] = static_cast<index_t>(arg);
            }
          }
          return false;
        }
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            scalar_t best = -std::numeric_limits<scalar_t>::infinity();
            int64_t arg = -1;
            for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
              int64_t ih = oh * p.stride_h - p.pad_h + kh;
              if (ih < 0 || ih >= g.H) continue;
              for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
                int64_t iw = ow * p.stride_w - p.pad_w + kw;
                if (iw < 0 || iw >= g.W) continue;
                scalar_t v = in[ih * g.W + iw];
                if (arg < 0 || v > best || v != v) {
                  best = v;
                  arg = ih * g.W + iw;
                  if (v != v) break;
                }
              }
            }
            int64_t o = (pl * g.OH + oh) * g.OW + ow;
            py[o] = best;
            pi[o] = static_cast<index_t>(arg);
          }
        return false;
    };
    parallel_for(0, g.planes, 8, [&](int64_t lo, int64_t hi) {
      for (int64_t pl = lo; pl < hi; ++pl) {
        if (!plane(pl) && relu) {  // relu of the window's maximum, while the plane's outputs are in cache
          scalar_t* yo = py + pl * g.OH * g.OW;
          for (int64_t i = 0; i < g.OH * g.OW; ++i) yo[i] = yo[i] > scalar_t(0) ? yo[i] : scalar_t(0);
        }
      }
    });
  });
  });
}

void max_pool2d_backward(const Tensor& g, const Tensor& idx, const Pool2dParams& p, Tensor& gx) {
  PoolGeom pg = pool_geometry(gx.shape(), p, "max_pool2d_backward");
  const int64_t plane_in = pg.H * pg.W, plane_out = pg.OH * pg.OW;
  dispatch_index(idx, "max_pool2d_backward", [&](auto index_tag) {
  using index_t = decltype(index_tag);
  const index_t* pi = idx.data<index_t>();
  LOOM_DISPATCH_FLOAT(g.dtype(), "max_pool2d_backward", [&] {
    const scalar_t* pgr = g.data<scalar_t>();
    scalar_t* po = gx.data<scalar_t>();
    const bool fast = p.kernel_h == 2 && p.kernel_w == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 0 &&
                      p.pad_w == 0 && active_isa() >= Isa::kAvx512 && plane_in < (int64_t{1} << 31);
    parallel_for(0, pg.planes, 8, [&](int64_t lo, int64_t hi) {
      for (int64_t pl = lo; pl < hi; ++pl) {
        const scalar_t* gp = pgr + pl * plane_out;
        const index_t* ip = pi + pl * plane_out;
        scalar_t* out = po + pl * plane_in;
        if (fast && pool2x2_backward_fast(gp, ip, pg, out)) continue;
        // General windows (they may overlap): zero the plane, then add at each index.
        std::fill(out, out + plane_in, scalar_t(0));
        for (int64_t k = 0; k < plane_out; ++k) {
          LOOM_CHECK(ip[k] >= 0 && ip[k] < plane_in, "max_pool2d_backward: index {} is outside a {}x{} plane", ip[k],
                     pg.H, pg.W);
          out[ip[k]] += gp[k];
        }
      }
    });
  });
  });
}

void avg_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& y) {
  PoolGeom g = pool_geometry(x.shape(), p, "avg_pool2d");
  LOOM_DISPATCH_FLOAT(x.dtype(), "avg_pool2d", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    const scalar_t inv = scalar_t(1) / static_cast<scalar_t>(p.kernel_h * p.kernel_w);
    parallel_for(0, g.planes, 8, [&](int64_t lo, int64_t hi) {
      for (int64_t pl = lo; pl < hi; ++pl) {
        const scalar_t* in = px + pl * g.H * g.W;
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            scalar_t s = 0;
            for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
              int64_t ih = oh * p.stride_h - p.pad_h + kh;
              if (ih < 0 || ih >= g.H) continue;
              for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
                int64_t iw = ow * p.stride_w - p.pad_w + kw;
                if (iw >= 0 && iw < g.W) s += in[ih * g.W + iw];
              }
            }
            py[(pl * g.OH + oh) * g.OW + ow] = s * inv;
          }
      }
    });
  });
}

void avg_pool2d_backward(const Tensor& gy, const Pool2dParams& p, Tensor& gx) {
  PoolGeom g = pool_geometry(gx.shape(), p, "avg_pool2d_backward");
  LOOM_DISPATCH_FLOAT(gy.dtype(), "avg_pool2d_backward", [&] {
    const scalar_t* pg = gy.data<scalar_t>();
    scalar_t* px = gx.data<scalar_t>();
    const scalar_t inv = scalar_t(1) / static_cast<scalar_t>(p.kernel_h * p.kernel_w);
    parallel_for(0, g.planes, 8, [&](int64_t lo, int64_t hi) {
      for (int64_t pl = lo; pl < hi; ++pl) {
        scalar_t* out = px + pl * g.H * g.W;
        for (int64_t i = 0; i < g.H * g.W; ++i) out[i] = 0;
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            scalar_t v = pg[(pl * g.OH + oh) * g.OW + ow] * inv;
            for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
              int64_t ih = oh * p.stride_h - p.pad_h + kh;
              if (ih < 0 || ih >= g.H) continue;
              for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
                int64_t iw = ow * p.stride_w - p.pad_w + kw;
                if (iw >= 0 && iw < g.W) out[ih * g.W + iw] += v;
              }
            }
          }
      }
    });
  });
}

}  // namespace loom::cpu
