#include "loom/nn/optim.h"

#include <cmath>

#include "loom/base/error.h"
#include "loom/base/thread_pool.h"

namespace loom::nn {

Optimizer::Optimizer(std::vector<Tensor> params, double lr) : params_(std::move(params)), lr_(lr) {
  LOOM_CHECK(lr >= 0, "optimizer: learning rate must be >= 0, got {}", lr);
  for (const Tensor& p : params_) {
    LOOM_CHECK(p.is_contiguous() && is_floating(p.dtype()),
               "optimizer: parameters must be contiguous floating tensors (got {} {})", dtype_name(p.dtype()),
               shape_str(p.shape()));
  }
}

void Optimizer::zero_grad() {
  for (Tensor& p : params_) p.zero_grad();
}

namespace {

Tensor zeros_like(const Tensor& p) { return Tensor::zeros(p.shape(), p.dtype()); }

// Runs fn(T* p, const T* g, T* s0, T* s1, lo, hi) over chunks of a parameter, its gradient
// (made contiguous and of the parameter's dtype) and up to two state tensors of its shape.
// Pointers are resolved once per call, not per element.
template <typename F>
void update(const Tensor& p, const Tensor& s0, const Tensor& s1, F fn) {
  Tensor g = p.grad();
  LOOM_CHECK(g.shape() == p.shape(), "optimizer: gradient {} does not match parameter {}", shape_str(g.shape()),
             shape_str(p.shape()));
  g = g.to(p.dtype()).contiguous();
  LOOM_DISPATCH_FLOAT(p.dtype(), "optimizer", [&] {
    scalar_t* pp = p.data<scalar_t>();
    const scalar_t* pg = g.data<scalar_t>();
    scalar_t* a = s0.defined() ? s0.data<scalar_t>() : nullptr;
    scalar_t* b = s1.defined() ? s1.data<scalar_t>() : nullptr;
    parallel_for(0, p.numel(), 1 << 16, [&](int64_t lo, int64_t hi) { fn(pp, pg, a, b, lo, hi); });
  });
}

}  // namespace

SGD::SGD(std::vector<Tensor> params, SgdOptions opt) : Optimizer(std::move(params), opt.lr), opt_(opt) {
  LOOM_CHECK(opt.momentum >= 0 && opt.weight_decay >= 0, "SGD: momentum and weight_decay must be >= 0");
  LOOM_CHECK(!opt.nesterov || opt.momentum > 0, "SGD: nesterov needs momentum > 0");
  if (opt.momentum > 0)
    for (const Tensor& p : params_) velocity_.push_back(zeros_like(p));
}

void SGD::step() {
  const double lr = lr_, mu = opt_.momentum, wd = opt_.weight_decay;
  const bool nesterov = opt_.nesterov;
  for (size_t k = 0; k < params_.size(); ++k) {
    const Tensor& p = params_[k];
    if (!p.grad().defined()) continue;
    update(p, mu > 0 ? velocity_[k] : Tensor(), Tensor(), [&](auto* pp, const auto* pg, auto* pv, auto*, int64_t lo, int64_t hi) {
      using T = std::remove_pointer_t<decltype(pp)>;
      const T tlr = T(lr), tmu = T(mu), twd = T(wd);
      if (!pv) {
        for (int64_t i = lo; i < hi; ++i) pp[i] -= tlr * (pg[i] + twd * pp[i]);
        return;
      }
      for (int64_t i = lo; i < hi; ++i) {
        const T g = pg[i] + twd * pp[i];
        pv[i] = tmu * pv[i] + g;
        pp[i] -= tlr * (nesterov ? g + tmu * pv[i] : pv[i]);
      }
    });
  }
}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions opt) : Optimizer(std::move(params), opt.lr), opt_(opt) {
  LOOM_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1, "AdamW: betas must be in [0, 1)");
  LOOM_CHECK(opt.eps > 0 && opt.weight_decay >= 0, "AdamW: eps must be > 0 and weight_decay >= 0");
  for (const Tensor& p : params_) {
    m_.push_back(zeros_like(p));
    v_.push_back(zeros_like(p));
  }
}

void AdamW::step() {
  ++t_;
  const double b1 = opt_.beta1, b2 = opt_.beta2, eps = opt_.eps, lr = lr_, wd = opt_.weight_decay;
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(t_)), c2 = 1.0 - std::pow(b2, static_cast<double>(t_));
  for (size_t k = 0; k < params_.size(); ++k) {
    const Tensor& p = params_[k];
    if (!p.grad().defined()) continue;
    update(p, m_[k], v_[k], [&](auto* pp, const auto* pg, auto* pm, auto* pv, int64_t lo, int64_t hi) {
      using T = std::remove_pointer_t<decltype(pp)>;
      for (int64_t i = lo; i < hi; ++i) {
        const T g = pg[i];
        pp[i] -= T(lr * wd) * pp[i];
        pm[i] = T(b1) * pm[i] + T(1 - b1) * g;
        pv[i] = T(b2) * pv[i] + T(1 - b2) * g * g;
        const T mh = pm[i] / T(c1), vh = pv[i] / T(c2);
        pp[i] -= T(lr) * mh / (std::sqrt(vh) + T(eps));
      }
    });
  }
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  LOOM_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be > 0, got {}", max_norm);
  double total = 0;
  for (const Tensor& p : params) {
    if (!p.grad().defined()) continue;
    for (double g : p.grad().to_vector<double>()) total += g * g;
  }
  double norm = std::sqrt(total);
  if (norm > max_norm) {
    double scale = max_norm / (norm + 1e-6);
    for (const Tensor& p : params) {
      if (!p.grad().defined()) continue;
      Tensor g = p.grad();
      LOOM_CHECK(g.is_contiguous(), "clip_grad_norm: gradients must be contiguous");
      LOOM_DISPATCH_FLOAT(g.dtype(), "clip_grad_norm", [&] {
        scalar_t* pg = g.data<scalar_t>();
        for (int64_t i = 0; i < g.numel(); ++i) pg[i] *= static_cast<scalar_t>(scale);
      });
    }
  }
  return norm;
}

double LrSchedule::lr_at(int64_t step, int64_t total) const {
  if (warmup > 0 && step < warmup) return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const int64_t s = step - warmup, n = std::max<int64_t>(1, total - warmup);
  if (kind == "constant") return base_lr;
  if (kind == "step") return base_lr * std::pow(gamma, static_cast<double>(s / std::max<int64_t>(1, step_size)));
  if (kind == "cosine") return base_lr * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(s) / static_cast<double>(n)));
  LOOM_THROW("lr schedule: unknown kind '{}' (constant, step, cosine)", kind);
}

}  // namespace loom::nn
