// Packed, cache-blocked GEMM in the style of BLIS / GotoBLAS.
//
// C = alpha * A * B + beta * C, with every operand given by element strides, so transposed
// and strided views need no copy: packing reads them once into contiguous micro-panels.
// Loop nest (Goto): jc over NC columns of B (packed KC x NC block shared by all threads,
// sized for L3), pc over KC, ic over MC rows of A (packed MC x KC block per thread, sized
// for L2), then jr/ir over NR x MR register tiles computed by an MR x NR micro-kernel.
// The micro-kernel (AVX-512, AVX2+FMA or portable) is chosen at run time.
#pragma once

#include <cstdint>

namespace loom::cpu {

struct GemmOperand {
  const float* data;
  int64_t row_stride;  // elements between consecutive rows
  int64_t col_stride;  // elements between consecutive columns
};

// C[M, N] (row stride ldc, unit column stride) = alpha * A[M, K] * B[K, N] + beta * C.
// beta == 0 never reads C. Uses the global thread pool unless `parallel` is false.
void sgemm(int64_t M, int64_t N, int64_t K, float alpha, GemmOperand A, GemmOperand B,
           float beta, float* C, int64_t ldc, bool parallel = true);

// Double precision (cache-blocked loops, no hand-written micro-kernel: used for the f64
// path that gradient checks run on, not for speed).
void dgemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rsa,
           int64_t csa, const double* B, int64_t rsb, int64_t csb, double beta, double* C,
           int64_t ldc, bool parallel = true);

// Type-generic entry (f32 -> sgemm, f64 -> dgemm), alpha = 1.
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B,
          int64_t rsb, int64_t csb, T beta, T* C, int64_t ldc, bool parallel = true);

// C[M, N] = A[M, K] * B[N, K]^T + beta * C with both operands K-contiguous, vectorized
// along K. For products with few outputs and a long reduction (a weight gradient summed
// over many positions), where packing for the blocked GEMM would cost more than the math.
void sgemm_nt_small(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                    float beta, float* C, int64_t ldc);

// Description of the micro-kernel sgemm uses now, e.g. "avx512 14x32".
const char* sgemm_kernel_name();

// The active kernel's instruction set's FP32 FMA rate on one core in GFLOP/s, measured by a
// register-only loop of about `seconds` (0 for the portable kernel): this machine's peak.
double sgemm_fma_peak_gflops(double seconds = 0.1);

// A micro-kernel and the blocking it is tuned for (per-ISA translation units export one).
struct GemmKernel {
  const char* name;
  int mr, nr;
  int as;  // A panel stride per k (>= mr): 16 for the 14-row AVX-512 kernel, so that each k's
           // values fill one aligned 64-byte line and packing writes whole vectors
  int64_t mc, kc, nc;
  // C[0:MR, 0:NR] (row stride ldc) = alpha * Apanel(K x MR, stride as) . Bpanel(K x NR) + beta * C,
  // where row k of the B panel starts at B + k * ldb (NR when packed, B's row stride when
  // the kernel reads an unpacked row-major B directly).
  using Micro = void (*)(int64_t K, const float* A, const float* B, int64_t ldb, float* C, int64_t ldc,
                         float alpha, float beta);
  Micro micro;
  // edge[r] (r < mr; null where absent): the same for only the first r rows of an MR-tall A
  // panel, written straight into C -- M's last panel then costs r rows, not MR.
  Micro edge[16] = {};
  // micro with B read from row-major B (row stride ldb) and each k's NR values also stored
  // to the packed panel Bp (aligned, NR floats per k): packing fused into the first tile
  // that uses a panel. Null where absent.
  using MicroPack = void (*)(int64_t K, const float* A, const float* B, int64_t ldb, float* Bp, float* C,
                             int64_t ldc, float alpha, float beta);
  MicroPack micro_pack = nullptr;
  // micro (Bp null) and micro_pack with A read in place: MR rows of a row-major A, row i at
  // A + i * lda, instead of a packed panel. Null where absent.
  using MicroRows = void (*)(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* Bp, float* C,
                             int64_t ldc, float alpha, float beta);
  MicroRows rows = nullptr, rows_pack = nullptr;
  // col_edge[v - 1][r] (r <= mr): C[0:r, 0:cols] of a tile whose B panel holds fewer than NR
  // columns (the last panel of an N that is not a multiple of NR, zero-padded to NR):
  // `cols` <= v * width of them, v vectors per row, the last one loaded and stored under a
  // mask, written straight into C. col_edge_rows[v - 1]: the same for MR rows of a
  // row-major A read in place (row i at A + i * lda; packed kernels ignore lda). Null where
  // absent: the tile then goes through a scratch tile.
  using MicroCols = void (*)(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
                             float alpha, float beta, int cols);
  MicroCols col_edge[4][17] = {};
  MicroCols col_edge_rows[4] = {};
  int width = 0;  // floats per vector of col_edge's kernels
  // L2 budget for the packed MC x KC block of A (bytes; 0: none): a deep K block gets
  // fewer rows than mc, so that it still stays in L2.
  int64_t a_block_bytes = 0;
  // L3 budget for the packed KC x NC block of B (bytes; 0: none), shared by the row blocks.
  int64_t b_block_bytes = 0;
  // This ISA's measured single-thread FMA rate (fma_peak_gflops), null for the portable kernel.
  double (*fma_peak)(double seconds) = nullptr;
};

// The kernel sgemm uses now (after CPU detection and set_isa_override).
const GemmKernel& active_sgemm_kernel();
const GemmKernel* sgemm_kernel_avx512();  // null when not compiled in
const GemmKernel* sgemm_kernel_avx2();
// AVX-512 body of sgemm_nt_small; false when not compiled in.
bool sgemm_nt_small_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                           int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace loom::cpu
