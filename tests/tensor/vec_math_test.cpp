// The vectorizable float math against libm (double precision reference).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "loom/base/cpu.h"
#include "loom/ops/ops.h"
#include "loom/tensor/kernels/cpu/vec_math.h"
#include "tests/test_util.h"

namespace loom::cpu {
namespace {

float ulp_distance(float a, double ref) {
  float r = static_cast<float>(ref);
  if (a == r) return 0;
  float spacing = std::nextafter(std::fabs(r), std::numeric_limits<float>::infinity()) - std::fabs(r);
  return std::fabs(a - r) / spacing;
}

TEST(VecMath, ExpAndLogWithinTwoUlp) {
  for (float x = -87.0f; x < 88.0f; x += 0.0137f) EXPECT_LE(ulp_distance(vmath::exp(x), std::exp(double(x))), 2.0f) << x;
  for (float x = 1e-30f; x < 1e30f; x *= 1.37f) EXPECT_LE(ulp_distance(vmath::log(x), std::log(double(x))), 2.0f) << x;
  EXPECT_LE(ulp_distance(vmath::log(1e-40f), std::log(1e-40)), 2.0f);  // denormal
}

TEST(VecMath, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(vmath::exp(-100.0f), 0.0f);
  EXPECT_EQ(vmath::exp(100.0f), inf);
  EXPECT_TRUE(std::isnan(vmath::exp(nan)));
  EXPECT_EQ(vmath::log(0.0f), -inf);
  EXPECT_TRUE(std::isnan(vmath::log(-1.0f)));
  EXPECT_EQ(vmath::log(inf), inf);
  EXPECT_EQ(vmath::tanh(50.0f), 1.0f);
  EXPECT_EQ(vmath::tanh(-50.0f), -1.0f);
  EXPECT_EQ(vmath::sigmoid(-200.0f), 0.0f);
  EXPECT_EQ(vmath::sigmoid(200.0f), 1.0f);
}

TEST(VecMath, TanhSigmoidErfGeluAccurate) {
  for (float x = -10.0f; x < 10.0f; x += 0.00731f) {
    double d = x;
    EXPECT_NEAR(vmath::tanh(x), std::tanh(d), 2e-7 + 2e-7 * std::fabs(std::tanh(d))) << x;
    EXPECT_NEAR(vmath::sigmoid(x), 1 / (1 + std::exp(-d)), 2e-7 + 2e-7 / (1 + std::exp(-d))) << x;
    EXPECT_NEAR(vmath::erf(x), std::erf(d), 3e-7) << x;
    double g = 0.5 * d * (1 + std::erf(d / std::sqrt(2.0)));
    EXPECT_NEAR(vmath::gelu(x), g, 1e-6 + 1e-6 * std::fabs(g)) << x;
  }
  // Relative accuracy near zero, where 1 - erfc or 1 - 2/(e^2x + 1) would cancel.
  for (float x : {1e-6f, 3e-4f, 0.01f, 0.09f}) {
    EXPECT_NEAR(vmath::tanh(x) / std::tanh(double(x)), 1.0, 1e-6) << x;
    EXPECT_NEAR(vmath::erf(x) / std::erf(double(x)), 1.0, 1e-6) << x;
  }
}

TEST(VecMath, WideStridedAndPortableKernelsAgree) {
  Tensor x = Tensor::randn({10007}) * 3.0;
  std::vector<std::function<Tensor(const Tensor&)>> fns = {
      [](const Tensor& t) { return exp(t); },     [](const Tensor& t) { return log(abs(t)); },
      [](const Tensor& t) { return tanh(t); },    [](const Tensor& t) { return sigmoid(t); },
      [](const Tensor& t) { return gelu(t); },    [](const Tensor& t) { return erf(t); },
      [](const Tensor& t) { return t * t + t; }, [](const Tensor& t) { return maximum(t, t * 0.5); }};
  for (auto& f : fns) {
    Tensor wide = f(x);
    set_isa_override(Isa::kGeneric);
    Tensor portable = f(x);
    Tensor xs = squeeze(slice(stack({x, x}, 1), 1, 0, 1), 1);  // x again, with stride 2
    Tensor strided = f(xs);                                     // the strided scalar path
    set_isa_override(Isa::kAvx512);
    // The same formulas; only instruction selection (FMA contraction, rounding of the
    // range reduction) differs between ISAs.
    EXPECT_TRUE(loom::testing::all_close(wide, portable, 1e-6, 1e-6));
    EXPECT_TRUE(loom::testing::all_close(wide, strided, 1e-6, 1e-6));
  }
}

// f32 softmax over the last axis runs one flat vectorized exp per block of rows; it must
// agree with the f64 kernel on short and long rows (one crossing the 4096-float block),
// extreme logits, -inf entries and all -inf rows (NaN in both, as in PyTorch).
TEST(VecMath, SoftmaxRowsMatchDoublePrecision) {
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t R : {1, 10, 17, 300, 5000}) {
    Tensor x = Tensor::randn({7, R}) * 4.0;
    std::vector<float> v = x.to_vector<float>();
    v[0] = 1000.0f;                                  // a dominant logit
    if (R > 1) v[static_cast<size_t>(R + 1)] = -inf;  // one -inf entry
    for (int64_t r = 0; r < R; ++r) v[static_cast<size_t>(2 * R + r)] = -inf;  // an all -inf row
    x = Tensor::from_vector(v, {7, R});
    for (bool lg : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "R=" << R << " log=" << lg);
      const std::vector<float> got = (lg ? log_softmax(x, 1) : softmax(x, 1)).to_vector<float>();
      const std::vector<double> want =
          (lg ? log_softmax(cast(x, DType::kF64), 1) : softmax(cast(x, DType::kF64), 1)).to_vector<double>();
      for (size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(want[i]) || std::isinf(want[i])) {
          EXPECT_EQ(std::isnan(got[i]), std::isnan(want[i])) << i;
          if (std::isinf(want[i])) {
            EXPECT_EQ(got[i], static_cast<float>(want[i])) << i;
          }
          continue;
        }
        EXPECT_NEAR(got[i], want[i], 1e-5 * (1 + std::abs(want[i]))) << i;
      }
    }
  }
}

// f32 sums over a leading axis accumulate rows in registers, 64/16/1 columns at a time; the
// result must be bitwise the in-order row accumulation, whatever the width and ISA.
TEST(VecMath, ColumnSumsAddRowsInOrder) {
  for (Isa isa : {Isa::kAvx512, Isa::kGeneric}) {
    if (isa == Isa::kAvx512 && active_isa() < Isa::kAvx512) continue;
    set_isa_override(isa);
    for (int64_t C : {2, 15, 16, 17, 64, 65, 100, 300})  // (C = 1 is a row reduction, another order)
      for (int64_t R : {1, 7, 256}) {
        Tensor x = Tensor::randn({3, R, C});
        const std::vector<float> v = x.to_vector<float>(), got = sum(x, {1}).to_vector<float>();
        for (int64_t o = 0; o < 3; ++o)
          for (int64_t c = 0; c < C; ++c) {
            float acc = 0.0f;
            for (int64_t r = 0; r < R; ++r) acc += v[static_cast<size_t>((o * R + r) * C + c)];
            ASSERT_EQ(got[static_cast<size_t>(o * C + c)], acc) << "R=" << R << " C=" << C << " isa " << isa_name(isa);
          }
      }
  }
  set_isa_override(Isa::kAvx512);
}

}  // namespace
}  // namespace loom::cpu
