#include "loom/trees/compile.h"

#include <cfloat>
#include <cmath>
#include <optional>

#include "loom/autodiff/graph.h"
#include "loom/base/error.h"
#include "loom/nn/checkpoint.h"
#include "loom/ops/ops.h"
#include "loom/trees/traverse.h"

namespace loom::trees {

const char* strategy_name(Strategy s) {
  switch (s) {
    case Strategy::kAuto: return "auto";
    case Strategy::kGemm: return "gemm";
    case Strategy::kTreeTraversal: return "tt";
    case Strategy::kPerfectTreeTraversal: return "ptt";
  }
  return "?";
}

Strategy parse_strategy(const std::string& s) {
  for (Strategy x : {Strategy::kAuto, Strategy::kGemm, Strategy::kTreeTraversal, Strategy::kPerfectTreeTraversal})
    if (s == strategy_name(x)) return x;
  LOOM_THROW("unknown tree strategy '{}' (auto, gemm, tt, ptt)", s);
}

Strategy choose_strategy(const TreeStats& s, int32_t leaf_dim, int64_t batch) {
  // Fitted to `loom bench trees-crossover` on this machine (experiments/hummingbird): the
  // fused PTT kernel beats TT at every depth, tree count and batch size while its perfect-tree
  // tables stay cache-resident (measured wins up to 24 MiB; losses from ~78 MiB), and the
  // GEMM strategy, with T*I*L multiply-adds per row, never wins on this CPU. The batch size
  // did not move any crossover.
  (void)batch;
  constexpr double kPttBudget = 32.0 * (1 << 20);
  if (s.max_depth <= kPttMaxDepth && ptt_bytes(s, leaf_dim) <= kPttBudget) return Strategy::kPerfectTreeTraversal;
  return Strategy::kTreeTraversal;
}

namespace {

// Hummingbird's GEMM strategy, in Loom tensor ops over all trees at once (trees padded to
// the largest internal-node count I and leaf count L).
struct GemmProgram {
  int64_t T = 0, I = 0, L = 0;
  Tensor A;   // [F, T*I]   one-hot: feature of each internal node
  Tensor B;   // [T*I]      thresholds
  Tensor DL;  // [T*I] bool default_left (rows with a missing feature)
  Tensor C;   // [T, I, L]  +1 leaf under the left child, -1 under the right, 0 not below
  Tensor D;   // [T, 1, L]  number of left turns on the path to each leaf (-1: padding)
  Tensor E;   // [T, L, O]  leaf values
  std::vector<float> base;  // [O]
};

GemmProgram build_gemm(const Ensemble& e, const TreeStats& st) {
  GemmProgram g;
  g.T = st.n_trees;
  g.I = std::max<int64_t>(1, st.max_internal);
  g.L = st.max_leaves;
  const int64_t F = e.n_features, O = e.n_outputs;
  const double bytes = 4.0 * (static_cast<double>(g.T) * g.I * (F + g.L) + static_cast<double>(g.T) * g.L * O);
  LOOM_CHECK(bytes < 2.0 * (1ull << 30),
             "GEMM strategy: its matrices would take {:.1f} GiB ({} trees, {} internal nodes and {} leaves per "
             "tree); use tt or ptt",
             bytes / (1ull << 30), g.T, g.I, g.L);
  std::vector<float> A(F * g.T * g.I, 0.f), B(g.T * g.I, 0.f), C(g.T * g.I * g.L, 0.f), D(g.T * g.L, -1.f),
      E(g.T * g.L * O, 0.f);
  std::vector<uint8_t> DL(g.T * g.I, 0);
  for (int64_t ti = 0; ti < g.T; ++ti) {
    const Tree& t = e.trees[ti];
    // Depth-first walk keeping the path: (node, internal index of the parent, went left).
    int64_t n_int = 0, n_leaf = 0;
    std::vector<std::pair<int64_t, int>> path;  // (internal column, +1 left / -1 right)
    struct Item { int32_t node; size_t path_len; int64_t parent; int dir; };
    std::vector<Item> stack{{0, 0, -1, 0}};
    while (!stack.empty()) {
      Item it = stack.back();
      stack.pop_back();
      path.resize(it.path_len);
      if (it.parent >= 0) path.push_back({it.parent, it.dir});
      if (t.is_leaf(it.node)) {
        const int64_t l = n_leaf++;
        int left_turns = 0;
        for (auto [col, dir] : path) {
          C[(ti * g.I + col) * g.L + l] = static_cast<float>(dir);
          left_turns += dir > 0;
        }
        D[ti * g.L + l] = static_cast<float>(left_turns);
        float* erow = E.data() + (ti * g.L + l) * O;
        if (e.leaf_dim == 1) {
          erow[e.tree_output[ti]] = t.leaf_value[it.node];
        } else {
          for (int64_t k = 0; k < O; ++k) erow[k] = t.leaf_value[it.node * O + k];
        }
        continue;
      }
      const int64_t col = n_int++;
      A[t.feature[it.node] * (g.T * g.I) + ti * g.I + col] = 1.f;
      B[ti * g.I + col] = t.threshold[it.node];
      DL[ti * g.I + col] = t.default_left[it.node];
      stack.push_back({t.right[it.node], path.size(), col, -1});
      stack.push_back({t.left[it.node], path.size(), col, +1});
    }
  }
  g.A = Tensor::from_vector(A, {F, g.T * g.I});
  g.B = Tensor::from_vector(B, {g.T * g.I});
  g.DL = Tensor::from_data(DL.data(), {g.T * g.I}, DType::kBool);
  g.C = Tensor::from_vector(C, {g.T, g.I, g.L});
  g.D = Tensor::from_vector(D, {g.T, 1, g.L});
  g.E = Tensor::from_vector(E, {g.T, g.L, O});
  g.base = e.base_score;
  return g;
}

Tensor run_gemm(const GemmProgram& g, const Tensor& X) {
  const int64_t N = X.size(0);
  // Rows per chunk so that the [rows, T*(I+L)] intermediates stay near 64 MiB.
  const int64_t per_row = 4 * 3 * g.T * (g.I + g.L);
  const int64_t chunk = std::clamp<int64_t>((64ll << 20) / std::max<int64_t>(per_row, 1), 1, std::max<int64_t>(N, 1));
  std::vector<Tensor> parts;
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    Tensor x = slice(X, 0, r0, std::min(N, r0 + chunk));
    const int64_t n = x.size(0);
    Tensor missing = ne(x, x);  // NaN
    const bool any_missing = sum(cast(missing, DType::kF32)).item<float>() > 0;
    // One-hot selection by GEMM is exact for finite values (one product by 1, the rest by 0);
    // NaN and inf would poison the sums, so missing values take the default_left path below
    // and +-inf are clamped to +-FLT_MAX.
    Tensor x0 = where(missing, scalar_like(0.0, x), clamp(x, -FLT_MAX, FLT_MAX));
    Tensor cond = lt(matmul(x0, g.A), g.B);  // [n, T*I]: go left
    if (any_missing) cond = where(gt(matmul(cast(missing, DType::kF32), g.A), scalar_like(0.5, x)), g.DL, cond);
    Tensor t = permute(reshape(cast(cond, DType::kF32), {n, g.T, g.I}), {1, 0, 2});  // [T, n, I]
    Tensor onehot = cast(eq(matmul(t, g.C), g.D), DType::kF32);                     // [T, n, L]
    // Third product per tree (exact: one non-zero term), then the sum over trees in tree
    // order, as the source libraries add them: a blocked GEMM over all T*L leaves would add
    // in another order, and over hundreds of trees float rounding differs by ~1e-5.
    Tensor leaf = matmul(onehot, g.E).contiguous();  // [T, n, O]
    Tensor raw = Tensor::empty({n, static_cast<int64_t>(g.base.size())});
    float* r = raw.data<float>();
    const float* lv = leaf.data<float>();
    const int64_t row = n * static_cast<int64_t>(g.base.size());
    for (int64_t i = 0; i < row; ++i) r[i] = g.base[i % g.base.size()];
    for (int64_t ti = 0; ti < g.T; ++ti)
      for (int64_t i = 0; i < row; ++i) r[i] += lv[ti * row + i];
    parts.push_back(raw);
  }
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

}  // namespace

struct TreeModel::Impl {
  Ensemble e;
  TreeStats st;
  Strategy strategy = Strategy::kAuto;
  std::optional<GemmProgram> gemm;
  std::optional<TtTables> tt;
  std::optional<PttTables> ptt;
};

TreeModel::TreeModel(Ensemble e, Strategy strategy) : impl_(std::make_unique<Impl>()) {
  validate(e, "TreeModel");
  impl_->st = trees::stats(e);
  impl_->strategy = strategy;
  const TreeStats& st = impl_->st;
  // For kAuto, build every program the selection can pick for some batch size.
  auto needed = [&](Strategy s) {
    if (strategy == s) return true;
    if (strategy != Strategy::kAuto) return false;
    for (int64_t batch : {1, 100, 10000, 1000000})
      if (choose_strategy(st, e.leaf_dim, batch) == s) return true;
    return false;
  };
  autodiff::NoGradGuard no_grad;
  if (needed(Strategy::kGemm)) impl_->gemm = build_gemm(e, st);
  if (needed(Strategy::kTreeTraversal)) impl_->tt = build_tt(e);
  if (needed(Strategy::kPerfectTreeTraversal)) impl_->ptt = build_ptt(e);
  impl_->e = std::move(e);
}

TreeModel::~TreeModel() = default;
TreeModel::TreeModel(TreeModel&&) noexcept = default;
TreeModel& TreeModel::operator=(TreeModel&&) noexcept = default;

const Ensemble& TreeModel::ensemble() const { return impl_->e; }
const TreeStats& TreeModel::stats() const { return impl_->st; }
Strategy TreeModel::strategy() const { return impl_->strategy; }

bool TreeModel::has_program(Strategy s) const {
  switch (s) {
    case Strategy::kGemm: return impl_->gemm.has_value();
    case Strategy::kTreeTraversal: return impl_->tt.has_value();
    case Strategy::kPerfectTreeTraversal: return impl_->ptt.has_value();
    default: return false;
  }
}

Strategy TreeModel::strategy_for(int64_t batch) const {
  return impl_->strategy == Strategy::kAuto ? choose_strategy(impl_->st, impl_->e.leaf_dim, batch) : impl_->strategy;
}

Tensor TreeModel::predict_raw(const Tensor& X) const { return predict_raw(X, strategy_for(X.defined() && X.dim() == 2 ? X.size(0) : 0)); }

Tensor TreeModel::predict_raw(const Tensor& X, Strategy s) const {
  const Ensemble& e = impl_->e;
  LOOM_CHECK(X.defined() && X.dim() == 2 && X.size(1) == e.n_features,
             "trees predict: input has shape {}, the model expects [N, {}]",
             X.defined() ? shape_str(X.shape()) : std::string("(undefined)"), e.n_features);
  LOOM_CHECK(X.dtype() == DType::kF32 || X.dtype() == DType::kF64,
             "trees predict: input dtype {} (expected f32 or f64)", dtype_name(X.dtype()));
  if (s == Strategy::kAuto) s = strategy_for(X.size(0));
  LOOM_CHECK(has_program(s), "trees predict: strategy {} was not compiled into this model (compiled: {})",
             strategy_name(s), strategy_name(impl_->strategy));
  autodiff::NoGradGuard no_grad;
  Tensor x = X.to(DType::kF32).contiguous();
  const int64_t N = x.size(0);
  if (s == Strategy::kGemm) return N == 0 ? Tensor::zeros({0, e.n_outputs}) : run_gemm(*impl_->gemm, x);
  Tensor raw = Tensor::empty({N, e.n_outputs});
  if (s == Strategy::kTreeTraversal) {
    run_tt(*impl_->tt, x.data<float>(), N, raw.data<float>());
  } else {
    run_ptt(*impl_->ptt, x.data<float>(), N, raw.data<float>());
  }
  return raw;
}

Tensor apply_post_transform(const Tensor& raw, PostTransform p) {
  autodiff::NoGradGuard no_grad;
  switch (p) {
    case PostTransform::kIdentity: return raw;
    case PostTransform::kSigmoid: return sigmoid(raw);
    case PostTransform::kSigmoidPair: {
      Tensor prob = sigmoid(raw);
      return concat({1.0 - prob, prob}, 1);
    }
    case PostTransform::kSoftmax: return softmax(raw, 1);
    case PostTransform::kArgmax: return cast(argmax(raw, 1, true), DType::kF32);
  }
  return raw;
}

Tensor TreeModel::predict(const Tensor& X) const { return apply_post_transform(predict_raw(X), impl_->e.post); }

// ---- compiled model files --------------------------------------------------------------

namespace {

using TensorMap = std::map<std::string, Tensor>;
using MetaMap = std::map<std::string, std::string>;

void to_tensors(const Ensemble& e, Strategy strategy, TensorMap& tensors, MetaMap& meta) {
  std::vector<int64_t> offsets{0};
  std::vector<int32_t> left, right, feature, default_left;
  std::vector<float> threshold, leaf_value;
  for (const Tree& t : e.trees) {
    left.insert(left.end(), t.left.begin(), t.left.end());
    right.insert(right.end(), t.right.begin(), t.right.end());
    feature.insert(feature.end(), t.feature.begin(), t.feature.end());
    default_left.insert(default_left.end(), t.default_left.begin(), t.default_left.end());
    threshold.insert(threshold.end(), t.threshold.begin(), t.threshold.end());
    leaf_value.insert(leaf_value.end(), t.leaf_value.begin(), t.leaf_value.end());
    offsets.push_back(static_cast<int64_t>(left.size()));
  }
  const int64_t n = static_cast<int64_t>(left.size());
  tensors = {
      {"node_offsets", Tensor::from_vector(offsets, {static_cast<int64_t>(offsets.size())})},
      {"left", Tensor::from_vector(left, {n})},
      {"right", Tensor::from_vector(right, {n})},
      {"feature", Tensor::from_vector(feature, {n})},
      {"default_left", Tensor::from_vector(default_left, {n})},
      {"threshold", Tensor::from_vector(threshold, {n})},
      {"leaf_value", Tensor::from_vector(leaf_value, {static_cast<int64_t>(leaf_value.size())})},
      {"base_score", Tensor::from_vector(e.base_score, {static_cast<int64_t>(e.base_score.size())})},
  };
  if (e.leaf_dim == 1)
    tensors["tree_output"] = Tensor::from_vector(e.tree_output, {static_cast<int64_t>(e.tree_output.size())});
  meta = {
      {"format", "loom-trees"},         {"version", "1"},
      {"n_features", std::to_string(e.n_features)}, {"n_outputs", std::to_string(e.n_outputs)},
      {"leaf_dim", std::to_string(e.leaf_dim)},     {"post_transform", post_transform_name(e.post)},
      {"source", e.source},             {"strategy", strategy_name(strategy)},
  };
}

TreeModel from_tensors(const TensorMap& t, const MetaMap& meta, const std::string& what) {
  auto m = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    LOOM_CHECK(it != meta.end(), "{}: __metadata__ lacks '{}' (not a compiled Loom tree model?)", what, key);
    return it->second;
  };
  LOOM_CHECK(m("format") == "loom-trees", "{}: format '{}' is not loom-trees", what, m("format"));
  LOOM_CHECK(m("version") == "1", "{}: unsupported version {}", what, m("version"));
  auto integer = [&](const char* key) {
    const std::string& s = m(key);
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    LOOM_CHECK(!s.empty() && *end == '\0' && v >= 0 && v < (1l << 31), "{}: metadata {}='{}' is not a valid count",
               what, key, s);
    return static_cast<int32_t>(v);
  };
  auto vec = [&]<typename T>(const char* key, DType dtype, T) {
    auto it = t.find(key);
    LOOM_CHECK(it != t.end(), "{}: missing tensor '{}'", what, key);
    LOOM_CHECK(it->second.dtype() == dtype && it->second.dim() == 1, "{}: tensor '{}' is {} {}, expected 1-D {}",
               what, key, dtype_name(it->second.dtype()), shape_str(it->second.shape()), dtype_name(dtype));
    return it->second.to_vector<T>();
  };
  Ensemble e;
  e.n_features = integer("n_features");
  e.n_outputs = integer("n_outputs");
  e.leaf_dim = integer("leaf_dim");
  e.post = parse_post_transform(m("post_transform"));
  e.source = m("source");
  const Strategy strategy = parse_strategy(m("strategy"));
  std::vector<int64_t> off = vec("node_offsets", DType::kI64, int64_t{});
  std::vector<int32_t> left = vec("left", DType::kI32, int32_t{}), right = vec("right", DType::kI32, int32_t{}),
                       feature = vec("feature", DType::kI32, int32_t{}),
                       dl = vec("default_left", DType::kI32, int32_t{});
  std::vector<float> thr = vec("threshold", DType::kF32, float{}), lv = vec("leaf_value", DType::kF32, float{});
  e.base_score = vec("base_score", DType::kF32, float{});
  if (e.leaf_dim == 1) e.tree_output = vec("tree_output", DType::kI32, int32_t{});
  const int64_t n = static_cast<int64_t>(left.size());
  LOOM_CHECK(right.size() == left.size() && feature.size() == left.size() && dl.size() == left.size() &&
                 thr.size() == left.size() && e.leaf_dim >= 1 &&
                 lv.size() == static_cast<size_t>(n) * static_cast<size_t>(e.leaf_dim),
             "{}: node tensors differ in length", what);
  LOOM_CHECK(off.size() >= 2 && off.front() == 0 && off.back() == n, "{}: node_offsets do not span the {} nodes",
             what, n);
  for (size_t i = 0; i + 1 < off.size(); ++i) {
    LOOM_CHECK(off[i] < off[i + 1], "{}: node_offsets not increasing at tree {}", what, i);
    Tree tr;
    tr.left.assign(left.begin() + off[i], left.begin() + off[i + 1]);
    tr.right.assign(right.begin() + off[i], right.begin() + off[i + 1]);
    tr.feature.assign(feature.begin() + off[i], feature.begin() + off[i + 1]);
    tr.threshold.assign(thr.begin() + off[i], thr.begin() + off[i + 1]);
    for (int64_t k = off[i]; k < off[i + 1]; ++k) tr.default_left.push_back(dl[k] != 0);
    tr.leaf_value.assign(lv.begin() + off[i] * e.leaf_dim, lv.begin() + off[i + 1] * e.leaf_dim);
    e.trees.push_back(std::move(tr));
  }
  validate(e, what);
  return TreeModel(std::move(e), strategy);
}

}  // namespace

std::string TreeModel::encode() const {
  TensorMap tensors;
  MetaMap meta;
  to_tensors(impl_->e, impl_->strategy, tensors, meta);
  return nn::encode_safetensors(tensors, meta);
}

TreeModel TreeModel::decode(const std::string& bytes, const std::string& what) {
  MetaMap meta;
  TensorMap t = nn::decode_safetensors(bytes, what, &meta);
  return from_tensors(t, meta, what);
}

void TreeModel::save(const std::string& path) const {
  TensorMap tensors;
  MetaMap meta;
  to_tensors(impl_->e, impl_->strategy, tensors, meta);
  nn::save_safetensors(path, tensors, meta);
}

TreeModel TreeModel::load(const std::string& path) {
  MetaMap meta;
  TensorMap t = nn::load_safetensors(path, &meta);
  return from_tensors(t, meta, path);
}

}  // namespace loom::trees
