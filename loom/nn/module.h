// loom/nn: neural-network building blocks on top of loom/ops (PyTorch's torch.nn, in C++).
//
// A Module owns named parameters (tensors that require grad) and buffers (state that is
// saved but not trained, such as BatchNorm's running statistics) and named child modules;
// names compose with dots ("features.0.weight"), exactly as PyTorch's state_dict keys do,
// so checkpoints interoperate. train()/eval() switch modes recursively.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loom/tensor/tensor.h"

namespace loom::nn {

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // Parameters and buffers of this module and its children, in registration order.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<Tensor> parameters() const;
  // Parameters and buffers together: what a checkpoint stores.
  std::map<std::string, Tensor> state_dict() const;
  // Copies values into the existing tensors. Throws naming every missing, unexpected or
  // mis-shaped entry (all of them, not just the first).
  void load_state_dict(const std::map<std::string, Tensor>& state);

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  int64_t num_parameters() const;

 protected:
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }
  bool training_ = true;

 private:
  void collect(const std::string& prefix, bool params, std::vector<std::pair<std::string, Tensor>>& out) const;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

using ModulePtr = std::shared_ptr<Module>;

}  // namespace loom::nn
