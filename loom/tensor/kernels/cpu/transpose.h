// Blocked f32 transposes shared by the conv and GEMM packing code.
#pragma once

#include <cstdint>

namespace loom::cpu {

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols, by 16 x 16 register
// transposes (masked at the edges). With full_rows, each destination row is written in
// whole 16-lane groups (zeros past `rows`), to fill a zero-padded vector layout. Only call
// when the CPU has AVX-512 (transpose_avx512.cpp).
void transpose_f32_avx512(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd,
                          bool full_rows = false);

}  // namespace loom::cpu
