#include "tests/test_util.h"

#include <cmath>
#include <fstream>

#include "loom/ops/ops.h"

namespace loom::testing {

std::string source_path(const std::string& rel) { return std::string(LOOM_SOURCE_DIR) + "/" + rel; }

nlohmann::json load_json(const std::string& rel) {
  std::ifstream in(source_path(rel));
  if (!in) throw std::runtime_error("cannot open " + source_path(rel));
  return nlohmann::json::parse(in);
}

Tensor tensor_from_json(const nlohmann::json& j, DType fdtype) {
  Shape shape = j.at("shape").get<Shape>();
  const std::string dt = j.at("dtype");
  const auto& data = j.at("data");
  if (dt == "bool") {
    std::vector<bool> v;
    for (const auto& x : data) v.push_back(x.get<bool>());
    return Tensor::from_vector(v, shape);
  }
  if (dt == "i64") return Tensor::from_vector(data.get<std::vector<int64_t>>(), shape);
  return Tensor::from_vector(data.get<std::vector<double>>(), shape).to(fdtype);
}

double closeness(const Tensor& a, const Tensor& b, double atol, double rtol) {
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    double tol = atol + rtol * std::abs(vb[i]);
    double d = std::abs(va[i] - vb[i]);
    if (std::isnan(va[i]) != std::isnan(vb[i])) return INFINITY;
    if (!std::isnan(va[i])) worst = std::max(worst, d / tol);
  }
  return worst;
}

::testing::AssertionResult all_close(const Tensor& a, const Tensor& b, double atol, double rtol) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << "shapes differ: " << shape_str(a.shape()) << " vs " << shape_str(b.shape());
  double c = closeness(a, b, atol, rtol);
  if (c <= 1.0) return ::testing::AssertionSuccess();
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  size_t worst = 0;
  double wv = -1;
  for (size_t i = 0; i < va.size(); ++i) {
    double r = std::abs(va[i] - vb[i]) / (atol + rtol * std::abs(vb[i]));
    if (std::isnan(r) || r > wv) wv = r, worst = i;
  }
  return ::testing::AssertionFailure() << "not close (ratio " << c << "): element " << worst << " is " << va[worst]
                                       << ", expected " << vb[worst];
}

const std::map<std::string, OpFn>& op_cases() {
  using V = std::vector<Tensor>;
  static const std::map<std::string, OpFn> cases = {
      {"neg", [](const V& x) { return -x[0]; }},
      {"exp", [](const V& x) { return exp(x[0]); }},
      {"log", [](const V& x) { return log(x[0]); }},
      {"sqrt", [](const V& x) { return sqrt(x[0]); }},
      {"rsqrt", [](const V& x) { return rsqrt(x[0]); }},
      {"tanh", [](const V& x) { return tanh(x[0]); }},
      {"sigmoid", [](const V& x) { return sigmoid(x[0]); }},
      {"relu", [](const V& x) { return relu(x[0]); }},
      {"gelu", [](const V& x) { return gelu(x[0]); }},
      {"abs", [](const V& x) { return abs(x[0]); }},
      {"erf", [](const V& x) { return erf(x[0]); }},
      {"clamp", [](const V& x) { return clamp(x[0], -0.5, 0.5); }},
      {"exp_empty", [](const V& x) { return exp(x[0]); }},
      {"add", [](const V& x) { return x[0] + x[1]; }},
      {"add_size1", [](const V& x) { return x[0] + x[1]; }},
      {"add_empty", [](const V& x) { return x[0] + x[1]; }},
      {"sub", [](const V& x) { return x[0] - x[1]; }},
      {"mul", [](const V& x) { return x[0] * x[1]; }},
      {"div", [](const V& x) { return x[0] / x[1]; }},
      {"pow", [](const V& x) { return pow(x[0], x[1]); }},
      {"pow_scalar", [](const V& x) { return pow(x[0], 3.0); }},
      {"maximum", [](const V& x) { return maximum(x[0], x[1]); }},
      {"minimum", [](const V& x) { return minimum(x[0], x[1]); }},
      {"where", [](const V& x) { return where(x[0], x[1], x[2]); }},
      {"relu_backward", [](const V& x) { return relu_backward(x[0], x[1]); }},
      {"scalar_ops", [](const V& x) { return (2.0 * x[0] + 1.0) / 3.0 - x[0] * 0.5; }},
      {"sum_all", [](const V& x) { return sum(x[0]); }},
      {"sum_axis1_keep", [](const V& x) { return sum(x[0], {1}, true); }},
      {"sum_axes02", [](const V& x) { return sum(x[0], {0, 2}); }},
      {"sum_empty", [](const V& x) { return sum(x[0], {0}); }},
      {"mean_axis0", [](const V& x) { return mean(x[0], {0}); }},
      {"amax_axis1", [](const V& x) { return amax(x[0], {1}); }},
      {"amin_all", [](const V& x) { return amin(x[0]); }},
      {"logsumexp_axis1", [](const V& x) { return logsumexp(x[0], {1}); }},
      {"var_axis1", [](const V& x) { return var(x[0], {1}); }},
      {"softmax_last", [](const V& x) { return softmax(x[0], -1); }},
      {"softmax_axis0", [](const V& x) { return softmax(x[0], 0); }},
      {"log_softmax_last", [](const V& x) { return log_softmax(x[0], -1); }},
      {"matmul_2d", [](const V& x) { return matmul(x[0], x[1]); }},
      {"matmul_batched_broadcast", [](const V& x) { return matmul(x[0], x[1]); }},
      {"matmul_vec_mat", [](const V& x) { return matmul(x[0], x[1]); }},
      {"matmul_mat_vec", [](const V& x) { return matmul(x[0], x[1]); }},
      {"matmul_large", [](const V& x) { return matmul(x[0], x[1]); }},
      {"conv2d_pad1_bias", [](const V& x) { return conv2d(x[0], x[1], x[2], Conv2dOptions::make(1, 1)); }},
      {"max_pool2d_backward",
       [](const V& x) { return max_pool2d_backward(x[1], max_pool2d_with_indices(x[0], 2).second, x[0].shape(), 2); }},
      {"max_pool2d_relu", [](const V& x) { return max_pool2d(x[0], 2, 2, 0, /*relu=*/true); }},
      {"conv2d_max_pool2d_relu",
       [](const V& x) { return conv2d_max_pool2d(x[0], x[1], x[2], Conv2dOptions::make(1, 1, 1, 1, /*relu=*/true), 2); }},
      {"conv2d_max_pool2d_k3s2p1_g2",
       [](const V& x) { return conv2d_max_pool2d(x[0], x[1], Tensor(), Conv2dOptions::make(1, 0, 1, 2), 3, 2, 1); }},
      {"conv2d_pooled_backward_input",
       [](const V& x) {
         return conv2d_pooled_backward_input(x[1], max_pool2d_with_indices(x[0], 2).second, x[2], {2, 3, 6, 7},
                                             Conv2dOptions::make(1, 1), 2);
       }},
      {"conv2d_pooled_backward_weight",
       [](const V& x) {
         return conv2d_pooled_backward_weight(x[0], x[2], max_pool2d_with_indices(x[1], 2).second, {4, 3, 3, 3},
                                              Conv2dOptions::make(1, 1), 2);
       }},
      {"conv2d_bias_relu",
       [](const V& x) { return conv2d(x[0], x[1], x[2], Conv2dOptions::make(1, 1, 1, 1, /*relu=*/true)); }},
      {"conv2d_s2_d2_g2", [](const V& x) { return conv2d(x[0], x[1], Tensor(), Conv2dOptions::make(2, 1, 2, 2)); }},
      {"conv2d_1x1", [](const V& x) { return conv2d(x[0], x[1]); }},
      {"max_pool2d_k2", [](const V& x) { return max_pool2d(x[0], 2); }},
      {"max_pool2d_k3_s2_p1", [](const V& x) { return max_pool2d(x[0], 3, 2, 1); }},
      {"avg_pool2d_k2", [](const V& x) { return avg_pool2d(x[0], 2); }},
      {"avg_pool2d_k3_s2_p1", [](const V& x) { return avg_pool2d(x[0], 3, 2, 1); }},
      {"layer_norm_affine", [](const V& x) { return layer_norm(x[0], {8}, x[1], x[2]); }},
      {"layer_norm_2d", [](const V& x) { return layer_norm(x[0], {3, 4}); }},
      {"cross_entropy", [](const V& x) { return cross_entropy(x[0], x[1]); }},
      {"cross_entropy_smooth", [](const V& x) { return cross_entropy(x[0], x[1], 0.1); }},
      {"mse", [](const V& x) { return mse_loss(x[0], x[1]); }},
      {"embedding", [](const V& x) { return embedding(x[0], x[1]); }},
      {"index_select_axis1", [](const V& x) { return index_select(x[0], 1, x[1]); }},
      {"gather_axis1", [](const V& x) { return gather(x[0], 1, x[1]); }},
      {"concat_axis1", [](const V& x) { return concat({x[0], x[1]}, 1); }},
      {"stack_axis0", [](const V& x) { return stack({x[0], x[1]}, 0); }},
      {"split_part1", [](const V& x) { return split(x[0], {1, 2}, 1)[1]; }},
      {"reshape", [](const V& x) { return reshape(x[0], {2, 6}); }},
      {"permute", [](const V& x) { return permute(x[0], {2, 0, 1}); }},
      {"transpose_then_matmul", [](const V& x) { return matmul(transpose(x[0], 0, 1), x[1]); }},
      {"slice_step", [](const V& x) { return slice(x[0], 0, 1, 5, 2); }},
      {"expand", [](const V& x) { return expand(x[0], {2, 3, 4}); }},
      {"squeeze_unsqueeze", [](const V& x) { return unsqueeze(squeeze(x[0], 1), 0); }},
  };
  return cases;
}

}  // namespace loom::testing
