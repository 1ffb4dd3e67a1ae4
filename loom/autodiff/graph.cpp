#include "loom/autodiff/graph.h"

#include <algorithm>
#include <atomic>
#include <unordered_map>
#include <unordered_set>

#include "loom/ops/ops.h"

namespace loom::autodiff {
namespace {

thread_local bool t_grad_enabled = true;
thread_local int t_forward_level = 0;
std::atomic<uint64_t> g_seq{0};
std::atomic<int64_t> g_live{0};

struct LiveCounter {
  LiveCounter() { g_live.fetch_add(1, std::memory_order_relaxed); }
  ~LiveCounter() { g_live.fetch_sub(1, std::memory_order_relaxed); }
};

struct CountedNode : Node {
  LiveCounter counter;
};

}  // namespace

namespace {

// Moves the producer nodes that only `n`'s saved inputs keep alive onto `stack`, and clears
// the inputs, so destroying `n` no longer recurses into them.
void detach_exclusive_producers(Node& n, std::vector<std::shared_ptr<Node>>& stack) {
  for (Tensor& in : n.inputs) {
    const auto& impl = in.impl_ptr();
    if (impl && impl.use_count() == 1 && impl->grad_fn) stack.push_back(std::move(impl->grad_fn));
  }
  n.inputs.clear();
}

}  // namespace

Node::~Node() {
  std::vector<std::shared_ptr<Node>> stack;
  detach_exclusive_producers(*this, stack);
  while (!stack.empty()) {
    std::shared_ptr<Node> p = std::move(stack.back());
    stack.pop_back();
    if (p.use_count() == 1) detach_exclusive_producers(*p, stack);
  }  // each p is destroyed here with its inputs already cleared: no recursion
}

Tensor Node::out() const {
  if (auto p = output.lock()) return Tensor(p);
  return output_data;
}

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

bool forward_ad_active() { return t_forward_level > 0; }
thread_local std::vector<std::weak_ptr<TensorImpl>> t_tangent_log;

ForwardAdScope::ForwardAdScope() { ++t_forward_level; }
ForwardAdScope::~ForwardAdScope() {
  if (--t_forward_level == 0) {
    for (auto& w : t_tangent_log)
      if (auto p = w.lock()) p->tangent.reset();
    t_tangent_log.clear();
  }
}
void note_tangent(const std::shared_ptr<TensorImpl>& impl) { t_tangent_log.push_back(impl); }
ForwardAdPause::ForwardAdPause() : saved_(t_forward_level) { t_forward_level = 0; }
ForwardAdPause::~ForwardAdPause() { t_forward_level = saved_; }

int64_t live_nodes() { return g_live.load(); }

void record(OpKind op, const std::vector<Tensor>& inputs, const std::vector<Tensor>& aux, const Attrs& attrs,
            Tensor& out) {
  if (!t_grad_enabled) return;
  bool any = false;
  for (const Tensor& t : inputs) any |= t.requires_grad();
  if (!any || !is_floating(out.dtype())) return;
  auto node = std::make_shared<CountedNode>();
  node->op = op;
  node->inputs = inputs;
  node->aux = aux;
  node->attrs = attrs;
  node->output = out.impl_ptr();
  node->output_data = out.detach();
  node->seq = g_seq.fetch_add(1, std::memory_order_relaxed);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
}

namespace {
thread_local GradReadyHook t_grad_ready_hook;
}  // namespace

GradReadyHookScope::GradReadyHookScope(GradReadyHook hook) : prev_(std::move(t_grad_ready_hook)) {
  t_grad_ready_hook = std::move(hook);
}
GradReadyHookScope::~GradReadyHookScope() { t_grad_ready_hook = std::move(prev_); }

std::vector<Tensor> run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds,
                                 const std::vector<Tensor>& inputs, const BackwardOptions& opts) {
  LOOM_CHECK(roots.size() == seeds.size(), "backward: {} roots but {} seeds", roots.size(), seeds.size());
  // Where each requested input collects its gradient: at its producing node, or (leaves)
  // at its impl. Requested nodes are boundaries: backward does not go past them.
  std::unordered_map<const void*, size_t> target_of;
  for (size_t i = 0; i < inputs.size(); ++i) {
    LOOM_CHECK(inputs[i].defined(), "backward: input {} is undefined", i);
    const void* key = inputs[i].impl()->grad_fn ? static_cast<const void*>(inputs[i].impl()->grad_fn.get())
                                                : static_cast<const void*>(inputs[i].impl());
    target_of.emplace(key, i);
  }
  std::vector<Tensor> results(inputs.size());
  auto add_to = [](Tensor& acc, const Tensor& g) { acc = acc.defined() ? acc + g : g; };

  // Collect the nodes reachable from the roots (not past requested nodes), iteratively so
  // that arbitrarily deep graphs cannot exhaust the stack. keep_alive holds owning
  // references for the whole walk: releasing one node's saved inputs may drop the last
  // reference to a producer that is still to be released.
  std::vector<std::shared_ptr<Node>> keep_alive;
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack;
  auto push = [&](const std::shared_ptr<Node>& sp) {
    if (seen.insert(sp.get()).second) {
      keep_alive.push_back(sp);
      stack.push_back(sp.get());
    }
  };
  for (size_t r = 0; r < roots.size(); ++r) {
    LOOM_CHECK(roots[r].defined(), "backward: root {} is undefined", r);
    LOOM_CHECK(seeds[r].shape() == roots[r].shape(), "backward: seed shape {} does not match output shape {}",
               shape_str(seeds[r].shape()), shape_str(roots[r].shape()));
    if (const auto& fn = roots[r].impl()->grad_fn) {
      if (fn->released)
        LOOM_THROW("backward: the graph of this output was already freed by an earlier backward; "
                   "pass retain_graph to differentiate it twice");
      push(fn);
    }
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (target_of.count(n)) continue;
    for (const Tensor& in : n->inputs)
      if (in.requires_grad() && in.impl()->grad_fn) push(in.impl()->grad_fn);
  }
  // A node is useful when it leads to something that wants a gradient. Producers have
  // smaller seq than their consumers, so in ascending seq order inputs are decided first.
  std::vector<Node*> all(seen.begin(), seen.end());
  std::sort(all.begin(), all.end(), [](Node* a, Node* b) { return a->seq < b->seq; });
  std::unordered_map<Node*, bool> useful;
  std::vector<Node*> order;
  for (Node* n : all) {
    bool u = target_of.count(n) > 0;
    if (!u) {
      for (const Tensor& in : n->inputs) {
        if (!in.requires_grad()) continue;
        if (Node* p = in.impl()->grad_fn.get()) {
          u |= useful[p];
        } else {
          u |= target_of.count(in.impl()) > 0 || opts.accumulate_into_leaves;
        }
      }
    }
    useful[n] = u;
    if (u) order.push_back(n);
  }
  std::unordered_map<Node*, Tensor> grads;
  for (size_t r = 0; r < roots.size(); ++r) {
    const Tensor& root = roots[r];
    if (Node* n = root.impl()->grad_fn.get()) {
      if (useful[n]) add_to(grads[n], seeds[r]);
    } else if (root.requires_grad()) {
      auto it = target_of.find(root.impl());
      if (it != target_of.end()) {
        add_to(results[it->second], seeds[r]);
      } else if (opts.accumulate_into_leaves) {
        EnableGradGuard mode(opts.create_graph);
        Tensor acc = root.impl()->grad ? Tensor(root.impl()->grad) + seeds[r] : seeds[r].detach();
        root.impl()->grad = acc.impl_ptr();
      }
    }
  }
  // Consumers were created after their producers: descending seq is a topological order.
  std::sort(order.begin(), order.end(), [](Node* a, Node* b) { return a->seq > b->seq; });

  // Gradient-ready hook: a leaf is final once every node that consumes it has run.
  const bool hooked = t_grad_ready_hook && opts.accumulate_into_leaves && !opts.create_graph;
  std::unordered_map<const void*, std::pair<int, Tensor>> leaf_uses;
  if (hooked) {
    for (Node* n : order) {
      if (target_of.count(n)) continue;
      for (const Tensor& in : n->inputs) {
        if (in.requires_grad() && !in.impl()->grad_fn && !target_of.count(in.impl())) {
          auto& u = leaf_uses[in.impl()];
          if (u.first++ == 0) u.second = in;
        }
      }
    }
  }
  auto node_done = [&](Node* n) {
    if (!hooked || target_of.count(n)) return;
    for (const Tensor& in : n->inputs) {
      auto it = leaf_uses.find(in.impl());
      if (it == leaf_uses.end()) continue;
      if (--it->second.first == 0) {
        Tensor leaf = std::move(it->second.second);
        leaf_uses.erase(it);
        t_grad_ready_hook(leaf);
      }
    }
  };

  EnableGradGuard mode(opts.create_graph);
  for (Node* n : order) {
    auto git = grads.find(n);
    if (git == grads.end()) {
      node_done(n);
      continue;
    }
    Tensor g = git->second;
    grads.erase(git);
    auto tit = target_of.find(n);
    if (tit != target_of.end()) {
      add_to(results[tit->second], g);
      continue;
    }
    if (n->released)
      LOOM_THROW("backward: part of the graph was already freed by an earlier backward; "
                 "pass retain_graph to differentiate it twice");
    const OpDef& def = op_def(n->op);
    std::vector<Tensor> in_grads = def.vjp(*n, g);
    for (size_t i = 0; i < n->inputs.size() && i < in_grads.size(); ++i) {
      const Tensor& in = n->inputs[i];
      const Tensor& ig = in_grads[i];
      if (!in.requires_grad() || !ig.defined()) continue;
      LOOM_CHECK(ig.shape() == in.shape(), "backward: VJP of {} gave gradient {} for input {} of shape {}",
                 def.name, shape_str(ig.shape()), i, shape_str(in.shape()));
      if (Node* p = in.impl()->grad_fn.get()) {
        if (useful.count(p) && useful[p]) add_to(grads[p], ig);
      } else {
        auto lit = target_of.find(in.impl());
        if (lit != target_of.end()) {
          add_to(results[lit->second], ig);
        } else if (opts.accumulate_into_leaves) {
          Tensor gi = opts.create_graph ? ig : ig.detach();
          Tensor acc = in.impl()->grad ? Tensor(in.impl()->grad) + gi : gi;
          if (!opts.create_graph) acc = acc.detach();
          in.impl()->grad = acc.impl_ptr();
        }
      }
    }
    node_done(n);
  }
  if (!opts.retain_graph) {
    for (Node* n : order) {
      if (target_of.count(n)) continue;
      n->inputs.clear();
      n->aux.clear();
      n->output_data = Tensor();
      n->released = true;
    }
  }
  // Inputs that the roots do not depend on get zeros (JAX's convention).
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!results[i].defined()) results[i] = Tensor::zeros(inputs[i].shape(), inputs[i].dtype());
    if (results[i].shape() != inputs[i].shape()) results[i] = expand(results[i], inputs[i].shape());
  }
  return results;
}

}  // namespace loom::autodiff

namespace loom {

void Tensor::backward(const Tensor& seed, bool retain_graph) const {
  LOOM_CHECK(defined(), "backward: undefined tensor");
  LOOM_CHECK(requires_grad(), "backward: tensor of shape {} does not require grad (no input requires grad)",
             shape_str(shape()));
  Tensor s = seed;
  if (!s.defined()) {
    LOOM_CHECK(numel() == 1, "backward: output of shape {} is not a scalar; pass a seed gradient",
               shape_str(shape()));
    s = Tensor::ones(shape(), dtype());
  }
  autodiff::BackwardOptions opts;
  opts.retain_graph = retain_graph;
  autodiff::run_backward({*this}, {s}, {}, opts);
}

}  // namespace loom
