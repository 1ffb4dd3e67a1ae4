#include "loom/nn/init.h"

#include <cmath>

#include "loom/base/rng.h"

namespace loom::nn::init {

std::pair<int64_t, int64_t> fans(const Tensor& w) {
  LOOM_CHECK(w.dim() >= 2, "init: fan-in needs a weight of rank >= 2, got {}", shape_str(w.shape()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < w.dim(); ++d) receptive *= w.shape()[d];
  return {w.shape()[1] * receptive, w.shape()[0] * receptive};
}

void uniform(Tensor& t, double lo, double hi) {
  LOOM_DISPATCH_FLOAT(t.dtype(), "init::uniform", [&] {
    Tensor c = t.contiguous();
    default_generator().fill_uniform(c.data<scalar_t>(), c.numel(), scalar_t(lo), scalar_t(hi));
    if (!c.same(t)) t.copy_from(c);
  });
}

void normal(Tensor& t, double mean, double std) {
  LOOM_DISPATCH_FLOAT(t.dtype(), "init::normal", [&] {
    Tensor c = t.contiguous();
    default_generator().fill_normal(c.data<scalar_t>(), c.numel(), scalar_t(mean), scalar_t(std));
    if (!c.same(t)) t.copy_from(c);
  });
}

void zeros(Tensor& t) { t.fill(0.0); }
void ones(Tensor& t) { t.fill(1.0); }

void kaiming_normal(Tensor& w) { normal(w, 0.0, std::sqrt(2.0 / static_cast<double>(fans(w).first))); }

void kaiming_uniform(Tensor& w, double a) {
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  double bound = gain * std::sqrt(3.0 / static_cast<double>(fans(w).first));
  uniform(w, -bound, bound);
}

void xavier_uniform(Tensor& w) {
  auto [in, out] = fans(w);
  double bound = std::sqrt(6.0 / static_cast<double>(in + out));
  uniform(w, -bound, bound);
}

void xavier_normal(Tensor& w) {
  auto [in, out] = fans(w);
  normal(w, 0.0, std::sqrt(2.0 / static_cast<double>(in + out)));
}

}  // namespace loom::nn::init
