// Implicit-GEMM convolution for f32 on AVX-512 (conv_direct_avx512.cpp), used by conv.cpp
// in place of im2col + GEMM when the CPU has AVX-512.
//
// The GEMM is the same one im2col lowers to -- out[o, pixel] = sum_tap W[o, tap] *
// x[tap, pixel] -- but the column matrix is never built: the micro-kernel reads each
// element of it straight from a zero-padded copy of the image, where (tap, pixel) is the
// address  pixel_base + tap_offset  (pixel_base = oh*sh*Wp + ow*sw, tap_offset =
// c*Hp*Wp + kh*dh*Wp + kw*dw). Output channels are the vector dimension (16 per zmm),
// so every lane does useful work whatever the feature-map width; pixels (forward) or taps
// (weight gradient) are broadcast from the image. One register-tile kernel computes
//   acc[j][v] += vec[r][16v .. 16v+15] * x[base[j] + off[r]]
// for both passes: forward has j = pixel, r = tap, vec = packed weights; the weight
// gradient has j = tap, r = pixel, vec = the transposed output gradient. Backward-data at
// unit stride is a forward convolution of the padded output gradient with the flipped,
// transposed kernel.
#pragma once

#include <cstdint>
#include <vector>

namespace loom::cpu::detail {

// A (thread-local) buffer of at least n elements: it only grows, so steady-state calls do
// not allocate.
template <typename T>
T* scratch(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

struct ConvDims {
  int64_t N, C, H, W;        // input
  int64_t O, KH, KW;         // weights [O, C/G, KH, KW]
  int64_t OH, OW;            // output
  int64_t G;                 // groups
  int64_t sh, sw, ph, pw, dh, dw;
};

// y [N, O, OH, OW] = conv(x [N, C, H, W], w) (+ bias [O] unless null: the accumulators
// start from it). Only call when the CPU has AVX-512.
void conv_direct_forward_avx512(const ConvDims& d, const float* x, const float* w, float* y,
                                const float* bias = nullptr, bool relu = false);
// gw [O, C/G, KH, KW] = sum over the batch of gy (*) x.
void conv_direct_backward_weight_avx512(const ConvDims& d, const float* x, const float* gy, float* gw);
// gx [N, C, H, W] from gy [N, O, OH, OW]; requires unit stride and (KH-1)*dh >= ph,
// (KW-1)*dw >= pw (returns false otherwise, touching nothing).
bool conv_direct_backward_input_avx512(const ConvDims& d, const float* gy, const float* w, float* gx);

// Convolution fused with 2 x 2 / stride-2 max pooling (relu optional, indices i32 in the
// OH x OW output planes), on the output-channel-vector tiles whatever the tap count: the
// output of one image stays transposed (channels in lanes) in a per-thread buffer, where a
// window is four rows of vectors -- pooling needs no shuffles and only the pooled quarter is
// transposed back. Each returns false, touching nothing the caller keeps, when it does not
// apply (an output under 2 x 2, one image's tile over 1 MiB, fewer than two images per
// thread, backward-data at stride > 1, or -- for the adjoints -- an index outside its
// window); conv.cpp then runs the unfused kernels chunk by chunk.
//   y, idx [N, O, OH/2, OW/2] = max_pool2x2(conv(x, w) + bias)
bool conv_direct_forward_pool2x2_avx512(const ConvDims& d, const float* x, const float* w, const float* bias,
                                        bool relu, float* y, int32_t* idx);
//   gw = conv_backward_weight(x, max_pool2x2_backward(g, idx)): the output gradient's
//   transpose is built from the pooled gradient directly.
bool conv_direct_backward_weight_pool2x2_avx512(const ConvDims& d, const float* x, const float* g, const int32_t* idx,
                                                float* gw);
//   gx = conv_backward_input(max_pool2x2_backward(g, idx), w): the padded output gradient
//   that backward-data convolves is written from the pooled gradient directly.
bool conv_direct_backward_input_pool2x2_avx512(const ConvDims& d, const float* g, const int32_t* idx, const float* w,
                                               float* gx);

}  // namespace loom::cpu::detail
