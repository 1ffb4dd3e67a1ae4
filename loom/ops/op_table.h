// loom/ops: the differentiable op library.
//
// One table is the source of truth for primitive ops (as ATen's native_functions.yaml plus
// derivatives.yaml, or ggml's op enum): each OpDef gives the op's name, arity, shape rule
// (validation + output shape/dtype), CPU kernel, VJP rule and JVP rule. Every public op in
// ops.h is either one primitive applied through apply(), or a composite of them (mean,
// var, layer_norm, cross_entropy, ...), so composites need no rules of their own.
//
// To add an op: an enum entry below, a row in op_table.cpp (shape rule + kernel), its
// VJP/JVP in vjp_jvp.cpp, a public function in ops.h, and a case in the op tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loom/tensor/tensor.h"

namespace loom {

enum class OpKind : uint16_t {
  // unary
  kNeg, kExp, kLog, kSqrt, kRsqrt, kTanh, kSigmoid, kRelu, kGelu, kAbs, kErf, kSign,
  kClamp, kCast, kIdentity,
  // binary (broadcasting)
  kAdd, kSub, kMul, kDiv, kPow, kMaximum, kMinimum,
  kEq, kNe, kLt, kLe, kGt, kGe, kWhere, kReluBackward,
  // reductions
  kSum, kAmax, kAmin, kArgmax, kSoftmax, kLogSoftmax,
  // linear algebra and convolution
  kMatmul, kConv2d, kConv2dBackwardInput, kConv2dBackwardWeight,
  kMaxPool2d, kMaxPool2dBackward, kAvgPool2d, kAvgPool2dBackward,
  kConv2dMaxPool2d, kConv2dPooledBackwardInput, kConv2dPooledBackwardWeight,
  // indexing
  kGather, kScatterAdd, kIndexSelect, kIndexAdd, kConcat,
  // views and their adjoints
  kReshape, kPermute, kSlice, kSliceBackward, kExpand,
  kCount
};

// Op parameters. Each op documents which fields it reads (see op_table.cpp).
struct Attrs {
  std::vector<int64_t> ints;  // axes, dims, slice (axis, start, stop, step), conv params
  Shape shape;                // target shape (reshape, expand, adjoint ops)
  double a = 0.0, b = 0.0;    // scalars (clamp bounds)
  bool keepdim = false;
  DType dtype = DType::kF32;  // cast target
};

struct TensorMeta {
  Shape shape;
  DType dtype;
};

namespace autodiff {
struct Node;
}

struct OpDef {
  const char* name;
  int arity;  // -1: any number of inputs (concat)
  // Validates inputs and attrs (throws loom::Error naming the op and shapes) and gives the
  // output's shape and dtype.
  TensorMeta (*shape)(const std::vector<Tensor>& in, const Attrs& attrs);
  // Computes the output (element 0) and any auxiliary tensors the VJP needs.
  std::vector<Tensor> (*forward)(const std::vector<Tensor>& in, const Attrs& attrs,
                                 const TensorMeta& meta);
  // Gradients for each input given the output's cotangent; written with differentiable
  // ops. Null for non-differentiable ops. An undefined entry means "no gradient".
  std::vector<Tensor> (*vjp)(const autodiff::Node& node, const Tensor& gout);
  // Output tangent given input tangents (undefined = zero tangent).
  Tensor (*jvp)(const std::vector<Tensor>& in, const std::vector<Tensor>& tangents,
                const Attrs& attrs, const Tensor& out, const std::vector<Tensor>& aux);
};

const OpDef& op_def(OpKind op);
const char* op_name(OpKind op);

// Floating-point operations of one application (a multiply-add counts 2), and the profile
// arguments of an op span (input shapes, output, dtype, flops, bytes moved).
double op_flops(OpKind op, const std::vector<Tensor>& inputs, const Attrs& attrs, const TensorMeta& meta);
std::string op_trace_args(OpKind op, const std::vector<Tensor>& inputs, const Attrs& attrs,
                          const TensorMeta& meta);

// Runs a primitive: shape rule, kernel, then tape recording and tangent propagation; traced as
// an "op" span when loom/profile tracing is on.
Tensor apply(OpKind op, const std::vector<Tensor>& inputs, const Attrs& attrs = {});
// The same, returning the output followed by the op's auxiliary outputs (max_pool2d's argmax).
std::vector<Tensor> apply_all(OpKind op, const std::vector<Tensor>& inputs, const Attrs& attrs = {});

// VJP and JVP rules (defined in vjp_jvp.cpp), referenced by the table.
namespace rules {
#define LOOM_DECLARE_RULES(name)                                                         \
  std::vector<Tensor> name##_vjp(const autodiff::Node& node, const Tensor& g);           \
  Tensor name##_jvp(const std::vector<Tensor>& in, const std::vector<Tensor>& t,         \
                    const Attrs& attrs, const Tensor& out, const std::vector<Tensor>& aux);
LOOM_DECLARE_RULES(neg) LOOM_DECLARE_RULES(exp) LOOM_DECLARE_RULES(log)
LOOM_DECLARE_RULES(sqrt) LOOM_DECLARE_RULES(rsqrt) LOOM_DECLARE_RULES(tanh)
LOOM_DECLARE_RULES(sigmoid) LOOM_DECLARE_RULES(relu) LOOM_DECLARE_RULES(gelu)
LOOM_DECLARE_RULES(abs) LOOM_DECLARE_RULES(erf) LOOM_DECLARE_RULES(clamp)
LOOM_DECLARE_RULES(cast) LOOM_DECLARE_RULES(identity)
LOOM_DECLARE_RULES(add) LOOM_DECLARE_RULES(sub) LOOM_DECLARE_RULES(mul)
LOOM_DECLARE_RULES(div) LOOM_DECLARE_RULES(pow) LOOM_DECLARE_RULES(maximum)
LOOM_DECLARE_RULES(minimum) LOOM_DECLARE_RULES(where) LOOM_DECLARE_RULES(relu_backward)
LOOM_DECLARE_RULES(sum) LOOM_DECLARE_RULES(amax) LOOM_DECLARE_RULES(amin)
LOOM_DECLARE_RULES(softmax) LOOM_DECLARE_RULES(log_softmax)
LOOM_DECLARE_RULES(matmul) LOOM_DECLARE_RULES(conv2d)
LOOM_DECLARE_RULES(conv2d_backward_input) LOOM_DECLARE_RULES(conv2d_backward_weight)
LOOM_DECLARE_RULES(max_pool2d) LOOM_DECLARE_RULES(max_pool2d_backward) LOOM_DECLARE_RULES(avg_pool2d)
LOOM_DECLARE_RULES(avg_pool2d_backward)
LOOM_DECLARE_RULES(conv2d_max_pool2d) LOOM_DECLARE_RULES(conv2d_pooled_backward_input)
LOOM_DECLARE_RULES(conv2d_pooled_backward_weight)
LOOM_DECLARE_RULES(gather) LOOM_DECLARE_RULES(scatter_add)
LOOM_DECLARE_RULES(index_select) LOOM_DECLARE_RULES(index_add) LOOM_DECLARE_RULES(concat)
LOOM_DECLARE_RULES(reshape) LOOM_DECLARE_RULES(permute) LOOM_DECLARE_RULES(slice)
LOOM_DECLARE_RULES(slice_backward) LOOM_DECLARE_RULES(expand)
#undef LOOM_DECLARE_RULES
}  // namespace rules

}  // namespace loom
