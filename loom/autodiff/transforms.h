// JAX-style function transforms on C++ callables.
//
//   auto df  = autodiff::grad(f);          // df(x) = d f(x) / dx, f scalar-valued
//   auto ddf = autodiff::grad(df_sum);     // transforms nest: grad of grad
//   auto [y, pullback] = autodiff::vjp(f, {x});   auto gx = pullback(ct);
//   auto [y, ty] = autodiff::jvp(f, {x}, {t});    // forward mode
//   auto hv = autodiff::hvp(f, x, v);      // Hessian-vector product
//
// A transform never mutates its arguments or their .grad(): it differentiates with respect
// to fresh aliases of them. When called inside another transform (or on inputs that require
// grad), the results stay differentiable, so transforms compose.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "loom/autodiff/graph.h"
#include "loom/tensor/tensor.h"

namespace loom::autodiff {

using Fn = std::function<Tensor(const Tensor&)>;
using FnN = std::function<Tensor(const std::vector<Tensor>&)>;

// d f / d x for scalar-valued f.
Fn grad(Fn f);
// Gradients with respect to every argument of f.
std::function<std::vector<Tensor>(const std::vector<Tensor>&)> grad(FnN f);
// (f(x), d f / d x).
std::function<std::pair<Tensor, Tensor>(const Tensor&)> value_and_grad(Fn f);
std::function<std::pair<Tensor, std::vector<Tensor>>(const std::vector<Tensor>&)> value_and_grad(FnN f);

// Reverse mode: f's output and its pullback (callable many times).
std::pair<Tensor, std::function<std::vector<Tensor>(const Tensor&)>> vjp(FnN f, const std::vector<Tensor>& primals);
// Forward mode: f's output and its directional derivative along `tangents` (an undefined
// tangent means zero, e.g. for integer inputs).
std::pair<Tensor, Tensor> jvp(FnN f, const std::vector<Tensor>& primals, const std::vector<Tensor>& tangents);

// Hessian-vector product H(x) v of scalar f, by reverse-over-reverse.
Tensor hvp(Fn f, const Tensor& x, const Tensor& v);

}  // namespace loom::autodiff
