#include "loom/tensor/kernels/cpu/gemm.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "loom/base/cpu.h"
#include "loom/base/thread_pool.h"
#include "loom/tensor/kernels/cpu/transpose.h"

namespace loom::cpu {
namespace {

// Portable 4 x 16 micro-kernel; plain loops the compiler vectorizes for the baseline ISA.
void micro_generic(int64_t K, const float* A, const float* B, int64_t ldb, float* C, int64_t ldc,
                   float alpha, float beta) {
  constexpr int MR = 4, NR = 16;
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < K; ++k) {
    for (int i = 0; i < MR; ++i) {
      const float a = A[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += a * B[j];
    }
    A += MR;
    B += ldb;
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      C[i * ldc + j] = alpha * acc[i][j] + (beta == 0.0f ? 0.0f : beta * C[i * ldc + j]);
}

const GemmKernel kGeneric{"generic", 4, 16, 4, 128, 256, 2048, &micro_generic};

}  // namespace

const GemmKernel& active_sgemm_kernel() {
  switch (active_isa()) {
    case Isa::kAvx512:
      if (auto* k = sgemm_kernel_avx512()) return *k;
      [[fallthrough]];
    case Isa::kAvx2:
      if (auto* k = sgemm_kernel_avx2()) return *k;
      [[fallthrough]];
    default: return kGeneric;
  }
}

namespace {

// Thread-local, 64-byte aligned scratch that only grows (packing buffers are reused
// across calls, so steady-state GEMMs touch no new pages).
float* scratch(int slot, size_t floats) {
  struct Buf {
    float* p = nullptr;
    size_t cap = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf bufs[2];
  Buf& b = bufs[slot];
  if (b.cap < floats) {
    std::free(b.p);
    // 2 MiB alignment and huge pages: a packed block spans megabytes, and 4 KiB pages
    // would cost a TLB miss every few micro-panels.
    constexpr size_t kHuge = size_t{2} << 20;
    size_t bytes = (floats * sizeof(float) + kHuge - 1) / kHuge * kHuge;
    b.p = static_cast<float*>(std::aligned_alloc(kHuge, bytes));
#ifdef MADV_HUGEPAGE
    madvise(b.p, bytes, MADV_HUGEPAGE);
#endif
    b.cap = floats;
  }
  return b.p;
}

// The block size that cuts `total` into the fewest blocks of at most `cap` (rounded up to a
// multiple of `align`), all equal but the last; at most `total` rounded up to `align`.
int64_t even_block(int64_t total, int64_t cap, int64_t align) {
  const int64_t blocks = (total + cap - 1) / cap;
  const int64_t size = ((total + blocks - 1) / blocks + align - 1) / align * align;
  return std::min<int64_t>(size, (total + align - 1) / align * align);
}

// `cap`, lowered where needed so that cap / align units of `unit_floats` floats fit in
// `budget` bytes (at least one unit; budget 0: no limit).
int64_t within_budget(int64_t cap, int64_t budget, int64_t unit_floats, int64_t align) {
  if (budget <= 0) return cap;
  return std::min<int64_t>(cap, std::max<int64_t>(1, budget / (unit_floats * int64_t{sizeof(float)})) * align);
}

// Packs A[ic:ic+mc, pc:pc+kc] into MR-row micro-panels, k-major: row k of a panel holds its
// MR values at stride `as` >= MR (the kernel's A stride; lanes past the rows are zero).
void pack_a(const GemmOperand& A, int64_t ic, int64_t pc, int64_t mc, int64_t kc, int mr, int as, float* dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - i0);
    const float* src = A.data + (ic + i0) * A.row_stride + pc * A.col_stride;
    if (A.col_stride == 1 && as == 16 && active_isa() >= Isa::kAvx512) {
      // Row-major A: the panel is the rows' transpose (16 x 16 register transposes), each k
      // written as one whole aligned 16-lane row.
      transpose_f32_avx512(src, A.row_stride, rows, kc, dst, as, /*full_rows=*/true);
    } else if (A.col_stride == 1) {
      // Row-major A: read each row contiguously, scatter into the (L1-resident) panel.
      for (int64_t i = 0; i < rows; ++i) {
        const float* s = src + i * A.row_stride;
        for (int64_t k = 0; k < kc; ++k) dst[k * as + i] = s[k];
      }
      for (int64_t i = rows; i < as; ++i)
        for (int64_t k = 0; k < kc; ++k) dst[k * as + i] = 0.0f;
    } else if (A.row_stride == 1 && as <= 16 && active_isa() >= Isa::kAvx512) {
      // Column-major A (a weight gradient's dY^T): each k holds the panel's rows side by side.
      copy_runs_f32_avx512(src, A.col_stride, rows, kc, dst, as);
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = src + k * A.col_stride;
        for (int64_t i = 0; i < rows; ++i) dst[k * as + i] = s[i * A.row_stride];
        for (int64_t i = rows; i < as; ++i) dst[k * as + i] = 0.0f;
      }
    }
    dst += kc * as;
  }
}

// Packs B[pc:pc+kc, jc+j0 : jc+j0+cols] (one NR panel) k-major, zero-padded to NR. (Whole
// panels of a row-major B are copied by pack_b_block, row by row across the panels.)
void pack_b_panel(const GemmOperand& B, int64_t pc, int64_t col0, int64_t cols, int64_t kc,
                  int nr, float* dst) {
  const float* src = B.data + pc * B.row_stride + col0 * B.col_stride;
  if (B.row_stride == 1 && active_isa() >= Isa::kAvx512) {
    // Transposed B (columns contiguous, e.g. a Linear layer's W^T): 16 x 16 register
    // transposes, then zero columns past the edge.
    transpose_f32_avx512(src, B.col_stride, cols, kc, dst, nr);
    if (cols < nr)
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t j = cols; j < nr; ++j) dst[k * nr + j] = 0.0f;
    return;
  }
  if (B.row_stride == 1) {
    // Transposed B (columns contiguous): transpose 8 x 8 blocks, so that both the reads
    // (8 columns, 8 consecutive k each) and the writes (8 consecutive j) stay in few lines.
    const int64_t cs = B.col_stride;
    int64_t k0 = 0;
    for (; k0 + 8 <= kc; k0 += 8) {
      int64_t j0 = 0;
      for (; j0 + 8 <= cols; j0 += 8)
        for (int64_t kk = 0; kk < 8; ++kk)
          for (int64_t jj = 0; jj < 8; ++jj) dst[(k0 + kk) * nr + j0 + jj] = src[(j0 + jj) * cs + k0 + kk];
      for (int64_t kk = 0; kk < 8; ++kk)
        for (int64_t j = j0; j < cols; ++j) dst[(k0 + kk) * nr + j] = src[j * cs + k0 + kk];
    }
    for (int64_t k = k0; k < kc; ++k)
      for (int64_t j = 0; j < cols; ++j) dst[k * nr + j] = src[j * cs + k];
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t j = cols; j < nr; ++j) dst[k * nr + j] = 0.0f;
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    const float* s = src + k * B.row_stride;
    for (int64_t j = 0; j < cols; ++j) dst[k * nr + j] = s[j * B.col_stride];
    for (int64_t j = cols; j < nr; ++j) dst[k * nr + j] = 0.0f;
  }
}

// Packs the NR panels [p0, p1) of B[pc:pc+kc, jc:jc+nc] into Bp (panel p at p * kc * nr).
// Row-major B is copied a few rows at a time across all the panels: each read then walks a
// row of B sequentially (prefetchers follow it), where panel by panel every 128-byte read
// would start a new row -- a new 4 KiB page when B is wide. Other layouts go panel by panel.
void pack_b_block(const GemmOperand& B, int64_t pc, int64_t jc, int64_t nc, int64_t p0, int64_t p1, int64_t kc,
                  int nr, float* Bp) {
  const int64_t full_end = std::min<int64_t>(p1, nc / nr);  // panels with nr real columns
  if (B.col_stride == 1 && full_end > p0) {
    constexpr int64_t kRows = 8;
    for (int64_t k0 = 0; k0 < kc; k0 += kRows) {
      const int64_t k1 = std::min<int64_t>(kc, k0 + kRows);
      for (int64_t p = p0; p < full_end; ++p) {
        const float* s = B.data + (pc + k0) * B.row_stride + jc + p * nr;
        float* d = Bp + p * kc * nr + k0 * nr;
        for (int64_t k = k0; k < k1; ++k, s += B.row_stride, d += nr) {
          if (nr == 32) {  // the AVX-512 panel: a fixed-length copy the compiler unrolls (no memcpy call)
            for (int j = 0; j < 32; ++j) d[j] = s[j];
          } else {
            std::memcpy(d, s, sizeof(float) * static_cast<size_t>(nr));
          }
        }
      }
    }
    p0 = full_end;
  }
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t col0 = p * nr;
    pack_b_panel(B, pc, jc + col0, std::min<int64_t>(nr, nc - col0), kc, nr, Bp + p * kc * nr);
  }
}

// One MC x (column range) block. B panels come either from the packed block (row stride
// NR) or, in direct mode, straight from row-major B (row stride ldb) except for a partial
// last panel, which is packed into `edge`.
// In fill mode the block is packed by the macro-kernel itself: the first tile of each
// whole panel reads it from B[pc, jc] (`direct`) and stores it into its place in `packed`
// as it goes (GemmKernel::micro_pack), the other tiles read that copy; a partial last
// panel is packed beforehand.
struct BSource {
  float* packed;        // packed block (null in direct mode)
  const float* direct;  // B[pc, jc] in direct and fill modes
  int64_t ldb;          // B's row stride in direct and fill modes
  const float* edge;    // packed partial last panel in direct mode
  bool fill = false;
};

// Where the tiles of one MC x KC block read A: its packed panels, or (`rows` set) every
// whole MR-row panel straight from row-major A, only a partial last panel packed (at its
// place in `packed`).
struct ASource {
  const float* packed;
  const float* rows = nullptr;  // A[ic, pc] in rows mode
  int64_t lda = 0;              // A's row stride in rows mode
};

void macro_kernel(const GemmKernel& g, const ASource& as, const BSource& bs, int64_t mc, int64_t ncols,
                  int64_t nr_begin, int64_t nc_total, int64_t kc, float alpha, float beta, float* C, int64_t ldc) {
  alignas(64) float tile[16 * 64];
  const float* Ap = as.packed;
  // The full tile of rows i0 .. i0 + MR into c (row stride ldc).
  auto full_tile = [&](int64_t i0, const float* bpanel, int64_t ldb, float* c, int64_t ldc_, float beta_) {
    if (as.rows)
      g.rows(kc, as.rows + i0 * as.lda, as.lda, bpanel, ldb, nullptr, c, ldc_, alpha, beta_);
    else
      g.micro(kc, Ap + i0 / g.mr * (kc * g.as), bpanel, ldb, c, ldc_, alpha, beta_);
  };
  for (int64_t j0 = 0; j0 < ncols; j0 += g.nr) {
    const int64_t cols = std::min<int64_t>(g.nr, ncols - j0);
    const int64_t col = nr_begin + j0;  // column inside the NC block
    const float* bpanel;
    int64_t ldb;
    int64_t i_begin = 0;
    if (bs.fill && cols == g.nr) {
      float* dst = bs.packed + col / g.nr * (kc * g.nr);
      if (as.rows)
        g.rows_pack(kc, as.rows, as.lda, bs.direct + col, bs.ldb, dst, C + j0, ldc, alpha, beta);
      else
        g.micro_pack(kc, Ap, bs.direct + col, bs.ldb, dst, C + j0, ldc, alpha, beta);
      i_begin = g.mr;
      bpanel = dst;
      ldb = g.nr;
    } else if (bs.packed) {
      bpanel = bs.packed + col / g.nr * (kc * g.nr);
      ldb = g.nr;
    } else if (col + g.nr <= nc_total) {
      bpanel = bs.direct + col;
      ldb = bs.ldb;
    } else {
      bpanel = bs.edge;
      ldb = g.nr;
    }
    for (int64_t i0 = i_begin; i0 < mc; i0 += g.mr) {
      const int64_t rows = std::min<int64_t>(g.mr, mc - i0);
      const float* apanel = Ap + i0 / g.mr * (kc * g.as);
      float* c = C + i0 * ldc + j0;
      // A column edge's own kernel: its few vectors per row, the last under a mask; a full
      // row panel reads A in place where the block does.
      const bool in_place = rows == g.mr && as.rows;
      GemmKernel::MicroCols narrow = nullptr;
      if (cols < g.nr && g.width > 0) {
        const int64_t v = (cols - 1) / g.width;
        narrow = in_place ? g.col_edge_rows[v] : g.col_edge[v][rows];
      }
      if (rows == g.mr && cols == g.nr) {
        full_tile(i0, bpanel, ldb, c, ldc, beta);
      } else if (cols == g.nr && g.edge[rows]) {
        g.edge[rows](kc, apanel, bpanel, ldb, c, ldc, alpha, beta);
      } else if (narrow) {
        narrow(kc, in_place ? as.rows + i0 * as.lda : apanel, as.lda, bpanel, ldb, c, ldc, alpha, beta,
               static_cast<int>(cols));
      } else {
        // Edge tile of a kernel without edge kernels (the portable one): the full tile into
        // scratch, then the valid part merged.
        if (rows == g.mr)
          full_tile(i0, bpanel, ldb, tile, g.nr, 0.0f);
        else
          g.micro(kc, apanel, bpanel, ldb, tile, g.nr, alpha, 0.0f);
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < cols; ++j)
            c[i * ldc + j] = tile[i * g.nr + j] + (beta == 0.0f ? 0.0f : beta * c[i * ldc + j]);
      }
    }
  }
}

}  // namespace

double sgemm_fma_peak_gflops(double seconds) {
  const GemmKernel& g = active_sgemm_kernel();
  return g.fma_peak ? g.fma_peak(seconds) : 0.0;
}

const char* sgemm_kernel_name() {
  static thread_local char buf[64];
  const GemmKernel& g = active_sgemm_kernel();
  std::snprintf(buf, sizeof(buf), "%s %dx%d", g.name, g.mr, g.nr);
  return buf;
}

void sgemm(int64_t M, int64_t N, int64_t K, float alpha, GemmOperand A, GemmOperand B,
           float beta, float* C, int64_t ldc, bool parallel) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  const GemmKernel& g = active_sgemm_kernel();
  const double flops = 2.0 * M * N * K;
  // Threads from 0.3 MFLOP: two column halves of a 64^3 product (0.5 MFLOP) on 2 threads
  // take 3.6 us where one thread takes 5 (below); a row of 1 x 1024 x 128 dot products
  // (0.26 MFLOP) still ran 10% slower split in two, 2 x 384 x 256 (0.39) 24% faster.
  int threads = parallel && !in_parallel_region() && flops > 3e5 ? num_threads() : 1;
  if (M <= 4 && alpha == 1.0f && A.col_stride == 1 && B.row_stride == 1) {
    // A few rows against a transposed B (a Linear layer at batch 1: x . W^T): dot products
    // along K read W once, where packing would copy all of it for a handful of rows.
    const int64_t ldb = B.col_stride;
    parallel_for(0, N, threads > 1 ? (N + threads - 1) / threads : N, [&](int64_t lo, int64_t hi) {
      sgemm_nt_small(M, hi - lo, K, A.data, A.row_stride, B.data + lo * ldb, ldb, beta, C + lo, ldc);
    });
    return;
  }
  if (2 * N <= g.nr && M >= g.mr && M > N) {
    // A narrow product (a classifier head: N = 10 against NR = 32) leaves most of every
    // micro-tile's columns empty. Its transpose C^T = B^T A^T has the long side across the
    // panels; it goes to a buffer and is transposed back (N x M floats, cheap next to it).
    thread_local std::vector<float> ct_buf;
    if (ct_buf.size() < static_cast<size_t>(M * N)) ct_buf.resize(static_cast<size_t>(M * N));
    float* ct = ct_buf.data();
    if (beta != 0.0f)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) ct[j * M + i] = C[i * ldc + j];
    sgemm(N, M, K, alpha, {B.data, B.col_stride, B.row_stride}, {A.data, A.col_stride, A.row_stride}, beta, ct, M,
          parallel);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = ct[j * M + i];
    return;
  }

  // Thread t's columns [first, second) when each thread takes whole NR panels.
  const int64_t panels = (N + g.nr - 1) / g.nr;
  auto panel_columns = [&](int t) {
    return std::pair{std::min(N, panels * t / threads * g.nr), std::min(N, panels * (t + 1) / threads * g.nr)};
  };
  auto widest_share = [&] {  // the widest thread's columns against an even share
    int64_t w = 0;
    for (int t = 0; t < threads; ++t) {
      const auto [n0, n1] = panel_columns(t);
      w = std::max(w, n1 - n0);
    }
    return static_cast<double>(w) * threads / static_cast<double>(N);
  };
  if (threads > 1 &&
      (N >= int64_t{4} * g.nr * threads || (flops < 2e7 && panels >= threads && widest_share() <= 1.15))) {
    // Wide enough for every thread to own whole NR panels: each computes its own column
    // range of C as an independent single-thread product (packing all of A and its share
    // of B). Against one team sharing each packed B block (below) this repacks A once per
    // thread but needs no barrier per (jc, pc) block -- on this 2-vCPU VM a teammate that
    // lags (or is descheduled) at a barrier stalls the other: 512 x 3072 x 768 on 2
    // threads 320 -> 363 GFLOP/s, 2048^3 334-340 -> 356 (docs/performance.md). Small
    // products (under 20 MFLOP) split so from one panel per thread: their whole run is a
    // few K blocks, and the team's barriers and shared packing weighed most (2 threads,
    // against 1 thread or the team: 64^3 105 -> 147 GFLOP/s, 64 x 128 x 64 103 -> 161,
    // 128^3 177 -> 198, 128 x 128 x 512 207 -> 220; docs/performance.md, twelfth session)
    // -- unless the panels divide unevenly (3 panels on 2 threads: one thread would do
    // twice the other's work; the widest share at most 1.15x an even one): 7 panels (224^3)
    // split evenly enough, 3 and 5 go by rows (below).
    if (global_pool().try_run_team(threads, [&](int tid) {
          const auto [n0, n1] = panel_columns(tid);
          if (n1 > n0)
            sgemm(M, n1 - n0, K, alpha, A, {B.data + n0 * B.col_stride, B.row_stride, B.col_stride}, beta, C + n0,
                  ldc, /*parallel=*/false);
        }))
      return;
  }
  if (threads > 1 && M >= int64_t{2} * g.mr * threads) {
    // Too few panels to split evenly, but rows enough: each thread computes its own range of
    // whole MR-row panels (the last also M's partial one) as an independent single-thread
    // product, packing B for itself -- for fewer than 4 NR panels per thread a small copy --
    // where the team shares one packed B at two barriers per block. 2 threads, team ->
    // rows (GFLOP/s, one process, per-round medians): 256 x 48 x 256 176 -> 205-207,
    // 64 x 48 x 64 92 -> 128-133, 64 x 128 x 3136 (the CNN's first Linear) 169-171 -> 193-198,
    // 784 x 100 x 784 166-194 -> 197-199, 1024 x 160 x 1024 200-204 -> 213-215, 96^3 178 ->
    // 182; none slower beyond noise (3136 x 128 x 64 208-211 -> 205-215).
    const int64_t rpanels = M / g.mr;
    if (global_pool().try_run_team(threads, [&](int tid) {
          const int64_t m0 = rpanels * tid / threads * g.mr;
          const int64_t m1 = tid + 1 == threads ? M : rpanels * (tid + 1) / threads * g.mr;
          if (m1 > m0)
            sgemm(m1 - m0, N, K, alpha, {A.data + m0 * A.row_stride, A.row_stride, A.col_stride}, B, beta, C + m0 * ldc,
                  ldc, /*parallel=*/false);
        }))
      return;
  }

  // K in even blocks of at most KC (784 = 392 + 392, not 768 + 16): a short last block pays
  // a full C-tile update and packing pass for little arithmetic.
  const int64_t kc_max = even_block(K, g.kc, 8);
  // Row blocks of at most MC rows, fewer when a deep K block would push the packed A block
  // out of L2 (KC 768: 224 rows).
  const int64_t mc_max = within_budget(g.mc, g.a_block_bytes, kc_max * g.as, g.mr);
  // Column blocks of at most NC columns and b_block_bytes of packed B, in even parts
  // (3072 columns at KC 768: 1536 + 1536).
  const int64_t nc_max = even_block(N, within_budget(g.nc, g.b_block_bytes, kc_max * g.nr, g.nr), g.nr);
  // Direct mode: with few rows, each B panel is used by only a handful of micro-tiles, so
  // packing it (a full read and write of B) costs more than it saves; the kernel then reads
  // row-major B in place. Otherwise the shared packed B block lives in the caller's scratch.
  const bool direct = B.col_stride == 1 && M <= g.mc * threads;
  // Single-thread products of a row-major B with 64-byte aligned rows pack B inside the
  // macro-kernel (BSource::fill): each panel is read once, by the tile that computes with it
  // first, and is hot in L1/L2 for the next ones, where a separate pass wrote the whole
  // block out first (3% of a 512 x 768 x 768 product's samples; interleaved A/B on
  // 2026-11-28: +1-3% at 512 - 2048, 1 and 2 threads). Rows off 64-byte alignment span a
  // third cache line per k step there (3-6% slower), and teams share the block: both pack
  // it beforehand.
  const bool aligned_rows = reinterpret_cast<uintptr_t>(B.data) % 64 == 0 && B.row_stride % 16 == 0;
  const bool fill = !direct && threads == 1 && B.col_stride == 1 && aligned_rows && g.micro_pack && M >= g.mr;
  // Row-major A is read in place by the tiles (GemmKernel::rows) rather than packed: MR rows
  // are MR sequential streams, and the packing pass -- repeated by every thread when threads
  // split the columns -- was 3-5% of a 256^3 or 512^3 product. Not when rows lie a multiple
  // of 4 KiB apart: all MR would then map to one L1 set (1024^3: 104 -> 80 GFLOP/s).
  const bool a_rows = g.rows && A.col_stride == 1 && A.row_stride % 1024 != 0;
  float* Bp = direct ? nullptr : scratch(1, static_cast<size_t>(nc_max) * kc_max);
  float* Bedge = direct ? scratch(1, static_cast<size_t>(g.nr) * kc_max) : nullptr;

  // The whole product runs as one team: per (jc, pc) block every thread packs its share of
  // the B panels, all meet at a barrier, compute their row blocks against the shared packed
  // B, and meet again before B is overwritten (BLIS's scheme: two cheap spin barriers per
  // block instead of two thread-pool dispatches).
  auto body = [&](int tid, int team, SpinBarrier* barrier) {
    for (int64_t jc = 0; jc < N; jc += nc_max) {
      const int64_t nc = std::min<int64_t>(nc_max, N - jc);
      const int64_t npanels = (nc + g.nr - 1) / g.nr;
      // Row blocks: at most MC rows each, their count a multiple of the team size and their
      // sizes equal (to an MR multiple), so no thread waits on a larger block.
      int64_t mblocks = (M + mc_max - 1) / mc_max;
      if (team > 1) mblocks = (mblocks + team - 1) / team * team;
      int64_t mc = (M + mblocks - 1) / mblocks;
      mc = std::max<int64_t>(g.mr, (mc + g.mr - 1) / g.mr * g.mr);
      mblocks = (M + mc - 1) / mc;
      int64_t nsplit = 1;
      // Too few rows for every thread: split the NR panels too.
      if (team > 1 && mblocks < team) nsplit = std::min<int64_t>(npanels, (team + mblocks - 1) / mblocks);
      const int64_t tasks = mblocks * nsplit;
      for (int64_t pc = 0; pc < K; pc += kc_max) {
        const int64_t kc = std::min<int64_t>(kc_max, K - pc);
        const float beta_k = pc == 0 ? beta : 1.0f;
        BSource bs{Bp, nullptr, B.row_stride, Bedge};
        if (fill) {
          bs.direct = B.data + pc * B.row_stride + jc;
          if (nc % g.nr) pack_b_panel(B, pc, jc + nc / g.nr * g.nr, nc % g.nr, kc, g.nr, Bp + nc / g.nr * kc * g.nr);
        } else if (direct) {
          bs.direct = B.data + pc * B.row_stride + jc;
          const int64_t full = nc / g.nr * g.nr;
          if (full < nc && tid == 0) pack_b_panel(B, pc, jc + full, nc - full, kc, g.nr, Bedge);
        } else {
          pack_b_block(B, pc, jc, nc, npanels * tid / team, npanels * (tid + 1) / team, kc, g.nr, Bp);
        }
        if (barrier) barrier->arrive_and_wait();
        float* Ap = scratch(0, static_cast<size_t>((mc + g.mr - 1) / g.mr * g.as) * kc);
        int64_t packed_block = -1;
        for (int64_t t = tasks * tid / team; t < tasks * (tid + 1) / team; ++t) {
          const int64_t mb = t / nsplit, ns = t % nsplit;
          const int64_t ic = mb * mc, mcur = std::min<int64_t>(mc, M - ic);
          if (packed_block != mb) {
            const int64_t from = a_rows ? mcur / g.mr * g.mr : 0;  // rows mode: a partial last panel only
            if (from < mcur) pack_a(A, ic + from, pc, mcur - from, kc, g.mr, g.as, Ap + from / g.mr * (kc * g.as));
            packed_block = mb;
          }
          const ASource as{Ap, a_rows ? A.data + ic * A.row_stride + pc : nullptr, A.row_stride};
          const int64_t p0 = npanels * ns / nsplit, p1 = npanels * (ns + 1) / nsplit;
          const int64_t c0 = p0 * g.nr, c1 = std::min<int64_t>(nc, p1 * g.nr);
          bs.fill = fill && t == 0;  // the first row block packs
          if (c1 > c0) macro_kernel(g, as, bs, mcur, c1 - c0, c0, nc, kc, alpha, beta_k, C + ic * ldc + jc + c0, ldc);
        }
        if (barrier) barrier->arrive_and_wait();
      }
    }
  };
  if (threads > 1) {
    SpinBarrier barrier(threads);
    if (global_pool().try_run_team(threads, [&](int tid) { body(tid, threads, &barrier); })) return;
  }
  body(0, 1, nullptr);
}

void dgemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rsa,
           int64_t csa, const double* B, int64_t rsb, int64_t csb, double beta, double* C,
           int64_t ldc, bool parallel) {
  if (M <= 0 || N <= 0) return;
  auto rows = [&](int64_t lo, int64_t hi) {
    std::vector<double> acc(static_cast<size_t>(N));
    for (int64_t i = lo; i < hi; ++i) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t k = 0; k < K; ++k) {
        const double a = A[i * rsa + k * csa];
        const double* b = B + k * rsb;
        if (csb == 1) {
          for (int64_t j = 0; j < N; ++j) acc[j] += a * b[j];
        } else {
          for (int64_t j = 0; j < N; ++j) acc[j] += a * b[j * csb];
        }
      }
      for (int64_t j = 0; j < N; ++j)
        C[i * ldc + j] = alpha * acc[j] + (beta == 0.0 ? 0.0 : beta * C[i * ldc + j]);
    }
  };
  if (parallel) {
    parallel_for(0, M, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, N * K)), rows);
  } else {
    rows(0, M);
  }
}

template <>
void gemm<float>(int64_t M, int64_t N, int64_t K, const float* A, int64_t rsa, int64_t csa, const float* B,
                 int64_t rsb, int64_t csb, float beta, float* C, int64_t ldc, bool parallel) {
  sgemm(M, N, K, 1.0f, {A, rsa, csa}, {B, rsb, csb}, beta, C, ldc, parallel);
}

template <>
void gemm<double>(int64_t M, int64_t N, int64_t K, const double* A, int64_t rsa, int64_t csa, const double* B,
                  int64_t rsb, int64_t csb, double beta, double* C, int64_t ldc, bool parallel) {
  dgemm(M, N, K, 1.0, A, rsa, csa, B, rsb, csb, beta, C, ldc, parallel);
}

void sgemm_nt_small(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                    float beta, float* C, int64_t ldc) {
  if (active_isa() == Isa::kAvx512 && sgemm_nt_small_avx512(M, N, K, A, lda, B, ldb, beta, C, ldc)) return;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      const float* a = A + i * lda;
      const float* b = B + j * ldb;
      float part[8] = {};
      int64_t k = 0;
      for (; k + 8 <= K; k += 8)
        for (int t = 0; t < 8; ++t) part[t] += a[k + t] * b[k + t];
      float v = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      for (; k < K; ++k) v += a[k] * b[k];
      C[i * ldc + j] = beta == 0.0f ? v : v + beta * C[i * ldc + j];
    }
}

}  // namespace loom::cpu
