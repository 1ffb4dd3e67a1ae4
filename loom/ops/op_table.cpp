// The op table: for each primitive its shape rule and CPU kernel, and pointers to its VJP
// and JVP rules (vjp_jvp.cpp). apply() is the single entry point every op goes through.
#include "loom/ops/op_table.h"

#include <algorithm>
#include <array>
#include <numeric>

#include "loom/autodiff/graph.h"
#include "loom/base/thread_pool.h"
#include "loom/profile/trace.h"
#include "loom/tensor/kernels/cpu/conv.h"
#include "loom/tensor/kernels/cpu/gemm.h"
#include "loom/tensor/kernels/cpu/kernels.h"

namespace loom {
namespace {

using Inputs = std::vector<Tensor>;
using Outputs = std::vector<Tensor>;

std::string shapes_of(const Inputs& in) {
  std::string s;
  for (size_t i = 0; i < in.size(); ++i) {
    if (i) s += " and ";
    s += shape_str(in[i].shape());
    s += ":";
    s += dtype_name(in[i].dtype());
  }
  return s;
}

void require_float(const Tensor& t, const char* op) {
  LOOM_CHECK(is_floating(t.dtype()), "{}: expected a floating tensor (f32 or f64), got {} of shape {}",
             op, dtype_name(t.dtype()), shape_str(t.shape()));
}

void require_numeric(const Tensor& t, const char* op) {
  LOOM_CHECK(t.dtype() != DType::kBool, "{}: bool tensors are not supported (shape {}); cast first",
             op, shape_str(t.shape()));
}

void require_same_dtype(const Inputs& in, const char* op) {
  for (size_t i = 1; i < in.size(); ++i)
    LOOM_CHECK(in[i].dtype() == in[0].dtype(), "{}: dtypes differ ({})", op, shapes_of(in));
}

Tensor alloc(const TensorMeta& m) { return Tensor::empty(m.shape, m.dtype); }

// ---- elementwise ----------------------------------------------------------------------

template <cpu::UnaryOp U, bool FloatOnly>
TensorMeta unary_shape(const Inputs& in, const Attrs&) {
  if (FloatOnly) {
    require_float(in[0], "unary op");
  } else {
    require_numeric(in[0], "unary op");
  }
  return {in[0].shape(), in[0].dtype()};
}

template <cpu::UnaryOp U>
Outputs unary_forward(const Inputs& in, const Attrs&, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::unary(U, in[0], out);
  return {out};
}

TensorMeta same_shape(const Inputs& in, const Attrs&) { return {in[0].shape(), in[0].dtype()}; }

TensorMeta clamp_shape(const Inputs& in, const Attrs& at) {
  require_numeric(in[0], "clamp");
  LOOM_CHECK(at.a <= at.b, "clamp: lower bound {} exceeds upper bound {}", at.a, at.b);
  return {in[0].shape(), in[0].dtype()};
}
Outputs clamp_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::clamp(in[0], at.a, at.b, out);
  return {out};
}

TensorMeta cast_shape(const Inputs& in, const Attrs& at) { return {in[0].shape(), at.dtype}; }
Outputs cast_forward(const Inputs& in, const Attrs&, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::copy(in[0], out);
  return {out};
}

Outputs identity_forward(const Inputs& in, const Attrs&, const TensorMeta&) {
  return {in[0].detach()};
}

TensorMeta binary_shape(const Inputs& in, const Attrs&) {
  require_same_dtype(in, "binary op");
  require_numeric(in[0], "binary op");
  return {broadcast_shapes(in[0].shape(), in[1].shape(), "binary op"), in[0].dtype()};
}

template <cpu::BinaryOp B>
Outputs binary_forward(const Inputs& in, const Attrs&, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::binary(B, in[0], in[1], out);
  return {out};
}

TensorMeta compare_shape(const Inputs& in, const Attrs&) {
  require_same_dtype(in, "compare");
  return {broadcast_shapes(in[0].shape(), in[1].shape(), "compare"), DType::kBool};
}

template <cpu::CompareOp C>
Outputs compare_forward(const Inputs& in, const Attrs&, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::compare(C, in[0], in[1], out);
  return {out};
}

TensorMeta where_shape(const Inputs& in, const Attrs&) {
  LOOM_CHECK(in[0].dtype() == DType::kBool, "where: condition must be bool, got {}", dtype_name(in[0].dtype()));
  LOOM_CHECK(in[1].dtype() == in[2].dtype(), "where: branches differ in dtype ({})", shapes_of(in));
  Shape s = broadcast_shapes(in[0].shape(), in[1].shape(), "where");
  return {broadcast_shapes(s, in[2].shape(), "where"), in[1].dtype()};
}
Outputs where_forward(const Inputs& in, const Attrs&, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::where(in[0], in[1], in[2], out);
  return {out};
}

// relu_backward(g, y) = y > 0 ? g : 0 (PyTorch's threshold_backward at 0): relu's VJP from
// its output in one pass, instead of a comparison and a select.
TensorMeta relu_backward_shape(const Inputs& in, const Attrs&) {
  require_same_dtype(in, "relu_backward");
  require_float(in[0], "relu_backward");
  return {broadcast_shapes(in[0].shape(), in[1].shape(), "relu_backward"), in[0].dtype()};
}
Outputs relu_backward_forward(const Inputs& in, const Attrs&, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::relu_backward(in[0], in[1], out);
  return {out};
}

// ---- reductions -------------------------------------------------------------------------

Shape reduced_shape(const Shape& s, const std::vector<int64_t>& axes, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
    bool r = std::find(axes.begin(), axes.end(), d) != axes.end();
    if (!r) out.push_back(s[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

template <cpu::ReduceOp R>
TensorMeta reduce_shape(const Inputs& in, const Attrs& at) {
  const char* name = R == cpu::ReduceOp::kSum ? "sum" : (R == cpu::ReduceOp::kMax ? "amax" : "amin");
  require_numeric(in[0], name);
  auto axes = normalize_axes(at.ints, in[0].dim(), name);
  if (R != cpu::ReduceOp::kSum) {
    for (int64_t a : axes)
      LOOM_CHECK(in[0].shape()[a] > 0, "{}: cannot reduce over empty axis {} of shape {}", name, a,
                 shape_str(in[0].shape()));
  }
  return {reduced_shape(in[0].shape(), axes, at.keepdim), in[0].dtype()};
}

template <cpu::ReduceOp R>
Outputs reduce_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::reduce(R, in[0], normalize_axes(at.ints, in[0].dim(), "reduce"), out);
  return {out};
}

TensorMeta argmax_shape(const Inputs& in, const Attrs& at) {
  require_numeric(in[0], "argmax");
  int64_t axis = normalize_axis(at.ints.at(0), in[0].dim(), "argmax");
  LOOM_CHECK(in[0].dim() == 0 || in[0].shape()[axis] > 0, "argmax: axis {} of shape {} is empty", axis,
             shape_str(in[0].shape()));
  return {in[0].dim() == 0 ? Shape{} : reduced_shape(in[0].shape(), {axis}, at.keepdim), DType::kI64};
}
Outputs argmax_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  if (in[0].dim() == 0) {
    out.fill(0);
  } else {
    cpu::argmax(in[0], normalize_axis(at.ints[0], in[0].dim(), "argmax"), out);
  }
  return {out};
}

TensorMeta softmax_shape(const Inputs& in, const Attrs& at) {
  require_float(in[0], "softmax");
  normalize_axis(at.ints.at(0), in[0].dim(), "softmax");
  return {in[0].shape(), in[0].dtype()};
}
template <bool Log>
Outputs softmax_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  if (in[0].dim() == 0) {
    out.fill(Log ? 0.0 : 1.0);
  } else {
    cpu::softmax(in[0], normalize_axis(at.ints[0], in[0].dim(), "softmax"), Log, out);
  }
  return {out};
}

// ---- matmul -----------------------------------------------------------------------------

TensorMeta matmul_shape(const Inputs& in, const Attrs&) {
  const Tensor &a = in[0], &b = in[1];
  require_float(a, "matmul");
  require_same_dtype(in, "matmul");
  LOOM_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: operands need rank >= 2 here, got {}", shapes_of(in));
  int64_t K = a.shape()[a.dim() - 1];
  LOOM_CHECK(K == b.shape()[b.dim() - 2], "matmul: inner dimensions differ: {} vs {} ({})", K,
             b.shape()[b.dim() - 2], shapes_of(in));
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape out = broadcast_shapes(ba, bb, "matmul");
  out.push_back(a.shape()[a.dim() - 2]);
  out.push_back(b.shape()[b.dim() - 1]);
  return {out, a.dtype()};
}

Outputs matmul_forward(const Inputs& in, const Attrs&, const TensorMeta& m) {
  const Tensor &a = in[0], &b = in[1];
  Tensor out = alloc(m);
  const int64_t M = m.shape[m.shape.size() - 2], N = m.shape.back(), K = a.shape().back();
  Shape batch(m.shape.begin(), m.shape.end() - 2);
  // Expanded views give each operand's stride per batch dimension (0 where broadcast).
  auto batch_strides = [&](const Tensor& t) {
    Shape full = batch;
    full.push_back(t.shape()[t.dim() - 2]);
    full.push_back(t.shape()[t.dim() - 1]);
    Strides s(full.size(), 0);
    size_t off = full.size() - t.shape().size();
    for (size_t d = 0; d < t.shape().size(); ++d) s[off + d] = t.shape()[d] == 1 ? 0 : t.strides()[d];
    if (t.shape()[t.dim() - 2] == 1) s[full.size() - 2] = 0;
    if (t.shape()[t.dim() - 1] == 1) s[full.size() - 1] = 0;
    return s;
  };
  Strides sa = batch_strides(a), sb = batch_strides(b);
  const int64_t nb = numel(batch);
  const int64_t nd = static_cast<int64_t>(batch.size());
  auto offsets = [&](int64_t bi, int64_t& oa, int64_t& ob) {
    oa = 0, ob = 0;
    for (int64_t d = nd - 1; d >= 0; --d) {
      int64_t i = bi % batch[d];
      bi /= batch[d];
      oa += i * sa[d];
      ob += i * sb[d];
    }
  };
  const int64_t rsa = sa[nd], csa = sa[nd + 1], rsb = sb[nd], csb = sb[nd + 1];
  // Small products in big batches: one GEMM per thread; otherwise threaded GEMMs in turn.
  const bool batch_parallel = nb >= num_threads() && 2.0 * M * N * K < 4e6;
  LOOM_DISPATCH_FLOAT(a.dtype(), "matmul", [&] {
    const scalar_t* pa = a.data<scalar_t>();
    const scalar_t* pb = b.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    auto run = [&](int64_t lo, int64_t hi, bool par) {
      for (int64_t bi = lo; bi < hi; ++bi) {
        int64_t oa, ob;
        offsets(bi, oa, ob);
        cpu::gemm<scalar_t>(M, N, K, pa + oa, rsa, csa, pb + ob, rsb, csb, scalar_t(0), po + bi * M * N, N, par);
      }
    };
    if (batch_parallel) {
      parallel_for(0, nb, 1, [&](int64_t lo, int64_t hi) { run(lo, hi, false); });
    } else {
      run(0, nb, true);
    }
  });
  return {out};
}

// ---- convolution and pooling ------------------------------------------------------------

cpu::Conv2dParams conv_params(const Attrs& at) {
  LOOM_CHECK(at.ints.size() == 7 || at.ints.size() == 8, "conv2d: expected 7 or 8 integer attributes, got {}",
             at.ints.size());
  cpu::Conv2dParams p{at.ints[0], at.ints[1], at.ints[2], at.ints[3], at.ints[4], at.ints[5], at.ints[6]};
  LOOM_CHECK(p.groups >= 1, "conv2d: groups must be >= 1, got {}", p.groups);
  return p;
}

// Validates an input shape against a weight shape and returns the output shape.
Shape conv_out_shape(const Shape& xs, const Shape& ws, const cpu::Conv2dParams& p, const char* op) {
  LOOM_CHECK(xs.size() == 4 && ws.size() == 4, "{}: input {} and weight {} must both be 4-D (NCHW, OIHW)", op,
             shape_str(xs), shape_str(ws));
  LOOM_CHECK(xs[1] == ws[1] * p.groups, "{}: input has {} channels but weight {} with groups={} expects {}", op,
             xs[1], shape_str(ws), p.groups, ws[1] * p.groups);
  LOOM_CHECK(ws[0] % p.groups == 0, "{}: {} output channels are not divisible by groups={}", op, ws[0], p.groups);
  return {xs[0], ws[0], cpu::conv_out_size(xs[2], ws[2], p.stride_h, p.pad_h, p.dilation_h, op),
          cpu::conv_out_size(xs[3], ws[3], p.stride_w, p.pad_w, p.dilation_w, op)};
}

// Inputs x, w and an optional bias [O], added inside the kernel (no separate pass).
TensorMeta conv2d_shape(const Inputs& in, const Attrs& at) {
  LOOM_CHECK(in.size() == 2 || in.size() == 3, "conv2d: expected 2 or 3 inputs (x, w[, bias]), got {}", in.size());
  require_float(in[0], "conv2d");
  require_same_dtype(in, "conv2d");
  Shape out = conv_out_shape(in[0].shape(), in[1].shape(), conv_params(at), "conv2d");
  if (in.size() == 3)
    LOOM_CHECK(in[2].dim() == 1 && in[2].shape()[0] == in[1].shape()[0], "conv2d: bias {} must be [{}]",
               shape_str(in[2].shape()), in[1].shape()[0]);
  return {out, in[0].dtype()};
}
Outputs conv2d_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::conv2d_forward(in[0].contiguous(), in[1].contiguous(), conv_params(at), out,
                      in.size() == 3 ? in[2].contiguous() : Tensor(), at.ints.size() == 8 && at.ints[7] != 0);
  return {out};
}

TensorMeta conv2d_bwd_input_shape(const Inputs& in, const Attrs& at) {
  require_float(in[0], "conv2d_backward_input");
  require_same_dtype(in, "conv2d_backward_input");
  Shape ys = conv_out_shape(at.shape, in[1].shape(), conv_params(at), "conv2d_backward_input");
  LOOM_CHECK(ys == in[0].shape(), "conv2d_backward_input: gradient shape {} does not match output shape {}",
             shape_str(in[0].shape()), shape_str(ys));
  return {at.shape, in[0].dtype()};
}
Outputs conv2d_bwd_input_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::conv2d_backward_input(in[0].contiguous(), in[1].contiguous(), conv_params(at), out);
  return {out};
}

TensorMeta conv2d_bwd_weight_shape(const Inputs& in, const Attrs& at) {
  require_float(in[0], "conv2d_backward_weight");
  require_same_dtype(in, "conv2d_backward_weight");
  Shape ys = conv_out_shape(in[0].shape(), at.shape, conv_params(at), "conv2d_backward_weight");
  LOOM_CHECK(ys == in[1].shape(), "conv2d_backward_weight: gradient shape {} does not match output shape {}",
             shape_str(in[1].shape()), shape_str(ys));
  return {at.shape, in[0].dtype()};
}
Outputs conv2d_bwd_weight_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::conv2d_backward_weight(in[0].contiguous(), in[1].contiguous(), conv_params(at), out);
  return {out};
}

cpu::Pool2dParams pool_params(const Attrs& at) {
  LOOM_CHECK(at.ints.size() == 6 || at.ints.size() == 7, "pool2d: expected 6 or 7 integer attributes, got {}",
             at.ints.size());
  return {at.ints[0], at.ints[1], at.ints[2], at.ints[3], at.ints[4], at.ints[5]};
}

Shape pool_out_shape(const Shape& xs, const cpu::Pool2dParams& p, const char* op) {
  LOOM_CHECK(xs.size() == 4, "{}: input must be 4-D (NCHW), got {}", op, shape_str(xs));
  LOOM_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1, "{}: kernel must be >= 1", op);
  LOOM_CHECK(p.pad_h * 2 <= p.kernel_h && p.pad_w * 2 <= p.kernel_w,
             "{}: padding ({}, {}) must be at most half the kernel ({}, {})", op, p.pad_h, p.pad_w,
             p.kernel_h, p.kernel_w);
  return {xs[0], xs[1], cpu::conv_out_size(xs[2], p.kernel_h, p.stride_h, p.pad_h, 1, op),
          cpu::conv_out_size(xs[3], p.kernel_w, p.stride_w, p.pad_w, 1, op)};
}

TensorMeta pool_shape(const Inputs& in, const Attrs& at) {
  require_float(in[0], "pool2d");
  return {pool_out_shape(in[0].shape(), pool_params(at), "pool2d"), in[0].dtype()};
}
Outputs max_pool_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  Tensor idx = Tensor::empty(m.shape, DType::kI64);
  cpu::max_pool2d(in[0].contiguous(), pool_params(at), out, idx, at.ints.size() == 7 && at.ints[6] != 0);
  return {out, idx};
}
Outputs avg_pool_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::avg_pool2d(in[0].contiguous(), pool_params(at), out);
  return {out};
}
// max_pool2d_backward(g, idx): g [N, C, OH, OW] added at the argmax positions idx (i64,
// flat h*W+w inside each plane, as max_pool2d records them) of a zero [N, C, H, W].
TensorMeta max_pool_bwd_shape(const Inputs& in, const Attrs& at) {
  require_float(in[0], "max_pool2d_backward");
  LOOM_CHECK(in[1].dtype() == DType::kI64, "max_pool2d_backward: indices must be i64, got {}",
             dtype_name(in[1].dtype()));
  Shape ys = pool_out_shape(at.shape, pool_params(at), "max_pool2d_backward");
  LOOM_CHECK(ys == in[0].shape() && ys == in[1].shape(),
             "max_pool2d_backward: gradient {} and indices {} must both be the pooled shape {}",
             shape_str(in[0].shape()), shape_str(in[1].shape()), shape_str(ys));
  return {at.shape, in[0].dtype()};
}
Outputs max_pool_bwd_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::max_pool2d_backward(in[0].contiguous(), in[1].contiguous(), pool_params(at), out);
  return {out};
}
TensorMeta avg_pool_bwd_shape(const Inputs& in, const Attrs& at) {
  require_float(in[0], "avg_pool2d_backward");
  Shape ys = pool_out_shape(at.shape, pool_params(at), "avg_pool2d_backward");
  LOOM_CHECK(ys == in[0].shape(), "avg_pool2d_backward: gradient shape {} does not match {}",
             shape_str(in[0].shape()), shape_str(ys));
  return {at.shape, in[0].dtype()};
}
Outputs avg_pool_bwd_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::avg_pool2d_backward(in[0].contiguous(), pool_params(at), out);
  return {out};
}

// ---- convolution + max pooling in one op (conv2d_max_pool2d) and its two adjoints --------
// ints: the 7 conv2d parameters, the 6 pool parameters, then (forward only) the relu flag.

struct ConvPoolAttrs {
  cpu::Conv2dParams conv;
  cpu::Pool2dParams pool;
  bool relu;
};

ConvPoolAttrs conv_pool_params(const Attrs& at, const char* op) {
  LOOM_CHECK(at.ints.size() == 13 || at.ints.size() == 14, "{}: expected 13 or 14 integer attributes, got {}", op,
             at.ints.size());
  Attrs c, p;
  c.ints.assign(at.ints.begin(), at.ints.begin() + 7);
  p.ints.assign(at.ints.begin() + 7, at.ints.begin() + 13);
  return {conv_params(c), pool_params(p), at.ints.size() == 14 && at.ints[13] != 0};
}

// The pooled shape of conv(x, w) followed by the pooling, validating both.
Shape conv_pool_out_shape(const Shape& xs, const Shape& ws, const ConvPoolAttrs& a, const char* op) {
  return pool_out_shape(conv_out_shape(xs, ws, a.conv, op), a.pool, op);
}

void require_pool_indices(const Tensor& g, const Tensor& idx, const Shape& pooled, const char* op) {
  LOOM_CHECK(idx.dtype() == DType::kI32 || idx.dtype() == DType::kI64, "{}: indices must be i32 or i64, got {}", op,
             dtype_name(idx.dtype()));
  LOOM_CHECK(g.shape() == pooled && idx.shape() == pooled,
             "{}: gradient {} and indices {} must both be the pooled shape {}", op, shape_str(g.shape()),
             shape_str(idx.shape()), shape_str(pooled));
}

// conv2d_max_pool2d(x, w[, bias]) -> pooled y (+ aux: argmax indices in the conv planes, i32:
// half the memory traffic of i64 between the forward and the two adjoints).
TensorMeta conv_pool_shape(const Inputs& in, const Attrs& at) {
  const char* op = "conv2d_max_pool2d";
  LOOM_CHECK(in.size() == 2 || in.size() == 3, "{}: expected 2 or 3 inputs (x, w[, bias]), got {}", op, in.size());
  require_float(in[0], op);
  require_same_dtype(in, op);
  Shape out = conv_pool_out_shape(in[0].shape(), in[1].shape(), conv_pool_params(at, op), op);
  if (in.size() == 3)
    LOOM_CHECK(in[2].dim() == 1 && in[2].shape()[0] == in[1].shape()[0], "{}: bias {} must be [{}]", op,
               shape_str(in[2].shape()), in[1].shape()[0]);
  return {out, in[0].dtype()};
}
Outputs conv_pool_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  const ConvPoolAttrs a = conv_pool_params(at, "conv2d_max_pool2d");
  Tensor out = alloc(m);
  Tensor idx = Tensor::empty(m.shape, DType::kI32);
  cpu::conv2d_max_pool2d(in[0].contiguous(), in[1].contiguous(), a.conv, in.size() == 3 ? in[2].contiguous() : Tensor(),
                         a.pool, a.relu, out, idx);
  return {out, idx};
}

// conv2d_pooled_backward_input(g, idx, w), attrs.shape = x's shape.
TensorMeta conv_pool_bwd_input_shape(const Inputs& in, const Attrs& at) {
  const char* op = "conv2d_pooled_backward_input";
  require_float(in[0], op);
  LOOM_CHECK(in[0].dtype() == in[2].dtype(), "{}: gradient ({}) and weight ({}) dtypes differ", op,
             dtype_name(in[0].dtype()), dtype_name(in[2].dtype()));
  require_pool_indices(in[0], in[1], conv_pool_out_shape(at.shape, in[2].shape(), conv_pool_params(at, op), op), op);
  return {at.shape, in[0].dtype()};
}
Outputs conv_pool_bwd_input_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  const ConvPoolAttrs a = conv_pool_params(at, "conv2d_pooled_backward_input");
  Tensor out = alloc(m);
  cpu::conv2d_pooled_backward_input(in[0].contiguous(), in[1].contiguous(), a.pool, in[2].contiguous(), a.conv, out);
  return {out};
}

// conv2d_pooled_backward_weight(x, g, idx), attrs.shape = w's shape.
TensorMeta conv_pool_bwd_weight_shape(const Inputs& in, const Attrs& at) {
  const char* op = "conv2d_pooled_backward_weight";
  require_float(in[0], op);
  LOOM_CHECK(in[0].dtype() == in[1].dtype(), "{}: input ({}) and gradient ({}) dtypes differ", op,
             dtype_name(in[0].dtype()), dtype_name(in[1].dtype()));
  require_pool_indices(in[1], in[2], conv_pool_out_shape(in[0].shape(), at.shape, conv_pool_params(at, op), op), op);
  return {at.shape, in[0].dtype()};
}
Outputs conv_pool_bwd_weight_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  const ConvPoolAttrs a = conv_pool_params(at, "conv2d_pooled_backward_weight");
  Tensor out = alloc(m);
  cpu::conv2d_pooled_backward_weight(in[0].contiguous(), in[1].contiguous(), in[2].contiguous(), a.pool, a.conv, out);
  return {out};
}

// ---- indexing -----------------------------------------------------------------------------

void check_index_like(const Shape& a, const Shape& b, int64_t axis, const char* op) {
  LOOM_CHECK(a.size() == b.size(), "{}: index rank {} differs from tensor rank {}", op, b.size(), a.size());
  for (size_t d = 0; d < a.size(); ++d)
    LOOM_CHECK(static_cast<int64_t>(d) == axis || a[d] == b[d],
               "{}: index shape {} must match {} except along axis {}", op, shape_str(b), shape_str(a), axis);
}

TensorMeta gather_shape(const Inputs& in, const Attrs& at) {
  LOOM_CHECK(in[1].dtype() == DType::kI64, "gather: index must be i64, got {}", dtype_name(in[1].dtype()));
  LOOM_CHECK(in[0].dim() >= 1, "gather: input must have rank >= 1");
  int64_t axis = normalize_axis(at.ints.at(0), in[0].dim(), "gather");
  check_index_like(in[0].shape(), in[1].shape(), axis, "gather");
  return {in[1].shape(), in[0].dtype()};
}
Outputs gather_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::gather(in[0], normalize_axis(at.ints[0], in[0].dim(), "gather"), in[1], out);
  return {out};
}

TensorMeta scatter_add_shape(const Inputs& in, const Attrs& at) {
  require_numeric(in[0], "scatter_add");
  LOOM_CHECK(in[1].dtype() == DType::kI64, "scatter_add: index must be i64, got {}", dtype_name(in[1].dtype()));
  LOOM_CHECK(in[0].shape() == in[1].shape(), "scatter_add: source {} and index {} must have one shape",
             shape_str(in[0].shape()), shape_str(in[1].shape()));
  int64_t axis = normalize_axis(at.ints.at(0), static_cast<int64_t>(at.shape.size()), "scatter_add");
  check_index_like(at.shape, in[0].shape(), axis, "scatter_add");
  return {at.shape, in[0].dtype()};
}
Outputs scatter_add_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = Tensor::empty(m.shape, m.dtype);  // the kernel zeroes it block by block
  cpu::scatter_add(in[0], normalize_axis(at.ints[0], out.dim(), "scatter_add"), in[1], out);
  return {out};
}

TensorMeta index_select_shape(const Inputs& in, const Attrs& at) {
  LOOM_CHECK(in[1].dtype() == DType::kI64 && in[1].dim() == 1,
             "index_select: index must be a 1-D i64 tensor, got {} of shape {}", dtype_name(in[1].dtype()),
             shape_str(in[1].shape()));
  LOOM_CHECK(in[0].dim() >= 1, "index_select: input must have rank >= 1");
  int64_t axis = normalize_axis(at.ints.at(0), in[0].dim(), "index_select");
  Shape s = in[0].shape();
  s[axis] = in[1].numel();
  return {s, in[0].dtype()};
}
Outputs index_select_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  cpu::index_select(in[0], normalize_axis(at.ints[0], in[0].dim(), "index_select"), in[1], out);
  return {out};
}

TensorMeta index_add_shape(const Inputs& in, const Attrs& at) {
  require_numeric(in[0], "index_add");
  LOOM_CHECK(in[1].dtype() == DType::kI64 && in[1].dim() == 1, "index_add: index must be a 1-D i64 tensor");
  int64_t axis = normalize_axis(at.ints.at(0), static_cast<int64_t>(at.shape.size()), "index_add");
  Shape expect = at.shape;
  expect[axis] = in[1].numel();
  LOOM_CHECK(expect == in[0].shape(), "index_add: source shape {} does not match {}", shape_str(in[0].shape()),
             shape_str(expect));
  return {at.shape, in[0].dtype()};
}
Outputs index_add_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = Tensor::zeros(m.shape, m.dtype);
  cpu::index_add(in[0], normalize_axis(at.ints[0], out.dim(), "index_add"), in[1], out);
  return {out};
}

TensorMeta concat_shape(const Inputs& in, const Attrs& at) {
  LOOM_CHECK(!in.empty(), "concat: needs at least one tensor");
  require_same_dtype(in, "concat");
  LOOM_CHECK(in[0].dim() >= 1, "concat: tensors must have rank >= 1 (use stack for scalars)");
  int64_t axis = normalize_axis(at.ints.at(0), in[0].dim(), "concat");
  Shape s = in[0].shape();
  for (size_t i = 1; i < in.size(); ++i) {
    const Shape& t = in[i].shape();
    LOOM_CHECK(t.size() == s.size(), "concat: ranks differ ({})", shapes_of(in));
    for (size_t d = 0; d < s.size(); ++d)
      LOOM_CHECK(static_cast<int64_t>(d) == axis || t[d] == s[d], "concat: shapes differ off axis {} ({})", axis,
                 shapes_of(in));
    s[axis] += t[axis];
  }
  return {s, in[0].dtype()};
}
Outputs concat_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = alloc(m);
  int64_t axis = normalize_axis(at.ints[0], out.dim(), "concat");
  int64_t pos = 0;
  for (const Tensor& t : in) {
    int64_t len = t.shape()[axis];
    Strides st = out.strides();
    Tensor dst = out.as_strided(t.shape(), st, pos * st[axis]);
    cpu::copy(t, dst);
    pos += len;
  }
  return {out};
}

// ---- views --------------------------------------------------------------------------------

// Strides that let `shape` view memory laid out as (old_shape, old_strides), if any
// (the algorithm of PyTorch's computeStride).
bool view_strides(const Shape& old_shape, const Strides& old_strides, const Shape& shape, Strides& out) {
  out.assign(shape.size(), 0);
  if (numel(old_shape) == 0 || old_shape.empty()) {
    out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    if (d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

TensorMeta reshape_shape(const Inputs& in, const Attrs& at) {
  LOOM_CHECK(numel(at.shape) == in[0].numel(), "reshape: cannot view shape {} ({} elements) as {}",
             shape_str(in[0].shape()), in[0].numel(), shape_str(at.shape));
  return {at.shape, in[0].dtype()};
}
Outputs reshape_forward(const Inputs& in, const Attrs& at, const TensorMeta&) {
  Strides st;
  if (view_strides(in[0].shape(), in[0].strides(), at.shape, st))
    return {in[0].as_strided(at.shape, st, in[0].offset())};
  Tensor c = in[0].clone();
  return {c.as_strided(at.shape, contiguous_strides(at.shape), 0)};
}

TensorMeta permute_shape(const Inputs& in, const Attrs& at) {
  const int64_t nd = in[0].dim();
  LOOM_CHECK(static_cast<int64_t>(at.ints.size()) == nd, "permute: {} dims given for a tensor of rank {}",
             at.ints.size(), nd);
  std::vector<bool> seen(nd, false);
  Shape s(nd);
  for (int64_t i = 0; i < nd; ++i) {
    int64_t d = normalize_axis(at.ints[i], nd, "permute");
    LOOM_CHECK(!seen[d], "permute: dimension {} repeated", d);
    seen[d] = true;
    s[i] = in[0].shape()[d];
  }
  return {s, in[0].dtype()};
}
Outputs permute_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Strides st(m.shape.size());
  for (size_t i = 0; i < st.size(); ++i)
    st[i] = in[0].strides()[normalize_axis(at.ints[i], in[0].dim(), "permute")];
  return {in[0].as_strided(m.shape, st, in[0].offset())};
}

// attrs.ints = {axis, start, stop, step}, already normalized by ops::slice.
Shape slice_result(const Shape& s, const Attrs& at, const char* op) {
  LOOM_CHECK(at.ints.size() == 4, "{}: expected (axis, start, stop, step)", op);
  int64_t axis = normalize_axis(at.ints[0], static_cast<int64_t>(s.size()), op);
  int64_t start = at.ints[1], stop = at.ints[2], step = at.ints[3];
  LOOM_CHECK(step >= 1, "{}: step must be >= 1, got {}", op, step);
  LOOM_CHECK(0 <= start && start <= stop && stop <= s[axis], "{}: range [{}, {}) out of bounds for axis {} of {}",
             op, start, stop, axis, shape_str(s));
  Shape out = s;
  out[axis] = (stop - start + step - 1) / step;
  return out;
}
TensorMeta slice_shape(const Inputs& in, const Attrs& at) {
  return {slice_result(in[0].shape(), at, "slice"), in[0].dtype()};
}
Outputs slice_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  int64_t axis = normalize_axis(at.ints[0], in[0].dim(), "slice");
  Strides st = in[0].strides();
  int64_t off = in[0].offset() + at.ints[1] * st[axis];
  st[axis] *= at.ints[3];
  return {in[0].as_strided(m.shape, st, m.shape[axis] == 0 ? in[0].offset() : off)};
}
TensorMeta slice_backward_shape(const Inputs& in, const Attrs& at) {
  Shape expect = slice_result(at.shape, at, "slice_backward");
  LOOM_CHECK(expect == in[0].shape(), "slice_backward: gradient {} does not match slice {}", shape_str(in[0].shape()),
             shape_str(expect));
  return {at.shape, in[0].dtype()};
}
Outputs slice_backward_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  Tensor out = Tensor::zeros(m.shape, m.dtype);
  Attrs a = at;
  Tensor view = slice_forward({out}, a, {in[0].shape(), m.dtype})[0];
  cpu::copy(in[0], view);
  return {out};
}

TensorMeta expand_shape(const Inputs& in, const Attrs& at) {
  const Shape& s = in[0].shape();
  LOOM_CHECK(at.shape.size() >= s.size(), "expand: cannot expand {} to fewer dimensions {}", shape_str(s),
             shape_str(at.shape));
  size_t off = at.shape.size() - s.size();
  for (size_t d = 0; d < s.size(); ++d)
    LOOM_CHECK(s[d] == at.shape[off + d] || s[d] == 1, "expand: cannot expand {} to {}", shape_str(s),
               shape_str(at.shape));
  return {at.shape, in[0].dtype()};
}
Outputs expand_forward(const Inputs& in, const Attrs& at, const TensorMeta& m) {
  const Shape& s = in[0].shape();
  Strides st(m.shape.size(), 0);
  size_t off = m.shape.size() - s.size();
  for (size_t d = 0; d < s.size(); ++d) st[off + d] = (s[d] == 1 && m.shape[off + d] != 1) ? 0 : in[0].strides()[d];
  (void)at;
  return {in[0].as_strided(m.shape, st, in[0].offset())};
}

// ---- the table ----------------------------------------------------------------------------

#define R(name) &rules::name##_vjp, &rules::name##_jvp
#define NO_RULES nullptr, nullptr

using cpu::BinaryOp;
using cpu::CompareOp;
using cpu::ReduceOp;
using cpu::UnaryOp;

const std::array<OpDef, static_cast<size_t>(OpKind::kCount)> kTable = {{
    {"neg", 1, unary_shape<UnaryOp::kNeg, false>, unary_forward<UnaryOp::kNeg>, R(neg)},
    {"exp", 1, unary_shape<UnaryOp::kExp, true>, unary_forward<UnaryOp::kExp>, R(exp)},
    {"log", 1, unary_shape<UnaryOp::kLog, true>, unary_forward<UnaryOp::kLog>, R(log)},
    {"sqrt", 1, unary_shape<UnaryOp::kSqrt, true>, unary_forward<UnaryOp::kSqrt>, R(sqrt)},
    {"rsqrt", 1, unary_shape<UnaryOp::kRsqrt, true>, unary_forward<UnaryOp::kRsqrt>, R(rsqrt)},
    {"tanh", 1, unary_shape<UnaryOp::kTanh, true>, unary_forward<UnaryOp::kTanh>, R(tanh)},
    {"sigmoid", 1, unary_shape<UnaryOp::kSigmoid, true>, unary_forward<UnaryOp::kSigmoid>, R(sigmoid)},
    {"relu", 1, unary_shape<UnaryOp::kRelu, false>, unary_forward<UnaryOp::kRelu>, R(relu)},
    {"gelu", 1, unary_shape<UnaryOp::kGelu, true>, unary_forward<UnaryOp::kGelu>, R(gelu)},
    {"abs", 1, unary_shape<UnaryOp::kAbs, false>, unary_forward<UnaryOp::kAbs>, R(abs)},
    {"erf", 1, unary_shape<UnaryOp::kErf, true>, unary_forward<UnaryOp::kErf>, R(erf)},
    {"sign", 1, unary_shape<UnaryOp::kSign, false>, unary_forward<UnaryOp::kSign>, NO_RULES},
    {"clamp", 1, clamp_shape, clamp_forward, R(clamp)},
    {"cast", 1, cast_shape, cast_forward, R(cast)},
    {"identity", 1, same_shape, identity_forward, R(identity)},
    {"add", 2, binary_shape, binary_forward<BinaryOp::kAdd>, R(add)},
    {"sub", 2, binary_shape, binary_forward<BinaryOp::kSub>, R(sub)},
    {"mul", 2, binary_shape, binary_forward<BinaryOp::kMul>, R(mul)},
    {"div", 2, binary_shape, binary_forward<BinaryOp::kDiv>, R(div)},
    {"pow", 2, binary_shape, binary_forward<BinaryOp::kPow>, R(pow)},
    {"maximum", 2, binary_shape, binary_forward<BinaryOp::kMaximum>, R(maximum)},
    {"minimum", 2, binary_shape, binary_forward<BinaryOp::kMinimum>, R(minimum)},
    {"eq", 2, compare_shape, compare_forward<CompareOp::kEq>, NO_RULES},
    {"ne", 2, compare_shape, compare_forward<CompareOp::kNe>, NO_RULES},
    {"lt", 2, compare_shape, compare_forward<CompareOp::kLt>, NO_RULES},
    {"le", 2, compare_shape, compare_forward<CompareOp::kLe>, NO_RULES},
    {"gt", 2, compare_shape, compare_forward<CompareOp::kGt>, NO_RULES},
    {"ge", 2, compare_shape, compare_forward<CompareOp::kGe>, NO_RULES},
    {"where", 3, where_shape, where_forward, R(where)},
    {"relu_backward", 2, relu_backward_shape, relu_backward_forward, R(relu_backward)},
    {"sum", 1, reduce_shape<ReduceOp::kSum>, reduce_forward<ReduceOp::kSum>, R(sum)},
    {"amax", 1, reduce_shape<ReduceOp::kMax>, reduce_forward<ReduceOp::kMax>, R(amax)},
    {"amin", 1, reduce_shape<ReduceOp::kMin>, reduce_forward<ReduceOp::kMin>, R(amin)},
    {"argmax", 1, argmax_shape, argmax_forward, NO_RULES},
    {"softmax", 1, softmax_shape, softmax_forward<false>, R(softmax)},
    {"log_softmax", 1, softmax_shape, softmax_forward<true>, R(log_softmax)},
    {"matmul", 2, matmul_shape, matmul_forward, R(matmul)},
    {"conv2d", -1, conv2d_shape, conv2d_forward, R(conv2d)},
    {"conv2d_backward_input", 2, conv2d_bwd_input_shape, conv2d_bwd_input_forward, R(conv2d_backward_input)},
    {"conv2d_backward_weight", 2, conv2d_bwd_weight_shape, conv2d_bwd_weight_forward, R(conv2d_backward_weight)},
    {"max_pool2d", 1, pool_shape, max_pool_forward, R(max_pool2d)},
    {"max_pool2d_backward", 2, max_pool_bwd_shape, max_pool_bwd_forward, R(max_pool2d_backward)},
    {"avg_pool2d", 1, pool_shape, avg_pool_forward, R(avg_pool2d)},
    {"avg_pool2d_backward", 1, avg_pool_bwd_shape, avg_pool_bwd_forward, R(avg_pool2d_backward)},
    {"conv2d_max_pool2d", -1, conv_pool_shape, conv_pool_forward, R(conv2d_max_pool2d)},
    {"conv2d_pooled_backward_input", 3, conv_pool_bwd_input_shape, conv_pool_bwd_input_forward,
     R(conv2d_pooled_backward_input)},
    {"conv2d_pooled_backward_weight", 3, conv_pool_bwd_weight_shape, conv_pool_bwd_weight_forward,
     R(conv2d_pooled_backward_weight)},
    {"gather", 2, gather_shape, gather_forward, R(gather)},
    {"scatter_add", 2, scatter_add_shape, scatter_add_forward, R(scatter_add)},
    {"index_select", 2, index_select_shape, index_select_forward, R(index_select)},
    {"index_add", 2, index_add_shape, index_add_forward, R(index_add)},
    {"concat", -1, concat_shape, concat_forward, R(concat)},
    {"reshape", 1, reshape_shape, reshape_forward, R(reshape)},
    {"permute", 1, permute_shape, permute_forward, R(permute)},
    {"slice", 1, slice_shape, slice_forward, R(slice)},
    {"slice_backward", 1, slice_backward_shape, slice_backward_forward, R(slice_backward)},
    {"expand", 1, expand_shape, expand_forward, R(expand)},
}};

#undef R
#undef NO_RULES

}  // namespace

const OpDef& op_def(OpKind op) { return kTable.at(static_cast<size_t>(op)); }
const char* op_name(OpKind op) { return op_def(op).name; }

double op_flops(OpKind op, const std::vector<Tensor>& in, const Attrs& attrs, const TensorMeta& meta) {
  const double out_n = static_cast<double>(numel(meta.shape));
  auto n = [](const Tensor& t) { return static_cast<double>(t.numel()); };
  // Per output element of a convolution: one multiply-add per weight of one output channel.
  auto per_channel = [&](const Shape& w) { return static_cast<double>(numel(w)) / std::max<int64_t>(1, w[0]); };
  switch (op) {
    case OpKind::kMatmul: return 2.0 * out_n * (in[0].dim() >= 1 ? static_cast<double>(in[0].shape().back()) : 1.0);
    case OpKind::kConv2d: return 2.0 * out_n * per_channel(in[1].shape());
    case OpKind::kConv2dBackwardInput: return 2.0 * n(in[0]) * per_channel(in[1].shape());
    case OpKind::kConv2dBackwardWeight: return 2.0 * n(in[1]) * per_channel(meta.shape);
    // The fused convolution + pooling ops: the convolution's work, over its (unpooled) output.
    case OpKind::kConv2dMaxPool2d: case OpKind::kConv2dPooledBackwardInput: case OpKind::kConv2dPooledBackwardWeight: {
      const Shape& ws = op == OpKind::kConv2dMaxPool2d ? in[1].shape()
                        : op == OpKind::kConv2dPooledBackwardInput ? in[2].shape() : attrs.shape;
      const Shape& xs = op == OpKind::kConv2dPooledBackwardInput ? attrs.shape : in[0].shape();
      const Shape z = conv_out_shape(xs, ws, conv_pool_params(attrs, op_name(op)).conv, op_name(op));
      return 2.0 * static_cast<double>(numel(z)) * per_channel(ws);
    }
    case OpKind::kSum: case OpKind::kAmax: case OpKind::kAmin: case OpKind::kArgmax:
    case OpKind::kMaxPool2d: case OpKind::kMaxPool2dBackward: case OpKind::kAvgPool2d: case OpKind::kAvgPool2dBackward:
      return n(in[0]);
    case OpKind::kSoftmax: case OpKind::kLogSoftmax: return 4.0 * n(in[0]);
    case OpKind::kCast: case OpKind::kIdentity: case OpKind::kGather: case OpKind::kScatterAdd:
    case OpKind::kIndexSelect: case OpKind::kIndexAdd: case OpKind::kConcat: case OpKind::kReshape:
    case OpKind::kPermute: case OpKind::kSlice: case OpKind::kSliceBackward: case OpKind::kExpand:
      return 0.0;
    default: return out_n;  // elementwise
  }
}

std::string op_trace_args(OpKind op, const std::vector<Tensor>& in, const Attrs& attrs, const TensorMeta& meta) {
  std::string shapes;
  double bytes = static_cast<double>(numel(meta.shape)) * static_cast<double>(dtype_size(meta.dtype));
  for (size_t i = 0; i < in.size(); ++i) {
    if (i) shapes += " ";
    shapes += shape_str(in[i].shape());
    bytes += static_cast<double>(in[i].nbytes());
  }
  return fmt::format(R"("shapes":"{}","out":"{}","dtype":"{}","flops":{:.0f},"bytes":{:.0f})", shapes,
                     shape_str(meta.shape), dtype_name(meta.dtype), op_flops(op, in, attrs, meta), bytes);
}

Tensor apply(OpKind op, const std::vector<Tensor>& inputs, const Attrs& attrs) {
  return apply_all(op, inputs, attrs)[0];
}

std::vector<Tensor> apply_all(OpKind op, const std::vector<Tensor>& inputs, const Attrs& attrs) {
  const OpDef& def = op_def(op);
  if (def.arity >= 0) {
    LOOM_CHECK(static_cast<int>(inputs.size()) == def.arity, "{}: expected {} inputs, got {}", def.name,
               def.arity, inputs.size());
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    LOOM_CHECK(inputs[i].defined(), "{}: input {} is an undefined tensor", def.name, i);
  TensorMeta meta;
  try {
    meta = def.shape(inputs, attrs);
  } catch (const Error& e) {
    // Shape rules of shared helpers say "binary op"/"unary op": name the real op.
    std::string msg = e.what();
    if (msg.rfind(def.name, 0) != 0) msg = std::string(def.name) + ": " + msg;
    throw Error(msg);
  }
  profile::Span span(def.name, "op");
  if (span.active()) span.set_args(op_trace_args(op, inputs, attrs, meta));
  std::vector<Tensor> res = def.forward(inputs, attrs, meta);
  Tensor out = res[0];
  // The output must be a fresh impl: autodiff state is attached to it.
  for (const Tensor& in : inputs)
    if (out.same(in)) out = out.detach();
  std::vector<Tensor> aux(res.begin() + 1, res.end());
  if (def.vjp) autodiff::record(op, inputs, aux, attrs, out);
  if (def.jvp && autodiff::forward_ad_active()) {
    bool any = false;
    std::vector<Tensor> tangents(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].impl()->tangent) {
        tangents[i] = Tensor(inputs[i].impl()->tangent);
        any = true;
      }
    }
    if (any) {
      autodiff::ForwardAdPause pause;
      Tensor t = def.jvp(inputs, tangents, attrs, out, aux);
      if (t.defined()) {
        out.impl()->tangent = t.impl_ptr();
        autodiff::note_tangent(out.impl_ptr());
      }
    }
  }
  aux.insert(aux.begin(), out);
  return aux;
}

}  // namespace loom
