// AVX-512 TreeTraversal and PerfectTreeTraversal kernels (compiled with -mavx512*; chosen at
// run time). 16 rows per vector; kUnroll trees walked at once, because each level is a chain
// of dependent gathers (node -> feature -> x -> compare -> next node) whose latency only
// independent trees can hide.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "loom/trees/traverse_blocks.h"

namespace loom::trees::detail {
namespace {

constexpr int kLanes = 16;
constexpr int kUnroll = 4;

// Full gathers with a zero source (GCC 12's unmasked forms read an undefined register).
inline __m512 gather_ps(__m512i idx, const float* base) {
  return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, idx, base, 4);
}
inline __m512i gather_epi32(__m512i idx, const int32_t* base) {
  return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), 0xFFFF, idx, base, 4);
}

struct Step {
  __m512i fmask = _mm512_set1_epi32(static_cast<int32_t>(~kDefaultLeftBit));
  __m512i rowoff;  // lane * n_features
  const float* Xb;

  // Decision for 16 rows at nodes with metadata m and thresholds th: the mask of rows going left.
  __mmask16 left(__m512i m, __m512 th) const {
    const __m512i feat = _mm512_and_si512(m, fmask);
    const __mmask16 dl = _mm512_movepi32_mask(m);
    const __m512 x = gather_ps(_mm512_add_epi32(rowoff, feat), Xb);
    const __mmask16 lt = _mm512_cmp_ps_mask(x, th, _CMP_LT_OQ);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _kor_mask16(lt, _kand_mask16(nan, dl));
  }
};

// Adds the leaves reached by 16 rows in tree `tree` into acc ([n_outputs][16]).
inline void accumulate(const TableCommon& t, int32_t tree, __m512i leaf, const float* leaves, float* acc) {
  if (t.leaf_dim == 1) {
    float* a = acc + t.tree_output[tree] * kLanes;
    _mm512_storeu_ps(a, _mm512_add_ps(_mm512_loadu_ps(a), gather_ps(leaf, leaves)));
  } else {
    alignas(64) int32_t li[kLanes];
    _mm512_store_si512(li, leaf);
    add_vector_leaves<kLanes>(t, li, leaves, acc);
  }
}

template <int U>
void ptt_group(const PttTables& t, int32_t t0, const Step& s, float* acc) {
  const int64_t internal = t.internal_per_tree(), n_leaves = internal + 1;
  const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2);
  const int32_t* meta[U];
  const float* thr[U];
  __m512i idx[U], mlo[U], mhi[U];
  __m512 tlo[U], thi[U];
  for (int u = 0; u < U; ++u) {
    meta[u] = t.meta.data() + (t0 + u) * internal;
    thr[u] = t.threshold.data() + (t0 + u) * internal;
    idx[u] = _mm512_setzero_si512();
    // Heap slots 0..30 (levels 0-4) as two 16-entry permute tables.
    mlo[u] = _mm512_loadu_si512(meta[u]);
    mhi[u] = _mm512_loadu_si512(meta[u] + 16);
    tlo[u] = _mm512_loadu_ps(thr[u]);
    thi[u] = _mm512_loadu_ps(thr[u] + 16);
  }
  const int top = std::min(t.depth, 5);
  for (int l = 0; l < top; ++l) {
    for (int u = 0; u < U; ++u) {
      const __m512i m = _mm512_permutex2var_epi32(mlo[u], idx[u], mhi[u]);
      const __m512 th = _mm512_permutex2var_ps(tlo[u], idx[u], thi[u]);
      const __m512i i2 = _mm512_add_epi32(_mm512_add_epi32(idx[u], idx[u]), two);
      idx[u] = _mm512_mask_sub_epi32(i2, s.left(m, th), i2, one);
    }
  }
  for (int l = top; l < t.depth; ++l) {
    for (int u = 0; u < U; ++u) {
      const __m512i m = gather_epi32(idx[u], meta[u]);
      const __m512 th = gather_ps(idx[u], thr[u]);
      const __m512i i2 = _mm512_add_epi32(_mm512_add_epi32(idx[u], idx[u]), two);
      idx[u] = _mm512_mask_sub_epi32(i2, s.left(m, th), i2, one);
    }
  }
  const __m512i first_leaf = _mm512_set1_epi32(static_cast<int32_t>(internal));
  for (int u = 0; u < U; ++u)
    accumulate(t, t0 + u, _mm512_sub_epi32(idx[u], first_leaf), t.leaves.data() + (t0 + u) * n_leaves * t.leaf_dim,
               acc);
}

template <int U>
void tt_group(const TtTables& t, int32_t t0, const Step& s, float* acc) {
  const __m512i one = _mm512_set1_epi32(1);
  __m512i idx[U];
  int32_t depth = 0;
  for (int u = 0; u < U; ++u) {
    idx[u] = _mm512_set1_epi32(t.root[t0 + u]);
    depth = std::max(depth, t.depth[t0 + u]);  // leaves point at themselves: extra steps are no-ops
  }
  for (int l = 0; l < depth; ++l) {
    for (int u = 0; u < U; ++u) {
      const __m512i m = gather_epi32(idx[u], t.meta.data());
      const __m512 th = gather_ps(idx[u], t.threshold.data());
      const __m512i c = _mm512_add_epi32(_mm512_add_epi32(idx[u], idx[u]), one);  // right child slot
      idx[u] = gather_epi32(_mm512_mask_sub_epi32(c, s.left(m, th), c, one), t.children.data());
    }
  }
  for (int u = 0; u < U; ++u) accumulate(t, t0 + u, idx[u], t.value.data(), acc);
}

Step make_step(int32_t n_features) {
  Step s;
  s.rowoff = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                _mm512_set1_epi32(n_features));
  return s;
}

}  // namespace

void ptt_rows_avx512(const PttTables& t, const float* X, int64_t n_rows, float* raw) {
  run_blocks<kLanes, kUnroll>(t, X, n_rows, raw, make_step(t.n_features), ptt_group<1>, ptt_group<kUnroll>);
}

void tt_rows_avx512(const TtTables& t, const float* X, int64_t n_rows, float* raw) {
  run_blocks<kLanes, kUnroll>(t, X, n_rows, raw, make_step(t.n_features), tt_group<1>, tt_group<kUnroll>);
}

}  // namespace loom::trees::detail
