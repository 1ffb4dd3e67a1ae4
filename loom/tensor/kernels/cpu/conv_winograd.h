// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution for f32 on AVX-512
// (conv_winograd_avx512.cpp), used by the implicit-GEMM kernels (conv_direct_avx512.cpp) for
// 3x3, unit-stride, undilated, ungrouped layers, as cuDNN's and oneDNN's Winograd algorithms
// are.
//
// Each 2 x 2 block of output pixels (a "tile") is computed from the 4 x 4 block of padded
// input under it (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
//   y_tile = A^T [ (G g G^T) (.) (B^T d_tile B) ] A      (.) elementwise, per 4 x 4 position
// so each of the 16 positions xi is one GEMM over input channels,
//   M[xi][tile][o] = sum_c V[xi][c][tile] * U[xi][c][o],
// with 16 multiplies per tile and channel pair instead of 36 (2.25x fewer). The transforms
// B^T . B (input), G . G^T (weights) and A^T . A (output) are additions and halvings.
// The weight gradient is the same identity read backwards (the adjoint in g):
//   dg = G^T [ sum over tiles (A dy_tile A^T) (.) (B^T d_tile B) ] G,
// one GEMM per position reducing over tiles. Backward-data is a forward convolution with
// the flipped, transposed kernel (conv_direct_avx512.cpp), so it runs here too.
//
// Results differ from the direct kernels' by rounding only (the transforms add and subtract
// inputs before multiplying); tests bound the difference against a double-precision loop.
#pragma once

#include <cstdint>

#include "loom/tensor/kernels/cpu/conv_direct.h"

namespace loom::cpu::detail {

// Whether a problem takes the Winograd kernels: 3 x 3, unit stride and dilation, one group,
// at least 8 input and 8 output channels (fewer leave its GEMMs without enough reduction
// or lanes), per-image transform buffers within 4 MiB, and Winograd not switched off
// (set_conv_winograd). The choice does not depend on the batch size.
bool winograd_applies(const ConvDims& d);

// Tile geometry of one image: TH x TW tiles of m x m cover the OH x OW output. The kernels
// read the input's unpadded C x H x W planes; the padding (ph, pw) and whatever the last
// tiles read past the output are zeros (masked loads, or skipped loads for m = 4).
//
// m is the tile's side, the same in every pass of a problem: F(4x4, 3x3) (m = 4: 6 x 6 input
// blocks, 36 positions, 36 multiplies per 16 outputs and channel pair instead of 64, as
// oneDNN's wino_4x3) for outputs of at least 4 x 4, else F(2x2, 3x3) (m = 2, 16 positions).
// m = 4 reads the input through a channels-last copy (channels in lanes) and keeps
// V[xi][tile][c]; its transforms have coefficients up to 8 (B^T, A^T) and 1/24 (G), so its
// results round a little further from the direct kernels' (tests bound both).
struct WinogradGeom {
  int m;               // output tile side: 2 or 4
  int64_t C, O, Opad;  // input channels, output channels (Opad: rounded up to 16)
  int64_t H, W, ph, pw;
  int64_t OH, OW, TH, TW, T;
  explicit WinogradGeom(const ConvDims& d, int m = 2);
  int64_t positions() const { return (m + 2) * (m + 2); }
  // Floats between positions of the weight-gradient accumulator acc[position][C][Opad]:
  // C * Opad plus one vector, so that the positions of one (c, o) -- which the last step reads
  // together -- do not all fall in one L1 set when C * Opad * 4 is a multiple of 4 KiB (the
  // 32 -> 64 layer's 8 KiB: one image's weight gradient 64 -> 48 us, 4 images on 2 threads
  // 113-129 -> 95-112, batch 64 on 1 thread 2470-2550 -> 2310-2370).
  int64_t acc_stride() const { return C * Opad + 16; }
  int64_t acc_floats() const { return positions() * acc_stride(); }
};

// The tile side a problem's passes use: 4 for outputs of at least 4 x 4 whose per-image
// buffers fit (else 2).
int winograd_tile(const ConvDims& d);

// U[positions][C][Opad] = G w[o][c] G^T, zero for o >= O. flipped: w is the kernel of the
// backward-data problem that this forward one computes, w[c][o][3][3], used rotated by 180
// degrees (w'[o][c][kh][kw] = w[c][o][2 - kh][2 - kw]). Only output channels [o0, o1)
// (multiples of 16; o1 < 0: Opad) are written.
void winograd_pack_weights(const WinogradGeom& g, const float* w, float* U, bool flipped = false, int64_t o0 = 0,
                           int64_t o1 = -1);
// yt[pixel][Opad] (OH * OW pixels, pixel = oh * OW + ow) = conv(img) + bias (Opad floats,
// zero-padded, or null), rectified when relu -- the layout of the implicit-GEMM kernels'
// transposed output tile. img: the C unpadded H x W planes of one image. Only output channels
// [o0, o1) (as above) are computed, from U's same channels: threads split one image this way.
void winograd_forward_image(const WinogradGeom& g, const float* U, const float* bias, const float* img, float* yt,
                            bool relu, int64_t o0 = 0, int64_t o1 = -1);
// acc[positions][C][Opad] (positions acc_stride() floats apart) += the transform-domain weight
// gradient of one image, from its input planes and its output gradient gyt[pixel][Opad] (zero
// past O). Only output channels [o0, o1) (multiples of 16; o1 < 0: Opad) are read and
// accumulated: threads split one image's gradient this way.
void winograd_wgrad_image(const WinogradGeom& g, const float* img, const float* gyt, float* acc, int64_t o0 = 0,
                          int64_t o1 = -1);
// gw[o][C][3][3] = G^T acc[.][c][o] G for o in [o0, o1) (the same bounds).
void winograd_wgrad_finish(const WinogradGeom& g, const float* acc, float* gw, int64_t o0 = 0, int64_t o1 = -1);

// The implicit-GEMM register tiles (conv_direct_avx512.cpp): for items j < n,
//   out[j * ldo + 16 v ..] (+)= sum_{r < R} vec[r * vs + 16 v ..] * x[base[j] + off[r]],
// v < NV (<= 4); starting from init (or zero) unless accumulate; rectified when relu.
void conv_register_tiles(int NV, int64_t n, int64_t R, const float* vec, int64_t vs, const float* x,
                         const int64_t* base, const int64_t* off, float* out, int64_t ldo, bool accumulate,
                         const float* init, bool relu);

}  // namespace loom::cpu::detail
