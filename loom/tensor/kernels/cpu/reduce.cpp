// Reductions, argmax, softmax and the gather/scatter family.
//
// Every kernel here views its (contiguous) input as [outer, reduced, inner]: reductions
// over a trailing block become row reductions, over a leading or middle block become
// vectorized accumulations of rows. Axis sets that are not one block are first permuted
// into one (a copy), which keeps one fast path instead of many slow ones.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "loom/tensor/kernels/cpu/kernels.h"
#include "loom/tensor/kernels/cpu/loops.h"

namespace loom::cpu {
namespace {

struct Block {
  int64_t outer = 1, reduced = 1, inner = 1;
};

Block split_at(const Shape& shape, int64_t first, int64_t last) {
  Block b;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < first) b.outer *= shape[d];
    else if (d <= last) b.reduced *= shape[d];
    else b.inner *= shape[d];
  }
  return b;
}

template <typename T>
struct Acc {
  using type = T;
};
template <>
struct Acc<bool> {
  using type = int64_t;
};

template <typename T>
inline T combine(ReduceOp op, T acc, T v) {
  switch (op) {
    case ReduceOp::kSum: return acc + v;
    case ReduceOp::kMax:
      if constexpr (std::is_floating_point_v<T>) {
        return (v > acc || v != v) && acc == acc ? v : acc;
      } else {
        return v > acc ? v : acc;
      }
    case ReduceOp::kMin:
      if constexpr (std::is_floating_point_v<T>) {
        return (v < acc || v != v) && acc == acc ? v : acc;
      } else {
        return v < acc ? v : acc;
      }
  }
  return acc;
}

template <typename T>
T identity(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return T(0);
    case ReduceOp::kMax:
      if constexpr (std::is_floating_point_v<T>) return -std::numeric_limits<T>::infinity();
      return std::numeric_limits<T>::lowest();
    case ReduceOp::kMin:
      if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<T>::infinity();
      return std::numeric_limits<T>::max();
  }
  return T(0);
}

template <typename T>
T reduce_row(ReduceOp op, const T* p, int64_t n) {
  if (op == ReduceOp::kSum) {
    // Eight independent partial sums: vectorizable and more accurate than one chain.
    T acc[8] = {};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
    T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; ++i) s += p[i];
    return s;
  }
  T acc = identity<T>(op);
  for (int64_t i = 0; i < n; ++i) acc = combine(op, acc, p[i]);
  return acc;
}

template <typename T>
void reduce_block(ReduceOp op, const T* x, const Block& b, T* out) {
  if (b.inner == 1) {
    parallel_for(0, b.outer, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(b.reduced, 1)),
                 [&](int64_t lo, int64_t hi) {
                   for (int64_t o = lo; o < hi; ++o) out[o] = reduce_row(op, x + o * b.reduced, b.reduced);
                 });
    return;
  }
  // Accumulate whole rows of length inner; parallel over (outer, inner chunks).
  const int64_t chunk = 256;
  const int64_t nchunks = (b.inner + chunk - 1) / chunk;
  parallel_for(0, b.outer * nchunks, std::max<int64_t>(1, kParallelGrain / (chunk * std::max<int64_t>(b.reduced, 1))),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t t = lo; t < hi; ++t) {
                   int64_t o = t / nchunks, c0 = (t % nchunks) * chunk;
                   int64_t c1 = std::min(b.inner, c0 + chunk);
                   T* po = out + o * b.inner;
                   if constexpr (std::is_same_v<T, float>) {
                     if (op == ReduceOp::kSum) {
                       col_sums_f32_serial(x + o * b.reduced * b.inner + c0, b.reduced, c1 - c0, b.inner, po + c0);
                       continue;
                     }
                   }
                   for (int64_t i = c0; i < c1; ++i) po[i] = identity<T>(op);
                   for (int64_t r = 0; r < b.reduced; ++r) {
                     const T* px = x + (o * b.reduced + r) * b.inner;
                     if (op == ReduceOp::kSum) {
                       for (int64_t i = c0; i < c1; ++i) po[i] += px[i];
                     } else {
                       for (int64_t i = c0; i < c1; ++i) po[i] = combine(op, po[i], px[i]);
                     }
                   }
                 }
               });
}

// Returns a contiguous tensor whose reduced axes form one block, and that block.
Tensor to_block(const Tensor& x, const std::vector<int64_t>& axes, Block& block) {
  const int64_t nd = x.dim();
  bool consecutive = true;
  for (size_t i = 1; i < axes.size(); ++i) consecutive &= axes[i] == axes[i - 1] + 1;
  if (axes.empty()) {
    block = Block{x.numel(), 1, 1};
    return x.contiguous();
  }
  if (consecutive) {
    block = split_at(x.shape(), axes.front(), axes.back());
    return x.contiguous();
  }
  // Permute kept axes first, reduced last, then copy.
  Shape shape;
  Strides strides;
  std::vector<bool> red(nd, false);
  for (int64_t a : axes) red[a] = true;
  for (int64_t d = 0; d < nd; ++d)
    if (!red[d]) shape.push_back(x.shape()[d]), strides.push_back(x.strides()[d]);
  for (int64_t d = 0; d < nd; ++d)
    if (red[d]) shape.push_back(x.shape()[d]), strides.push_back(x.strides()[d]);
  Tensor p = x.as_strided(shape, strides, x.offset()).contiguous();
  int64_t kept = nd - static_cast<int64_t>(axes.size());
  block = split_at(p.shape(), kept, nd - 1);
  return p;
}

// Reduced axes = a leading block and a trailing block around kept ones (a bias gradient:
// NCHW summed over N, H, W): out[k] = combine over a of reduce_row(x[a, k, :]), with no
// permuting copy. `axes` is sorted; false when the pattern does not apply.
bool reduce_outer_and_inner(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, Tensor& out) {
  const int64_t nd = x.dim();
  if (axes.empty() || axes.front() != 0 || axes.back() != nd - 1 || !x.is_contiguous()) return false;
  size_t lead = 1;
  while (lead < axes.size() && axes[lead] == axes[lead - 1] + 1) ++lead;
  if (lead == axes.size()) return false;  // one block: the general path handles it
  for (size_t i = lead + 1; i < axes.size(); ++i)
    if (axes[i] != axes[i - 1] + 1) return false;
  const Block b = split_at(x.shape(), axes[lead - 1] + 1, axes[lead] - 1);  // outer = A, reduced = kept, inner = C
  LOOM_DISPATCH_NUMERIC(x.dtype(), "reduce", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    const int64_t A = b.outer, K = b.reduced, C = b.inner;
    parallel_for(0, K, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(A * C, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) {
        scalar_t acc = identity<scalar_t>(op);
        for (int64_t a = 0; a < A; ++a) acc = combine(op, acc, reduce_row(op, px + (a * K + k) * C, C));
        po[k] = acc;
      }
    });
  });
  return true;
}

}  // namespace

void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, Tensor& out) {
  if (x.dtype() != DType::kBool && reduce_outer_and_inner(op, x, axes, out)) return;
  Block b;
  Tensor xc = to_block(x, axes, b);
  LOOM_DISPATCH_NUMERIC(x.dtype(), "reduce", [&] {
    reduce_block<scalar_t>(op, xc.data<scalar_t>(), b, out.data<scalar_t>());
  });
}

void argmax(const Tensor& x, int64_t axis, Tensor& out) {
  Tensor xc = x.contiguous();
  Block b = split_at(xc.shape(), axis, axis);
  int64_t* po = out.data<int64_t>();
  LOOM_DISPATCH_NUMERIC(x.dtype(), "argmax", [&] {
    const scalar_t* px = xc.data<scalar_t>();
    parallel_for(0, b.outer * b.inner, 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        int64_t o = t / b.inner, i = t % b.inner;
        const scalar_t* p = px + o * b.reduced * b.inner + i;
        int64_t best = 0;
        scalar_t bv = p[0];
        for (int64_t r = 1; r < b.reduced; ++r) {
          scalar_t v = p[r * b.inner];
          if (v > bv || (v != v && bv == bv)) bv = v, best = r;
        }
        po[t] = best;
      }
    });
  });
}

namespace {

// Floats of work per softmax task (and per flat exp pass of the f32 row path).
constexpr int64_t kSoftmaxBlock = 4096;

// The shift a softmax subtracts before exp: the maximum of the R values p[r * I], or 0 when
// it is not finite (an all -inf row: exp(-inf - 0) = 0, no NaN from inf - inf).
template <typename T>
T softmax_shift(const T* p, int64_t R, int64_t I) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t r = 0; r < R; ++r) m = std::max(m, p[r * I]);
  return std::isfinite(m) ? m : T(0);
}

// f32 softmax over contiguous rows (the last axis): per block of rows, the shifted logits
// go through one flat vectorized exp (a classifier's 10-wide rows are too short to vectorize
// one by one), then per-row sums.
void softmax_rows_f32(const Tensor& xc, int64_t rows, int64_t R, bool log, Tensor& out) {
  const float* px = xc.data<float>();
  float* po = out.data<float>();
  const int64_t per = std::max<int64_t>(1, kSoftmaxBlock / R);  // rows per flat exp pass
  parallel_for(0, rows, per, [&](int64_t lo, int64_t hi) {
    thread_local std::vector<float> shifted, maxima;
    for (int64_t r0 = lo; r0 < hi; r0 += per) {
      const int64_t r1 = std::min(hi, r0 + per), n = (r1 - r0) * R;
      if (static_cast<int64_t>(shifted.size()) < n) shifted.resize(static_cast<size_t>(n));
      if (static_cast<int64_t>(maxima.size()) < r1 - r0) maxima.resize(static_cast<size_t>(r1 - r0));
      const float* p = px + r0 * R;
      float* q = po + r0 * R;
      for (int64_t i = 0; i < r1 - r0; ++i) {
        const float m = softmax_shift(p + i * R, R, 1);
        maxima[static_cast<size_t>(i)] = m;
        for (int64_t r = 0; r < R; ++r) shifted[static_cast<size_t>(i * R + r)] = p[i * R + r] - m;
      }
      unary_f32_serial(UnaryOp::kExp, shifted.data(), q, n);
      for (int64_t i = 0; i < r1 - r0; ++i) {
        float s = 0;
        for (int64_t r = 0; r < R; ++r) s += q[i * R + r];
        if (log) {
          const float ls = maxima[static_cast<size_t>(i)] + std::log(s);
          for (int64_t r = 0; r < R; ++r) q[i * R + r] = p[i * R + r] - ls;
        } else {
          const float inv = 1.0f / s;
          for (int64_t r = 0; r < R; ++r) q[i * R + r] *= inv;
        }
      }
    }
  });
}

}  // namespace

void softmax(const Tensor& x, int64_t axis, bool log, Tensor& out) {
  Tensor xc = x.contiguous();
  Block b = split_at(xc.shape(), axis, axis);
  if (x.dtype() == DType::kF32 && b.inner == 1 && b.reduced > 0) return softmax_rows_f32(xc, b.outer, b.reduced, log, out);
  LOOM_DISPATCH_FLOAT(x.dtype(), "softmax", [&] {
    const scalar_t* px = xc.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    const int64_t R = b.reduced, I = b.inner;
    parallel_for(0, b.outer * I, std::max<int64_t>(1, kSoftmaxBlock / std::max<int64_t>(R, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        int64_t o = t / I, i = t % I;
        const scalar_t* p = px + o * R * I + i;
        scalar_t* q = po + o * R * I + i;
        const scalar_t m = softmax_shift(p, R, I);
        scalar_t s = 0;
        for (int64_t r = 0; r < R; ++r) {
          scalar_t e = std::exp(p[r * I] - m);
          if (!log) q[r * I] = e;
          s += e;
        }
        if (log) {
          scalar_t ls = m + std::log(s);
          for (int64_t r = 0; r < R; ++r) q[r * I] = p[r * I] - ls;
        } else {
          scalar_t inv = scalar_t(1) / s;
          for (int64_t r = 0; r < R; ++r) q[r * I] *= inv;
        }
      }
    });
  });
}

namespace {

inline int64_t checked_index(int64_t v, int64_t size, const char* op) {
  if (v < -size || v >= size) {
    LOOM_THROW("{}: index {} is out of range for a dimension of size {}", op, v, size);
  }
  return v < 0 ? v + size : v;
}

}  // namespace

void gather(const Tensor& x, int64_t axis, const Tensor& idx, Tensor& out) {
  Tensor xc = x.contiguous(), ic = idx.contiguous();
  Block bx = split_at(xc.shape(), axis, axis);
  Block bi = split_at(ic.shape(), axis, axis);
  const int64_t* pi = ic.data<int64_t>();
  LOOM_DISPATCH_ALL(x.dtype(), "gather", [&] {
    const scalar_t* px = xc.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    parallel_for(0, bi.outer * bi.reduced, std::max<int64_t>(1, 4096 / bi.inner), [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        int64_t o = t / bi.reduced;
        for (int64_t i = 0; i < bi.inner; ++i) {
          int64_t r = checked_index(pi[t * bi.inner + i], bx.reduced, "gather");
          po[t * bi.inner + i] = px[(o * bx.reduced + r) * bx.inner + i];
        }
      }
    });
  });
}

void scatter_add(const Tensor& src, int64_t axis, const Tensor& idx, Tensor& out) {
  Tensor sc = src.contiguous(), ic = idx.contiguous();
  Block bo = split_at(out.shape(), axis, axis);
  Block bi = split_at(ic.shape(), axis, axis);
  const int64_t* pi = ic.data<int64_t>();
  const int64_t row = bo.reduced * bo.inner;  // out elements per outer index
  LOOM_DISPATCH_NUMERIC(out.dtype(), "scatter_add", [&] {
    const scalar_t* ps = sc.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    // Parallel over outer only: different r may hit the same output row. Each outer block
    // of out is zeroed just before its scatter, while it is in cache (one pass, not two).
    const int64_t work = std::max<int64_t>(1, std::max(bi.inner * bi.reduced, row));
    parallel_for(0, bo.outer, std::max<int64_t>(1, 4096 / work), [&](int64_t lo, int64_t hi) {
      std::memset(static_cast<void*>(po + lo * row), 0, sizeof(scalar_t) * static_cast<size_t>((hi - lo) * row));
      if (bi.inner == 1) {
        // Scatter along the last axis (max-pool's backward, embedding rows): one flat loop per
        // outer row, no inner-loop bookkeeping.
        for (int64_t o = lo; o < hi; ++o) {
          const int64_t* ip = pi + o * bi.reduced;
          const scalar_t* sp = ps + o * bi.reduced;
          scalar_t* op = po + o * bo.reduced;
          for (int64_t r = 0; r < bi.reduced; ++r) op[checked_index(ip[r], bo.reduced, "scatter_add")] += sp[r];
        }
        return;
      }
      for (int64_t o = lo; o < hi; ++o)
        for (int64_t r = 0; r < bi.reduced; ++r)
          for (int64_t i = 0; i < bi.inner; ++i) {
            int64_t t = (o * bi.reduced + r) * bi.inner + i;
            int64_t d = checked_index(pi[t], bo.reduced, "scatter_add");
            po[(o * bo.reduced + d) * bo.inner + i] += ps[t];
          }
    });
  });
}

void index_select(const Tensor& x, int64_t axis, const Tensor& idx, Tensor& out) {
  Tensor xc = x.contiguous(), ic = idx.contiguous();
  Block bx = split_at(xc.shape(), axis, axis);
  const int64_t n = ic.numel();
  const int64_t* pi = ic.data<int64_t>();
  for (int64_t j = 0; j < n; ++j) checked_index(pi[j], bx.reduced, "index_select");
  const size_t es = dtype_size(x.dtype());
  const char* px = static_cast<const char*>(xc.raw_data());
  char* po = static_cast<char*>(out.raw_data());
  const size_t row = static_cast<size_t>(bx.inner) * es;
  parallel_for(0, bx.outer * n, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, static_cast<int64_t>(row))), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      int64_t o = t / n, j = t % n;
      int64_t r = pi[j] < 0 ? pi[j] + bx.reduced : pi[j];
      std::memcpy(po + t * row, px + (o * bx.reduced + r) * row, row);
    }
  });
}

void index_add(const Tensor& src, int64_t axis, const Tensor& idx, Tensor& out) {
  Tensor sc = src.contiguous(), ic = idx.contiguous();
  Block bo = split_at(out.shape(), axis, axis);
  const int64_t n = ic.numel();
  const int64_t* pi = ic.data<int64_t>();
  for (int64_t j = 0; j < n; ++j) checked_index(pi[j], bo.reduced, "index_add");
  LOOM_DISPATCH_NUMERIC(out.dtype(), "index_add", [&] {
    const scalar_t* ps = sc.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    // Parallel over (outer, chunks of inner): rows hit by several indices stay in one task.
    const int64_t chunk = 512, nchunks = (bo.inner + chunk - 1) / chunk;
    parallel_for(0, bo.outer * nchunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        int64_t o = t / nchunks, c0 = (t % nchunks) * chunk, c1 = std::min(bo.inner, c0 + chunk);
        for (int64_t j = 0; j < n; ++j) {
          int64_t r = pi[j] < 0 ? pi[j] + bo.reduced : pi[j];
          const scalar_t* s = ps + (o * n + j) * bo.inner;
          scalar_t* d = po + (o * bo.reduced + r) * bo.inner;
          for (int64_t i = c0; i < c1; ++i) d[i] += s[i];
        }
      }
    });
  });
}

}  // namespace loom::cpu
