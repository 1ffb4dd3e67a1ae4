// loom/tensor: the n-dimensional array every other module computes with.
//
// A Tensor is a cheap handle (shared_ptr) to a TensorImpl: a Storage (refcounted memory
// from the caching allocator), a dtype, a shape, strides and an offset, all in elements.
// Views (reshape where possible, permute, slice with step, expand, squeeze) share the
// storage and only change shape/strides/offset; contiguous() copies only when needed.
// Differentiable ops on tensors live in loom/ops; autodiff state (requires_grad, the
// producing node, the accumulated grad, a forward-mode tangent) rides on the impl.
//
// Thread-safety: a Tensor may be read from many threads; writing one tensor from several
// threads at once, or writing while others read, is the caller's business.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "loom/tensor/dtype.h"
#include "loom/tensor/shape.h"

namespace loom {

namespace autodiff {
struct Node;
}

class Storage {
 public:
  // Fresh memory from the caching allocator (uninitialized).
  explicit Storage(size_t nbytes);
  // Wraps memory owned elsewhere; `deleter` (may be empty) runs when the storage dies.
  Storage(void* data, size_t nbytes, std::function<void(void*)> deleter);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }

 private:
  void* data_;
  size_t nbytes_;
  bool from_allocator_;
  std::function<void(void*)> deleter_;
};

class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::kF32;

  // Autodiff. A tensor that requires grad is either a leaf (grad_fn empty; its gradient
  // accumulates in `grad`) or the output of a recorded op (grad_fn set).
  bool requires_grad = false;
  std::shared_ptr<autodiff::Node> grad_fn;
  std::shared_ptr<TensorImpl> grad;
  // Forward-mode tangent, set while a jvp transform is running.
  std::shared_ptr<TensorImpl> tangent;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories -------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::kF32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::kF32);
  static Tensor ones(const Shape& shape, DType dtype = DType::kF32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::kF32);
  static Tensor scalar(double value, DType dtype = DType::kF32);
  static Tensor arange(int64_t n, DType dtype = DType::kI64);
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  static Tensor from_data(const void* data, const Shape& shape, DType dtype);  // copies
  // Uniform [lo, hi) and normal(mean, std) from the default (or a seeded) Philox stream.
  static Tensor rand(const Shape& shape, DType dtype = DType::kF32, double lo = 0.0,
                     double hi = 1.0);
  static Tensor randn(const Shape& shape, DType dtype = DType::kF32, double mean = 0.0,
                      double std = 1.0);

  // ---- metadata --------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  DType dtype() const { return impl_->dtype; }
  const Shape& shape() const { return impl_->shape; }
  const Strides& strides() const { return impl_->strides; }
  int64_t offset() const { return impl_->offset; }
  int64_t dim() const { return static_cast<int64_t>(impl_->shape.size()); }
  int64_t size(int64_t axis) const;
  int64_t numel() const { return loom::numel(impl_->shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  bool is_contiguous() const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }
  bool shares_storage(const Tensor& other) const;

  // ---- data access -----------------------------------------------------------------
  // Pointer to the first element (offset applied); checks the dtype.
  template <typename T>
  T* data() const;
  void* raw_data() const;
  template <typename T>
  T item() const;
  double item_double() const;
  // Elements in row-major order as T (converting from the tensor's dtype).
  template <typename T>
  std::vector<T> to_vector() const;

  // ---- copies and raw views (no autodiff; the differentiable ones are in loom/ops) ----
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor to(DType dtype) const;
  Tensor as_strided(const Shape& shape, const Strides& strides, int64_t offset) const;
  // Copies src (broadcast to this shape, converted to this dtype) into this tensor.
  void copy_from(const Tensor& src);
  void fill(double value);

  std::string str() const;  // readable, summarized for large tensors

  // ---- autodiff (eager, PyTorch-style) -----------------------------------------------
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  Tensor& set_requires_grad(bool value);
  // The gradient accumulated by backward() (undefined if none yet).
  Tensor grad() const;
  void zero_grad();
  // Reverse-mode from this scalar (or with an explicit seed); frees the tape afterwards
  // unless retain_graph. Implemented in loom/autodiff.
  void backward(const Tensor& seed = Tensor(), bool retain_graph = false) const;
  // Same data, cut from the graph.
  Tensor detach() const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::string to_string(const Tensor& t);

}  // namespace loom
