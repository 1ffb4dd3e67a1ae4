// VJP (reverse) and JVP (forward) rules of every primitive, written with the same
// differentiable ops, so a rule applied while recording is itself differentiable.
// Conventions: a VJP returns one entry per input (undefined = no gradient, e.g. for
// integer index inputs or inputs that do not require grad); a JVP receives undefined
// tangents for inputs that have none and returns the output tangent.
#include <cmath>

#include "loom/autodiff/graph.h"
#include "loom/ops/ops.h"
#include "loom/tensor/kernels/cpu/conv.h"

namespace loom::rules {
namespace {

using autodiff::Node;
using Ts = std::vector<Tensor>;

bool needs(const Node& n, size_t i) { return n.inputs[i].requires_grad(); }

Tensor zero_of(const Tensor& like) { return scalar_like(0.0, like); }

// The tangent t, or zeros shaped like `like` when t is undefined.
Tensor or_zeros(const Tensor& t, const Tensor& like) {
  return t.defined() ? t : expand(zero_of(like), like.shape());
}

// Sum of the defined terms, broadcast to `shape` (JVPs of broadcasting ops).
Tensor sum_terms(const Tensor& a, const Tensor& b, const Shape& shape) {
  Tensor r = a.defined() ? (b.defined() ? a + b : a) : b;
  if (r.defined() && r.shape() != shape) r = expand(r, shape);
  return r;
}

Tensor keepdim_view(const Tensor& g, const Shape& in_shape, const Attrs& at) {
  if (at.keepdim) return g;
  auto axes = normalize_axes(at.ints, static_cast<int64_t>(in_shape.size()), "reduce");
  Shape s = in_shape;
  for (int64_t a : axes) s[a] = 1;
  return reshape(g, s);
}

}  // namespace

// ---- unary -------------------------------------------------------------------------------
Ts neg_vjp(const Node&, const Tensor& g) { return {-g}; }
Tensor neg_jvp(const Ts&, const Ts& t, const Attrs&, const Tensor&, const Ts&) { return -t[0]; }

Ts exp_vjp(const Node& n, const Tensor& g) { return {g * n.out()}; }
Tensor exp_jvp(const Ts&, const Ts& t, const Attrs&, const Tensor& y, const Ts&) { return t[0] * y; }

Ts log_vjp(const Node& n, const Tensor& g) { return {g / n.inputs[0]}; }
Tensor log_jvp(const Ts& in, const Ts& t, const Attrs&, const Tensor&, const Ts&) { return t[0] / in[0]; }

Ts sqrt_vjp(const Node& n, const Tensor& g) { return {g * 0.5 / n.out()}; }
Tensor sqrt_jvp(const Ts&, const Ts& t, const Attrs&, const Tensor& y, const Ts&) { return t[0] * 0.5 / y; }

Ts rsqrt_vjp(const Node& n, const Tensor& g) {
  Tensor y = n.out();
  return {g * -0.5 * y * y * y};
}
Tensor rsqrt_jvp(const Ts&, const Ts& t, const Attrs&, const Tensor& y, const Ts&) { return t[0] * -0.5 * y * y * y; }

Ts tanh_vjp(const Node& n, const Tensor& g) {
  Tensor y = n.out();
  return {g * (1.0 - y * y)};
}
Tensor tanh_jvp(const Ts&, const Ts& t, const Attrs&, const Tensor& y, const Ts&) { return t[0] * (1.0 - y * y); }

Ts sigmoid_vjp(const Node& n, const Tensor& g) {
  Tensor y = n.out();
  return {g * y * (1.0 - y)};
}
Tensor sigmoid_jvp(const Ts&, const Ts& t, const Attrs&, const Tensor& y, const Ts&) { return t[0] * y * (1.0 - y); }

// From the output: y > 0 exactly where x > 0 (a NaN input gives y = 0 and no gradient).
Ts relu_vjp(const Node& n, const Tensor& g) { return {relu_backward(g, n.out())}; }
Tensor relu_jvp(const Ts&, const Ts& t, const Attrs&, const Tensor& y, const Ts&) { return relu_backward(t[0], y); }
// Linear in g; piecewise constant in y (no gradient, as PyTorch's threshold_backward).
Ts relu_backward_vjp(const Node& n, const Tensor& g) {
  const Tensor& y = n.inputs[1];
  Tensor gg = relu_backward(g, y);
  return {needs(n, 0) ? sum_to(gg, n.inputs[0].shape()) : Tensor(), Tensor()};
}
Tensor relu_backward_jvp(const Ts& in, const Ts& t, const Attrs&, const Tensor& out, const Ts&) {
  return t[0].defined() ? sum_terms(relu_backward(t[0], in[1]), Tensor(), out.shape()) : Tensor();
}

namespace {
// d gelu(x) / dx = Phi(x) + x phi(x)
Tensor gelu_grad(const Tensor& x) {
  Tensor cdf = 0.5 * (1.0 + erf(x * M_SQRT1_2));
  Tensor pdf = exp(x * x * -0.5) * (1.0 / std::sqrt(2.0 * M_PI));
  return cdf + x * pdf;
}
}  // namespace
Ts gelu_vjp(const Node& n, const Tensor& g) { return {g * gelu_grad(n.inputs[0])}; }
Tensor gelu_jvp(const Ts& in, const Ts& t, const Attrs&, const Tensor&, const Ts&) { return t[0] * gelu_grad(in[0]); }

Ts abs_vjp(const Node& n, const Tensor& g) { return {g * sign(n.inputs[0])}; }
Tensor abs_jvp(const Ts& in, const Ts& t, const Attrs&, const Tensor&, const Ts&) { return t[0] * sign(in[0]); }

Ts erf_vjp(const Node& n, const Tensor& g) {
  const Tensor& x = n.inputs[0];
  return {g * (2.0 / std::sqrt(M_PI)) * exp(-(x * x))};
}
Tensor erf_jvp(const Ts& in, const Ts& t, const Attrs&, const Tensor&, const Ts&) {
  return t[0] * (2.0 / std::sqrt(M_PI)) * exp(-(in[0] * in[0]));
}

namespace {
Tensor clamp_pass(const Tensor& x, const Attrs& at, const Tensor& g) {
  Tensor z = zero_of(g);
  return where(ge(x, scalar_like(at.a, x)), where(le(x, scalar_like(at.b, x)), g, z), z);
}
}  // namespace
Ts clamp_vjp(const Node& n, const Tensor& g) { return {clamp_pass(n.inputs[0], n.attrs, g)}; }
Tensor clamp_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  return clamp_pass(in[0], at, t[0]);
}

Ts cast_vjp(const Node& n, const Tensor& g) {
  if (!is_floating(n.inputs[0].dtype())) return {Tensor()};
  return {cast(g, n.inputs[0].dtype())};
}
Tensor cast_jvp(const Ts&, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  return is_floating(at.dtype) ? cast(t[0], at.dtype) : Tensor();
}

Ts identity_vjp(const Node&, const Tensor& g) { return {g}; }
Tensor identity_jvp(const Ts&, const Ts& t, const Attrs&, const Tensor&, const Ts&) { return identity(t[0]); }

// ---- binary -------------------------------------------------------------------------------
Ts add_vjp(const Node& n, const Tensor& g) {
  return {sum_to(g, n.inputs[0].shape()), sum_to(g, n.inputs[1].shape())};
}
Tensor add_jvp(const Ts&, const Ts& t, const Attrs&, const Tensor& y, const Ts&) {
  return sum_terms(t[0], t[1], y.shape());
}

Ts sub_vjp(const Node& n, const Tensor& g) {
  return {sum_to(g, n.inputs[0].shape()), sum_to(-g, n.inputs[1].shape())};
}
Tensor sub_jvp(const Ts&, const Ts& t, const Attrs&, const Tensor& y, const Ts&) {
  return sum_terms(t[0], t[1].defined() ? -t[1] : Tensor(), y.shape());
}

Ts mul_vjp(const Node& n, const Tensor& g) {
  const Tensor &a = n.inputs[0], &b = n.inputs[1];
  return {needs(n, 0) ? sum_to(g * b, a.shape()) : Tensor(), needs(n, 1) ? sum_to(g * a, b.shape()) : Tensor()};
}
Tensor mul_jvp(const Ts& in, const Ts& t, const Attrs&, const Tensor& y, const Ts&) {
  return sum_terms(t[0].defined() ? t[0] * in[1] : Tensor(), t[1].defined() ? in[0] * t[1] : Tensor(), y.shape());
}

Ts div_vjp(const Node& n, const Tensor& g) {
  const Tensor &a = n.inputs[0], &b = n.inputs[1];
  return {needs(n, 0) ? sum_to(g / b, a.shape()) : Tensor(),
          needs(n, 1) ? sum_to(-g * a / (b * b), b.shape()) : Tensor()};
}
Tensor div_jvp(const Ts& in, const Ts& t, const Attrs&, const Tensor& y, const Ts&) {
  return sum_terms(t[0].defined() ? t[0] / in[1] : Tensor(),
                   t[1].defined() ? -(in[0] * t[1]) / (in[1] * in[1]) : Tensor(), y.shape());
}

namespace {
// d a^b / db = a^b log a, defined as 0 where a == 0 (PyTorch's convention).
Tensor pow_db(const Tensor& a, const Tensor& y) {
  Tensor z = zero_of(a);
  Tensor safe_a = where(eq(a, z), scalar_like(1.0, a), a);
  return y * log(safe_a);
}
}  // namespace
Ts pow_vjp(const Node& n, const Tensor& g) {
  const Tensor &a = n.inputs[0], &b = n.inputs[1];
  return {needs(n, 0) ? sum_to(g * b * pow(a, b - 1.0), a.shape()) : Tensor(),
          needs(n, 1) ? sum_to(g * pow_db(a, n.out()), b.shape()) : Tensor()};
}
Tensor pow_jvp(const Ts& in, const Ts& t, const Attrs&, const Tensor& y, const Ts&) {
  return sum_terms(t[0].defined() ? t[0] * in[1] * pow(in[0], in[1] - 1.0) : Tensor(),
                   t[1].defined() ? t[1] * pow_db(in[0], y) : Tensor(), y.shape());
}

namespace {
// Share of the gradient that goes to `a` in maximum(a, b): 1 where a wins, 1/2 on ties.
Tensor select_share(const Tensor& a, const Tensor& b, bool is_max) {
  Tensor one = scalar_like(1.0, a), half = scalar_like(0.5, a), z = zero_of(a);
  return where(is_max ? gt(a, b) : lt(a, b), one, where(eq(a, b), half, z));
}
}  // namespace
Ts maximum_vjp(const Node& n, const Tensor& g) {
  const Tensor &a = n.inputs[0], &b = n.inputs[1];
  return {sum_to(g * select_share(a, b, true), a.shape()), sum_to(g * select_share(b, a, true), b.shape())};
}
Tensor maximum_jvp(const Ts& in, const Ts& t, const Attrs&, const Tensor& y, const Ts&) {
  return sum_terms(t[0].defined() ? t[0] * select_share(in[0], in[1], true) : Tensor(),
                   t[1].defined() ? t[1] * select_share(in[1], in[0], true) : Tensor(), y.shape());
}
Ts minimum_vjp(const Node& n, const Tensor& g) {
  const Tensor &a = n.inputs[0], &b = n.inputs[1];
  return {sum_to(g * select_share(a, b, false), a.shape()), sum_to(g * select_share(b, a, false), b.shape())};
}
Tensor minimum_jvp(const Ts& in, const Ts& t, const Attrs&, const Tensor& y, const Ts&) {
  return sum_terms(t[0].defined() ? t[0] * select_share(in[0], in[1], false) : Tensor(),
                   t[1].defined() ? t[1] * select_share(in[1], in[0], false) : Tensor(), y.shape());
}

Ts where_vjp(const Node& n, const Tensor& g) {
  const Tensor& c = n.inputs[0];
  Tensor z = zero_of(g);
  return {Tensor(), needs(n, 1) ? sum_to(where(c, g, z), n.inputs[1].shape()) : Tensor(),
          needs(n, 2) ? sum_to(where(c, z, g), n.inputs[2].shape()) : Tensor()};
}
Tensor where_jvp(const Ts& in, const Ts& t, const Attrs&, const Tensor& y, const Ts&) {
  Tensor z = zero_of(y);
  return where(in[0], t[1].defined() ? t[1] : z, t[2].defined() ? t[2] : z);
}

// ---- reductions ---------------------------------------------------------------------------
Ts sum_vjp(const Node& n, const Tensor& g) {
  return {expand(keepdim_view(g, n.inputs[0].shape(), n.attrs), n.inputs[0].shape())};
}
Tensor sum_jvp(const Ts&, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  return sum(t[0], at.ints, at.keepdim);
}

namespace {
// Gradient of amax/amin: split evenly among the elements equal to the extreme.
Tensor extreme_mask_share(const Tensor& x, const Tensor& y, const Attrs& at) {
  Tensor yk = keepdim_view(y.detach(), x.shape(), at);
  Tensor mask = cast(eq(x.detach(), yk), x.dtype());
  Tensor count = sum(mask, at.ints, true);
  return mask / count;
}
}  // namespace
Ts amax_vjp(const Node& n, const Tensor& g) {
  const Tensor& x = n.inputs[0];
  return {extreme_mask_share(x, n.output_data, n.attrs) * keepdim_view(g, x.shape(), n.attrs)};
}
Tensor amax_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor& y, const Ts&) {
  return sum(t[0] * extreme_mask_share(in[0], y, at), at.ints, at.keepdim);
}
Ts amin_vjp(const Node& n, const Tensor& g) { return amax_vjp(n, g); }
Tensor amin_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor& y, const Ts& aux) {
  return amax_jvp(in, t, at, y, aux);
}

Ts softmax_vjp(const Node& n, const Tensor& g) {
  Tensor y = n.out();
  int64_t axis = n.attrs.ints[0];
  return {y * (g - sum(g * y, {axis}, true))};
}
Tensor softmax_jvp(const Ts&, const Ts& t, const Attrs& at, const Tensor& y, const Ts&) {
  return y * (t[0] - sum(t[0] * y, {at.ints[0]}, true));
}
Ts log_softmax_vjp(const Node& n, const Tensor& g) {
  Tensor y = n.out();
  int64_t axis = n.attrs.ints[0];
  return {g - exp(y) * sum(g, {axis}, true)};
}
Tensor log_softmax_jvp(const Ts&, const Ts& t, const Attrs& at, const Tensor& y, const Ts&) {
  return t[0] - sum(exp(y) * t[0], {at.ints[0]}, true);
}

// ---- matmul, convolution, pooling ---------------------------------------------------------
namespace {
// True for a 2-D operand that is the transposed view of a contiguous matrix (a Linear
// layer's weight as used in x W^T).
bool is_transposed_view(const Tensor& t) { return t.dim() == 2 && !t.is_contiguous() && t.strides()[0] == 1; }
}  // namespace

Ts matmul_vjp(const Node& n, const Tensor& g) {
  const Tensor &a = n.inputs[0], &b = n.inputs[1];
  Tensor ga, gb;
  if (needs(n, 0)) {
    ga = is_transposed_view(a) && g.dim() == 2 ? transpose(matmul(b, transpose(g, 0, 1)), 0, 1)
                                               : sum_to(matmul(g, transpose(b, -1, -2)), a.shape());
  }
  if (needs(n, 1)) {
    // For b = W^T, compute (g^T a)^T: the gradient then reaches W (through the transpose's
    // VJP) as a contiguous matrix instead of a strided view that every consumer must copy.
    gb = is_transposed_view(b) && a.dim() == 2 ? transpose(matmul(transpose(g, 0, 1), a), 0, 1)
                                               : sum_to(matmul(transpose(a, -1, -2), g), b.shape());
  }
  return {ga, gb};
}
Tensor matmul_jvp(const Ts& in, const Ts& t, const Attrs&, const Tensor& y, const Ts&) {
  return sum_terms(t[0].defined() ? matmul(t[0], in[1]) : Tensor(), t[1].defined() ? matmul(in[0], t[1]) : Tensor(),
                   y.shape());
}

namespace {
Conv2dOptions conv_opts(const Attrs& at) {
  return {at.ints[0], at.ints[1], at.ints[2], at.ints[3], at.ints[4], at.ints[5], at.ints[6],
          at.ints.size() == 8 && at.ints[7] != 0};
}
}  // namespace
Ts conv2d_vjp(const Node& n, const Tensor& g) {
  const Tensor &x = n.inputs[0], &w = n.inputs[1];
  Conv2dOptions o = conv_opts(n.attrs);
  // A fused relu: the gradient of the pre-activation, from the output.
  const Tensor gz = o.relu ? relu_backward(g, n.out()) : g;
  o.relu = false;
  Ts grads = {needs(n, 0) ? conv2d_backward_input(gz, w, x.shape(), o) : Tensor(),
              needs(n, 1) ? conv2d_backward_weight(x, gz, w.shape(), o) : Tensor()};
  if (n.inputs.size() == 3) grads.push_back(needs(n, 2) ? sum(gz, {0, 2, 3}) : Tensor());
  return grads;
}
Tensor conv2d_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor& y, const Ts&) {
  Conv2dOptions o = conv_opts(at);
  const bool relu = o.relu;
  o.relu = false;
  Tensor r = sum_terms(t[0].defined() ? conv2d(t[0], in[1], Tensor(), o) : Tensor(),
                       t[1].defined() ? conv2d(in[0], t[1], Tensor(), o) : Tensor(), y.shape());
  if (t.size() == 3 && t[2].defined()) r = sum_terms(r, reshape(t[2], {1, t[2].shape()[0], 1, 1}), y.shape());
  return relu && r.defined() ? relu_backward(r, y) : r;
}
Ts conv2d_backward_input_vjp(const Node& n, const Tensor& g) {
  const Tensor &gy = n.inputs[0], &w = n.inputs[1];
  Conv2dOptions o = conv_opts(n.attrs);
  return {needs(n, 0) ? conv2d(g, w, Tensor(), o) : Tensor(),
          needs(n, 1) ? conv2d_backward_weight(g, gy, w.shape(), o) : Tensor()};
}
Tensor conv2d_backward_input_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor& y, const Ts&) {
  Conv2dOptions o = conv_opts(at);
  return sum_terms(t[0].defined() ? conv2d_backward_input(t[0], in[1], at.shape, o) : Tensor(),
                   t[1].defined() ? conv2d_backward_input(in[0], t[1], at.shape, o) : Tensor(), y.shape());
}
Ts conv2d_backward_weight_vjp(const Node& n, const Tensor& g) {
  const Tensor &x = n.inputs[0], &gy = n.inputs[1];
  Conv2dOptions o = conv_opts(n.attrs);
  return {needs(n, 0) ? conv2d_backward_input(gy, g, x.shape(), o) : Tensor(),
          needs(n, 1) ? conv2d(x, g, Tensor(), o) : Tensor()};
}
Tensor conv2d_backward_weight_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor& y, const Ts&) {
  Conv2dOptions o = conv_opts(at);
  return sum_terms(t[0].defined() ? conv2d_backward_weight(t[0], in[1], at.shape, o) : Tensor(),
                   t[1].defined() ? conv2d_backward_weight(in[0], t[1], at.shape, o) : Tensor(), y.shape());
}

namespace {
// Pool argmax indices, flattened per (n, c) plane: [N, C, OH*OW].
Tensor flat_idx(const Tensor& idx) {
  const Shape& s = idx.shape();
  return reshape(idx, {s[0], s[1], s[2] * s[3]});
}
bool pool_relu(const Attrs& at) { return at.ints.size() == 7 && at.ints[6] != 0; }
// t [N, C, H, W] read at the pooling indices idx [N, C, OH, OW]: max pooling's JVP and the
// adjoint of its backward.
Tensor gather_at_pool_indices(const Tensor& t, const Tensor& idx) {
  const Shape& s = t.shape();
  // (conv2d_max_pool2d keeps i32 indices; gather takes i64)
  const Tensor i = idx.dtype() == DType::kI64 ? idx : cast(idx, DType::kI64);
  return reshape(gather(reshape(t, {s[0], s[1], s[2] * s[3]}), 2, flat_idx(i)), idx.shape());
}
}  // namespace
Ts max_pool2d_vjp(const Node& n, const Tensor& g_out) {
  // A fused relu masks the pooled gradient (a quarter of the input's size for 2 x 2).
  const Tensor g = pool_relu(n.attrs) ? relu_backward(g_out, n.out()) : g_out;
  Attrs at = n.attrs;
  at.ints.resize(6);
  at.shape = n.inputs[0].shape();
  return {apply(OpKind::kMaxPool2dBackward, {g, n.aux[0]}, at)};
}
Tensor max_pool2d_jvp(const Ts&, const Ts& t, const Attrs& at, const Tensor& y, const Ts& aux) {
  Tensor r = gather_at_pool_indices(t[0], aux[0]);
  return pool_relu(at) ? relu_backward(r, y) : r;
}
// Linear in g: the adjoint is a gather of the cotangent at the indices.
Ts max_pool2d_backward_vjp(const Node& n, const Tensor& g) {
  return {gather_at_pool_indices(g, n.inputs[1]), Tensor()};
}
Tensor max_pool2d_backward_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  return t[0].defined() ? apply(OpKind::kMaxPool2dBackward, {t[0], in[1]}, at) : Tensor();
}
// conv2d_max_pool2d and its adjoints. Attribute ints: 7 conv parameters, 6 pool parameters
// (+ the forward's relu flag); the adjoints take the first 13 and a shape (x's or w's).
namespace {
Attrs conv_pool_adjoint_attrs(const Attrs& at, const Shape& shape) {
  Attrs a = at;
  a.ints.resize(13);
  a.shape = shape;
  return a;
}
Tensor pooled_backward_input(const Tensor& g, const Tensor& idx, const Tensor& w, const Attrs& at, const Shape& xs) {
  return apply(OpKind::kConv2dPooledBackwardInput, {g, idx, w}, conv_pool_adjoint_attrs(at, xs));
}
Tensor pooled_backward_weight(const Tensor& x, const Tensor& g, const Tensor& idx, const Attrs& at, const Shape& ws) {
  return apply(OpKind::kConv2dPooledBackwardWeight, {x, g, idx}, conv_pool_adjoint_attrs(at, ws));
}
bool conv_pool_relu(const Attrs& at) { return at.ints.size() == 14 && at.ints[13] != 0; }
// The convolution part of the attributes, without an activation.
Conv2dOptions conv_part(const Attrs& at) {
  Attrs c = at;
  c.ints.resize(7);
  return conv_opts(c);
}
}  // namespace

Ts conv2d_max_pool2d_vjp(const Node& n, const Tensor& g_out) {
  const Tensor &x = n.inputs[0], &w = n.inputs[1], &idx = n.aux[0];
  // A fused relu masks the pooled gradient, as max_pool2d's does.
  const Tensor g = conv_pool_relu(n.attrs) ? relu_backward(g_out, n.out()) : g_out;
  Ts grads = {needs(n, 0) ? pooled_backward_input(g, idx, w, n.attrs, x.shape()) : Tensor(),
              needs(n, 1) ? pooled_backward_weight(x, g, idx, n.attrs, w.shape()) : Tensor()};
  // Every pooled gradient lands on exactly one convolution output: the bias gradient is
  // their sum.
  if (n.inputs.size() == 3) grads.push_back(needs(n, 2) ? sum(g, {0, 2, 3}) : Tensor());
  return grads;
}
Tensor conv2d_max_pool2d_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor& y, const Ts& aux) {
  const Conv2dOptions o = conv_part(at);
  const Shape &xs = in[0].shape(), &ws = in[1].shape();
  const Shape zs = {xs[0], ws[0], cpu::conv_out_size(xs[2], ws[2], o.stride_h, o.pad_h, o.dilation_h, "conv2d"),
                    cpu::conv_out_size(xs[3], ws[3], o.stride_w, o.pad_w, o.dilation_w, "conv2d")};
  Tensor tz = sum_terms(t[0].defined() ? conv2d(t[0], in[1], Tensor(), o) : Tensor(),
                        t[1].defined() ? conv2d(in[0], t[1], Tensor(), o) : Tensor(), zs);
  if (t.size() == 3 && t[2].defined()) tz = sum_terms(tz, reshape(t[2], {1, ws[0], 1, 1}), zs);
  Tensor r = gather_at_pool_indices(tz, aux[0]);
  return conv_pool_relu(at) ? relu_backward(r, y) : r;
}
// gx = conv2d_backward_input(max_pool2d_backward(g, idx), w): linear in g and in w.
Ts conv2d_pooled_backward_input_vjp(const Node& n, const Tensor& c) {
  const Tensor &g = n.inputs[0], &idx = n.inputs[1], &w = n.inputs[2];
  return {needs(n, 0) ? gather_at_pool_indices(conv2d(c, w, Tensor(), conv_part(n.attrs)), idx) : Tensor(), Tensor(),
          needs(n, 2) ? pooled_backward_weight(c, g, idx, n.attrs, w.shape()) : Tensor()};
}
Tensor conv2d_pooled_backward_input_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor& y, const Ts&) {
  return sum_terms(t[0].defined() ? pooled_backward_input(t[0], in[1], in[2], at, at.shape) : Tensor(),
                   t[2].defined() ? pooled_backward_input(in[0], in[1], t[2], at, at.shape) : Tensor(), y.shape());
}
// gw = conv2d_backward_weight(x, max_pool2d_backward(g, idx)): linear in x and in g.
Ts conv2d_pooled_backward_weight_vjp(const Node& n, const Tensor& c) {
  const Tensor &x = n.inputs[0], &g = n.inputs[1], &idx = n.inputs[2];
  return {needs(n, 0) ? pooled_backward_input(g, idx, c, n.attrs, x.shape()) : Tensor(),
          needs(n, 1) ? gather_at_pool_indices(conv2d(x, c, Tensor(), conv_part(n.attrs)), idx) : Tensor(), Tensor()};
}
Tensor conv2d_pooled_backward_weight_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor& y, const Ts&) {
  return sum_terms(t[0].defined() ? pooled_backward_weight(t[0], in[1], in[2], at, at.shape) : Tensor(),
                   t[1].defined() ? pooled_backward_weight(in[0], t[1], in[2], at, at.shape) : Tensor(), y.shape());
}
Ts avg_pool2d_vjp(const Node& n, const Tensor& g) {
  Attrs at = n.attrs;
  at.shape = n.inputs[0].shape();
  return {apply(OpKind::kAvgPool2dBackward, {g}, at)};
}
Tensor avg_pool2d_jvp(const Ts&, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  return apply(OpKind::kAvgPool2d, {t[0]}, at);
}
Ts avg_pool2d_backward_vjp(const Node& n, const Tensor& g) { return {apply(OpKind::kAvgPool2d, {g}, n.attrs)}; }
Tensor avg_pool2d_backward_jvp(const Ts&, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  return apply(OpKind::kAvgPool2dBackward, {t[0]}, at);
}

// ---- indexing -----------------------------------------------------------------------------
Ts gather_vjp(const Node& n, const Tensor& g) {
  return {scatter_add(g, n.attrs.ints[0], n.inputs[1], n.inputs[0].shape()), Tensor()};
}
Tensor gather_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  return gather(t[0], at.ints[0], in[1]);
}
Ts scatter_add_vjp(const Node& n, const Tensor& g) { return {gather(g, n.attrs.ints[0], n.inputs[1]), Tensor()}; }
Tensor scatter_add_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  return scatter_add(t[0], at.ints[0], in[1], at.shape);
}
Ts index_select_vjp(const Node& n, const Tensor& g) {
  return {index_add(g, n.attrs.ints[0], n.inputs[1], n.inputs[0].shape()), Tensor()};
}
Tensor index_select_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  return index_select(t[0], at.ints[0], in[1]);
}
Ts index_add_vjp(const Node& n, const Tensor& g) { return {index_select(g, n.attrs.ints[0], n.inputs[1]), Tensor()}; }
Tensor index_add_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  return index_add(t[0], at.ints[0], in[1], at.shape);
}

Ts concat_vjp(const Node& n, const Tensor& g) {
  int64_t axis = normalize_axis(n.attrs.ints[0], g.dim(), "concat");
  Ts out;
  int64_t pos = 0;
  for (const Tensor& x : n.inputs) {
    int64_t len = x.shape()[axis];
    out.push_back(slice(g, axis, pos, pos + len));
    pos += len;
  }
  return out;
}
Tensor concat_jvp(const Ts& in, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  Ts parts;
  for (size_t i = 0; i < in.size(); ++i) parts.push_back(or_zeros(t[i], in[i]));
  return concat(parts, at.ints[0]);
}

// ---- views --------------------------------------------------------------------------------
Ts reshape_vjp(const Node& n, const Tensor& g) { return {reshape(g, n.inputs[0].shape())}; }
Tensor reshape_jvp(const Ts&, const Ts& t, const Attrs& at, const Tensor&, const Ts&) { return reshape(t[0], at.shape); }

Ts permute_vjp(const Node& n, const Tensor& g) {
  const int64_t nd = g.dim();
  std::vector<int64_t> inv(nd);
  for (int64_t i = 0; i < nd; ++i) inv[normalize_axis(n.attrs.ints[i], nd, "permute")] = i;
  return {permute(g, inv)};
}
Tensor permute_jvp(const Ts&, const Ts& t, const Attrs& at, const Tensor&, const Ts&) { return permute(t[0], at.ints); }

Ts slice_vjp(const Node& n, const Tensor& g) {
  Attrs at = n.attrs;
  at.shape = n.inputs[0].shape();
  return {apply(OpKind::kSliceBackward, {g}, at)};
}
Tensor slice_jvp(const Ts&, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  return apply(OpKind::kSlice, {t[0]}, at);
}
Ts slice_backward_vjp(const Node& n, const Tensor& g) { return {apply(OpKind::kSlice, {g}, n.attrs)}; }
Tensor slice_backward_jvp(const Ts&, const Ts& t, const Attrs& at, const Tensor&, const Ts&) {
  return apply(OpKind::kSliceBackward, {t[0]}, at);
}

Ts expand_vjp(const Node& n, const Tensor& g) { return {sum_to(g, n.inputs[0].shape())}; }
Tensor expand_jvp(const Ts&, const Ts& t, const Attrs& at, const Tensor&, const Ts&) { return expand(t[0], at.shape); }

}  // namespace loom::rules
