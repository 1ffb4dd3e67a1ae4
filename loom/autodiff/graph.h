// loom/autodiff: reverse- and forward-mode automatic differentiation (Autograd & JAX).
//
// The one idea: every differentiable op, when some input requires grad, records a Node
// (op, saved inputs, attrs) as the grad_fn of its output; backward walks the nodes in
// reverse creation order and applies each op's VJP rule from the op table. The VJP rules
// are themselves written with differentiable ops, so running backward with create_graph
// records a new graph -- which is how grad-of-grad and Hessian-vector products work.
// Forward mode rides on the same ops: while a jvp transform runs, every op also applies
// its JVP rule to the tangents of its inputs.
//
// Grad mode and forward-AD state are per thread.
#pragma once

#include <functional>

#include <cstdint>
#include <memory>
#include <vector>

#include "loom/ops/op_table.h"
#include "loom/tensor/tensor.h"

namespace loom::autodiff {

struct Node {
  OpKind op;
  std::vector<Tensor> inputs;  // saved inputs, with their own grad_fn (for higher order)
  std::vector<Tensor> aux;     // extra tensors the forward kernel produced (e.g. pool argmax)
  Attrs attrs;
  std::weak_ptr<TensorImpl> output;  // the recorded output, while it is alive
  Tensor output_data;                // the same data, cut from the graph
  uint64_t seq = 0;                  // creation order: consumers come after producers
  bool released = false;

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Dismantles the chain of producer nodes this node alone keeps alive iteratively: a graph
  // dropped without backward (200k ops of an unrolled loop) would otherwise be destroyed by
  // recursion as deep as the graph and overflow the stack.
  ~Node();

  // The output, with its graph when it is still alive (needed for higher-order rules
  // such as d exp(x) = exp(x) dx), else its data.
  Tensor out() const;
};

// ---- grad mode ------------------------------------------------------------------------
bool grad_enabled();
void set_grad_enabled(bool enabled);

// Disables recording in a scope (PyTorch's torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }

 private:
  bool prev_;
};

class EnableGradGuard {
 public:
  explicit EnableGradGuard(bool enabled) : prev_(grad_enabled()) { set_grad_enabled(enabled); }
  ~EnableGradGuard() { set_grad_enabled(prev_); }

 private:
  bool prev_;
};

// ---- forward mode ---------------------------------------------------------------------
bool forward_ad_active();
// Active while a jvp transform runs. On exit it clears every tangent set during the scope:
// a tangent may hold a graph that refers back to its own tensor (a reference cycle).
class ForwardAdScope {
 public:
  ForwardAdScope();
  ~ForwardAdScope();
};
// Records that `impl` received a tangent in the current scope.
void note_tangent(const std::shared_ptr<TensorImpl>& impl);
class ForwardAdPause {  // JVP rules run with forward mode paused (one level of tangents)
 public:
  ForwardAdPause();
  ~ForwardAdPause();

 private:
  int saved_;
};

// ---- the backward engine --------------------------------------------------------------
struct BackwardOptions {
  bool create_graph = false;       // record the backward computation (higher order)
  bool retain_graph = false;       // keep saved tensors for another backward
  bool accumulate_into_leaves = true;  // add to .grad() of leaves (eager backward)
};

// Propagates `seeds` (one per root, same shape) back through the graph. Returns the
// gradient for each tensor of `inputs` (zeros when it does not influence the roots); with
// accumulate_into_leaves, every other leaf that requires grad gets its .grad() increased.
std::vector<Tensor> run_backward(const std::vector<Tensor>& roots,
                                 const std::vector<Tensor>& seeds,
                                 const std::vector<Tensor>& inputs, const BackwardOptions& opts);

// Gradient-ready hook: while one is installed on a thread, the eager backward it runs
// (accumulate_into_leaves, no create_graph) calls it for each leaf as soon as that leaf's
// .grad() is final for this backward -- before backward has finished the rest of the graph.
// Horovod-style data parallelism (loom/dist) starts reducing gradients from it.
using GradReadyHook = std::function<void(const Tensor& leaf)>;
class GradReadyHookScope {
 public:
  explicit GradReadyHookScope(GradReadyHook hook);
  ~GradReadyHookScope();
  GradReadyHookScope(const GradReadyHookScope&) = delete;
  GradReadyHookScope& operator=(const GradReadyHookScope&) = delete;

 private:
  GradReadyHook prev_;
};

// Records `out` as produced by `op` from `inputs` when grad mode is on and an input needs
// it. Called by ops::apply.
void record(OpKind op, const std::vector<Tensor>& inputs, const std::vector<Tensor>& aux,
            const Attrs& attrs, Tensor& out);

// Number of nodes currently alive (for tests of tape release).
int64_t live_nodes();

}  // namespace loom::autodiff
