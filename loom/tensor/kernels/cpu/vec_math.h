// Branch-free float math (exp, log, tanh, sigmoid, erf, gelu) written so that GCC
// vectorizes loops over it: only arithmetic, selects and integer bit tricks, no libm calls.
// Included by the per-ISA elementwise translation units; accuracy is checked against libm
// in tests/tensor/vec_math_test.cpp (exp/log within 2 ulp, the rest within 1e-6 abs/rel).
#pragma once

#include <bit>
#include <cstdint>

namespace loom::cpu::vmath {

inline float as_float(int32_t i) { return std::bit_cast<float>(i); }
inline int32_t as_int(float f) { return std::bit_cast<int32_t>(f); }

// exp: range reduction x = n ln2 + r, |r| <= ln2/2, then Cephes' degree-6 polynomial.
inline float exp(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365478515625f;
  float xc = x > hi ? hi : (x < lo ? lo : x);
  // Round to nearest by adding and removing 1.5 * 2^23 (floorf would block vectorization).
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  float y = p * as_float((static_cast<int32_t>(n) + 127) << 23);
  y = x > hi ? __builtin_inff() : y;
  y = x < lo ? 0.0f : y;
  return x != x ? x : y;
}

// log: x = m 2^e with m in [sqrt(1/2), sqrt(2)), then Cephes' polynomial in (m - 1).
inline float log(float x) {
  // Denormals: scale into the normal range first, subtract 23 ln 2 at the end.
  const bool den = x < 1.17549435e-38f && x > 0.0f;
  const float xs = den ? x * 8388608.0f : x;
  int32_t ix = as_int(xs);
  int32_t e = ((ix >> 23) & 0xff) - 126;
  float m = as_float((ix & 0x007fffff) | 0x3f000000);  // [0.5, 1)
  bool small = m < 0.707106781186547524f;
  e = small ? e - 1 : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  float fe = static_cast<float>(e);
  float y = p * m * z;
  y += fe * -2.12194440e-4f;
  y += -0.5f * z;
  y = m + y + fe * 0.693359375f;
  y = den ? y - 15.9423851528787f : y;
  // Special values: log(0) = -inf, log(<0) = NaN, log(inf) = inf, NaN stays NaN.
  y = x == 0.0f ? -__builtin_inff() : y;
  y = x < 0.0f ? __builtin_nanf("") : y;
  y = x == __builtin_inff() ? x : y;
  return x != x ? x : y;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }

// tanh: odd polynomial (Cephes) for |x| < 0.625, 1 - 2 / (exp(2|x|) + 1) beyond.
inline float tanh(float x) {
  float ax = __builtin_fabsf(x);
  float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  float small = x + x * z * p;
  float big = 1.0f - 2.0f / (exp(2.0f * ax) + 1.0f);
  big = x < 0.0f ? -big : big;
  return ax < 0.625f ? small : big;
}

// erf: W. J. Cody's rational approximations are long; this uses erf(x) = 1 - erfc(x) with
// the Numerical Recipes erfc (Chebyshev fit, fractional error < 1.2e-7), odd in x.
inline float erf(float x) {
  float z = __builtin_fabsf(x);
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  float erfc = t * exp(-z * z + p);
  float r = 1.0f - erfc;
  // Near zero 1 - erfc cancels: use the Taylor series there.
  float z2 = z * z;
  float series = z * (1.1283791670955126f + z2 * (-0.37612638903183754f + z2 * 0.11283791670955126f));
  r = z < 0.1f ? series : r;
  return x < 0.0f ? -r : r;
}

inline float gelu(float x) { return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f)); }

}  // namespace loom::cpu::vmath
