// Hummingbird's two traversal strategies as fused, vectorized tensor kernels.
//
// TreeTraversal (TT): node tables of all trees concatenated (feature, threshold, children);
// every row of a block walks every tree for `depth` steps of
//     idx = children[2*idx + !(x[feature[idx]] < threshold[idx])]
// with leaves pointing at themselves, then gathers the leaf value.
// PerfectTreeTraversal (PTT): every tree completed to the ensemble's maximum depth D (a
// shallow leaf is replicated below itself), stored in heap order, so the children need no
// table: idx = 2*idx + 1 + !go_left; after D steps leaf = idx - (2^D - 1).
// Both are one gather loop over a [rows x trees] batch, which on AVX-512 processes 16 rows
// per instruction (8 on AVX2) and 4 trees at once for memory-level parallelism; PTT's first
// five levels (31 nodes; three and 7 on AVX2) come from in-register permutes, not gathers.
// Internal header of loom/trees (compile.cpp, traverse*.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "loom/trees/ensemble.h"

namespace loom::trees {

// Shared by both strategies: where results go.
struct TableCommon {
  int32_t n_features = 0, n_outputs = 1, leaf_dim = 1, n_trees = 0;
  std::vector<int32_t> tree_output;  // per tree (leaf_dim == 1)
  std::vector<float> base;           // n_outputs
};

// Node metadata word: feature index in the low 31 bits, default_left in bit 31.
constexpr uint32_t kDefaultLeftBit = 0x80000000u;

struct PttTables : TableCommon {
  int32_t depth = 0;        // every tree has 2^depth - 1 internal nodes and 2^depth leaves
  std::vector<int32_t> meta;     // n_trees * (2^depth - 1) (+ padding), heap order
  std::vector<float> threshold;  // same layout
  std::vector<float> leaves;     // n_trees * 2^depth * leaf_dim
  int64_t internal_per_tree() const { return (int64_t{1} << depth) - 1; }
};

struct TtTables : TableCommon {
  std::vector<int32_t> root;      // per tree: global node id of its root
  std::vector<int32_t> depth;     // per tree
  std::vector<int32_t> meta;      // per global node (leaves: feature 0)
  std::vector<float> threshold;   // per global node
  std::vector<int32_t> children;  // 2 per global node; a leaf points at itself twice
  std::vector<float> value;       // per global node * leaf_dim
};

// Deepest ensemble PTT accepts, and the most memory its tables may take: every tree is
// materialised with 2^depth - 1 internal nodes and 2^depth leaves.
constexpr int32_t kPttMaxDepth = 20;
constexpr int64_t kPttMaxBytes = int64_t{1} << 30;
inline double ptt_bytes(const TreeStats& s, int32_t leaf_dim) {
  return static_cast<double>(s.n_trees) * std::ldexp(1.0, s.max_depth) * (8.0 + 4.0 * leaf_dim);
}

PttTables build_ptt(const Ensemble& e);  // throws beyond kPttMaxDepth / kPttMaxBytes
TtTables build_tt(const Ensemble& e);

// raw[n_rows, n_outputs] = base + sum of leaf values; X is row-major [n_rows, n_features].
// Multithreaded over row blocks; picks the AVX-512 kernel when available.
void run_ptt(const PttTables& t, const float* X, int64_t n_rows, float* raw);
void run_tt(const TtTables& t, const float* X, int64_t n_rows, float* raw);

namespace detail {
// Kernels over rows [0, n_rows) of X (any n_rows), writing raw rows. One per ISA.
void ptt_rows_generic(const PttTables& t, const float* X, int64_t n_rows, float* raw);
void tt_rows_generic(const TtTables& t, const float* X, int64_t n_rows, float* raw);
void ptt_rows_avx512(const PttTables& t, const float* X, int64_t n_rows, float* raw);
void tt_rows_avx512(const TtTables& t, const float* X, int64_t n_rows, float* raw);
void ptt_rows_avx2(const PttTables& t, const float* X, int64_t n_rows, float* raw);
void tt_rows_avx2(const TtTables& t, const float* X, int64_t n_rows, float* raw);
}  // namespace detail

}  // namespace loom::trees
