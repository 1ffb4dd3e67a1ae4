#include "loom/autodiff/transforms.h"

#include "loom/ops/ops.h"

namespace loom::autodiff {
namespace {

thread_local int t_depth = 0;  // nesting depth of reverse-mode transforms

struct DepthGuard {
  DepthGuard() { ++t_depth; }
  ~DepthGuard() { --t_depth; }
};

// A fresh alias of x that requires grad. When x is itself tracked (an outer transform or
// the eager tape), the alias is an identity node on x, so the outer level sees through it.
Tensor make_input(const Tensor& x, const char* op) {
  LOOM_CHECK(x.defined(), "{}: undefined argument", op);
  (void)op;
  if (!is_floating(x.dtype())) return x;  // integer/bool arguments (indices) get no gradient
  if (x.requires_grad() && grad_enabled()) return identity(x);
  Tensor a = x.detach();
  a.set_requires_grad(true);
  if (x.impl()->tangent) {
    a.impl()->tangent = x.impl()->tangent;
    note_tangent(a.impl_ptr());
  }
  return a;
}

bool any_tracked(const std::vector<Tensor>& xs) {
  for (const Tensor& x : xs)
    if (x.requires_grad() || x.impl()->tangent) return true;
  return false;
}

std::pair<Tensor, std::vector<Tensor>> value_and_grads(const FnN& f, const std::vector<Tensor>& xs, const char* op) {
  DepthGuard depth;
  // Higher order is needed when an enclosing transform will differentiate the result.
  const bool create = grad_enabled() && (t_depth > 1 || any_tracked(xs) || forward_ad_active());
  std::vector<Tensor> in;
  for (const Tensor& x : xs) in.push_back(make_input(x, op));
  Tensor y;
  {
    EnableGradGuard on(true);
    y = f(in);
  }
  LOOM_CHECK(y.defined() && y.numel() == 1, "{}: the function must return a scalar, got shape {}", op,
             y.defined() ? shape_str(y.shape()) : "undefined");
  LOOM_CHECK(is_floating(y.dtype()), "{}: the function must return a floating scalar", op);
  std::vector<Tensor> gs;
  if (!y.requires_grad()) {
    for (const Tensor& x : xs) gs.push_back(Tensor::zeros(x.shape(), x.dtype()));
  } else {
    BackwardOptions opts;
    opts.create_graph = create;
    opts.retain_graph = create;
    opts.accumulate_into_leaves = false;
    gs = run_backward({y}, {Tensor::ones(y.shape(), y.dtype())}, in, opts);
  }
  if (!create) y = y.detach();
  return {y, gs};
}

}  // namespace

Fn grad(Fn f) {
  return [f](const Tensor& x) {
    return value_and_grads([&](const std::vector<Tensor>& a) { return f(a[0]); }, {x}, "grad").second[0];
  };
}

std::function<std::vector<Tensor>(const std::vector<Tensor>&)> grad(FnN f) {
  return [f](const std::vector<Tensor>& xs) { return value_and_grads(f, xs, "grad").second; };
}

std::function<std::pair<Tensor, Tensor>(const Tensor&)> value_and_grad(Fn f) {
  return [f](const Tensor& x) {
    auto [y, g] = value_and_grads([&](const std::vector<Tensor>& a) { return f(a[0]); }, {x}, "value_and_grad");
    return std::make_pair(y, g[0]);
  };
}

std::function<std::pair<Tensor, std::vector<Tensor>>(const std::vector<Tensor>&)> value_and_grad(FnN f) {
  return [f](const std::vector<Tensor>& xs) { return value_and_grads(f, xs, "value_and_grad"); };
}

std::pair<Tensor, std::function<std::vector<Tensor>(const Tensor&)>> vjp(FnN f, const std::vector<Tensor>& primals) {
  DepthGuard depth;
  const bool create = grad_enabled() && (t_depth > 1 || any_tracked(primals) || forward_ad_active());
  std::vector<Tensor> in;
  for (const Tensor& x : primals) in.push_back(make_input(x, "vjp"));
  Tensor y;
  {
    EnableGradGuard on(true);
    y = f(in);
  }
  LOOM_CHECK(y.defined(), "vjp: the function returned an undefined tensor");
  auto pullback = [y, in, create](const Tensor& ct) {
    LOOM_CHECK(ct.defined() && ct.shape() == y.shape(), "vjp: cotangent shape {} does not match output shape {}",
               ct.defined() ? shape_str(ct.shape()) : "undefined", shape_str(y.shape()));
    if (!y.requires_grad()) {
      std::vector<Tensor> zs;
      for (const Tensor& x : in) zs.push_back(Tensor::zeros(x.shape(), x.dtype()));
      return zs;
    }
    BackwardOptions opts;
    opts.create_graph = create;
    opts.retain_graph = true;  // the pullback may be called again
    opts.accumulate_into_leaves = false;
    return run_backward({y}, {cast(ct, y.dtype())}, in, opts);
  };
  return {create ? y : y.detach(), pullback};
}

std::pair<Tensor, Tensor> jvp(FnN f, const std::vector<Tensor>& primals, const std::vector<Tensor>& tangents) {
  LOOM_CHECK(!forward_ad_active(), "jvp: nested jvp (forward-over-forward) is not supported; "
                                   "use jvp over grad or grad over jvp");
  LOOM_CHECK(primals.size() == tangents.size(), "jvp: {} primals but {} tangents", primals.size(), tangents.size());
  std::vector<Tensor> in;
  for (size_t i = 0; i < primals.size(); ++i) {
    const Tensor& p = primals[i];
    const Tensor& t = tangents[i];
    LOOM_CHECK(p.defined(), "jvp: primal {} is undefined", i);
    Tensor a = p.requires_grad() && grad_enabled() ? identity(p) : p.detach();
    in.push_back(a);
    if (!t.defined()) continue;  // no tangent: treated as zero (e.g. integer inputs)
    LOOM_CHECK(p.shape() == t.shape(),
               "jvp: tangent {} has shape {} but its primal has shape {}", i,
               t.defined() ? shape_str(t.shape()) : "undefined", p.defined() ? shape_str(p.shape()) : "undefined");
    a.impl()->tangent = cast(t, p.dtype()).impl_ptr();
  }
  Tensor y, ty;
  {
    ForwardAdScope scope;
    for (Tensor& a : in)
      if (a.impl()->tangent) note_tangent(a.impl_ptr());
    y = f(in);
    LOOM_CHECK(y.defined(), "jvp: the function returned an undefined tensor");
    ty = y.impl()->tangent ? Tensor(y.impl()->tangent) : Tensor::zeros(y.shape(), y.dtype());
  }  // every tangent set inside is cleared here
  Tensor out = y.requires_grad() ? y : y.detach();
  return {out, ty};
}

Tensor hvp(Fn f, const Tensor& x, const Tensor& v) {
  LOOM_CHECK(v.defined() && v.shape() == x.shape(), "hvp: vector shape {} must match x {}",
             v.defined() ? shape_str(v.shape()) : "undefined", shape_str(x.shape()));
  Fn gv = [f, v](const Tensor& z) { return sum(grad(f)(z) * v); };
  return grad(gv)(x);
}

}  // namespace loom::autodiff
