// CPU kernels: the raw computations behind loom/ops. They take tensors whose shapes and
// dtypes the caller (the op's shape rule) has already validated, and write into outputs
// the caller allocated. No autodiff here.
#pragma once

#include <cstdint>
#include <vector>

#include "loom/tensor/tensor.h"

namespace loom::cpu {

enum class UnaryOp { kNeg, kExp, kLog, kSqrt, kRsqrt, kTanh, kSigmoid, kRelu, kGelu, kAbs,
                     kSign, kErf };
enum class BinaryOp { kAdd, kSub, kMul, kDiv, kPow, kMaximum, kMinimum };
enum class CompareOp { kEq, kNe, kLt, kLe, kGt, kGe };
enum class ReduceOp { kSum, kMax, kMin };

// out = op(x); out has x's shape and dtype (contiguous).
void unary(UnaryOp op, const Tensor& x, Tensor& out);
// y[i] = op(x[i]) for n contiguous floats (x and y distinct) on the calling thread, with the
// vectorized loop of the active instruction set: for kernels that need a flat pass inside
// their own parallel loop.
void unary_f32_serial(UnaryOp op, const float* x, float* y, int64_t n);
// out[c] = sum over r < rows of x[r * ld + c] for c < cols, rows added in order (the
// accumulation of rows that reductions over a leading axis do), on the calling thread.
void col_sums_f32_serial(const float* x, int64_t rows, int64_t cols, int64_t ld, float* out);
// out = op(a, b) with broadcasting; a, b and out share out's dtype.
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
// out (bool) = a <op> b with broadcasting; a and b share a dtype.
void compare(CompareOp op, const Tensor& a, const Tensor& b, Tensor& out);
// out = cond ? a : b with broadcasting of all three.
void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);
// out = y > 0 ? g : 0 (broadcasting g and y to out's shape).
void relu_backward(const Tensor& g, const Tensor& y, Tensor& out);
// out = min(max(x, lo), hi).
void clamp(const Tensor& x, double lo, double hi, Tensor& out);
// dst = src, broadcasting src to dst's shape and converting dtypes. Strided either side.
void copy(const Tensor& src, Tensor& dst);
void fill(Tensor& dst, double value);

// Reduces x over `axes` (sorted, unique); out has the kept shape (keepdim layout is the
// caller's choice: only numel and order matter, out is contiguous).
void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, Tensor& out);
// Index (i64) of the maximum along axis (first one on ties); out has the reduced shape.
void argmax(const Tensor& x, int64_t axis, Tensor& out);
// Numerically stable softmax / log-softmax along axis.
void softmax(const Tensor& x, int64_t axis, bool log, Tensor& out);

// torch.gather / scatter_add semantics along axis; idx is i64 with out's shape (gather)
// or src's shape (scatter_add, which overwrites out with zeros plus the scattered sums).
void gather(const Tensor& x, int64_t axis, const Tensor& idx, Tensor& out);
void scatter_add(const Tensor& src, int64_t axis, const Tensor& idx, Tensor& out);
// index_select along axis with a 1-D i64 index, and its adjoint (adds rows into out,
// which must be zero-initialised).
void index_select(const Tensor& x, int64_t axis, const Tensor& idx, Tensor& out);
void index_add(const Tensor& src, int64_t axis, const Tensor& idx, Tensor& out);

// Bernoulli(keep) mask as x's dtype, deterministic in (seed, offset) for any thread count.
void bernoulli(Tensor& out, double keep_prob, uint64_t seed, uint64_t offset);

}  // namespace loom::cpu
