#include "loom/nn/module.h"

#include "loom/autodiff/graph.h"
#include "loom/base/error.h"

namespace loom::nn {

void Module::collect(const std::string& prefix, bool params, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, t] : params ? params_ : buffers_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, out);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  for (auto& [n, t] : named_parameters()) out[n] = t;
  for (auto& [n, t] : named_buffers()) out[n] = t;
  return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state) {
  auto mine = state_dict();
  std::string problems;
  for (const auto& [name, t] : mine) {
    auto it = state.find(name);
    if (it == state.end()) {
      problems += fmt::format("\n  missing: {} {}", name, shape_str(t.shape()));
    } else if (it->second.shape() != t.shape()) {
      problems += fmt::format("\n  shape mismatch: {} is {} in the checkpoint, {} in the model", name,
                              shape_str(it->second.shape()), shape_str(t.shape()));
    }
  }
  for (const auto& [name, t] : state)
    if (!mine.count(name)) problems += fmt::format("\n  unexpected: {} {}", name, shape_str(t.shape()));
  LOOM_CHECK(problems.empty(), "load_state_dict: the checkpoint does not match the model:{}", problems);
  autodiff::NoGradGuard ng;
  for (auto& [name, t] : mine) {
    Tensor dst = t;
    dst.copy_from(state.at(name));  // converts dtype if the checkpoint differs
  }
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& t : parameters()) t.zero_grad();
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& t : parameters()) n += t.numel();
  return n;
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  t.set_requires_grad(true);
  params_.emplace_back(name, t);
  return params_.back().second;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  buffers_.emplace_back(name, t);
  return buffers_.back().second;
}

}  // namespace loom::nn
