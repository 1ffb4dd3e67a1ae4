// The vectorized 2x2 max pool equals the scalar loop: values and argmax indices, with ties,
// NaNs and rows whose width is not a multiple of the vector.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "loom/base/cpu.h"
#include "loom/tensor/kernels/cpu/conv.h"

namespace loom {
namespace {

TEST(MaxPool, VectorKernelEqualsScalar) {
  std::mt19937 rng(9);
  for (const Shape& s : {Shape{2, 3, 40, 70}, Shape{1, 2, 64, 64}, Shape{3, 1, 9, 33}, Shape{1, 1, 2, 32}, Shape{4, 5, 28, 28}, Shape{4, 5, 14, 14}, Shape{2, 2, 6, 7}}) {
    SCOPED_TRACE(shape_str(s));
    std::vector<float> v(numel(s));
    for (auto& x : v) {
      const int r = rng() % 50;
      x = r == 0 ? NAN : r < 10 ? 1.0f : static_cast<float>(rng() % 1000) / 100.f;  // ties and NaNs
    }
    Tensor x = Tensor::from_vector(v, s);
    cpu::Pool2dParams p{2, 2, 2, 2, 0, 0};
    const Shape out{s[0], s[1], s[2] / 2, s[3] / 2};
    Tensor y_vec = Tensor::empty(out), i_vec = Tensor::empty(out, DType::kI64);
    Tensor y_ref = Tensor::empty(out), i_ref = Tensor::empty(out, DType::kI64);
    set_isa_override(Isa::kAvx512);
    cpu::max_pool2d(x, p, y_vec, i_vec);
    set_isa_override(Isa::kGeneric);
    cpu::max_pool2d(x, p, y_ref, i_ref);
    set_isa_override(Isa::kAvx512);
    EXPECT_EQ(i_vec.to_vector<int64_t>(), i_ref.to_vector<int64_t>());
    const auto a = y_vec.to_vector<float>(), b = y_ref.to_vector<float>();
    for (size_t k = 0; k < a.size(); ++k) {
      if (std::isnan(b[k])) {
        EXPECT_TRUE(std::isnan(a[k])) << k;
      } else {
        EXPECT_EQ(a[k], b[k]) << k;
      }
    }
  }
}

// The vectorized 2x2 backward equals the zero-and-scatter loop (odd sizes leave a row and a
// column no window covers); an index outside its window falls back to the loop, and one
// outside the plane is an error naming the op.
TEST(MaxPool, BackwardVectorKernelEqualsScatter) {
  std::mt19937 rng(21);
  for (const Shape& s : {Shape{2, 3, 28, 28}, Shape{1, 2, 7, 9}, Shape{3, 1, 14, 40}, Shape{1, 1, 2, 2}}) {
    SCOPED_TRACE(shape_str(s));
    Tensor x = Tensor::randn(s);
    cpu::Pool2dParams p{2, 2, 2, 2, 0, 0};
    const Shape out{s[0], s[1], s[2] / 2, s[3] / 2};
    Tensor y = Tensor::empty(out), idx = Tensor::empty(out, DType::kI64), g = Tensor::randn(out);
    cpu::max_pool2d(x, p, y, idx);
    Tensor a = Tensor::empty(s), b = Tensor::empty(s);
    cpu::max_pool2d_backward(g, idx, p, a);
    set_isa_override(Isa::kGeneric);
    cpu::max_pool2d_backward(g, idx, p, b);
    set_isa_override(Isa::kAvx512);
    EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  }
  // Index 5 of the 4x4 plane is in window (0, 0)'s neighbour: valid in the plane, not in its
  // window -> the general loop places it.
  Tensor g = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor idx = Tensor::from_vector<int64_t>({5, 2, 8, 15}, {1, 1, 2, 2});
  Tensor gx = Tensor::empty({1, 1, 4, 4});
  cpu::Pool2dParams p{2, 2, 2, 2, 0, 0};
  cpu::max_pool2d_backward(g, idx, p, gx);
  std::vector<float> want(16, 0.0f);
  want[5] = 1, want[2] = 2, want[8] = 3, want[15] = 4;
  EXPECT_EQ(gx.to_vector<float>(), want);
  Tensor bad = Tensor::from_vector<int64_t>({0, 2, 8, 16}, {1, 1, 2, 2});
  try {
    cpu::max_pool2d_backward(g, bad, p, gx);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_pool2d_backward"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace loom
