// Flat f32 elementwise loops, compiled once per instruction set (elementwise_avx512.cpp,
// elementwise_generic.cpp) and chosen at run time, as ATen compiles its CPU kernels per ISA.
#pragma once

#include <cmath>
#include <cstdint>

#include "loom/tensor/kernels/cpu/kernels.h"
#include "loom/tensor/kernels/cpu/vec_math.h"

namespace loom::cpu::LOOM_EW_ISA {


template <UnaryOp U>
void unary_loop(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    float r;
    if constexpr (U == UnaryOp::kNeg) r = -v;
    else if constexpr (U == UnaryOp::kExp) r = vmath::exp(v);
    else if constexpr (U == UnaryOp::kLog) r = vmath::log(v);
    else if constexpr (U == UnaryOp::kSqrt) r = __builtin_sqrtf(v);
    else if constexpr (U == UnaryOp::kRsqrt) r = 1.0f / __builtin_sqrtf(v);
    else if constexpr (U == UnaryOp::kTanh) r = vmath::tanh(v);
    else if constexpr (U == UnaryOp::kSigmoid) r = vmath::sigmoid(v);
    else if constexpr (U == UnaryOp::kRelu) r = v > 0.0f ? v : 0.0f;
    else if constexpr (U == UnaryOp::kGelu) r = vmath::gelu(v);
    else if constexpr (U == UnaryOp::kAbs) r = __builtin_fabsf(v);
    else if constexpr (U == UnaryOp::kSign) r = static_cast<float>((v > 0.0f) - (v < 0.0f));
    else r = vmath::erf(v);
    y[i] = r;
  }
}

void unary_f32(UnaryOp op, const float* x, float* y, int64_t n) {
  switch (op) {
    case UnaryOp::kNeg: return unary_loop<UnaryOp::kNeg>(x, y, n);
    case UnaryOp::kExp: return unary_loop<UnaryOp::kExp>(x, y, n);
    case UnaryOp::kLog: return unary_loop<UnaryOp::kLog>(x, y, n);
    case UnaryOp::kSqrt: return unary_loop<UnaryOp::kSqrt>(x, y, n);
    case UnaryOp::kRsqrt: return unary_loop<UnaryOp::kRsqrt>(x, y, n);
    case UnaryOp::kTanh: return unary_loop<UnaryOp::kTanh>(x, y, n);
    case UnaryOp::kSigmoid: return unary_loop<UnaryOp::kSigmoid>(x, y, n);
    case UnaryOp::kRelu: return unary_loop<UnaryOp::kRelu>(x, y, n);
    case UnaryOp::kGelu: return unary_loop<UnaryOp::kGelu>(x, y, n);
    case UnaryOp::kAbs: return unary_loop<UnaryOp::kAbs>(x, y, n);
    case UnaryOp::kSign: return unary_loop<UnaryOp::kSign>(x, y, n);
    case UnaryOp::kErf: return unary_loop<UnaryOp::kErf>(x, y, n);
  }
}

// a and b advance by sa / sb elements per step (1, or 0 for a broadcast scalar).
template <BinaryOp B>
void binary_loop(const float* __restrict a, int64_t sa, const float* __restrict b, int64_t sb, float* __restrict y,
                 int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float u = a[i * sa], v = b[i * sb];
    float r;
    if constexpr (B == BinaryOp::kAdd) r = u + v;
    else if constexpr (B == BinaryOp::kSub) r = u - v;
    else if constexpr (B == BinaryOp::kMul) r = u * v;
    else if constexpr (B == BinaryOp::kDiv) r = u / v;
    else if constexpr (B == BinaryOp::kPow) r = std::pow(u, v);
    else if constexpr (B == BinaryOp::kMaximum) r = (u > v || u != u) ? u : v;
    else r = (u < v || u != u) ? u : v;
    y[i] = r;
  }
}

template <BinaryOp B>
void binary_dispatch(const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n) {
  // Separate instantiations for the stride patterns let the compiler vectorize each.
  if (sa == 1 && sb == 1) return binary_loop<B>(a, 1, b, 1, y, n);
  if (sa == 1 && sb == 0) return binary_loop<B>(a, 1, b, 0, y, n);
  if (sa == 0 && sb == 1) return binary_loop<B>(a, 0, b, 1, y, n);
  return binary_loop<B>(a, sa, b, sb, y, n);
}

void binary_f32(BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n) {
  switch (op) {
    case BinaryOp::kAdd: return binary_dispatch<BinaryOp::kAdd>(a, sa, b, sb, y, n);
    case BinaryOp::kSub: return binary_dispatch<BinaryOp::kSub>(a, sa, b, sb, y, n);
    case BinaryOp::kMul: return binary_dispatch<BinaryOp::kMul>(a, sa, b, sb, y, n);
    case BinaryOp::kDiv: return binary_dispatch<BinaryOp::kDiv>(a, sa, b, sb, y, n);
    case BinaryOp::kPow: return binary_dispatch<BinaryOp::kPow>(a, sa, b, sb, y, n);
    case BinaryOp::kMaximum: return binary_dispatch<BinaryOp::kMaximum>(a, sa, b, sb, y, n);
    case BinaryOp::kMinimum: return binary_dispatch<BinaryOp::kMinimum>(a, sa, b, sb, y, n);
  }
}

// y[i] = a[i*sa] OP b[i*sb] as bytes 0/1 (relu's backward mask x > 0 among others).
template <CompareOp C, int SA, int SB>
void compare_loop(const float* __restrict a, const float* __restrict b, bool* __restrict y, int64_t n) {
  auto* out = reinterpret_cast<uint8_t*>(y);
  for (int64_t i = 0; i < n; ++i) {
    const float u = a[i * SA], v = b[i * SB];
    bool r;
    if constexpr (C == CompareOp::kEq) r = u == v;
    else if constexpr (C == CompareOp::kNe) r = u != v;
    else if constexpr (C == CompareOp::kLt) r = u < v;
    else if constexpr (C == CompareOp::kLe) r = u <= v;
    else if constexpr (C == CompareOp::kGt) r = u > v;
    else r = u >= v;
    out[i] = static_cast<uint8_t>(r);
  }
}

template <CompareOp C>
void compare_dispatch(const float* a, int64_t sa, const float* b, int64_t sb, bool* y, int64_t n) {
  if (sa == 1 && sb == 1) return compare_loop<C, 1, 1>(a, b, y, n);
  if (sa == 1 && sb == 0) return compare_loop<C, 1, 0>(a, b, y, n);
  if (sa == 0 && sb == 1) return compare_loop<C, 0, 1>(a, b, y, n);
  return compare_loop<C, 0, 0>(a, b, y, n);
}

// Strides sa, sb are 0 or 1.
void compare_f32(CompareOp op, const float* a, int64_t sa, const float* b, int64_t sb, bool* y, int64_t n) {
  switch (op) {
    case CompareOp::kEq: return compare_dispatch<CompareOp::kEq>(a, sa, b, sb, y, n);
    case CompareOp::kNe: return compare_dispatch<CompareOp::kNe>(a, sa, b, sb, y, n);
    case CompareOp::kLt: return compare_dispatch<CompareOp::kLt>(a, sa, b, sb, y, n);
    case CompareOp::kLe: return compare_dispatch<CompareOp::kLe>(a, sa, b, sb, y, n);
    case CompareOp::kGt: return compare_dispatch<CompareOp::kGt>(a, sa, b, sb, y, n);
    case CompareOp::kGe: return compare_dispatch<CompareOp::kGe>(a, sa, b, sb, y, n);
  }
}

// out[i] = y[i] > 0 ? g[i] : 0 (a NaN y gives 0), as a compare and a masked move.
// out[c] = x[0 * ld + c] + x[1 * ld + c] + ... (rows added in order: the same sums as the
// scalar row-accumulation loop), 64 columns at a time in registers.
template <int64_t B>
inline void col_sums_block(const float* __restrict x, int64_t rows, int64_t ld, float* __restrict out) {
  float acc[B] = {};
  for (int64_t r = 0; r < rows; ++r) {
    const float* px = x + r * ld;
#pragma GCC unroll 64
    for (int64_t i = 0; i < B; ++i) acc[i] += px[i];
  }
  for (int64_t i = 0; i < B; ++i) out[i] = acc[i];
}

void col_sums_f32(const float* __restrict x, int64_t rows, int64_t cols, int64_t ld, float* __restrict out) {
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64) col_sums_block<64>(x + c, rows, ld, out + c);
  for (; c + 16 <= cols; c += 16) col_sums_block<16>(x + c, rows, ld, out + c);
  for (; c < cols; ++c) col_sums_block<1>(x + c, rows, ld, out + c);
}

void relu_backward_f32(const float* __restrict g, const float* __restrict y, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = y[i] > 0.0f ? g[i] : 0.0f;
}

// y[i] = c[i*sc] ? a[i*sa] : b[i*sb], strides 0 or 1. A bitwise select: relu's backward mask
// is random, so a branch would mispredict half the time; this form vectorizes (bytes widened
// to lane masks).
template <int SC, int SA, int SB>
void where_loop(const bool* __restrict c, const float* __restrict a, const float* __restrict b, float* __restrict y,
                int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t m = 0u - static_cast<uint32_t>(reinterpret_cast<const uint8_t*>(c)[i * SC]);
    const uint32_t u = __builtin_bit_cast(uint32_t, a[i * SA]), v = __builtin_bit_cast(uint32_t, b[i * SB]);
    y[i] = __builtin_bit_cast(float, (u & m) | (v & ~m));
  }
}

void where_f32(const bool* c, int64_t sc, const float* a, int64_t sa, const float* b, int64_t sb, float* y,
               int64_t n) {
  if (sc == 1 && sa == 1 && sb == 1) return where_loop<1, 1, 1>(c, a, b, y, n);
  if (sc == 1 && sa == 1 && sb == 0) return where_loop<1, 1, 0>(c, a, b, y, n);
  if (sc == 1 && sa == 0 && sb == 1) return where_loop<1, 0, 1>(c, a, b, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] = c[i * sc] ? a[i * sa] : b[i * sb];
}

}  // namespace loom::cpu::LOOM_EW_ISA
