// AVX-512 2 x 2 / stride-2 max pooling of one plane (pool_avx512.cpp), used by pool.cpp and
// by the fused convolution + pooling kernels. Only call when the CPU has AVX-512.
#pragma once

#include <cstdint>

namespace loom::cpu::detail {

// in: an H x W plane (row stride W) -> y, idx [OH][OW] (idx: int64_t, or int32_t when idx32,
// plane-local h * W + w); relu rectifies y as it is stored.
void max_pool2x2_plane_avx512(const float* in, int64_t W, int64_t OH, int64_t OW, float* y, void* idx, bool idx32,
                              bool relu);
// The adjoint: every element of the H x W plane gx (rows ldx apart) is written once, with g
// where it was its window's argmax and zero elsewhere. False (the plane partly written)
// when an index is not inside its own window.
bool max_pool2x2_backward_plane_avx512(const float* g, const void* idx, bool idx32, int64_t H, int64_t W, int64_t OH,
                                       int64_t OW, float* gx, int64_t ldx);

}  // namespace loom::cpu::detail
