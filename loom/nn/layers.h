// Layers. Defaults follow PyTorch (initialization, eps, momentum), so a model defined the
// same way trains the same way.
#pragma once

#include <initializer_list>

#include "loom/nn/module.h"
#include "loom/ops/ops.h"

namespace loom::nn {

// y = x W^T + b, W [out, in]. PyTorch's init: kaiming_uniform(a = sqrt(5)) for W,
// uniform(+-1/sqrt(in)) for b.
class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0, bool bias = true,
         int64_t dilation = 1, int64_t groups = 1);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
  Conv2dOptions options;
};

// Batch statistics in training (biased variance for normalizing, unbiased for the running
// estimate, as PyTorch), running statistics in eval.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias, running_mean, running_var;
  double eps, momentum;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
  Shape normalized_shape;
  double eps;
};

// Maps integer ids of any shape to rows of weight [num, dim] (init normal(0, 1)).
class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim);
  Tensor forward(const Tensor& ids) override;
  Tensor weight;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5) : p(p) {}
  Tensor forward(const Tensor& x) override { return dropout(x, p, training_); }
  double p;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
};

class GELU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return gelu(x); }
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0)
      : kernel(kernel), stride(stride), padding(padding) {}
  Tensor forward(const Tensor& x) override { return max_pool2d(x, kernel, stride, padding); }
  int64_t kernel, stride, padding;
};

class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override { return flatten(x, 1); }
};

// Children are named "0", "1", ... as in torch.nn.Sequential. forward fuses two patterns,
// with the same values and gradients and fewer passes over the activation: Conv2d, ReLU,
// MaxPool2d runs as a convolution and a max pool that applies the relu to its (smaller)
// output; Conv2d, ReLU otherwise runs as one convolution with the relu fused
// (Conv2dOptions::relu). Set `fuse` false to run every layer on its own.
class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<ModulePtr> layers);
  void append(ModulePtr m);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return layers_.size(); }
  bool fuse = true;

 private:
  std::vector<ModulePtr> layers_;
};

}  // namespace loom::nn
