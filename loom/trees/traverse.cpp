#include "loom/trees/traverse.h"

#include <cmath>

#include "loom/base/cpu.h"
#include "loom/base/error.h"
#include "loom/base/thread_pool.h"

namespace loom::trees {
namespace {

void fill_common(const Ensemble& e, TableCommon& c) {
  c.n_features = e.n_features;
  c.n_outputs = e.n_outputs;
  c.leaf_dim = e.leaf_dim;
  c.n_trees = static_cast<int32_t>(e.trees.size());
  c.tree_output = e.leaf_dim == 1 ? e.tree_output : std::vector<int32_t>(e.trees.size(), 0);
  c.base = e.base_score;
}

inline uint32_t meta_word(const Tree& t, int32_t i) {
  return static_cast<uint32_t>(t.feature[i]) | (t.default_left[i] ? kDefaultLeftBit : 0u);
}

// The IR's decision, shared by every scalar path: left when x < threshold, NaN by default_left.
inline bool go_left(float x, float thr, uint32_t meta) {
  return std::isnan(x) ? (meta & kDefaultLeftBit) != 0 : x < thr;
}

// Adds a leaf (scalar or vector) of tree `tree` into one output row.
inline void add_leaf(const TableCommon& c, int32_t tree, const float* leaf, float* out_row) {
  if (c.leaf_dim == 1) {
    out_row[c.tree_output[tree]] += leaf[0];
  } else {
    for (int32_t k = 0; k < c.leaf_dim; ++k) out_row[k] += leaf[k];
  }
}

template <typename Tables, typename Kernel>
void run_parallel(const Tables& t, const float* X, int64_t n_rows, float* raw, Kernel kernel) {
  // Blocks of 64 rows: enough for the vector kernels' tree interleaving, small enough that
  // a batch of a few hundred rows still uses both cores.
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (n_rows + kBlock - 1) / kBlock;
  parallel_for(0, blocks, 1, [&](int64_t lo, int64_t hi) {
    const int64_t r0 = lo * kBlock, r1 = std::min(n_rows, hi * kBlock);
    kernel(t, X + r0 * t.n_features, r1 - r0, raw + r0 * t.n_outputs);
  });
}

}  // namespace

PttTables build_ptt(const Ensemble& e) {
  const TreeStats s = stats(e);
  LOOM_CHECK(s.max_depth <= kPttMaxDepth,
             "PerfectTreeTraversal: depth {} exceeds {} (2^depth nodes per tree); use the tt strategy", s.max_depth,
             kPttMaxDepth);
  const double bytes = ptt_bytes(s, e.leaf_dim);
  LOOM_CHECK(bytes <= static_cast<double>(kPttMaxBytes),
             "PerfectTreeTraversal: {} trees completed to depth {} take {:.0f} MiB; use the tt strategy", s.n_trees,
             s.max_depth, bytes / (1 << 20));
  PttTables p;
  fill_common(e, p);
  p.depth = s.max_depth;
  const int64_t internal = p.internal_per_tree(), n_leaves = internal + 1;
  // +32 entries of padding: the AVX-512 kernel loads the first 32 heap slots of a tree as two
  // permute tables even when the tree has fewer.
  p.meta.assign(p.n_trees * internal + 32, 0);
  p.threshold.assign(p.n_trees * internal + 32, 0.f);
  p.leaves.assign(p.n_trees * n_leaves * p.leaf_dim, 0.f);
  for (int32_t ti = 0; ti < p.n_trees; ++ti) {
    const Tree& t = e.trees[ti];
    int32_t* meta = p.meta.data() + ti * internal;
    float* thr = p.threshold.data() + ti * internal;
    float* leaves = p.leaves.data() + ti * n_leaves * p.leaf_dim;
    // (source node, heap slot, level). A leaf above depth D becomes a dummy split whose
    // two subtrees are copies of the leaf, so every path has length D.
    std::vector<std::tuple<int32_t, int64_t, int32_t>> stack{{0, 0, 0}};
    while (!stack.empty()) {
      auto [node, slot, level] = stack.back();
      stack.pop_back();
      if (level == p.depth) {
        const int64_t leaf = slot - internal;
        for (int32_t k = 0; k < p.leaf_dim; ++k) leaves[leaf * p.leaf_dim + k] = t.leaf_value[node * p.leaf_dim + k];
        continue;
      }
      const bool leaf = t.is_leaf(node);
      meta[slot] = leaf ? 0 : static_cast<int32_t>(meta_word(t, node));
      thr[slot] = leaf ? 0.f : t.threshold[node];
      stack.push_back({leaf ? node : t.left[node], 2 * slot + 1, level + 1});
      stack.push_back({leaf ? node : t.right[node], 2 * slot + 2, level + 1});
    }
  }
  return p;
}

TtTables build_tt(const Ensemble& e) {
  TtTables p;
  fill_common(e, p);
  for (int32_t ti = 0; ti < p.n_trees; ++ti) {
    const Tree& t = e.trees[ti];
    // Renumber the reachable nodes breadth first, so a tree's top levels share cache lines.
    const int32_t base = static_cast<int32_t>(p.meta.size());
    std::vector<int32_t> order{0}, depth_of{0}, id(t.n_nodes(), -1);
    id[0] = base;
    int32_t depth = 0;
    for (size_t q = 0; q < order.size(); ++q) {
      const int32_t i = order[q];
      depth = std::max(depth, depth_of[q]);
      if (t.is_leaf(i)) continue;
      for (int32_t c : {t.left[i], t.right[i]}) {
        id[c] = base + static_cast<int32_t>(order.size());
        order.push_back(c);
        depth_of.push_back(depth_of[q] + 1);
      }
    }
    p.root.push_back(base);
    p.depth.push_back(depth);
    for (int32_t i : order) {
      const bool leaf = t.is_leaf(i);
      p.meta.push_back(leaf ? 0 : static_cast<int32_t>(meta_word(t, i)));
      p.threshold.push_back(leaf ? 0.f : t.threshold[i]);
      p.children.push_back(leaf ? id[i] : id[t.left[i]]);
      p.children.push_back(leaf ? id[i] : id[t.right[i]]);
      for (int32_t k = 0; k < p.leaf_dim; ++k) p.value.push_back(leaf ? t.leaf_value[i * p.leaf_dim + k] : 0.f);
    }
    LOOM_CHECK(p.meta.size() < (size_t{1} << 31), "TreeTraversal: more than 2^31 nodes");
  }
  return p;
}

namespace detail {

void ptt_rows_generic(const PttTables& t, const float* X, int64_t n_rows, float* raw) {
  const int64_t internal = t.internal_per_tree(), n_leaves = internal + 1;
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* x = X + r * t.n_features;
    float* out = raw + r * t.n_outputs;
    for (int32_t k = 0; k < t.n_outputs; ++k) out[k] = t.base[k];
    for (int32_t ti = 0; ti < t.n_trees; ++ti) {
      const int32_t* meta = t.meta.data() + ti * internal;
      const float* thr = t.threshold.data() + ti * internal;
      int64_t idx = 0;
      for (int32_t l = 0; l < t.depth; ++l) {
        const uint32_t m = static_cast<uint32_t>(meta[idx]);
        idx = 2 * idx + (go_left(x[m & ~kDefaultLeftBit], thr[idx], m) ? 1 : 2);
      }
      add_leaf(t, ti, t.leaves.data() + (ti * n_leaves + idx - internal) * t.leaf_dim, out);
    }
  }
}

void tt_rows_generic(const TtTables& t, const float* X, int64_t n_rows, float* raw) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* x = X + r * t.n_features;
    float* out = raw + r * t.n_outputs;
    for (int32_t k = 0; k < t.n_outputs; ++k) out[k] = t.base[k];
    for (int32_t ti = 0; ti < t.n_trees; ++ti) {
      int32_t idx = t.root[ti];
      for (int32_t l = 0; l < t.depth[ti]; ++l) {
        const uint32_t m = static_cast<uint32_t>(t.meta[idx]);
        idx = t.children[2 * idx + (go_left(x[m & ~kDefaultLeftBit], t.threshold[idx], m) ? 0 : 1)];
      }
      add_leaf(t, ti, t.value.data() + static_cast<int64_t>(idx) * t.leaf_dim, out);
    }
  }
}

}  // namespace detail

void run_ptt(const PttTables& t, const float* X, int64_t n_rows, float* raw) {
  const Isa isa = active_isa();
  run_parallel(t, X, n_rows, raw,
               isa >= Isa::kAvx512 ? detail::ptt_rows_avx512
               : isa >= Isa::kAvx2 ? detail::ptt_rows_avx2
                                   : detail::ptt_rows_generic);
}

void run_tt(const TtTables& t, const float* X, int64_t n_rows, float* raw) {
  const Isa isa = active_isa();
  run_parallel(t, X, n_rows, raw,
               isa >= Isa::kAvx512 ? detail::tt_rows_avx512
               : isa >= Isa::kAvx2 ? detail::tt_rows_avx2
                                   : detail::tt_rows_generic);
}

}  // namespace loom::trees
