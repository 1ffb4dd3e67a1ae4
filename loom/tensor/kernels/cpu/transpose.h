// Blocked f32 transposes shared by the conv and GEMM packing code.
#pragma once

#include <cstdint>

namespace loom::cpu {

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols, by 16 x 16 register
// transposes (masked at the edges). With full_rows, each destination row is written in
// whole 16-lane groups (zeros past `rows`), to fill a zero-padded vector layout. ldd may be
// negative (destination rows bottom-up). Only call when the CPU has AVX-512
// (transpose_avx512.cpp).
void transpose_f32_avx512(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd,
                          bool full_rows = false);

// dst[k * width + i] = i < n ? src[k * lds + i] : 0 for k < count, width <= 16: short
// contiguous runs into a zero-padded panel by masked vector moves (a column-major GEMM
// operand's micro-panels). AVX-512 only.
void copy_runs_f32_avx512(const float* src, int64_t lds, int64_t n, int64_t count, float* dst, int width);

}  // namespace loom::cpu
