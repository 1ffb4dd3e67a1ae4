#include <gtest/gtest.h>

#include <cmath>

#include "loom/autodiff/transforms.h"
#include "loom/ops/ops.h"
#include "tests/test_util.h"

namespace loom {
namespace {

using autodiff::grad;
using V = std::vector<Tensor>;

Tensor vec(std::vector<double> v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); }

TEST(Autodiff, EagerBackwardAccumulatesIntoLeaves) {
  Tensor w = vec({1, 2, 3}).set_requires_grad(true);
  Tensor loss = sum(w * w);
  loss.backward();
  EXPECT_EQ(w.grad().to_vector<double>(), (std::vector<double>{2, 4, 6}));
  sum(w * 3.0).backward();  // accumulates
  EXPECT_EQ(w.grad().to_vector<double>(), (std::vector<double>{5, 7, 9}));
  w.zero_grad();
  EXPECT_FALSE(w.grad().defined());
}

TEST(Autodiff, TapeIsReleasedAfterBackward) {
  int64_t before = autodiff::live_nodes();
  {
    Tensor w = Tensor::randn({4, 4}, DType::kF64).set_requires_grad(true);
    Tensor x = Tensor::randn({8, 4}, DType::kF64);
    Tensor loss = mean(tanh(matmul(x, w)));
    EXPECT_GT(autodiff::live_nodes(), before);
    loss.backward();
    // Saved inputs are dropped at once, and the nodes die with the last tensor handle.
  }
  EXPECT_EQ(autodiff::live_nodes(), before);
}

TEST(Autodiff, NoGradRecordsNothing) {
  Tensor w = vec({1, 2}).set_requires_grad(true);
  autodiff::NoGradGuard ng;
  Tensor y = w * 2.0;
  EXPECT_FALSE(y.requires_grad());
}

TEST(Autodiff, GradOfGradOfPolynomial) {
  // f(x) = x^3 -> f' = 3x^2 -> f'' = 6x -> f''' = 6
  autodiff::Fn f = [](const Tensor& x) { return sum(x * x * x); };
  Tensor x = vec({1.0, -2.0, 0.5});
  auto f1 = grad(f);
  auto f2 = grad([&](const Tensor& z) { return sum(f1(z)); });
  auto f3 = grad([&](const Tensor& z) { return sum(f2(z)); });
  EXPECT_TRUE(testing::all_close(f1(x), vec({3, 12, 0.75}), 1e-12, 1e-12));
  EXPECT_TRUE(testing::all_close(f2(x), vec({6, -12, 3}), 1e-12, 1e-12));
  EXPECT_TRUE(testing::all_close(f3(x), vec({6, 6, 6}), 1e-12, 1e-12));
}

TEST(Autodiff, GradDoesNotTouchArgumentsOrTheirGrad) {
  Tensor x = vec({1, 2}).set_requires_grad(true);
  auto [y, g] = autodiff::value_and_grad([](const Tensor& z) { return sum(exp(z)); })(x);
  EXPECT_NEAR(y.item_double(), std::exp(1.0) + std::exp(2.0), 1e-12);
  EXPECT_FALSE(x.grad().defined());
  EXPECT_TRUE(testing::all_close(g, exp(x).detach(), 1e-12, 1e-12));
}

TEST(Autodiff, HessianVectorProductOfQuadraticForm) {
  // f(x) = 0.5 x^T A x with symmetric A: H = A, so H v = A v.
  Tensor A = Tensor::from_vector<double>({2, 1, 0, 1, 3, 1, 0, 1, 4}, {3, 3});
  autodiff::Fn f = [&](const Tensor& x) { return 0.5 * sum(x * matmul(A, x)); };
  Tensor x = vec({0.3, -1, 2}), v = vec({1, 2, 3});
  Tensor hv = autodiff::hvp(f, x, v);
  EXPECT_TRUE(testing::all_close(hv, matmul(A, v), 1e-12, 1e-12));
}

TEST(Autodiff, HvpOfSoftmaxCrossEntropyMatchesFiniteDifferences) {
  Tensor target = Tensor::from_vector<int64_t>({1, 0}, {2});
  autodiff::Fn f = [&](const Tensor& x) { return cross_entropy(tanh(reshape(x, {2, 3})), target); };
  Tensor x = Tensor::randn({6}, DType::kF64), v = Tensor::randn({6}, DType::kF64);
  Tensor hv = autodiff::hvp(f, x, v);
  const double eps = 1e-5;
  Tensor num = (grad(f)((x + v * eps).detach()) - grad(f)((x - v * eps).detach())) / (2 * eps);
  EXPECT_TRUE(testing::all_close(hv, num, 1e-7, 1e-5));
}

TEST(Autodiff, ForwardOverReverseEqualsReverseOverReverse) {
  autodiff::Fn f = [](const Tensor& x) { return sum(sigmoid(x) * x * x); };
  Tensor x = Tensor::randn({5}, DType::kF64), v = Tensor::randn({5}, DType::kF64);
  auto [g, hv_fwd] = autodiff::jvp([&](const V& a) { return grad(f)(a[0]); }, {x}, {v});
  EXPECT_TRUE(testing::all_close(hv_fwd, autodiff::hvp(f, x, v), 1e-10, 1e-8));
}

TEST(Autodiff, JvpOfComposite) {
  // d/dt tanh(W (x + t v)) = (1 - y^2) * W v
  Tensor W = Tensor::randn({3, 4}, DType::kF64), x = Tensor::randn({4}, DType::kF64), v = Tensor::randn({4}, DType::kF64);
  auto [y, ty] = autodiff::jvp([&](const V& a) { return tanh(matmul(W, a[0])); }, {x}, {v});
  EXPECT_TRUE(testing::all_close(ty, (1.0 - y * y) * matmul(W, v), 1e-12, 1e-12));
  EXPECT_THROW(autodiff::jvp([&](const V& a) { return autodiff::jvp([](const V& b) { return b[0]; }, a, a).second; },
                             {x}, {v}),
               Error);
}

TEST(Autodiff, GradWithRespectToSeveralArgumentsAndUnusedOnes) {
  auto g = grad(autodiff::FnN([](const V& a) { return sum(a[0] * a[1]); }));
  V gs = g({vec({1, 2}), vec({3, 4}), vec({5})});
  EXPECT_EQ(gs[0].to_vector<double>(), (std::vector<double>{3, 4}));
  EXPECT_EQ(gs[1].to_vector<double>(), (std::vector<double>{1, 2}));
  EXPECT_EQ(gs[2].to_vector<double>(), (std::vector<double>{0}));
}

TEST(Autodiff, GradRejectsNonScalarFunctions) {
  EXPECT_THROW(grad([](const Tensor& x) { return x * 2.0; })(vec({1, 2})), Error);
}

TEST(Autodiff, SharedSubexpressionsAccumulate) {
  // y = x*x used twice: d/dx (y + y) = 4x
  auto g = grad([](const Tensor& x) {
    Tensor y = x * x;
    return sum(y + y);
  });
  EXPECT_EQ(g(vec({1, 3})).to_vector<double>(), (std::vector<double>{4, 12}));
}


// An unrolled recurrence of n sequential ops on x.
Tensor deep_chain(const Tensor& x, int n) {
  Tensor h = x;
  for (int i = 0; i < n; ++i) h = h * 1.0;
  return h;
}

TEST(Autodiff, VeryDeepGraphsDoNotExhaustTheStack) {
  // 200k sequential ops: the backward walk is iterative.
  Tensor x = Tensor::from_vector<double>({1.0}, {1}).set_requires_grad(true);
  sum(deep_chain(x, 200000)).backward();
  EXPECT_EQ(x.grad().to_vector<double>()[0], 1.0);
}

TEST(Autodiff, DroppingAVeryDeepGraphWithoutBackwardDoesNotOverflow) {
  Tensor x = Tensor::from_vector<double>({1.0}, {1}).set_requires_grad(true);
  { Tensor h = deep_chain(x, 200000); }  // the whole chain is released here
  EXPECT_EQ(autodiff::live_nodes(), 0);
}

}  // namespace
}  // namespace loom
