// Elementwise kernels: unary, binary with broadcasting, comparisons, where, clamp, copy.
// Contiguous operands take a flat loop the compiler vectorizes; everything else goes
// through the strided row loop of loops.h.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "loom/base/cpu.h"
#include "loom/base/rng.h"
#include "loom/tensor/kernels/cpu/vec_math.h"
#include "loom/tensor/kernels/cpu/kernels.h"
#include "loom/tensor/kernels/cpu/loops.h"

namespace loom::cpu {

namespace avx512 {
void unary_f32(UnaryOp op, const float* x, float* y, int64_t n);
void col_sums_f32(const float* x, int64_t rows, int64_t cols, int64_t ld, float* out);
void relu_backward_f32(const float* g, const float* y, float* out, int64_t n);
void compare_f32(CompareOp op, const float* a, int64_t sa, const float* b, int64_t sb, bool* y, int64_t n);
void binary_f32(BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n);
void where_f32(const bool* c, int64_t sc, const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n);
}  // namespace avx512
namespace generic {
void unary_f32(UnaryOp op, const float* x, float* y, int64_t n);
void col_sums_f32(const float* x, int64_t rows, int64_t cols, int64_t ld, float* out);
void relu_backward_f32(const float* g, const float* y, float* out, int64_t n);
void compare_f32(CompareOp op, const float* a, int64_t sa, const float* b, int64_t sb, bool* y, int64_t n);
void binary_f32(BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n);
void where_f32(const bool* c, int64_t sc, const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n);
}  // namespace generic

void unary_f32_serial(UnaryOp op, const float* x, float* y, int64_t n) {
  if (active_isa() == Isa::kAvx512) avx512::unary_f32(op, x, y, n);
  else generic::unary_f32(op, x, y, n);
}

void col_sums_f32_serial(const float* x, int64_t rows, int64_t cols, int64_t ld, float* out) {
  if (active_isa() == Isa::kAvx512) avx512::col_sums_f32(x, rows, cols, ld, out);
  else generic::col_sums_f32(x, rows, cols, ld, out);
}

namespace {

void flat_unary_f32(UnaryOp op, const float* x, float* y, int64_t n) {
  parallel_for(0, n, kParallelGrain,
               [&](int64_t lo, int64_t hi) { unary_f32_serial(op, x + lo, y + lo, hi - lo); });
}

void flat_binary_f32(BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n) {
  const bool wide = active_isa() == Isa::kAvx512;
  parallel_for(0, n, kParallelGrain, [&](int64_t lo, int64_t hi) {
    if (wide) avx512::binary_f32(op, a + lo * sa, sa, b + lo * sb, sb, y + lo, hi - lo);
    else generic::binary_f32(op, a + lo * sa, sa, b + lo * sb, sb, y + lo, hi - lo);
  });
}

template <typename T>
inline T unary_scalar(UnaryOp op, T x) {
  if constexpr (std::is_same_v<T, float>) {
    switch (op) {
      case UnaryOp::kExp: return vmath::exp(x);
      case UnaryOp::kLog: return vmath::log(x);
      case UnaryOp::kTanh: return vmath::tanh(x);
      case UnaryOp::kSigmoid: return vmath::sigmoid(x);
      case UnaryOp::kGelu: return vmath::gelu(x);
      case UnaryOp::kErf: return vmath::erf(x);
      default: break;
    }
  }
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case UnaryOp::kNeg: return -x;
      case UnaryOp::kExp: return std::exp(x);
      case UnaryOp::kLog: return std::log(x);
      case UnaryOp::kSqrt: return std::sqrt(x);
      case UnaryOp::kRsqrt: return T(1) / std::sqrt(x);
      case UnaryOp::kTanh: return std::tanh(x);
      case UnaryOp::kSigmoid: return T(1) / (T(1) + std::exp(-x));
      case UnaryOp::kRelu: return x > T(0) ? x : T(0);
      case UnaryOp::kGelu: return T(0.5) * x * (T(1) + std::erf(x * T(M_SQRT1_2)));
      case UnaryOp::kAbs: return std::abs(x);
      case UnaryOp::kSign: return T((x > T(0)) - (x < T(0)));
      case UnaryOp::kErf: return std::erf(x);
    }
  } else {
    switch (op) {
      case UnaryOp::kNeg: return -x;
      case UnaryOp::kRelu: return x > T(0) ? x : T(0);
      case UnaryOp::kAbs: return x < 0 ? -x : x;
      case UnaryOp::kSign: return T((x > T(0)) - (x < T(0)));
      default: break;
    }
  }
  return x;
}

// Applies f over every element; flat for contiguous same-shape operands.
template <typename T, typename F>
void unary_loop(const Tensor& x, Tensor& out, F f) {
  if (x.is_contiguous() && out.is_contiguous()) {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    parallel_for(0, x.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) po[i] = f(px[i]);
    });
    return;
  }
  std::array<std::vector<int64_t>, 2> st = {broadcast_byte_strides(out, out.shape()),
                                            broadcast_byte_strides(x, out.shape())};
  for_each_row<2>(out.shape(), {static_cast<char*>(out.raw_data()), static_cast<char*>(x.raw_data())},
                  st, [&](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t n) {
                    for (int64_t i = 0; i < n; ++i)
                      *reinterpret_cast<T*>(p[0] + i * s[0]) =
                          f(*reinterpret_cast<const T*>(p[1] + i * s[1]));
                  });
}

template <typename TA, typename TO, typename F>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const bool flat = a.is_contiguous() && b.is_contiguous() && out.is_contiguous();
  if (flat && a.shape() == out.shape() && b.shape() == out.shape()) {
    const TA* pa = a.data<TA>();
    const TA* pb = b.data<TA>();
    TO* po = out.data<TO>();
    parallel_for(0, out.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) po[i] = f(pa[i], pb[i]);
    });
    return;
  }
  if (flat && a.shape() == out.shape() && b.numel() == 1) {
    const TA* pa = a.data<TA>();
    const TA vb = *b.data<TA>();
    TO* po = out.data<TO>();
    parallel_for(0, out.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) po[i] = f(pa[i], vb);
    });
    return;
  }
  std::array<std::vector<int64_t>, 3> st = {broadcast_byte_strides(out, out.shape()),
                                            broadcast_byte_strides(a, out.shape()),
                                            broadcast_byte_strides(b, out.shape())};
  for_each_row<3>(out.shape(),
                  {static_cast<char*>(out.raw_data()), static_cast<char*>(a.raw_data()),
                   static_cast<char*>(b.raw_data())},
                  st, [&](std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t n) {
                    if (s[0] == sizeof(TO) && s[1] == sizeof(TA) && s[2] == 0) {
                      TO* po = reinterpret_cast<TO*>(p[0]);
                      const TA* pa = reinterpret_cast<const TA*>(p[1]);
                      const TA vb = *reinterpret_cast<const TA*>(p[2]);
                      for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], vb);
                      return;
                    }
                    for (int64_t i = 0; i < n; ++i)
                      *reinterpret_cast<TO*>(p[0] + i * s[0]) =
                          f(*reinterpret_cast<const TA*>(p[1] + i * s[1]),
                            *reinterpret_cast<const TA*>(p[2] + i * s[2]));
                  });
}

template <typename T>
inline T binary_scalar(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::kAdd: return a + b;
    case BinaryOp::kSub: return a - b;
    case BinaryOp::kMul: return a * b;
    case BinaryOp::kDiv: return a / b;
    case BinaryOp::kPow:
      if constexpr (std::is_floating_point_v<T>) {
        return std::pow(a, b);
      } else {
        T r = 1;
        for (T e = 0; e < b; ++e) r *= a;
        return r;
      }
    case BinaryOp::kMaximum: return (a > b || a != a) ? a : b;  // NaN propagates
    case BinaryOp::kMinimum: return (a < b || a != a) ? a : b;
  }
  return a;
}

}  // namespace

namespace {

template <typename T>
void unary_typed(UnaryOp op, const Tensor& x, Tensor& out) {
  // Switch outside the loop so each op gets its own vectorizable loop.
  switch (op) {
#define LOOM_CASE(OP) \
  case UnaryOp::OP: unary_loop<T>(x, out, [](T v) { return unary_scalar(UnaryOp::OP, v); }); break;
    LOOM_CASE(kNeg) LOOM_CASE(kExp) LOOM_CASE(kLog) LOOM_CASE(kSqrt) LOOM_CASE(kRsqrt)
    LOOM_CASE(kTanh) LOOM_CASE(kSigmoid) LOOM_CASE(kRelu) LOOM_CASE(kGelu) LOOM_CASE(kAbs)
    LOOM_CASE(kSign) LOOM_CASE(kErf)
#undef LOOM_CASE
  }
}

template <typename T>
void binary_typed(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (op) {
#define LOOM_CASE(OP) \
  case BinaryOp::OP: binary_loop<T, T>(a, b, out, [](T x, T y) { return binary_scalar(BinaryOp::OP, x, y); }); break;
    LOOM_CASE(kAdd) LOOM_CASE(kSub) LOOM_CASE(kMul) LOOM_CASE(kDiv) LOOM_CASE(kPow)
    LOOM_CASE(kMaximum) LOOM_CASE(kMinimum)
#undef LOOM_CASE
  }
}

}  // namespace

void unary(UnaryOp op, const Tensor& x, Tensor& out) {
  if (x.dtype() == DType::kF32 && x.is_contiguous() && out.is_contiguous()) {
    return flat_unary_f32(op, x.data<float>(), out.data<float>(), x.numel());
  }
  LOOM_DISPATCH_NUMERIC(x.dtype(), "unary", [&] { unary_typed<scalar_t>(op, x, out); });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  if (out.dtype() == DType::kF32 && a.is_contiguous() && b.is_contiguous() && out.is_contiguous()) {
    const bool a_full = a.shape() == out.shape(), b_full = b.shape() == out.shape();
    if ((a_full || a.numel() == 1) && (b_full || b.numel() == 1)) {
      return flat_binary_f32(op, a.data<float>(), a_full ? 1 : 0, b.data<float>(), b_full ? 1 : 0, out.data<float>(),
                             out.numel());
    }
  }
  if (out.dtype() == DType::kF32) {
    // Broadcasting (a bias row added to every row of a batch): the vector kernel row by row
    // wherever each operand's innermost stride is unit or zero, the scalar loop elsewhere.
    const bool wide = active_isa() == Isa::kAvx512;
    std::array<std::vector<int64_t>, 3> st = {broadcast_byte_strides(out, out.shape()),
                                              broadcast_byte_strides(a, out.shape()),
                                              broadcast_byte_strides(b, out.shape())};
    auto unit_or_zero = [](int64_t s) { return s == 0 || s == 4; };
    for_each_row<3>(out.shape(),
                    {static_cast<char*>(out.raw_data()), static_cast<char*>(a.raw_data()),
                     static_cast<char*>(b.raw_data())},
                    st, [&](std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t n) {
                      const float* pa = reinterpret_cast<const float*>(p[1]);
                      const float* pb = reinterpret_cast<const float*>(p[2]);
                      float* po = reinterpret_cast<float*>(p[0]);
                      if (s[0] == 4 && unit_or_zero(s[1]) && unit_or_zero(s[2])) {
                        if (wide) avx512::binary_f32(op, pa, s[1] / 4, pb, s[2] / 4, po, n);
                        else generic::binary_f32(op, pa, s[1] / 4, pb, s[2] / 4, po, n);
                        return;
                      }
                      for (int64_t i = 0; i < n; ++i)
                        *reinterpret_cast<float*>(p[0] + i * s[0]) =
                            binary_scalar(op, *reinterpret_cast<const float*>(p[1] + i * s[1]),
                                          *reinterpret_cast<const float*>(p[2] + i * s[2]));
                    });
    return;
  }
  LOOM_DISPATCH_NUMERIC(out.dtype(), "binary", [&] { binary_typed<scalar_t>(op, a, b, out); });
}

void relu_backward(const Tensor& g, const Tensor& y, Tensor& out) {
  if (out.dtype() == DType::kF32 && g.is_contiguous() && y.is_contiguous() && out.is_contiguous() &&
      g.shape() == out.shape() && y.shape() == out.shape()) {
    const float *pg = g.data<float>(), *py = y.data<float>();
    float* po = out.data<float>();
    const bool wide = active_isa() == Isa::kAvx512;
    parallel_for(0, out.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
      auto* f = wide ? avx512::relu_backward_f32 : generic::relu_backward_f32;
      f(pg + lo, py + lo, po + lo, hi - lo);
    });
    return;
  }
  LOOM_DISPATCH_FLOAT(out.dtype(), "relu_backward", [&] {
    binary_loop<scalar_t, scalar_t>(g, y, out, [](scalar_t gv, scalar_t yv) { return yv > scalar_t(0) ? gv : scalar_t(0); });
  });
}

void compare(CompareOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  if (a.dtype() == DType::kF32 && b.dtype() == DType::kF32 && a.is_contiguous() && b.is_contiguous() &&
      out.is_contiguous()) {
    const bool a_full = a.shape() == out.shape(), b_full = b.shape() == out.shape();
    if ((a_full || a.numel() == 1) && (b_full || b.numel() == 1)) {
      const int64_t sa = a_full ? 1 : 0, sb = b_full ? 1 : 0;
      const float *pa = a.data<float>(), *pb = b.data<float>();
      bool* po = out.data<bool>();
      const bool wide = active_isa() == Isa::kAvx512;
      parallel_for(0, out.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
        auto* f = wide ? avx512::compare_f32 : generic::compare_f32;
        f(op, pa + lo * sa, sa, pb + lo * sb, sb, po + lo, hi - lo);
      });
      return;
    }
  }
  LOOM_DISPATCH_ALL(a.dtype(), "compare", [&] {
    switch (op) {
      case CompareOp::kEq: binary_loop<scalar_t, bool>(a, b, out, [](scalar_t x, scalar_t y) { return x == y; }); break;
      case CompareOp::kNe: binary_loop<scalar_t, bool>(a, b, out, [](scalar_t x, scalar_t y) { return x != y; }); break;
      case CompareOp::kLt: binary_loop<scalar_t, bool>(a, b, out, [](scalar_t x, scalar_t y) { return x < y; }); break;
      case CompareOp::kLe: binary_loop<scalar_t, bool>(a, b, out, [](scalar_t x, scalar_t y) { return x <= y; }); break;
      case CompareOp::kGt: binary_loop<scalar_t, bool>(a, b, out, [](scalar_t x, scalar_t y) { return x > y; }); break;
      case CompareOp::kGe: binary_loop<scalar_t, bool>(a, b, out, [](scalar_t x, scalar_t y) { return x >= y; }); break;
    }
  });
}

namespace {

// out[i] = c[i*sc] ? a[i*sa] : b[i*sb] over contiguous data (strides 0 or 1).
template <typename T>
void where_flat(const bool* pc, int64_t sc, const T* pa, int64_t sa, const T* pb, int64_t sb, T* po, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {  // the per-ISA loops (elementwise_simd.h)
    const bool wide = active_isa() == Isa::kAvx512;
    parallel_for(0, n, kParallelGrain, [&](int64_t lo, int64_t hi) {
      auto* f = wide ? avx512::where_f32 : generic::where_f32;
      f(pc + lo * sc, sc, pa + lo * sa, sa, pb + lo * sb, sb, po + lo, hi - lo);
    });
    return;
  }
  parallel_for(0, n, kParallelGrain, [&](int64_t lo, int64_t hi) {
    if constexpr (sizeof(T) == 4 || sizeof(T) == 8) {
      // Bitwise select: the condition (e.g. relu's mask) is data-dependent and random, so a
      // branch would mispredict half the time; this form also vectorizes.
      using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
      auto run = [&](auto csc, auto csa, auto csb) {
        for (int64_t i = lo; i < hi; ++i) {
          const Bits m = Bits{0} - static_cast<Bits>(pc[i * csc]);
          const Bits a = std::bit_cast<Bits>(pa[i * csa]), b = std::bit_cast<Bits>(pb[i * csb]);
          po[i] = std::bit_cast<T>(static_cast<Bits>((a & m) | (b & ~m)));
        }
      };
      using I1 = std::integral_constant<int64_t, 1>;
      using I0 = std::integral_constant<int64_t, 0>;
      if (sc == 1 && sa == 1 && sb == 1) return run(I1{}, I1{}, I1{});
      if (sc == 1 && sa == 1 && sb == 0) return run(I1{}, I1{}, I0{});
      if (sc == 1 && sa == 0 && sb == 1) return run(I1{}, I0{}, I1{});
      return run(sc, sa, sb);
    } else {
      for (int64_t i = lo; i < hi; ++i) po[i] = pc[i * sc] ? pa[i * sa] : pb[i * sb];
    }
  });
}

}  // namespace

void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  LOOM_DISPATCH_ALL(out.dtype(), "where", [&] {
    // Flat path: contiguous operands that are full-size or scalars (relu's backward).
    auto flat = [&](const Tensor& t) { return t.is_contiguous() && (t.shape() == out.shape() || t.numel() == 1); };
    if (out.is_contiguous() && flat(cond) && flat(a) && flat(b)) {
      const bool* pc = cond.data<bool>();
      const scalar_t* pa = a.data<scalar_t>();
      const scalar_t* pb = b.data<scalar_t>();
      scalar_t* po = out.data<scalar_t>();
      const int64_t sc = cond.numel() == 1 && out.numel() != 1 ? 0 : 1;
      const int64_t sa = a.numel() == 1 && out.numel() != 1 ? 0 : 1;
      const int64_t sb = b.numel() == 1 && out.numel() != 1 ? 0 : 1;
      where_flat<scalar_t>(pc, sc, pa, sa, pb, sb, po, out.numel());
      return;
    }
    std::array<std::vector<int64_t>, 4> st = {
        broadcast_byte_strides(out, out.shape()), broadcast_byte_strides(cond, out.shape()),
        broadcast_byte_strides(a, out.shape()), broadcast_byte_strides(b, out.shape())};
    for_each_row<4>(out.shape(),
                    {static_cast<char*>(out.raw_data()), static_cast<char*>(cond.raw_data()),
                     static_cast<char*>(a.raw_data()), static_cast<char*>(b.raw_data())},
                    st, [&](std::array<char*, 4> p, std::array<int64_t, 4> s, int64_t n) {
                      for (int64_t i = 0; i < n; ++i) {
                        bool c = *reinterpret_cast<const bool*>(p[1] + i * s[1]);
                        *reinterpret_cast<scalar_t*>(p[0] + i * s[0]) =
                            c ? *reinterpret_cast<const scalar_t*>(p[2] + i * s[2])
                              : *reinterpret_cast<const scalar_t*>(p[3] + i * s[3]);
                      }
                    });
  });
}

void clamp(const Tensor& x, double lo, double hi, Tensor& out) {
  LOOM_DISPATCH_NUMERIC(x.dtype(), "clamp", [&] {
    const scalar_t l = static_cast<scalar_t>(lo), h = static_cast<scalar_t>(hi);
    unary_loop<scalar_t>(x, out, [l, h](scalar_t v) { return v < l ? l : (v > h ? h : v); });
  });
}

namespace {

template <typename S, typename D>
void copy_typed(const Tensor& src, Tensor& dst) {
  if (std::is_same_v<S, D> && src.is_contiguous() && dst.is_contiguous() &&
      src.shape() == dst.shape()) {
    const char* s = static_cast<const char*>(src.raw_data());
    char* d = static_cast<char*>(dst.raw_data());
    parallel_for(0, static_cast<int64_t>(dst.nbytes()), 1 << 20, [&](int64_t lo, int64_t hi) {
      std::memcpy(d + lo, s + lo, static_cast<size_t>(hi - lo));
    });
    return;
  }
  std::array<std::vector<int64_t>, 2> st = {broadcast_byte_strides(dst, dst.shape()),
                                            broadcast_byte_strides(src, dst.shape())};
  for_each_row<2>(dst.shape(), {static_cast<char*>(dst.raw_data()), static_cast<char*>(src.raw_data())},
                  st, [&](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t n) {
                    if (s[0] == sizeof(D) && s[1] == sizeof(S)) {
                      D* pd = reinterpret_cast<D*>(p[0]);
                      const S* ps = reinterpret_cast<const S*>(p[1]);
                      for (int64_t i = 0; i < n; ++i) pd[i] = static_cast<D>(ps[i]);
                      return;
                    }
                    for (int64_t i = 0; i < n; ++i)
                      *reinterpret_cast<D*>(p[0] + i * s[0]) =
                          static_cast<D>(*reinterpret_cast<const S*>(p[1] + i * s[1]));
                  });
}

}  // namespace

void copy(const Tensor& src, Tensor& dst) {
  LOOM_DISPATCH_ALL(src.dtype(), "copy", [&] {
    using S = scalar_t;
    LOOM_DISPATCH_ALL(dst.dtype(), "copy", [&] { copy_typed<S, scalar_t>(src, dst); });
  });
}

void fill(Tensor& dst, double value) {
  LOOM_DISPATCH_ALL(dst.dtype(), "fill", [&] {
    const scalar_t v = static_cast<scalar_t>(value);
    // Writes only: the destination may hold uninitialized bytes (not valid bools).
    if (dst.is_contiguous()) {
      scalar_t* p = dst.data<scalar_t>();
      parallel_for(0, dst.numel(), kParallelGrain * 8, [&](int64_t lo, int64_t hi) { std::fill(p + lo, p + hi, v); });
      return;
    }
    std::array<std::vector<int64_t>, 1> st = {broadcast_byte_strides(dst, dst.shape())};
    for_each_row<1>(dst.shape(), {static_cast<char*>(dst.raw_data())}, st,
                    [v](std::array<char*, 1> p, std::array<int64_t, 1> s, int64_t n) {
                      for (int64_t i = 0; i < n; ++i) *reinterpret_cast<scalar_t*>(p[0] + i * s[0]) = v;
                    });
  });
}

void bernoulli(Tensor& out, double keep_prob, uint64_t seed, uint64_t offset) {
  LOOM_DISPATCH_FLOAT(out.dtype(), "bernoulli", [&] {
    scalar_t* p = out.data<scalar_t>();
    const int64_t n = out.numel();
    const uint32_t threshold = static_cast<uint32_t>(std::min(keep_prob, 1.0) * 4294967295.0);
    parallel_for(0, (n + 3) / 4, 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        auto w = philox4x32(offset + static_cast<uint64_t>(b), 0, seed);
        for (int j = 0; j < 4 && b * 4 + j < n; ++j)
          p[b * 4 + j] = (keep_prob >= 1.0 || w[j] < threshold) ? scalar_t(1) : scalar_t(0);
      }
    });
  });
}

}  // namespace loom::cpu
