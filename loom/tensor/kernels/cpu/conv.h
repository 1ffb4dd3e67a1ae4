// 2-D convolution lowered onto GEMM, as cuDNN's GEMM-based algorithms do.
//
// For each image, im2col unfolds the input into a [C/g * KH * KW, OH * OW] matrix so that
// the convolution becomes one GEMM per group: out[g] = W[g] (O/g x CKK) * col[g].
// Backward-data is the transposed product followed by col2im (a scatter-add back into the
// image); backward-weights is gy[g] * col[g]^T accumulated over the batch. 1x1 convolutions
// with unit stride and no padding skip im2col (the image already is the column matrix).
// Images are spread over threads, each running a single-threaded GEMM on its own column
// buffer; a batch smaller than the pool runs images one by one with a threaded GEMM.
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

// Output spatial size; throws naming the op if the kernel does not fit the padded input.
int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                      const char* op);

// x [N, C, H, W], w [O, C/groups, KH, KW] -> y [N, O, OH, OW]. f32 or f64, contiguous.
void conv2d_forward(const Tensor& x, const Tensor& w, const Conv2dParams& p, Tensor& y);
// gy [N, O, OH, OW], w -> gx [N, C, H, W]
void conv2d_backward_input(const Tensor& gy, const Tensor& w, const Conv2dParams& p, Tensor& gx);
// x, gy -> gw [O, C/groups, KH, KW]
void conv2d_backward_weight(const Tensor& x, const Tensor& gy, const Conv2dParams& p, Tensor& gw);

struct Pool2dParams {
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w;
  int64_t pad_h = 0, pad_w = 0;
};

// Max pooling: y [N, C, OH, OW] and idx (i64, flat offset h*W+w inside each H x W plane).
void max_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& y, Tensor& idx);
// Average pooling counting padded cells (PyTorch's count_include_pad=True), and its adjoint.
void avg_pool2d(const Tensor& x, const Pool2dParams& p, Tensor& y);
void avg_pool2d_backward(const Tensor& gy, const Pool2dParams& p, Tensor& gx);

}  // namespace loom::cpu
