#include "loom/nn/layers.h"

#include <cmath>

#include "loom/autodiff/graph.h"
#include "loom/nn/init.h"

namespace loom::nn {

Linear::Linear(int64_t in, int64_t out, bool with_bias) {
  LOOM_CHECK(in > 0 && out > 0, "Linear: sizes must be positive, got in={} out={}", in, out);
  Tensor w = Tensor::empty({out, in});
  init::kaiming_uniform(w, std::sqrt(5.0));
  weight = register_parameter("weight", w);
  if (with_bias) {
    Tensor b = Tensor::empty({out});
    double bound = 1.0 / std::sqrt(static_cast<double>(in));
    init::uniform(b, -bound, bound);
    bias = register_parameter("bias", b);
  }
}

Tensor Linear::forward(const Tensor& x) {
  LOOM_CHECK(x.dim() >= 1 && x.shape().back() == weight.shape()[1], "Linear: input {} does not end in {} features",
             shape_str(x.shape()), weight.shape()[1]);
  Tensor y = matmul(x, transpose(weight, 0, 1));
  return bias.defined() ? y + bias : y;
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, bool with_bias,
               int64_t dilation, int64_t groups)
    : options(Conv2dOptions::make(stride, padding, dilation, groups)) {
  LOOM_CHECK(in > 0 && out > 0 && kernel > 0 && groups > 0 && in % groups == 0 && out % groups == 0,
             "Conv2d: bad sizes in={} out={} kernel={} groups={}", in, out, kernel, groups);
  Tensor w = Tensor::empty({out, in / groups, kernel, kernel});
  init::kaiming_uniform(w, std::sqrt(5.0));
  weight = register_parameter("weight", w);
  if (with_bias) {
    Tensor b = Tensor::empty({out});
    double bound = 1.0 / std::sqrt(static_cast<double>(in / groups * kernel * kernel));
    init::uniform(b, -bound, bound);
    bias = register_parameter("bias", b);
  }
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, options); }

BatchNorm2d::BatchNorm2d(int64_t channels, double eps, double momentum) : eps(eps), momentum(momentum) {
  weight = register_parameter("weight", Tensor::ones({channels}));
  bias = register_parameter("bias", Tensor::zeros({channels}));
  running_mean = register_buffer("running_mean", Tensor::zeros({channels}));
  running_var = register_buffer("running_var", Tensor::ones({channels}));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  const int64_t C = weight.shape()[0];
  LOOM_CHECK(x.dim() == 4 && x.shape()[1] == C, "BatchNorm2d: input {} must be [N, {}, H, W]", shape_str(x.shape()), C);
  Shape cshape = {1, C, 1, 1};
  Tensor mu, var;
  if (training_) {
    mu = mean(x, {0, 2, 3}, true);
    Tensor d = x - mu;
    var = mean(d * d, {0, 2, 3}, true);
    const double n = static_cast<double>(x.numel() / C);
    autodiff::NoGradGuard ng;
    Tensor rm = running_mean, rv = running_var;
    rm.copy_from(running_mean * (1.0 - momentum) + reshape(mu.detach(), {C}) * momentum);
    rv.copy_from(running_var * (1.0 - momentum) + reshape(var.detach(), {C}) * (momentum * n / std::max(n - 1.0, 1.0)));
  } else {
    mu = reshape(running_mean, cshape);
    var = reshape(running_var, cshape);
  }
  return (x - mu) * rsqrt(var + eps) * reshape(weight, cshape) + reshape(bias, cshape);
}

LayerNorm::LayerNorm(Shape shape, double eps) : normalized_shape(std::move(shape)), eps(eps) {
  weight = register_parameter("weight", Tensor::ones(normalized_shape));
  bias = register_parameter("bias", Tensor::zeros(normalized_shape));
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, normalized_shape, weight, bias, eps); }

Embedding::Embedding(int64_t num, int64_t dim) {
  LOOM_CHECK(num > 0 && dim > 0, "Embedding: sizes must be positive, got {} x {}", num, dim);
  Tensor w = Tensor::empty({num, dim});
  init::normal(w, 0.0, 1.0);
  weight = register_parameter("weight", w);
}

Tensor Embedding::forward(const Tensor& ids) { return embedding(weight, ids); }

Sequential::Sequential(std::initializer_list<ModulePtr> layers) {
  for (auto& m : layers) append(m);
}

void Sequential::append(ModulePtr m) {
  register_module(std::to_string(layers_.size()), m);
  layers_.push_back(std::move(m));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    // Conv2d then ReLU: one convolution with the activation fused into its kernel (the
    // same values; the conv output is written once, already rectified).
    if (fuse && i + 1 < layers_.size()) {
      auto* conv = dynamic_cast<Conv2d*>(layers_[i].get());
      if (conv && !conv->options.relu && dynamic_cast<ReLU*>(layers_[i + 1].get())) {
        auto* pool = i + 2 < layers_.size() ? dynamic_cast<MaxPool2d*>(layers_[i + 2].get()) : nullptr;
        if (pool) {
          // Conv2d, ReLU, MaxPool2d: one conv2d_max_pool2d op. The convolution runs a few
          // images at a time into a cache-sized buffer that the pooling reads at once (the
          // full-size activation and its gradient never go to memory); relu commutes with
          // max, so it runs on the pooled output and its gradient mask on the pooled side.
          Conv2dOptions o = conv->options;
          o.relu = true;
          h = conv2d_max_pool2d(h, conv->weight, conv->bias, o, pool->kernel, pool->stride, pool->padding);
          i += 2;
          continue;
        }
        Conv2dOptions o = conv->options;
        o.relu = true;
        h = conv2d(h, conv->weight, conv->bias, o);
        ++i;
        continue;
      }
    }
    h = layers_[i]->forward(h);
  }
  return h;
}

}  // namespace loom::nn
