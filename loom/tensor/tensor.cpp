#include "loom/tensor/tensor.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "loom/base/rng.h"
#include "loom/tensor/allocator.h"
#include "loom/tensor/kernels/cpu/kernels.h"

namespace loom {

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  auto rank = [](DType t) {
    switch (t) {
      case DType::kBool: return 0;
      case DType::kI32: return 1;
      case DType::kI64: return 2;
      case DType::kF32: return 3;
      case DType::kF64: return 4;
    }
    return 0;
  };
  return rank(a) >= rank(b) ? a : b;
}

Storage::Storage(size_t nbytes)
    : data_(CachingAllocator::instance().allocate(nbytes)), nbytes_(nbytes), from_allocator_(true) {}

Storage::Storage(void* data, size_t nbytes, std::function<void(void*)> deleter)
    : data_(data), nbytes_(nbytes), from_allocator_(false), deleter_(std::move(deleter)) {}

Storage::~Storage() {
  if (from_allocator_) {
    CachingAllocator::instance().deallocate(data_, nbytes_);
  } else if (deleter_) {
    deleter_(data_);
  }
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (int64_t d : shape) {
    LOOM_CHECK(d >= 0, "empty: negative dimension in shape {}", shape_str(shape));
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(loom::numel(shape)) * dtype_size(dtype));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill(value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::arange(int64_t n, DType dtype) {
  LOOM_CHECK(n >= 0, "arange: n must be >= 0, got {}", n);
  Tensor t = empty({n}, dtype);
  LOOM_DISPATCH_NUMERIC(dtype, "arange", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<scalar_t>(i);
  });
  return t;
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  LOOM_CHECK(static_cast<int64_t>(values.size()) == loom::numel(shape),
             "from_vector: {} values do not fill shape {}", values.size(), shape_str(shape));
  if constexpr (std::is_same_v<T, bool>) {
    Tensor t = empty(shape, DType::kBool);
    bool* p = t.data<bool>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
    return t;
  } else {
    return from_data(values.data(), shape, DTypeOf<T>::value);
  }
}

template Tensor Tensor::from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector<double>(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector<int32_t>(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector<int64_t>(const std::vector<int64_t>&, const Shape&);
template Tensor Tensor::from_vector<bool>(const std::vector<bool>&, const Shape&);

Tensor Tensor::from_data(const void* data, const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  if (t.nbytes()) std::memcpy(t.raw_data(), data, t.nbytes());
  return t;
}

Tensor Tensor::rand(const Shape& shape, DType dtype, double lo, double hi) {
  Tensor t = empty(shape, dtype);
  LOOM_DISPATCH_FLOAT(dtype, "rand", [&] {
    default_generator().fill_uniform(t.data<scalar_t>(), t.numel(), static_cast<scalar_t>(lo),
                                     static_cast<scalar_t>(hi));
  });
  return t;
}

Tensor Tensor::randn(const Shape& shape, DType dtype, double mean, double std) {
  Tensor t = empty(shape, dtype);
  LOOM_DISPATCH_FLOAT(dtype, "randn", [&] {
    default_generator().fill_normal(t.data<scalar_t>(), t.numel(), static_cast<scalar_t>(mean),
                                    static_cast<scalar_t>(std));
  });
  return t;
}

int64_t Tensor::size(int64_t axis) const {
  return impl_->shape[normalize_axis(axis, dim(), "size")];
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = impl_->shape.size(); i-- > 0;) {
    if (impl_->shape[i] == 1) continue;
    if (impl_->strides[i] != expected) return false;
    expected *= impl_->shape[i];
  }
  return true;
}

bool Tensor::shares_storage(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

void* Tensor::raw_data() const {
  LOOM_CHECK(defined(), "data: tensor is undefined");
  return static_cast<char*>(impl_->storage->data()) +
         impl_->offset * static_cast<int64_t>(dtype_size(impl_->dtype));
}

template <typename T>
T* Tensor::data() const {
  LOOM_CHECK(defined(), "data: tensor is undefined");
  LOOM_CHECK(impl_->dtype == DTypeOf<T>::value, "data<{}>: tensor has dtype {}",
             dtype_name(DTypeOf<T>::value), dtype_name(impl_->dtype));
  return static_cast<T*>(raw_data());
}

template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int32_t* Tensor::data<int32_t>() const;
template int64_t* Tensor::data<int64_t>() const;
template bool* Tensor::data<bool>() const;

double Tensor::item_double() const {
  LOOM_CHECK(defined() && numel() == 1, "item: tensor of shape {} has {} elements, not 1",
             defined() ? shape_str(shape()) : "undefined", defined() ? numel() : 0);
  return LOOM_DISPATCH_ALL(dtype(), "item", [&]() -> double { return static_cast<double>(*data<scalar_t>()); });
}

template <typename T>
T Tensor::item() const {
  return static_cast<T>(item_double());
}
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int32_t Tensor::item<int32_t>() const;
template int64_t Tensor::item<int64_t>() const;
template bool Tensor::item<bool>() const;

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = to(DTypeOf<T>::value).contiguous();
  std::vector<T> out(static_cast<size_t>(c.numel()));
  const T* p = c.data<T>();
  for (size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<bool> Tensor::to_vector<bool>() const;

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype());
  cpu::copy(*this, out);
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out = empty(shape(), target);
  cpu::copy(*this, out);
  return out;
}

Tensor Tensor::as_strided(const Shape& shape, const Strides& strides, int64_t offset) const {
  LOOM_CHECK(shape.size() == strides.size(), "as_strided: shape {} and {} strides differ in rank",
             shape_str(shape), strides.size());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = impl_->dtype;
  // Bounds: the view must stay inside the storage.
  if (loom::numel(shape) > 0) {
    int64_t lo = offset, hi = offset;
    for (size_t i = 0; i < shape.size(); ++i) {
      int64_t span = (shape[i] - 1) * strides[i];
      (span < 0 ? lo : hi) += span;
    }
    int64_t cap = static_cast<int64_t>(impl_->storage->nbytes() / dtype_size(impl_->dtype));
    LOOM_CHECK(lo >= 0 && hi < cap, "as_strided: view {} (offset {}) exceeds storage of {} elements",
               shape_str(shape), offset, cap);
  }
  return Tensor(std::move(impl));
}

void Tensor::copy_from(const Tensor& src) {
  Shape b = broadcast_shapes(src.shape(), shape(), "copy_from");
  LOOM_CHECK(b == shape(), "copy_from: source shape {} does not broadcast to {}",
             shape_str(src.shape()), shape_str(shape()));
  cpu::copy(src, *this);
}

void Tensor::fill(double value) { cpu::fill(*this, value); }

Tensor& Tensor::set_requires_grad(bool value) {
  LOOM_CHECK(!value || is_floating(dtype()), "set_requires_grad: only floating tensors can require grad (dtype {})",
             dtype_name(dtype()));
  impl_->requires_grad = value;
  return *this;
}

Tensor Tensor::grad() const { return impl_ && impl_->grad ? Tensor(impl_->grad) : Tensor(); }

void Tensor::zero_grad() {
  if (impl_) impl_->grad.reset();
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->shape = impl_->shape;
  impl->strides = impl_->strides;
  impl->offset = impl_->offset;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

namespace {

void format_value(std::ostringstream& os, DType dt, const char* p) {
  char buf[32];
  switch (dt) {
    case DType::kF32: std::snprintf(buf, sizeof(buf), "%.4g", *reinterpret_cast<const float*>(p)); break;
    case DType::kF64: std::snprintf(buf, sizeof(buf), "%.6g", *reinterpret_cast<const double*>(p)); break;
    case DType::kI32: std::snprintf(buf, sizeof(buf), "%d", *reinterpret_cast<const int32_t*>(p)); break;
    case DType::kI64: std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(*reinterpret_cast<const int64_t*>(p))); break;
    case DType::kBool: std::snprintf(buf, sizeof(buf), "%s", *reinterpret_cast<const bool*>(p) ? "true" : "false"); break;
  }
  os << buf;
}

// Prints nested brackets; at most `edge` leading and trailing entries per dimension.
void format_rec(std::ostringstream& os, const Tensor& t, size_t d, int64_t off, int indent) {
  const int64_t edge = 3;
  const int64_t n = t.shape()[d];
  const size_t es = dtype_size(t.dtype());
  const char* base = static_cast<const char*>(t.impl()->storage->data());
  os << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (n > 2 * edge && i == edge) {
      os << (d + 1 == t.shape().size() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - edge;
    }
    int64_t o = off + i * t.strides()[d];
    if (d + 1 == t.shape().size()) {
      format_value(os, t.dtype(), base + o * es);
    } else {
      format_rec(os, t, d + 1, o, indent + 1);
    }
    if (i + 1 < n) os << (d + 1 == t.shape().size() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(";
  if (dim() == 0) {
    format_value(os, dtype(), static_cast<const char*>(raw_data()));
  } else if (numel() == 0) {
    os << "[]";
  } else {
    format_rec(os, *this, 0, offset(), 7);
  }
  os << ", shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype());
  if (requires_grad()) os << ", requires_grad";
  os << ")";
  return os.str();
}

std::string to_string(const Tensor& t) { return t.str(); }

}  // namespace loom
