// 2-D convolution lowered onto GEMM, as cuDNN's GEMM-based algorithms do.
//
// With AVX-512 (f32) the GEMM is implicit (conv_direct.h): the kernels read the image in
// place instead of building the column matrix. Otherwise, im2col unfolds a chunk of images
// side by side into a [C/g * KH * KW, nb * OH * OW] matrix so that the convolution becomes
// one GEMM per chunk and group: out[g] = W[g] (O/g x CKK) * col[g]. Backward-data is the
// transposed product followed by col2im (a scatter-add back into the images);
// backward-weights is dY[g] * col[g]^T summed over chunks in a fixed order. Chunks (sized
// for ~2048 GEMM columns) are spread over threads, each running a single-threaded GEMM on
// its own buffers; a batch too small to give every thread a chunk runs with threaded GEMMs.
#pragma once

#include <cstdint>

#include "loom/tensor/tensor.h"

namespace loom::cpu {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

// Whether f32 3x3 unit-stride convolutions on AVX-512 use the Winograd F(2x2, 3x3) kernels
// (conv_winograd.h; on by default) or the implicit-GEMM ones. Process-wide; for tests and
// benchmarks that compare the two; LOOM_CONV_WINOGRAD=0 in the environment starts it off.
void set_conv_winograd(bool enabled);
bool conv_winograd_enabled();

// Output spatial size; throws naming the op if the kernel does not fit the padded input.
int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                      const char* op);

// x [N, C, H, W], w [O, C/groups, KH, KW] (+ bias [O] when defined) -> y [N, O, OH, OW].
// f32 or f64, contiguous.
// With relu, y = max(y, 0) as it is written (NaN -> 0, as the relu op).
void conv2d_forward(const Tensor& x, const Tensor& w, const Conv2dParams& p, Tensor& y, const Tensor& bias = Tensor(),
                    bool relu = false);
// gy [N, O, OH, OW], w -> gx [N, C, H, W]
void conv2d_backward_input(const Tensor& gy, const Tensor& w, const Conv2dParams& p, Tensor& gx);
// x, gy -> gw [O, C/groups, KH, KW]
void conv2d_backward_weight(const Tensor& x, const Tensor& gy, const Conv2dParams& p, Tensor& gw);

struct Pool2dParams {
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w;
  int64_t pad_h = 0, pad_w = 0;
};

// Max pooling: y [N, C, OH, OW] and idx (i64 or i32, flat offset h*W+w inside each H x W
// plane).
// With relu, y = max(y, 0) afterwards: relu(max_pool(x)) = max_pool(relu(x)), the indices
// being those of the unrectified maximum.
void max_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& y, Tensor& idx, bool relu = false);
// Adjoint: gx (zeroed here) gets g at the plane-local indices idx; an index outside its
// plane is an error. 2 x 2 / stride 2 windows write each input element once (AVX-512).
void max_pool2d_backward(const Tensor& g, const Tensor& idx, const Pool2dParams& p, Tensor& gx);
// Convolution (+ bias) followed by max pooling (relu optional, as max_pool2d), a few images
// at a time: each chunk's convolution output goes to a small per-thread buffer that the
// pooling reads while it is still in cache, so the full-size activation is never written.
// y, idx: the pooled shape (idx as max_pool2d's, inside the convolution's output planes).
void conv2d_max_pool2d(const Tensor& x, const Tensor& w, const Conv2dParams& cp, const Tensor& bias,
                       const Pool2dParams& pp, bool relu, Tensor& y, Tensor& idx);
// Its two adjoints, from the pooled gradient g (any relu mask already applied) and idx,
// chunk by chunk again: the convolution's output gradient max_pool2d_backward(g, idx) lives
// only in a per-thread buffer.
//   gx = conv2d_backward_input(max_pool2d_backward(g, idx), w)
void conv2d_pooled_backward_input(const Tensor& g, const Tensor& idx, const Pool2dParams& pp, const Tensor& w,
                                  const Conv2dParams& cp, Tensor& gx);
//   gw = conv2d_backward_weight(x, max_pool2d_backward(g, idx)), chunks summed in order.
void conv2d_pooled_backward_weight(const Tensor& x, const Tensor& g, const Tensor& idx, const Pool2dParams& pp,
                                   const Conv2dParams& cp, Tensor& gw);
// Average pooling counting padded cells (PyTorch's count_include_pad=True), and its adjoint.
void avg_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& y);
void avg_pool2d_backward(const Tensor& gy, const Pool2dParams& p, Tensor& gx);

}  // namespace loom::cpu
