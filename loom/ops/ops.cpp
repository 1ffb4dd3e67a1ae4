// Public ops: thin wrappers that normalize arguments and call apply(), plus composites.
#include "loom/ops/ops.h"

#include <cmath>
#include <numeric>

#include "loom/autodiff/graph.h"
#include "loom/base/rng.h"
#include "loom/tensor/kernels/cpu/kernels.h"

namespace loom {
namespace {

Tensor unary(OpKind op, const Tensor& x) { return apply(op, {x}); }

// Casts both operands to their promoted dtype.
std::pair<Tensor, Tensor> promote(const Tensor& a, const Tensor& b, const char* op) {
  LOOM_CHECK(a.defined() && b.defined(), "{}: undefined operand", op);
  DType t = promote_types(a.dtype(), b.dtype());
  return {a.dtype() == t ? a : cast(a, t), b.dtype() == t ? b : cast(b, t)};
}

Tensor binary(OpKind op, const Tensor& a, const Tensor& b) {
  auto [x, y] = promote(a, b, op_name(op));
  return apply(op, {x, y});
}

Attrs axes_attrs(const std::vector<int64_t>& axes, bool keepdim) {
  Attrs at;
  at.ints = axes;
  at.keepdim = keepdim;
  return at;
}

Attrs conv_attrs(const Conv2dOptions& o) {
  Attrs at;
  at.ints = {o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dilation_h, o.dilation_w, o.groups};
  if (o.relu) at.ints.push_back(1);  // conv2d only: the fused activation
  return at;
}

Attrs pool_attrs(int64_t kernel, int64_t stride, int64_t padding) {
  Attrs at;
  if (stride == 0) stride = kernel;
  at.ints = {kernel, kernel, stride, stride, padding, padding};
  return at;
}

}  // namespace

Tensor neg(const Tensor& x) { return unary(OpKind::kNeg, x); }
Tensor exp(const Tensor& x) { return unary(OpKind::kExp, x); }
Tensor log(const Tensor& x) { return unary(OpKind::kLog, x); }
Tensor sqrt(const Tensor& x) { return unary(OpKind::kSqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary(OpKind::kRsqrt, x); }
Tensor tanh(const Tensor& x) { return unary(OpKind::kTanh, x); }
Tensor sigmoid(const Tensor& x) { return unary(OpKind::kSigmoid, x); }
Tensor relu(const Tensor& x) { return unary(OpKind::kRelu, x); }
Tensor gelu(const Tensor& x) { return unary(OpKind::kGelu, x); }
Tensor abs(const Tensor& x) { return unary(OpKind::kAbs, x); }
Tensor erf(const Tensor& x) { return unary(OpKind::kErf, x); }
Tensor sign(const Tensor& x) { return unary(OpKind::kSign, x); }

Tensor clamp(const Tensor& x, double lo, double hi) {
  Attrs at;
  at.a = lo;
  at.b = hi;
  return apply(OpKind::kClamp, {x}, at);
}

Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Attrs at;
  at.dtype = dtype;
  return apply(OpKind::kCast, {x}, at);
}

Tensor identity(const Tensor& x) { return apply(OpKind::kIdentity, {x}); }

Tensor add(const Tensor& a, const Tensor& b) { return binary(OpKind::kAdd, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(OpKind::kSub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(OpKind::kMul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(OpKind::kDiv, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary(OpKind::kPow, a, b); }
Tensor pow(const Tensor& a, double e) { return pow(a, scalar_like(e, a)); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(OpKind::kMaximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(OpKind::kMinimum, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary(OpKind::kEq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary(OpKind::kNe, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary(OpKind::kLt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary(OpKind::kLe, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary(OpKind::kGt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary(OpKind::kGe, a, b); }

Tensor relu_backward(const Tensor& g, const Tensor& y) {
  auto [a, b] = promote(g, y, "relu_backward");
  return apply(OpKind::kReluBackward, {a, b});
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  auto [x, y] = promote(a, b, "where");
  LOOM_CHECK(cond.defined(), "where: undefined condition");
  return apply(OpKind::kWhere, {cond.dtype() == DType::kBool ? cond : cast(cond, DType::kBool), x, y});
}

Tensor scalar_like(double v, const Tensor& like) {
  DType t = like.dtype();
  if (!is_floating(t) && v != std::floor(v)) t = DType::kF32;
  if (t == DType::kBool) t = DType::kI64;
  return Tensor::scalar(v, t);
}

Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(a, b), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(a, b), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }

// ---- reductions -------------------------------------------------------------------------

Tensor sum(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  return apply(OpKind::kSum, {x}, axes_attrs(axes, keepdim));
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  LOOM_CHECK(x.defined(), "mean: undefined tensor");
  auto ax = normalize_axes(axes, x.dim(), "mean");
  int64_t count = 1;
  for (int64_t a : ax) count *= x.shape()[a];
  Tensor xf = is_floating(x.dtype()) ? x : cast(x, DType::kF32);
  return sum(xf, axes, keepdim) / static_cast<double>(count);
}

Tensor amax(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  return apply(OpKind::kAmax, {x}, axes_attrs(axes, keepdim));
}
Tensor amin(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  return apply(OpKind::kAmin, {x}, axes_attrs(axes, keepdim));
}
Tensor argmax(const Tensor& x, int64_t axis, bool keepdim) {
  return apply(OpKind::kArgmax, {x}, axes_attrs({axis}, keepdim));
}

Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  // max is a constant shift (its gradient cancels), so it is taken without a graph.
  Tensor m = amax(x, axes, true).detach();
  Tensor zero = scalar_like(0.0, m);
  m = where(eq(m - m, zero), m, zero);  // +-inf or NaN rows: no shift
  Tensor s = log(sum(exp(x - m), axes, true)) + m;
  if (keepdim) return s;
  return squeeze_axes(s, normalize_axes(axes, x.dim(), "logsumexp"));
}

Tensor var(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim, int64_t correction) {
  auto ax = normalize_axes(axes, x.dim(), "var");
  int64_t count = 1;
  for (int64_t a : ax) count *= x.shape()[a];
  Tensor d = x - mean(x, axes, true);
  return sum(d * d, axes, keepdim) / static_cast<double>(std::max<int64_t>(count - correction, 0));
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  LOOM_CHECK(lead >= 0, "sum_to: cannot reduce {} to {}", shape_str(x.shape()), shape_str(shape));
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      axes.push_back(d);
    } else if (shape[d - lead] == 1 && x.shape()[d] != 1) {
      axes.push_back(d);
    } else {
      LOOM_CHECK(shape[d - lead] == x.shape()[d], "sum_to: cannot reduce {} to {}", shape_str(x.shape()),
                 shape_str(shape));
    }
  }
  if (axes.empty()) return reshape(x, shape);
  return reshape(sum(x, axes, true), shape);
}

Tensor softmax(const Tensor& x, int64_t axis) { return apply(OpKind::kSoftmax, {x}, axes_attrs({axis}, false)); }
Tensor log_softmax(const Tensor& x, int64_t axis) {
  return apply(OpKind::kLogSoftmax, {x}, axes_attrs({axis}, false));
}

// ---- matmul / conv / pool ---------------------------------------------------------------

Tensor matmul(const Tensor& a, const Tensor& b) {
  LOOM_CHECK(a.defined() && b.defined(), "matmul: undefined operand");
  LOOM_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands must have rank >= 1, got {} and {}",
             shape_str(a.shape()), shape_str(b.shape()));
  auto [x, y] = promote(a, b, "matmul");
  const bool va = x.dim() == 1, vb = y.dim() == 1;
  if (va) x = unsqueeze(x, 0);
  if (vb) y = unsqueeze(y, 1);
  Tensor out = apply(OpKind::kMatmul, {x, y});
  if (va) out = squeeze(out, -2);
  if (vb) out = squeeze(out, -1);
  return out;
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& opt) {
  // The bias is the op's optional third input, added by the kernel as it writes y.
  if (bias.defined()) return apply(OpKind::kConv2d, {x, w, bias}, conv_attrs(opt));
  return apply(OpKind::kConv2d, {x, w}, conv_attrs(opt));
}

Tensor conv2d_backward_input(const Tensor& gy, const Tensor& w, const Shape& input_shape, const Conv2dOptions& opt) {
  Attrs at = conv_attrs(opt);
  at.shape = input_shape;
  return apply(OpKind::kConv2dBackwardInput, {gy, w}, at);
}

Tensor conv2d_backward_weight(const Tensor& x, const Tensor& gy, const Shape& weight_shape, const Conv2dOptions& opt) {
  Attrs at = conv_attrs(opt);
  at.shape = weight_shape;
  return apply(OpKind::kConv2dBackwardWeight, {x, gy}, at);
}

std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  std::vector<Tensor> r = apply_all(OpKind::kMaxPool2d, {x}, pool_attrs(kernel, stride, padding));
  return {r[0], r[1]};
}

Tensor max_pool2d_backward(const Tensor& g, const Tensor& indices, const Shape& input_shape, int64_t kernel,
                           int64_t stride, int64_t padding) {
  Attrs at = pool_attrs(kernel, stride, padding);
  at.shape = input_shape;
  return apply(OpKind::kMaxPool2dBackward, {g, indices}, at);
}

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding, bool relu) {
  Attrs at = pool_attrs(kernel, stride, padding);
  if (relu) at.ints.push_back(1);
  return apply(OpKind::kMaxPool2d, {x}, at);
}
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  return apply(OpKind::kAvgPool2d, {x}, pool_attrs(kernel, stride, padding));
}

namespace {
// conv2d_max_pool2d's attributes: the convolution's 7, the pooling's 6, then relu.
Attrs conv_pool_attrs(const Conv2dOptions& conv, int64_t kernel, int64_t stride, int64_t padding, bool with_relu) {
  Attrs at = conv_attrs(conv);
  at.ints.resize(7);
  const Attrs p = pool_attrs(kernel, stride, padding);
  at.ints.insert(at.ints.end(), p.ints.begin(), p.ints.end());
  if (with_relu) at.ints.push_back(conv.relu ? 1 : 0);
  return at;
}
std::vector<Tensor> conv_pool_inputs(const Tensor& x, const Tensor& w, const Tensor& bias) {
  return bias.defined() ? std::vector<Tensor>{x, w, bias} : std::vector<Tensor>{x, w};
}
}  // namespace

Tensor conv2d_max_pool2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& conv,
                         int64_t kernel, int64_t stride, int64_t padding) {
  return apply(OpKind::kConv2dMaxPool2d, conv_pool_inputs(x, w, bias), conv_pool_attrs(conv, kernel, stride, padding, true));
}
std::pair<Tensor, Tensor> conv2d_max_pool2d_with_indices(const Tensor& x, const Tensor& w, const Tensor& bias,
                                                         const Conv2dOptions& conv, int64_t kernel, int64_t stride,
                                                         int64_t padding) {
  std::vector<Tensor> r = apply_all(OpKind::kConv2dMaxPool2d, conv_pool_inputs(x, w, bias),
                                    conv_pool_attrs(conv, kernel, stride, padding, true));
  return {r[0], r[1]};
}
Tensor conv2d_pooled_backward_input(const Tensor& g, const Tensor& indices, const Tensor& w, const Shape& input_shape,
                                    const Conv2dOptions& conv, int64_t kernel, int64_t stride, int64_t padding) {
  Attrs at = conv_pool_attrs(conv, kernel, stride, padding, false);
  at.shape = input_shape;
  return apply(OpKind::kConv2dPooledBackwardInput, {g, indices, w}, at);
}
Tensor conv2d_pooled_backward_weight(const Tensor& x, const Tensor& g, const Tensor& indices,
                                     const Shape& weight_shape, const Conv2dOptions& conv, int64_t kernel,
                                     int64_t stride, int64_t padding) {
  Attrs at = conv_pool_attrs(conv, kernel, stride, padding, false);
  at.shape = weight_shape;
  return apply(OpKind::kConv2dPooledBackwardWeight, {x, g, indices}, at);
}

// ---- indexing ---------------------------------------------------------------------------

namespace {
Tensor as_i64(const Tensor& idx, const char* op) {
  LOOM_CHECK(idx.defined(), "{}: undefined index", op);
  LOOM_CHECK(idx.dtype() == DType::kI64 || idx.dtype() == DType::kI32, "{}: index must be integer, got {}", op,
             dtype_name(idx.dtype()));
  return idx.dtype() == DType::kI64 ? idx : idx.to(DType::kI64);
}
}  // namespace

Tensor gather(const Tensor& x, int64_t axis, const Tensor& index) {
  return apply(OpKind::kGather, {x, as_i64(index, "gather")}, axes_attrs({axis}, false));
}
Tensor scatter_add(const Tensor& src, int64_t axis, const Tensor& index, const Shape& out_shape) {
  Attrs at = axes_attrs({axis}, false);
  at.shape = out_shape;
  return apply(OpKind::kScatterAdd, {src, as_i64(index, "scatter_add")}, at);
}
Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index) {
  return apply(OpKind::kIndexSelect, {x, as_i64(index, "index_select")}, axes_attrs({axis}, false));
}
Tensor index_add(const Tensor& src, int64_t axis, const Tensor& index, const Shape& out_shape) {
  Attrs at = axes_attrs({axis}, false);
  at.shape = out_shape;
  return apply(OpKind::kIndexAdd, {src, as_i64(index, "index_add")}, at);
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  LOOM_CHECK(weight.defined() && weight.dim() == 2, "embedding: weight must be 2-D [V, D], got {}",
             weight.defined() ? shape_str(weight.shape()) : "undefined");
  Tensor flat = reshape(as_i64(ids, "embedding"), {ids.numel()});
  Shape out = ids.shape();
  out.push_back(weight.shape()[1]);
  return reshape(index_select(weight, 0, flat), out);
}

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  LOOM_CHECK(!xs.empty(), "concat: needs at least one tensor");
  DType t = xs[0].dtype();
  for (const Tensor& x : xs) t = promote_types(t, x.dtype());
  std::vector<Tensor> in;
  for (const Tensor& x : xs) in.push_back(cast(x, t));
  return apply(OpKind::kConcat, in, axes_attrs({axis}, false));
}

Tensor stack(const std::vector<Tensor>& xs, int64_t axis) {
  LOOM_CHECK(!xs.empty(), "stack: needs at least one tensor");
  int64_t ax = normalize_axis(axis, xs[0].dim() + 1, "stack");
  std::vector<Tensor> u;
  for (const Tensor& x : xs) {
    LOOM_CHECK(x.shape() == xs[0].shape(), "stack: shapes differ: {} vs {}", shape_str(x.shape()),
               shape_str(xs[0].shape()));
    u.push_back(unsqueeze(x, ax));
  }
  return concat(u, ax);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis) {
  int64_t ax = normalize_axis(axis, x.dim(), "split");
  int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  LOOM_CHECK(total == x.shape()[ax], "split: sizes sum to {} but axis {} has {}", total, ax, x.shape()[ax]);
  std::vector<Tensor> out;
  int64_t pos = 0;
  for (int64_t s : sizes) {
    LOOM_CHECK(s >= 0, "split: negative size {}", s);
    out.push_back(slice(x, ax, pos, pos + s));
    pos += s;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t axis) {
  LOOM_CHECK(chunks >= 1, "chunk: chunks must be >= 1, got {}", chunks);
  int64_t ax = normalize_axis(axis, x.dim(), "chunk");
  int64_t n = x.shape()[ax], each = (n + chunks - 1) / chunks;
  std::vector<int64_t> sizes;
  for (int64_t pos = 0; pos < n; pos += each) sizes.push_back(std::min(each, n - pos));
  if (sizes.empty()) sizes.push_back(0);
  return split(x, sizes, ax);
}

// ---- views ------------------------------------------------------------------------------

Tensor reshape(const Tensor& x, const Shape& shape) {
  LOOM_CHECK(x.defined(), "reshape: undefined tensor");
  Shape s = shape;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      LOOM_CHECK(infer < 0, "reshape: more than one -1 in {}", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      LOOM_CHECK(s[i] >= 0, "reshape: negative dimension in {}", shape_str(shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    LOOM_CHECK(known != 0 && x.numel() % known == 0, "reshape: cannot view shape {} as {}", shape_str(x.shape()),
               shape_str(shape));
    s[infer] = x.numel() / known;
  }
  if (s == x.shape()) return x;
  Attrs at;
  at.shape = s;
  return apply(OpKind::kReshape, {x}, at);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  Attrs at;
  at.ints = dims;
  return apply(OpKind::kPermute, {x}, at);
}

Tensor transpose(const Tensor& x, int64_t a, int64_t b) {
  const int64_t nd = x.dim();
  if (nd < 2) return x;  // a vector or scalar is its own transpose
  a = normalize_axis(a, nd, "transpose");
  b = normalize_axis(b, nd, "transpose");
  std::vector<int64_t> dims(nd);
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[a], dims[b]);
  return permute(x, dims);
}

Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop, int64_t step) {
  LOOM_CHECK(x.defined() && x.dim() >= 1, "slice: needs a tensor of rank >= 1");
  int64_t ax = normalize_axis(axis, x.dim(), "slice");
  int64_t n = x.shape()[ax];
  auto clampi = [n](int64_t v) {
    if (v < 0) v += n;
    return std::min(std::max<int64_t>(v, 0), n);
  };
  start = clampi(start);
  stop = std::max(start, clampi(stop));
  LOOM_CHECK(step >= 1, "slice: step must be >= 1, got {}", step);
  Attrs at;
  at.ints = {ax, start, stop, step};
  return apply(OpKind::kSlice, {x}, at);
}

Tensor expand(const Tensor& x, const Shape& shape) {
  LOOM_CHECK(x.defined(), "expand: undefined tensor");
  Shape s = shape;
  size_t off = s.size() >= x.shape().size() ? s.size() - x.shape().size() : 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == -1) {
      LOOM_CHECK(i >= off, "expand: -1 is not allowed for new leading dimensions in {}", shape_str(shape));
      s[i] = x.shape()[i - off];
    }
  if (s == x.shape()) return x;
  Attrs at;
  at.shape = s;
  return apply(OpKind::kExpand, {x}, at);
}

Tensor squeeze(const Tensor& x, std::optional<int64_t> axis) {
  Shape s;
  if (axis) {
    int64_t ax = normalize_axis(*axis, x.dim(), "squeeze");
    for (int64_t d = 0; d < x.dim(); ++d)
      if (d != ax || x.shape()[d] != 1) s.push_back(x.shape()[d]);
  } else {
    for (int64_t d : x.shape())
      if (d != 1) s.push_back(d);
  }
  return reshape(x, s);
}

Tensor squeeze_axes(const Tensor& x, const std::vector<int64_t>& axes) {
  Shape s;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (std::find(axes.begin(), axes.end(), d) == axes.end()) s.push_back(x.shape()[d]);
  return reshape(x, s);
}

Tensor unsqueeze(const Tensor& x, int64_t axis) {
  int64_t ax = normalize_axis(axis, x.dim() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(s.begin() + ax, 1);
  return reshape(x, s);
}

Tensor flatten(const Tensor& x, int64_t start, int64_t end) {
  if (x.dim() == 0) return reshape(x, {1});
  int64_t a = normalize_axis(start, x.dim(), "flatten"), b = normalize_axis(end, x.dim(), "flatten");
  LOOM_CHECK(a <= b, "flatten: start axis {} after end axis {}", a, b);
  Shape s(x.shape().begin(), x.shape().begin() + a);
  int64_t m = 1;
  for (int64_t d = a; d <= b; ++d) m *= x.shape()[d];
  s.push_back(m);
  s.insert(s.end(), x.shape().begin() + b + 1, x.shape().end());
  return reshape(x, s);
}

// ---- nn functions -----------------------------------------------------------------------

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  LOOM_CHECK(k >= 1 && k <= x.dim(), "layer_norm: normalized_shape {} does not fit input {}",
             shape_str(normalized_shape), shape_str(x.shape()));
  for (int64_t i = 0; i < k; ++i)
    LOOM_CHECK(x.shape()[x.dim() - k + i] == normalized_shape[i],
               "layer_norm: normalized_shape {} does not match the trailing dims of {}", shape_str(normalized_shape),
               shape_str(x.shape()));
  std::vector<int64_t> axes;
  for (int64_t i = 0; i < k; ++i) axes.push_back(x.dim() - k + i);
  Tensor mu = mean(x, axes, true);
  Tensor d = x - mu;
  Tensor v = mean(d * d, axes, true);
  Tensor y = d * rsqrt(v + eps);
  if (weight.defined()) {
    LOOM_CHECK(weight.shape() == normalized_shape, "layer_norm: weight {} must be {}", shape_str(weight.shape()),
               shape_str(normalized_shape));
    y = y * weight;
  }
  if (bias.defined()) {
    LOOM_CHECK(bias.shape() == normalized_shape, "layer_norm: bias {} must be {}", shape_str(bias.shape()),
               shape_str(normalized_shape));
    y = y + bias;
  }
  return y;
}

Tensor dropout(const Tensor& x, double p, bool training) {
  LOOM_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got {}", p);
  if (!training || p == 0.0) return x;
  Tensor mask = Tensor::empty(x.shape(), x.dtype());
  Philox& gen = default_generator();
  uint64_t offset = gen.reserve((static_cast<uint64_t>(x.numel()) + 3) / 4);
  cpu::bernoulli(mask, 1.0 - p, gen.seed(), offset);
  return x * (mask * (1.0 / (1.0 - p)));
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, double label_smoothing) {
  LOOM_CHECK(logits.defined() && logits.dim() == 2, "cross_entropy: logits must be [N, C], got {}",
             logits.defined() ? shape_str(logits.shape()) : "undefined");
  LOOM_CHECK(target.defined() && target.dim() == 1 && target.shape()[0] == logits.shape()[0],
             "cross_entropy: target must be [N] = [{}], got {}", logits.shape()[0],
             target.defined() ? shape_str(target.shape()) : "undefined");
  LOOM_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, "cross_entropy: label_smoothing {} not in [0, 1]",
             label_smoothing);
  const int64_t C = logits.shape()[1];
  Tensor lp = log_softmax(logits, 1);
  Tensor idx = unsqueeze(as_i64(target, "cross_entropy"), 1);
  Tensor nll = -mean(gather(lp, 1, idx));
  if (label_smoothing == 0.0) return nll;
  Tensor smooth = -mean(sum(lp, {1})) / static_cast<double>(C);
  return nll * (1.0 - label_smoothing) + smooth * label_smoothing;
}

Tensor mse_loss(const Tensor& pred, const Tensor& target) {
  LOOM_CHECK(pred.defined() && target.defined() && pred.shape() == target.shape(),
             "mse_loss: prediction {} and target {} must have one shape", pred.defined() ? shape_str(pred.shape()) : "?",
             target.defined() ? shape_str(target.shape()) : "?");
  Tensor d = pred - target;
  return mean(d * d);
}

}  // namespace loom
