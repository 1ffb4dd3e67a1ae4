// The public, differentiable tensor operations. Every function records itself on the
// autodiff tape when an input requires grad (see loom/autodiff/graph.h) and propagates
// tangents inside a jvp transform. Errors name the op and the offending shapes/dtypes.
//
// Broadcasting follows NumPy. Binary ops promote dtypes (bool < i32 < i64 < f32 < f64);
// a double scalar takes the tensor's dtype. Axes may be negative.
#pragma once

#include <optional>
#include <vector>

#include "loom/ops/op_table.h"
#include "loom/tensor/tensor.h"

namespace loom {

// ---- elementwise ----------------------------------------------------------------------
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact (erf) form, as torch.nn.functional.gelu
Tensor abs(const Tensor& x);
Tensor erf(const Tensor& x);
Tensor sign(const Tensor& x);  // not differentiable (zero gradient)
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor cast(const Tensor& x, DType dtype);

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, double exponent);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

// Comparisons give bool tensors and have no gradient.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// y > 0 ? g : 0, broadcasting: the gradient through relu given its output y (PyTorch's
// threshold_backward(g, y, 0)).
Tensor relu_backward(const Tensor& g, const Tensor& y);

// A 0-d tensor holding v in like's dtype (floating when v is fractional and like integral).
Tensor scalar_like(double v, const Tensor& like);

Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// ---- reductions (empty axes = all axes) ------------------------------------------------
Tensor sum(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor amax(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false);
inline Tensor max(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false) { return amax(x, axes, keepdim); }
inline Tensor min(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false) { return amin(x, axes, keepdim); }
Tensor argmax(const Tensor& x, int64_t axis, bool keepdim = false);
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false);
// Variance with Bessel's correction by default (correction = 1), as torch.var.
Tensor var(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false,
           int64_t correction = 1);
// Sums x down to `shape` (the adjoint of broadcasting to x's shape).
Tensor sum_to(const Tensor& x, const Shape& shape);

Tensor softmax(const Tensor& x, int64_t axis = -1);
Tensor log_softmax(const Tensor& x, int64_t axis = -1);

// ---- linear algebra, convolution, pooling ----------------------------------------------
// NumPy matmul: 1-D operands are promoted and squeezed, batch dimensions broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);

struct Conv2dOptions {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  // Fused activation: y = relu(conv + bias) computed as the kernel writes y (cuDNN's
  // convolution-bias-activation); the gradient goes through relu_backward on y.
  bool relu = false;
  static Conv2dOptions make(int64_t stride, int64_t padding, int64_t dilation = 1,
                            int64_t groups = 1, bool relu = false) {
    return {stride, stride, padding, padding, dilation, dilation, groups, relu};
  }
};
// x [N, C, H, W], w [O, C/groups, KH, KW], optional bias [O] -> [N, O, OH, OW].
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor(),
              const Conv2dOptions& opt = {});
// Adjoints of conv2d (also differentiable): input gradient and weight gradient.
Tensor conv2d_backward_input(const Tensor& gy, const Tensor& w, const Shape& input_shape,
                             const Conv2dOptions& opt);
Tensor conv2d_backward_weight(const Tensor& x, const Tensor& gy, const Shape& weight_shape,
                              const Conv2dOptions& opt);
// stride 0 means stride = kernel (PyTorch's default).
// With relu: relu(max_pool2d(x)), which equals max_pool2d(relu(x)), in one kernel; its
// gradient is masked on the pooled side.
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride = 0, int64_t padding = 0, bool relu = false);
// The pooled output and its argmax indices (i64, flat h*W+w within each plane, as PyTorch's
// return_indices).
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, int64_t kernel, int64_t stride = 0,
                                                  int64_t padding = 0);
// Adjoint of max pooling: g [N, C, OH, OW] placed at `indices` in a zero tensor of
// input_shape (PyTorch's max_pool2d_with_indices_backward). Differentiable in g.
Tensor max_pool2d_backward(const Tensor& g, const Tensor& indices, const Shape& input_shape, int64_t kernel,
                           int64_t stride = 0, int64_t padding = 0);
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride = 0, int64_t padding = 0);
// conv2d (+ bias) followed by max_pool2d, as one op: the convolution runs a few images at
// a time into a cache-sized buffer that the pooling reads back at once, so the full-size
// activation is never written to memory, and its gradient is never built either (the
// adjoints below go from the pooled gradient straight to the input and weight gradients).
// conv.relu applies relu after the pooling (= before it; the gradient is masked on the
// pooled side). Same values as max_pool2d(conv2d(x, w, bias, conv), kernel, stride,
// padding); the indices are those max_pool2d would record on the convolution's output, as
// i32 (half the memory traffic of i64; the adjoints take either).
Tensor conv2d_max_pool2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& conv,
                         int64_t kernel, int64_t stride = 0, int64_t padding = 0);
std::pair<Tensor, Tensor> conv2d_max_pool2d_with_indices(const Tensor& x, const Tensor& w, const Tensor& bias,
                                                         const Conv2dOptions& conv, int64_t kernel,
                                                         int64_t stride = 0, int64_t padding = 0);
// Its adjoints (differentiable), from the pooled gradient g and the indices:
//   conv2d_backward_input(max_pool2d_backward(g, indices), w) and
//   conv2d_backward_weight(x, max_pool2d_backward(g, indices)).
Tensor conv2d_pooled_backward_input(const Tensor& g, const Tensor& indices, const Tensor& w, const Shape& input_shape,
                                    const Conv2dOptions& conv, int64_t kernel, int64_t stride = 0,
                                    int64_t padding = 0);
Tensor conv2d_pooled_backward_weight(const Tensor& x, const Tensor& g, const Tensor& indices,
                                     const Shape& weight_shape, const Conv2dOptions& conv, int64_t kernel,
                                     int64_t stride = 0, int64_t padding = 0);

// ---- indexing ---------------------------------------------------------------------------
Tensor gather(const Tensor& x, int64_t axis, const Tensor& index);
Tensor scatter_add(const Tensor& src, int64_t axis, const Tensor& index, const Shape& out_shape);
Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index);
Tensor index_add(const Tensor& src, int64_t axis, const Tensor& index, const Shape& out_shape);
// Rows of weight [V, D] picked by integer ids of any shape -> ids.shape + [D].
Tensor embedding(const Tensor& weight, const Tensor& ids);
Tensor concat(const std::vector<Tensor>& xs, int64_t axis = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t axis = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t axis = 0);

// ---- views ------------------------------------------------------------------------------
Tensor reshape(const Tensor& x, const Shape& shape);  // one -1 allowed; a view when possible
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t a, int64_t b);
Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop, int64_t step = 1);
Tensor expand(const Tensor& x, const Shape& shape);  // -1 keeps a dimension
Tensor squeeze(const Tensor& x, std::optional<int64_t> axis = std::nullopt);
Tensor squeeze_axes(const Tensor& x, const std::vector<int64_t>& axes);  // axes must be size 1
Tensor unsqueeze(const Tensor& x, int64_t axis);
Tensor flatten(const Tensor& x, int64_t start = 0, int64_t end = -1);
Tensor identity(const Tensor& x);

// ---- neural-network functions ---------------------------------------------------------
// Normalizes over the trailing dims of normalized_shape; weight and bias optional.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// Inverted dropout: zeros with probability p and scales the rest by 1/(1-p) in training;
// the mask comes from a Philox stream (seed, offset), identical for any thread count.
Tensor dropout(const Tensor& x, double p, bool training = true);
// Mean cross-entropy of logits [N, C] against i64 class targets [N], with optional label
// smoothing, as torch.nn.functional.cross_entropy.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, double label_smoothing = 0.0);
Tensor mse_loss(const Tensor& pred, const Tensor& target);

}  // namespace loom
