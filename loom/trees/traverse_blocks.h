// The row-block driver shared by the per-ISA traversal kernels (traverse_avx512.cpp,
// traverse_avx2.cpp): rows in blocks of `Lanes` (a ragged tail as a zero-padded copy, so
// gathers stay in bounds), accumulators [n_outputs][Lanes] starting at the base score, trees
// walked `Unroll` at a time and then one by one, in tree order. ISA-neutral: the caller's
// `step` carries its vector state; only step.Xb is set here. Internal to loom/trees.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "loom/trees/traverse.h"

namespace loom::trees::detail {

template <int Lanes, int Unroll, typename Tables, typename Step, typename Group1, typename GroupU>
void run_blocks(const Tables& t, const float* X, int64_t n_rows, float* raw, Step step, Group1 g1, GroupU gu) {
  const int32_t F = t.n_features, O = t.n_outputs;
  std::vector<float> acc(static_cast<size_t>(O) * Lanes), pad;
  for (int64_t r0 = 0; r0 < n_rows; r0 += Lanes) {
    const int64_t rows = std::min<int64_t>(Lanes, n_rows - r0);
    step.Xb = X + r0 * F;
    if (rows < Lanes) {
      pad.assign(static_cast<size_t>(Lanes) * F, 0.f);
      std::memcpy(pad.data(), step.Xb, sizeof(float) * rows * F);
      step.Xb = pad.data();
    }
    for (int32_t k = 0; k < O; ++k) std::fill_n(acc.data() + k * Lanes, Lanes, t.base[k]);
    int32_t ti = 0;
    for (; ti + Unroll <= t.n_trees; ti += Unroll) gu(t, ti, step, acc.data());
    for (; ti < t.n_trees; ++ti) g1(t, ti, step, acc.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int32_t k = 0; k < O; ++k) raw[(r0 + r) * O + k] = acc[k * Lanes + r];
  }
}

// Vector leaves (leaf_dim > 1): adds leaf li[lane]'s row to each lane's accumulators.
template <int Lanes>
void add_vector_leaves(const TableCommon& t, const int32_t* li, const float* leaves, float* acc) {
  for (int lane = 0; lane < Lanes; ++lane) {
    const float* v = leaves + static_cast<int64_t>(li[lane]) * t.leaf_dim;
    for (int32_t k = 0; k < t.leaf_dim; ++k) acc[k * Lanes + lane] += v[k];
  }
}

}  // namespace loom::trees::detail
