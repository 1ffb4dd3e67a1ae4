// Finite-difference checks in f64 of every op's VJP and JVP (and, for smooth ops, second
// derivatives), on the inputs of the golden cases: broadcasting, size-1 and empty dims.
#include <gtest/gtest.h>

#include <cmath>

#include "loom/autodiff/transforms.h"
#include "loom/ops/ops.h"
#include "tests/test_util.h"

namespace loom {
namespace {

using V = std::vector<Tensor>;
constexpr double kEps = 1e-6;

double dot(const Tensor& a, const Tensor& b) { return sum(a * b).item_double(); }

// Numerical d <ct, f(x)> / d x_i for every float input, by central differences.
V numeric_vjp(const testing::OpFn& f, const V& xs, const Tensor& ct) {
  autodiff::NoGradGuard ng;
  V out;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!is_floating(xs[i].dtype())) {
      out.emplace_back();
      continue;
    }
    Tensor g = Tensor::zeros(xs[i].shape(), DType::kF64);
    for (int64_t j = 0; j < xs[i].numel(); ++j) {
      V p = xs, m = xs;
      p[i] = xs[i].clone();
      m[i] = xs[i].clone();
      p[i].data<double>()[j] += kEps;
      m[i].data<double>()[j] -= kEps;
      g.data<double>()[j] = (dot(f(p), ct) - dot(f(m), ct)) / (2 * kEps);
    }
    out.push_back(g);
  }
  return out;
}

struct Case {
  std::string name;
  bool smooth;
  V inputs;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  auto golden = testing::load_json("tests/golden/ops.json");
  for (const auto& c : golden.at("cases")) {
    Case k{c.at("name"), c.at("smooth"), {}};
    for (const auto& j : c.at("inputs")) k.inputs.push_back(testing::tensor_from_json(j, DType::kF64));
    out.push_back(k);
  }
  return out;
}

class GradCheck : public ::testing::TestWithParam<std::string> {};

Case find_case(const std::string& name) {
  for (auto& c : cases())
    if (c.name == name) return c;
  throw std::runtime_error("no case " + name);
}

TEST_P(GradCheck, VjpMatchesFiniteDifferences) {
  Case c = find_case(GetParam());
  const auto& f = testing::op_cases().at(c.name);
  Tensor y;
  {
    autodiff::NoGradGuard ng;
    y = f(c.inputs);
  }
  Tensor ct = Tensor::randn(y.shape(), DType::kF64);
  auto [y2, pullback] = autodiff::vjp(f, c.inputs);
  V grads = pullback(ct);
  V num = numeric_vjp(f, c.inputs, ct);
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!num[i].defined()) continue;
    EXPECT_TRUE(testing::all_close(grads[i], num[i], 1e-6, 1e-5)) << c.name << " input " << i;
  }
}

TEST_P(GradCheck, JvpMatchesFiniteDifferences) {
  Case c = find_case(GetParam());
  const auto& f = testing::op_cases().at(c.name);
  V tangents, plus = c.inputs, minus = c.inputs;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!is_floating(c.inputs[i].dtype())) {
      tangents.emplace_back();
      continue;
    }
    Tensor t = Tensor::randn(c.inputs[i].shape(), DType::kF64);
    tangents.push_back(t);
    plus[i] = (c.inputs[i] + t * kEps).detach();
    minus[i] = (c.inputs[i] - t * kEps).detach();
  }
  auto [y, ty] = autodiff::jvp(f, c.inputs, tangents);
  Tensor num;
  {
    autodiff::NoGradGuard ng;
    num = (f(plus) - f(minus)) / (2 * kEps);
  }
  EXPECT_TRUE(testing::all_close(ty, num, 1e-6, 1e-5)) << c.name;
}

TEST_P(GradCheck, SecondDerivativesMatchFiniteDifferences) {
  Case c = find_case(GetParam());
  if (!c.smooth) GTEST_SKIP() << c.name << " is not smooth (kinks or ties)";
  const auto& f = testing::op_cases().at(c.name);
  Tensor y;
  {
    autodiff::NoGradGuard ng;
    y = f(c.inputs);
  }
  if (y.numel() == 0) GTEST_SKIP() << "empty output";
  Tensor ct = Tensor::randn(y.shape(), DType::kF64);
  std::vector<size_t> fidx;
  V floats, ws;
  for (size_t i = 0; i < c.inputs.size(); ++i)
    if (is_floating(c.inputs[i].dtype())) {
      fidx.push_back(i);
      floats.push_back(c.inputs[i]);
      ws.push_back(Tensor::randn(c.inputs[i].shape(), DType::kF64));
    }
  // h(x) = sum_i <vjp_f(x)(ct)_i, w_i>: its gradient needs f's second derivatives.
  testing::OpFn h = [&](const V& fl) {
    V all = c.inputs;
    for (size_t k = 0; k < fidx.size(); ++k) all[fidx[k]] = fl[k];
    auto [yy, pb] = autodiff::vjp(f, all);
    V g = pb(ct);
    Tensor acc = Tensor::scalar(0.0, DType::kF64);
    for (size_t k = 0; k < fidx.size(); ++k) acc = acc + sum(g[fidx[k]] * ws[k]);
    return acc;
  };
  V second = autodiff::grad(h)(floats);
  V num = numeric_vjp(h, floats, Tensor::scalar(1.0, DType::kF64));
  for (size_t k = 0; k < floats.size(); ++k)
    EXPECT_TRUE(testing::all_close(second[k], num[k], 1e-5, 1e-4)) << c.name << " input " << fidx[k];
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  for (const auto& c : cases()) names.push_back(c.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Ops, GradCheck, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace loom
