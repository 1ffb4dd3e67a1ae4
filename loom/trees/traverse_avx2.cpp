// AVX2 TreeTraversal and PerfectTreeTraversal kernels (compiled with -mavx2 -mfma; chosen at
// run time on machines without AVX-512). The same walk as traverse_avx512.cpp with 8 rows per
// vector and vector masks instead of mask registers; PTT's first 3 levels (7 nodes) come from
// one in-register permute instead of gathers.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "loom/trees/traverse_blocks.h"

namespace loom::trees::detail {
namespace {

constexpr int kLanes = 8;
constexpr int kUnroll = 4;

struct Step8 {
  __m256i fmask = _mm256_set1_epi32(static_cast<int32_t>(~kDefaultLeftBit));
  __m256i rowoff;
  const float* Xb;

  // All-ones lanes for rows going left: x < threshold, or x is NaN and default_left is set.
  __m256i left(__m256i m, __m256 th) const {
    const __m256i feat = _mm256_and_si256(m, fmask);
    const __m256 x = _mm256_i32gather_ps(Xb, _mm256_add_epi32(rowoff, feat), 4);
    const __m256 lt = _mm256_cmp_ps(x, th, _CMP_LT_OQ);
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    const __m256i dl = _mm256_srai_epi32(m, 31);  // the default_left bit as a lane mask
    return _mm256_or_si256(_mm256_castps_si256(lt), _mm256_and_si256(_mm256_castps_si256(nan), dl));
  }
};

inline void accumulate8(const TableCommon& t, int32_t tree, __m256i leaf, const float* leaves, float* acc) {
  if (t.leaf_dim == 1) {
    float* a = acc + t.tree_output[tree] * kLanes;
    _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), _mm256_i32gather_ps(leaves, leaf, 4)));
  } else {
    alignas(32) int32_t li[kLanes];
    _mm256_store_si256(reinterpret_cast<__m256i*>(li), leaf);
    add_vector_leaves<kLanes>(t, li, leaves, acc);
  }
}

template <int U>
void ptt_group8(const PttTables& t, int32_t t0, const Step8& s, float* acc) {
  const int64_t internal = t.internal_per_tree(), n_leaves = internal + 1;
  const __m256i two = _mm256_set1_epi32(2);
  const int32_t* meta[U];
  const float* thr[U];
  __m256i idx[U], mtop[U];
  __m256 ttop[U];
  for (int u = 0; u < U; ++u) {
    meta[u] = t.meta.data() + (t0 + u) * internal;
    thr[u] = t.threshold.data() + (t0 + u) * internal;
    idx[u] = _mm256_setzero_si256();
    mtop[u] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(meta[u]));  // heap slots 0..6 (+ padding)
    ttop[u] = _mm256_loadu_ps(thr[u]);
  }
  const int top = std::min(t.depth, 3);
  for (int l = 0; l < t.depth; ++l) {
    for (int u = 0; u < U; ++u) {
      __m256i m;
      __m256 th;
      if (l < top) {
        m = _mm256_permutevar8x32_epi32(mtop[u], idx[u]);
        th = _mm256_permutevar8x32_ps(ttop[u], idx[u]);
      } else {
        m = _mm256_i32gather_epi32(meta[u], idx[u], 4);
        th = _mm256_i32gather_ps(thr[u], idx[u], 4);
      }
      // idx = 2 idx + 2 - left (left lanes are -1)
      idx[u] = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(idx[u], idx[u]), two), s.left(m, th));
    }
  }
  const __m256i first_leaf = _mm256_set1_epi32(static_cast<int32_t>(internal));
  for (int u = 0; u < U; ++u)
    accumulate8(t, t0 + u, _mm256_sub_epi32(idx[u], first_leaf), t.leaves.data() + (t0 + u) * n_leaves * t.leaf_dim,
                acc);
}

template <int U>
void tt_group8(const TtTables& t, int32_t t0, const Step8& s, float* acc) {
  const __m256i one = _mm256_set1_epi32(1);
  __m256i idx[U];
  int32_t depth = 0;
  for (int u = 0; u < U; ++u) {
    idx[u] = _mm256_set1_epi32(t.root[t0 + u]);
    depth = std::max(depth, t.depth[t0 + u]);
  }
  for (int l = 0; l < depth; ++l) {
    for (int u = 0; u < U; ++u) {
      const __m256i m = _mm256_i32gather_epi32(t.meta.data(), idx[u], 4);
      const __m256 th = _mm256_i32gather_ps(t.threshold.data(), idx[u], 4);
      // child slot 2 idx + 1 (right), minus one when going left
      const __m256i c = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(idx[u], idx[u]), one), s.left(m, th));
      idx[u] = _mm256_i32gather_epi32(t.children.data(), c, 4);
    }
  }
  for (int u = 0; u < U; ++u) accumulate8(t, t0 + u, idx[u], t.value.data(), acc);
}

Step8 make_step8(int32_t n_features) {
  Step8 s;
  s.rowoff = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(n_features));
  return s;
}

}  // namespace

void ptt_rows_avx2(const PttTables& t, const float* X, int64_t n_rows, float* raw) {
  run_blocks<kLanes, kUnroll>(t, X, n_rows, raw, make_step8(t.n_features), ptt_group8<1>, ptt_group8<kUnroll>);
}

void tt_rows_avx2(const TtTables& t, const float* X, int64_t n_rows, float* raw) {
  run_blocks<kLanes, kUnroll>(t, X, n_rows, raw, make_step8(t.n_features), tt_group8<1>, tt_group8<kUnroll>);
}

}  // namespace loom::trees::detail
