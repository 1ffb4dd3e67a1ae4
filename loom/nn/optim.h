// Optimizers, learning-rate schedules and gradient clipping. Updates run in place on the
// parameters' memory (fused loops, no autodiff), PyTorch's semantics:
//   SGD:   v = mu v + (g + wd p);  p -= lr (nesterov ? g + wd p + mu v : v)
//   AdamW: p -= lr wd p;  m, v moments with bias correction;  p -= lr m_hat / (sqrt(v_hat) + eps)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "loom/tensor/tensor.h"

namespace loom::nn {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params, double lr);
  virtual ~Optimizer() = default;
  // Applies one update from the parameters' .grad() (parameters without a grad are skipped).
  virtual void step() = 0;
  void zero_grad();
  double lr() const { return lr_; }
  // The optimizer's state tensors (momentum, Adam moments), updated in place by step(); data
  // parallelism broadcasts them from rank 0 at start.
  virtual std::vector<Tensor> state_tensors() const { return {}; }
  void set_lr(double lr) { lr_ = lr; }

 protected:
  std::vector<Tensor> params_;
  double lr_;
};

struct SgdOptions {
  double lr = 0.01, momentum = 0.0, weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SgdOptions opt);
  void step() override;
  std::vector<Tensor> state_tensors() const override { return velocity_; }

 private:
  SgdOptions opt_;
  std::vector<Tensor> velocity_;
};

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<Tensor> params, AdamWOptions opt);
  void step() override;
  std::vector<Tensor> state_tensors() const override {
    std::vector<Tensor> s = m_;
    s.insert(s.end(), v_.begin(), v_.end());
    return s;
  }

 private:
  AdamWOptions opt_;
  std::vector<Tensor> m_, v_;
  int64_t t_ = 0;
};

// Multiplies every gradient so that their global L2 norm is at most max_norm; returns the
// norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// Learning rate at `step` (0-based) of `total` steps: optional linear warmup over
// `warmup` steps, then "constant", "step" (x gamma every step_size), or "cosine" (to 0).
struct LrSchedule {
  std::string kind = "constant";
  double base_lr = 0.01;
  int64_t warmup = 0;
  int64_t step_size = 1;
  double gamma = 0.1;
  double lr_at(int64_t step, int64_t total) const;
};

}  // namespace loom::nn
