// Strided n-ary loops for elementwise kernels (internal to kernels/cpu).
//
// Operands are given as base pointers and byte strides over a common iteration shape
// (broadcast dimensions have stride 0). Dimensions of size 1 are dropped and adjacent
// dimensions that are contiguous for every operand are merged, so most calls end up as one
// flat loop. The outer rows are split over the thread pool.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "loom/base/thread_pool.h"
#include "loom/tensor/tensor.h"

namespace loom::cpu {

// Elements per task below which parallel_for is not worth its synchronization.
constexpr int64_t kParallelGrain = 32768;

template <int N>
struct LoopSpec {
  std::vector<int64_t> shape;                      // coalesced, innermost last
  std::array<std::vector<int64_t>, N> strides;     // bytes
};

template <int N>
LoopSpec<N> make_loop(const Shape& shape, const std::array<std::vector<int64_t>, N>& byte_strides) {
  LoopSpec<N> spec;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!spec.shape.empty()) {
      bool merge = true;
      for (int k = 0; k < N; ++k) {
        if (spec.strides[k].back() != byte_strides[k][d] * shape[d]) merge = false;
      }
      if (merge) {
        spec.shape.back() *= shape[d];
        for (int k = 0; k < N; ++k) spec.strides[k].back() = byte_strides[k][d];
        continue;
      }
    }
    spec.shape.push_back(shape[d]);
    for (int k = 0; k < N; ++k) spec.strides[k].push_back(byte_strides[k][d]);
  }
  if (spec.shape.empty()) {
    spec.shape.push_back(1);
    for (int k = 0; k < N; ++k) spec.strides[k].push_back(0);
  }
  return spec;
}

// Byte strides of `t` seen through the iteration shape `shape` (right-aligned broadcast).
inline std::vector<int64_t> broadcast_byte_strides(const Tensor& t, const Shape& shape) {
  std::vector<int64_t> out(shape.size(), 0);
  size_t off = shape.size() - t.shape().size();
  int64_t es = static_cast<int64_t>(dtype_size(t.dtype()));
  for (size_t d = 0; d < t.shape().size(); ++d) {
    out[off + d] = t.shape()[d] == 1 ? 0 : t.strides()[d] * es;
  }
  return out;
}

// Calls inner(ptrs, inner_strides, n) for every innermost row, rows split over threads.
template <int N, typename F>
void for_each_row(const Shape& shape, std::array<char*, N> base,
                  const std::array<std::vector<int64_t>, N>& byte_strides, F&& inner,
                  bool parallel = true) {
  if (numel(shape) == 0) return;
  LoopSpec<N> spec = make_loop<N>(shape, byte_strides);
  const int nd = static_cast<int>(spec.shape.size());
  const int64_t inner_n = spec.shape[nd - 1];
  std::array<int64_t, N> inner_s;
  for (int k = 0; k < N; ++k) inner_s[k] = spec.strides[k][nd - 1];
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; ++d) rows *= spec.shape[d];
  auto run = [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> idx(nd > 1 ? nd - 1 : 1, 0);
    std::array<char*, N> p;
    int64_t rem = lo;
    for (int d = nd - 2; d >= 0; --d) {
      idx[d] = rem % spec.shape[d];
      rem /= spec.shape[d];
    }
    for (int k = 0; k < N; ++k) {
      p[k] = base[k];
      for (int d = 0; d < nd - 1; ++d) p[k] += idx[d] * spec.strides[k][d];
    }
    for (int64_t r = lo; r < hi; ++r) {
      inner(p, inner_s, inner_n);
      for (int d = nd - 2; d >= 0; --d) {
        for (int k = 0; k < N; ++k) p[k] += spec.strides[k][d];
        if (++idx[d] < spec.shape[d]) break;
        for (int k = 0; k < N; ++k) p[k] -= spec.strides[k][d] * spec.shape[d];
        idx[d] = 0;
      }
    }
  };
  int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(inner_n, 1));
  if (parallel) {
    parallel_for(0, rows, grain, run);
  } else {
    run(0, rows);
  }
}

}  // namespace loom::cpu
