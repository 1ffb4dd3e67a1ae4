// Parameter initializers (in place, no autodiff), seeded through the Philox default stream.
#pragma once

#include "loom/tensor/tensor.h"

namespace loom::nn::init {

// fan_in / fan_out of a weight: [out, in] for linear, [out, in/groups, kh, kw] for conv.
std::pair<int64_t, int64_t> fans(const Tensor& w);
void uniform(Tensor& t, double lo, double hi);
void normal(Tensor& t, double mean, double std);
void zeros(Tensor& t);
void ones(Tensor& t);
// He et al.: std = gain / sqrt(fan_in) with gain sqrt(2) for ReLU (normal variant), and the
// uniform variant with bound sqrt(3) * std.
void kaiming_normal(Tensor& w);
void kaiming_uniform(Tensor& w, double a = 0.0);
// Glorot & Bengio: bound = sqrt(6 / (fan_in + fan_out)).
void xavier_uniform(Tensor& w);
void xavier_normal(Tensor& w);

}  // namespace loom::nn::init
