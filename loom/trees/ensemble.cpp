#include "loom/trees/ensemble.h"

#include <cmath>
#include <limits>
#include <random>

#include "loom/base/error.h"

namespace loom::trees {

const char* post_transform_name(PostTransform p) {
  switch (p) {
    case PostTransform::kIdentity: return "identity";
    case PostTransform::kSigmoid: return "sigmoid";
    case PostTransform::kSigmoidPair: return "sigmoid_pair";
    case PostTransform::kSoftmax: return "softmax";
    case PostTransform::kArgmax: return "argmax";
  }
  return "?";
}

PostTransform parse_post_transform(const std::string& s) {
  for (PostTransform p : {PostTransform::kIdentity, PostTransform::kSigmoid, PostTransform::kSigmoidPair,
                          PostTransform::kSoftmax, PostTransform::kArgmax})
    if (s == post_transform_name(p)) return p;
  LOOM_THROW("unknown post transform '{}' (identity, sigmoid, sigmoid_pair, softmax, argmax)", s);
}

int32_t Ensemble::n_predictions() const {
  switch (post) {
    case PostTransform::kSigmoidPair: return 2;
    case PostTransform::kArgmax: return 1;
    default: return n_outputs;
  }
}

namespace {

// Visits the nodes reachable from the root once each; throws on a child out of range or a
// node reached twice (a cycle or a shared subtree), which would make traversal loop or
// double count.
template <typename F>
void walk(const Tree& t, const std::string& where, F&& visit) {
  const int32_t n = t.n_nodes();
  LOOM_CHECK(n >= 1, "{}: tree has no nodes", where);
  std::vector<uint8_t> seen(n, 0);
  std::vector<std::pair<int32_t, int32_t>> stack{{0, 0}};
  seen[0] = 1;
  while (!stack.empty()) {
    auto [i, depth] = stack.back();
    stack.pop_back();
    visit(i, depth);
    if (t.is_leaf(i)) continue;
    for (int32_t c : {t.left[i], t.right[i]}) {
      LOOM_CHECK(c >= 0 && c < n, "{}: node {} has child {} outside [0, {})", where, i, c, n);
      LOOM_CHECK(!seen[c], "{}: node {} is reached twice (child of node {}): a cycle or shared subtree", where,
                 c, i);
      seen[c] = 1;
      stack.push_back({c, depth + 1});
    }
  }
}

}  // namespace

void validate(const Ensemble& e, const std::string& what) {
  LOOM_CHECK(e.n_features >= 1, "{}: n_features is {}", what, e.n_features);
  LOOM_CHECK(e.n_outputs >= 1, "{}: n_outputs is {}", what, e.n_outputs);
  LOOM_CHECK(e.leaf_dim == 1 || e.leaf_dim == e.n_outputs, "{}: leaf_dim {} must be 1 or n_outputs {}", what,
             e.leaf_dim, e.n_outputs);
  LOOM_CHECK(!e.trees.empty(), "{}: no trees", what);
  LOOM_CHECK(e.base_score.size() == static_cast<size_t>(e.n_outputs), "{}: base_score has {} values, n_outputs {}",
             what, e.base_score.size(), e.n_outputs);
  if (e.post == PostTransform::kSigmoid || e.post == PostTransform::kSigmoidPair)
    LOOM_CHECK(e.n_outputs == 1, "{}: {} needs one output, has {}", what, post_transform_name(e.post), e.n_outputs);
  if (e.leaf_dim == 1)
    LOOM_CHECK(e.tree_output.size() == e.trees.size(), "{}: tree_output has {} entries for {} trees", what,
               e.tree_output.size(), e.trees.size());
  for (size_t ti = 0; ti < e.trees.size(); ++ti) {
    const Tree& t = e.trees[ti];
    const std::string where = fmt::format("{}: tree {}", what, ti);
    const size_t n = t.left.size();
    LOOM_CHECK(t.right.size() == n && t.feature.size() == n && t.threshold.size() == n &&
                   t.default_left.size() == n && t.leaf_value.size() == n * e.leaf_dim,
               "{}: node arrays differ in length (left {}, right {}, feature {}, threshold {}, default_left {}, "
               "leaf_value {} for leaf_dim {})",
               where, n, t.right.size(), t.feature.size(), t.threshold.size(), t.default_left.size(),
               t.leaf_value.size(), e.leaf_dim);
    LOOM_CHECK(n < (size_t{1} << 30), "{}: {} nodes", where, n);
    if (e.leaf_dim == 1)
      LOOM_CHECK(e.tree_output[ti] >= 0 && e.tree_output[ti] < e.n_outputs, "{}: output column {} outside [0, {})",
                 where, e.tree_output[ti], e.n_outputs);
    walk(t, where, [&](int32_t i, int32_t depth) {
      LOOM_CHECK(depth <= 64, "{}: deeper than 64 levels", where);
      if (t.is_leaf(i)) {
        LOOM_CHECK(t.right[i] < 0, "{}: node {} has no left child but right child {}", where, i, t.right[i]);
        return;
      }
      LOOM_CHECK(t.feature[i] >= 0 && t.feature[i] < e.n_features, "{}: node {} splits on feature {} outside [0, {})",
                 where, i, t.feature[i], e.n_features);
      LOOM_CHECK(!std::isnan(t.threshold[i]), "{}: node {} has a NaN threshold", where, i);
    });
  }
}

std::vector<int32_t> node_depths(const Tree& t) {
  std::vector<int32_t> d(t.n_nodes(), -1);
  walk(t, "tree", [&](int32_t i, int32_t depth) { d[i] = depth; });
  return d;
}

TreeStats stats(const Ensemble& e) {
  TreeStats s;
  s.n_trees = static_cast<int32_t>(e.trees.size());
  for (const Tree& t : e.trees) {
    int32_t internal = 0, leaves = 0;
    walk(t, "tree", [&](int32_t i, int32_t depth) {
      if (t.is_leaf(i)) {
        ++leaves;
        s.max_depth = std::max(s.max_depth, depth);
      } else {
        ++internal;
      }
    });
    s.internal_nodes += internal;
    s.leaves += leaves;
    s.max_internal = std::max(s.max_internal, internal);
    s.max_leaves = std::max(s.max_leaves, leaves);
  }
  return s;
}

float strict_threshold_from_le(double t) {
  if (std::isnan(t)) return std::numeric_limits<float>::quiet_NaN();
  if (t >= static_cast<double>(std::numeric_limits<float>::max())) return std::numeric_limits<float>::infinity();
  // f = the largest float <= t; then x <= t  <=>  x <= f  <=>  x < nextafter(f, +inf).
  float f = static_cast<float>(t);
  if (static_cast<double>(f) > t) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return std::nextafter(f, std::numeric_limits<float>::infinity());
}

Ensemble random_ensemble(int32_t n_trees, int32_t depth, int32_t n_features, int32_t n_outputs, uint64_t seed,
                         double split_prob, bool vector_leaves) {
  LOOM_CHECK(n_trees >= 1 && depth >= 0 && depth <= 20 && n_features >= 1 && n_outputs >= 1,
             "random_ensemble: bad arguments (trees {}, depth {}, features {}, outputs {})", n_trees, depth,
             n_features, n_outputs);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<double> unif;
  Ensemble e;
  e.n_features = n_features;
  e.n_outputs = n_outputs;
  e.leaf_dim = vector_leaves ? n_outputs : 1;
  e.base_score.assign(n_outputs, 0.25f);
  e.source = "random";
  for (int32_t ti = 0; ti < n_trees; ++ti) {
    Tree t;
    // Breadth-first growth: (node, depth) queue.
    std::vector<std::pair<int32_t, int32_t>> queue{{0, 0}};
    auto add_node = [&]() {
      t.left.push_back(-1);
      t.right.push_back(-1);
      t.feature.push_back(0);
      t.threshold.push_back(0.f);
      t.default_left.push_back(0);
      for (int32_t k = 0; k < e.leaf_dim; ++k) t.leaf_value.push_back(normal(rng) * 0.1f);
      return t.n_nodes() - 1;
    };
    add_node();
    for (size_t q = 0; q < queue.size(); ++q) {
      auto [i, d] = queue[q];
      if (d >= depth || (d > 0 && unif(rng) >= split_prob)) continue;
      t.feature[i] = static_cast<int32_t>(rng() % n_features);
      t.threshold[i] = normal(rng) * 0.8f;
      t.default_left[i] = rng() & 1;
      int32_t l = add_node(), r = add_node();
      t.left[i] = l;
      t.right[i] = r;
      queue.push_back({l, d + 1});
      queue.push_back({r, d + 1});
    }
    e.trees.push_back(std::move(t));
    e.tree_output.push_back(ti % n_outputs);
  }
  return e;
}

}  // namespace loom::trees
